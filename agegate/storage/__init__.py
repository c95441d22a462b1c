"""Redis access only: key names live in keys.py; every write can join a caller's pipeline."""

from __future__ import annotations

from typing import Any

import redis
from redis.cluster import RedisCluster

from agegate.storage.keys import Retention


def connect(url: str, cluster: bool = False) -> redis.Redis:
    """A client with timeouts, so a stuck Redis becomes a 503 rather than a hung worker.

    With `cluster`, `url` names one node of a Redis Cluster and the client finds the rest;
    every unit of work stays in one hash slot (storage/keys.py), so the same code runs on both.
    """
    options: dict[str, Any] = {"decode_responses": True, "socket_timeout": 5,
                               "socket_connect_timeout": 2, "health_check_interval": 30}
    if cluster:
        return RedisCluster.from_url(url, **options)  # type: ignore[return-value]
    return redis.Redis.from_url(url, **options)


__all__ = ["Retention", "connect"]
