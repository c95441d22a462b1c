"""A unit of work whose EXEC was applied but whose reply was lost is never applied twice.

The service talks to the real Redis through a real TCP proxy that delivers an EXEC, waits for
Redis to apply it, and then cuts the connection before the reply reaches the client: redis-py
sees a connection error and would run the transaction again.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agegate import create_app
from agegate.storage import keys
from tests.conftest import auth, make_config
from tests.faults import ReplyLosingProxy

URL = "/v1/age-checks"


@pytest.fixture
def proxy(redis_url: str, redis_client) -> Iterator[ReplyLosingProxy]:
    server = ReplyLosingProxy(redis_url)
    yield server
    server.close()


@pytest.fixture
def app(proxy: ReplyLosingProxy, tmp_path, clock):
    app = create_app(make_config(proxy.url, tmp_path), clock=clock)
    yield app
    app.extensions["agegate"].close()  # its connections to the proxy, as conftest's app does


def check(client, **body):
    return client.post(URL, json={"country": "US", **body}, headers=auth("registration"))


def test_a_lost_reply_does_not_apply_an_age_check_twice(app, client, proxy):
    proxy.lose_exec_replies(1)
    answer = check(client, date_of_birth="2012-01-01", device_id="dev-lost", account_id="a-1")
    assert proxy.lost == 1
    # Applied once: the answer is the first attempt's, not a re-run that sees its own block.
    assert answer.status_code == 200 and answer.json["reason"] == "under_minimum_age"
    state = app.extensions["agegate"]
    entries = state.audit.entries(None, 10)
    assert [e["details"]["check_id"] for e in entries] == [answer.json["check_id"]]
    assert state.audit.log.verify() == (1, [])
    # The retry block it wrote works, and the chain goes on linking after the lost reply.
    again = check(client, date_of_birth="1990-01-01", device_id="dev-lost")
    assert again.json["reason"] == "previous_underage_attempt"
    assert state.audit.log.verify() == (2, [])


def test_a_lost_reply_with_nothing_else_watched_is_not_resent(app, proxy):
    # Without a WATCH, redis-py would simply resend MULTI ... EXEC after the connection error.
    proxy.lose_exec_replies(1)
    state = app.extensions["agegate"]
    state.audit.record("admin-bot", "console.signed_in", details={"role": "admin"})
    assert proxy.lost == 1
    assert len(state.audit.entries(None, 10)) == 1
    assert state.audit.log.verify() == (1, [])


def test_a_lost_reply_does_not_terminate_twice(app, client, proxy, redis_client):
    assert check(client, date_of_birth="2012-01-01", session_id="s-1",
                 account_id="acc-t").status_code == 200
    proxy.lose_exec_replies(1)
    first = client.post("/v1/accounts/acc-t/termination", json={"reason": "under 18"},
                        headers=auth("admin"))
    assert proxy.lost == 1
    assert first.status_code == 202
    state = app.extensions["agegate"]
    events = [e for e in state.events.read_all() if e["account_id"] == "acc-t"]
    assert [e["type"] for e in events] == ["account.terminated", "account.deletion_requested"]
    assert {e["deletion_id"] for e in events} == {first.json["deletion_id"]}
    terminated = [e for e in state.audit.entries("acc-t", 10)
                  if e["action"] == "account_terminated"]
    assert len(terminated) == 1
    account_hash = state.hasher.account("acc-t")
    assert redis_client.get(keys.account_deletion(account_hash)) == first.json["deletion_id"]
    checked, problems = state.audit.log.verify()
    assert problems == [] and checked == 2


def test_the_marker_expires_with_the_retention_table(app, client, redis_client):
    check(client, date_of_birth="1990-01-01")
    markers = list(redis_client.scan_iter(match="agegate:uow:*"))
    assert len(markers) == 1
    ttl = redis_client.ttl(markers[0])
    assert 0 < ttl <= app.extensions["agegate"].retention.seconds("unit_marker")
