"""Issue 15: an audit anchor kept outside Redis. Deleting a chain's newest entries and resetting
its head field (or dropping a whole chain) passed `agegate audit verify`; against a checkpoint it
does not."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from agegate import create_app
from agegate.cli_audit import audit as audit_cli
from agegate.storage import keys
from tests.conftest import API_KEYS, SECRET, auth, make_config

# Storage across accounts and shards: also run on a real 3-primary Redis Cluster.
pytestmark = pytest.mark.cluster

# Every check on one account, so on one shard's stream: one chain per writer.
ACCOUNT = "acc-anchor"


def _shard(redis_client) -> int:
    from agegate.crypto import Hasher

    return keys.shard_of(Hasher(SECRET).account(ACCOUNT))


def _stream(redis_client) -> str:
    return keys.audit_stream(_shard(redis_client))


def _heads(redis_client) -> str:
    return keys.audit_heads(_shard(redis_client))


def _cli(monkeypatch, redis_url, *args):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("AGEGATE_SECRET_KEY", SECRET)
    monkeypatch.setenv("AGEGATE_API_KEYS", ",".join(f"{k.name}:{k.role}:{k.token}"
                                                    for k in API_KEYS))
    return CliRunner().invoke(audit_cli, list(args))


def _checks(client, n):
    for i in range(n):
        response = client.post("/v1/age-checks", headers=auth("registration"),
                               json={"date_of_birth": "2000-01-01", "country": "US",
                                     "device_id": f"dev-{i}", "account_id": ACCOUNT})
        assert response.status_code == 200


def _two_chains(redis_url, tmp_path, clock):
    """Two writers (two app instances, as two worker processes would be), 3 entries each."""
    first = create_app(make_config(redis_url, tmp_path, load_model=False), clock=clock)
    second = create_app(make_config(redis_url, tmp_path, load_model=False), clock=clock)
    _checks(first.test_client(), 3)
    _checks(second.test_client(), 3)
    return first, second


def _entries(redis_client):
    return [(stream_id, json.loads(fields["entry"]))
            for stream_id, fields in redis_client.xrange(_stream(redis_client))]


def _checkpoint(monkeypatch, redis_url, tmp_path):
    path = tmp_path / "audit-checkpoint.json"
    result = _cli(monkeypatch, redis_url, "checkpoint", "--output", str(path))
    assert result.exit_code == 0, result.output
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    return path


def test_a_checkpoint_verifies_and_later_entries_are_fine(redis_url, redis_client, tmp_path,
                                                          clock, monkeypatch):
    first, _ = _two_chains(redis_url, tmp_path, clock)
    printed = _cli(monkeypatch, redis_url, "checkpoint")
    assert printed.exit_code == 0 and len(json.loads(printed.output)["chains"]) == 2
    path = _checkpoint(monkeypatch, redis_url, tmp_path)
    _checks(first.test_client(), 2)  # the trail goes on after the checkpoint
    result = _cli(monkeypatch, redis_url, "verify", "--checkpoint", str(path))
    assert result.exit_code == 0, result.output
    assert "checkpoint: 2 chains" in result.output and "problems: 0" in result.output


def test_a_truncated_tail_passes_plain_verify_but_not_the_checkpoint(
        redis_url, redis_client, tmp_path, clock, monkeypatch):
    _two_chains(redis_url, tmp_path, clock)
    path = _checkpoint(monkeypatch, redis_url, tmp_path)
    entries = _entries(redis_client)
    chain = entries[-1][1]["chain"]
    mine = [(sid, e) for sid, e in entries if e["chain"] == chain]
    # Delete the chain's two newest entries and point its head field at what is left.
    redis_client.xdel(_stream(redis_client), *(sid for sid, _ in mine[-2:]))
    redis_client.hset(_heads(redis_client), chain, mine[-3][1]["hash"])
    plain = _cli(monkeypatch, redis_url, "verify")
    assert plain.exit_code == 0, plain.output  # what the issue found
    anchored = _cli(monkeypatch, redis_url, "verify", "--checkpoint", str(path))
    assert anchored.exit_code == 1
    assert f"{chain}: entry {mine[-1][1]['id']} (entry 3 of the chain" in anchored.output
    assert "truncated or dropped" in anchored.output


def test_a_dropped_chain_passes_plain_verify_but_not_the_checkpoint(
        redis_url, redis_client, tmp_path, clock, monkeypatch):
    _two_chains(redis_url, tmp_path, clock)
    path = _checkpoint(monkeypatch, redis_url, tmp_path)
    chain = _entries(redis_client)[0][1]["chain"]
    redis_client.xdel(_stream(redis_client),
                      *(sid for sid, e in _entries(redis_client) if e["chain"] == chain))
    redis_client.hdel(_heads(redis_client), chain)
    assert _cli(monkeypatch, redis_url, "verify").exit_code == 0
    anchored = _cli(monkeypatch, redis_url, "verify", "--checkpoint", str(path))
    assert anchored.exit_code == 1 and f"  {chain}: entry" in anchored.output


def test_an_edited_checkpoint_is_refused(redis_url, redis_client, tmp_path, clock, monkeypatch):
    _two_chains(redis_url, tmp_path, clock)
    path = _checkpoint(monkeypatch, redis_url, tmp_path)
    checkpoint = json.loads(path.read_text())
    chain = sorted(checkpoint["chains"])[0]
    checkpoint["chains"][chain]["hash"] = "0" * 64
    path.write_text(json.dumps(checkpoint))
    result = _cli(monkeypatch, redis_url, "verify", "--checkpoint", str(path))
    assert result.exit_code == 1 and "signature does not verify" in result.output
    path.write_text("not json")
    result = _cli(monkeypatch, redis_url, "verify", "--checkpoint", str(path))
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_no_checkpoint_of_a_broken_chain(redis_url, redis_client, tmp_path, clock, monkeypatch):
    _two_chains(redis_url, tmp_path, clock)
    stream_id, entry = _entries(redis_client)[1]
    redis_client.xdel(_stream(redis_client), stream_id)
    result = _cli(monkeypatch, redis_url, "checkpoint", "--output", str(tmp_path / "c.json"))
    assert result.exit_code == 1 and "does not verify" in result.output
    assert not (tmp_path / "c.json").exists()


def test_deleting_a_chains_oldest_entries_is_detected_with_and_without_a_checkpoint(
        redis_url, redis_client, tmp_path, clock, monkeypatch):
    """Issue 21, item 12: the first surviving entry must start its chain or follow one older
    than the retention cut-off; the checkpoint's entry counts must still hold."""
    _two_chains(redis_url, tmp_path, clock)
    path = _checkpoint(monkeypatch, redis_url, tmp_path)
    entries = _entries(redis_client)
    chain = entries[0][1]["chain"]
    mine = [(sid, e) for sid, e in entries if e["chain"] == chain]
    redis_client.xdel(_stream(redis_client), *(sid for sid, _ in mine[:2]))
    plain = _cli(monkeypatch, redis_url, "verify")
    assert plain.exit_code == 1, plain.output
    assert f"{mine[2][1]['id']}: the chain's earlier entries are gone" in plain.output
    anchored = _cli(monkeypatch, redis_url, "verify", "--checkpoint", str(path))
    assert anchored.exit_code == 1
    assert f"{chain}: 1 entries up to the checkpoint's head, which had 3" in anchored.output


def test_entries_that_aged_out_under_the_retention_table_are_fine(
        redis_url, redis_client, tmp_path, clock, monkeypatch):
    from datetime import timedelta

    app = create_app(make_config(redis_url, tmp_path, load_model=False), clock=clock)
    now = clock.instant
    clock.instant = now - timedelta(days=6 * 365 + 30)  # older than the audit retention
    _checks(app.test_client(), 2)
    clock.instant = now
    _checks(app.test_client(), 2)
    path = _checkpoint(monkeypatch, redis_url, tmp_path)
    old = [sid for sid, e in _entries(redis_client) if e["at"] < "2021"]
    assert len(old) == 2
    redis_client.xdel(_stream(redis_client), *old)  # what XADD's MINID trimming does
    result = _cli(monkeypatch, redis_url, "verify", "--checkpoint", str(path))
    assert result.exit_code == 0, result.output
