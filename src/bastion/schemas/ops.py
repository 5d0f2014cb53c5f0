"""Bodies of the operational routes outside ``/api/v1``."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class HealthSchema(Schema):
    status = fields.String(dump_only=True, validate=validate.OneOf(["ok"]))


class ReadinessSchema(Schema):
    status = fields.String(dump_only=True, validate=validate.OneOf(["ready"]))


class JwkSchema(Schema):
    """A public ES256 key as a JSON Web Key (RFC 7517)."""

    kty = fields.String(dump_only=True, validate=validate.OneOf(["EC"]))
    crv = fields.String(dump_only=True, validate=validate.OneOf(["P-256"]))
    x = fields.String(dump_only=True)
    y = fields.String(dump_only=True)
    kid = fields.String(dump_only=True)
    alg = fields.String(dump_only=True, validate=validate.OneOf(["ES256"]))
    use = fields.String(dump_only=True, validate=validate.OneOf(["sig"]))


class JwksSchema(Schema):
    keys = fields.List(fields.Nested(JwkSchema), dump_only=True)
