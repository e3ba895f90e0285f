"""The account pages' state: sign up, sign in, password reset (Supabase Auth).

Thin: every call is :class:`arcano_tools.services.supabase_auth.SupabaseAuth`'s, every
outcome a value turned into a Portuguese line here. The tokens land in the browser's
localStorage through :class:`SessionState`'s vars; the password never leaves the event.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import reflex as rx

from arcano_tools.services.supabase_auth import AuthFailure, AuthSession, ConfirmationSent
from arcano_tools.web import runtime, session
from arcano_tools.web.state import SessionState
from arcano_tools.web.texts import NEW_PASSWORD_ROUTE

MSG_NOT_CONFIGURED = "O login não está configurado neste servidor."
MSG_FILL_IN = "Preencha o e-mail e a senha."
MSG_CONFIRM_SENT = "Enviamos um link de confirmação para {}. Abra-o e depois entre."
MSG_RESET_SENT = "Se existir uma conta com este e-mail, enviamos um link para criar uma nova senha."
MSG_NO_RECOVERY = "Este link de recuperação não é válido ou expirou. Peça um novo."
MSG_PASSWORDS_DIFFER = "As duas senhas não são iguais."
#: After signing in (or setting a new password), the person lands on the tools.
HOME_ROUTE = "/"


class AuthState(SessionState):
    """What the account pages show: an error or a notice, and whether a call is running."""

    error: str = ""
    notice: str = ""
    busy: bool = False
    #: The recovery link's tokens (from the address's fragment), never sent back to the page.
    _recovery_access: str = ""
    _recovery_refresh: str = ""

    @rx.event
    def forget_messages(self) -> None:
        """On each account page's load: no message left over from another page."""
        self._forget()

    def _forget(self) -> None:
        self.error, self.notice, self.busy = "", "", False

    async def _enter(self, outcome: AuthSession) -> Any:
        browser = await session.signed_in(runtime.services(), outcome)
        self.token, self.refresh_token = browser.access_token, browser.refresh_token
        return rx.redirect(HOME_ROUTE)

    @rx.event
    async def sign_in(self, form: dict[str, Any]) -> Any:
        email, password = _email(form), str(form.get("password") or "")
        auth = runtime.services().auth
        if auth is None:
            self.error = MSG_NOT_CONFIGURED
            return
        if not email or not password:
            self.error = MSG_FILL_IN
            return
        self.error, self.notice, self.busy = "", "", True
        yield
        outcome = await auth.sign_in(email, password)
        self.busy = False
        if isinstance(outcome, AuthFailure):
            self.error = outcome.message
            return
        yield await self._enter(outcome)

    @rx.event
    async def sign_up(self, form: dict[str, Any]) -> Any:
        email, password = _email(form), str(form.get("password") or "")
        auth = runtime.services().auth
        if auth is None:
            self.error = MSG_NOT_CONFIGURED
            return
        if not email or not password:
            self.error = MSG_FILL_IN
            return
        self.error, self.notice, self.busy = "", "", True
        yield
        outcome = await auth.sign_up(email, password)
        self.busy = False
        if isinstance(outcome, AuthFailure):
            self.error = outcome.message
        elif isinstance(outcome, ConfirmationSent):
            self.notice = MSG_CONFIRM_SENT.format(outcome.email)
        else:
            yield await self._enter(outcome)

    @rx.event
    async def request_reset(self, form: dict[str, Any]) -> Any:
        email = _email(form)
        services = runtime.services()
        if services.auth is None:
            self.error = MSG_NOT_CONFIGURED
            return
        if not email:
            self.error = "Informe o e-mail da sua conta."
            return
        self.error, self.notice, self.busy = "", "", True
        yield
        base = services.settings.public_base_url or self.router.headers.origin
        failure = await services.auth.send_password_reset(
            email, base.rstrip("/") + NEW_PASSWORD_ROUTE
        )
        self.busy = False
        if failure is not None:
            self.error = failure.message
        else:
            self.notice = MSG_RESET_SENT

    @rx.event
    def read_recovery_link(self) -> Any:
        """On ``/nova-senha``'s load: the tokens are in the address's fragment, which only the
        browser sees; ask it for them."""
        self._forget()
        return rx.call_script("window.location.hash", callback=AuthState.take_recovery)

    @rx.event
    def take_recovery(self, fragment: str) -> Any:
        values = parse_qs(str(fragment or "").lstrip("#"))
        self._recovery_access = (values.get("access_token") or [""])[0]
        self._recovery_refresh = (values.get("refresh_token") or [""])[0]
        if not self._recovery_access or (values.get("type") or [""])[0] != "recovery":
            self.error = MSG_NO_RECOVERY
            return None
        # the tokens leave the address bar (and the browser's history entry)
        return rx.call_script(
            "history.replaceState(null, '', window.location.pathname + window.location.search)"
        )

    @rx.event
    async def set_new_password(self, form: dict[str, Any]) -> Any:
        password = str(form.get("password") or "")
        auth = runtime.services().auth
        if auth is None:
            self.error = MSG_NOT_CONFIGURED
            return
        if not self._recovery_access:
            self.error = MSG_NO_RECOVERY
            return
        if password != str(form.get("password_again") or ""):
            self.error = MSG_PASSWORDS_DIFFER
            return
        self.error, self.busy = "", True
        yield
        outcome = await auth.set_password(self._recovery_access, self._recovery_refresh, password)
        self.busy = False
        if isinstance(outcome, AuthFailure):
            self.error = outcome.message
            return
        self._recovery_access = self._recovery_refresh = ""
        yield await self._enter(outcome)


def _email(form: dict[str, Any]) -> str:
    return str(form.get("email") or "").strip().lower()
