"""The console's own writes (a session, its revocation at sign-out, the sign-in failure counter's
reset) are acknowledged only once AGEGATE_REDIS_MIN_REPLICAS replicas have them, like every
other write (API.md "Durable acknowledgements"). Real redis-server processes: a primary and a
replica, the replica frozen (SIGSTOP) where a replica that does not confirm is the point."""

from __future__ import annotations

import pytest
import redis

from agegate.storage import keys, replicas
from agegate.storage.console import ConsoleStore
from tests.console_helpers import csrf_from, sign_in
from tests.test_durable_acks import BINARY, app_on, frozen, primary_and_replica

pytestmark = pytest.mark.skipif(BINARY is None, reason="needs Debian's redis-server")

RECORD = {"name": "alice", "role": "reviewer", "issued_at": "2026-11-24T13:30:00Z",
          "expires_at": "2026-11-24T21:30:00Z"}


def test_each_console_write_waits_for_a_replica(tmp_path):
    """Each store write on its own, so none rides on another write's WAIT (on a cluster the
    audit entry that follows a sign-out lives on another primary)."""
    with primary_and_replica(tmp_path) as (primary, replica):
        client = redis.Redis.from_url(primary, decode_responses=True)
        copy = redis.Redis.from_url(replica, decode_responses=True)
        replicas.require(client, 1, 200)
        store = ConsoleStore(client)
        session, failures = keys.console_session("s-1"), keys.console_login_failures("c-1")
        store.count_attempt("c-1", 900)
        with frozen(replica):
            with pytest.raises(replicas.NotReplicated):
                store.create("s-1", RECORD, 3600)
            with pytest.raises(replicas.NotReplicated):
                store.delete("s-1")
            with pytest.raises(replicas.NotReplicated):
                store.clear_failures("c-1")
        # Confirmed: on the replica the moment the call returns.
        store.count_attempt("c-1", 900)
        store.create("s-2", RECORD, 3600)
        assert copy.hgetall(keys.console_session("s-2")) == RECORD
        assert 0 < copy.ttl(keys.console_session("s-2")) <= 3600
        store.delete("s-2")
        assert not copy.exists(keys.console_session("s-2"))
        store.clear_failures("c-1")
        assert not copy.exists(failures)
        assert not copy.exists(session)
        client.close()
        copy.close()


def test_signing_in_and_out_is_on_the_replica_when_answered(tmp_path, clock):
    with primary_and_replica(tmp_path) as (primary, replica):
        client = app_on(primary, tmp_path, clock, redis_min_replicas=1).test_client()
        copy = redis.Redis.from_url(replica, decode_responses=True)
        assert sign_in(client).status_code == 303
        [session] = copy.keys("agegate:console:session:*")
        assert copy.hget(session, "name") == "reviewer-bot" and copy.ttl(session) > 0
        assert copy.keys("agegate:console:login-failures:*") == []  # cleared on success
        page = client.get("/console/queue")
        assert page.status_code == 200
        with frozen(replica):
            refused = client.post("/console/logout",
                                  data={"csrf_token": csrf_from(page.get_data(as_text=True))})
        assert refused.status_code == 503  # not confirmed: not answered as signed out
        done = client.post("/console/logout",
                           data={"csrf_token": csrf_from(page.get_data(as_text=True))})
        assert done.status_code == 303
        assert copy.keys("agegate:console:session:*") == []
        copy.close()
