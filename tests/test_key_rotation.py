"""Issue 15: AGEGATE_SECRET_KEY rotation (API.md, Conventions). The first key hashes and signs
everything new; the others are still recognised, so retry blocks, identity blocks, codes,
status tokens and the audit chain survive a rotation."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from agegate import create_app
from agegate.cli_audit import audit as audit_cli
from agegate.config import ConfigError
from agegate.crypto import key_id
from tests.conftest import API_KEYS, auth, make_config

OLD = "old-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
NEW = "new-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
PARENT = {"parent_name": "Pat", "parent_email": "pat@example.org",
          "child": {"account_id": "kid-1"}, "request_type": "access", "attestation": True}


def _client(redis_url, tmp_path, clock, secret):
    app = create_app(make_config(redis_url, tmp_path, secret_key=secret, load_model=False),
                     clock=clock)
    return app.test_client()


def _check(client, born, **identifiers):
    response = client.post("/v1/age-checks", headers=auth("registration"),
                           json={"date_of_birth": born, "country": "US", **identifiers})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["reason"]


def _verify(monkeypatch, redis_url, secret):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("AGEGATE_SECRET_KEY", secret)
    monkeypatch.setenv("AGEGATE_API_KEYS", ",".join(f"{k.name}:{k.role}:{k.token}"
                                                    for k in API_KEYS))
    return CliRunner().invoke(audit_cli, ["verify"])


def test_blocks_codes_tokens_and_the_audit_chain_survive_a_rotation(
        redis_url, redis_client, tmp_path, clock, monkeypatch):
    before = _client(redis_url, tmp_path, clock, OLD)
    assert _check(before, "2014-01-01", email="kid@example.com") == "under_minimum_age"
    assert _check(before, "2000-01-01", device_id="dev-9", account_id="term-1") == "of_age"
    assert before.post("/v1/accounts/term-1/termination", headers=auth("admin"),
                       json={"reason": "test"}).status_code == 202
    created = before.post("/v1/parent-requests", json=PARENT).get_json()
    body = before.get("/v1/admin/outbox", headers=auth("admin")).get_json()["messages"][0]["body"]
    code = re.search(r"enter this code: (\d+)", body).group(1)
    assert _verify(monkeypatch, redis_url, OLD).exit_code == 0

    # Rotate: the new key first, the old one still listed.
    after = _client(redis_url, tmp_path, clock, f"{NEW},{OLD}")
    # A retry block and an identity block written under the old key still refuse.
    assert _check(after, "1990-01-01", email="kid@example.com") == "previous_underage_attempt"
    assert _check(after, "1990-01-01", device_id="dev-9") == "identity_blocked"
    assert _check(after, "1990-01-01", account_id="term-1") == "identity_blocked"
    # The account's records (named under the old key) are still found.
    assert after.get("/v1/accounts/term-1", headers=auth("reviewer")).get_json()["status"] \
        == "terminated"
    # A code mailed and a status token handed out before the rotation still work.
    rid, token = created["request_id"], created["status_token"]
    assert after.get(f"/v1/parent-requests/{rid}",
                     query_string={"status_token": token}).status_code == 200
    verified = after.post(f"/v1/parent-requests/{rid}/verification", json={"code": code})
    assert verified.status_code == 200, verified.get_json()
    # New audit entries are hashed under the new key and name it; the old ones keep theirs.
    events = after.get("/v1/audit", query_string={"limit": 1000},
                       headers=auth("admin")).get_json()["events"]
    assert events[0]["key_id"] == key_id(NEW)
    assert {e["key_id"] for e in events} == {key_id(NEW), key_id(OLD)}
    result = _verify(monkeypatch, redis_url, f"{NEW},{OLD}")
    assert result.exit_code == 0, result.output
    # New blocks are written under the new key only.
    assert _check(after, "2015-01-01", email="other@example.com") == "under_minimum_age"
    retired = _client(redis_url, tmp_path, clock, NEW)
    assert _check(retired, "1990-01-01", email="other@example.com") == \
        "previous_underage_attempt"

    # Once the old key is dropped, what only it made is no longer recognised: its entries fail.
    assert _check(retired, "1990-01-01", email="kid@example.com") == "of_age"
    result = _verify(monkeypatch, redis_url, NEW)
    assert result.exit_code == 1 and "hash does not match content" in result.output


def test_every_listed_key_must_be_long_and_distinct(redis_url, redis_client, tmp_path, clock):
    with pytest.raises(ConfigError, match="key 2 of AGEGATE_SECRET_KEY"):
        _client(redis_url, tmp_path, clock, f"{NEW},short")
    with pytest.raises(ConfigError, match="same key twice"):
        _client(redis_url, tmp_path, clock, f"{NEW},{NEW}")


def test_removals_and_installs_seen_before_a_rotation_are_still_recognised(
        redis_url, redis_client, tmp_path, clock):
    removal = {"account_id": "acc-7", "region": "US-CA",
               "items": [{"content_id": "post-1", "author_account_id": "acc-7"}]}
    signal = {"source": "google_play_age_signals", "observed_at": "2026-11-24T13:00:00Z",
              "age_lower": 18, "age_upper": None, "method": "estimated",
              "install_id": "install-42"}
    before = _client(redis_url, tmp_path, clock, OLD)
    assert before.post("/v1/content-removals", json=removal,
                       headers=auth("signals")).status_code == 202
    assert before.post("/v1/accounts/acc-8/age-signals", json=signal,
                       headers=auth("signals")).status_code == 200
    after = _client(redis_url, tmp_path, clock, f"{NEW},{OLD}")
    assert after.post("/v1/content-removals", json=removal,
                      headers=auth("signals")).status_code == 202
    requested = [e for _, e in redis_client.xrange("agegate:events")
                 if e["type"] == "content.removal_requested"]
    assert len(requested) == 1  # the same post is not announced twice
    revoked = after.post("/v1/age-signals/revocations", headers=auth("signals"), json={
        "source": "google_play_age_signals", "install_ids": ["install-42"],
        "reason": "consent_revoked"})
    assert revoked.status_code == 200 and revoked.get_json() == {"matched": 1}
