"""The apispec plugin: how marshmallow schemas become JSON Schema here."""

from __future__ import annotations

from typing import Any

from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import resolve_schema_cls
from apispec.ext.marshmallow.openapi import OpenAPIConverter
from marshmallow import Schema

from bastion.schemas.common import LoadSchema


class SchemaConverter(OpenAPIConverter):
    """Mark every field of a response schema required; drop null defaults.

    Dump schemas always write every field (``null`` where ``allow_none``),
    so the document promises it; a field that is sometimes left out carries
    ``metadata={"optional": True}``. Load schemas keep marshmallow's own
    ``required`` flags. A query field whose ``load_default`` is None but
    which rejects an explicit null gets no ``default``, since null is not
    one of its values. Query parameters allow an empty value, because
    ``load_query`` treats ``?q=`` as if ``q`` were absent.
    """

    def init_parameter_attribute_functions(self) -> None:
        super().init_parameter_attribute_functions()
        self.add_parameter_attribute_function(_query_allows_empty_value)

    def field2property(self, field: Any) -> dict[str, Any]:
        prop: dict[str, Any] = super().field2property(field)
        if "default" in prop and prop["default"] is None and not field.allow_none:
            del prop["default"]
        return prop

    def schema2jsonschema(self, schema: Any) -> dict[str, Any]:
        jsonschema: dict[str, Any] = super().schema2jsonschema(schema)  # type: ignore[no-untyped-call]
        instance = schema if isinstance(schema, Schema) else schema()
        if isinstance(instance, LoadSchema):
            return jsonschema
        jsonschema["required"] = [
            name
            for name, field in instance.fields.items()
            if not field.load_only and not field.metadata.get("optional")
        ]
        return jsonschema


def _query_allows_empty_value(
    _converter: Any, _field: Any, ret: dict[str, Any], **_kwargs: Any
) -> dict[str, Any]:
    if ret.get("in") != "query":
        return {}
    return {"allowEmptyValue": True}


class BastionPlugin(MarshmallowPlugin):
    Converter = SchemaConverter


def schema_name(schema: Any) -> str:
    """Name a component after its class, plus ``Partial`` or ``Without...``."""
    cls: Any = resolve_schema_cls(schema)
    name: str = cls.__name__.removesuffix("Schema")
    if isinstance(schema, Schema):
        if schema.partial:
            name += "Partial"
        for excluded in sorted(schema.exclude):
            name += "Without" + excluded.title().replace("_", "")
    return name
