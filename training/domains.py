"""Evaluation across domains, each figure with a bootstrap 90% interval that resamples people.

Chat-medium sets (``../shared/data/chat/``, see its README) are scored **the way the service
scores them**: every line is one ``message`` signal folded into the account's text-free state by
``AgeModel.update`` (one signal per call, in order), and the figure comes from ``AgeModel.score``
on that state at the model's own prevalence and review threshold (the service defaults, 2% and
0.5, unless the caller calibrated the model otherwise). Nothing is scored offline.

Rows (the issue's targets; ``agegate evaluate`` prints each with met / NOT met):

- blog test authors: ROC-AUC, and precision and recall at 2% prevalence at the default threshold;
- Reddit across communities: stand-in accounts of 10 comments of one community, scored by a
  model that never saw that group of communities (both directions; a floor);
- NPS Chat dev posters: records of 5+ lines, the teens' room against all other rooms, and against
  the 20s room only;
- NUS SMS senders: 16-20 against 26 and over, and the share of senders aged 21 and over the
  defaults flag (each of them is an adult: every flag is a false one);
- blog authors aged 18-24: absent (the corpus has no one aged 18-22), reported as such.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from agegate.model import AgeModel
from training.data import _shared_data

DEFAULT_NPS = _shared_data("chat", "nps_dev.jsonl.gz")
DEFAULT_NUS = _shared_data("chat", "nus_sms.jsonl.gz")
NPS_ENV = "AGEGATE_NPS_DATA"
NUS_ENV = "AGEGATE_NUS_DATA"
NPS_MIN_LINES = 5
NUS_NO_AGE = ("No response", "", None)


def nus_lower_age(age_range: str) -> int | None:
    """The lower end of a NUS age range ("16-20" -> 16, "41+" -> 41); None if unstated."""
    head = str(age_range).split("-")[0].rstrip("+").strip()
    return int(head) if head.isdigit() else None


BOOTSTRAP = 1000
LEVEL = 0.90
SEED = 19
# One fixed time for every chat line: the sets carry no dates, and a platform's posting days
# are no evidence the account model uses.
CHAT_AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

# (row key, what it is, target, direction): ">=" rows are met at or above the target, "<="
# rows at or below it. Met / NOT met is decided on the point estimate; the interval says how
# sure that is.
DOMAIN_TARGETS: tuple[tuple[str, str, float, str], ...] = (
    ("blog_roc_auc", "blog test authors: ROC-AUC", 0.965, ">="),
    ("blog_precision_2pct", "blog test authors: precision at 2% prevalence, defaults", 0.5,
     ">="),
    ("blog_recall_2pct", "blog test authors: recall at 2% prevalence, defaults", 0.6, ">="),
    ("reddit_A->B_account_10", "Reddit A->B 10-comment accounts: ROC-AUC (floor)", 0.95, ">="),
    ("reddit_B->A_account_10", "Reddit B->A 10-comment accounts: ROC-AUC (floor)", 0.95, ">="),
    ("nps_all_rooms", "NPS Chat dev, 5+ lines: teens' room vs all other rooms, ROC-AUC", 0.85,
     ">="),
    ("nps_teens_vs_20s", "NPS Chat dev, 5+ lines: teens' room vs 20s room, ROC-AUC", 0.80,
     ">="),
    ("nus_16_20_vs_26_plus", "NUS SMS: senders 16-20 vs 26+, ROC-AUC", 0.90, ">="),
    ("nus_21_plus_flagged", "NUS SMS: senders aged 21+ flagged at defaults (share)", 0.03,
     "<="),
    ("blog_18_24_flagged", "blog authors aged 18-24: share flagged", 0.03, "<="),
)
ABSENT = {"blog_18_24_flagged": "absent: the blog corpus has no authors aged 18-22 (ages "
                                "13-17 and 23-48 only), so this cannot be measured on blogs"}

Log = Callable[[str], None]


def _path(path: str | os.PathLike[str] | None, env: str, default: Path) -> Path:
    if path is not None:
        return Path(path)
    return Path(os.environ.get(env) or default)


def _read(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_nps(path: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """NPS Chat dev records ({"user", "session", "room", "label_minor", "posts"})."""
    return _read(_path(path, NPS_ENV, DEFAULT_NPS))


def load_nus(path: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """NUS SMS senders ({"author_id", "age_range", "country", "messages"})."""
    return _read(_path(path, NUS_ENV, DEFAULT_NUS))


def load_optional(nps: str | os.PathLike[str] | None = None,
                  nus: str | os.PathLike[str] | None = None,
                  ) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
    """Both chat sets, each None when its file is absent (its rows are then not measured)."""
    p, q = _path(nps, NPS_ENV, DEFAULT_NPS), _path(nus, NUS_ENV, DEFAULT_NUS)
    return (_read(p) if p.is_file() else None), (_read(q) if q.is_file() else None)


# ------------------------------------------------------------------------------ scoring


def service_state(model: AgeModel, texts: Sequence[str]) -> dict[str, Any]:
    """The account state the service holds after receiving ``texts`` as ``message`` signals,
    one per request, in order."""
    state = model.new_state()
    at = CHAT_AT.isoformat()
    for text in texts:
        state = model.update(state, [{"type": "message", "text": text, "at": at}])
    return state


def service_scores(model: AgeModel, accounts: Sequence[Sequence[str]]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(score, flagged) per account, as ``AgeModel.score`` gives them on the service state."""
    scores, flags = [], []
    for texts in accounts:
        s = model.score(service_state(model, texts))
        scores.append(s.score)
        flags.append(s.flagged)
    return np.asarray(scores, dtype=np.float64), np.asarray(flags, dtype=bool)


