"""Signal -> feature extraction, shared by training and the service (one source of truth).

Nothing here loads anything at import time. Three kinds of features:

* text: every text signal (message, profile_text, message_board_post) is normalised with
  :func:`normalize_text` and run through the pipeline built by :func:`build_text_pipeline`
  (hashed word 1-2-grams and case-sensitive char_wb 3-4-grams, sublinear tf-idf, l2 per
  message, linear classifier). The text model is linear, so the per-account state keeps only a
  running sum of per-message decision values. A second linear model, the *account text model*,
  scores an account's text pooled: the sum of its messages' (unnormalised) tf-idf vectors
  divided by that sum's L1 norm. Both the numerator's dot product and the L1 norm are sums over
  messages, so the state keeps two more running sums (see ``agegate.model``), never the
  vectors.
* lexicon: the age lexicon of Sap et al. (2014) is linear in word counts, so an account keeps
  two running sums (sum of weight * count over its :func:`lexicon_tokens`, and the token count).
* activity (learned from the corpus' day-level dates): weekend share, summer share,
  winter-break share of the account's active days. They are accumulated in a few counters by
  :func:`fold_activity` and turned into a vector by :func:`activity_vector`.
* platform rules (no labelled data): counters kept by :func:`fold_platform`; the log-odds
  adjustments themselves live in ``agegate.model.RULES``.

Nothing in the state is text or derived from a substring of it except ids of the model's
shipped vocabulary of n-grams, kept only for n-grams the account's messages contained (see
``agegate.model``).
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any

TEXT_TYPES = frozenset({"message", "profile_text", "message_board_post"})
PAYMENT_METHODS = ("card", "prepaid_card", "gift_card", "wallet", "none")
REPORT_REASONS = ("suspected_minor",)  # other reasons are counted under "other"

# Corpus posts are cut at 1,500 characters; service text is cut the same way so that a long
# message is represented as the model saw long posts during training.
MAX_TEXT_CHARS = 1500
N_WORD_FEATURES = 2**20
N_CHAR_FEATURES = 2**20
N_TEXT_FEATURES = N_WORD_FEATURES + N_CHAR_FEATURES
WORD_NGRAMS = (1, 2)
# Word tokens: every run of word characters, one letter long included ("u", "r", "i"), and
# every run of punctuation ("!!!", ":)", "?"). scikit-learn's default pattern drops both;
# chat carries much of a writer's age in them. With this pattern the message model's single
# Reddit comment ROC-AUC across communities rose from 0.798 to 0.804 (A->B) and 0.793 to
# 0.800 (B->A), and blog validation single posts from 0.881 to 0.884 (word 1-3-grams with it:
# lower on both Reddit directions).
WORD_TOKEN_PATTERN = r"(?u)\b\w+\b|[^\w\s]+"
CHAR_NGRAMS = (3, 4)
# SGD logistic regression on hashed word 1-2-grams + char_wb 3-4-grams, sublinear tf-idf, l2
# per message. Chosen on the validation split: char_wb 3-4-grams added ~+0.005 account ROC-AUC
# over words alone; char_wb 2-4 cost far more to vectorise (scoring throughput) for no gain;
# word 1-3-grams, NB scaling, training the message model on author-level rows, extra
# aggregate statistics (vote share, mean probability, spread), length-weighted means (+0.001), word
# tokens keeping punctuation (on blog accounts alone; on chat-length text they help, see
# WORD_TOKEN_PATTERN), and activity features from every post date did not help.
SGD_ALPHA = 1e-6
SGD_EPOCHS = 10
# Account text model (pooled text per account, a model of its own beside the message model).
# On validation it lifted account ROC-AUC from 0.966 to 0.972 and recall at precision 0.95
# from 0.81 to 0.83; alpha 1e-5 was worse, liblinear (C=100) no better and 4x slower.
ACCOUNT_SGD_ALPHA = 3e-6
ACCOUNT_SGD_EPOCHS = 30
# tf-idf L1 mass at which the pooled decision counts half: about one 550-character post (a
# 45-character chat line has ~250, the median corpus account of up to 12 posts ~50,000).
ACCOUNT_TEXT_HALF_MASS = 5000.0

_URL_RE = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)

# Activity is counted per *active day* (a day on which the account wrote, counted once however
# many messages it wrote that day), so a chat user's forty lines on a Saturday weigh like one
# blog post on a Saturday. Posting rate and post length are not features any more: learned on
# blogs, they dominated chat scores, where a platform's rhythm and message length differ.
ACTIVITY_FEATURES = (
    "weekend_share",
    "summer_share",
    "winter_break_share",
)
# Activity features are named as reasons only with at least this many active days.
ACTIVITY_MIN_DAYS = 7
# Account-level (second stage) features: the text model's mean decision over the account's
# messages, weighed by the length of its messages (see mean_factors) and its interaction with
# log(1 + words), log(1 + words), the account text model's decision on the account's text pooled
# (and its interaction), and the age lexicon's predicted age deviation (shrunk for few words).
# The amount of text is measured in words, not messages: a blog post and a chat line differ
# 50-fold.
# Chosen by the worst domain (issue 19; model card, "How it was chosen"): the activity shares
# (weekend, summer, winter break) and the lexicon's interaction with the amount of text are no
# longer features. The activity shares won only on blogs, whose posting days are no evidence on
# a chat platform; the state still counts active days (its layout is unchanged).
ACCOUNT_FEATURES = (
    "text_mean_by_length",
    "text_mean_by_length_x_log_words",
    "log_words",
    "account_text_decision",
    "account_text_x_log_words",
    "lexicon_age",
)
# The message-model features: the mean message decision times a factor of the amount of text
# (see mean_factors); the service names n-gram reasons by this derivative.
MEAN_FEATURES = ("text_mean_by_length", "text_mean_by_length_x_log_words")
# Words per message at which the message model's mean counts half (issue 19, idea 3: shrink the
# per-message mean for short-message accounts). The message model learned from blog posts and
# Reddit comments; on chat lines of a few words its mean ranks chat-room posters below a coin
# (NPS Chat dev: 0.47 teens' room vs all other rooms, 0.40 vs the 20s room) while the lexicon
# ranks them at 0.80 / 0.68. So the mean is weighed by wpm / (wpm + 5): a chat line of 4 words
# counts 0.44, a text message of 10 words 0.67, a Reddit comment of 20-50 words 0.8-0.9, a blog
# post of 200 words 0.98. The training views cannot fit this factor (they hold no accounts of
# chat lines), so it is fixed; 4, 6 and 8 words gave the same figures (model card, "How it was
# chosen").
MEAN_HALF_WORDS_PER_MESSAGE = 5.0
# Layout of the account features, kept with each feedback example: `agegate recalibrate` uses
# only examples taken under this layout (older ones hold other features).
ACCOUNT_LAYOUT = "issue19-length-weighted-mean"


def length_weight(words: float, n: int,
                  half: float | None = MEAN_HALF_WORDS_PER_MESSAGE) -> float:
    """wpm / (wpm + ``half``) for an account of ``n`` text messages and ``words`` lexicon
    tokens (0 without messages; 1 when ``half`` is None, the unweighted mean)."""
    if n <= 0:
        return 0.0
    if half is None:
        return 1.0
    wpm = max(words, 0.0) / n
    return wpm / (wpm + half)


def mean_factors(words: float, n: int) -> dict[str, float]:
    """d(feature) / d(mean message decision) for each of :data:`MEAN_FEATURES`."""
    g = length_weight(words, n)
    return {"text_mean_by_length": g,
            "text_mean_by_length_x_log_words": g * math.log1p(max(words, 0.0))}


# Laplace-style priors so that one or two active days do not give extreme shares.
_SHARE_PRIORS = {"weekend": 2 / 7, "summer": 92 / 365, "winter": 15 / 365}
_PRIOR_WEIGHT = 2.0
# The lexicon's predicted age deviation sum(weight * count) / (words + LEXICON_PRIOR_WORDS):
# shrunk towards the intercept (0) when an account has written few words.
LEXICON_PRIOR_WORDS = 20.0

# Tokens for the age lexicon (Sap et al. 2014 lower-cased words, emoticons and punctuation).
_LEX_TOKEN_RE = re.compile(
    r"[<>]?[:;=8][\-o*'^]?[()\[\]dDpP/\\|{}@xX3]"  # emoticons such as :) ;-) =/ :p
    r"|\([:;=]|<3"
    r"|[a-z0-9]+(?:['\-][a-z0-9]+)*"  # words, with inner apostrophes and hyphens
    r"|[^\sa-z0-9]"  # any other single character
)


def lexicon_tokens(text: str) -> list[str]:
    """Lower-cased tokens as the age lexicon counts them (every token counts in the total)."""
    return _LEX_TOKEN_RE.findall(text.lower())


def normalize_text(text: str) -> str:
    """Make service text look like corpus text: links become the corpus' ``urlLink`` token,
    whitespace is collapsed, and the text is cut at :data:`MAX_TEXT_CHARS`."""
    text = _URL_RE.sub(" urlLink ", text)
    text = " ".join(text.split())
    return text[:MAX_TEXT_CHARS]


def build_text_pipeline(random_state: int = 0) -> Any:
    """Untrained text pipeline: hashing (word | char) -> sublinear tf-idf (l2) -> linear model.

    Every step is per-message linear after the (per-message) tf-idf normalisation, so the mean
    of per-message decision values equals the decision on the mean of per-message vectors."""
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import FeatureUnion, Pipeline

    common = {"alternate_sign": False, "norm": None}
    hasher = FeatureUnion(
        [
            (
                "word",
                HashingVectorizer(
                    analyzer="word",
                    ngram_range=WORD_NGRAMS,
                    n_features=N_WORD_FEATURES,
                    lowercase=True,
                    token_pattern=WORD_TOKEN_PATTERN,
                    **common,
                ),
            ),
            (
                "char",
                HashingVectorizer(
                    analyzer="char_wb",
                    ngram_range=CHAR_NGRAMS,
                    n_features=N_CHAR_FEATURES,
                    # Case kept: a lower-case " i ", "OMG" and missing capitals are
                    # age-typical (+0.002 single-post ROC-AUC on validation).
                    lowercase=False,
                    **common,
                ),
            ),
        ]
    )
    return Pipeline(
        [
            ("hash", hasher),
            ("tfidf", TfidfTransformer(sublinear_tf=True)),
            (
                "clf",
                SGDClassifier(
                    loss="log_loss",
                    alpha=SGD_ALPHA,
                    max_iter=SGD_EPOCHS,
                    tol=None,
                    random_state=random_state,
                ),
            ),
        ]
    )


def build_account_text_model(random_state: int = 0) -> Any:
    """Untrained account text model: logistic regression on an account's pooled, L1-normalised
    tf-idf (see :mod:`agegate.model`). SGD keeps training within the time budget; alpha was
    chosen on the validation split."""
    from sklearn.linear_model import SGDClassifier

    return SGDClassifier(
        loss="log_loss",
        alpha=ACCOUNT_SGD_ALPHA,
        max_iter=ACCOUNT_SGD_EPOCHS,
        tol=None,
        random_state=random_state,
    )


def hashed_index(ngram: str, kind: str = "word") -> int:
    """Column of an n-gram (as the word or char analyzer emits it) in the union's space."""
    from sklearn.utils import murmurhash3_32

    h = abs(murmurhash3_32(ngram, seed=0, positive=False))
    if kind == "word":
        return h % N_WORD_FEATURES
    return N_WORD_FEATURES + h % N_CHAR_FEATURES


