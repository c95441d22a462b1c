"""Roles and bearer tokens. Every route declares who may call it; undeclared routes fail closed.

The token also chooses the request's keyspace (storage/keyspace.py), once: a test token's
request (API.md "Test mode") reads and writes only test mode's keys and streams, and its every
JSON object response, errors included, carries `"test": true`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from flask_smorest import Blueprint

from agegate.config import ApiKey
from agegate.errors import Forbidden, Unauthorized
from agegate.storage import keyspace

F = TypeVar("F", bound=Callable[..., Any])

PUBLIC = frozenset({"public"})
ROLE_ATTR = "_agegate_roles"
# flask-smorest's own documentation routes (/openapi.json, /docs) are public by contract.
PUBLIC_BLUEPRINTS = frozenset({"api-docs"})
# An admin may do everything a reviewer may (API.md, Conventions).
IMPLIED_ROLES = {"admin": {"reviewer"}}


def _mark(roles: frozenset[str], func: F) -> F:
    setattr(func, ROLE_ATTR, roles)
    if roles is PUBLIC:
        return func
    documented = Blueprint.doc(security=[{"bearerAuth": []}])(func)
    setattr(documented, ROLE_ATTR, roles)
    return documented  # type: ignore[no-any-return]


def roles(*allowed: str) -> Callable[[F], F]:
    """Allow bearer tokens of these roles (admin implies reviewer)."""
    return lambda func: _mark(frozenset(allowed), func)


def public(func: F) -> F:
    """Mark a route as needing no token (health, docs, the parents' endpoint)."""
    return _mark(PUBLIC, func)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenTable:
    """Tokens are looked up by their SHA-256, so lookups leak nothing about token prefixes."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._by_digest = {_digest(k.token): k for k in keys}

    def find(self, token: str) -> ApiKey | None:
        return self._by_digest.get(_digest(token))


def required_roles(app: Flask, endpoint: str | None) -> frozenset[str] | None:
    """The roles a route needs, PUBLIC, or None when the route declared nothing."""
    if endpoint is None:
        return PUBLIC  # no route matched: routing answers 404/405 itself
    if endpoint.split(".", 1)[0] in PUBLIC_BLUEPRINTS or endpoint == "static":
        return PUBLIC
    view = app.view_functions.get(endpoint)
    return getattr(view, ROLE_ATTR, None)


def _bearer_key() -> ApiKey | None:
    """The configured key the request's bearer token names, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    found: ApiKey | None = current_app.extensions["agegate"].tokens.find(token.strip())
    return found


def authenticate() -> None:
    """before_request: resolve the bearer token and check the route's roles."""
    needed = required_roles(current_app, request.endpoint)
    g.actor = None
    g.role = None
    if needed is PUBLIC:
        if request.endpoint is None:
            # A mistyped path or method: routing answers 404/405, and a test token's answer
            # still says test (API.md "Test mode": every response to it). Nothing is served.
            key = _bearer_key()
            if key is not None and key.test:
                g.keyspace_token = keyspace.enter(keyspace.TEST)
        return
    if needed is None:
        # A route nobody declared roles for is a bug; refuse rather than serve it openly.
        raise Forbidden("This route has no access rule.")
    key = _bearer_key()
    if key is None:
        raise Unauthorized()
    # Chosen here and nowhere else; even a 403 for a test token is answered as a test.
    g.keyspace_token = keyspace.enter(keyspace.TEST if key.test else keyspace.LIVE)
    granted = {key.role} | IMPLIED_ROLES.get(key.role, set())
    if not granted & needed:
        raise Forbidden()
    g.actor = key.name
    g.role = key.role


def mark_test(response: Response) -> Response:
    """after_request: `"test": true` in every JSON object a test token's request gets."""
    if keyspace.current().live or not response.is_json:
        return response
    body = response.get_json(silent=True)
    if isinstance(body, dict):
        response.set_data(current_app.json.dumps({**body, "test": True}))
    return response


TEST_FIELD = {"type": "boolean", "enum": [True], "description":
              "Present, and true, only in answers to a test token (`name:role:token:test`): "
              "the request ran in test mode's own keyspace (API.md, \"Test mode\")."}


def document_test_field(spec: Any) -> None:
    """Add the optional `test` property to every object schema a documented response of a
    token's route (errors included) refers to, as mark_test adds it for test tokens."""
    names = set()
    for operations in spec._paths.values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "security" not in operation:
                continue  # a public route: no token, so never a test
            for response in (operation.get("responses") or {}).values():
                if not isinstance(response, dict):
                    continue
                for media in (response.get("content") or {}).values():
                    ref = (media.get("schema") or {}).get("$ref", "")
                    if ref.startswith("#/components/schemas/"):
                        names.add(ref.rsplit("/", 1)[1])
    schemas = spec.components.schemas
    for name in names:
        if schemas.get(name, {}).get("type") == "object":
            schemas[name].setdefault("properties", {})["test"] = TEST_FIELD


def leave_keyspace(_: BaseException | None) -> None:
    """teardown_request: the next request on this thread starts in the live keyspace again."""
    token = g.pop("keyspace_token", None)
    if token is not None:
        keyspace.leave(token)


def init_app(app: Flask) -> None:
    """Install the one authentication hook for every blueprint, and test mode's keyspace."""
    app.before_request(authenticate)
    app.after_request(mark_test)
    app.teardown_request(leave_keyspace)