# ------------------------------------------------------------------------------ statistics


def roc_auc(y: np.ndarray, s: np.ndarray) -> float | None:
    """ROC-AUC with ties counted half (the Mann-Whitney statistic); None with one class."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float64)
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        return None
    from scipy.stats import rankdata

    r = rankdata(np.concatenate([pos, neg]))  # ties get their average rank
    rank_pos = r[: pos.size].sum()
    return float((rank_pos - pos.size * (pos.size + 1) / 2.0) / (pos.size * neg.size))


def _group_index(groups: Sequence[Any]) -> list[np.ndarray]:
    where: dict[Any, list[int]] = {}
    for i, g in enumerate(groups):
        where.setdefault(g, []).append(i)
    return [np.asarray(v) for v in where.values()]


def bootstrap(
    stat: Callable[[np.ndarray], float | None],
    groups: Sequence[Any],
    n_boot: int = BOOTSTRAP,
    level: float = LEVEL,
    seed: int = SEED,
) -> tuple[float | None, float | None]:
    """Percentile interval of ``stat(rows)`` over ``n_boot`` resamples of whole groups (people:
    every record of a drawn poster or author comes along, as often as the poster is drawn).
    Resamples where the statistic is undefined (one class only) are skipped."""
    idx = _group_index(groups)
    if not idx:
        return None, None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(idx), len(idx))
        rows = np.concatenate([idx[k] for k in pick])
        v = stat(rows)
        if v is not None:
            values.append(v)
    if not values:
        return None, None
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(values, [tail, 100.0 - tail])
    return round(float(lo), 4), round(float(hi), 4)


def auc_row(y: np.ndarray, s: np.ndarray, groups: Sequence[Any], **kw: Any) -> dict[str, Any]:
    y = np.asarray(y).astype(bool)
    point = roc_auc(y, s)
    lo, hi = bootstrap(lambda r: roc_auc(y[r], s[r]), groups, **kw)
    return {"value": None if point is None else round(point, 4), "interval": [lo, hi],
            "n": int(y.size), "positives": int(y.sum()), "people": len(set(groups))}


def share_row(flags: np.ndarray, groups: Sequence[Any], **kw: Any) -> dict[str, Any]:
    flags = np.asarray(flags).astype(bool)
    point = float(flags.mean()) if flags.size else None
    lo, hi = bootstrap(lambda r: float(flags[r].mean()), groups, **kw)
    return {"value": None if point is None else round(point, 4), "interval": [lo, hi],
            "n": int(flags.size), "flagged": int(flags.sum()), "people": len(set(groups))}


def at_prevalence(y: np.ndarray, flagged: np.ndarray, prevalence: float
                  ) -> tuple[float | None, float | None]:
    """(precision, recall) of ``flagged`` on a platform whose share of minors is
    ``prevalence``: recall and the adults' flag rate per class, mixed at the prevalence."""
    y = np.asarray(y).astype(bool)
    if not y.any() or y.all():
        return None, None
    tpr = float(flagged[y].mean())
    fpr = float(flagged[~y].mean())
    rate = prevalence * tpr + (1 - prevalence) * fpr
    return (prevalence * tpr / rate if rate else None), tpr


# ------------------------------------------------------------------------------ the domains


