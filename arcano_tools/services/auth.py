"""Who is calling: user access tokens (Supabase's format) and the service key.

A Supabase access token is a JWT with ``sub`` = the user id, ``role`` = ``authenticated`` and
``aud`` = ``authenticated``, signed either with the project's JWT secret (HS256, legacy) or
with the project's signing keys (ES256/RS256, public keys in its JWKS). We mint the HS256 kind
ourselves (the CLI, anonymous demo browsers) and accept Supabase's in production. Every token
is verified here, locally: the JWKS is fetched once and cached (``signing_keys.py``).
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

import jwt

from arcano_tools import constants as c
from arcano_tools.services.signing_keys import ASYMMETRIC_ALGORITHMS, SigningKeys

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
    claims = _hs256_claims(secret, token)
    return None if claims is None else _user_of(claims)


def _hs256_claims(secret: str, token: str) -> dict[str, object] | None:
    try:
        claims: dict[str, object] = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=SUPABASE_AUDIENCE,
            options={"require": ["sub", "exp"]},
        )
    except jwt.PyJWTError:
        return None
    return claims


#: Valid tokens remembered per process, so a client's next requests skip the signature check
#: (PyJWT's decode was 3 % of a submission's CPU) …
VERIFIED_TOKENS_KEPT = 10_000
#: … for this long at most (and never past their ``exp``): a signing key Supabase revokes
#: stops opening doors here within a minute.
VERIFIED_TOKEN_TTL_S = 60.0


class TokenVerifier:
    """Verifies user access tokens locally: HS256 with the JWT secret, and — when Supabase is
    configured — ES256/RS256 with the project's signing keys, whose ``iss`` must be the
    project's Auth URL (a token from another project signed by a key we hold is refused)."""

    def __init__(
        self, secret: str, signing_keys: SigningKeys | None = None, issuer: str = ""
    ) -> None:
        self._secret = secret
        self._signing_keys = signing_keys
        self._issuer = issuer
        #: ``token → (user id, trusted until)`` of tokens verified lately (bounded).
        self._verified: dict[str, tuple[str, float]] = {}

    async def user_id(self, token: str) -> str | None:
        """The user id of a valid token, else ``None``."""
        now = time.time()
        known = self._verified.get(token)
        if known is not None:
            if now < known[1]:
                return known[0]
            del self._verified[token]
        claims = await self._claims(token)
        user = None if claims is None else _user_of(claims)
        if claims is not None and user is not None:
            exp = claims.get("exp")
            until = now + VERIFIED_TOKEN_TTL_S
            if isinstance(exp, int | float):
                until = min(until, float(exp))
            if len(self._verified) >= VERIFIED_TOKENS_KEPT:
                self._verified.clear()
            self._verified[token] = (user, until)
        return user

    async def _claims(self, token: str) -> dict[str, object] | None:
        """The verified claims of a token, else ``None``."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        alg = header.get("alg")
        if alg == "HS256":
            return _hs256_claims(self._secret, token)
        kid = header.get("kid")
        if alg not in ASYMMETRIC_ALGORITHMS or self._signing_keys is None or not kid:
            return None
        key = await self._signing_keys.key_for(str(kid))
        if key is None or key.algorithm_name != alg:
            return None
        try:
            claims: dict[str, object] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=SUPABASE_AUDIENCE,
                issuer=self._issuer,
                options={"require": ["sub", "exp", "iss"]},
            )
        except jwt.PyJWTError:
            return None
        return claims


def _user_of(claims: dict[str, object]) -> str | None:
    """The user id of verified claims. Supabase's anonymous sign-ins (``is_anonymous``) are
    refused: anyone may mint them by the thousand, and each would be a new user with credits."""
    sub = claims.get("sub")
    if claims.get("role") != SUPABASE_ROLE or not isinstance(sub, str) or not sub:
        return None
    if claims.get("is_anonymous") is True:
        return None
    return sub


async def authenticate(
    authorization: str | None, *, service_key: str, tokens: TokenVerifier
) -> Principal | None:
    """Resolve an ``Authorization: Bearer …`` header to a principal, or ``None``."""
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    token = authorization[7:].strip()
    if not token:
        return None
    if hmac.compare_digest(token.encode(), service_key.encode()):
        return Principal(is_service=True)
    user_id = await tokens.user_id(token)
    return Principal(user_id=user_id) if user_id else None
