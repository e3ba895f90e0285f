"""Who is calling: user access tokens (HS256, Supabase's format) and the service key.

A Supabase access token is an HS256 JWT signed with the project's JWT secret, with ``sub`` =
the user id, ``role`` = ``authenticated`` and ``aud`` = ``authenticated``. We mint the same
tokens in embedded mode (the CLI, anonymous browsers) and accept Supabase's in production.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

import jwt

from arcano_tools import constants as c

SUPABASE_AUDIENCE = "authenticated"
SUPABASE_ROLE = "authenticated"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user, or the service (our own backend, operators' scripts)."""

    user_id: str | None = None
    is_service: bool = False

    def may_access(self, owner_id: str) -> bool:
        """The service sees every job; a user only their own."""
        return self.is_service or (self.user_id is not None and self.user_id == owner_id)


def issue_user_token(secret: str, user_id: str, *, ttl_s: int = c.USER_TOKEN_TTL_S) -> str:
    now = int(time.time())
    claims = {
        "sub": user_id,
        "role": SUPABASE_ROLE,
        "aud": SUPABASE_AUDIENCE,
        "iat": now,
        "exp": now + ttl_s,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_user_token(secret: str, token: str) -> str | None:
    """The user id of a valid token, else ``None`` (expired, forged, wrong role or audience)."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=SUPABASE_AUDIENCE,
            options={"require": ["sub", "exp"]},
        )
    except jwt.PyJWTError:
        return None
    if claims.get("role") != SUPABASE_ROLE or not isinstance(claims.get("sub"), str):
        return None
    return str(claims["sub"])


def authenticate(
    authorization: str | None, *, service_key: str, jwt_secret: str
) -> Principal | None:
    """Resolve an ``Authorization: Bearer …`` header to a principal, or ``None``."""
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    token = authorization[7:].strip()
    if not token:
        return None
    if hmac.compare_digest(token.encode(), service_key.encode()):
        return Principal(is_service=True)
    user_id = verify_user_token(jwt_secret, token)
    return Principal(user_id=user_id) if user_id else None
