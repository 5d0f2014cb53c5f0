"""Account schemas."""

from __future__ import annotations

from marshmallow import Schema, fields

from bastion.schemas.common import UtcDateTime


class AccountSchema(Schema):
    id = fields.UUID(dump_only=True)
    name = fields.String(dump_only=True)
    created_at = UtcDateTime(dump_only=True)
