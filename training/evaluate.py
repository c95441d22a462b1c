"""Metrics for single posts, 3-post snippets and whole accounts, computed through AgeModel."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from agegate import features as F
from agegate.model import AgeModel
from training.data import label

VIEW_KINDS = ("single_post", "snippet_3", "account")
PRECISION_TARGET = 0.95


def _rng(author_id: str, purpose: str) -> random.Random:
    seed = hashlib.sha256(f"{purpose}:{author_id}".encode()).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))


def eval_views(author: dict[str, Any]) -> dict[str, list[list[int]]]:
    """Post-index subsets scored for one author: every post alone, one random 3-post snippet,
    and all posts (up to 12)."""
    n = len(author["posts"])
    rng = _rng(str(author["author_id"]), "eval-views")
    idx = list(range(n))
    snippet = sorted(rng.sample(idx, min(3, n)))
    return {"single_post": [[i] for i in idx], "snippet_3": [snippet], "account": [idx]}


def author_records(model: AgeModel, author: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(decision, top, day, length, account sums) for each post, computed in one batch."""
    texts = [F.normalize_text(p.get("text") or "") for p in author["posts"]]
    if not texts:
        return []
    dec, tops, acc = model.text_records(texts)
    return [
        (float(d), top, F.to_date(p.get("date")), len(t), (float(a[0]), float(a[1])))
        for d, top, p, t, a in zip(dec, tops, author["posts"], texts, acc, strict=True)
    ]


def state_for(model: AgeModel, records: list[tuple[Any, ...]], subset: list[int]) -> dict:
    state = model.new_state()
    for i in subset:
        model.fold_text(state, *records[i])
    return state


def score_authors(
    model: AgeModel,
    authors: Iterable[dict[str, Any]],
    progress: Callable[[int], None] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Scores per view kind: {"kind": {"y", "p", "gender", "chars"}} using the model's own state
    path (``chars``: the view's total text length)."""
    out: dict[str, dict[str, list]] = {
        k: {"y": [], "p": [], "gender": [], "chars": []} for k in VIEW_KINDS
    }
    for author in authors:
        records = author_records(model, author)
        if records:
            y = label(author)
            for kind, subsets in eval_views(author).items():
                for subset in subsets:
                    out[kind]["y"].append(y)
                    out[kind]["p"].append(model.score(state_for(model, records, subset)).score)
                    out[kind]["gender"].append(author.get("gender") or "unknown")
                    out[kind]["chars"].append(sum(records[i][3] for i in subset))
        if progress:
            progress(1)
    return {k: {m: np.asarray(v) for m, v in d.items()} for k, d in out.items()}


def recall_at_precision(y: np.ndarray, p: np.ndarray, target: float) -> tuple[float, float]:
    """Best recall with precision >= target, and the lowest threshold achieving it."""
    from sklearn.metrics import precision_recall_curve

    prec, rec, thr = precision_recall_curve(y, p)
    ok = np.where(prec[:-1] >= target)[0]
    if ok.size == 0:
        return 0.0, 1.0
    best = ok[np.argmax(rec[ok])]
    return float(rec[best]), float(thr[best])


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    edges = np.linspace(0, 1, bins + 1)
    table = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (p >= lo) & ((p < hi) if hi < 1 else (p <= hi))
        if m.any():
            table.append(
                {
                    "bin": f"{lo:.1f}-{hi:.1f}",
                    "n": int(m.sum()),
                    "mean_predicted": round(float(p[m].mean()), 4),
                    "observed_rate": round(float(y[m].mean()), 4),
                }
            )
    return table


def metrics(
    y: np.ndarray, p: np.ndarray, review_threshold: float | None = None
) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    out: dict[str, Any] = {"n": int(y.size), "positives": int(y.sum())}
    if y.size == 0 or y.min() == y.max():
        return out
    rec, _ = recall_at_precision(y, p, PRECISION_TARGET)
    out.update(
        roc_auc=round(float(roc_auc_score(y, p)), 4),
        pr_auc=round(float(average_precision_score(y, p)), 4),
        recall_at_precision_0_95=round(rec, 4),
        brier=round(float(brier_score_loss(y, p)), 4),
    )
    if review_threshold is not None:
        flagged = p >= review_threshold
        tp = int((flagged & (y == 1)).sum())
        out["at_review_threshold"] = {
            "precision": round(tp / max(int(flagged.sum()), 1), 4),
            "recall": round(tp / max(int(y.sum()), 1), 4),
            "false_positive_rate": round(
                int((flagged & (y == 0)).sum()) / max(int((y == 0).sum()), 1), 4
            ),
        }
    return out


# Single posts by length: where a one-message score can and cannot be sure.
LENGTH_BANDS = ((0, 100), (100, 300), (300, 800), (800, None))


def by_length(y: np.ndarray, p: np.ndarray, chars: np.ndarray) -> dict[str, Any]:
    out = {}
    for lo, hi in LENGTH_BANDS:
        m = (chars >= lo) & ((chars < hi) if hi is not None else True)
        name = f"{lo}-{hi - 1} chars" if hi is not None else f"{lo}+ chars"
        out[name] = metrics(y[m], p[m])
    return out


def full_report(
    scores: dict[str, dict[str, np.ndarray]], review_threshold: float | None
) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for kind, d in scores.items():
        y, p, g = d["y"], d["p"], d["gender"]
        m = metrics(y, p, review_threshold)
        if y.size:
            m["calibration"] = calibration_table(y, p)
            if kind == "single_post" and "chars" in d:
                m["by_length"] = by_length(y, p, d["chars"])
            m["by_gender"] = {
                str(gender): metrics(y[g == gender], p[g == gender], review_threshold)
                for gender in sorted(set(g.tolist()))
            }
        report[kind] = m
    return report
