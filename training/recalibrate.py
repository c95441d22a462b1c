"""Recalibration: refit the account-level (second-stage) model on the training views plus the
platform's de-identified reviewer examples, keeping the message-level text models fixed.

The text models fix the scale of every account's stored state (sums of their decision values),
so keeping them means every stored state stays valid: the new artifact records the text model it
shares (``text_version``) beside its own ``version``. A fifth of the examples is held back; the
new version is written only when it is no worse than the current one, beyond the stated
tolerances, both on those held-back examples and on blog validation authors.
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from agegate import features as F
from agegate import model as M
from training import evaluate as E
from training.data import is_stack, iter_authors, label, split_of

Log = Callable[[str], None]

HOLDOUT_EVERY = 5  # every fifth example (in a seeded shuffle) is held back
# Refused when the new version is worse than the current one by more than this, on either set.
# ROC-AUC is the ranking the review queue depends on; log loss is the calibration the prevalence
# shift and the review threshold depend on.
TOLERANCE = {"roc_auc": 0.005, "log_loss": 0.01}
MIN_EXAMPLES = 20  # fewer examples than this say nothing a refit could trust
# The refit (fit_second_stage): corrections to the current account model are strongly
# shrunk, the current log-odds' own weight is free; chosen on the shipped model with 300
# examples (150 stack and validation authors): C 1e-3 or a platform weight of 1 were no better.
CORRECTION_C = 1e-4
ANCHOR_SCALE = 1000.0
PLATFORM_WEIGHT = 4.0


@dataclass
class Split:
    """Examples as arrays: features, labels (1 = minor)."""

    X: np.ndarray
    y: np.ndarray

    @property
    def counts(self) -> dict[str, int]:
        return {"minor": int(self.y.sum()), "adult": int(self.y.size - self.y.sum())}


@dataclass
class Outcome:
    """What a recalibration found; ``accepted`` only when every check passed."""

    accepted: bool
    reasons: list[str]
    counts: dict[str, Any]
    before: dict[str, dict[str, float]]
    after: dict[str, dict[str, float]]
    artifact: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------ the artifact


def read_artifact(model_dir: str | Path) -> tuple[M.AgeModel, dict[str, Any], dict[str, Any]]:
    """The verified model, its raw artifact dict and its card (load_model checks sha256,
    sklearn version and the type allowlist first)."""
    import skops.io as sio

    d = Path(model_dir)
    model = M.load_model(d)
    path = d / M.ARTIFACT_NAME
    artifact = sio.load(path, trusted=sorted(M.artifact_types(path)))
    card = json.loads((d / M.CARD_NAME).read_text(encoding="utf-8"))
    return model, artifact, card


def log_odds(artifact: dict[str, Any], X: np.ndarray) -> np.ndarray:
    """The second stage's learned log-odds (at its training prevalence) for feature rows."""
    mean = np.asarray(artifact["account_mean"], dtype=np.float64)
    scale = np.asarray(artifact["account_scale"], dtype=np.float64)
    coef = np.asarray(artifact["account_coef"], dtype=np.float64)
    return float(artifact["account_intercept"]) + ((X - mean) / scale) @ coef


def fit_second_stage(
    artifact: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    source: np.ndarray,
) -> dict[str, Any]:
    """A copy of ``artifact`` whose account model is refitted on (X, y); text parts untouched.

    The refit is anchored on the current account model: a logistic regression on the current
    learned log-odds z0 (effectively unpenalised: it enters scaled by ANCHOR_SCALE) and the
    standardised features (penalised with CORRECTION_C), so the new log-odds are
    ``a * z0 + b + c . x``: a rescaling of what the full training learned plus small per-feature
    corrections. Still one linear model over the same features, so the artifact keeps its
    layout. A plain refit would lose what the full training learned from views a recalibration
    cannot rebuild (see :func:`training_views`): on the shipped model it fell from 0.8967 to
    0.8911 ROC-AUC on held-back examples.

    Rows are weighted as in training/train.py (:func:`training.train.view_weights`): each
    source kind the same in total, split evenly between minors and adults; the platform's
    examples weigh PLATFORM_WEIGHT kinds (they stand in for the four Reddit kinds)."""
    from sklearn.linear_model import LogisticRegression

    from training.train import view_weights

    weights = view_weights(source, y, {"platform": PLATFORM_WEIGHT})
    mean = np.asarray(artifact["account_mean"], dtype=np.float64)
    scale = np.asarray(artifact["account_scale"], dtype=np.float64)
    coef0 = np.asarray(artifact["account_coef"], dtype=np.float64)
    b0 = float(artifact["account_intercept"])
    Z = (X - mean) / scale
    z0 = Z @ coef0 + b0
    clf = LogisticRegression(C=CORRECTION_C, max_iter=5000).fit(
        np.hstack([Z, (z0 * ANCHOR_SCALE)[:, None]]), y, sample_weight=weights)
    a = float(clf.coef_[0][-1]) * ANCHOR_SCALE
    out = copy.copy(artifact)
    out.update(
        account_coef=a * coef0 + clf.coef_[0][:-1],
        account_intercept=a * b0 + float(clf.intercept_[0]),
        prevalence_train=float(np.average(y, weights=weights)),
        _anchor=a,  # reported in the card, not stored in the artifact
    )
    return out


