"""Candidate account models compared by the worst domain (issue 19), for the model card.

Every candidate is the same text models with another second stage: the message model's mean
weighed by the words per message or not (``features.MEAN_HALF_WORDS_PER_MESSAGE``), the
lexicon's fixed weight, the intercept's move. Each is fitted by ``train.second_stage`` on the
same training states as the shipped account model (and, for the Reddit rows, as each
cross-community model), and scored on the same states the card's figures come from: blog test
authors' whole accounts, Reddit 10-comment stand-in accounts of the other group, NPS Chat dev
(5+ lines) and NUS SMS folded through the service's state path. Point figures only (the
shipped model's intervals are in the card's domain section).

The choice itself was made on validation blog authors, Reddit and the two chat sets (the
comments in training/train.py record those figures); this table reports the candidates on
the card's own sets, so a reader can check the choice on them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agegate import features as F
from agegate.model import DEFAULT_PREVALENCE, DEFAULT_REVIEW_THRESHOLD, AgeModel, logit

Log = Callable[[str], None]


@dataclass(frozen=True)
class Candidate:
    name: str
    half_words: float | None  # words per message at which the mean counts half; None: 1
    lexicon_coef: float
    shift: float


def candidates() -> tuple[Candidate, ...]:
    from training.train import LEXICON_COEF, YOUNG_ADULT_SHIFT

    k = F.MEAN_HALF_WORDS_PER_MESSAGE
    return (
        Candidate("mean unweighted, intercept -1.0 (the previous model)", None, -1.0, -1.0),
        Candidate("mean unweighted, intercept -0.5", None, -1.0, -0.5),
        Candidate(f"mean weighed at {k:g} words per message, intercept -1.0", k, -1.0, -1.0),
        Candidate(f"mean weighed at {k:g} words per message, intercept {YOUNG_ADULT_SHIFT} "
                  "(shipped)", k, LEXICON_COEF, YOUNG_ADULT_SHIFT),
        Candidate("mean weighed at 10 words per message", 10.0, -1.0, YOUNG_ADULT_SHIFT),
        Candidate(f"mean weighed at {k:g} words, lexicon fixed at -1.5", k, -1.5,
                  YOUNG_ADULT_SHIFT),
        Candidate(f"mean weighed at {k:g} words, lexicon fixed at -0.5", k, -0.5,
                  YOUNG_ADULT_SHIFT),
    )


def vector(model: AgeModel, state: dict[str, Any], half: float | None) -> list[float]:
    """The account features of ``state`` with the mean weighed at ``half`` words."""
    return F.account_vector(state["sd"], state["n"], state["act"],
                            model.account_text_decision(state), float(state["sl"]),
                            float(state["lx"]), float(state["lw"]), mean_half_words=half)


@dataclass
class Fitted:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    prevalence: float

    def log_odds(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.scale) @ self.coef + self.intercept

    def flagged(self, X: np.ndarray) -> np.ndarray:
        """Flagged at the service defaults (2% prevalence, threshold 0.5)."""
        z = self.log_odds(X) + logit(DEFAULT_PREVALENCE) - logit(self.prevalence)
        return 1.0 / (1.0 + np.exp(-z)) >= DEFAULT_REVIEW_THRESHOLD


def fit(model: AgeModel, stack: tuple[list[dict[str, Any]], np.ndarray, np.ndarray],
        c: Candidate) -> Fitted:
    from training.train import second_stage, view_weights

    states, y, src = stack
    X = np.asarray([vector(model, st, c.half_words) for st in states])
    w = view_weights(src, y)
    mean, scale, coef, b = second_stage(X, y, w, lexicon=model.uses_lexicon,
                                        lexicon_coef=c.lexicon_coef, shift=c.shift)
    return Fitted(mean, scale, coef, b, float(np.average(y, weights=w)))


def compare(
    model: AgeModel,
    directions: dict[str, AgeModel],
    stacks: dict[str, tuple[list[dict[str, Any]], np.ndarray, np.ndarray]],
    blog: tuple[list[dict[str, Any]], np.ndarray],
    reddit: dict[str, tuple[list[dict[str, Any]], np.ndarray]],
    nps: list[dict[str, Any]] | None,
    nus: list[dict[str, Any]] | None,
    log: Log = lambda s: None,
    chosen: Sequence[Candidate] | None = None,
) -> list[dict[str, Any]]:
    """One row per candidate: ROC-AUC per domain, blog precision and recall at 2% and the
    share of NUS senders aged 21+ flagged at the defaults. ``blog``: (states, y) of blog test
    accounts; ``reddit[name]``: (states, y) of 10-comment accounts scored by
    ``directions[name's first group]``; ``stacks``: training states ("shipped" and one per
    direction)."""
    from training import domains as D

    log("comparing candidate account models")
    chat: dict[str, tuple[list[dict[str, Any]], np.ndarray]] = {}
    nps_pair = None
    if nps:
        recs = [r for r in nps if len(r["posts"]) >= D.NPS_MIN_LINES]
        chat["nps"] = ([D.service_state(model, r["posts"]) for r in recs],
                       np.asarray([bool(r["label_minor"]) for r in recs]))
        nps_pair = np.isin([str(r["room"]) for r in recs], ["teens", "20s"])
    nus_lower = None
    if nus:
        recs = [r for r in nus if D.nus_lower_age(r.get("age_range") or "") is not None]
        nus_lower = np.asarray([D.nus_lower_age(r["age_range"]) for r in recs])
        chat["nus"] = ([D.service_state(model, r["messages"]) for r in recs], nus_lower < 21)
    rows = []
    for c in chosen or candidates():
        m = fit(model, stacks["shipped"], c)

        def X(states: list[dict[str, Any]], mod: AgeModel = model,
              c: Candidate = c) -> np.ndarray:
            return np.asarray([vector(mod, st, c.half_words) for st in states])

        row: dict[str, Any] = {"name": c.name}
        Xb = X(blog[0])
        yb = np.asarray(blog[1]).astype(bool)
        row["blog"] = D.roc_auc(yb, m.log_odds(Xb))
        prec, rec = D.at_prevalence(yb, m.flagged(Xb), DEFAULT_PREVALENCE)
        row["blog_precision_2pct"], row["blog_recall_2pct"] = prec, rec
        for name, (states, y) in reddit.items():
            g = name.split("->")[0]
            md = fit(directions[g], stacks[g], c)
            row[f"reddit_{name}"] = D.roc_auc(np.asarray(y), md.log_odds(
                X(states, directions[g])))
        if "nps" in chat and nps_pair is not None:
            states, y = chat["nps"]
            z = m.log_odds(X(states))
            row["nps_all_rooms"] = D.roc_auc(y, z)
            row["nps_teens_vs_20s"] = D.roc_auc(y[nps_pair], z[nps_pair])
        if "nus" in chat and nus_lower is not None:
            states, young = chat["nus"]
            Xn = X(states)
            ranked = young | (nus_lower >= 26)
            row["nus_16_20_vs_26_plus"] = D.roc_auc(young[ranked], m.log_odds(Xn)[ranked])
            row["nus_21_plus_flagged"] = float(m.flagged(Xn)[nus_lower >= 21].mean())
        rows.append({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
    return rows
