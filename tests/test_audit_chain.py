"""The audit trail is hash-chained under a key: edits and deletions are detected."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from agegate.storage import keys
from agegate.storage.unit import transact
from tests.conftest import auth
from tests.helpers import audit_stream_of

# Storage across accounts and shards: also run on a real 3-primary Redis Cluster.
pytestmark = pytest.mark.cluster


def make_entries(client, n=3):
    """n entries on one account, so on one shard's stream and one chain."""
    for _ in range(n):
        client.post("/v1/age-checks", json={"date_of_birth": "1990-01-01", "country": "US",
                                            "account_id": "acc-chain"},
                    headers=auth("registration"))


def stream(app):
    return audit_stream_of(app.extensions["agegate"], "acc-chain")


def test_chain_verifies_and_links(app, client):
    make_entries(client)
    log = app.extensions["agegate"].audit.log
    checked, problems = log.verify()
    assert checked == 3 and problems == []
    newest_first = log.recent(limit=10)
    assert newest_first[0]["prev_hash"] == newest_first[1]["hash"]
    assert newest_first[2]["prev_hash"] == "0" * 64


def test_an_edited_entry_is_detected(app, client, redis_client):
    make_entries(client)
    key = stream(app)
    stream_id, fields = redis_client.xrange(key)[1]
    entry = json.loads(fields["entry"])
    entry["actor"] = "someone-else"
    # Rewrite in place: delete and re-add with the same id is impossible, so rebuild the stream.
    everything = redis_client.xrange(key)
    redis_client.delete(key)
    for sid, f in everything:
        redis_client.xadd(key, {"entry": json.dumps(entry)} if sid == stream_id else f, id=sid)
    _, problems = app.extensions["agegate"].audit.log.verify()
    assert [p.problem for p in problems] == ["hash does not match content"]


def test_a_deleted_entry_is_detected(app, client, redis_client):
    make_entries(client, 4)
    stream_id, _ = redis_client.xrange(stream(app))[1]
    redis_client.xdel(stream(app), stream_id)
    _, problems = app.extensions["agegate"].audit.log.verify()
    assert [p.problem for p in problems] == ["prev_hash does not link"]


def test_concurrent_appends_keep_one_chain(app, client):
    import threading

    def worker():
        c = app.test_client()
        for _ in range(10):
            c.post("/v1/age-checks", json={"date_of_birth": "1990-01-01", "country": "US"},
                   headers=auth("registration"))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    checked, problems = app.extensions["agegate"].audit.log.verify()
    assert checked == 60 and problems == []


def test_cutting_entries_off_the_end_is_detected(app, client, redis_client):
    make_entries(client, 3)
    last_id, _ = redis_client.xrevrange(stream(app), count=1)[0]
    redis_client.xdel(stream(app), last_id)
    _, problems = app.extensions["agegate"].audit.log.verify()
    assert [p.problem for p in problems] == ["chain does not end at its recorded head"]


def test_writers_in_separate_processes_keep_separate_chains_that_all_verify(
    app, redis_url, redis_client, tmp_path, clock
):
    import threading

    from agegate import create_app
    from tests.conftest import make_config

    # A second app instance stands for a second gunicorn worker: its own chain, same stream
    # (one account, so one shard).
    other = create_app(make_config(redis_url, tmp_path, load_model=False), clock=clock)

    def worker(application):
        c = application.test_client()
        for _ in range(15):
            c.post("/v1/age-checks", json={"date_of_birth": "1990-01-01", "country": "US",
                                           "account_id": "acc-w"},
                   headers=auth("registration"))

    threads = [threading.Thread(target=worker, args=(a,)) for a in (app, other, app, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = app.extensions["agegate"].audit.log
    checked, problems = log.verify()
    assert checked == 60 and problems == []
    assert len({e["chain"] for e in log.recent(limit=60)}) == 2


def test_an_entry_written_in_another_shards_unit_is_in_the_accounts_trail(app, client,
                                                                          redis_client):
    """The account's index holds references to stream entries, also when the entry was written
    in another shard's unit (the index entry then goes through that shard's outbox)."""
    make_entries(client, 2)
    state = app.extensions["agegate"]
    trail = state.audit
    account_hash = state.hasher.account("acc-chain")
    other = (keys.shard_of(account_hash) + 1) % keys.SHARDS

    def write(pipe):
        chain = trail.begin(pipe)
        pipe.multi()
        return chain.append(pipe, actor="admin", action="test.elsewhere",
                            account_id="acc-chain", details={"n": 1})

    written = transact(redis_client, write, shard=other)
    entries = client.get("/v1/audit?account_id=acc-chain", headers=auth("admin")).json["events"]
    assert entries[0]["id"] == written["id"] and entries[0]["action"] == "test.elsewhere"
    assert [e["action"] for e in entries[1:]] == ["age_check"] * 2
    members = redis_client.zrange(keys.audit_index(account_hash), 0, -1)
    assert len(members) == 3 and not any(m.startswith("{") for m in members)
    assert trail.log.verify()[1] == []


def test_the_whole_trail_is_ordered_by_the_time_entries_record_not_by_node_clocks(app, client,
                                                                                  clock):
    """Stream ids come from each node's clock; across shards the trail goes by each entry's
    own time. Here the later-written entry records the earlier time."""
    start = clock.instant
    ids = []
    for account_id, moved in (("acc-late", 60), ("acc-early", 0)):
        clock.instant = start + timedelta(seconds=moved)
        answer = client.post("/v1/age-checks", json={"date_of_birth": "1990-01-01",
                                                     "country": "US", "account_id": account_id},
                             headers=auth("registration"))
        ids.append(answer.json["check_id"])
    trail = app.extensions["agegate"].audit.entries(None, 10)
    assert [e["details"]["check_id"] for e in trail] == ids
