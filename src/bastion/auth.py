"""Access tokens and the authenticated caller.

flask-jwt-extended is the token layer. This module pins it to ES256 with
keys from the key ring, returns the same 401 body for every token failure,
and loads the caller with one indexed query per request. That query is what
makes a logout, role change, deactivation or deletion count on the very next
request instead of at token expiry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask, Response, g, request
from flask_jwt_extended import JWTManager, create_access_token, get_current_user
from flask_jwt_extended.exceptions import JWTDecodeError

from bastion.config import Settings
from bastion.db import TxContext
from bastion.errors import UnauthorizedError, error_response
from bastion.services.keys import ALGORITHM, KeyRing, SigningKey
from bastion.token_cache import CachingJWTManager, VerifiedTokenCache

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CurrentUser:
    """The caller as loaded for this request; never the raw token payload."""

    id: str
    account_id: str
    role: str
    session_id: str


@dataclass(frozen=True)
class TokenSubject:
    """The subject of an access token, with the key chosen to sign it.

    flask-jwt-extended passes the identity to both the header and the key
    callbacks, so carrying the key here keeps ``kid`` and signature in step
    even if a rotation lands between the two calls.
    """

    user_id: str
    session_id: str
    key: SigningKey


def _unauthorized(*_args: Any) -> Response:
    return error_response(401, UnauthorizedError.code, UnauthorizedError.message)


def _token_manager(app: Flask, settings: Settings, key_ring: KeyRing) -> JWTManager:
    if not settings.verified_token_cache_size:
        return JWTManager(app)
    cache = VerifiedTokenCache(
        settings.verified_token_cache_size,
        key_is_active=lambda kid: key_ring.verification_key(kid) is not None,
    )
    return CachingJWTManager(app, cache)


def init_jwt(app: Flask, settings: Settings, key_ring: KeyRing) -> JWTManager:
    """Configure flask-jwt-extended for ES256 tokens signed by ``key_ring``."""
    app.config.update(
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ALGORITHM=ALGORITHM,
        # Only ES256 verifies: "none" and HMAC tokens are rejected before
        # any key is consulted.
        JWT_DECODE_ALGORITHMS=[ALGORITHM],
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(seconds=settings.access_token_ttl),
        JWT_ENCODE_ISSUER=settings.jwt_issuer,
        JWT_DECODE_ISSUER=settings.jwt_issuer,
        JWT_ENCODE_AUDIENCE=settings.jwt_audience,
        JWT_DECODE_AUDIENCE=settings.jwt_audience,
        JWT_ERROR_MESSAGE_KEY="message",
        # Tokens travel only in the Authorization header, never in cookies.
        JWT_COOKIE_CSRF_PROTECT=False,
    )
    jwt = _token_manager(app, settings, key_ring)

    @jwt.user_identity_loader
    def _identity(subject: TokenSubject) -> str:
        return subject.user_id

    @jwt.additional_headers_loader
    def _headers(subject: TokenSubject) -> dict[str, str]:
        return {"kid": subject.key.kid}

    @jwt.encode_key_loader
    def _encode_key(subject: TokenSubject) -> Any:
        return subject.key.private_key

    @jwt.decode_key_loader
    def _decode_key(header: dict[str, Any], _payload: dict[str, Any]) -> Any:
        kid = header.get("kid")
        key = key_ring.verification_key(kid) if isinstance(kid, str) else None
        if key is None:
            raise JWTDecodeError("unknown or retired signing key")
        return key

    @jwt.user_lookup_loader
    def _lookup(_header: dict[str, Any], payload: dict[str, Any]) -> Any:
        from bastion.services import registry

        session_id = payload.get("sid")
        if not isinstance(session_id, str):
            return None
        user = registry().sessions.load_current_user(
            user_id=payload["sub"], session_id=session_id
        )
        if user is not None:
            # Every log record of this request names the caller from here on.
            g.user_id, g.account_id = user.id, user.account_id
        return user

    for loader in (
        jwt.expired_token_loader,
        jwt.invalid_token_loader,
        jwt.unauthorized_loader,
        jwt.revoked_token_loader,
        jwt.user_lookup_error_loader,
        jwt.token_verification_failed_loader,
        jwt.needs_fresh_token_loader,
    ):
        loader(_unauthorized)
    return jwt


def issue_access_token(key_ring: KeyRing, *, user_id: str, session_id: str) -> str:
    """Sign an access token for ``user_id`` in login session ``session_id``."""
    subject = TokenSubject(user_id, session_id, key_ring.signing_key())
    token: str = create_access_token(
        identity=subject, additional_claims={"sid": session_id}
    )
    return token


def current_user() -> CurrentUser:
    """Return the authenticated caller of this request."""
    user = get_current_user()
    if not isinstance(user, CurrentUser):
        raise UnauthorizedError()
    return user


def caller_context() -> TxContext:
    """Build the transaction context for the authenticated caller."""
    user = current_user()
    return TxContext(
        account_id=user.account_id,
        user_id=user.id,
        ip=request.remote_addr,
        request_id=g.get("request_id"),
    )


def anonymous_context() -> TxContext:
    """Build the transaction context for a request made without a token."""
    return TxContext(ip=request.remote_addr, request_id=g.get("request_id"))
