"""Review queue requests and responses."""

from __future__ import annotations

from marshmallow import fields, validate

from agegate.schemas.common import StrictSchema
from agegate.storage.cases import KINDS


class SignalWeightSchema(StrictSchema):
    name = fields.String(required=True)
    weight = fields.Float(required=True)


class CaseHistorySchema(StrictSchema):
    at = fields.String(required=True)
    event = fields.String(required=True)
    actor = fields.String()
    decision = fields.String()
    kind = fields.String()
    priority = fields.Float()
    outcome = fields.String()
    method = fields.String()


class CaseSchema(StrictSchema):
    case_id = fields.String(required=True)
    account_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    status = fields.String(required=True, validate=validate.OneOf(["open", "claimed", "decided"]))
    priority = fields.Float(required=True, metadata={
        "description": "Head start in the queue, in hours: kind, score and due date."})
    score = fields.Float(allow_none=True)
    top_signals = fields.List(fields.Nested(SignalWeightSchema))
    created_at = fields.String(required=True)
    due_at = fields.String(allow_none=True)
    claimed_by = fields.String(allow_none=True)
    lease_expires_at = fields.String(allow_none=True)
    decision = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    decided_at = fields.String(allow_none=True)
    deletion_id = fields.String(allow_none=True, metadata={
        "description": "Set on the response to a confirm_minor decision."})
    ref = fields.Dict(keys=fields.String(), values=fields.String())
    history = fields.List(fields.Nested(CaseHistorySchema))
    statement = fields.String(allow_none=True, metadata={
        "description": "Appeal cases: the member's statement (deleted with the case)."})


class CaseListQuerySchema(StrictSchema):
    status = fields.String(load_default="open",
                           validate=validate.OneOf(["open", "claimed", "decided"]))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    kind = fields.String(validate=validate.OneOf(KINDS))


class CaseListSchema(StrictSchema):
    cases = fields.List(fields.Nested(CaseSchema), required=True)


class ClaimQuerySchema(StrictSchema):
    kind = fields.String(validate=validate.OneOf(KINDS))


class ClaimSchema(StrictSchema):
    case = fields.Nested(CaseSchema, required=True)
    lease_expires_at = fields.String(required=True)


class DecisionSchema(StrictSchema):
    decision = fields.String(required=True, validate=validate.OneOf(
        ["confirm_minor", "not_minor", "request_verification", "fulfill", "reject", "uphold",
         "overturn"]))
    note = fields.String(allow_none=True, validate=validate.Length(max=2000), metadata={
        "description": "For reviewers; do not write a date of birth or an email here."})
