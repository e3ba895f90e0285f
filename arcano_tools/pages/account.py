"""Account pages (Supabase Auth): entrar, criar conta, recuperar senha, nova senha.

Registered always; without ``SUPABASE_URL``/``SUPABASE_ANON_KEY`` each says the login is not
configured on this server (and the menu does not offer it).
"""

from __future__ import annotations

import reflex as rx

from arcano_tools.web.auth_state import AuthState
from arcano_tools.web.texts import RESET_ROUTE, SIGN_IN_ROUTE, SIGN_UP_ROUTE

MIN_PASSWORD_CHARS = 6
MSG_LOGIN_OFF = "O login não está configurado neste servidor."


def _field(label: str, name: str, kind: str, autocomplete: str) -> rx.Component:
    return rx.vstack(
        rx.el.label(label, html_for=name, style={"fontWeight": 500}),
        rx.input(
            id=name,
            name=name,
            type=kind,
            required=True,
            auto_complete=autocomplete,
            min_length=MIN_PASSWORD_CHARS if kind == "password" else None,
            width="100%",
            size="3",
        ),
        spacing="1",
        width="100%",
    )


def _messages() -> rx.Component:
    return rx.fragment(
        rx.cond(
            AuthState.error != "",
            rx.callout(
                AuthState.error,
                icon="triangle-alert",
                color_scheme="red",
                role="alert",
                width="100%",
                data_testid="auth-error",
            ),
        ),
        rx.cond(
            AuthState.notice != "",
            rx.callout(
                AuthState.notice,
                icon="mail-check",
                color_scheme="green",
                role="status",
                width="100%",
                data_testid="auth-notice",
            ),
        ),
    )


def _card(title: str, form: rx.Component, *links: rx.Component) -> rx.Component:
    return rx.center(
        rx.card(
            rx.vstack(
                rx.heading(title, size="6"),
                rx.cond(
                    AuthState.sign_in_enabled,
                    rx.vstack(_messages(), form, *links, spacing="4", width="100%"),
                    rx.text(MSG_LOGIN_OFF, data_testid="auth-off"),
                ),
                spacing="4",
                width="100%",
            ),
            width="100%",
            max_width="420px",
            size="3",
        ),
        width="100%",
    )


def _submit(text: str, test_id: str) -> rx.Component:
    return rx.button(
        text, type="submit", size="3", width="100%", loading=AuthState.busy, data_testid=test_id
    )


def sign_in_page() -> rx.Component:
    return _card(
        "Entrar",
        rx.el.form(
            rx.vstack(
                _field("E-mail", "email", "email", "email"),
                _field("Senha", "password", "password", "current-password"),
                _submit("Entrar", "sign-in"),
                spacing="3",
                width="100%",
            ),
            on_submit=AuthState.sign_in,
            style={"width": "100%"},
        ),
        rx.hstack(
            rx.link("Criar conta", href=SIGN_UP_ROUTE),
            rx.link("Esqueci minha senha", href=RESET_ROUTE),
            justify="between",
            style={"width": "100%"},
        ),
    )


def sign_up_page() -> rx.Component:
    return _card(
        "Criar conta",
        rx.el.form(
            rx.vstack(
                _field("E-mail", "email", "email", "email"),
                _field("Senha (pelo menos 6 caracteres)", "password", "password", "new-password"),
                _submit("Criar conta", "sign-up"),
                spacing="3",
                width="100%",
            ),
            on_submit=AuthState.sign_up,
            style={"width": "100%"},
        ),
        rx.text("Já tem conta? ", rx.link("Entrar", href=SIGN_IN_ROUTE)),
    )


def reset_page() -> rx.Component:
    return _card(
        "Recuperar senha",
        rx.el.form(
            rx.vstack(
                rx.text("Enviaremos um link para você criar uma nova senha.", color_scheme="gray"),
                _field("E-mail", "email", "email", "email"),
                _submit("Enviar link", "send-reset"),
                spacing="3",
                width="100%",
            ),
            on_submit=AuthState.request_reset,
            style={"width": "100%"},
        ),
        rx.link("Voltar para entrar", href=SIGN_IN_ROUTE),
    )


def new_password_page() -> rx.Component:
    return _card(
        "Nova senha",
        rx.el.form(
            rx.vstack(
                _field("Nova senha", "password", "password", "new-password"),
                _field("Repita a nova senha", "password_again", "password", "new-password"),
                _submit("Salvar nova senha", "set-password"),
                spacing="3",
                width="100%",
            ),
            on_submit=AuthState.set_new_password,
            style={"width": "100%"},
        ),
    )
