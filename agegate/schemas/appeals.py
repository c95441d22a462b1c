"""Appeals."""

from __future__ import annotations

from marshmallow import fields, validate

from agegate.schemas.common import StrictSchema
from agegate.services.appeals import MAX_STATEMENT


class AppealRequestSchema(StrictSchema):
    statement = fields.String(required=True, validate=validate.Length(min=1, max=MAX_STATEMENT),
                              metadata={"description": "The member's words, shown to the "
                                        "reviewer and deleted with the case."})


class AppealCreatedSchema(StrictSchema):
    appeal_id = fields.String(required=True)
    case_id = fields.String(required=True)
    due_at = fields.String(required=True)


class AppealSchema(StrictSchema):
    appeal_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["open", "decided"]))
    outcome = fields.String(allow_none=True, required=True,
                            validate=validate.OneOf(["upheld", "overturned"]))
    due_at = fields.String(required=True)
