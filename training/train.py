"""End-to-end training: data -> author split -> text model -> account model -> thresholds on
validation -> artifact -> one evaluation on test authors -> card."""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from agegate import features as F
from agegate import model as M
from training import evaluate as E
from training.data import REPO_ROOT, bucket, data_path, iter_authors, label, split_authors

DEFAULT_OUT = REPO_ROOT / "model"
VOCAB_CANDIDATES = 5000  # most minor-indicative hashed columns that may be named
VOCAB_MIN_AUTHORS = 15  # an n-gram is a name only if this many training authors used it
MEDIUM_PRECISION = 0.80  # medium band starts where validation precision reaches this

Log = Callable[[str], None]


def _posts(authors: list[dict[str, Any]]) -> dict[str, Any]:
    texts, days, lengths, owner = [], [], [], []
    for i, a in enumerate(authors):
        for p in a["posts"]:
            t = F.normalize_text(p.get("text") or "")
            texts.append(t)
            days.append(F.to_date(p.get("date")))
            lengths.append(len(t))
            owner.append(i)
    return {"texts": texts, "days": days, "lengths": lengths, "owner": np.asarray(owner)}


def _hash(hasher: Any, texts: list[str], log: Log, what: str, chunk: int = 5000) -> sp.csr_matrix:
    parts = []
    for start in range(0, len(texts), chunk):
        parts.append(hasher.transform(texts[start : start + chunk]))
        log(f"  hashing {what}: {min(start + chunk, len(texts))}/{len(texts)} posts")
    return sp.vstack(parts).tocsr()


def _training_views(author_id: str, n: int) -> list[list[int]]:
    """Subsets of an author's posts the account model learns from: 1 post, 2-3, 4-8, all."""
    rng = random.Random(bucket(author_id) * 7919 + n)
    idx = list(range(n))
    views = [[rng.randrange(n)]]
    for lo, hi in ((2, 3), (4, 8)):
        if n >= lo:
            views.append(rng.sample(idx, rng.randint(lo, min(hi, n))))
    if n > 1:
        views.append(idx)
    return views


def _author_posts(
    authors: list[dict[str, Any]], posts: dict[str, Any]
) -> list[tuple[int, list[int]]]:
    """(author index, global post indices) of every author with posts; authors without any
    have nothing to learn from (and no view to draw)."""
    starts = np.searchsorted(posts["owner"], np.arange(len(authors)))
    return [
        (i, list(range(int(starts[i]), int(starts[i]) + len(a["posts"]))))
        for i, a in enumerate(authors)
        if a["posts"]
    ]


def _views(
    authors: list[dict[str, Any]], by_author: list[tuple[int, list[int]]]
) -> list[tuple[int, list[int]]]:
    """(author index, global post indices) of every training view of every author."""
    return [
        (i, [idx[j] for j in view])
        for i, idx in by_author
        for view in _training_views(str(authors[i]["author_id"]), len(idx))
    ]


def _pooled(groups: list[list[int]], U: sp.csr_matrix) -> sp.csr_matrix:
    """Each group's posts pooled as the account text model sees them: the sum of their
    unnormalised tf-idf rows, L1-normalised."""
    from sklearn.preprocessing import normalize

    rows = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    cols = np.concatenate([np.asarray(g, dtype=np.int64) for g in groups])
    S = sp.csr_matrix((np.ones(cols.size), (rows, cols)), shape=(len(groups), U.shape[0]))
    return normalize(S @ U, norm="l1")


