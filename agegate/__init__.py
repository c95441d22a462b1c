"""agegate: age gating and minor-account enforcement."""

from __future__ import annotations

import gc
import logging

from flask import Flask
from flask_smorest import Api
from werkzeug.middleware.proxy_fix import ProxyFix

from agegate import auth, metrics
from agegate.clock import Clock
from agegate.config import Config, development_defaults, from_env
from agegate.errors import register_error_handlers
from agegate.schemas.common import ErrorSchema

API_TITLE = "agegate"
API_VERSION = "1.0.0"


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # werkzeug's access log writes full paths, and paths carry account ids and status tokens.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


class AgegateApi(Api):
    """flask-smorest with the contract's error shape in every documented error response."""

    ERROR_SCHEMA = ErrorSchema


def freeze_startup_heap() -> None:
    """Exempt what a process built at start (the model's vocabulary above all, schemas, scripts:
    ~200,000 objects that live as long as it does) from the cyclic garbage collector,
    which otherwise walks them all at every full collection: ~9% of a stream worker's CPU per
    entry (benchmarks/README.md). Python's documented `gc.freeze()`; called once, after the app
    and its model are loaded, by the long-running entry points (gunicorn's post_worker_init,
    `agegate worker`, `agegate serve`), never by `create_app`, which tests call many times."""
    gc.collect()
    gc.freeze()


def create_app(config: Config | None = None, *, clock: Clock | None = None) -> Flask:
    """Build the app: config, Redis, the model, error handlers, auth and blueprints."""
    from agegate import console
    from agegate.api import (
        accounts,
        age_checks,
        age_signals,
        appeals,
        assurance,
        audit,
        body,
        content_removals,
        credentials,
        enforcement,
        ingest,
        jurisdictions,
        limits,
        model_admin,
        parent_requests,
        review,
        service,
        webhooks,
    )
    from agegate.extensions import Agegate

    config = config or from_env()
    if config.development:
        config = development_defaults(config)
    config.validate()
    _configure_logging(config.log_level)

    app = Flask(__name__)
    app.config.update(
        API_TITLE=API_TITLE,
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL=service.SWAGGER_UI_URL,
        # The console's signed cookies: the first key signs, older ones still open sessions.
        SECRET_KEY=config.secret_keys[0],
        SECRET_KEY_FALLBACKS=config.secret_keys[1:],
    )
    if config.trusted_proxies:
        # Client addresses (rate limits) come from X-Forwarded-For, set by this many proxies.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.trusted_proxies)  # type: ignore
    state = Agegate(config, clock)
    app.extensions["agegate"] = state
    if config.load_model:
        state.load_model()

    api = AgegateApi(app, spec_kwargs={"info": {"description": "Age gating and minor-account "
                                         "enforcement. See docs/api.md for the contract."}})
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    metrics.init_app(app)
    auth.init_app(app)
    body.init_app(app)
    limits.init_app(app)
    for module in (service, age_checks, accounts, review, enforcement, audit, parent_requests,
                   content_removals, jurisdictions, age_signals, appeals, ingest, webhooks,
                   model_admin, credentials, assurance):
        api.register_blueprint(module.blp)
    service.init_docs(app)
    auth.document_test_field(api.spec)
    register_error_handlers(app)
    console.init_app(app)
    return app
