"""Helpers for the signals/review/enforcement tests: the app with the REAL trained model, and
real blog posts that it scores as clearly under 18 or clearly adult.

Scores are driven by real text, never by a replacement model: `corpus_texts()` picks, once
per session, held-out posts of young authors that the loaded model scores >= MINOR_MIN_SCORE
and posts of adult authors it scores <= ADULT_MAX_SCORE. Tests assert behaviour (flagged or
not, which case comes first given the returned scores), not particular numbers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest

from agegate import create_app
from agegate.model import AgeModel, ModelLoadError, load_model
from tests.conftest import MODEL_DIR, auth
from training.data import DATA_ENV, data_path, iter_authors, split_of

LEASE_SECONDS = 60
AT = "2026-11-24T13:00:00Z"  # every text signal of these tests; selection scores on it too
MINOR_MIN_SCORE = 0.9
ADULT_MAX_SCORE = 0.1
TEXTS_PER_SIDE = 12
POSTS_PER_AUTHOR = 2  # several authors, so no test hangs on one person's style
MAX_FLAG_POSTS = 12
# These tests exercise flags, cases and enforcement, driven by single real posts. They run the
# service as a platform where half the accounts are minors (AGEGATE_MINOR_PREVALENCE=0.5), so
# that one clearly minor-typical post flags a fresh account; at the default 2% one post is
# (rightly) not enough, which tests/test_model.py checks.
TEST_PREVALENCE = 0.5


@dataclass(frozen=True)
class CorpusTexts:
    """Real posts: `minor` ones the model scores high on their own, `adult` ones low."""

    minor: tuple[str, ...]
    adult: tuple[str, ...]


@functools.cache
def real_model() -> AgeModel:
    """The trained artifact from model/, loaded once per session; a missing one fails loudly."""
    try:
        return load_model(MODEL_DIR, prevalence=TEST_PREVALENCE)
    except ModelLoadError as error:
        pytest.fail(f"these tests need the trained model in {MODEL_DIR}: {error}", pytrace=False)


def single_score(model: AgeModel, text: str) -> float:
    """The model's score for an account holding just this one message."""
    return model.score(model.update(None, [text_signal(text)])).score


@functools.cache
def corpus_texts() -> CorpusTexts:
    """Pick held-out (test split) posts once per session, located as `training` does."""
    path = data_path()
    if not path.is_file():
        pytest.fail(f"training data not found at {path}: set {DATA_ENV} to the blog corpus "
                    "(authors.jsonl.gz); the signals tests drive the real model with it",
                    pytrace=False)
    model = real_model()
    minor: list[str] = []
    adult: list[str] = []
    for author in iter_authors(path):
        if split_of(author["author_id"]) != "test":
            continue  # never posts the model was trained on
        age = author["age"]
        side = minor if age <= 15 else adult if age >= 30 else None
        if side is None or len(side) >= TEXTS_PER_SIDE:
            continue
        taken = 0
        for post in author["posts"]:
            text = " ".join(post["text"].split())
            # Short enough for one signal, and nothing that looks like an email address.
            if not 60 <= len(text) <= 2000 or "@" in text:
                continue
            score = single_score(model, text)
            if (score >= MINOR_MIN_SCORE) if side is minor else (score <= ADULT_MAX_SCORE):
                side.append(text)
                taken += 1
                if taken >= POSTS_PER_AUTHOR or len(side) >= TEXTS_PER_SIDE:
                    break
        if len(minor) >= TEXTS_PER_SIDE and len(adult) >= TEXTS_PER_SIDE:
            break
    assert len(minor) == len(adult) == TEXTS_PER_SIDE, (len(minor), len(adult))
    # So a single minor-typical post flags a fresh account, and an adult one never does.
    assert ADULT_MAX_SCORE < model.review_threshold <= MINOR_MIN_SCORE
    return CorpusTexts(tuple(minor), tuple(adult))


def minor_text(i: int = 0) -> str:
    """A real post the model scores as clearly under 18 on its own."""
    texts = corpus_texts().minor
    return texts[i % len(texts)]


def adult_text(i: int = 0) -> str:
    """A real post the model scores as clearly adult on its own."""
    texts = corpus_texts().adult
    return texts[i % len(texts)]


def signals_app(config, clock):
    """The app with the trained model and a one-minute review lease (modules wrap it as `app`)."""
    real_model()  # fail with the reason before create_app hides it in a log line
    application = create_app(config.with_overrides(load_model=True,
                                                   review_lease_seconds=LEASE_SECONDS,
                                                   minor_prevalence=TEST_PREVALENCE),
                             clock=clock)
    assert application.extensions["agegate"].model is not None
    return application


def text_signal(text: str, at: str = AT) -> dict:
    return {"type": "message", "at": at, "text": text}


def post_signals(client, account_id: str, signals: list[dict]):
    return client.post(f"/v1/accounts/{account_id}/signals", json={"signals": signals},
                       headers=auth("signals"))


def post_minor_messages(client, account_id: str, count: int) -> dict:
    """Post `count` minor-typical messages one request each; returns the last score response."""
    body: dict = {}
    for i in range(count):
        response = post_signals(client, account_id, [text_signal(minor_text(i))])
        assert response.status_code == 200, response.json
        body = response.json
    return body


def flag(client, account_id: str) -> dict:
    """Post real minor-typical messages until the account is flagged; returns that response."""
    for i in range(MAX_FLAG_POSTS):
        response = post_signals(client, account_id, [text_signal(minor_text(i))])
        assert response.status_code == 200, response.json
        if response.json["flagged"]:
            return response.json
    raise AssertionError(f"{account_id} not flagged after {MAX_FLAG_POSTS} minor-typical posts")


def not_flagged(client, account_id: str, count: int = 1) -> dict:
    """Post `count` adult-typical messages and check the account stays unflagged."""
    body: dict = {}
    for i in range(count):
        response = post_signals(client, account_id, [text_signal(adult_text(i))])
        assert response.status_code == 200, response.json
        body = response.json
        assert body["flagged"] is False and body["case_id"] is None, body
    return body


def claim(client, role: str = "reviewer", kind: str | None = None):
    query = f"?kind={kind}" if kind else ""
    return client.post(f"/v1/review/claims{query}", headers=auth(role))


def decide(client, case_id: str, decision: str, role: str = "reviewer", note: str | None = None):
    body = {"decision": decision}
    if note is not None:
        body["note"] = note
    return client.post(f"/v1/review/cases/{case_id}/decision", json=body, headers=auth(role))
