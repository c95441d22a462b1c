"""Platform age signals and revocations."""

from __future__ import annotations

from marshmallow import fields, validate

from agegate.schemas.common import StrictSchema, identifier
from agegate.services.age_signals import (
    LEVELS,
    MAX_AGE,
    MAX_INSTALL_IDS,
    METHOD_LEVEL,
    PARENTAL_APPROVAL,
    REVOCATION_REASONS,
    REVOCATION_SOURCES,
    SOURCES,
)

ACTIONS = ("none", "restricted", "case_opened")


def _age(**kwargs) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(min=0, max=MAX_AGE), **kwargs)


class AgeSignalRequestSchema(StrictSchema):
    source = fields.String(required=True, validate=validate.OneOf(SOURCES))
    observed_at = fields.AwareDateTime(required=True, format="iso", error_messages={
        "invalid": "Use an ISO-8601 timestamp.",
        "invalid_awareness": "Give the timestamp an offset, e.g. Z."})
    age_lower = _age(required=True)
    age_upper = _age(allow_none=True, load_default=None, metadata={
        "description": "null: open-ended (18+ is age_lower 18, age_upper null)."})
    method = fields.String(required=True, validate=validate.OneOf(list(METHOD_LEVEL)),
                           metadata={"description": "Sets the assurance level: self_declared, "
                                     "guardian_declared, other -> asserted; estimated, "
                                     "payment_checked -> standard; id_checked, confirmed -> "
                                     "enhanced."})
    jurisdiction = fields.String(validate=validate.Regexp(
        r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$", error="Use an ISO 3166 code such as US-CA."))
    install_id = identifier(metadata={"description": "Kept only as a keyed hash."})
    parental_approval = fields.String(validate=validate.OneOf(PARENTAL_APPROVAL))


class AgeSchema(StrictSchema):
    lower = fields.Integer(required=True)
    upper = fields.Integer(allow_none=True, required=True)
    assurance = fields.String(required=True, validate=validate.OneOf(LEVELS))
    source = fields.String(required=True, validate=validate.OneOf(SOURCES))
    observed_at = fields.String(required=True)
    conflict = fields.Boolean(required=True, metadata={
        "description": "True when two live signals' ranges do not overlap."})


class AgeSignalResponseSchema(StrictSchema):
    account_id = fields.String(required=True)
    age = fields.Nested(AgeSchema, allow_none=True, required=True)
    action = fields.String(required=True, validate=validate.OneOf(ACTIONS), metadata={
        "description": "case_opened: restricted and an age_signal case opened; restricted: the "
                       "account's age_signal case already stands; none."})


class RevocationRequestSchema(StrictSchema):
    source = fields.String(required=True, validate=validate.OneOf(REVOCATION_SOURCES))
    install_ids = fields.List(identifier(), required=True,
                              validate=validate.Length(min=1, max=MAX_INSTALL_IDS))
    reason = fields.String(required=True, validate=validate.OneOf(REVOCATION_REASONS))


class RevocationResponseSchema(StrictSchema):
    matched = fields.Integer(required=True, metadata={
        "description": "Accounts restricted (each with an age_signal case)."})
