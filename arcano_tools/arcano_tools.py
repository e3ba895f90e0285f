"""The Reflex app: pages, the HTTP API (``api_transformer``) and the services' lifespan."""

from __future__ import annotations

import logging

import reflex as rx
from reflex.event import EventSpec

from arcano_tools.api.routes import create_api
from arcano_tools.components.connection import connection_banner
from arcano_tools.components.shell import ADMIN_ROUTE, JOBS_ROUTE, with_shell
from arcano_tools.components.tool_page import tool_page
from arcano_tools.domain.tools import DEFAULT_TOOLS
from arcano_tools.pages.account import (
    new_password_page,
    reset_page,
    sign_in_page,
    sign_up_page,
)
from arcano_tools.pages.admin import admin_page
from arcano_tools.pages.credits import credits_page
from arcano_tools.pages.home import home
from arcano_tools.pages.jobs import jobs_page
from arcano_tools.pages.not_found import not_found_page
from arcano_tools.web import runtime
from arcano_tools.web.admin_state import AdminState
from arcano_tools.web.auth_state import AuthState
from arcano_tools.web.state import TOOL_STATES, JobsState, SessionState
from arcano_tools.web.texts import (
    CREDITS_ROUTE,
    MSG_GENERIC,
    NEW_PASSWORD_ROUTE,
    RESET_ROUTE,
    SIGN_IN_ROUTE,
    SIGN_UP_ROUTE,
)

log = logging.getLogger(__name__)
#: Reflex's key for the overlay in ``App.app_wraps`` (its connection toaster and pulser).
OVERLAY_WRAP = (5, "Overlay")

services = runtime.services()


def backend_error(exception: Exception) -> EventSpec:
    """A page event that raised: logged with its traceback; the person reads Portuguese
    (Reflex's own toast says "An error occurred. Contact the website administrator.")."""
    log.error("page event failed", exc_info=exception)
    return rx.toast.error(MSG_GENERIC, id="backend_error")


app = rx.App(
    api_transformer=create_api(services, manage_lifecycle=False),
    # every page is Brazilian Portuguese (screen readers, translation, hyphenation)
    html_lang="pt-BR",
    backend_exception_handler=backend_error,
    # sonner's light-mode toast text, darkened to WCAG AA contrast; the pages' own styles
    stylesheets=["/toasts.css", "/pages.css"],
    # before/after slider, background-tab title, notifications, connection watch
    head_components=[rx.script(src="/arcano.js")],
    # at the top: on a phone a toast at the bottom covered "Processar"
    toaster=rx.toast.provider(position="top-center", close_button=True),
)
# the connection state in Portuguese, in Reflex's overlay slot (its default: an English toast)
app.app_wraps[OVERLAY_WRAP] = lambda stateful: (
    rx.fragment(connection_banner()) if stateful else None
)
app.register_lifespan_task(runtime.lifespan)
runtime.reflex_app = app

app.add_page(with_shell(home), route="/", title="Arcano Tools", on_load=SessionState.ensure_user)
app.add_page(
    with_shell(jobs_page),
    route=JOBS_ROUTE,
    title="Meus trabalhos · Arcano Tools",
    on_load=[JobsState.ensure_user, JobsState.load_jobs],
)
app.add_page(
    with_shell(credits_page),
    route=CREDITS_ROUTE,
    title="Créditos · Arcano Tools",
    on_load=SessionState.ensure_user,
)
# Reflex serves this page for every unknown address (its own is a bare English line).
app.add_page(
    with_shell(not_found_page),
    route="404",
    title="Página não encontrada · Arcano Tools",
    on_load=SessionState.ensure_user,
)
app.add_page(
    with_shell(admin_page),
    route=ADMIN_ROUTE,
    title="Operação · Arcano Tools",
    on_load=[AdminState.ensure_user, AdminState.refresh],
)
# Account pages (Supabase Auth): each clears the last page's message on load.
for _route, _account_page, _title in (
    (SIGN_IN_ROUTE, sign_in_page, "Entrar"),
    (SIGN_UP_ROUTE, sign_up_page, "Criar conta"),
    (RESET_ROUTE, reset_page, "Recuperar senha"),
):
    app.add_page(
        with_shell(_account_page),
        route=_route,
        title=f"{_title} · Arcano Tools",
        on_load=[AuthState.ensure_user, AuthState.forget_messages],
    )
app.add_page(
    with_shell(new_password_page),
    route=NEW_PASSWORD_ROUTE,
    title="Nova senha · Arcano Tools",
    on_load=[AuthState.ensure_user, AuthState.read_recovery_link],
)
for _tool in DEFAULT_TOOLS:
    _state = TOOL_STATES[_tool.name]

    def _page(tool=_tool, state=_state) -> rx.Component:  # type: ignore[no-untyped-def]
        return tool_page(tool, state)

    _page.__name__ = f"{_tool.name}_page"
    app.add_page(
        with_shell(_page),
        route=_tool.route,
        title=f"{_tool.title} · Arcano Tools",
        on_load=[_state.ensure_user, _state.load, _state.ask_notify_state],
    )
