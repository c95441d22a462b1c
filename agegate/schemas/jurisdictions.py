"""GET /v1/jurisdictions/{code}."""

from __future__ import annotations

from marshmallow import fields, validate

from agegate.schemas.common import StrictSchema
from agegate.services.jurisdictions import ASSURANCE_METHODS, STATUSES, WHEN


class AgeSignalRuleSchema(StrictSchema):
    required = fields.Boolean(required=True, metadata={
        "description": "Whether the law requires the app to request an OS/app-store age signal."})
    effective = fields.String(allow_none=True, required=True, metadata={
        "description": "YYYY-MM-DD the obligation starts; null when there is none."})
    when = fields.List(fields.String(validate=validate.OneOf(WHEN)), required=True)
    law = fields.String(required=True, metadata={"description": "The law cited."})


class AssuranceRuleSchema(StrictSchema):
    self_declaration_sufficient = fields.Boolean(required=True, metadata={
        "description": "False: a declared age does not admit anyone; an assurance result must."})
    accepted_methods = fields.List(fields.String(validate=validate.OneOf(ASSURANCE_METHODS)),
                                   required=True, metadata={
        "description": "The methods that can be highly effective here (none where a declared "
                       "age suffices)."})
    estimation_challenge_age = fields.Integer(allow_none=True, required=True, metadata={
        "description": "An estimation counts only with at least this challenge age."})
    liveness_required = fields.Boolean(required=True, metadata={
        "description": "An estimation counts only with a liveness check."})
    law = fields.String(required=True)
    effective = fields.String(allow_none=True, required=True, metadata={
        "description": "YYYY-MM-DD the obligation started; null when there is none."})
    sources = fields.List(fields.String(), required=True)
    uncertain = fields.Boolean(required=True, metadata={
        "description": "True when the rule's scope, dates or methods must be checked."})
    note = fields.String(required=True)


class JurisdictionSchema(StrictSchema):
    jurisdiction = fields.String(required=True, metadata={"description": "The code asked for."})
    resolved_from = fields.String(required=True, metadata={
        "description": "The row that answered: the code itself, its country (US-NY -> US), "
                       "or * for a country without a row."})
    name = fields.String(required=True)
    minimum_age = fields.Integer(required=True)
    age_signal = fields.Nested(AgeSignalRuleSchema, required=True)
    rerequest = fields.String(required=True, metadata={
        "description": "When the app should ask the platform for its age signal again."})
    sources = fields.List(fields.String(), required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    uncertain = fields.Boolean(required=True, metadata={
        "description": "True when the row's dates or enforceability must be checked."})
    note = fields.String(required=True)
    assurance = fields.Nested(AssuranceRuleSchema, required=True)
    policy_version = fields.String(required=True, metadata={
        "description": "The table's version, recorded on every assurance record."})