def _account_matrix(
    authors: list[dict[str, Any]],
    posts: dict[str, Any],
    views: list[tuple[int, list[int]]],
    dec: np.ndarray,
    acc_dec: np.ndarray,
    mass: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    rows, ys = [], []
    for (i, view), a_dec in zip(views, acc_dec, strict=True):
        act = F.new_activity()
        for j in view:
            act = F.fold_activity(act, posts["days"][j], posts["lengths"][j])
        total = float(dec[view].sum())
        rows.append(
            F.account_vector(total, len(view), act, float(a_dec), float(mass[view].sum()))
        )
        ys.append(label(authors[i]))
    return np.asarray(rows), np.asarray(ys)


def _unnormalised(H: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """Sublinear tf * idf without the l2 step (what AgeModel._vector computes before it)."""
    U = H.astype(np.float64).tocsr(copy=True)
    U.data = np.log(U.data) + 1.0
    return (U @ sp.diags(idf)).tocsr()


def _vocabulary(
    analyzer: Callable[[str], list[str]],
    authors: list[dict[str, Any]],
    coef: np.ndarray,
) -> tuple[np.ndarray, list[str]]:
    """Name the most minor-indicative hashed columns by the n-gram, used by at least
    VOCAB_MIN_AUTHORS training authors, that most often lands in them."""
    word_coef = coef[: F.N_WORD_FEATURES]  # only word n-grams are named (readable)
    candidates = set(np.argsort(-word_coef)[:VOCAB_CANDIDATES].tolist())
    df: Counter[str] = Counter()
    for a in authors:
        toks: set[str] = set()
        for p in a["posts"]:
            toks.update(analyzer(F.normalize_text(p.get("text") or "")))
        df.update(toks)
    best: dict[int, tuple[int, str]] = {}
    for tok, count in df.items():
        if count < VOCAB_MIN_AUTHORS:
            continue
        idx = F.hashed_index(tok)
        if idx in candidates and (idx not in best or best[idx][0] < count):
            best[idx] = (count, tok)
    order = sorted(best)
    return np.asarray(order, dtype=np.int64), [f"text:{best[i][1]}" for i in order]


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def fit(
    authors: list[dict[str, Any]],
    log: Log = lambda s: None,
    vocab: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train on the train split, choose thresholds on validation. Returns (artifact, info)."""
    parts = split_authors(authors)
    train, val = parts["train"], parts["validation"]
    t0 = time.perf_counter()
    pipe = F.build_text_pipeline()
    hasher, tfidf, clf = (pipe.named_steps[k] for k in ("hash", "tfidf", "clf"))
    tr = _posts(train)
    ytr = np.asarray([label(train[o]) for o in tr["owner"]])
    log(f"train: {len(train)} authors / {len(tr['texts'])} posts")
    Htr = _hash(hasher, tr["texts"], log, "train")
    Ttr = tfidf.fit_transform(Htr)

    # Out-of-fold decisions (two folds by author) so the account model sees honest text scores.
    fold = np.asarray([bucket(str(train[o]["author_id"])) % 2 for o in tr["owner"]])
    oof = np.zeros(len(ytr))
    for k in (0, 1):
        m = F.build_text_pipeline().named_steps["clf"]
        m.fit(Ttr[fold != k], ytr[fold != k])
        oof[fold == k] = m.decision_function(Ttr[fold == k])
        log(f"  out-of-fold text model {k + 1}/2 fitted")
    clf.fit(Ttr, ytr)
    log(f"text model fitted ({time.perf_counter() - t0:.0f}s)")

    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    # Account text model: trained on whole training authors pooled; out-of-fold decisions on
    # every training view for the second stage, as for the message model.
    Utr = _unnormalised(Htr, tfidf.idf_)
    by_author = _author_posts(train, tr)
    whole = _pooled([idx for _, idx in by_author], Utr)
    ya_whole = np.asarray([label(train[i]) for i, _ in by_author])
    fold_a = np.asarray([bucket(str(train[i]["author_id"])) % 2 for i, _ in by_author])
    # The pooled rows have a small scale (L1 norm 1); the scale makes SGD's alpha comparable.
    scale = 1.0 / float(np.median(sp.linalg.norm(whole, axis=1)))
    views = _views(train, by_author)
    V = _pooled([v for _, v in views], Utr) * scale
    view_fold = np.asarray([bucket(str(train[i]["author_id"])) % 2 for i, _ in views])
    acc_oof = np.zeros(len(views))
    for k in (0, 1):
        m = F.build_account_text_model()
        m.fit(whole[fold_a != k] * scale, ya_whole[fold_a != k])
        acc_oof[view_fold == k] = m.decision_function(V[view_fold == k])
        log(f"  out-of-fold account text model {k + 1}/2 fitted")
    acc_text = F.build_account_text_model().fit(whole * scale, ya_whole)
    log(f"account text model fitted on {whole.shape[0]} authors")

    mass = np.asarray(Utr.sum(axis=1)).ravel()  # each post's |u|_1, as the state sums it
    Xa, ya = _account_matrix(train, tr, views, oof, acc_oof, mass)
    scaler = StandardScaler().fit(Xa)
    acc = LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(Xa), ya)
    log(f"account model fitted on {len(ya)} train views")

    if vocab:
        word_analyzer = hasher.transformer_list[0][1].build_analyzer()
        vocab_index, vocab_names = _vocabulary(word_analyzer, train, clf.coef_[0])
    else:
        vocab_index, vocab_names = np.zeros(0, dtype=np.int64), []
    log(f"vocabulary: {len(vocab_names)} named features")

    prevalence = float(np.mean([label(a) for a in train]))
    artifact: dict[str, Any] = {
        "version": "age-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S"),
        "text_pipeline": pipe,
        "account_features": list(F.ACCOUNT_FEATURES),
        # The scale is folded into the weights: decision = (w . sum u) / sum |u|_1 + b.
        "account_text_coef": acc_text.coef_[0] * scale,
        "account_text_intercept": float(acc_text.intercept_[0]),
        "account_mean": scaler.mean_,
        "account_scale": scaler.scale_,
        "account_coef": acc.coef_[0],
        "account_intercept": float(acc.intercept_[0]),
        "no_text_logit": _logit(prevalence),
        "vocab_index": vocab_index,
        "vocab_names": vocab_names,
        "review_threshold": 0.5,
        "band_thresholds": {"medium": 0.5, "high": 0.5},
    }

    # Thresholds on validation accounts (whole authors, up to 12 posts).
    model = M.AgeModel(artifact)
    vs = E.score_authors(model, val)["account"]
    _, review = E.recall_at_precision(vs["y"], vs["p"], E.PRECISION_TARGET)
    _, medium = E.recall_at_precision(vs["y"], vs["p"], MEDIUM_PRECISION)
    artifact["review_threshold"] = review
    artifact["band_thresholds"] = {"medium": min(medium, review), "high": review}
    log(f"thresholds on validation: review/high {review:.4f}, medium {medium:.4f}")
    info = {
        "split_sizes": {
            k: {"authors": len(v), "under_18": sum(label(a) for a in v)} for k, v in parts.items()
        },
        "train_posts": len(tr["texts"]),
        "account_train_views": len(ya),
        "prevalence_train": round(prevalence, 4),
        "vocab_size": len(vocab_names),
        "vocab_min_authors": VOCAB_MIN_AUTHORS,
        "validation_account": E.metrics(vs["y"], vs["p"], review),
        "fit_seconds": round(time.perf_counter() - t0, 1),
    }
    return artifact, info


def write_artifact(artifact: dict[str, Any], out_dir: Path) -> str:
    import zipfile

    import skops.io as sio

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / M.ARTIFACT_NAME
    sio.dump(artifact, path, compression=zipfile.ZIP_DEFLATED, compresslevel=6)
    return M.file_sha256(path)


def run(
    data: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Train, write model/ (artifact, card.json, MODEL_CARD.md), evaluate test once."""
    import sklearn

    from training.card import write_card

    t0 = time.perf_counter()
    out = Path(out_dir) if out_dir else DEFAULT_OUT
    src = data_path(data)
    log(f"loading {src}")
    authors = list(iter_authors(src))
    artifact, info = fit(authors, log)
    sha = write_artifact(artifact, out)
    size = (out / M.ARTIFACT_NAME).stat().st_size
    log(f"artifact written: {size / 1e6:.1f} MB, sha256 {sha[:12]}")
    card: dict[str, Any] = {
        "artifact": M.ARTIFACT_NAME,
        "sha256": sha,
        "size_bytes": size,
        "sklearn_version": sklearn.__version__,
        "version": artifact["version"],
        "review_threshold": artifact["review_threshold"],
        "band_thresholds": artifact["band_thresholds"],
        "threshold_rule": {
            "review_and_high": f"lowest score with validation account precision >= "
            f"{E.PRECISION_TARGET}",
            "medium": f"lowest score with validation account precision >= {MEDIUM_PRECISION}",
        },
        "data": {"file": src.name, "split_key": "sha256('agegate-split-v1:' + author_id) % 100",
                 "split_buckets": {"train": "0-69", "validation": "70-84", "test": "85-99"}},
        **info,
    }
    (out / M.CARD_NAME).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    model = M.load_model(out)
    test = split_authors(authors)["test"]
    log(f"evaluating {len(test)} test authors (touched once)")
    card["test"] = E.full_report(E.score_authors(model, test), model.review_threshold)
    card["train_seconds"] = round(time.perf_counter() - t0, 1)
    (out / M.CARD_NAME).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    write_card(card, out / "MODEL_CARD.md")
    log(f"done in {card['train_seconds']}s")
    return card
