"""Signals, scores and verification results."""

from __future__ import annotations

import re

from marshmallow import ValidationError, fields, validate, validates_schema

from agegate.schemas.age_signals import AgeSchema
from agegate.schemas.common import StrictSchema, identifier
from agegate.schemas.review import SignalWeightSchema

# Account ids are the platform's opaque ids: 1-256 printable ASCII characters (path or stream).
ACCOUNT_ID = re.compile(r"^[\x21-\x7e]{1,256}$")
ACCOUNT_ID_ERROR = "Use 1-256 printable ASCII characters."
MAX_SIGNALS = 500
MAX_TEXT = 10_000
TEXT_TYPES = ("message", "profile_text", "message_board_post")
# Which optional fields each signal type takes, and which it requires.
SIGNAL_FIELDS = {
    "message": ({"text"}, {"text"}),
    "profile_text": ({"text"}, {"text"}),
    "message_board_post": ({"text"}, {"text"}),
    "session": ({"duration_s"}, {"duration_s"}),
    "payment": ({"method"}, {"method"}),
    "report": ({"reason"}, {"reason"}),
    "dob_change": (set(), set()),
}


class SignalSchema(StrictSchema):
    type = fields.String(required=True, validate=validate.OneOf(list(SIGNAL_FIELDS)))
    at = fields.AwareDateTime(required=True, format="iso", error_messages={
        "invalid": "Use an ISO-8601 timestamp.",
        "invalid_awareness": "Give the timestamp an offset, e.g. Z."})
    text = fields.String(validate=validate.Length(max=MAX_TEXT), metadata={
        "description": "Used to score, never stored."})
    duration_s = fields.Integer(validate=validate.Range(min=0, max=7 * 86_400))
    method = fields.String(validate=validate.OneOf(
        ["card", "prepaid_card", "gift_card", "wallet", "none"]))
    reason = fields.String(validate=[validate.Length(min=1, max=64),
                                     validate.Regexp(r"^[a-z_]+$", error="Use a reason code.")])

    @validates_schema
    def fields_for_type(self, data, **kwargs):
        """Each type carries exactly its own fields (a text on a session is a caller's bug)."""
        kind = data.get("type")
        if kind not in SIGNAL_FIELDS:
            return
        allowed, required = SIGNAL_FIELDS[kind]
        errors = {}
        for name in ("text", "duration_s", "method", "reason"):
            if name in data and name not in allowed:
                errors[name] = [f"Not a field of a {kind} signal."]
            elif name in required and name not in data:
                errors[name] = [f"Required for a {kind} signal."]
        if errors:
            raise ValidationError(errors)


class SignalsRequestSchema(StrictSchema):
    signals = fields.List(fields.Nested(SignalSchema), required=True,
                          validate=validate.Length(min=1, max=MAX_SIGNALS))


class SignalStreamEntrySchema(SignalsRequestSchema):
    """One signal-stream entry (API.md "Signal stream"): the same `signals` as the HTTP body,
    with its `signals` field already parsed from JSON, plus the account and an idempotency key."""

    account_id = fields.String(required=True,
                               validate=validate.Regexp(ACCOUNT_ID, error=ACCOUNT_ID_ERROR))
    id = identifier()


class ScoreSchema(StrictSchema):
    account_id = fields.String(required=True)
    score = fields.Float(required=True)
    band = fields.String(required=True, validate=validate.OneOf(["low", "medium", "high"]))
    flagged = fields.Boolean(required=True)
    case_id = fields.String(allow_none=True, required=True)
    top_signals = fields.List(fields.Nested(SignalWeightSchema), required=True)


class AccountSchema(StrictSchema):
    account_id = fields.String(required=True)
    status = fields.String(required=True,
                           validate=validate.OneOf(["active", "pending_assurance", "restricted",
                                                    "terminated"]), metadata={
        "description": "pending_assurance: an age check answered verify; an assurance result "
                       "admits the account."})
    score = fields.Float(allow_none=True, required=True)
    band = fields.String(allow_none=True, required=True)
    case_id = fields.String(allow_none=True, required=True)
    updated_at = fields.String(allow_none=True, required=True)
    deletion_id = fields.String(allow_none=True)
    processing_stopped = fields.Boolean()
    age = fields.Nested(AgeSchema, allow_none=True, metadata={
        "description": "From platform age signals: the lowest range of the highest assurance "
                       "level; null when nothing is known."})


class VerificationRequestSchema(StrictSchema):
    outcome = fields.String(required=True, validate=validate.OneOf(["adult", "minor"]))
    method = fields.String(required=True,
                           validate=validate.OneOf(["id_document", "face_estimate", "card"]))
    date_of_birth = fields.Date(format="%Y-%m-%d", error_messages={
        "invalid": "Enter a real date as YYYY-MM-DD."}, metadata={
        "description": "Only times the identity block; never stored."})
