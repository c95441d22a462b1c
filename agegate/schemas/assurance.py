"""Step-up age assurance: results relayed by the platform, records, the regulator's export."""

from __future__ import annotations

from marshmallow import ValidationError, fields, pre_load, validate, validates_schema

from agegate.schemas.common import StrictBoolean, StrictSchema, identifier
from agegate.services.assurance import ACTIONS, OUTCOMES
from agegate.services.jurisdictions import METHOD_CATEGORY, METHODS

JURISDICTION = validate.Regexp(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$",
                               error="Use an ISO 3166 code such as GB or US-CA, or EU.")
STATUSES = ("active", "pending_assurance", "restricted", "terminated")


def _upper(data: object, name: str) -> object:
    if isinstance(data, dict) and isinstance(data.get(name), str):
        return {**data, name: data[name].strip().upper()}
    return data


class AssuranceResultRequestSchema(StrictSchema):
    method = fields.String(required=True, validate=validate.OneOf(METHODS), metadata={
        "description": "verification: digital_identity, photo_id_matching, open_banking, "
                       "mobile_network_operator, credit_card; estimation: "
                       "facial_age_estimation, email_age_estimation; self_declaration is never "
                       "highly effective."})
    provider = fields.String(required=True, validate=[
        validate.Length(min=1, max=64),
        validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$", error="Use the vendor's name.")])
    evidence_id = identifier(required=True, metadata={
        "description": "The vendor's reference for this check (never a document number)."})
    outcome = fields.String(required=True, validate=validate.OneOf(OUTCOMES))
    threshold_age = fields.Integer(strict=True, load_default=18,
                                   validate=validate.Range(min=13, max=25))
    challenge_age = fields.Integer(strict=True, allow_none=True, load_default=None,
                                   validate=validate.Range(min=13, max=30), metadata={
        "description": "Estimation only: the age the estimate had to exceed."})
    liveness_checked = StrictBoolean(allow_none=True, load_default=None, metadata={
        "description": "Estimation: whether a liveness (anti-spoofing) check was done."})
    observed_at = fields.AwareDateTime(required=True, format="iso", error_messages={
        "invalid": "Use an ISO-8601 timestamp.",
        "invalid_awareness": "Give the timestamp an offset, e.g. Z."})
    jurisdiction = fields.String(validate=JURISDICTION, metadata={
        "description": "Where the person signs up; default: the jurisdiction whose age check "
                       "answered verify for this account."})

    @pre_load
    def normalise(self, data, **kwargs):
        return _upper(data, "jurisdiction")

    @validates_schema
    def estimation_only(self, data, **kwargs):
        """A challenge age belongs to an estimation (on a verification it is a caller's bug)."""
        method = data.get("method")
        if data.get("challenge_age") is not None and method in METHOD_CATEGORY \
                and METHOD_CATEGORY[method] != "estimation":
            raise ValidationError({"challenge_age": ["Only an estimation method has one."]})


class AssuranceResultSchema(StrictSchema):
    assurance_id = fields.String(required=True)
    account_id = fields.String(required=True)
    highly_effective = fields.Boolean(required=True)
    why = fields.String(required=True, metadata={
        "description": "Why the result is or is not highly effective for the jurisdiction."})
    action = fields.String(required=True, validate=validate.OneOf(ACTIONS), metadata={
        "description": "admitted: a pending_assurance account is now active; case_opened: an "
                       "under-18 finding restricted the account and opened its age_signal "
                       "case; restricted: that case already stands; none."})


class AssuranceRecordSchema(StrictSchema):
    assurance_id = fields.String(required=True)
    method = fields.String(required=True, validate=validate.OneOf(METHODS))
    category = fields.String(required=True, validate=validate.OneOf(
        sorted(set(METHOD_CATEGORY.values()))))
    provider = fields.String(required=True)
    evidence_id = fields.String(allow_none=True, required=True)
    outcome = fields.String(required=True, validate=validate.OneOf(OUTCOMES))
    threshold_age = fields.Integer(required=True)
    challenge_age = fields.Integer(allow_none=True, required=True)
    liveness_checked = fields.Boolean(allow_none=True, required=True)
    highly_effective = fields.Boolean(required=True)
    why = fields.String(required=True)
    jurisdiction = fields.String(allow_none=True, required=True)
    policy_version = fields.String(required=True, metadata={
        "description": "The jurisdiction table's version the result was judged under."})
    observed_at = fields.String(required=True)
    recorded_at = fields.String(required=True)
    action = fields.String(required=True, validate=validate.OneOf(ACTIONS))


class AccountAssuranceSchema(StrictSchema):
    account_id = fields.String(required=True)
    status = fields.String(allow_none=True, required=True, validate=validate.OneOf(STATUSES),
                           metadata={"description": "null: the account is not known beyond "
                                                    "its records."})
    records = fields.List(fields.Nested(AssuranceRecordSchema), required=True, metadata={
        "description": "Newest first; kept AGEGATE_ASSURANCE_RETENTION_DAYS, also after a "
                       "termination."})


class ExportLineSchema(AssuranceRecordSchema):
    """One line of the export: a record with a keyed account reference, never an account id."""

    account_ref = fields.String(allow_none=True, required=True, metadata={
        "description": "A keyed hash of the account id (null: a result without an account)."})


class ExportQuerySchema(StrictSchema):
    start = fields.Date(required=True, data_key="from", format="%Y-%m-%d", error_messages={
        "invalid": "Enter a real date as YYYY-MM-DD."})
    end = fields.Date(required=True, data_key="to", format="%Y-%m-%d", error_messages={
        "invalid": "Enter a real date as YYYY-MM-DD."})
    jurisdiction = fields.String(validate=JURISDICTION)

    @pre_load
    def normalise(self, data, **kwargs):
        return _upper(dict(data), "jurisdiction") if hasattr(data, "keys") else data
