"""Shared helpers for the model tests (no conftest: the lead owns tests/conftest.py)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from training.data import REPO_ROOT, data_path, iter_authors, label, split_of

MODEL_DIR = REPO_ROOT / "model"


def require_data() -> Path:
    p = data_path()
    if not p.is_file():
        pytest.skip(f"training data not found at {p} (set AGEGATE_TRAINING_DATA)")
    return p


@functools.cache
def first_authors(n: int) -> tuple[dict[str, Any], ...]:
    out = []
    for a in iter_authors(require_data()):
        out.append(a)
        if len(out) >= n:
            break
    return tuple(out)


def minor_test_posts(n_authors: int = 60) -> list[dict[str, Any]]:
    """Real posts of under-18 authors from the held-out test split."""
    posts = []
    authors = [a for a in first_authors(3000) if label(a) and split_of(a["author_id"]) == "test"]
    for a in authors[:n_authors]:
        posts.extend(a["posts"])
    return posts


def as_signal(post: dict[str, Any], kind: str = "message") -> dict[str, Any]:
    day = post.get("date") or "2004-05-03"
    return {"type": kind, "text": post["text"], "at": datetime.fromisoformat(day).replace(
        hour=12, tzinfo=UTC)}
