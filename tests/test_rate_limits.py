"""Issue 15: the parent flow's rate limit is Flask-Limiter's moving window in Redis, keyed on the
client address as resolved through AGEGATE_TRUSTED_PROXIES (a load balancer in front)."""

from __future__ import annotations

import pytest

from agegate import create_app
from agegate.config import ConfigError
from tests.conftest import make_config
from tests.test_errors import assert_error

BODY = {"parent_name": "Pat", "parent_email": "pat@example.org",
        "child": {"account_id": "kid-1"}, "request_type": "access", "attestation": True}


def _client(redis_url, tmp_path, clock, **overrides):
    app = create_app(make_config(redis_url, tmp_path, load_model=False, **overrides), clock=clock)
    return app.test_client()


def _from(client, forwarded_for: str):
    """A submission as the load balancer passes it on: it appends the peer it saw."""
    return client.post("/v1/parent-requests", json=BODY,
                       headers={"X-Forwarded-For": forwarded_for},
                       environ_base={"REMOTE_ADDR": "10.0.0.2"})  # the balancer itself


def test_behind_a_load_balancer_each_parent_has_its_own_budget(redis_url, redis_client,
                                                               tmp_path, clock):
    client = _client(redis_url, tmp_path, clock, trusted_proxies=1,
                     parent_request_rate_limit="2 per hour")
    assert [_from(client, "203.0.113.7").status_code for _ in range(2)] == [202, 202]
    # Another parent behind the same balancer is not refused for the first one's requests.
    assert _from(client, "198.51.100.9").status_code == 202
    # A forged X-Forwarded-For entry does not buy a new budget: the balancer's entry counts.
    refused = _from(client, "192.0.2.1, 203.0.113.7")
    error = assert_error(refused, 429, "rate_limited")
    assert error["message"] == "Too many requests; try again later."
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.headers["X-RateLimit-Limit"] == "2"
    # Flask-Limiter's moving window: a list of hit times per (hashed) client, with an expiry.
    every = list(redis_client.scan_iter("agegate:rl:*"))
    windows = [key for key in every if ":parent-email/" not in key]  # the per-email window
    assert len(windows) == 2 and len(every) == 3
    for key in windows:
        assert "/parent_requests.create_parent_request/2/1/hour" in key
        assert redis_client.type(key) == "list" and 0 < redis_client.ttl(key) <= 3600
        assert "203.0.113" not in key and "198.51.100" not in key


def test_without_trusted_proxies_the_balancer_is_one_client(redis_url, redis_client, tmp_path,
                                                            clock):
    client = _client(redis_url, tmp_path, clock, parent_request_rate_limit="1 per hour")
    assert _from(client, "203.0.113.7").status_code == 202
    assert_error(_from(client, "198.51.100.9"), 429, "rate_limited")


def test_a_bad_rate_limit_setting_stops_the_service(redis_url, redis_client, tmp_path, clock):
    with pytest.raises(ConfigError, match="AGEGATE_PARENT_REQUEST_RATE_LIMIT"):
        _client(redis_url, tmp_path, clock, parent_request_rate_limit="lots")
