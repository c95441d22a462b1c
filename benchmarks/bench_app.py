"""The product app plus `POST /bench/echo`, for benchmarks only (never deployed).

Served as `gunicorn ... 'benchmarks.bench_app:build_app()'` (an app factory, so importing this
module builds nothing).

The echo route pays the same costs as a real route up to the handler: the same before/after
request hooks (JSON content-type check, bearer-token auth, metrics) and JSON parsing of the body,
so `age check / echo` isolates what the age check itself costs.
"""

from __future__ import annotations

import logging
import sys

from flask import Flask, jsonify, request

from agegate import create_app
from agegate.auth import roles
from agegate.config import from_env

log = logging.getLogger("agegate.bench")

# Printed to the server log so the harness can report that the model was not loaded.
NO_MODEL_MARKER = "BENCH: agegate.model is missing; serving with load_model=False"


def build_app() -> Flask:
    """create_app() from the environment; without agegate.model, the same app minus the model."""
    try:
        app = create_app()
    except ModuleNotFoundError as error:
        # Until the `model` branch lands, create_app() cannot import agegate.model at all.
        # The age check does not use the model, so measure it with the model switched off.
        if error.name != "agegate.model":
            raise
        print(NO_MODEL_MARKER, file=sys.stderr, flush=True)
        app = create_app(from_env().with_overrides(load_model=False))

    @app.post("/bench/echo")
    @roles("registration")
    def bench_echo():
        """Return the parsed JSON body: auth + JSON parse + JSON response, no business logic."""
        return jsonify(request.get_json())

    return app
