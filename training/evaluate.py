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
from agegate.model import DEFAULT_PREVALENCE, DEFAULT_REVIEW_THRESHOLD, AgeModel, logit
from training.data import REDDIT_GROUPS, chunks, is_stack, label, reddit_group

VIEW_KINDS = ("single_post", "snippet_3", "account", "lines_40")
PRECISION_TARGET = 0.95
PREVALENCES = (0.01, 0.02, 0.05, 0.10)
LINES = 40
REDDIT_ACCOUNT = 10
Log = Callable[[str], None]

# The targets are the rows of training/domains.py (DOMAIN_TARGETS): every domain with a
# bootstrap 90% interval; `agegate evaluate` prints each with met / NOT met. The Reddit
# single-comment target is retired (it rewarded learning each community's topics).


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
    keep: list[dict[str, Any]] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Per view kind: {"y", "z" (log-odds at the training prevalence), "age", "gender",
    "chars", "contrib" (per account feature)} using the model's own state path."""
    base = model.with_calibration(model.prevalence_train)
    out: dict[str, dict[str, list[Any]]] = {
        k: {"y": [], "z": [], "age": [], "gender": [], "chars": [], "contrib": [], "author": []}
        for k in VIEW_KINDS
    }

    def add(kind: str, author: dict[str, Any], state: dict[str, Any], chars: int) -> None:
        if keep is not None and kind == "account":
            keep.append(state)  # whole accounts' states, for another second stage
        d = out[kind]
        d["y"].append(label(author))
        d["z"].append(_log_odds(base, state))
        d["age"].append(int(author["age"]))
        d["gender"].append(author.get("gender") or "unknown")
        d["chars"].append(chars)
        d["author"].append(str(author["author_id"]))
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


