"""Helpers for the model-feedback tests: the real model, real posts as chat lines, and cases
opened, claimed and decided through the HTTP API as a reviewer does."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pytest

from agegate.model import AgeModel, ModelLoadError, load_model
from tests.conftest import MODEL_DIR, auth
from training.data import chunks, data_path, iter_authors, label, split_of

AT = "2026-11-24T13:00:00Z"
LINES_PER_ACCOUNT = 20


def feedback_model_dir() -> Path:
    """The model the feedback tests run on: model/ (AGEGATE_TEST_MODEL_DIR overrides it)."""
    return Path(os.environ.get("AGEGATE_TEST_MODEL_DIR") or MODEL_DIR)


@functools.cache
def real_model() -> AgeModel:
    try:
        return load_model(feedback_model_dir())
    except ModelLoadError as error:
        pytest.fail(f"these tests need the trained model in {feedback_model_dir()}: {error}",
                    pytrace=False)


@functools.cache
def held_out_accounts(n: int) -> tuple[tuple[int, tuple[str, ...]], ...]:
    """``n`` accounts of held-out (test split) authors, alternating under 18 and adult: each
    is (label, up to LINES_PER_ACCOUNT of the author's posts cut into chat lines)."""
    path = data_path()
    if not path.is_file():
        pytest.fail(f"training data not found at {path}", pytrace=False)
    by_label: dict[int, list[tuple[int, tuple[str, ...]]]] = {0: [], 1: []}
    for author in iter_authors(path):
        if split_of(author["author_id"]) != "test":
            continue
        y = label(author)
        if len(by_label[y]) >= (n + 1) // 2:
            if all(len(v) >= (n + 1) // 2 for v in by_label.values()):
                break
            continue
        lines: list[str] = []
        for post in author["posts"]:
            lines.extend(c for c in chunks(" ".join((post.get("text") or "").split()))
                         if "@" not in c)
            if len(lines) >= LINES_PER_ACCOUNT:
                break
        if len(lines) >= 3:
            by_label[y].append((y, tuple(lines[:LINES_PER_ACCOUNT])))
    out = [acc for pair in zip(by_label[1], by_label[0], strict=False) for acc in pair]
    return tuple(out[:n])


def post_lines(client, account_id: str, lines: tuple[str, ...], report: bool = True) -> dict:
    """The lines as one batch of messages (and a suspected-minor report, which opens a case)."""
    signals: list[dict[str, Any]] = [{"type": "message", "at": AT, "text": t} for t in lines]
    if report:
        signals.append({"type": "report", "at": AT, "reason": "suspected_minor"})
    response = client.post(f"/v1/accounts/{account_id}/signals", json={"signals": signals},
                           headers=auth("signals"))
    assert response.status_code == 200, response.json
    return response.json


def claim_and_decide(client, case_id: str, decision: str) -> dict:
    response = client.post(f"/v1/review/cases/{case_id}/claim", headers=auth("reviewer"))
    assert response.status_code == 200, response.json
    response = client.post(f"/v1/review/cases/{case_id}/decision",
                           json={"decision": decision}, headers=auth("reviewer"))
    assert response.status_code == 200, response.json
    return response.json
