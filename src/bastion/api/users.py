"""Users of the caller's account."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import Blueprint, Response, url_for
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
from bastion.schemas.common import PageQuerySchema
from bastion.schemas.users import (
    UserCreateSchema,
    UserPublicSchema,
    UserSchema,
    UserUpdateSchema,
)
from bastion.services import registry

bp = Blueprint("users", __name__, url_prefix="/users")

page_query_schema = PageQuerySchema()
user_create_schema = UserCreateSchema()
user_update_schema = UserUpdateSchema()
user_schema = UserSchema()
user_public_schema = UserPublicSchema()

# The operations a client can call next with the id a create returns.
_BY_ID_LINKS = {
    f"{verb}_user": {"user_id": "$response.body#/id"}
    for verb in ("get", "update", "delete")
}


def _representation() -> str:
    """Return the ETag suffix of the user fields the caller's role sees."""
    if policy.can_see_user_private_fields(current_user().role):
        return ""
    return "public"


def _output_schema() -> Schema:
    if policy.can_see_user_private_fields(current_user().role):
        return user_schema
    return user_public_schema


def _require_manager() -> str:
    role = current_user().role
    if not policy.can_see_user_private_fields(role):
        raise ForbiddenError("Only admins and owners can manage users.")
    return role


@bp.get("")
@operation(query=PageQuerySchema, response=Page((UserSchema, UserPublicSchema)))
def list_users() -> Response:
    """List the account's users."""
    query = load_query(page_query_schema)
    items, next_cursor = registry().users.list_users(
        caller_context(), limit=query["limit"], cursor=query["cursor"]
    )
    return page_response(_output_schema().dump(items, many=True), next_cursor)


@bp.post("")
@operation(
    status=201,
    body=UserCreateSchema,
    response=UserSchema,
    etag=True,
    location=True,
    errors=(403, 409),
    idempotency_key=True,
    links=_BY_ID_LINKS,
)
@idempotent(guard=_require_manager)
def create_user() -> Response:
    """Create a user in the caller's account."""
    role = _require_manager()
    data = load_json(
        user_create_schema,
        protected=policy.USER_PROTECTED_FIELDS - {"email", "password"},
    )
    user = registry().users.create_user(caller_context(), actor_role=role, **data)
    response = resource_response(user_schema.dump(user), user, status=201)
    response.headers["Location"] = url_for(".get_user", user_id=user["id"])
    return response


@bp.get("/<uuid:user_id>")
@operation(response=(UserSchema, UserPublicSchema), etag=True)
def get_user(user_id: UUID) -> Response:
    """Return one user of the account."""
    user = registry().users.get_user(caller_context(), str(user_id))
    return resource_response(
        _output_schema().dump(user), user, representation=_representation()
    )


@bp.patch("/<uuid:user_id>")
@operation(
    body=UserUpdateSchema(partial=True),
    response=UserSchema,
    etag=True,
    if_match=True,
    errors=(403,),
)
def update_user(user_id: UUID) -> Response:
    """Change a user's name, role or active flag."""
    role = _require_manager()
    data: dict[str, Any] = load_json(
        user_update_schema, protected=policy.USER_PROTECTED_FIELDS, partial=True
    )
    expected_version = if_match_version()
    if not data:
        # An empty change leaves the user and its version alone.
        user = registry().users.get_user(caller_context(), str(user_id))
        require_version(user, expected_version)
        return resource_response(user_schema.dump(user), user)
    user = registry().users.update_user(
        caller_context(),
        str(user_id),
        data,
        actor_role=role,
        expected_version=expected_version,
    )
    return resource_response(user_schema.dump(user), user)


@bp.delete("/<uuid:user_id>")
@operation(status=204, if_match=True, errors=(403,))
def delete_user(user_id: UUID) -> Response:
    """Soft-delete a user and end their sessions."""
    role = _require_manager()
    registry().users.delete_user(
        caller_context(),
        str(user_id),
        actor_role=role,
        expected_version=if_match_version(),
    )
    return no_content()
