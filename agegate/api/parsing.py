"""A fast path for hot routes: plainly valid requests skip the documented decorator chain."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import request
from flask.sansio.blueprints import BlueprintSetupState
from flask_smorest import Blueprint
from webargs.flaskparser import is_json_request

from agegate.auth import ROLE_ATTR


class FastBlueprint(Blueprint):
    """A flask-smorest Blueprint whose hot routes can answer a plainly valid JSON body directly.

    The route stays declared and documented as usual (`@blp.arguments`, `@blp.response`,
    `@roles`), and everything not plainly valid still goes through that chain, so every error
    keeps its status and words and `/openapi.json` is unchanged. On a registration check the
    chain (webargs, marshmallow, four flask-smorest wrappers) costs more than the check's own
    validation.
    """

    def fast_path(self, endpoint: str, load_fast: Callable[[Any], dict[str, Any] | None],
                  handle: Callable[[dict[str, Any]], Any]) -> None:
        """Serve `endpoint` (a route of this blueprint) as `handle(load_fast(body))` when the
        request is JSON and `load_fast` accepts its body; anything else (no JSON content type,
        malformed JSON, `load_fast` returning None) goes to the documented view.

        `load_fast` must accept only what the route's schema accepts and return what the
        schema's `load` would, and `handle` must be what the documented view does with it.
        Blueprint hooks, authentication and error handlers apply as to any view.
        """

        def install(state: BlueprintSetupState) -> None:
            name = f"{state.name_prefix}.{state.name}.{endpoint}".lstrip(".")
            documented = state.app.view_functions[name]

            def fast_view(**view_args: Any) -> Any:
                if not view_args and is_json_request(request):
                    try:
                        # As webargs does: UTF-8 only, then the standard library's JSON.
                        raw = json.loads(request.get_data(cache=True).decode("utf-8"))
                    except ValueError:
                        raw = None  # the documented view answers it with the usual 400
                    data = load_fast(raw) if raw is not None else None
                    if data is not None:
                        return handle(data)
                return documented(**view_args)

            fast_view.__name__ = documented.__name__
            fast_view.__doc__ = documented.__doc__
            # The route's access rule travels with it: authentication reads it from the view.
            setattr(fast_view, ROLE_ATTR, getattr(documented, ROLE_ATTR))
            state.app.view_functions[name] = fast_view

        self.record(install)
