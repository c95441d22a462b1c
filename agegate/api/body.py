"""Request body limits, checked before any view reads a byte: size per route, JSON shape.

A sync gunicorn worker is pinned for as long as a client takes to upload, so each route accepts
only what its contract can need: a few KB for the registration check and the public routes,
the contract's 500 signals of 10,000 characters for signals, and a ceiling for the rest.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from flask import Flask, current_app, request

from agegate.auth import PUBLIC, required_roles
from agegate.errors import MalformedRequest, PayloadTooLarge

# Seven short fields (three identifiers of at most 256 characters, an email of 254).
AGE_CHECK_BYTES = 4 * 1024
# Parent requests (2,000 characters of details, even if every one is sent as a \u escape),
# their verification codes, and the console's forms.
PUBLIC_BYTES = 16 * 1024
# API.md: at most 500 signals a request, text at most 10,000 characters each. A character is
# at most 4 bytes of UTF-8 or 6 as a \uXXXX escape (what json.dumps sends by default; only a
# text of emoji, each escaped as two, could need more), and a signal's other fields fit in 1 KB.
SIGNALS_BYTES = 500 * (10_000 * 6 + 1024)
# Objects and arrays nested deeper than this are no request of this contract (the deepest,
# signals, is 3). Python's own parser fails with RecursionError at about a thousand.
MAX_JSON_DEPTH = 32

# Python reads no integer literal longer than this (sys.get_int_max_str_digits; 0: no limit)
# and json.loads then raises a ValueError that is no JSONDecodeError. A body with a run of
# digits that long is parsed here first. Found by mapping every digit to 0 and searching for
# the run: linear, and a tenth of a second for the largest signals body.
_MAX_DIGITS = sys.get_int_max_str_digits()
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")


def _long_digit_run(data: bytes) -> bool:
    return bool(_MAX_DIGITS) and b"0" * (_MAX_DIGITS + 1) in data.translate(_DIGITS_AS_ZERO)


# JSON may escape half of a UTF-16 pair (`\ud800`); the string that decodes to is no text (UTF-8
# has no such character; RFC 7493 forbids it) and Redis could not be sent it. Only a body with
# an escape in D800-DFFF (emoji from an ASCII-only encoder, in pairs) is parsed to look.
_SURROGATE_ESCAPES = (b"\\ud", b"\\uD")


def _lone_surrogate(value: Any) -> bool:
    """True when a string (key or value) anywhere in `value` holds an unpaired surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


# Routes whose limit is not the default for their kind (public or authenticated).
ROUTE_BYTES = {
    "age_checks.create_age_check": AGE_CHECK_BYTES,
    "accounts.post_signals": SIGNALS_BYTES,
}


def body_limit(app: Flask, endpoint: str | None) -> int:
    """The most bytes a request to `endpoint` may carry."""
    if endpoint in ROUTE_BYTES:
        return ROUTE_BYTES[endpoint]
    if required_roles(app, endpoint) is PUBLIC:
        return PUBLIC_BYTES
    return int(app.extensions["agegate"].config.max_body_bytes)


def _depth_exceeds(value: Any, limit: int) -> bool:
    """True when objects/arrays nest deeper than `limit` (iterative: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def check_json_shape(data: bytes) -> None:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH, holding an integer too long for Python
    to read, or a lone UTF-16 surrogate, as malformed, before the route's parser meets it.

    A body with no more openers than the limit cannot nest deeper, one without a long run of
    digits holds no such integer, and one without a surrogate escape no lone surrogate, so
    ordinary requests cost a few byte scans; the rest are parsed once here, where
    RecursionError and ValueError are a plain 400.
    """
    too_deep = data.count(b"[") + data.count(b"{") > MAX_JSON_DEPTH
    surrogates = any(escape in data for escape in _SURROGATE_ESCAPES)
    if not too_deep and not surrogates and not _long_digit_run(data):
        return
    try:
        value = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # ValueError: also an integer past Python's limit
        raise MalformedRequest() from None
    if too_deep and _depth_exceeds(value, MAX_JSON_DEPTH):
        raise MalformedRequest(f"JSON nests deeper than {MAX_JSON_DEPTH} levels.")
    if surrogates and _lone_surrogate(value):
        raise MalformedRequest("The request body holds half of a UTF-16 surrogate pair "
                               "(\\ud800-\\udfff alone), which is not text.")


def guard_body() -> None:
    """before_request: the route's size limit, then (for JSON) the content type and nesting."""
    limit = body_limit(current_app, request.endpoint)
    # Refuse on the declared length before reading; a chunked body is cut off at the limit.
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge()
    # One byte over, so a streamed body cut off there is told apart from one that fits (werkzeug
    # stops a stream at the maximum without an error when the read ends exactly on it).
    request.max_content_length = limit + 1
    if request.blueprint == "console" or request.method not in ("POST", "PUT", "PATCH"):
        return  # the console posts HTML forms, not JSON
    if not request.content_length and "chunked" not in request.headers.get(
            "Transfer-Encoding", "").lower():
        return
    if not request.is_json:
        raise MalformedRequest("The request body must be JSON (application/json).")
    data = request.get_data(cache=True)
    if len(data) > limit:
        raise PayloadTooLarge()
    check_json_shape(data)


def init_app(app: Flask) -> None:
    """Install the guard; the app-wide ceiling is the largest route limit."""
    app.config["MAX_CONTENT_LENGTH"] = max(
        SIGNALS_BYTES, int(app.extensions["agegate"].config.max_body_bytes))
    app.before_request(guard_body)
