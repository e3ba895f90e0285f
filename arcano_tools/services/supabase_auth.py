"""Supabase Auth through supabase-py: sign up, sign in, refresh, sign out, password reset.

Each call uses a fresh client with auto-refresh and session persistence off: a server-side
client that signs someone in acts as that user from then on (supabase-py #185), and an
auto-refreshing one would spend the browser's single-use refresh token. The implicit flow is
used because a PKCE code verifier would stay inside the client that began the flow, while
the browser that opens the e-mail's link talks to whichever backend process it reaches.

Every outcome is a value: an :class:`AuthSession`, :class:`ConfirmationSent` (sign-up with
e-mail confirmation on) or an :class:`AuthFailure` whose ``message`` a person can read
(Portuguese). Nothing here raises on a wrong password, an expired token or Supabase being
down, and no token or password is ever logged.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from supabase import AsyncClient, AsyncClientOptions, acreate_client
from supabase_auth.errors import AuthError, AuthRetryableError
from supabase_auth.types import AuthResponse

from arcano_tools import constants as c
from arcano_tools.tls import client_tls

log = logging.getLogger(__name__)


class AuthProblem(enum.StrEnum):
    """Why a call to Supabase Auth did not succeed (the person's message depends on it)."""

    WRONG_PASSWORD = "wrong_password"
    EMAIL_NOT_CONFIRMED = "email_not_confirmed"
    USER_EXISTS = "user_exists"
    WEAK_PASSWORD = "weak_password"
    INVALID_EMAIL = "invalid_email"
    SESSION_EXPIRED = "session_expired"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    OTHER = "other"


#: What the person reads for each problem (the app's shell, Brazilian Portuguese).
PROBLEM_MESSAGES: dict[AuthProblem, str] = {
    AuthProblem.WRONG_PASSWORD: "E-mail ou senha incorretos.",
    AuthProblem.EMAIL_NOT_CONFIRMED: (
        "Confirme seu e-mail antes de entrar: abra o link que enviamos para a sua caixa de entrada."
    ),
    AuthProblem.USER_EXISTS: "Já existe uma conta com este e-mail. Entre ou recupere a senha.",
    AuthProblem.WEAK_PASSWORD: "Senha fraca: escolha uma senha mais longa (pelo menos 8 caracteres).",
    AuthProblem.INVALID_EMAIL: "Este e-mail não parece válido.",
    AuthProblem.SESSION_EXPIRED: "Sua sessão expirou. Entre novamente.",
    AuthProblem.RATE_LIMITED: "Muitas tentativas seguidas. Aguarde um minuto e tente de novo.",
    AuthProblem.UNAVAILABLE: ("O serviço de login não respondeu. Tente novamente em instantes."),
    AuthProblem.OTHER: "Não foi possível concluir. Tente novamente.",
}

#: Supabase Auth's error codes (auth: internal/api/errors.go) → our problem.
_CODES: dict[str, AuthProblem] = {
    "invalid_credentials": AuthProblem.WRONG_PASSWORD,
    "email_not_confirmed": AuthProblem.EMAIL_NOT_CONFIRMED,
    "user_already_exists": AuthProblem.USER_EXISTS,
    "email_exists": AuthProblem.USER_EXISTS,
    "weak_password": AuthProblem.WEAK_PASSWORD,
    "email_address_invalid": AuthProblem.INVALID_EMAIL,
    "validation_failed": AuthProblem.INVALID_EMAIL,
    "refresh_token_not_found": AuthProblem.SESSION_EXPIRED,
    "refresh_token_already_used": AuthProblem.SESSION_EXPIRED,
    "session_not_found": AuthProblem.SESSION_EXPIRED,
    "session_expired": AuthProblem.SESSION_EXPIRED,
    "bad_jwt": AuthProblem.SESSION_EXPIRED,
    "no_authorization": AuthProblem.SESSION_EXPIRED,
    "user_not_found": AuthProblem.SESSION_EXPIRED,
    "over_request_rate_limit": AuthProblem.RATE_LIMITED,
    "over_email_send_rate_limit": AuthProblem.RATE_LIMITED,
}


@dataclass(frozen=True)
class AuthSession:
    """A signed-in session: what the browser keeps (both tokens) and who it is."""

    access_token: str
    refresh_token: str
    #: Unix time the access token expires (refresh before it).
    expires_at: int
    user_id: str
    email: str


@dataclass(frozen=True)
class ConfirmationSent:
    """Sign-up accepted; the project confirms e-mails, so no session until the link is opened."""

    email: str


@dataclass(frozen=True)
class AuthFailure:
    problem: AuthProblem

    @property
    def message(self) -> str:
        return PROBLEM_MESSAGES[self.problem]


def problem_of(exc: Exception) -> AuthProblem:
    """Our reading of a supabase-py error (by Supabase's documented error code)."""
    if isinstance(exc, AuthRetryableError | httpx.HTTPError):
        return AuthProblem.UNAVAILABLE
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code in _CODES:
        return _CODES[code]
    if getattr(exc, "status", None) == httpx.codes.TOO_MANY_REQUESTS:
        return AuthProblem.RATE_LIMITED
    return AuthProblem.OTHER


class SupabaseAuth:
    """The project's Auth, called with its anon key (never the service-role key)."""

    def __init__(self, url: str, anon_key: str, *, timeout_s: float = c.SUPABASE_HTTP_TIMEOUT_S):
        self._url = url.rstrip("/")
        self._key = anon_key
        self._timeout_s = timeout_s

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[AsyncClient]:
        async with httpx.AsyncClient(timeout=self._timeout_s, verify=client_tls()) as http:
            options = AsyncClientOptions(
                auto_refresh_token=False,
                persist_session=False,
                flow_type="implicit",
                httpx_client=http,
            )
            yield await acreate_client(self._url, self._key, options)

    async def sign_up(
        self, email: str, password: str
    ) -> AuthSession | ConfirmationSent | AuthFailure:
        try:
            async with self._client() as sb:
                reply = await sb.auth.sign_up({"email": email, "password": password})
        except (AuthError, httpx.HTTPError) as exc:
            return self._failed("sign_up", exc)
        return _session_of(reply) or ConfirmationSent(email)

    async def sign_in(self, email: str, password: str) -> AuthSession | AuthFailure:
        try:
            async with self._client() as sb:
                reply = await sb.auth.sign_in_with_password({"email": email, "password": password})
        except (AuthError, httpx.HTTPError) as exc:
            return self._failed("sign_in", exc)
        return _session_of(reply) or AuthFailure(AuthProblem.OTHER)

    async def refresh(self, refresh_token: str) -> AuthSession | AuthFailure:
        """A new session for a refresh token (single use: the old one is spent)."""
        try:
            async with self._client() as sb:
                reply = await sb.auth.refresh_session(refresh_token)
        except (AuthError, httpx.HTTPError) as exc:
            return self._failed("refresh", exc)
        return _session_of(reply) or AuthFailure(AuthProblem.SESSION_EXPIRED)

    async def sign_out(self, access_token: str) -> AuthFailure | None:
        """Revoke the session's refresh tokens (``scope=global``). An access token stays
        valid until it expires: that is how Supabase's JWTs work."""
        try:
            async with self._client() as sb:
                await sb.auth.admin.sign_out(access_token, "global")
        except (AuthError, httpx.HTTPError) as exc:
            return self._failed("sign_out", exc)
        return None

    async def send_password_reset(self, email: str, redirect_to: str) -> AuthFailure | None:
        """Ask Supabase to e-mail a reset link leading to ``redirect_to`` (answers the same
        whether the address has an account or not)."""
        try:
            async with self._client() as sb:
                await sb.auth.reset_password_for_email(email, {"redirect_to": redirect_to})
        except (AuthError, httpx.HTTPError) as exc:
            return self._failed("password_reset", exc)
        return None

    async def set_password(
        self, access_token: str, refresh_token: str, password: str
    ) -> AuthSession | AuthFailure:
        """The recovery link's session sets a new password; returns the signed-in session as
        the client holds it at the end: supabase-py refreshes a session close to expiry on
        its own, which spends the refresh token the link carried."""
        try:
            async with self._client() as sb:
                if _session_of(await sb.auth.set_session(access_token, refresh_token)) is None:
                    return AuthFailure(AuthProblem.SESSION_EXPIRED)
                await sb.auth.update_user({"password": password})
                current = await sb.auth.get_session()
        except (AuthError, httpx.HTTPError) as exc:
            return self._failed("set_password", exc)
        if current is None:
            return AuthFailure(AuthProblem.SESSION_EXPIRED)
        return _session_of(AuthResponse(session=current, user=current.user)) or AuthFailure(
            AuthProblem.SESSION_EXPIRED
        )

    @staticmethod
    def _failed(action: str, exc: Exception) -> AuthFailure:
        problem = problem_of(exc)
        # the error's class and code only: messages may echo what the person typed
        log.info(
            "supabase auth %s refused: %s (%s)",
            action,
            problem.value,
            type(exc).__name__,
            extra={"action": f"auth_{action}_failed"},
        )
        return AuthFailure(problem)


def _session_of(reply: AuthResponse) -> AuthSession | None:
    session = reply.session
    if session is None:
        return None
    return AuthSession(
        access_token=session.access_token,
        refresh_token=session.refresh_token,
        expires_at=int(session.expires_at or 0),
        user_id=session.user.id,
        email=session.user.email or "",
    )
