"""Shared schema pieces: the strict base and the error shape for the OpenAPI document."""

from __future__ import annotations

import re

from marshmallow import RAISE, Schema, fields, validate


class StrictSchema(Schema):
    """Unknown fields are a 422: they are usually a caller's typo."""

    class Meta:
        unknown = RAISE


class StrictBoolean(fields.Boolean):
    """JSON's true or false only: marshmallow's Boolean also takes 1, 0, "yes", "on", ..."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class NoBodySchema(StrictSchema):
    """The body of a route that takes none: nothing, `{}`, or a 422 naming each field sent
    (`{"case_id": ...}` posted to the claims route is a typo to refuse, not to ignore)."""


# The same rule as a regular expression, for values that come from headers.
IDENTIFIER = re.compile(r"^[\x21-\x7e]{1,256}$")


def identifier(**kwargs) -> fields.String:
    """A caller's opaque identifier: 1-256 printable characters."""
    return fields.String(
        validate=[validate.Length(min=1, max=256),
                  validate.Regexp(r"^[\x21-\x7e]+$", error="Use printable ASCII, no spaces.")],
        **kwargs,
    )


class ErrorDetailSchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    # `fields` would shadow Schema.fields, so the attribute is renamed and the key kept.
    field_errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                               data_key="fields")


class ErrorSchema(Schema):
    """Every error, on every route: {"error": {"code", "message", "fields"?}}."""

    error = fields.Nested(ErrorDetailSchema, required=True)
