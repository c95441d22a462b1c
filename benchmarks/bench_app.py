"""The product app plus `POST /bench/echo`, for benchmarks only (never deployed).

Served as `gunicorn ... 'benchmarks.bench_app:build_app()'` (an app factory, so importing this
module builds nothing).

The echo route pays the same costs as a real route up to the handler: the same before/after
request hooks (JSON content-type check, bearer-token auth, metrics) and JSON parsing of the body,
so `age check / echo` isolates what the age check itself costs.

`POST /bench/floor` is the echo plus the least any age check must do in Redis: one atomic
script that looks up identity and retry blocks and appends a real-sized audit entry to a stream
and a chain head, with constant keys and arguments and no other work. No implementation that
keeps the check's decision and its audit record in one atomic step can cost less, so
`floor / echo` bounds what the age check can reach on this machine.
"""

from __future__ import annotations

import logging
import sys

from flask import Flask, jsonify, request

from agegate import create_app
from agegate.auth import roles
from agegate.config import from_env
from agegate.storage.scripts import DirectScript

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

    floor = _floor(app)

    @app.post("/bench/floor")
    @roles("registration")
    def bench_floor():
        """The echo plus the age check's one atomic Redis step at its barest."""
        floor()
        return jsonify(request.get_json())

    return app


# Two lookups of three keys each, the audit append, the chain head; TTLs as every key needs.
FLOOR_SCRIPT = """
if redis.call('EXISTS', KEYS[3], KEYS[4], KEYS[5]) > 0 then return 1 end
if redis.call('EXISTS', KEYS[6], KEYS[7], KEYS[8]) > 0 then return 2 end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', 100000, '*', 'entry', ARGV[1])
redis.call('HSET', KEYS[2], 'chain', ARGV[2])
if redis.call('TTL', KEYS[2]) < 0 then
  redis.call('EXPIRE', KEYS[1], 3600)
  redis.call('EXPIRE', KEYS[2], 3600)
end
return 3
"""


def _floor(app: Flask):
    """A call that runs FLOOR_SCRIPT with a real age-check audit entry, built once."""
    from datetime import UTC, datetime

    state = app.extensions["agegate"]
    entry = state.audit.log.prepare(
        "chain_" + "x" * 16, "0" * 64, entry_id="aud_" + "x" * 16, at=datetime.now(UTC),
        actor="bench", action="age_check", account_id=None, account_hash=None,
        details={"check_id": "chk_" + "x" * 16, "decision": "allow", "reason": "of_age",
                 "country": "US", "region": "CA"},
    )
    script = DirectScript(state.redis, FLOOR_SCRIPT)
    keys = ["agegate-bench:floor:audit", "agegate-bench:floor:heads",
            *[f"agegate-bench:floor:{kind}:{'c' * 32}" for kind in
              ("block:device", "block:email", "block:session",
               "retry:device", "retry:email", "retry:session")]]
    args = [entry.encoded, entry.hash]
    return lambda: script(keys, args)

