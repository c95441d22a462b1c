"""Test mode's forced outcomes (API.md "Test mode"): values with which a test token's request gets
a chosen outcome whatever else it says, so integrators can drive every branch before going live.

Whether a request is a test is decided once, by the auth hook, as its keyspace
(storage/keyspace.py). This module is the one place where rules read it: each service asks one
question here, and in the live keyspace every answer is "nothing forced", so a live token's
request with the same values is an ordinary request.
"""

from __future__ import annotations

from typing import Any

from agegate.storage import keyspace

# An age check whose email ends in one of these gets that decision whatever the date says.
FORCED_DECISIONS = {"@allow.test": "allow", "@deny.test": "deny", "@verify.test": "verify"}
# A signal whose text contains one of these scores this (the minor marker wins over the adult
# one: a forced minor is the outcome an integrator must never miss).
MINOR_MARKER, ADULT_MARKER = "AGEGATE_TEST_MINOR", "AGEGATE_TEST_ADULT"
FORCED_SCORES = {"minor": 0.99, "adult": 0.01}
# An assurance result with one of these evidence ids is a highly effective result of that outcome.
FORCED_ASSURANCE = {"test-over": "over_threshold", "test-under": "under_threshold"}
# Where the forced mark waits in an account's (test keyspace) state between update and score.
STATE_FIELD = "test_forced"


def _testing() -> bool:
    return not keyspace.current().live


def forced_decision(email: str | None) -> str | None:
    """`allow`, `deny` or `verify` for a test token's age check with such an email; else None."""
    if not _testing() or not email:
        return None
    address = email.strip().lower()
    return next((decision for suffix, decision in FORCED_DECISIONS.items()
                 if address.endswith(suffix)), None)


def forced_assurance(evidence_id: str | None) -> str | None:
    """The outcome a test token's assurance result with this evidence id is taken as; else None."""
    return FORCED_ASSURANCE.get(evidence_id or "") if _testing() else None


def _marked(signals: list[dict[str, Any]]) -> str | None:
    texts = [str(s.get("text") or "") for s in signals]
    if any(MINOR_MARKER in text for text in texts):
        return "minor"
    if any(ADULT_MARKER in text for text in texts):
        return "adult"
    return None


class ForcedScores:
    """The loaded model, except that an update whose signals carry a marker scores as forced.

    The mark lives in the account's state (test keyspace only; never text, just "minor" or
    "adult") from `update` to `score`, and the next update without a marker clears it."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def update(self, state: dict[str, Any] | None, signals: list[dict[str, Any]]
               ) -> dict[str, Any]:
        new = dict(self.model.update(state, signals))
        new.pop(STATE_FIELD, None)
        mark = _marked(signals)
        if mark is not None:
            new[STATE_FIELD] = mark
        return new

    def score(self, state: dict[str, Any]) -> Any:
        from agegate.model import Score

        mark = state.get(STATE_FIELD) if isinstance(state, dict) else None
        if mark not in FORCED_SCORES:
            return self.model.score(state)
        value = FORCED_SCORES[mark]
        marker = MINOR_MARKER if mark == "minor" else ADULT_MARKER
        return Score(score=value, band=self.model.band_of(value), flagged=mark == "minor",
                     top_signals=[{"name": f"test:{marker}", "weight": 1.0}])


def scoring_model(model: Any) -> Any:
    """The model the accounts service scores with: the loaded one, which a test token's
    markers override (None stays None: no model loaded)."""
    return ForcedScores(model) if model is not None and _testing() else model
