"""The signal stream's figures for operators."""

from __future__ import annotations

from marshmallow import fields

from agegate.schemas.common import StrictSchema


class IngestStatusSchema(StrictSchema):
    stream = fields.String(required=True, metadata={"description": "The signal stream's key."})
    group = fields.String(required=True, metadata={"description": "The workers' consumer group."})
    length = fields.Integer(required=True, metadata={
        "description": "Entries in the stream: applied entries are deleted once acknowledged, "
                       "so this is lag + pending."})
    lag = fields.Integer(required=True, metadata={
        "description": "Entries not yet delivered to any worker."})
    pending = fields.Integer(required=True, metadata={
        "description": "Entries delivered to a worker and not yet acknowledged."})
    dead = fields.Integer(required=True, metadata={
        "description": "Entries in the dead-letter stream (`<stream>:dead`)."})
    consumers = fields.Integer(required=True, metadata={
        "description": "How many consumer names the group knows: workers that have read an "
                       "entry, less names idle an hour with nothing pending."})
