"""Helpers for the signals/review/enforcement tests: an app with a stand-in model.

`KeywordModel` follows the `agegate.model.AgeModel` contract (new_state, update, score,
review_threshold) with fixed, readable arithmetic, so the queue and enforcement rules can be
tested on known scores whatever the trained model decides about a sentence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agegate import create_app
from tests.conftest import auth

WORDS = ("mom", "grade", "homework", "school", "teacher")


@dataclass(frozen=True)
class Score:
    score: float
    band: str
    flagged: bool
    top_signals: list


class KeywordModel:
    """Log-odds -3, +1 per school word, +1.5 per suspected_minor report, +2 per redeclaration."""

    review_threshold = 0.7

    def new_state(self) -> dict:
        return {"n": 0, "hits": 0, "reports": 0, "redeclarations": 0}

    def update(self, state: dict, signals: list[dict]) -> dict:
        out = dict(state)
        for signal in signals:
            if "text" in signal:
                out["n"] += 1
                out["hits"] += sum(word in signal["text"].lower() for word in WORDS)
            elif signal["type"] == "report" and signal.get("reason") == "suspected_minor":
                out["reports"] += 1
            elif signal["type"] == "age_redeclaration":
                out["redeclarations"] += 1
        return out

    def score(self, state: dict) -> Score:
        parts = {"school_words": 1.0 * state["hits"], "reports": 1.5 * state["reports"],
                 "age_redeclaration": 2.0 * state["redeclarations"]}
        p = 1 / (1 + math.exp(-(-3 + sum(parts.values()))))
        band = "high" if p >= 0.7 else "medium" if p >= 0.4 else "low"
        top = sorted(((k, v) for k, v in parts.items() if v), key=lambda kv: -kv[1])
        return Score(p, band, p >= self.review_threshold, [{"name": k, "weight": v}
                                                           for k, v in top])


LEASE_SECONDS = 60


def signals_app(config, clock):
    """The app with the stand-in model and a one-minute review lease (modules wrap it as `app`)."""
    application = create_app(config.with_overrides(load_model=False,
                                                   review_lease_seconds=LEASE_SECONDS),
                             clock=clock)
    application.extensions["agegate"].model = KeywordModel()
    return application


def text_signal(text: str, at: str = "2026-11-24T13:00:00Z") -> dict:
    return {"type": "message", "at": at, "text": text}


FLAG_TEXT = "my mom says school homework and my teacher grade"  # 5 words: p = 0.88


def post_signals(client, account_id: str, signals: list[dict]):
    return client.post(f"/v1/accounts/{account_id}/signals", json={"signals": signals},
                       headers=auth("signals"))


def flag(client, account_id: str) -> dict:
    """Post a signal that flags the account; returns the score response."""
    response = post_signals(client, account_id, [text_signal(FLAG_TEXT)])
    assert response.status_code == 200, response.json
    assert response.json["flagged"] is True
    return response.json


def claim(client, role: str = "reviewer", kind: str | None = None):
    query = f"?kind={kind}" if kind else ""
    return client.post(f"/v1/review/claims{query}", headers=auth(role))


def decide(client, case_id: str, decision: str, role: str = "reviewer", note: str | None = None):
    body = {"decision": decision}
    if note is not None:
        body["note"] = note
    return client.post(f"/v1/review/cases/{case_id}/decision", json=body, headers=auth(role))
