"""The applied-once guarantee of a unit of work, on whichever Redis the tests run (a single one,
or every primary of a Redis Cluster, each behind its own reply-losing TCP proxy)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from agegate.storage import keys
from agegate.storage.unit import transact
from tests.conftest import cluster_mode
from tests.faults import ReplyLosingProxy

pytestmark = pytest.mark.cluster


@pytest.fixture
def proxied(redis_url: str, redis_client) -> Iterator[tuple[redis.Redis, list[ReplyLosingProxy]]]:
    """A client whose every connection to Redis goes through a proxy of ours."""
    if not cluster_mode():
        proxy = ReplyLosingProxy(redis_url)
        client = redis.Redis.from_url(proxy.url, decode_responses=True)
        yield client, [proxy]
        client.close()
        proxy.close()
        return
    proxies: dict[tuple[str, int], ReplyLosingProxy] = {}
    for node in redis_client.get_primaries():  # type: ignore[attr-defined]
        proxies[(node.host, node.port)] = ReplyLosingProxy(f"redis://{node.host}:{node.port}")

    def remap(address: tuple[str, int]) -> tuple[str, int]:
        proxy = proxies.get(address)
        return ("127.0.0.1", proxy.port) if proxy else address

    cluster = redis.RedisCluster.from_url(redis_url, decode_responses=True, address_remap=remap)
    yield cluster, list(proxies.values())  # type: ignore[misc]
    cluster.close()
    for proxy in proxies.values():
        proxy.close()


@pytest.mark.parametrize("shard", [0, 21, 42, 63])
def test_a_lost_exec_reply_applies_the_unit_once(proxied, redis_client, shard):
    client, proxies = proxied
    counter = f"{keys.prefix()}:test:{keys.shard_tag(shard)}:counter"

    def build(pipe) -> str:
        pipe.multi()
        pipe.incr(counter)
        pipe.expire(counter, 60)
        return "done"

    for proxy in proxies:
        proxy.lose_exec_replies(1)
    assert transact(client, build, shard=shard) == "done"
    assert sum(proxy.lost for proxy in proxies) == 1  # Redis applied it; the reply was lost
    assert redis_client.get(counter) == "1"
