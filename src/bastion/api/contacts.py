"""Contacts of the caller's account."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import Blueprint, Response, jsonify, url_for
from marshmallow import Schema

from bastion import policy
from bastion.api.common import (
    if_match_version,
    load_json,
    load_query,
    no_content,
    page_response,
    require_version,
    resource_response,
)
from bastion.api.idempotency import idempotent
from bastion.auth import caller_context, current_user
from bastion.errors import ForbiddenError
from bastion.openapi import Page, operation
from bastion.policy import protected_fields
from bastion.schemas.contacts import (
    MAX_IMPORT_ROWS,
    ContactImportResultSchema,
    ContactImportSchema,
    ContactListQuerySchema,
    ContactSchema,
    ContactWriteSchema,
    load_import_rows,
)
from bastion.services import registry

bp = Blueprint("contacts", __name__, url_prefix="/contacts")

list_query_schema = ContactListQuerySchema()
contact_write_schema = ContactWriteSchema()
contact_import_schema = ContactImportSchema()
import_result_schema = ContactImportResultSchema()
# ContactImportSchema checks only the list; load_import_rows checks each row
# with ContactWriteSchema, so the document shows the rows as that schema.
IMPORT_BODY = {
    "type": "object",
    "properties": {
        "contacts": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_IMPORT_ROWS,
            "items": ContactWriteSchema,
        }
    },
    "required": ["contacts"],
    "additionalProperties": False,
}
contact_schema = ContactSchema()
contact_without_notes_schema = ContactSchema(exclude=("notes",))
# Viewers get contacts without ``notes``; everyone else gets them whole.
contact_variants = (ContactSchema, contact_without_notes_schema)

# The operations a client can call next with the id a create returns.
_BY_ID_LINKS = {
    f"{verb}_contact": {"contact_id": "$response.body#/id"}
    for verb in ("get", "update", "delete")
}


def _output() -> tuple[Schema, str]:
    """Return the dump schema for the caller's role and its ETag suffix."""
    if policy.can_read_contact_notes(current_user().role):
        return contact_schema, ""
    return contact_without_notes_schema, "nonotes"


def _contact_response(contact: dict[str, Any], status: int = 200) -> Response:
    schema, representation = _output()
    return resource_response(
        schema.dump(contact), contact, status, representation=representation
    )


def _require_writer() -> None:
    if not policy.can_write_contacts(current_user().role):
        raise ForbiddenError("Your role cannot change contacts.")


@bp.get("")
@operation(query=ContactListQuerySchema, response=Page(contact_variants))
def list_contacts() -> Response:
    """List the account's contacts, optionally filtered by ``q``."""
    query = load_query(list_query_schema)
    items, next_cursor = registry().contacts.list_contacts(
        caller_context(), limit=query["limit"], cursor=query["cursor"], q=query["q"]
    )
    schema, _ = _output()
    return page_response(schema.dump(items, many=True), next_cursor)


@bp.post("")
@operation(
    status=201,
    body=ContactWriteSchema,
    response=ContactSchema,
    etag=True,
    location=True,
    errors=(403, 409),
    idempotency_key=True,
    links=_BY_ID_LINKS,
)
@idempotent(guard=_require_writer)
def create_contact() -> Response:
    """Create a contact in the caller's account."""
    _require_writer()
    data = load_json(contact_write_schema, protected=policy.CONTACT_PROTECTED_FIELDS)
    contact = registry().contacts.create_contact(caller_context(), data)
    response = _contact_response(contact, status=201)
    response.headers["Location"] = url_for(".get_contact", contact_id=contact["id"])
    return response


@bp.post("/import")
@operation(
    body=IMPORT_BODY,
    response=ContactImportResultSchema,
    errors=(403,),
    idempotency_key=True,
)
@idempotent(guard=_require_writer)
def import_contacts() -> Response:
    """Create or update up to 1,000 contacts by email, all or nothing."""
    _require_writer()
    data = load_json(contact_import_schema)
    denied = [
        f"{index}.{name}"
        for index, row in enumerate(data["contacts"])
        if isinstance(row, dict)
        for name in protected_fields(row, policy.CONTACT_PROTECTED_FIELDS)
    ]
    if denied:
        raise ForbiddenError("You may not set these fields: " + ", ".join(denied) + ".")
    rows = load_import_rows(data["contacts"], contact_write_schema)
    counts = registry().contacts.import_contacts(caller_context(), rows)
    return jsonify(import_result_schema.dump(counts))


@bp.get("/<uuid:contact_id>")
@operation(response=contact_variants, etag=True)
def get_contact(contact_id: UUID) -> Response:
    """Return one contact."""
    contact = registry().contacts.get_contact(caller_context(), str(contact_id))
    return _contact_response(contact)


@bp.patch("/<uuid:contact_id>")
@operation(
    body=ContactWriteSchema(partial=True),
    response=ContactSchema,
    etag=True,
    if_match=True,
    errors=(403, 409),
)
def update_contact(contact_id: UUID) -> Response:
    """Change some fields of a contact."""
    _require_writer()
    data = load_json(
        contact_write_schema, protected=policy.CONTACT_PROTECTED_FIELDS, partial=True
    )
    expected_version = if_match_version()
    contacts = registry().contacts
    if not data:
        # An empty change leaves the contact and its version alone.
        contact = contacts.get_contact(caller_context(), str(contact_id))
        require_version(contact, expected_version)
        return _contact_response(contact)
    contact = contacts.update_contact(
        caller_context(), str(contact_id), data, expected_version=expected_version
    )
    return _contact_response(contact)


@bp.delete("/<uuid:contact_id>")
@operation(status=204, if_match=True, errors=(403,))
def delete_contact(contact_id: UUID) -> Response:
    """Soft-delete a contact."""
    registry().contacts.delete_contact(
        caller_context(),
        str(contact_id),
        actor_role=current_user().role,
        expected_version=if_match_version(),
    )
    return no_content()