def account_vector(
    sum_decision: float,
    n: int,
    act: dict[str, Any],
    account_decision: float = 0.0,
    text_mass: float = 0.0,
    lexicon_sum: float = 0.0,
    words: float = 0.0,
    mean_half_words: float | None = MEAN_HALF_WORDS_PER_MESSAGE,
) -> list[float]:
    """Second-stage features (order of :data:`ACCOUNT_FEATURES`) for an account with ``n``
    text messages whose text-model decision values sum to ``sum_decision`` (their mean is
    weighed by :func:`length_weight`), whose pooled
    text (of tf-idf L1 mass ``text_mass``) the account text model scores ``account_decision``,
    and which wrote ``words`` lexicon tokens with ``sum(weight * count) == lexicon_sum``
    (``mean_half_words``: another weighing of the mean, for comparing candidates).

    The pooled decision is shrunk towards 0 by ``mass / (mass + ACCOUNT_TEXT_HALF_MASS)``: on
    a few words an L1-normalised vector puts all its weight on them and the decision swings
    far, so the amount of text, not the message count, says how far to trust it. The lexicon
    age is shrunk the same way by :data:`LEXICON_PRIOR_WORDS`."""
    if not n:
        return [0.0] * len(ACCOUNT_FEATURES)
    mean = sum_decision / n * length_weight(words, n, mean_half_words)
    log_w = math.log1p(max(words, 0.0))
    shrink = text_mass / (text_mass + ACCOUNT_TEXT_HALF_MASS) if text_mass > 0 else 0.0
    acc = account_decision * shrink
    lex = lexicon_sum / (max(words, 0.0) + LEXICON_PRIOR_WORDS)
    return [mean, mean * log_w, log_w, acc, acc * log_w, lex]


