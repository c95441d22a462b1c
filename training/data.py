"""Loading the blog corpus and the deterministic author split."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "blogs" / "authors.jsonl.gz"
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
