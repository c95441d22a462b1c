"""Termination and deletion records."""

from __future__ import annotations

from marshmallow import fields, validate

from agegate.schemas.common import StrictSchema


class TerminationRequestSchema(StrictSchema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=200))


class TerminationResponseSchema(StrictSchema):
    deletion_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["pending", "completed"]))


class DeletionSchema(StrictSchema):
    deletion_id = fields.String(required=True)
    account_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["pending", "completed"]))
    systems = fields.Dict(keys=fields.String(),
                          values=fields.String(validate=validate.OneOf(["pending", "done"])),
                          required=True)
    requested_at = fields.String(required=True)
    due_at = fields.String(required=True)
    completed_at = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)


class DeletionListQuerySchema(StrictSchema):
    status = fields.String(validate=validate.OneOf(["pending", "completed"]))
    overdue = fields.Boolean()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class DeletionListSchema(StrictSchema):
    deletions = fields.List(fields.Nested(DeletionSchema), required=True)


class AckSchema(StrictSchema):
    system = fields.String(required=True, validate=validate.Length(min=1, max=64))
