"""The reviewer console: server-rendered pages under /console for reviewers and admins.

Console routes are @public to the bearer-token hook (a browser carries no bearer token) and are
guarded instead by this blueprint's own session check (see views.require_session).
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface

from agegate.console.views import bp

__all__ = ["bp", "init_app"]


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the request itself came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:  # type: ignore[override]
        """Secure on https (or when configured), so local http development still works."""
        if app.config["SESSION_COOKIE_SECURE"] or request.is_secure:
            return True
        # Behind a TLS-terminating proxy the service itself sees http: trust the proxy's
        # X-Forwarded-Proto only when the operator declared proxies (AGEGATE_TRUSTED_PROXIES).
        trusted = app.extensions["agegate"].config.trusted_proxies
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[-1].strip()
        return bool(trusted) and forwarded.lower() == "https"


def init_app(app: Flask) -> None:
    """Register the console blueprint and its cookie settings."""
    app.config.update(
        SESSION_COOKIE_NAME="agegate_console",
        SESSION_COOKIE_PATH="/console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=8),
    )
    app.session_interface = ConsoleSessionInterface()
    app.register_blueprint(bp)
