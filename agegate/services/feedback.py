"""Model feedback: one de-identified example per reviewer verdict or verification result.

The privacy policy allows exactly one use of what reviewers learn about an account: information
aggregated so that it is not personally identifiable, for training and quality assurance. An
example is therefore only the account-level feature vector the model scored (numbers; no
vocabulary ids, no text), the verdict, the model's versions and the day. It carries no account
id, keyed hash, case id, reviewer or timestamp, so it is not personal data and outlives the
account (a terminated minor's state is deleted; the example taken from it just before is not).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis

from agegate import features as F
from agegate.clock import Clock
from agegate.storage.accounts import AccountStore
from agegate.storage.feedback import FeedbackStore

log = logging.getLogger("agegate.feedback")

# Cases whose decision is a verdict about the account's age (API.md, "Model feedback").
FEEDBACK_KINDS = frozenset({"classifier", "report", "age_signal"})
VERDICTS = {"confirm_minor": "minor", "not_minor": "adult"}


class FeedbackService:
    """Takes examples from account states and keeps them in the capped store."""

    def __init__(self, store: FeedbackStore, accounts: AccountStore,
                 model: Callable[[], Any], clock: Clock) -> None:
        self.store = store
        self.accounts = accounts
        self.model = model
        self.clock = clock

    def capture(self, client: Any, account_hash: str) -> dict[str, Any] | None:
        """The example's numbers from the account's stored state (read through ``client``, a
        WATCHing pipeline inside a decision's unit of work), or None when there is no model
        or no text scored on the loaded model's scale."""
        model = self.model()
        if model is None:
            return None
        vector = model.feedback_vector(self.accounts.state(client, account_hash))
        if vector is None:
            return None
        return {"x": [round(v, 4) for v in vector], "model": model.version,
                "text_model": model.text_version, "features": F.ACCOUNT_LAYOUT}

    def record(self, captured: dict[str, Any] | None, verdict: str) -> None:
        """Store one example once its decision has landed; a failure here never undoes the
        decision (the example is a by-product, the verdict is the record)."""
        if captured is None:
            return
        day = self.clock.today()
        try:
            self.store.add({**captured, "verdict": verdict, "day": day.isoformat()}, day)
        except redis.RedisError as error:
            log.warning("feedback example not stored: %s", type(error).__name__)

    def summary(self) -> dict[str, Any]:
        """What GET /v1/admin/model reports."""
        model = self.model()
        return {
            "version": model.version if model else None,
            "text_version": model.text_version if model else None,
            "prevalence": model.prevalence if model else None,
            "review_threshold": model.review_threshold if model else None,
            "examples": self.store.counts(),
            "recalibrated_at": model.recalibrated_at if model else None,
        }

    def examples(self) -> list[dict[str, Any]]:
        """Every stored example (for `agegate recalibrate`)."""
        return self.store.all()
