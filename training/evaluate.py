"""Evaluation through AgeModel's own state path: blog authors (single post, 3 posts, account,
the account's posts cut into 40 chat lines), Reddit across communities (single comments and
stand-in accounts of 10 comments of one community), teens vs people in their 20s, by gender,
calibration, and precision / recall / flag rate at platform prevalences. Used by
``agegate train`` (for the card) and ``agegate evaluate``."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from agegate import features as F
from agegate.model import AgeModel, logit
from training.data import REDDIT_GROUPS, chunks, is_stack, label, reddit_group

VIEW_KINDS = ("single_post", "snippet_3", "account", "lines_40")
PRECISION_TARGET = 0.95
PREVALENCES = (0.01, 0.02, 0.05, 0.10)
LINES = 40
REDDIT_ACCOUNT = 10
Log = Callable[[str], None]

# (name, where in the report, target). `agegate evaluate` prints each with met / NOT met.
TARGETS = (
    ("blog account ROC-AUC", ("blog", "account", "roc_auc"), 0.975),
    ("Reddit A->B single comment ROC-AUC", ("reddit", "A->B", "single", "roc_auc"), 0.82),
    ("Reddit B->A single comment ROC-AUC", ("reddit", "B->A", "single", "roc_auc"), 0.82),
    ("Reddit A->B 10-comment account ROC-AUC", ("reddit", "A->B", "account_10", "roc_auc"),
     0.97),
    ("Reddit B->A 10-comment account ROC-AUC", ("reddit", "B->A", "account_10", "roc_auc"),
     0.97),
    ("blog account precision at 2% prevalence, default threshold",
     ("blog", "account", "prevalence", "0.02", "precision"), 0.5),
    ("blog account recall at 2% prevalence, default threshold",
     ("blog", "account", "prevalence", "0.02", "recall"), 0.6),
)


def _rng(key: str, purpose: str) -> random.Random:
    seed = hashlib.sha256(f"{purpose}:{key}".encode()).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))


# ------------------------------------------------------------------------------ records


Record = tuple[float, list[tuple[int, float]], Any, tuple[float, float, float, float]]


def _records(model: AgeModel, texts: list[str], days: list[Any]) -> list[Record]:
    if not texts:
        return []
    dec, tops, sums = model.text_records(texts)
    return [
        (float(d), top, day, (float(s[0]), float(s[1]), float(s[2]), float(s[3])))
        for d, top, day, s in zip(dec, tops, days, sums, strict=True)
    ]


def author_records(model: AgeModel, author: dict[str, Any]) -> list[Record]:
    """One record per post: (decision, top, day, sums), computed in one batch."""
    texts = [F.normalize_text(p.get("text") or "") for p in author["posts"]]
    return _records(model, texts, [F.to_date(p.get("date")) for p in author["posts"]])


def line_records(model: AgeModel, author: dict[str, Any], max_lines: int = LINES
                 ) -> list[Record]:
    """The author's posts (oldest first) cut into chat-line pieces, each dated by its post;
    ``max_lines`` consecutive lines from a fixed random starting point."""
    posts = sorted(author["posts"], key=lambda p: (p.get("date") is None, str(p.get("date"))))
    lines: list[tuple[str, Any]] = []
    for p in posts:
        day = F.to_date(p.get("date"))
        lines.extend((c, day) for c in chunks(F.normalize_text(p.get("text") or "")))
    start = _rng(str(author["author_id"]), "lines").randrange(max(1, len(lines) - max_lines + 1))
    lines = lines[start : start + max_lines]
    return _records(model, [t for t, _ in lines], [d for _, d in lines])


def comment_records(model: AgeModel, comments: list[dict[str, Any]]) -> list[Record]:
    return _records(model, [F.normalize_text(c["text"]) for c in comments],
                    [None] * len(comments))


def state_for(model: AgeModel, records: list[Record], subset: list[int]) -> dict[str, Any]:
    """A fresh state with the ``subset`` of records folded in, oldest first (as the service
    receives messages; undated ones last)."""
    state = model.new_state()
    order = sorted(subset, key=lambda i: (records[i][2] is None,
                                          records[i][2].toordinal() if records[i][2] else 0))
    for i in order:
        model.fold_text(state, *records[i])
    return state


def reddit_accounts(comments: list[dict[str, Any]], k: int, purpose: str = "eval"
                    ) -> list[tuple[list[dict[str, Any]], int]]:
    """Stand-in accounts: the comments of each community in a fixed shuffled order, cut into
    groups of ``k`` (no author ids exist; see the Reddit README)."""
    by_sub: dict[str, list[dict[str, Any]]] = {}
    for c in comments:
        by_sub.setdefault(c["subreddit"], []).append(c)
    out = []
    for sub in sorted(by_sub):
        cs = list(by_sub[sub])
        _rng(sub, f"{purpose}-{k}").shuffle(cs)
        for start in range(0, len(cs) - k + 1, k):
            out.append((cs[start : start + k], int(cs[start]["label_minor"])))
    return out


# ------------------------------------------------------------------------------ scoring


def _log_odds(model: AgeModel, state: dict[str, Any]) -> float:
    """The learned log-odds at the training prevalence (``model`` calibrated to it)."""
    p = min(max(model.score(state).score, 1e-15), 1 - 1e-15)
    return logit(p)


def eval_views(author: dict[str, Any]) -> dict[str, list[list[int]]]:
    """Post-index subsets scored for one author: every post alone, one random 3-post snippet,
    and all posts (up to 12)."""
    n = len(author["posts"])
    rng = _rng(str(author["author_id"]), "eval-views")
    idx = list(range(n))
    snippet = sorted(rng.sample(idx, min(3, n)))
    return {"single_post": [[i] for i in idx], "snippet_3": [snippet], "account": [idx]}


def score_authors(
    model: AgeModel,
    authors: Iterable[dict[str, Any]],
    progress: Callable[[int], None] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Per view kind: {"y", "z" (log-odds at the training prevalence), "age", "gender",
    "chars", "contrib" (per account feature)} using the model's own state path."""
    base = model.with_calibration(model.prevalence_train)
    out: dict[str, dict[str, list[Any]]] = {
        k: {"y": [], "z": [], "age": [], "gender": [], "chars": [], "contrib": []}
        for k in VIEW_KINDS
    }

    def add(kind: str, author: dict[str, Any], state: dict[str, Any], chars: int) -> None:
        d = out[kind]
        d["y"].append(label(author))
        d["z"].append(_log_odds(base, state))
        d["age"].append(int(author["age"]))
        d["gender"].append(author.get("gender") or "unknown")
        d["chars"].append(chars)
        d["contrib"].append(contributions(base, state))

    for author in authors:
        records = author_records(base, author)
        if records:
            lengths = [len(F.normalize_text(p.get("text") or "")) for p in author["posts"]]
            for kind, subsets in eval_views(author).items():
                for subset in subsets:
                    add(kind, author, state_for(base, records, subset),
                        sum(lengths[i] for i in subset))
            lines = line_records(base, author)
            add("lines_40", author, state_for(base, lines, list(range(len(lines)))), 0)
        if progress:
            progress(1)
    return {k: {m: np.asarray(v) for m, v in d.items()} for k, d in out.items()}


