"""POST /v1/age-checks."""

from __future__ import annotations

from marshmallow import ValidationError, fields, pre_load, validate, validates

from agegate.schemas.common import StrictSchema, identifier
from agegate.services.jurisdictions import ASSURANCE_METHODS, COUNTRIES


class AgeCheckRequestSchema(StrictSchema):
    date_of_birth = fields.Date(
        required=True, format="%Y-%m-%d",
        error_messages={"invalid": "Enter a real date as YYYY-MM-DD."},
        metadata={"description": "Used for this decision only; never stored or logged."},
    )
    country = fields.String(required=True, metadata={"description": "ISO 3166-1 alpha-2"})
    region = fields.String(
        validate=validate.Regexp(r"^[A-Z0-9]{1,3}$", error="Use an ISO 3166-2 subdivision code."),
        metadata={"description": "Subdivision, e.g. CA (US-CA is accepted too)"},
    )
    device_id = identifier()
    email = fields.Email(validate=validate.Length(max=254),
                         error_messages={"invalid": "Not a valid email address."})
    session_id = identifier()
    account_id = identifier()

    @pre_load
    def normalise_places(self, data, **kwargs):
        """Trim the email; accept `ca` and `US-CA` as the region of country `US`."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("email"), str):
            data["email"] = data["email"].strip()
        if isinstance(data.get("country"), str):
            data["country"] = data["country"].strip().upper()
        if isinstance(data.get("region"), str):
            region = data["region"].strip().upper()
            country = data.get("country")
            if isinstance(country, str) and region.startswith(f"{country}-"):
                region = region[len(country) + 1:]
            data["region"] = region
        return data

    @validates("country")
    def known_country(self, value: str, **kwargs) -> None:
        if value not in COUNTRIES:
            raise ValidationError("Use an ISO 3166-1 alpha-2 country code.")


class AgeCheckResponseSchema(StrictSchema):
    check_id = fields.String(required=True)
    decision = fields.String(required=True, validate=validate.OneOf(["allow", "deny", "verify"]),
                             metadata={"description": "verify: a declared age is not enough "
                                       "here; an age-assurance result must admit the person."})
    reason = fields.String(
        required=True,
        validate=validate.OneOf(
            ["of_age", "under_minimum_age", "previous_underage_attempt", "identity_blocked",
             "assurance_required"]
        ),
    )
    message = fields.String(required=True, metadata={"description": "Neutral; safe to show."})
    methods = fields.List(fields.String(validate=validate.OneOf(ASSURANCE_METHODS)), metadata={
        "description": "verify only: the methods the jurisdiction accepts."})
