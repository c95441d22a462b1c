"""The domain exception tree and the one JSON error shape every status uses."""

from __future__ import annotations

import logging
import traceback
from typing import Any

from flask import Flask, jsonify
from redis import exceptions as redis_errors
from werkzeug.exceptions import HTTPException

log = logging.getLogger("agegate.errors")


class AgegateError(Exception):
    """Base of every error a service may raise; errors.py turns it into HTTP."""

    status = 500
    code = "internal_error"
    message = "Something went wrong on our side."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.code = code or self.code
        self.fields = fields
        self.headers = headers or {}


class MalformedRequest(AgegateError):
    status, code, message = 400, "malformed_json", "The request body is not valid JSON."


class Unauthorized(AgegateError):
    status, code, message = 401, "unauthorized", "A valid bearer token is required."


class Forbidden(AgegateError):
    status, code, message = 403, "forbidden", "This token's role may not do that."


class NotFound(AgegateError):
    status, code, message = 404, "not_found", "No such resource."


class Conflict(AgegateError):
    status, code, message = 409, "conflict", "The resource is not in a state that allows this."


class RequestLocked(Conflict):
    code, message = "request_locked", "Too many wrong codes; this request is locked."


class ChildUnresolved(Conflict):
    code, message = "child_unresolved", "Resolve the child's account before fulfilling this."


class PayloadTooLarge(AgegateError):
    status, code, message = 413, "payload_too_large", "The request body is too large."


class ValidationFailed(AgegateError):
    status, code, message = 422, "validation_error", "Some fields are not valid."


class NotEligible(AgegateError):
    status, code, message = 422, "not_eligible", "This request is not eligible."


class IdempotencyKeyReused(AgegateError):
    """An Idempotency-Key sent again with another request body (IETF
    draft-ietf-httpapi-idempotency-key-header: 422); nothing is applied."""

    status, code = 422, "idempotency_key_reused"
    message = ("This Idempotency-Key was already used for another request body; send a new key "
               "for a new request.")


class RateLimited(AgegateError):
    status, code, message = 429, "rate_limited", "Too many requests; try again later."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, int(retry_after)))})


class StorageUnavailable(AgegateError):
    status, code, message = 503, "storage_unavailable", "Storage is unavailable; try again shortly."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": "5"})


class MailUnavailable(AgegateError):
    status, code, message = 503, "mail_unavailable", "The code could not be mailed; try again."


# Statuses that reach us as werkzeug exceptions (routing, body size, webargs) and their codes.
HTTP_CODES = {
    400: "malformed_json",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "storage_unavailable",
}

HTTP_MESSAGES = {
    400: "The request body is not valid JSON.",
    404: "No such resource.",
    405: "This method is not allowed on this path.",
    413: "The request body is too large.",
    422: "Some fields are not valid.",
    429: "Too many requests; try again later.",
    500: "Something went wrong on our side.",
}


def error_body(
    status: int, code: str, message: str, fields: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """The contract's error shape."""
    error: dict[str, Any] = {"code": code, "message": message}
    if fields is not None:
        error["fields"] = fields
    return {"error": error}


def _response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _flatten_fields(messages: Any) -> dict[str, list[str]]:
    """webargs reports {"json": {"field": [...]}}; the contract wants {"field": [...]}."""
    fields: dict[str, list[str]] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            fields.setdefault(prefix or "_schema", []).extend(value)
        elif isinstance(value, list):
            for inner in value:
                walk(prefix, inner)
        else:
            fields.setdefault(prefix or "_schema", []).append(str(value))

    if isinstance(messages, dict):
        for location in messages.values():
            walk("", location)
    return fields


def handle_http_exception(error: HTTPException):
    """Routing errors, body limits and webargs validation, all in the one shape."""
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    if status == 422:
        fields = _flatten_fields(data.get("messages", {}))
        return _response(422, error_body(422, "validation_error", HTTP_MESSAGES[422], fields))
    code = HTTP_CODES.get(status, "internal_error" if status >= 500 else "http_error")
    message = HTTP_MESSAGES.get(status) or "The request could not be processed."
    headers = {k: v for k, v in error.get_headers() if k.lower() in ("allow", "retry-after")}
    return _response(status, error_body(status, code, message), headers)


def handle_domain_error(error: AgegateError):
    """Domain errors carry their own status, code and message."""
    return _response(
        error.status, error_body(error.status, error.code, error.message, error.fields),
        error.headers,
    )


# Redis cannot take the command now, though the request was fine: a replica after a failover
# (READONLY), memory full under noeviction (OOM), a cluster without a quorum or a slot's owner
# (CLUSTERDOWN, TRYAGAIN), a replica cut off (MASTERDOWN), a dataset still loading, a failed
# snapshot (MISCONF), too few replicas for WAIT (NOREPLICAS).
STORAGE_ERRORS: tuple[type[Exception], ...] = (
    redis_errors.ConnectionError,  # BusyLoadingError, MaxConnectionsError among them
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    redis_errors.OutOfMemoryError,
    redis_errors.ClusterDownError,
    redis_errors.MasterDownError,
    redis_errors.TryAgainError,
    redis_errors.SlotNotCoveredError,
    redis_errors.ClusterError,  # redirections exhausted while a failover moves slots
)
UNAVAILABLE_REPLIES = frozenset({
    "READONLY", "OOM", "CLUSTERDOWN", "MASTERDOWN", "TRYAGAIN", "LOADING", "MISCONF",
    "NOREPLICAS",
})


def storage_unavailable(error: Exception) -> bool:
    """True for a Redis error that means "try again later", not a bug in the command.

    Redis 6 wraps an error raised inside a Lua script ("ERR Error running script ...
    -READONLY You can't write ..."), which redis-py then reports as a plain ResponseError, so
    the reply's codes are read from the text too.
    """
    if isinstance(error, STORAGE_ERRORS):
        return True
    if not isinstance(error, redis_errors.ResponseError):
        return False
    return any(word in UNAVAILABLE_REPLIES for word in str(error).replace("-", " ").split())


def handle_redis_error(error: Exception):
    """Redis unavailable (a 503 with Retry-After), else an unexpected error (a 500)."""
    if storage_unavailable(error):
        return handle_storage_error(error)
    return handle_unexpected(error)


def handle_storage_error(error: Exception):
    """Redis is down, timing out or refusing writes: tell the caller to retry, never show a
    trace."""
    log.error("storage unavailable: %s", type(error).__name__)
    status = StorageUnavailable.status
    return _response(
        status, error_body(status, StorageUnavailable.code, StorageUnavailable.message),
        {"Retry-After": "5"},
    )


def handle_unexpected(error: Exception):
    """The last resort: log the type only (messages may hold user data) and answer a generic 500."""
    log_unexpected(log, "unhandled error", error)
    return _response(500, error_body(500, "internal_error", HTTP_MESSAGES[500]))


def log_unexpected(logger: logging.Logger, what: str, error: BaseException) -> None:
    """Log an unexpected error's type and frames, never its text: an exception's message can
    carry request data (a date of birth, an email, message text)."""
    frames = "".join(traceback.format_tb(error.__traceback__))
    logger.error("%s: %s\n%s", what, type(error).__name__, frames)


def register_error_handlers(app: Flask) -> None:
    """Install the handlers; called after flask-smorest so ours win."""
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(AgegateError, handle_domain_error)
    app.register_error_handler(redis_errors.RedisError, handle_redis_error)
    app.register_error_handler(Exception, handle_unexpected)


class ModelUnavailable(AgegateError):
    status, code = 503, "model_unavailable"
    message = "The classifier is not loaded; try again later."