# ------------------------------------------------------------------------------ data


@dataclass
class Corpus:
    """The blog data a recalibration needs (optionally cut down, for tests)."""

    stack_blog: list[dict[str, Any]]
    validation_blog: list[dict[str, Any]]


def load_corpus(data: str | Path | None = None, max_authors: int | None = None) -> Corpus:
    """Stack authors (the account model's own training authors) and validation authors outside
    the stack (where choices are checked); ``max_authors`` cuts each list down (file order)."""
    stack: list[dict[str, Any]] = []
    valid: list[dict[str, Any]] = []
    for a in iter_authors(data):
        if split_of(a["author_id"]) != "validation":
            continue
        (stack if is_stack(a["author_id"]) else valid).append(a)
    if max_authors is not None:
        stack, valid = stack[:max_authors], valid[:max_authors]
    return Corpus(stack, valid)


def training_views(model: M.AgeModel, corpus: Corpus) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The account model's blog training views (X, y, source) scored by ``model``'s text
    models, exactly as training/train.py makes them: whole and partial accounts of authors
    the text models never saw, as posts and as chat lines.

    The full training's Reddit views are not used. It scores each community's comments with
    a text model that never saw that community, as the platform's chat is a community no model
    saw; a recalibration has only the shipped text model, which saw them all, so its Reddit
    features are over-confident and teach the account model to over-trust text (measured on
    the shipped model, 150 stack and 150 validation authors: refitted on blog views alone,
    blog validation ROC-AUC 0.9628 -> 0.9644; with those Reddit views, 0.9545). The platform's
    own examples take their place as the chat source."""
    from training.train import _stack_views

    X, y, _, src = _stack_views(model, corpus.stack_blog, [])
    return X, y, src


def blog_validation(model: M.AgeModel, authors: Sequence[dict[str, Any]]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(X, y): each validation author's whole account, as the service would hold it."""
    X, y = [], []
    for a in authors:
        recs = E.author_records(model, a)
        if recs:
            X.append(model.account_vector(E.state_for(model, recs, list(range(len(recs))))))
            y.append(label(a))
    return np.asarray(X), np.asarray(y)


def examples_split(examples: Sequence[dict[str, Any]], seed: int = 0) -> tuple[Split, Split]:
    """(fit, held back): every HOLDOUT_EVERY-th example of a seeded shuffle is held back."""
    # The store returns a day's examples in random order: sort them first, so that the same
    # examples always make the same split.
    order = sorted(range(len(examples)), key=lambda i: (
        str(examples[i].get("day")), json.dumps(examples[i]["x"]), examples[i]["verdict"]))
    random.Random(seed).shuffle(order)
    rows = [(examples[i]["x"], int(examples[i]["verdict"] == "minor")) for i in order]
    held = [r for k, r in enumerate(rows) if k % HOLDOUT_EVERY == HOLDOUT_EVERY - 1]
    fit = [r for k, r in enumerate(rows) if k % HOLDOUT_EVERY != HOLDOUT_EVERY - 1]

    def arrays(part: list[tuple[list[float], int]]) -> Split:
        width = len(F.ACCOUNT_FEATURES)
        return Split(np.asarray([x for x, _ in part], dtype=np.float64).reshape(-1, width),
                     np.asarray([v for _, v in part], dtype=np.int64))

    return arrays(fit), arrays(held)