# ---------------------------------------------------------------------------------------------
# Dates and activity


def to_date(value: date | datetime | str | None) -> date | None:
    """Day of a signal: its ``at`` (tz-aware UTC datetime) or a corpus ISO date string."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value[:10])
    except (TypeError, ValueError):
        return None


def is_summer(d: date) -> bool:
    """June-August: northern-hemisphere (US) school summer break, as in the corpus."""
    return d.month in (6, 7, 8)


def is_winter_break(d: date) -> bool:
    """20 December - 3 January."""
    return (d.month == 12 and d.day >= 20) or (d.month == 1 and d.day <= 3)


# Days before the latest active day whose counting is remembered (a bitmask, bit i = latest - i),
# so that a message arriving out of order counts its day once, whatever the order: the counters
# are then the same set of days folded in any order, for messages up to this many days late.
ACTIVITY_WINDOW_DAYS = 64
_WINDOW_MASK = (1 << ACTIVITY_WINDOW_DAYS) - 1


def new_activity() -> dict[str, Any]:
    """Active-day counters: days, weekend days, summer days, winter-break days, the latest
    day, and which of the days before it (within ACTIVITY_WINDOW_DAYS) are counted."""
    return {"nd": 0, "we": 0, "su": 0, "wi": 0, "dl": None, "rb": 0}


def fold_activity(act: dict[str, Any], day: date | None) -> dict[str, Any]:
    """Return a new activity dict with one text message written on ``day``. A day counts once
    however many messages it has, and in whatever order they arrive: a day within the window
    before the latest one is looked up in the window's bitmask (a day older than the window
    cannot be told apart from a counted one, and is not counted)."""
    if day is None:
        return dict(act)
    o, last = day.toordinal(), act["dl"]
    # States from before the window: every day up to the latest counted one counts as seen.
    seen = act.get("rb", _WINDOW_MASK if last is not None else 0)
    if last is None or o > last:
        shift = o - last if last is not None else ACTIVITY_WINDOW_DAYS
        seen = ((seen << min(shift, ACTIVITY_WINDOW_DAYS)) | 1) & _WINDOW_MASK
        last = o
    else:
        bit = 1 << (last - o) if last - o < ACTIVITY_WINDOW_DAYS else 0
        if not bit or seen & bit:
            return dict(act)
        seen |= bit
    return {
        "nd": act["nd"] + 1,
        "we": act["we"] + (day.weekday() >= 5),
        "su": act["su"] + is_summer(day),
        "wi": act["wi"] + is_winter_break(day),
        "dl": last,
        "rb": seen,
    }


def activity_vector(act: dict[str, Any]) -> list[float]:
    """Activity features in the order of :data:`ACTIVITY_FEATURES`."""
    nd = act["nd"]

    def share(key: str, prior: float) -> float:
        return (act[key] + _PRIOR_WEIGHT * prior) / (nd + _PRIOR_WEIGHT)

    return [
        share("we", _SHARE_PRIORS["weekend"]),
        share("su", _SHARE_PRIORS["summer"]),
        share("wi", _SHARE_PRIORS["winter"]),
    ]


# ---------------------------------------------------------------------------------------------
# Platform signals (rule layer inputs)


def new_platform() -> dict[str, Any]:
    return {
        "sessions": 0,
        "session_s": 0,
        "payment": {},
        "reports": {},
        "dob_change": 0,
        "redeclaration": 0,
    }


def fold_platform(plat: dict[str, Any], signal: dict[str, Any]) -> dict[str, Any]:
    """Return new platform counters with one non-text signal. Only fixed, known keys are
    stored (free-form values such as an unknown report reason are counted as "other")."""
    out = dict(plat)
    kind = signal.get("type")
    if kind == "session":
        out["sessions"] = plat["sessions"] + 1
        out["session_s"] = plat["session_s"] + max(0, int(signal.get("duration_s") or 0))
    elif kind == "payment":
        method = signal.get("method")
        method = method if method in PAYMENT_METHODS else "none"
        pay = dict(plat["payment"])
        pay[method] = pay.get(method, 0) + 1
        out["payment"] = pay
    elif kind == "report":
        reason = signal.get("reason")
        reason = reason if reason in REPORT_REASONS else "other"
        rep = dict(plat["reports"])
        rep[reason] = rep.get(reason, 0) + 1
        out["reports"] = rep
    elif kind == "dob_change":
        out["dob_change"] = plat["dob_change"] + 1
    elif kind == "age_redeclaration":
        out["redeclaration"] = plat["redeclaration"] + 1
    return out
