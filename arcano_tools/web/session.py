"""Who a browser is: its access token verified locally, refreshed before it expires.

With Supabase Auth the browser keeps two tokens in localStorage: the access token (a JWT,
short-lived: an hour on Supabase) and the single-use refresh token. A page load verifies the
access token here, without calling Supabase; only when it has expired or will within the
margin is the refresh token spent for a new pair. No Reflex here: the page states call it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from arcano_tools import constants as c
from arcano_tools.services.supabase_auth import AuthFailure, AuthProblem, AuthSession
from arcano_tools.wiring import Services

#: A refresh is due this fraction of a token's life before it ends, if that is under the margin.
REFRESH_LIFE_FRACTION = 0.25


@dataclass(frozen=True)
class BrowserSession:
    """The browser's user (``None``: signed out) and the tokens it should keep from now on."""

    user_id: str | None
    access_token: str
    refresh_token: str


def refresh_in(access_token: str, now: float | None = None) -> float:
    """Seconds until this token should be refreshed (≤ 0: now). Reads ``exp``/``iat``
    unverified: the token was verified already, and a bad one just refreshes at once."""
    try:
        claims = jwt.decode(access_token, options={"verify_signature": False})
        exp = float(claims["exp"])
        life = exp - float(claims.get("iat", exp - c.SESSION_REFRESH_MARGIN_S * 4))
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        return 0.0
    margin = min(c.SESSION_REFRESH_MARGIN_S, max(life, 0.0) * REFRESH_LIFE_FRACTION)
    return exp - margin - (time.time() if now is None else now)


async def resolve(services: Services, access_token: str, refresh_token: str) -> BrowserSession:
    """Verify the browser's access token; refresh the pair when it is (nearly) expired.

    A refresh refused by Supabase (spent, revoked, signed out elsewhere) signs the browser
    out; Supabase being unreachable keeps a still-valid access token (the next page load or
    the keeper tries again).
    """
    user_id = await services.tokens.user_id(access_token) if access_token else None
    keep = BrowserSession(user_id, access_token, refresh_token)
    if services.auth is None or not refresh_token:
        return keep
    if user_id is not None and refresh_in(access_token) > 0:
        return keep
    outcome = await services.auth.refresh(refresh_token)
    if isinstance(outcome, AuthFailure):
        if outcome.problem is AuthProblem.UNAVAILABLE:
            return keep
        return BrowserSession(None, "", "")
    return await signed_in(services, outcome)


async def signed_in(services: Services, session: AuthSession) -> BrowserSession:
    """The browser session of a fresh Supabase session (its token verified like any other)."""
    user_id = await services.tokens.user_id(session.access_token)
    if user_id is None:  # signed by a key we cannot verify: treat as signed out
        return BrowserSession(None, "", "")
    return BrowserSession(user_id, session.access_token, session.refresh_token)
