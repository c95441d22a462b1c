"""Issue 24: a 503 after the write was applied (too few replicas confirmed it, a lost reply) is
answered by the caller's retry, so every write must be safe to send twice. POST .../signals
takes an `Idempotency-Key` (the signal stream's `id`: one mechanism, one namespace); every
other write is idempotent by what it writes, shown route by route below."""

from __future__ import annotations

import json

import pytest

from tests.conftest import auth
from tests.signals_helpers import adult_text, minor_text, signals_app, text_signal
from tests.test_errors import assert_error

pytestmark = pytest.mark.cluster


@pytest.fixture
def app(config, clock):
    return signals_app(config, clock)


def post(client, account_id: str, signals: list[dict], key: str | None = None):
    headers = {**auth("signals"), **({"Idempotency-Key": key} if key is not None else {})}
    return client.post(f"/v1/accounts/{account_id}/signals", json={"signals": signals},
                       headers=headers)


def applied(app, account_id: str) -> int:
    """Messages folded into the account's state."""
    state = app.extensions["agegate"]
    found = state.accounts.accounts.state(state.redis, state.hasher.account(account_id))
    return (found or {"n": 0})["n"]


def test_a_retried_idempotency_key_is_applied_once_and_answered_as_the_first_time(app, client):
    batch = [text_signal(minor_text(i)) for i in range(6)]
    first = post(client, "acc-i", batch, key="batch-1")
    assert first.status_code == 200, first.json
    for _ in range(2):
        again = post(client, "acc-i", batch, key="batch-1")
        assert again.status_code == 200
        assert again.json == first.json
    assert applied(app, "acc-i") == 6  # six messages, once
    # Another key is another batch; no key at all is applied every time, as before.
    assert post(client, "acc-i", batch, key="batch-2").status_code == 200
    assert post(client, "acc-i", [text_signal(adult_text(0))]).status_code == 200
    assert post(client, "acc-i", [text_signal(adult_text(0))]).status_code == 200
    assert applied(app, "acc-i") == 14
    # A key is per account.
    assert post(client, "acc-other", batch, key="batch-1").status_code == 200
    assert applied(app, "acc-other") == 6


def test_the_stream_id_and_the_header_are_one_key(app, client, redis_client):
    from tests.test_signal_stream import drain

    batch = [text_signal(adult_text(3))]
    assert post(client, "acc-both", batch, key="msg-77").status_code == 200
    redis_client.xadd("agegate:signals", {"account_id": "acc-both", "signals": json.dumps(batch),
                                          "id": "msg-77"})
    assert drain(app) == 1
    assert applied(app, "acc-both") == 1


@pytest.mark.parametrize("key", ["has space", "x" * 257, "caf\u00e9"])
def test_a_bad_idempotency_key_is_a_422(client, key):
    error = assert_error(post(client, "acc-bad", [text_signal("hello")], key=key), 422,
                         "validation_error")
    assert "Idempotency-Key" in error["fields"]


def test_the_key_and_the_503_are_documented(client):
    spec = client.get("/openapi.json").json
    operation = spec["paths"]["/v1/accounts/{account_id}/signals"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header"
               for p in operation["parameters"])
    assert "storage_unavailable" in operation["responses"]["503"]["description"]
