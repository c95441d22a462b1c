"""Batch-first signals (issue 20): one `record_signals` call takes many accounts' entries, reads
every account in one round trip and applies each slot's share as one script, only if what it
read is unchanged. Real Redis (a real cluster too), the real model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis.connection

from agegate.services.accounts import SignalEntry
from agegate.storage import keys, unit
from agegate.storage.accounts import RECORD_SCRIPT
from agegate.storage.scripts import Calls
from tests.conftest import auth
from tests.signals_helpers import adult_text, minor_text, post_signals, signals_app, text_signal

pytestmark = pytest.mark.cluster


@pytest.fixture
def app(config, clock):
    return signals_app(config, clock)


@contextmanager
def round_trips() -> Iterator[list[int]]:
    """Counts what redis-py sends (a pipeline is one send per connection: one round trip)."""
    cls = redis.connection.AbstractConnection
    original = cls.send_packed_command
    count = [0]

    def counted(conn, command, check_health=True):  # noqa: ANN001, ANN202
        count[0] += 1
        return original(conn, command, check_health)

    cls.send_packed_command = counted  # type: ignore[method-assign]
    try:
        yield count
    finally:
        cls.send_packed_command = original  # type: ignore[method-assign]


def test_a_batch_scores_as_the_same_entries_one_at_a_time(app, client):
    texts = [adult_text(0), minor_text(0), adult_text(1), minor_text(1), adult_text(2)]
    entries = [SignalEntry(f"batch-{i % 7}", [text_signal(texts[i % 5])]) for i in range(20)]
    accounts = app.extensions["agegate"].accounts
    batch = accounts.record_signals(entries, actor="test")
    for entry, outcome in zip(entries, batch, strict=True):
        single = post_signals(client, entry.account_id.replace("batch", "single"),
                              entry.signals).json
        assert not isinstance(outcome, Exception)
        for field in ("score", "band", "flagged", "top_signals"):
            assert outcome[field] == single[field], field
        assert (outcome["case_id"] is None) == (single["case_id"] is None)
    for i in range(7):
        batch_account = client.get(f"/v1/accounts/batch-{i}", headers=auth("reviewer")).json
        single_account = client.get(f"/v1/accounts/single-{i}", headers=auth("reviewer")).json
        assert batch_account["score"] == single_account["score"]


def test_round_trips_do_not_grow_with_the_batch(app, client):
    accounts = app.extensions["agegate"].accounts
    # Adult-sounding text: no case step, so what is counted is the write path itself.
    entries = [SignalEntry(f"trips-{i}", [text_signal(adult_text(i % 3))], key=f"id:{i}")
               for i in range(60)]
    # Warm: the script loaded and the connections made, as in a running service.
    accounts.record_signals([SignalEntry(f"warm-{i}", entries[0].signals) for i in range(60)],
                            actor="test")
    with round_trips() as sent:
        outcomes = accounts.record_signals(entries, actor="test")
    assert not any(isinstance(o, Exception) or o["case_id"] for o in outcomes)
    # One pipeline of reads and one of scripts (one send per cluster node each).
    nodes = 3 if app.extensions["agegate"].config.redis_cluster else 1
    assert sent[0] <= 2 * nodes
    with round_trips() as sent:
        assert post_signals(client, "trips-http", [text_signal(adult_text(0))]).status_code \
            == 200
    assert sent[0] <= 2


def test_an_age_check_takes_two_round_trips(app, client):
    body = {"date_of_birth": "1990-01-01", "country": "US", "device_id": "dev-trips",
            "email": "trips@example.com", "account_id": "trips-check"}
    client.post("/v1/age-checks", json={**body, "account_id": "warm"},
                headers=auth("registration"))
    with round_trips() as sent:
        response = client.post("/v1/age-checks", json=body, headers=auth("registration"))
    assert response.status_code == 200 and response.json["decision"] == "allow"
    # The blocks in one pipeline (sent to each node at once on a cluster), then the unit.
    nodes = 3 if app.extensions["agegate"].config.redis_cluster else 1
    assert sent[0] <= nodes + 1


def test_a_slot_whose_reads_changed_is_not_written(app, redis_client):
    state = app.extensions["agegate"]
    store = state.accounts.accounts
    account_hash = state.hasher.account("cas-1")
    state.accounts.record_signals([SignalEntry("cas-1", [text_signal(adult_text(0))])],
                                  actor="test")
    calls = Calls(redis_client)
    found, meta = store.queue_signal_view(calls, account_hash, [])
    replies = calls.execute()
    view = store.signal_view_of(replies[found], replies[meta])
    before = redis_client.get(keys.account_state(account_hash))
    # Another writer changes the account between the read and the write.
    redis_client.hset(keys.account(account_hash), "case_score", "0.5")
    tag = keys.shard_tag(keys.shard_of(account_hash))[1:-1]
    write = store.record_unit(tag, [_write(account_hash, view)])
    assert unit.apply_scripted(redis_client, RECORD_SCRIPT, [write]) == [False]
    assert redis_client.get(keys.account_state(account_hash)) == before
    # Read again, and the same write applies once: sent twice, the marker answers "applied".
    calls = Calls(redis_client)
    found, meta = store.queue_signal_view(calls, account_hash, [])
    replies = calls.execute()
    view = store.signal_view_of(replies[found], replies[meta])
    write = store.record_unit(tag, [_write(account_hash, view)])
    assert unit.apply_scripted(redis_client, RECORD_SCRIPT, [write]) == [True]
    redis_client.set(keys.account_state(account_hash), "{}")
    assert unit.apply_scripted(redis_client, RECORD_SCRIPT, [write]) == [True]
    assert redis_client.get(keys.account_state(account_hash)) == "{}"  # not written again


def _write(account_hash: str, view):  # noqa: ANN001, ANN202
    from agegate.storage.accounts import AccountWrite

    return AccountWrite(account_hash, view, {"n": 99}, {"score": "0.1"}, [])
