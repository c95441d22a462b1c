"""Loading the blog corpus and the deterministic author split."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def _shared_data(*parts: str) -> Path:
    """``shared/data/...`` beside the repo, or beside the nearest parent directory that has
    one (a git worktree lives one level deeper than the main checkout)."""
    for parent in REPO_ROOT.parents:
        candidate = parent.joinpath("shared", "data", *parts)
        if candidate.exists():
            return candidate
    return REPO_ROOT.parent.joinpath("shared", "data", *parts)


DEFAULT_DATA = _shared_data("blogs", "authors.jsonl.gz")
DATA_ENV = "AGEGATE_TRAINING_DATA"

SPLIT_KEY = "agegate-split-v1"
# Buckets 0..99 of a keyed hash of author_id.
SPLIT_BOUNDS = {"train": 70, "validation": 85, "test": 100}


def data_path(path: str | os.PathLike[str] | None = None) -> Path:
    if path is not None:
        return Path(path)
    return Path(os.environ.get(DATA_ENV) or DEFAULT_DATA)


def iter_authors(path: str | os.PathLike[str] | None = None) -> Iterator[dict[str, Any]]:
    """Yield author records from a .jsonl or .jsonl.gz file in the shared format."""
    p = data_path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                yield json.loads(line)


def bucket(author_id: str) -> int:
    digest = hashlib.sha256(f"{SPLIT_KEY}:{author_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def split_of(author_id: str) -> str:
    b = bucket(str(author_id))
    for name, bound in SPLIT_BOUNDS.items():
        if b < bound:
            return name
    raise AssertionError("unreachable")


def split_authors(authors: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    parts: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLIT_BOUNDS}
    for a in authors:
        parts[split_of(a["author_id"])].append(a)
    return parts


def label(author: dict[str, Any]) -> int:
    """1 if the author is under 18."""
    return int(author["age"] < 18)


# ---------------------------------------------------------------------------------------------
# Stage-2 (account model) authors: the first part of the validation buckets. The account model
# is fitted on text scores of authors the text models never saw; the rest of validation
# (VALIDATION_CHOICE_FROM..84) is where choices are made.
STACK_BUCKETS = range(70, 78)


def is_stack(author_id: str) -> bool:
    return bucket(str(author_id)) in STACK_BUCKETS


# ---------------------------------------------------------------------------------------------
# Reddit comments (chat-length, labelled by community) and the age lexicon.

DEFAULT_REDDIT = _shared_data("reddit", "comments.jsonl.gz")
DEFAULT_LEXICON = _shared_data("lexica", "age_lexicon.csv")
REDDIT_ENV = "AGEGATE_REDDIT_DATA"
LEXICON_ENV = "AGEGATE_LEXICON"
# Two groups of communities, each with a teen and a young-adult side. Reddit is evaluated across
# them in both directions (train on one group, test on the other), never at random: topics
# differ by community, and comments of one thread share a topic.
REDDIT_GROUPS = {
    "A": ("AskTeenGirls", "college"),
    "B": ("AskTeenBoys", "LifeAfterSchool", "youngadults"),
}
# Within a group used for training, threads in buckets >= this feed the account model.
REDDIT_STACK_FROM = 75


def reddit_path(path: str | os.PathLike[str] | None = None) -> Path:
    if path is not None:
        return Path(path)
    return Path(os.environ.get(REDDIT_ENV) or DEFAULT_REDDIT)


def lexicon_path(path: str | os.PathLike[str] | None = None) -> Path:
    if path is not None:
        return Path(path)
    return Path(os.environ.get(LEXICON_ENV) or DEFAULT_LEXICON)


def load_reddit(path: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """All comments ({"subreddit", "thread", "label_minor", "text"}) in file order."""
    return list(iter_authors(reddit_path(path)))


def reddit_group(comment: dict[str, Any]) -> str:
    for name, subs in REDDIT_GROUPS.items():
        if comment["subreddit"] in subs:
            return name
    return "other"


def thread_bucket(thread: str) -> int:
    return bucket(f"thread:{thread}")


def read_lexicon(path: str | os.PathLike[str] | None = None) -> tuple[list[str], list[float],
                                                                       float]:
    """(terms, weights, intercept) of a lexicon CSV with columns term, weight."""
    import csv

    terms: list[str] = []
    weights: list[float] = []
    intercept = 0.0
    with open(lexicon_path(path), encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["term"] == "_intercept":
                intercept = float(row["weight"])
            else:
                terms.append(row["term"])
                weights.append(float(row["weight"]))
    return terms, weights, intercept


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
CHUNK_MAX_CHARS = 200
CHUNK_MIN_CHARS = 15


def chunks(text: str) -> list[str]:
    """A post cut into chat-line-sized pieces: sentences, very short ones joined to the next,
    long ones cut at a word boundary near :data:`CHUNK_MAX_CHARS`."""
    out: list[str] = []
    pending = ""
    for sentence in _SENTENCE_END.split(text):
        sentence = f"{pending} {sentence}".strip() if pending else sentence.strip()
        pending = ""
        if not sentence:
            continue
        if len(sentence) < CHUNK_MIN_CHARS:
            pending = sentence
            continue
        while len(sentence) > CHUNK_MAX_CHARS:
            cut = sentence.rfind(" ", CHUNK_MIN_CHARS, CHUNK_MAX_CHARS)
            cut = cut if cut > 0 else CHUNK_MAX_CHARS
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            out.append(sentence)
    if pending:
        out.append(pending)
    return [c for c in out if c]
