"""The role table: every permission decision in Bastion is made here.

| action                                  | viewer | member | admin      | owner    |
|-----------------------------------------|--------|--------|------------|----------|
| read contacts (viewer never sees notes) | yes    | yes    | yes        | yes      |
| create, update, import contacts         |        | yes    | yes        | yes      |
| delete a contact                        |        | own    | yes        | yes      |
| list users: id, name, role              | yes    | yes    | yes        | yes      |
| see email, is_active, last_login_at     |        |        | yes        | yes      |
| create users; change name, role, active |        |        | viewer,    | anyone   |
|                                         |        |        | member     |          |
| delete (deactivate) users               |        |        | viewer,    | not self |
|                                         |        |        | member     |          |
| read audit events                       |        |        | yes        | yes      |

The owner hands over ownership by giving another user the role ``owner``;
nobody can demote, deactivate or delete the owner.
"""

from __future__ import annotations

from collections.abc import Iterable

VIEWER = "viewer"
MEMBER = "member"
ADMIN = "admin"
OWNER = "owner"
ROLES = (VIEWER, MEMBER, ADMIN, OWNER)

_MANAGERS = {ADMIN, OWNER}
_CONTACT_WRITERS = {MEMBER, ADMIN, OWNER}
# Roles an admin may act on and hand out.
_ADMIN_MANAGED_ROLES = {VIEWER, MEMBER}

CONTACT_WRITABLE_FIELDS = frozenset(
    {"name", "email", "phone", "company", "notes", "tags"}
)
USER_WRITABLE_FIELDS = frozenset({"name", "role", "is_active"})
ME_WRITABLE_FIELDS = frozenset({"name"})
# Fields that exist on a resource but that no request may set: sending one
# is a 403 naming it, not a 422 for an unknown field.
CONTACT_PROTECTED_FIELDS = frozenset(
    {"id", "account_id", "created_by", "created_at", "updated_at", "version"}
)
USER_PROTECTED_FIELDS = frozenset(
    {
        "id",
        "account_id",
        "email",
        "password",
        "password_hash",
        "created_at",
        "updated_at",
        "last_login_at",
        "version",
        "deleted_at",
    }
)


def can_read_contact_notes(role: str) -> bool:
    return role != VIEWER


def can_write_contacts(role: str) -> bool:
    return role in _CONTACT_WRITERS


def can_delete_contact(role: str, *, actor_id: str, created_by: str | None) -> bool:
    if role in _MANAGERS:
        return True
    return role == MEMBER and created_by == actor_id


def can_see_user_private_fields(role: str) -> bool:
    return role in _MANAGERS


def can_read_audit(role: str) -> bool:
    return role in _MANAGERS


def can_create_user(role: str, new_role: str) -> bool:
    if role == OWNER:
        return True
    return role == ADMIN and new_role in _ADMIN_MANAGED_ROLES


def can_update_user(
    role: str,
    *,
    target_role: str,
    new_role: str | None,
    ends_active: bool,
) -> bool:
    """Decide whether ``role`` may change a user as described.

    ``ends_active`` is whether the user is active after the change.
    """
    final_role = new_role or target_role
    if target_role == OWNER and final_role != OWNER:
        # The owner stays owner until they hand ownership to someone else.
        return False
    if final_role == OWNER and not ends_active:
        return False
    if role == OWNER:
        return True
    if role != ADMIN or target_role not in _ADMIN_MANAGED_ROLES:
        return False
    return final_role in _ADMIN_MANAGED_ROLES


def can_delete_user(
    role: str, *, actor_id: str, target_id: str, target_role: str
) -> bool:
    if target_role == OWNER or actor_id == target_id:
        return False
    if role == OWNER:
        return True
    return role == ADMIN and target_role in _ADMIN_MANAGED_ROLES


def protected_fields(keys: Iterable[str], protected: frozenset[str]) -> list[str]:
    """Return the request keys that name fields no caller may write."""
    return sorted(key for key in keys if key in protected)