def score_reddit(model: AgeModel, comments: list[dict[str, Any]],
                 keep: list[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Single comments and stand-in accounts of REDDIT_ACCOUNT comments of one community
    (their states are appended to ``keep``)."""
    base = model.with_calibration(model.prevalence_train)
    recs = comment_records(base, comments)
    single = {"y": np.asarray([int(c["label_minor"]) for c in comments]),
              "z": np.asarray([_log_odds(base, state_for(base, recs, [i]))
                               for i in range(len(recs))])}
    pos = {id(c): i for i, c in enumerate(comments)}
    ys, zs, cs = [], [], []
    for group, lab in reddit_accounts(comments, REDDIT_ACCOUNT):
        st = state_for(base, recs, [pos[id(c)] for c in group])
        if keep is not None:
            keep.append(st)
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
    nps: list[dict[str, Any]] | None = None,
    nus: list[dict[str, Any]] | None = None,
    no_lexicon: dict[str, AgeModel] | None = None,
    stacks: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the card and ``agegate evaluate`` report. ``directions[g]`` is a model
    whose Reddit training data came only from group g; it is scored on the other group.
    ``nps`` / ``nus``: the chat-medium sets (training/domains.py), scored by ``model``.
    ``stacks``: the account models' training states (training), to compare the candidate
    account models on the same states (training/selection.py)."""
    authors = parts[split]
    if split == "validation":  # the account model was fitted on the stack part of it
        authors = [a for a in authors if not is_stack(a["author_id"])]
    log(f"scoring {len(authors)} blog {split} authors")
    kept: dict[str, list[dict[str, Any]]] = {"blog": []}
    blog = score_authors(model, authors, keep=kept["blog"])
    report: dict[str, Any] = {"split": split, "blog": blog_report(model, blog), "reddit": {},
                              "young_adults": {}}
    contrib: dict[str, Any] = {
        "blog account (all posts)": _mean_contrib(blog["account"]["contrib"]),
        "blog single post": _mean_contrib(blog["single_post"]["contrib"]),
        "blog 40 chat lines": _mean_contrib(blog["lines_40"]["contrib"]),
    }
    report_reddit: dict[str, dict[str, np.ndarray]] = {}
    for g, m in directions.items():
        others = [c for c in comments if reddit_group(c) not in ("other", g)]
        other = "+".join(x for x in REDDIT_GROUPS if x != g)
        log(f"scoring Reddit {g}->{other} ({len(others)} comments)")
        kept[g] = []
        r = score_reddit(m, others, keep=kept[g])
        report_reddit[f"{g}->{other}"] = r["account_10"]
        young = r["account_10"]["y"] == 0
        report["young_adults"][f"{g}->{other}"] = _flag_share(
            m, [st for st, yo in zip(kept[g], young, strict=True) if yo])
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
    report["domains"] = domain_rows(model, blog, report_reddit, nps, nus, log)
    report["targets"] = check_targets(report)
    if no_lexicon is not None:
        report["no_lexicon"] = no_lexicon_rows(
            no_lexicon, blog["account"], kept, report_reddit, nps, nus, log)
    if stacks is not None:
        from training.selection import compare

        report["selection"] = compare(
            model, directions, stacks, (kept["blog"], blog["account"]["y"]),
            {name: (kept[name.split("->")[0]], r["y"]) for name, r in report_reddit.items()},
            nps, nus, log)
    return report


def _flag_share(model: AgeModel, states: list[dict[str, Any]]) -> dict[str, Any]:
    """The share of ``states`` flagged at the service defaults (with a 90% interval)."""
    from training import domains as D

    at_defaults = model.with_calibration(DEFAULT_PREVALENCE, DEFAULT_REVIEW_THRESHOLD)
    flags = np.asarray([at_defaults.score(st).flagged for st in states], dtype=bool)
    return D.share_row(flags, list(range(len(states))))


def no_lexicon_rows(
    models: dict[str, AgeModel],
    blog_account: dict[str, np.ndarray],
    kept: dict[str, list[dict[str, Any]]],
    reddit: dict[str, dict[str, np.ndarray]],
    nps: list[dict[str, Any]] | None,
    nus: list[dict[str, Any]] | None,
    log: Log = lambda s: None,
) -> dict[str, Any]:
    """The domain rows of the models built without the lexicon (``models["shipped"]`` and
    one per Reddit direction): the same text models, so the states they hold are the lexicon
    model's states without the lexicon's sum (training.train.without_lexicon); chat is
    scored through the service path again."""
    from training.train import without_lexicon

    model = models["shipped"]
    base = model.with_calibration(model.prevalence_train)
    blog = {**blog_account, "z": np.asarray(
        [_log_odds(base, without_lexicon(st)) for st in kept["blog"]])}
    red = {}
    for name, r in reddit.items():
        g = name.split("->")[0]
        m = models[g].with_calibration(models[g].prevalence_train)
        red[name] = {**r, "z": np.asarray([_log_odds(m, without_lexicon(st))
                                           for st in kept[g]])}
    rows = domain_rows(model, {"account": blog}, red, nps, nus, log)
    return {"domains": rows, "targets": check_targets({"domains": rows})}


def domain_rows(
    model: AgeModel,
    blog: dict[str, dict[str, np.ndarray]] | None,
    reddit: dict[str, dict[str, np.ndarray]],
    nps: list[dict[str, Any]] | None,
    nus: list[dict[str, Any]] | None,
    log: Log = lambda s: None,
) -> dict[str, Any]:
    """Every domain row of training/domains.py with its bootstrap interval: blog authors'
    whole accounts (resampling authors), Reddit 10-comment stand-in accounts (resampling
    accounts), NPS Chat dev and NUS SMS through the service's state path (resampling posters
    and senders)."""
    from training import domains as D

    rows: dict[str, Any] = {}
    if blog is not None:
        acc = blog["account"]
        rows.update(D.blog_rows(acc["y"], acc["z"], list(acc["author"]), model.prevalence_train,
                                model.review_threshold))
    for name, r in reddit.items():
        rows[f"reddit_{name}_account_10"] = D.reddit_row(r["y"], r["z"])
    rows.update(D.chat_domains(model, nps, nus, log))
    return rows


def check_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every domain row with its target, interval and met / NOT met (None: not measured)."""
    from training import domains as D

    return D.check(report.get("domains") or {})


def format_targets(targets: list[dict[str, Any]]) -> str:
    from training import domains as D

    return D.format_rows(targets)


