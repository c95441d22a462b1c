"""Rate limits (Flask-Limiter, its Redis storage, a moving window), keyed on the client address.

The address is `request.remote_addr`, which ProxyFix corrects from X-Forwarded-For when the
operator declares its proxies (AGEGATE_TRUSTED_PROXIES): behind a load balancer every parent
would otherwise share the balancer's one budget. It is kept in Redis only as a keyed hash.
"""

from __future__ import annotations

from flask import Flask, request
from flask_limiter import Limiter

from agegate.api import services
from agegate.storage import keys


def client_key() -> str:
    """The client address as a keyed hash (Redis never holds the address itself)."""
    return services().hasher.short("client", request.remote_addr or "unknown")


def parent_request_limit() -> str:
    """AGEGATE_PARENT_REQUEST_RATE_LIMIT, e.g. "5 per hour"."""
    return str(services().config.parent_request_rate_limit)


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


def storage_uri(redis_url: str) -> str:
    """The limits library's URI for the service's Redis (a unix socket has its own scheme)."""
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url.removeprefix("unix://")
    return redis_url


def init_app(app: Flask) -> None:
    """Point the limiter at the service's Redis and install it."""
    url = app.extensions["agegate"].redis_url
    app.config.update(
        RATELIMIT_STORAGE_URI=storage_uri(url),
        RATELIMIT_STORAGE_OPTIONS={"key_prefix": keys.RATE_LIMIT_PREFIX},
    )
    limiter.init_app(app)
