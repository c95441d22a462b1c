"""Parent requests: submission, verification, status, and the reviewer's and admin's views."""

from __future__ import annotations

from marshmallow import ValidationError, fields, pre_load, validate, validates_schema

from agegate.schemas.common import StrictSchema, identifier
from agegate.services.parent_requests import CHILD_KINDS, MAX_NOTE_CHARS, REQUEST_TYPES

MAX_DETAILS_CHARS = 2000


class ChildSchema(StrictSchema):
    """Exactly one way of naming the child's account."""

    username = fields.String(validate=validate.Length(min=1, max=64))
    email = fields.Email(validate=validate.Length(max=254),
                         error_messages={"invalid": "Not a valid email address."})
    account_id = identifier()

    @pre_load
    def trim(self, data, **kwargs):
        """Trim surrounding spaces from the values."""
        if isinstance(data, dict):
            return {k: v.strip() if isinstance(v, str) else v for k, v in data.items()}
        return data

    @validates_schema
    def exactly_one(self, data, **kwargs) -> None:
        """Name the child by one of username, email or account_id, not several."""
        given = [k for k in CHILD_KINDS if data.get(k)]
        if len(given) != 1:
            raise ValidationError("Give exactly one of username, email or account_id.")


class ParentRequestSchema(StrictSchema):
    parent_name = fields.String(required=True, validate=validate.Length(min=1, max=200),
                                metadata={"description": "Used in the mail only; not stored."})
    parent_email = fields.Email(
        required=True, validate=validate.Length(max=254),
        error_messages={"invalid": "Not a valid email address."},
        metadata={"description": "The code is mailed here; only a keyed hash is kept."},
    )
    child = fields.Nested(ChildSchema, required=True)
    request_type = fields.String(required=True, validate=validate.OneOf(REQUEST_TYPES))
    details = fields.String(
        load_default="", validate=validate.Length(max=MAX_DETAILS_CHARS),
        metadata={"description": "Shown to the reviewer; deleted once the request is decided."},
    )
    attestation = fields.Boolean(
        required=True,
        validate=validate.Equal(True, error="You must confirm you are the child's parent or "
                                             "legal guardian."),
    )

    @pre_load
    def trim_email(self, data, **kwargs):
        """Trim the parent's email."""
        if isinstance(data, dict) and isinstance(data.get("parent_email"), str):
            data = {**data, "parent_email": data["parent_email"].strip()}
        return data


class ParentRequestCreatedSchema(StrictSchema):
    request_id = fields.String(required=True)
    status = fields.String(required=True)
    status_token = fields.String(
        required=True, metadata={"description": "Keep it: it is the only way to see the status."})


class VerificationSchema(StrictSchema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=32))


class VerifiedSchema(StrictSchema):
    status = fields.String(required=True)
    due_at = fields.String(required=True)


class StatusQuerySchema(StrictSchema):
    status_token = fields.String(required=True, validate=validate.Length(min=1, max=128))


class ParentRequestStatusSchema(StrictSchema):
    request_id = fields.String(required=True)
    status = fields.String(
        required=True,
        metadata={"description": "pending_verification, verified, locked, "
                                 "awaiting_age_verification (a deletion, access or objection "
                                 "waits until the account holder's age is verified), "
                                 "fulfilled, closed (nothing could be done)"})
    request_type = fields.String(required=True)
    due_at = fields.String(required=True)
    outcome = fields.String(
        allow_none=True,
        metadata={"description": "account_deleted, export_ready, rectified, "
                                 "processing_stopped, or no_action: one neutral outcome "
                                 "whenever nothing could be done, whatever the cause (only "
                                 "the reviewer sees it); null until decided"})
    reason = fields.String(
        allow_none=True,
        metadata={"description": "Why the request waits, or the one neutral sentence of a "
                                 "request closed without action, in words for the parent."})


class ExportSchema(StrictSchema):
    request_id = fields.String(required=True)
    generated_at = fields.String(required=True)
    account = fields.Dict(required=True)


class AgeEvidenceSchema(StrictSchema):
    verdict = fields.String(required=True, metadata={"description": "minor or adult"})
    source = fields.String(required=True, metadata={
        "description": "reviewer_confirmed_minor, verification_minor, verification_adult, "
                       "age_signal"})
    at = fields.String(allow_none=True)
    method = fields.String(allow_none=True)


class AccountAgeSchema(StrictSchema):
    seen = fields.Boolean(required=True, metadata={
        "description": "Whether this service holds or held anything on the account."})
    status = fields.String(allow_none=True, metadata={
        "description": "active, restricted, terminated; null for an account never seen"})
    established = fields.String(required=True, metadata={
        "description": "minor, adult or unknown: deletion and access need minor"})
    evidence = fields.List(fields.Nested(AgeEvidenceSchema), required=True)
    score = fields.Float(allow_none=True, metadata={
        "description": "The classifier's latest score: a reason to verify, not evidence"})
    band = fields.String(allow_none=True)


class ReviewViewSchema(StrictSchema):
    request_id = fields.String(required=True)
    status = fields.String(required=True)
    request_type = fields.String(required=True)
    child_kind = fields.String(required=True)
    child_account_id = fields.String(allow_none=True)
    details = fields.String(required=True)
    created_at = fields.String(required=True)
    due_at = fields.String(required=True)
    case_id = fields.String(allow_none=True)
    outcome = fields.String(allow_none=True, metadata={
        "description": "The outcome, or why nothing was done: nothing_held, refused_adult, "
                       "age_unverifiable, rejected (the parent sees only no_action)."})
    note = fields.String(allow_none=True)
    account_age = fields.Nested(
        AccountAgeSchema, allow_none=True,
        metadata={"description": "What this service knows about the child account's age "
                                 "(null until the account is resolved)."})


class ResolveChildSchema(StrictSchema):
    account_id = identifier(required=True)
    identifier = fields.String(
        validate=validate.Length(min=1, max=254),
        metadata={"description": "The username or email the platform holds for that account; "
                                 "must match the request (not needed when the parent gave "
                                 "the account id)."},
    )
    note = fields.String(validate=validate.Length(max=MAX_NOTE_CHARS))


class ListingQuerySchema(StrictSchema):
    overdue = fields.Boolean(load_default=False)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class ListingItemSchema(StrictSchema):
    request_id = fields.String(required=True)
    status = fields.String(required=True)
    request_type = fields.String(required=True)
    created_at = fields.String(required=True)
    due_at = fields.String(required=True)
    case_id = fields.String(allow_none=True)
    overdue = fields.Boolean(required=True)


class ListingSchema(StrictSchema):
    requests = fields.List(fields.Nested(ListingItemSchema), required=True)


class OutboxQuerySchema(StrictSchema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class OutboxMessageSchema(StrictSchema):
    id = fields.String(required=True)
    at = fields.String(required=True)
    to = fields.String(required=True)
    subject = fields.String(required=True)
    body = fields.String(required=True)


class OutboxSchema(StrictSchema):
    messages = fields.List(fields.Nested(OutboxMessageSchema), required=True)
