"""POST /v1/age-checks."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from marshmallow import ValidationError, fields, pre_load, validate, validates

from agegate.schemas.common import StrictSchema, identifier
from agegate.services.jurisdictions import COUNTRIES

# Stricter than the fields' own checks (ASCII digits only, no trailing newline): anything
# these reject goes through marshmallow, which accepts or rejects it exactly as before.
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_REGION = re.compile(r"[A-Z0-9]{1,3}")
_IDENTIFIER = re.compile(r"[\x21-\x7e]{1,256}")


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

    def load_fast(self, raw: Any) -> dict[str, Any] | None:
        """What `load(raw)` returns, for a body that is plainly valid; None for anything else,
        so marshmallow decides (and words any error) exactly as before.

        A registration check is dominated by marshmallow's generic machinery (~0.2 ms); this
        runs the same normalisation and the same field validators directly. It only ever
        accepts a subset of what `load` accepts, and tests compare the two on edge cases.
        """
        if type(raw) is not dict or not raw.keys() <= self.fields.keys():
            return None
        if "date_of_birth" not in raw or "country" not in raw:
            return None
        for value in raw.values():
            if type(value) is not str:
                return None
        data = self.normalise_places(raw)
        born_text = data["date_of_birth"]
        if not _ISO_DATE.fullmatch(born_text) or data["country"] not in COUNTRIES:
            return None
        try:
            data["date_of_birth"] = date.fromisoformat(born_text)
            for name, value in data.items():
                if name != "date_of_birth":
                    for validator in self.fields[name].validators:
                        validator(value)
        except (ValueError, ValidationError):
            return None
        if "region" in data and not _REGION.fullmatch(data["region"]):
            return None
        for name in ("device_id", "session_id", "account_id"):
            if name in data and not _IDENTIFIER.fullmatch(data[name]):
                return None  # e.g. a trailing newline, which the field's `$` lets through
        return data

    @validates("country")
    def known_country(self, value: str, **kwargs) -> None:
        if value not in COUNTRIES:
            raise ValidationError("Use an ISO 3166-1 alpha-2 country code.")


class AgeCheckResponseSchema(StrictSchema):
    check_id = fields.String(required=True)
    decision = fields.String(required=True, validate=validate.OneOf(["allow", "deny"]))
    reason = fields.String(
        required=True,
        validate=validate.OneOf(
            ["of_age", "under_minimum_age", "previous_underage_attempt", "identity_blocked"]
        ),
    )
    message = fields.String(required=True, metadata={"description": "Neutral; safe to show."})
