"""Fixtures: one real redis-server per test session (REDIS_URL or the embedded one), flushed
per test; an app per test with known tokens; helpers for authenticated calls."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from agegate import create_app
from agegate.clock import FixedClock
from agegate.config import ROLES, ApiKey, Config
from agegate.storage.embedded import EmbeddedRedis

SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
TOKENS = {role: f"{role}-token-0123456789abcdef" for role in ROLES}
TOKENS["reviewer2"] = "reviewer2-token-0123456789abcdef"
# A downstream token's name is the system it acknowledges for: `downstream` speaks for chat,
# `downstream:<system>` for each other deletion system.
OTHER_SYSTEMS = ("payments", "message_boards", "profiles")
TOKENS.update({f"downstream:{system}": f"downstream-{system}-token-0123456789abcdef"
               for system in OTHER_SYSTEMS})
API_KEYS = tuple(ApiKey(name="chat" if role == "downstream" else f"{role}-bot", role=role,
                        token=TOKENS[role]) for role in ROLES) + (
    ApiKey(name="reviewer-bob", role="reviewer", token=TOKENS["reviewer2"]),
) + tuple(ApiKey(name=system, role="downstream", token=TOKENS[f"downstream:{system}"])
          for system in OTHER_SYSTEMS)
# Test mode's tokens (`name:role:token:test`, API.md "Test mode"): every role once; the
# downstream one speaks for one deletion system (its name), as a live one does.
TEST_TOKENS = {role: f"{role}-test-token-0123456789abcdef" for role in ROLES}
TEST_KEYS = tuple(ApiKey(name="chat" if role == "downstream" else f"{role}-sandbox", role=role,
                         token=TEST_TOKENS[role], test=True) for role in ROLES)
MODEL_DIR = Path(__file__).resolve().parent.parent / "model"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: REDIS_URL when given, else an embedded redis-server for this session."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield server.start()
    server.stop()


def cluster_mode() -> bool:
    """Whether REDIS_URL names a node of a Redis Cluster (scripts/test.sh, `pytest -m cluster`)."""
    return bool(os.environ.get("REDIS_URL")) and \
        os.environ.get("AGEGATE_REDIS_CLUSTER", "").lower() == "true"


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the tests' Redis, flushed first (every primary, on a cluster)."""
    client: redis.Redis
    if cluster_mode():
        cluster = redis.RedisCluster.from_url(redis_url, decode_responses=True)
        cluster.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
        client = cluster  # type: ignore[assignment]
    else:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        client.flushall()
    yield client
    client.close()


@pytest.fixture
def clock() -> FixedClock:
    """Tests run on a chosen instant; they move it forward explicitly."""
    return FixedClock(datetime(2026, 11, 24, 13, 30, tzinfo=UTC))


def make_config(url: str, tmp_path: Path, **overrides: object) -> Config:
    """A test configuration; the model is loaded when the artifact is present."""
    base = Config(
        env="test",
        secret_key=SECRET,
        api_keys=API_KEYS,
        redis_url=url,
        redis_cluster=cluster_mode() and url == os.environ["REDIS_URL"],
        data_dir=tmp_path / "data",
        model_dir=MODEL_DIR,
        load_model=(MODEL_DIR / "card.json").exists(),
        # On a cluster with replicas (scripts/redis-cluster.sh ... 1), the suite can run with
        # every write confirmed by a replica (docs/operations.md).
        redis_min_replicas=int(os.environ.get("AGEGATE_REDIS_MIN_REPLICAS", "0"))
        if url == os.environ.get("REDIS_URL") else 0,
    )
    return base.with_overrides(**overrides)


@pytest.fixture
def config(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> Config:
    return make_config(redis_url, tmp_path)


@pytest.fixture
def app(config: Config, clock: FixedClock):
    app = create_app(config, clock=clock)
    yield app
    # Its Redis connections closed now, not whenever the collector reaches them.
    app.extensions["agegate"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def pki():
    """The digital-credential tests' PKI: a trusted IACA root and document signer, and an
    untrusted pair (tests/mdoc_helpers.py). Nothing changes it, so one serves the session."""
    from tests.mdoc_helpers import make_pki

    return make_pki()


def auth(role: str) -> dict[str, str]:
    """Authorization header for one of the test tokens."""
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def sandbox(role: str) -> dict[str, str]:
    """Authorization header for one of test mode's tokens."""
    return {"Authorization": f"Bearer {TEST_TOKENS[role]}"}


def ack_auth(system: str) -> dict[str, str]:
    """Authorization header of the downstream token that speaks for `system`."""
    return auth("downstream" if system == "chat" else f"downstream:{system}")