def contributions(model: AgeModel, state: dict[str, Any]) -> list[float]:
    """Each account feature's contribution to the learned log-odds (0 without text)."""
    if not state["n"]:
        return [0.0] * len(F.ACCOUNT_FEATURES)
    x = np.asarray(model.account_vector(state))
    return (model._acc_coef * (x - model._acc_mean) / model._acc_scale).tolist()


def score_reddit(model: AgeModel, comments: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Single comments and stand-in accounts of REDDIT_ACCOUNT comments of one community."""
    base = model.with_calibration(model.prevalence_train)
    recs = comment_records(base, comments)
    single = {"y": np.asarray([int(c["label_minor"]) for c in comments]),
              "z": np.asarray([_log_odds(base, state_for(base, recs, [i]))
                               for i in range(len(recs))])}
    pos = {id(c): i for i, c in enumerate(comments)}
    ys, zs, cs = [], [], []
    for group, lab in reddit_accounts(comments, REDDIT_ACCOUNT):
        st = state_for(base, recs, [pos[id(c)] for c in group])
        ys.append(lab)
        zs.append(_log_odds(base, st))
        cs.append(contributions(base, st))
    return {"single": single,
            "account_10": {"y": np.asarray(ys), "z": np.asarray(zs), "contrib": np.asarray(cs)}}


# ------------------------------------------------------------------------------ metrics


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


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


def metrics(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """Ranking metrics (any monotone score) and the Brier score of ``p``."""
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
    return out


def prevalence_table(y: np.ndarray, z: np.ndarray, prevalence_train: float,
                     threshold: float) -> dict[str, dict[str, float | None]]:
    """Precision, recall and flag rate on a platform with prevalence pi, where the score is
    shifted exactly to pi and flagged at ``threshold``: recall and the adult flag rate are
    measured per class, then mixed at pi (no resampling)."""
    out = {}
    pos, neg = y == 1, y == 0
    for pi in PREVALENCES:
        p = _sigmoid(z + logit(pi) - logit(prevalence_train))
        flagged = p >= threshold
        tpr = float(flagged[pos].mean()) if pos.any() else 0.0
        fpr = float(flagged[neg].mean()) if neg.any() else 0.0
        rate = pi * tpr + (1 - pi) * fpr
        out[str(pi)] = {
            "precision": round(pi * tpr / rate, 4) if rate else None,
            "recall": round(tpr, 4),
            "adult_flag_rate": round(fpr, 4),
            "flag_rate": round(rate, 4),
        }
    return out


def view_report(y: np.ndarray, z: np.ndarray, prevalence_train: float, threshold: float,
                extra: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Metrics of one view. Probabilities for Brier and calibration are the scores shifted
    to the view's own share of minors (so they test the shift-based calibration)."""
    if y.size == 0:
        return {"n": 0}
    share = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
    p = _sigmoid(z + logit(share) - logit(prevalence_train))
    m = metrics(y, p)
    if y.min() == y.max():
        return m
    m["calibration"] = calibration_table(y, p)
    m["prevalence"] = prevalence_table(y, z, prevalence_train, threshold)
    if extra:
        if "gender" in extra:
            g = extra["gender"]
            m["by_gender"] = {str(v): metrics(y[g == v], p[g == v]) for v in sorted(set(g))}
        if "age" in extra:
            age = extra["age"]
            sel = (age < 18) | ((age >= 23) & (age <= 29))
            m["teens_vs_23_29"] = metrics(y[sel], p[sel])
        if "chars" in extra and extra["chars"].any():
            m["by_length"] = by_length(y, p, extra["chars"])
    return m


LENGTH_BANDS = ((0, 100), (100, 300), (300, 800), (800, None))


def by_length(y: np.ndarray, p: np.ndarray, chars: np.ndarray) -> dict[str, Any]:
    out = {}
    for lo, hi in LENGTH_BANDS:
        m = (chars >= lo) & ((chars < hi) if hi is not None else True)
        name = f"{lo}-{hi - 1} chars" if hi is not None else f"{lo}+ chars"
        out[name] = metrics(y[m], p[m])
    return out


def blog_report(model: AgeModel, scores: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    report = {}
    for kind, d in scores.items():
        extra = {"gender": d["gender"], "age": d["age"]}
        if kind == "single_post":
            extra["chars"] = d["chars"]
        report[kind] = view_report(d["y"], d["z"], model.prevalence_train,
                                   model.review_threshold, extra)
    return report


def _mean_contrib(c: np.ndarray) -> dict[str, float]:
    if c.size == 0:
        return {}
    return {f: round(float(v), 4) for f, v in zip(F.ACCOUNT_FEATURES, np.abs(c).mean(axis=0),
                                                    strict=True)}


def evaluate_all(
    model: AgeModel,
    parts: dict[str, list[dict[str, Any]]],
    comments: list[dict[str, Any]],
    directions: dict[str, AgeModel],
    log: Log = lambda s: None,
    split: str = "test",
) -> dict[str, Any]:
    """Everything the card and ``agegate evaluate`` report. ``directions[g]`` is a model
    whose Reddit training data came only from group g; it is scored on the other group."""
    authors = parts[split]
    if split == "validation":  # the account model was fitted on the stack part of it
        authors = [a for a in authors if not is_stack(a["author_id"])]
    log(f"scoring {len(authors)} blog {split} authors")
    blog = score_authors(model, authors)
    report: dict[str, Any] = {"split": split, "blog": blog_report(model, blog), "reddit": {}}
    contrib: dict[str, Any] = {
        "blog account (all posts)": _mean_contrib(blog["account"]["contrib"]),
        "blog single post": _mean_contrib(blog["single_post"]["contrib"]),
        "blog 40 chat lines": _mean_contrib(blog["lines_40"]["contrib"]),
    }
    for g, m in directions.items():
        others = [c for c in comments if reddit_group(c) not in ("other", g)]
        other = "+".join(x for x in REDDIT_GROUPS if x != g)
        log(f"scoring Reddit {g}->{other} ({len(others)} comments)")
        r = score_reddit(m, others)
        report["reddit"][f"{g}->{other}"] = {
            "train_communities": list(REDDIT_GROUPS[g]),
            "test_communities": sorted({c["subreddit"] for c in others}),
            "single": view_report(r["single"]["y"], r["single"]["z"], m.prevalence_train,
                                  m.review_threshold),
            "account_10": view_report(r["account_10"]["y"], r["account_10"]["z"],
                                      m.prevalence_train, m.review_threshold),
        }
        contrib[f"Reddit 10-comment accounts {g}->{other}"] = _mean_contrib(
            r["account_10"]["contrib"])
    report["mean_abs_contribution"] = contrib
    report["targets"] = check_targets(report)
    return report


def _get(report: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = report
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def check_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, path, target in TARGETS:
        value = _get(report, path)
        out.append({"target": f"{name} >= {target}", "value": value,
                    "met": value is not None and value >= target})
    return out


def format_targets(targets: list[dict[str, Any]]) -> str:
    def status(t: dict[str, Any]) -> str:
        if t["value"] is None:
            return "not measured"
        return "met" if t["met"] else "NOT met"

    return "\n".join(f"{status(t):<12}  {t['target']}: {t['value']}" for t in targets)


