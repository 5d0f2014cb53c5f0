"""The one error body, for every status and every layer."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

ERROR_CODE_PATTERN = r"^[a-z][a-z0-9_]*$"


class ErrorDetailSchema(Schema):
    code = fields.String(dump_only=True, validate=validate.Regexp(ERROR_CODE_PATTERN))
    message = fields.String(dump_only=True)
    request_id = fields.String(dump_only=True)


class ValidationErrorDetailSchema(ErrorDetailSchema):
    """The error of a 422: ``fields`` maps each invalid input to its messages."""

    field_errors = fields.Dict(
        keys=fields.String(),
        attribute="fields",
        data_key="fields",
        dump_only=True,
        metadata={"optional": True},
    )


class ErrorSchema(Schema):
    error = fields.Nested(ErrorDetailSchema, dump_only=True)


class ValidationErrorSchema(Schema):
    error = fields.Nested(ValidationErrorDetailSchema, dump_only=True)
