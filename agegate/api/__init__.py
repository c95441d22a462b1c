"""One blueprint per caller-facing concern: HTTP only, no business rules."""

from __future__ import annotations

from flask import current_app, g

from agegate.extensions import Agegate


def services() -> Agegate:
    """The app's service container."""
    return current_app.extensions["agegate"]


def actor() -> str:
    """The authenticated caller's name (from its token), recorded in the audit trail."""
    return g.actor or "anonymous"