def nps_rows(model: AgeModel, records: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    """NPS Chat dev records of NPS_MIN_LINES or more lines, scored through the service path."""
    recs = [r for r in records if len(r["posts"]) >= NPS_MIN_LINES]
    scores, flags = service_scores(model, [r["posts"] for r in recs])
    y = np.asarray([bool(r["label_minor"]) for r in recs])
    users = [str(r["user"]) for r in recs]
    rooms = np.asarray([str(r["room"]) for r in recs])
    pair = np.isin(rooms, ["teens", "20s"])
    adults = ~y
    return {
        "nps_all_rooms": auc_row(y, scores, users, **kw),
        "nps_teens_vs_20s": auc_row(y[pair], scores[pair],
                                    [u for u, p in zip(users, pair, strict=True) if p], **kw),
        "nps_teens_room_flagged": share_row(flags[y], [u for u, t in zip(users, y, strict=True)
                                                       if t], **kw),
        "nps_other_rooms_flagged": share_row(flags[adults], [
            u for u, a in zip(users, adults, strict=True) if a], **kw),
        "nps_flagged_by_room": {room: {"records": int((rooms == room).sum()),
                                       "flagged": int(flags[rooms == room].sum())}
                                for room in sorted(set(rooms.tolist()))},
    }


def nus_rows(model: AgeModel, senders: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    """NUS SMS senders with a stated age range, scored through the service path."""
    recs = [r for r in senders if nus_lower_age(r.get("age_range") or "") is not None]
    scores, flags = service_scores(model, [r["messages"] for r in recs])
    ages = np.asarray([str(r["age_range"]) for r in recs])
    lower = np.asarray([nus_lower_age(a) for a in ages])
    ids = [str(r["author_id"]) for r in recs]
    young = lower < 21  # 16-20
    ranked = young | (lower >= 26)
    adult = lower >= 21
    return {
        "nus_16_20_vs_26_plus": auc_row(young[ranked], scores[ranked],
                                        [i for i, k in zip(ids, ranked, strict=True) if k], **kw),
        "nus_21_plus_flagged": share_row(flags[adult],
                                         [i for i, k in zip(ids, adult, strict=True) if k], **kw),
        "nus_16_20_flagged": share_row(flags[young],
                                       [i for i, k in zip(ids, young, strict=True) if k], **kw),
        "nus_flagged_by_age": {a: {"senders": int((ages == a).sum()),
                                   "flagged": int(flags[ages == a].sum())}
                               for a in sorted(set(ages.tolist()))},
    }


def blog_rows(y: np.ndarray, z: np.ndarray, authors: Sequence[Any], prevalence_train: float,
              threshold: float, prevalence: float = 0.02, **kw: Any) -> dict[str, Any]:
    """Blog test authors' whole accounts: ROC-AUC, and precision and recall at ``prevalence``
    with the score shifted to it and flagged at ``threshold`` (``z``: log-odds at the training
    prevalence, as training/evaluate.py computes them through the state path)."""
    from agegate.model import logit

    y = np.asarray(y).astype(bool)
    p = 1.0 / (1.0 + np.exp(-(np.asarray(z) + logit(prevalence) - logit(prevalence_train))))
    flagged = p >= threshold
    prec, rec = at_prevalence(y, flagged, prevalence)

    def stat(k: int) -> Callable[[np.ndarray], float | None]:
        return lambda r: at_prevalence(y[r], flagged[r], prevalence)[k]

    def row(value: float | None, k: int) -> dict[str, Any]:
        lo, hi = bootstrap(stat(k), authors, **kw)
        out: dict[str, Any] = {"value": None if value is None else round(value, 4),
                               "interval": [lo, hi],
               "n": int(y.size), "positives": int(y.sum()), "people": len(set(authors))}
        if value is None:
            out["note"] = "no account flagged at the defaults"
        return out

    return {"blog_roc_auc": auc_row(y, z, authors, **kw),
            "blog_precision_2pct": row(prec, 0), "blog_recall_2pct": row(rec, 1)}


def reddit_row(y: np.ndarray, z: np.ndarray, **kw: Any) -> dict[str, Any]:
    """Stand-in accounts have no authors: each account is resampled as one unit."""
    return auc_row(np.asarray(y), np.asarray(z), list(range(len(y))), **kw)


def check(rows: dict[str, Any]) -> list[dict[str, Any]]:
    """Every domain row with its target and whether it is met (None: not measured)."""
    out = []
    for key, name, target, direction in DOMAIN_TARGETS:
        row = rows.get(key) or {}
        value = row.get("value")
        if value is None:
            met = False if row.get("note") else None  # e.g. precision with nothing flagged
        else:
            met = value >= target if direction == ">=" else value <= target
        out.append({"key": key, "target": f"{name} {direction} {target}", "value": value,
                    "interval": row.get("interval"), "met": met,
                    "note": ABSENT.get(key, row.get("note", ""))})
    return out


def format_rows(checked: list[dict[str, Any]]) -> str:
    """One line per domain row: met / NOT met / not measured, value and 90% interval."""
    lines = []
    for t in checked:
        if t["met"] is None or t["value"] is None:
            status = "not measured" if t["met"] is None else "NOT met"
            detail = t["note"] or "no value"
        else:
            status = "met" if t["met"] else "NOT met"
            lo, hi = t["interval"] or (None, None)
            detail = f"{t['value']} (90% interval {lo} - {hi})"
        lines.append(f"{status:<12}  {t['target']}: {detail}")
    return "\n".join(lines)


def chat_domains(model: AgeModel, nps: list[dict[str, Any]] | None,
                 nus: list[dict[str, Any]] | None, log: Log = lambda s: None,
                 **kw: Any) -> dict[str, Any]:
    """NPS and NUS rows (either may be None: not measured)."""
    rows: dict[str, Any] = {}
    if nps:
        log(f"scoring NPS Chat dev ({len(nps)} records) through the service state path")
        rows.update(nps_rows(model, nps, **kw))
    if nus:
        log(f"scoring NUS SMS ({len(nus)} senders) through the service state path")
        rows.update(nus_rows(model, nus, **kw))
    return rows
