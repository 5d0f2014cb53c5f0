"""The account's audit trail."""

from __future__ import annotations

from flask import Blueprint, Response

from bastion import policy
from bastion.api.common import load_query, page_response
from bastion.auth import caller_context, current_user
from bastion.errors import ForbiddenError
from bastion.openapi import Page, operation
from bastion.schemas.audit import AuditEventSchema
from bastion.schemas.common import PageQuerySchema
from bastion.services import registry

bp = Blueprint("audit", __name__, url_prefix="/audit-events")

page_query_schema = PageQuerySchema()
audit_event_schema = AuditEventSchema()


@bp.get("")
@operation(query=PageQuerySchema, response=Page(AuditEventSchema), errors=(403,))
def list_audit_events() -> Response:
    """List the account's audit events, oldest first."""
    if not policy.can_read_audit(current_user().role):
        raise ForbiddenError("Only admins and owners can read the audit trail.")
    query = load_query(page_query_schema)
    items, next_cursor = registry().audit.list_events(
        caller_context(), limit=query["limit"], cursor=query["cursor"]
    )
    return page_response(audit_event_schema.dump(items, many=True), next_cursor)