def usable(model: M.AgeModel, examples: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Examples on this model's scale: taken under the same text model and the same account
    features (layout and width)."""
    return [e for e in examples
            if e.get("text_model") == model.text_version and same_features(e)
            and e.get("verdict") in ("minor", "adult")]


def same_features(example: dict[str, Any]) -> bool:
    """Whether ``example`` holds this code's account features: its layout tag (examples from
    before issue 19's length-weighted mean have none: their features differ though their
    width may not) and its width."""
    return (example.get("features") == F.ACCOUNT_LAYOUT
            and len(example.get("x", ())) == len(F.ACCOUNT_FEATURES))


# ------------------------------------------------------------------------------ metrics


def _metrics(y: np.ndarray, z: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import log_loss, roc_auc_score

    out: dict[str, float] = {"n": int(y.size)}
    if y.size and y.min() != y.max():
        p = 1.0 / (1.0 + np.exp(-z))
        out["roc_auc"] = round(float(roc_auc_score(y, z)), 4)
        out["log_loss"] = round(float(log_loss(y, np.clip(p, 1e-12, 1 - 1e-12))), 4)
    return out


def _worse(name: str, before: dict[str, float], after: dict[str, float]) -> list[str]:
    reasons = []
    if "roc_auc" in before and after["roc_auc"] < before["roc_auc"] - TOLERANCE["roc_auc"]:
        reasons.append(f"{name}: ROC-AUC {before['roc_auc']} -> {after['roc_auc']} "
                       f"(falls by more than {TOLERANCE['roc_auc']})")
    if "log_loss" in before and after["log_loss"] > before["log_loss"] + TOLERANCE["log_loss"]:
        reasons.append(f"{name}: log loss {before['log_loss']} -> {after['log_loss']} "
                       f"(rises by more than {TOLERANCE['log_loss']})")
    return reasons


# ------------------------------------------------------------------------------ the run


def recalibrate(
    model: M.AgeModel,
    artifact: dict[str, Any],
    examples: Sequence[dict[str, Any]],
    corpus: Corpus,
    now: datetime | None = None,
    log: Log = lambda s: None,
) -> Outcome:
    """Refit the second stage on views + 4/5 of the usable examples and compare with the
    current one on the held-back fifth and on blog validation."""
    now = now or datetime.now(UTC)
    found = usable(model, examples)
    counts: dict[str, Any] = {
        "stored": dict(Counter(e.get("verdict") for e in examples)),
        "usable": dict(Counter(e["verdict"] for e in found)),
        "other_text_model": sum(1 for e in examples if e.get("text_model") != model.text_version),
        # Same text model, but taken under an account model with other features (a retrain
        # that kept the text models but changed the second stage's features, issue 19).
        "other_features": sum(1 for e in examples if e.get("text_model") == model.text_version
                              and not same_features(e)),
    }
    fit, held = examples_split(found)
    counts.update(fit=fit.counts, held_back=held.counts)
    empty: dict[str, dict[str, float]] = {}
    if len(found) < MIN_EXAMPLES or min(held.counts.values()) == 0 or min(
            fit.counts.values()) == 0:
        return Outcome(False, [f"not enough examples: {len(found)} usable "
                               f"({counts['usable']}); at least {MIN_EXAMPLES}, with both "
                               "verdicts in the fitted and the held-back part, are needed"],
                       counts, empty, empty)
    log(f"examples: fit {fit.counts}, held back {held.counts}")
    Xv, yv, src = training_views(model, corpus)
    log(f"training views: {dict(Counter(src.tolist()))}")
    X = np.vstack([Xv, fit.X])
    y = np.concatenate([yv, fit.y])
    source = np.concatenate([src, np.asarray(["platform"] * fit.y.size)])
    new = fit_second_stage(artifact, X, y, source)
    Xb, yb = blog_validation(model, corpus.validation_blog)
    log(f"blog validation: {yb.size} authors")
    before = {"held_back": _metrics(held.y, log_odds(artifact, held.X)),
              "blog_validation": _metrics(yb, log_odds(artifact, Xb))}
    after = {"held_back": _metrics(held.y, log_odds(new, held.X)),
             "blog_validation": _metrics(yb, log_odds(new, Xb))}
    reasons = [r for name in before for r in _worse(name, before[name], after[name])]
    for name in before:
        if "roc_auc" not in before[name]:
            reasons.append(f"{name}: both verdicts are needed to compare ({before[name]['n']} "
                           "accounts)")
    text_version = str(artifact.get("text_version") or artifact["version"])
    new.update(
        version=f"{text_version.split('+')[0]}+r{now.strftime('%Y%m%d%H%M%S')}",
        text_version=text_version,
        recalibrated_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    info = {"previous_version": str(artifact["version"]), "text_version": text_version,
            "anchor": round(float(new.pop("_anchor")), 4),
            "training_views": {str(k): int(v) for k, v in Counter(src.tolist()).items()},
            "tolerance": dict(TOLERANCE), "holdout": f"1 in {HOLDOUT_EVERY}"}
    return Outcome(not reasons, reasons, counts, before, after, new, info)


def feedback_section(outcome: Outcome) -> dict[str, Any]:
    """The card's "feedback" entry."""
    return {"recalibrated_at": outcome.artifact["recalibrated_at"] if outcome.artifact else None,
            **outcome.info, "examples": outcome.counts, "before": outcome.before,
            "after": outcome.after}


