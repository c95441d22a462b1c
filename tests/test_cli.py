"""The command line: a bad environment is one clear line and status 1, never a traceback."""

from __future__ import annotations

from click.testing import CliRunner

from agegate.cli import cli
from tests.conftest import API_KEYS, SECRET

API_KEYS_ENV = ",".join(f"{k.name}:{k.role}:{k.token}" for k in API_KEYS)


def test_a_missing_secret_is_reported_not_raised():
    result = CliRunner().invoke(cli, ["audit", "verify"], env={
        "AGEGATE_ENV": "production", "AGEGATE_SECRET_KEY": None, "REDIS_URL": None})
    assert result.exit_code == 1
    assert "configuration: AGEGATE_SECRET_KEY is required" in result.output
    assert "Traceback" not in result.output


def test_an_unreachable_redis_is_reported_not_raised():
    result = CliRunner().invoke(cli, ["audit", "verify"], env={
        "AGEGATE_ENV": "production", "AGEGATE_SECRET_KEY": SECRET,
        "AGEGATE_API_KEYS": API_KEYS_ENV, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.exit_code == 1
    assert result.output.startswith("Error: redis: ")
    assert "Traceback" not in result.output
