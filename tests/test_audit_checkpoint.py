"""Issue 15: an audit anchor kept outside Redis. Deleting a chain's newest entries and resetting
its head field (or dropping a whole chain) passed `agegate audit verify`; against a checkpoint it
does not."""

from __future__ import annotations

import json

from click.testing import CliRunner

from agegate import create_app
from agegate.cli_audit import audit as audit_cli
from agegate.storage import keys
from tests.conftest import API_KEYS, SECRET, auth, make_config


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
                                     "device_id": f"dev-{i}"})
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
            for stream_id, fields in redis_client.xrange(keys.AUDIT_STREAM)]


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
    redis_client.xdel(keys.AUDIT_STREAM, *(sid for sid, _ in mine[-2:]))
    redis_client.hset(keys.AUDIT_HEADS, chain, mine[-3][1]["hash"])
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
    redis_client.xdel(keys.AUDIT_STREAM,
                      *(sid for sid, e in _entries(redis_client) if e["chain"] == chain))
    redis_client.hdel(keys.AUDIT_HEADS, chain)
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
    redis_client.xdel(keys.AUDIT_STREAM, stream_id)
    result = _cli(monkeypatch, redis_url, "checkpoint", "--output", str(tmp_path / "c.json"))
    assert result.exit_code == 1 and "does not verify" in result.output
    assert not (tmp_path / "c.json").exists()
