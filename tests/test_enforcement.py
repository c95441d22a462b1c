"""Termination, deletion records, downstream acks, the audit trail and durability."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agegate import create_app
from agegate.config import ApiKey
from agegate.storage import keys
from agegate.storage.embedded import EmbeddedRedis
from tests.conftest import ack_auth, auth, make_config
from tests.helpers import audit_verify, dump_keyspace, keys_without_ttl
from tests.signals_helpers import (
    claim,
    decide,
    flag,
    post_signals,
    signals_app,
    text_signal,
)

# Storage across accounts and shards: also run on a real 3-primary Redis Cluster.
pytestmark = pytest.mark.cluster

SYSTEMS = ("chat", "payments", "message_boards", "profiles")


@pytest.fixture
def app(config, clock):
    """The app with the trained model."""
    return signals_app(config, clock)


def terminate(client, account_id: str, role: str = "admin"):
    return client.post(f"/v1/accounts/{account_id}/termination", json={"reason": "under 18"},
                       headers=auth(role))


def test_termination_is_idempotent_and_emits_events(client, app):
    flag(client, "acc-1")
    first = terminate(client, "acc-1")
    assert first.status_code == 202
    assert first.json["status"] == "pending"
    again = terminate(client, "acc-1")
    assert again.status_code == 202 and again.json == first.json
    deletion = client.get(f"/v1/deletions/{first.json['deletion_id']}",
                          headers=auth("admin")).json
    assert deletion["account_id"] == "acc-1"
    assert deletion["systems"] == {s: "pending" for s in SYSTEMS}
    assert deletion["requested_at"] == "2026-11-24T13:30:00Z"
    assert deletion["due_at"] == "2026-12-24T13:30:00Z"
    assert deletion["completed_at"] is None
    events = app.extensions["agegate"].events.read_all()
    types = [(e["type"], e.get("deletion_id")) for e in events if e["account_id"] == "acc-1"]
    assert types == [("account.terminated", deletion["deletion_id"]),
                     ("account.deletion_requested", deletion["deletion_id"])]
    # The open case went with the account.
    assert client.get("/v1/review/cases", headers=auth("reviewer")).json["cases"] == []
    assert client.get("/v1/accounts/acc-1", headers=auth("reviewer")).json["status"] == \
        "terminated"


def test_after_termination_only_the_deletion_blocks_and_audit_remain(client, app, redis_client):
    linked = {"date_of_birth": "1990-01-01", "country": "US", "device_id": "dev-1",
              "email": "Kid@Example.com", "account_id": "acc-1"}
    assert client.post("/v1/age-checks", json=linked,
                       headers=auth("registration")).status_code == 200
    flag(client, "acc-1")
    post_signals(client, "acc-1", [{"type": "report", "at": "2026-11-24T12:00:00Z",
                                    "reason": "suspected_minor"}])
    flag(client, "acc-other")
    claim(client)  # a lease on acc-1's case, so the claimed set exists too
    deletion_id = terminate(client, "acc-1").json["deletion_id"]
    hasher = app.extensions["agegate"].hasher
    ah = hasher.short("account", "acc-1")
    allowed = {
        keys.deletion(deletion_id), keys.account_deletion(ah), keys.audit_index(ah),
        keys.identity_block("account", ah), keys.identity_block("device",
                                                                 hasher.short("device", "dev-1")),
        keys.identity_block("email", hasher.short("email", "kid@example.com")),
        # The same keyed hashes as the blocks' names, kept so an overturned appeal can lift them.
        keys.terminated_identifiers(ah),
    }
    for key in allowed:
        assert redis_client.exists(key), key
    # Units of work leave only a short-lived applied-once marker (storage/unit.py) in the slot.
    remaining = {key for key, content in dump_keyspace(redis_client).items()
                 if (ah in key or "acc-1" in content) and not key.startswith("agegate:uow:")}
    streams = {*(keys.audit_stream(s) for s in keys.all_shards()),
               app.extensions["agegate"].config.events_stream}
    assert remaining - streams <= allowed
    assert remaining - streams == allowed - {keys.identity_block("device", hasher.short(
        "device", "dev-1")), keys.identity_block("email", hasher.short("email",
                                                                       "kid@example.com"))}
    # Every key has a TTL from the retention table.
    assert keys_without_ttl(redis_client) == []
    # The other account's case is untouched.
    assert len(client.get("/v1/review/cases", headers=auth("reviewer")).json["cases"]) == 1
    claim(client)
    assert keys_without_ttl(redis_client) == []
    # The identifiers it used are now blocked, whatever date is declared.
    retry = dict(linked, account_id="acc-new")
    assert client.post("/v1/age-checks", json=retry,
                       headers=auth("registration")).json["reason"] == "identity_blocked"
    ttl = redis_client.ttl(keys.identity_block("device", hasher.short("device", "dev-1")))
    assert abs(ttl - 365 * 86400) < 5


def test_acks_complete_the_deletion(client, app):
    deletion_id = terminate(client, "acc-1").json["deletion_id"]
    url = f"/v1/deletions/{deletion_id}/acks"
    assert client.post(url, json={"system": "chat"}, headers=auth("admin")).status_code == 403
    assert client.post("/v1/deletions/del_x/acks", json={"system": "chat"},
                       headers=auth("downstream")).status_code == 404
    for system in SYSTEMS[:-1]:
        response = client.post(url, json={"system": system}, headers=ack_auth(system))
        assert response.status_code == 200 and response.json["status"] == "pending"
    repeat = client.post(url, json={"system": "chat"}, headers=auth("downstream"))
    assert repeat.status_code == 200 and repeat.json["systems"]["chat"] == "done"
    last = client.post(url, json={"system": "profiles"}, headers=ack_auth("profiles")).json
    assert last["status"] == "completed" and last["completed_at"] == "2026-11-24T13:30:00Z"
    events = [e["type"] for e in app.extensions["agegate"].events.read_all()]
    assert events[-1] == "account.deletion_completed"
    actions = [e["action"] for e in client.get("/v1/audit?account_id=acc-1",
                                                headers=auth("admin")).json["events"]]
    assert actions.count("deletion_acknowledged") == 4


def test_a_downstream_token_acknowledges_only_its_own_system(client, app):
    deletion_id = terminate(client, "acc-1").json["deletion_id"]
    url = f"/v1/deletions/{deletion_id}/acks"
    for system in ("payments", "profiles", "fax"):  # the chat token speaks for chat only
        refused = client.post(url, json={"system": system}, headers=auth("downstream"))
        assert refused.status_code == 403 and refused.json["error"]["code"] == "forbidden"
    record = client.get(f"/v1/deletions/{deletion_id}", headers=auth("admin")).json
    assert set(record["systems"].values()) == {"pending"}
    assert client.post(url, json={"system": "payments"},
                       headers=ack_auth("payments")).json["systems"]["payments"] == "done"
    # A system this deletion does not wait for is still a 422 for its own token.
    fax = create_app(app.extensions["agegate"].config.with_overrides(api_keys=(
        *app.extensions["agegate"].config.api_keys,
        ApiKey(name="fax", role="downstream", token="fax-token-0123456789abcdef"))))
    bad = fax.test_client().post(url, json={"system": "fax"},
                                 headers={"Authorization": "Bearer fax-token-0123456789abcdef"})
    assert bad.status_code == 422 and "system" in bad.json["error"]["fields"]


def test_overdue_deletions_are_listed_and_gauged(client, clock):
    late = terminate(client, "acc-late").json["deletion_id"]
    clock.instant += timedelta(days=10)
    terminate(client, "acc-soon")
    done = terminate(client, "acc-done").json["deletion_id"]
    for system in SYSTEMS:
        client.post(f"/v1/deletions/{done}/acks", json={"system": system},
                    headers=ack_auth(system))
    query = "/v1/deletions?status=pending&overdue=true"
    assert client.get(query, headers=auth("admin")).json["deletions"] == []
    clock.instant += timedelta(days=21)
    overdue = client.get(query, headers=auth("admin")).json["deletions"]
    assert [d["deletion_id"] for d in overdue] == [late]
    pending = client.get("/v1/deletions?status=pending", headers=auth("admin")).json
    assert len(pending["deletions"]) == 2
    everything = client.get("/v1/deletions", headers=auth("admin")).json["deletions"]
    assert len(everything) == 3
    assert client.get(query, headers=auth("reviewer")).status_code == 403
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "agegate_deletions_overdue 1.0" in metrics
    assert "agegate_deletions_pending 2.0" in metrics


def test_queue_depth_gauges(client):
    flag(client, "acc-1")
    flag(client, "acc-2")
    claim(client)
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'agegate_review_queue_open{kind="classifier"} 1.0' in metrics
    assert "agegate_review_queue_claimed 1.0" in metrics


def test_termination_roles_and_validation(client):
    assert terminate(client, "acc-1", "reviewer").status_code == 403
    assert client.post("/v1/accounts/acc-1/termination", json={}).status_code == 401
    missing = client.post("/v1/accounts/acc-1/termination", json={},
                          headers=auth("admin"))
    assert missing.status_code == 422
    assert client.get("/v1/deletions/del_nope", headers=auth("admin")).status_code == 404


def test_audit_lists_decisions_without_pii_and_the_chain_verifies(client, app, monkeypatch,
                                                                  redis_url, redis_client):
    case_id = flag(client, "acc-1")["case_id"]
    claim(client)
    decide(client, case_id, "confirm_minor", note="says she is in 8th grade")
    events = client.get("/v1/audit?account_id=acc-1&limit=10", headers=auth("admin")).json
    actions = [e["action"] for e in events["events"]]
    assert actions == ["account_terminated", "case_decided", "case_opened"]
    assert "8th grade" not in str(events)
    assert all(e["hash"] and e["prev_hash"] for e in events["events"])
    assert client.get("/v1/audit", headers=auth("reviewer")).status_code == 403
    everything = client.get("/v1/audit?limit=2", headers=auth("admin")).json["events"]
    assert len(everything) == 2
    client.post("/v1/accounts/acc-2/termination", json={"reason": "kid@example.com said 14"},
                headers=auth("admin"))
    admin = client.get("/v1/audit?account_id=acc-2", headers=auth("admin")).json["events"]
    assert admin[0]["details"]["reason"] == "admin_request"
    assert "kid@example.com" not in str(admin)

    result = audit_verify(monkeypatch, redis_url)
    assert result.exit_code == 0, result.output
    assert "entries checked: 4" in result.output and "problems: 0" in result.output
    # Tamper with one entry: the CLI notices.
    r = redis_client
    for stream in (keys.audit_stream(s) for s in keys.all_shards()):
        entries = r.xrange(stream)
        r.delete(stream)
        for stream_id, fields in entries:
            r.xadd(stream, {"entry": fields["entry"].replace("confirm_minor", "not_minor")},
                   id=stream_id)
    tampered = audit_verify(monkeypatch, redis_url)
    assert tampered.exit_code == 1
    assert "problems: 0" not in tampered.output


def test_nothing_is_lost_across_a_redis_restart(tmp_path, clock):
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    try:
        config = make_config(url, tmp_path)
        app = signals_app(config, clock)
        client = app.test_client()
        open_case = flag(client, "acc-open")["case_id"]
        deletion_id = terminate(client, "acc-gone").json["deletion_id"]
        app.extensions["agegate"].redis.connection_pool.disconnect()
        server.stop()
        assert server.start() == url
        app = signals_app(config, clock)
        client = app.test_client()
        case = client.get(f"/v1/review/cases/{open_case}", headers=auth("reviewer"))
        assert case.status_code == 200 and case.json["status"] == "open"
        assert claim(client).json["case"]["case_id"] == open_case
        deletion = client.get(f"/v1/deletions/{deletion_id}", headers=auth("admin"))
        assert deletion.status_code == 200 and deletion.json["status"] == "pending"
        types = [e["type"] for e in app.extensions["agegate"].events.read_all()]
        assert types == ["account.terminated", "account.deletion_requested"]
        assert post_signals(client, "acc-gone", [text_signal("hi")]).status_code == 409
        app.extensions["agegate"].redis.connection_pool.disconnect()
    finally:
        server.stop()
