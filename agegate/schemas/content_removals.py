"""POST /v1/content-removals and its notice (Cal. Bus. & Prof. Code §22581)."""

from __future__ import annotations

from marshmallow import fields, pre_load, validate

from agegate.schemas.common import StrictSchema, identifier

MAX_ITEMS = 500


class ContentItemSchema(StrictSchema):
    content_id = identifier(required=True)
    author_account_id = identifier(required=True)
    visibility = fields.String(validate=validate.Length(min=1, max=32),
                               metadata={"description": "e.g. public"})
    posted_by = fields.String(load_default="self",
                              validate=validate.OneOf(["self", "third_party"]))
    anonymized = fields.Boolean(load_default=False)
    compensated = fields.Boolean(load_default=False)
    legal_hold = fields.Boolean(load_default=False)


class ContentRemovalSchema(StrictSchema):
    account_id = identifier(required=True)
    region = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$",
                                 error="Use an ISO 3166-2 code such as US-CA."),
    )
    items = fields.List(fields.Nested(ContentItemSchema), required=True,
                        validate=validate.Length(min=1, max=MAX_ITEMS))

    @pre_load
    def upper_region(self, data, **kwargs):
        """Accept `us-ca` as `US-CA`."""
        if isinstance(data, dict) and isinstance(data.get("region"), str):
            data = {**data, "region": data["region"].strip().upper()}
        return data


class RefusalSchema(StrictSchema):
    content_id = fields.String(required=True)
    reason = fields.String(
        required=True,
        validate=validate.OneOf(["not_author", "third_party_repost", "anonymized",
                                 "compensated", "legal_hold"]),
    )


class ContentRemovalResultSchema(StrictSchema):
    request_id = fields.String(required=True)
    removed = fields.List(fields.String(), required=True)
    refused = fields.List(fields.Nested(RefusalSchema), required=True)


class NoticeSchema(StrictSchema):
    law = fields.String(required=True)
    right = fields.String(required=True)
    how_to_request = fields.String(required=True)
    limitations = fields.String(required=True)
    text = fields.String(required=True, metadata={"description": "All of it, to show as is."})
