"""Rate limits (Flask-Limiter, its Redis storage, a moving window), keyed on the client address
and, for parent requests, on the parent's email too.

The address is `request.remote_addr`, which ProxyFix corrects from X-Forwarded-For when the
operator declares its proxies (AGEGATE_TRUSTED_PROXIES): behind a load balancer every parent
would otherwise share the balancer's one budget. An IPv6 client is counted by its /64 (one
subscriber's prefix: a single host can pick any of its 2^64 addresses). The address and the
email are kept in Redis only as keyed hashes.
"""

from __future__ import annotations

import ipaddress

from flask import Flask, request
from flask_limiter import Limiter

from agegate.api import services
from agegate.services.age_checks import normalise_email
from agegate.storage import keys

IPV6_PREFIX = 64


def client_network(address: str | None) -> str:
    """What one client is counted as: an IPv4 address, or an IPv6 address's /64 (an
    IPv4-mapped IPv6 address counts as its IPv4 address)."""
    try:
        parsed = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return "unknown"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/{IPV6_PREFIX}", strict=False))
    return str(parsed)


def client_key() -> str:
    """The client (address, or IPv6 /64) as a keyed hash (Redis never holds the address)."""
    return services().hasher.short("client", client_network(request.remote_addr))


def _parent_email() -> str | None:
    """The submitted parent email, normalised, if the body has one (before validation)."""
    body = request.get_json(silent=True)
    email = body.get("parent_email") if isinstance(body, dict) else None
    if not isinstance(email, str) or not normalise_email(email):
        return None
    return normalise_email(email)


def parent_email_key() -> str:
    """The parent's email as a keyed hash (never the email itself)."""
    return services().hasher.short("parent_email_limit", _parent_email() or "")


def no_parent_email() -> bool:
    """A body without an email is not counted per email (it is a 422, counted per address)."""
    return _parent_email() is None


def parent_request_limit() -> str:
    """AGEGATE_PARENT_REQUEST_RATE_LIMIT, e.g. "5 per hour"."""
    return str(services().config.parent_request_rate_limit)


def parent_email_limit() -> str:
    """AGEGATE_PARENT_REQUEST_EMAIL_RATE_LIMIT, e.g. "10 per day"."""
    return str(services().config.parent_request_email_rate_limit)


limiter = Limiter(
    key_func=client_key,
    strategy="moving-window",
    headers_enabled=True,
    retry_after="delta-seconds",
    key_prefix="agegate",
    # A storage failure is a 503 like any other Redis error, never a silently unlimited route.
    swallow_errors=False,
    in_memory_fallback_enabled=False,
)


def storage_uri(redis_url: str, cluster: bool = False) -> str:
    """The limits library's URI for the service's Redis (a unix socket and a Redis Cluster each
    have their own scheme; a cluster URI names nodes, not a database)."""
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url.removeprefix("unix://")
    if cluster:
        nodes = redis_url.split("://", 1)[-1].split("/", 1)[0]
        return "redis+cluster://" + nodes
    return redis_url


def init_app(app: Flask) -> None:
    """Point the limiter at the service's Redis and install it."""
    state = app.extensions["agegate"]
    app.config.update(
        RATELIMIT_STORAGE_URI=storage_uri(state.redis_url, state.config.redis_cluster),
        RATELIMIT_STORAGE_OPTIONS={"key_prefix": keys.RATE_LIMIT_PREFIX},
    )
    limiter.init_app(app)
