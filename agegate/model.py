"""Scoring library: load the trained artifact and score accounts from a small, text-free state.

Contract used by the HTTP service::

    model = load_model("model/")
    state = model.update(None, signals)     # pure; returns a new JSON-serialisable state
    result = model.score(state)             # Score(score, band, flagged, top_signals)

How a score is made (details and reasons in ``model/MODEL_CARD.md``):

1. Text signals are scored one by one by a linear text model (learned). The state keeps the sum
   and count of the per-message decision values, plus a bounded top-k of ids of named
   vocabulary n-grams that pushed it up — only n-grams the message itself contained.
2. An account text model (learned, linear) scores the account's text pooled: the sum of its
   messages' unnormalised tf-idf vectors u, L1-normalised. Its decision is
   ``sum(w . u) / sum(|u|_1) + b``, so the state keeps the two sums, not the vectors.
3. The age lexicon (Sap et al. 2014, unless built with ``--no-lexicon``) is linear in word
   counts: the state keeps sum(weight * count) and the token count.
4. A small second-stage logistic regression (learned) combines the mean decision, the pooled
   decision, the lexicon's predicted age, the amount of text and active-day shares into
   log-odds calibrated to the training share of minors; they are shifted exactly to the
   platform's prevalence (``logit(prevalence) - logit(prevalence_train)``).
5. Platform signals without labelled data add stated log-odds adjustments (:data:`RULES`,
   assumptions, not learned).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils import murmurhash3_32

from agegate import features as F

ARTIFACT_NAME = "model.skops"
CARD_NAME = "card.json"
STATE_VERSION = 2
DEFAULT_PREVALENCE = 0.02  # AGEGATE_MINOR_PREVALENCE
DEFAULT_REVIEW_THRESHOLD = 0.5  # AGEGATE_REVIEW_THRESHOLD
MEDIUM_FRACTION = 0.5  # the medium band starts at this fraction of the review threshold
LEXICON_REASON = "lexicon:age_words"
TOP_K = 8  # vocabulary features kept per account for explanations
TOP_SIGNALS = 5  # returned by score()

# Every type the artifact may contain. Loading refuses anything else (no trust=True, no pickle).
TRUSTED_TYPES = (
    "builtins.dict",
    "builtins.list",
    "builtins.str",
    "builtins.float",
    "builtins.int",
    "builtins.tuple",
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
    "numpy.ndarray",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn.feature_extraction.text.HashingVectorizer",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.linear_model._stochastic_gradient.SGDClassifier",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.pipeline.Pipeline",
)


@dataclass(frozen=True)
class Rule:
    """A log-odds adjustment for a platform signal that has no labelled training data."""

    name: str
    per_event: float
    cap: float  # total adjustment never goes beyond this (same sign as per_event)
    reason: str


# Assumptions, not learned from labels. Reviewed by humans; every value is stated in the card.
RULES: tuple[Rule, ...] = (
    Rule(
        "reports:suspected_minor",
        1.0,
        2.0,
        "Another user reported the account as a suspected minor. Reports are noisy and can be "
        "abused, so each adds +1.0 log-odds and all reports together at most +2.0.",
    ),
    Rule(
        "age_gate:redeclaration",
        1.0,
        1.5,
        "The account retried the age gate with a different birth date, a common way for "
        "under-age users to get past it. +1.0 for the first, at most +1.5 in total.",
    ),
    Rule(
        "account:dob_change",
        0.4,
        0.8,
        "The date of birth was changed after sign-up. Adults also correct typos, so the "
        "adjustment is small: +0.4 each, at most +0.8.",
    ),
    Rule(
        "payment:gift_card",
        0.3,
        0.3,
        "Gift cards are a typical payment method for people who cannot hold a card. Applied "
        "once (+0.3) however often used.",
    ),
    Rule(
        "payment:prepaid_card",
        0.3,
        0.3,
        "Prepaid cards are widely sold to teenagers. Applied once (+0.3).",
    ),
    Rule(
        "payment:card",
        -0.5,
        -0.5,
        "A debit/credit card in the account holder's name usually requires an adult (or a "
        "parent's consent). Applied once (-0.5); it lowers the score, never raises it.",
    ),
)
# Signals deliberately given NO adjustment, with the reason (also printed in the card).
NO_ADJUSTMENT = {
    "session": "Sessions carry full timestamps, but without the user's time zone the hour of "
    "day is not a reliable school-hours signal, and total use time is not age-specific. "
    "Counted in the state for future labelled training, no score effect.",
    "payment:wallet": "Wallets are used by all ages.",
    "payment:none": "No information.",
    "report:other": "Reports with other reasons say nothing about age.",
}


class ModelLoadError(Exception):
    """The model directory is missing files, was tampered with, or needs another sklearn."""


@dataclass(frozen=True)
class Score:
    score: float
    band: str
    flagged: bool
    top_signals: list[dict[str, Any]]


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def rule_adjustments(plat: dict[str, Any]) -> list[tuple[str, float]]:
    """(rule name, log-odds) for every rule that fires on the platform counters."""
    counts = {
        "reports:suspected_minor": plat["reports"].get("suspected_minor", 0),
        "age_gate:redeclaration": plat["redeclaration"],
        "account:dob_change": plat["dob_change"],
        "payment:gift_card": plat["payment"].get("gift_card", 0),
        "payment:prepaid_card": plat["payment"].get("prepaid_card", 0),
        "payment:card": plat["payment"].get("card", 0),
    }
    out = []
    for rule in RULES:
        n = counts[rule.name]
        if n:
            total = n * rule.per_event
            total = min(total, rule.cap) if rule.cap >= 0 else max(total, rule.cap)
            out.append((rule.name, total))
    return out


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


class AgeModel:
    """A loaded artifact. Thread-safe and stateless: all per-account data lives in ``state``.

    ``prevalence`` is the platform's share of minor accounts: the learned log-odds (calibrated
    to the share of minors the account model was trained on) are shifted by
    ``logit(prevalence) - logit(prevalence_train)`` (Bayes' rule for a change of prior), so
    ``score`` is the probability on the platform. ``flagged`` is ``score >= review_threshold``.
    """

    def __init__(
        self,
        artifact: dict[str, Any],
        sha256: str = "",
        sklearn_version: str = "",
        prevalence: float = DEFAULT_PREVALENCE,
        review_threshold: float = DEFAULT_REVIEW_THRESHOLD,
    ):
        if not 0.0 < prevalence < 1.0 or not 0.0 < review_threshold < 1.0:
            raise ValueError("prevalence and review_threshold must lie strictly between 0 and 1")
        self.sha256 = sha256
        self.sklearn_version = sklearn_version
        self.version = str(artifact["version"])
        self.prevalence_train = float(artifact["prevalence_train"])
        self.prevalence = float(prevalence)
        self.review_threshold = float(review_threshold)
        self.band_thresholds = {"medium": MEDIUM_FRACTION * self.review_threshold,
                                "high": self.review_threshold}
        self._shift = logit(self.prevalence) - logit(self.prevalence_train)
        self.text_pipeline = artifact["text_pipeline"]
        union = self.text_pipeline.named_steps["hash"]
        tfidf = self.text_pipeline.named_steps["tfidf"]
        # (analyzer, column offset, n_features) per hashing block of the FeatureUnion; the
        # first block is the word block (its tokens are the n-grams the vocabulary names).
        self._blocks: list[tuple[Any, int, int]] = []
        offset = 0
        for _, hasher in union.transformer_list:
            if hasher.alternate_sign or hasher.norm is not None:
                raise ModelLoadError("artifact's text pipeline differs from the supported layout")
            self._blocks.append((hasher.build_analyzer(), offset, int(hasher.n_features)))
            offset += int(hasher.n_features)
        self._idf = np.asarray(tfidf.idf_, dtype=np.float64)
        self._sublinear = bool(tfidf.sublinear_tf)
        if tfidf.norm != "l2" or union.transformer_weights:
            raise ModelLoadError("artifact's text pipeline differs from the supported layout")
        clf = self.text_pipeline[-1]
        self._w = np.asarray(clf.coef_[0], dtype=np.float64)
        self._b = float(clf.intercept_[0])
        self._aw = np.asarray(artifact["account_text_coef"], dtype=np.float64)
        self._ab = float(artifact["account_text_intercept"])
        if self._aw.shape != self._w.shape:
            raise ModelLoadError("artifact's account text model has the wrong width")
        self.account_features = tuple(artifact["account_features"])
        if self.account_features != F.ACCOUNT_FEATURES:
            raise ModelLoadError("artifact's account features differ from this code's")
        self._acc_mean = np.asarray(artifact["account_mean"], dtype=np.float64)
        self._acc_scale = np.asarray(artifact["account_scale"], dtype=np.float64)
        self._acc_coef = np.asarray(artifact["account_coef"], dtype=np.float64)
        self._acc_intercept = float(artifact["account_intercept"])
        # Age lexicon (absent in a --no-lexicon model): token -> weight.
        terms = list(artifact["lexicon_terms"])
        self.uses_lexicon = bool(terms)
        self._lexicon = dict(
            zip(terms, np.asarray(artifact["lexicon_weights"], dtype=np.float64).tolist(),
                strict=True)
        )
        # Named vocabulary: n-gram -> (vocabulary id, hashed column). Ids are positions in
        # vocab_names; the state keeps ids only, and only of n-grams a message contained.
        self.vocab_names = [str(v) for v in artifact["vocab_names"]]
        cols = np.asarray(artifact["vocab_index"], dtype=np.int64).tolist()
        self._vocab_ids = {name: (i, c) for i, (name, c) in enumerate(
            zip(self.vocab_names, cols, strict=True))}
        # A state's sums are on its text models' scale: a recalibration (a new second stage
        # over the same text models) keeps ``text_version``, so stored states stay valid; a
        # full retrain gets a new one, and states from the old one lose their text part.
        self.text_version = str(artifact.get("text_version") or self.version)
        self.recalibrated_at = artifact.get("recalibrated_at")
        self._state_model = self.text_version

    def text_signature(self) -> str:
        """A digest of everything a state's text part is computed with: the hashing layout,
        the idf, both text models' weights, the lexicon and the named vocabulary. Two models
        with the same signature put the same sums and vocabulary ids into a state."""
        h = hashlib.sha256()
        union = self.text_pipeline.named_steps["hash"]
        layout = [(name, hasher.get_params()) for name, hasher in union.transformer_list]
        h.update(json.dumps([layout, self._sublinear, self._b, self._ab], sort_keys=True,
                            default=str).encode())
        for arr in (self._idf, self._w, self._aw):
            h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
        h.update(json.dumps([sorted(self._lexicon.items()),
                             sorted(self._vocab_ids.items())]).encode())
        return h.hexdigest()

    def with_calibration(self, prevalence: float, review_threshold: float | None = None
                         ) -> AgeModel:
        """The same model calibrated to another platform prevalence (and threshold)."""
        other = copy.copy(self)
        threshold = self.review_threshold if review_threshold is None else review_threshold
        if not 0.0 < prevalence < 1.0 or not 0.0 < threshold < 1.0:
            raise ValueError("prevalence and review_threshold must lie strictly between 0 and 1")
        other.prevalence, other.review_threshold = float(prevalence), float(threshold)
        other.band_thresholds = {"medium": MEDIUM_FRACTION * threshold, "high": threshold}
        other._shift = logit(other.prevalence) - logit(self.prevalence_train)
        return other

    def reason_names(self) -> set[str]:
        """Every name ``top_signals`` can contain."""
        return ({f"text:{v}" for v in self.vocab_names} | {r.name for r in RULES}
                | {f"activity:{f}" for f in F.ACTIVITY_FEATURES if f in F.ACCOUNT_FEATURES}
                | {LEXICON_REASON})

    # ------------------------------------------------------------------------------ state

    def new_state(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "m": self._state_model,
            "n": 0,
            "sd": 0.0,
            "sa": 0.0,
            "sl": 0.0,
            "lx": 0.0,
            "lw": 0,
            "top": [],
            "act": F.new_activity(),
            "plat": F.new_platform(),
        }

    def _copy_state(self, state: dict[str, Any] | None) -> dict[str, Any]:
        """A deep copy of ``state`` on this model's scale. State written by another model
        version (or an older state layout) keeps its platform counters; its text part (sums
        on another model's scale, vocabulary ids of another vocabulary) is reset."""
        fresh = self.new_state()
        if not isinstance(state, dict) or not isinstance(state.get("plat"), dict):
            return fresh
        plat = state["plat"]
        fresh["plat"] = {**F.new_platform(), **plat, "payment": dict(plat.get("payment", {})),
                         "reports": dict(plat.get("reports", {}))}
        if state.get("v") != STATE_VERSION or state.get("m") != self._state_model:
            return fresh
        return {
            **state,
            "top": [list(t) for t in state["top"]],
            "act": dict(state["act"]),
            "plat": fresh["plat"],
        }

    def text_records(
        self, texts: list[str]
    ) -> tuple[np.ndarray, list[list[tuple[int, float]]], np.ndarray]:
        """Per message: the text model's decision value; its top-k positive contributions of
        named vocabulary n-grams that the message itself contains, as (vocabulary id,
        w_j * x_j); and four sums — the account text model's (w_a . u, |u|_1) for the
        unnormalised vector u, and the lexicon's (sum of weight * count, token count).
        ``texts`` must already be normalised."""
        dec = np.empty(len(texts))
        sums = np.zeros((len(texts), 4))
        tops: list[list[tuple[int, float]]] = []
        lex = self._lexicon
        for i, text in enumerate(texts):
            idx, x, norm, words = self._vector(text)
            w = self._w[idx]
            dec[i] = float(x @ w) + self._b
            # u = x * norm (tf-idf before the l2 step); u >= 0, so |u|_1 = sum(u).
            sums[i, 0] = float(x @ self._aw[idx]) * norm
            sums[i, 1] = float(x.sum()) * norm
            toks = F.lexicon_tokens(text)
            if lex:
                sums[i, 2] = sum(lex.get(t, 0.0) for t in toks)
            sums[i, 3] = len(toks)
            found: list[tuple[int, float]] = []
            for gram in set(words):
                hit = self._vocab_ids.get(gram)
                if hit is None:
                    continue
                j = int(np.searchsorted(idx, hit[1]))
                c = float(x[j] * w[j])
                if c > 0:
                    found.append((hit[0], c))
            found.sort(key=lambda t: t[1], reverse=True)
            tops.append(found[:TOP_K])
        return dec, tops, sums

    def _vector(self, text: str) -> tuple[np.ndarray, np.ndarray, float, list[str]]:
        """Column indices and values of one message, exactly as ``text_pipeline[:-1]`` would
        compute them (hash counts -> sublinear tf * idf -> l2), without sklearn's per-call
        overhead (a test checks the equality on real posts), the l2 norm divided out, and
        the word block's n-grams."""
        parts = []
        words: list[str] = []
        for k, (analyzer, offset, n) in enumerate(self._blocks):
            toks = analyzer(text)
            if k == 0:
                words = toks
            h = np.fromiter(
                (murmurhash3_32(t, seed=0, positive=False) for t in toks),
                dtype=np.int64,
                count=len(toks),
            )
            parts.append(offset + np.abs(h) % n)
        cols = np.concatenate(parts)
        if cols.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0), 0.0, words
        idx, counts = np.unique(cols, return_counts=True)
        tf = counts.astype(np.float64)
        if self._sublinear:
            tf = np.log(tf) + 1.0
        x = tf * self._idf[idx]
        norm = math.sqrt(float(x @ x))
        return idx, (x / norm if norm > 0 else x), norm, words

    @staticmethod
    def fold_text(
        state: dict[str, Any],
        decision: float,
        top: list[tuple[int, float]],
        day: Any,
        sums: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
    ) -> None:
        """Add one scored text message to ``state`` (in place; callers pass their own copy)."""
        state["n"] += 1
        # Each term is rounded before it is added, so the sums come out the same whatever
        # order the messages arrive in (two workers may take one account's out of order).
        state["sd"] = round(state["sd"] + round(float(decision), 6), 6)
        state["sa"] = round(state["sa"] + round(float(sums[0]), 6), 6)
        state["sl"] = round(state["sl"] + round(float(sums[1]), 6), 6)
        state["lx"] = round(state["lx"] + round(float(sums[2]), 4), 4)
        state["lw"] = int(state["lw"] + int(sums[3]))
        if top:
            merged = {int(i): float(c) for i, c in state["top"]}
            for i, c in top:
                merged[i] = merged.get(i, 0.0) + c
            best = sorted(merged.items(), key=lambda kv: kv[1], reverse=True)[:TOP_K]
            state["top"] = [[i, round(c, 4)] for i, c in best]
        state["act"] = F.fold_activity(state["act"], day)

    def update(self, state: dict[str, Any] | None, signals: list[dict[str, Any]]) -> dict[str, Any]:
        """Return a new state with ``signals`` folded in (the input state is not modified)."""
        new = self._copy_state(state)
        text_signals = [s for s in signals if s.get("type") in F.TEXT_TYPES]
        if text_signals:
            texts = [F.normalize_text(s.get("text") or "") for s in text_signals]
            dec, tops, sums = self.text_records(texts)
            for s, d, top, a in zip(text_signals, dec, tops, sums, strict=True):
                self.fold_text(new, d, top, F.to_date(s.get("at")),
                               (a[0], a[1], a[2], a[3]))
        plat = new["plat"]
        for s in signals:
            if s.get("type") not in F.TEXT_TYPES:
                plat = F.fold_platform(plat, s)
        new["plat"] = plat
        return new

    # ------------------------------------------------------------------------------ scoring

    def account_vector(self, state: dict[str, Any]) -> list[float]:
        """The second-stage features of ``state`` (order of ``features.ACCOUNT_FEATURES``)."""
        return F.account_vector(
            state["sd"], state["n"], state["act"], self.account_text_decision(state),
            float(state["sl"]), float(state["lx"]), float(state["lw"]),
        )

    def on_scale(self, state: dict[str, Any] | None) -> bool:
        """Whether ``state``'s text part was scored by this model's text models."""
        return (isinstance(state, dict) and state.get("v") == STATE_VERSION
                and state.get("m") == self._state_model)

    def feedback_vector(self, state: dict[str, Any] | None) -> list[float] | None:
        """The second-stage features the model scores ``state`` by, or None when the state
        holds no text on this model's scale (numbers only: no vocabulary ids, no text)."""
        if not self.on_scale(state) or not state or not state.get("n"):
            return None
        return [float(v) for v in self.account_vector(state)]

    def _account(self, state: dict[str, Any]) -> tuple[float, np.ndarray]:
        """Learned log-odds at the training prevalence and per-feature contributions
        (coef * standardised feature)."""
        if state["n"] == 0:
            return logit(self.prevalence_train), np.zeros_like(self._acc_coef)
        x = np.asarray(self.account_vector(state), dtype=np.float64)
        contrib = self._acc_coef * (x - self._acc_mean) / self._acc_scale
        return self._acc_intercept + float(contrib.sum()), contrib

    def account_text_decision(self, state: dict[str, Any]) -> float:
        """The account text model's decision on the account's pooled text (0 without text)."""
        sl = float(state["sl"])
        return float(state["sa"]) / sl + self._ab if sl > 0 else 0.0

    def band_of(self, score: float) -> str:
        if score >= self.band_thresholds["high"]:
            return "high"
        if score >= self.band_thresholds["medium"]:
            return "medium"
        return "low"

    def score(self, state: dict[str, Any]) -> Score:
        if state.get("v") != STATE_VERSION or state.get("m") != self._state_model:
            state = self._copy_state(state)  # score() never modifies ``state`` either way
        logit_train, contrib = self._account(state)
        z = logit_train + self._shift
        signals: list[tuple[str, float]] = []
        n = state["n"]
        if n:
            feats = F.ACCOUNT_FEATURES
            c, sc = self._acc_coef, self._acc_scale
            # d(log-odds) / d(mean message decision): the message-model features are that
            # mean times a factor of the amount of text (F.MEAN_FEATURES).
            factors = F.mean_factors(float(state["lw"]), int(n))
            slope = sum(c[feats.index(f)] / sc[feats.index(f)] * factors[f]
                        for f in F.MEAN_FEATURES if f in feats)
            for vid, cv in state["top"]:
                if 0 <= int(vid) < len(self.vocab_names):
                    signals.append((f"text:{self.vocab_names[int(vid)]}", slope * cv / n))
            if self.uses_lexicon:
                lex = sum(float(contrib[i]) for i, f in enumerate(feats)
                          if f.startswith("lexicon_"))
                signals.append((LEXICON_REASON, lex))
            if state["act"]["nd"] >= F.ACTIVITY_MIN_DAYS:
                for fname in F.ACTIVITY_FEATURES:
                    if fname in feats:
                        signals.append((f"activity:{fname}",
                                        float(contrib[feats.index(fname)])))
        for name, adj in rule_adjustments(state["plat"]):
            z += adj
            signals.append((name, adj))
        p = _sigmoid(z)
        top = sorted((s for s in signals if s[1] > 0), key=lambda s: s[1], reverse=True)
        return Score(
            score=p,
            band=self.band_of(p),
            flagged=p >= self.review_threshold,
            top_signals=[{"name": k, "weight": round(float(v), 4)} for k, v in top[:TOP_SIGNALS]],
        )


# ---------------------------------------------------------------------------------- loading


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def artifact_types(path: str | os.PathLike[str]) -> set[str]:
    """Every ``module.Class`` named in a skops file's schema (read without loading it)."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        schema = json.loads(zf.read("schema.json"))
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__class__" in node:
                found.add(f"{node.get('__module__', '')}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def load_model(
    model_dir: str | os.PathLike[str],
    prevalence: float = DEFAULT_PREVALENCE,
    review_threshold: float = DEFAULT_REVIEW_THRESHOLD,
) -> AgeModel:
    """Load ``model_dir`` (card.json + model.skops), verifying the artifact's sha256 and the
    scikit-learn version recorded in the card, calibrated to the platform's ``prevalence`` of
    minor accounts and flagging at ``review_threshold``. Raises :class:`ModelLoadError`."""
    import sklearn
    import skops.io as sio

    d = Path(model_dir)
    card_path, art_path = d / CARD_NAME, d / ARTIFACT_NAME
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot read {card_path}: {e}") from e
    if not art_path.is_file():
        raise ModelLoadError(f"missing artifact {art_path}")
    expected = card.get("sha256")
    actual = file_sha256(art_path)
    if not expected or actual != expected:
        raise ModelLoadError(f"sha256 mismatch for {art_path}: card {expected}, file {actual}")
    if card.get("sklearn_version") != sklearn.__version__:
        raise ModelLoadError(
            f"model needs scikit-learn {card.get('sklearn_version')}, "
            f"running {sklearn.__version__}"
        )
    try:
        types = artifact_types(art_path)
        unexpected = sorted(types - set(TRUSTED_TYPES))
        if unexpected:
            raise ModelLoadError(f"artifact contains types outside the allowlist: {unexpected}")
        # Trust exactly the (allowlisted) types the file declares; skops refuses anything else.
        artifact = sio.load(art_path, trusted=sorted(types))
    except ModelLoadError:
        raise
    except Exception as e:  # skops raises many kinds on corrupt files
        raise ModelLoadError(f"cannot load {art_path}: {e}") from e
    if not isinstance(artifact, dict) or artifact.get("version") != card.get("version"):
        raise ModelLoadError("artifact and card.json disagree on the model version")
    try:
        return AgeModel(artifact, sha256=actual, sklearn_version=sklearn.__version__,
                        prevalence=prevalence, review_threshold=review_threshold)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelLoadError(f"artifact {art_path} does not fit this code: {e}") from e
