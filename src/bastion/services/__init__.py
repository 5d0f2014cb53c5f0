"""Service classes: business rules and hand-written SQL, one per resource.

Services raise domain errors from ``bastion.errors`` and never touch Flask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from bastion.config import Settings
    from bastion.db import Database
    from bastion.mail import Mailer
    from bastion.services.accounts import AccountService
    from bastion.services.audit import AuditService
    from bastion.services.contacts import ContactService
    from bastion.services.idempotency import IdempotencyService
    from bastion.services.keys import KeyRing, KeyService
    from bastion.services.passwords import PasswordService
    from bastion.services.schema import SchemaService
    from bastion.services.sessions import SessionService
    from bastion.services.users import UserService


@dataclass(frozen=True)
class Services:
    """The service objects of one application instance."""

    settings: Settings
    db: Database
    keys: KeyService
    key_ring: KeyRing
    accounts: AccountService
    users: UserService
    contacts: ContactService
    sessions: SessionService
    passwords: PasswordService
    audit: AuditService
    schema: SchemaService
    mailer: Mailer
    idempotency: IdempotencyService


def registry() -> Services:
    """Return the services of the current application."""
    services: Services = current_app.extensions["bastion"]
    return services
