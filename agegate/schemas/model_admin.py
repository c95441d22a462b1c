"""The loaded model and the feedback examples, for operators."""

from __future__ import annotations

from marshmallow import fields

from agegate.schemas.common import StrictSchema


class ExampleCountsSchema(StrictSchema):
    minor = fields.Integer(required=True, metadata={
        "description": "Stored examples with the verdict minor (confirm_minor, verification "
                       "minor)."})
    adult = fields.Integer(required=True, metadata={
        "description": "Stored examples with the verdict adult (not_minor, verification "
                       "adult)."})


class ModelStatusSchema(StrictSchema):
    version = fields.String(required=True, allow_none=True, metadata={
        "description": "The loaded model's version (null while no model is loaded)."})
    text_version = fields.String(required=True, allow_none=True, metadata={
        "description": "The message-level text model the account states are scored with: "
                       "the same across recalibrations, new with a full retrain."})
    prevalence = fields.Float(required=True, allow_none=True, metadata={
        "description": "The platform share of minor accounts scores are calibrated to "
                       "(AGEGATE_MINOR_PREVALENCE)."})
    review_threshold = fields.Float(required=True, allow_none=True, metadata={
        "description": "Scores at or over this open a review case (AGEGATE_REVIEW_THRESHOLD)."})
    examples = fields.Nested(ExampleCountsSchema, required=True, metadata={
        "description": "De-identified examples stored for `agegate recalibrate`."})
    recalibrated_at = fields.String(required=True, allow_none=True, metadata={
        "description": "When the loaded version was made by `agegate recalibrate` (ISO 8601 "
                       "UTC), null for a fully trained version."})
