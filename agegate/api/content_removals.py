"""California minor content removal (Cal. Bus. & Prof. Code §22581)."""

from __future__ import annotations

from flask_smorest import Blueprint

from agegate.api import actor, idempotency, services
from agegate.auth import public, roles
from agegate.schemas.common import ErrorSchema
from agegate.schemas.content_removals import (
    ContentRemovalResultSchema,
    ContentRemovalSchema,
    NoticeSchema,
)
from agegate.services.content_removals import NOTICE

blp = Blueprint("content_removals", __name__, url_prefix="/v1",
                description="California minor content removal (§22581)")


@blp.route("/content-removals", methods=["POST"])
@blp.arguments(ContentRemovalSchema())
@blp.doc(parameters=[idempotency.parameter(
    "this removal request (a retry gets the same request_id)")])
@blp.response(202, ContentRemovalResultSchema)
@blp.alt_response(422, schema=ErrorSchema, description="Invalid, or region not eligible; or "
                  "idempotency_key_reused (the key came with another body)")
@roles("signals")
def request_content_removal(data):
    """Remove a signed-in user's own posts, except where §22581(b) says they may stay."""
    return services().content_removals.request(
        data, actor(), idempotency.key_for(f"content-removals\x00{data['account_id']}"))


@blp.route("/content-removals/notice", methods=["GET"])
@blp.response(200, NoticeSchema)
@public
def content_removal_notice():
    """The notice the platform must show (§22581(a)(2)-(4)); public, as it is shown to anyone."""
    return NOTICE