def card_markdown(previous_md: str, card: dict[str, Any]) -> str:
    """The previous MODEL_CARD.md with its "Platform feedback" section replaced."""
    fb = card["feedback"]
    head = previous_md.split("\n## Platform feedback\n")[0].rstrip() + "\n"
    rows = []
    for name in ("held_back", "blog_validation"):
        b, a = fb["before"][name], fb["after"][name]
        rows.append(f"| {name.replace('_', ' ')} | {b['n']} | {b.get('roc_auc')} -> "
                    f"{a.get('roc_auc')} | {b.get('log_loss')} -> {a.get('log_loss')} |")
    ex = fb["examples"]
    return head + "\n".join([
        "",
        "## Platform feedback",
        "",
        f"Version **{card['version']}** is a recalibration of {fb['previous_version']} "
        f"({fb['recalibrated_at']}): the account-level (second-stage) model was refitted on the "
        "blog training views plus de-identified examples from reviewers' decisions and "
        "verification results (an account-level feature vector, the verdict, the model version "
        "and the day; nothing that identifies an account), anchored on the previous account "
        f"model: new log-odds = {fb.get('anchor', 'a')} x previous log-odds + b + small "
        "per-feature corrections. The message-level text models are unchanged "
        f"(text model {fb['text_version']}), so every stored account state stays valid. The "
        f"sections above describe the fully trained version {fb['text_version']}; this "
        "version's account model differs from it as measured here.",
        "",
        f"- Examples stored: {ex['stored']}; on this text model: {ex['usable']}; "
        f"from another text model (not used): {ex['other_text_model']}; with another account "
        f"model's features (not used): {ex.get('other_features', 0)}.",
        f"- Fitted on: {ex['fit']} plus the training views {fb['training_views']}; held back "
        f"({fb['holdout']}): {ex['held_back']}.",
        f"- Accepted only when no worse than the previous version on both sets below by more "
        f"than {fb['tolerance']['roc_auc']} ROC-AUC or {fb['tolerance']['log_loss']} log loss "
        "(learned log-odds at the training prevalence).",
        "",
        "| set | accounts | ROC-AUC before -> after | log loss before -> after |",
        "|---|---|---|---|",
        *rows,
        "",
    ])


def write(outcome: Outcome, card: dict[str, Any], model_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Write the accepted artifact, card.json and MODEL_CARD.md into ``out_dir``."""
    import sklearn

    from training.train import write_artifact

    assert outcome.accepted and outcome.artifact is not None
    previous_md = (model_dir / "MODEL_CARD.md").read_text(encoding="utf-8") if (
        model_dir / "MODEL_CARD.md").is_file() else f"# Model card: {card.get('version')}\n"
    # Everything is written beside the target first and then renamed into place, so a crash
    # never leaves an artifact beside a card that does not match it.
    staging = out_dir / ".recalibrate"
    shutil.rmtree(staging, ignore_errors=True)
    sha = write_artifact(outcome.artifact, staging)
    new_card = {**card, "sha256": sha, "size_bytes": (staging / M.ARTIFACT_NAME).stat().st_size,
                "sklearn_version": sklearn.__version__, "version": outcome.artifact["version"],
                "text_version": outcome.artifact["text_version"],
                "prevalence_train": round(float(outcome.artifact["prevalence_train"]), 4),
                "feedback": feedback_section(outcome)}
    (staging / M.CARD_NAME).write_text(json.dumps(new_card, indent=2) + "\n", encoding="utf-8")
    (staging / "MODEL_CARD.md").write_text(card_markdown(previous_md, new_card),
                                           encoding="utf-8")
    for name in (M.ARTIFACT_NAME, M.CARD_NAME, "MODEL_CARD.md"):
        os.replace(staging / name, out_dir / name)
    staging.rmdir()
    return new_card


def format_outcome(outcome: Outcome) -> str:
    """The comparison as the CLI prints it."""
    lines = [f"examples: {json.dumps(outcome.counts, sort_keys=True)}"]
    for name in outcome.before:
        b, a = outcome.before[name], outcome.after.get(name, {})
        lines.append(f"{name}: n={b.get('n')} ROC-AUC {b.get('roc_auc')} -> {a.get('roc_auc')}, "
                     f"log loss {b.get('log_loss')} -> {a.get('log_loss')}")
    return "\n".join(lines)
