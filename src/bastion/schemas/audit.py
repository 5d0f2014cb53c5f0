"""Audit event schema."""

from __future__ import annotations

from marshmallow import Schema, fields

from bastion.schemas.common import UtcDateTime


class AuditEventSchema(Schema):
    id = fields.UUID(dump_only=True)
    action = fields.String(dump_only=True)
    actor_id = fields.String(dump_only=True, allow_none=True)
    target_type = fields.String(dump_only=True, allow_none=True)
    target_id = fields.String(dump_only=True, allow_none=True)
    ip = fields.String(dump_only=True, allow_none=True)
    request_id = fields.String(dump_only=True, allow_none=True)
    created_at = UtcDateTime(dump_only=True)
    details = fields.Dict(dump_only=True)
