"""The Reflex app: pages, the HTTP API (``api_transformer``) and the services' lifespan."""

from __future__ import annotations

import reflex as rx

from arcano_tools.api.routes import create_api
from arcano_tools.components.shell import ADMIN_ROUTE, JOBS_ROUTE, with_shell
from arcano_tools.components.tool_page import tool_page
from arcano_tools.domain.tools import DEFAULT_TOOLS
from arcano_tools.pages.admin import admin_page
from arcano_tools.pages.home import home
from arcano_tools.pages.jobs import jobs_page
from arcano_tools.web import runtime
from arcano_tools.web.admin_state import AdminState
from arcano_tools.web.state import TOOL_STATES, JobsState, SessionState

services = runtime.services()

app = rx.App(
    api_transformer=create_api(services, manage_lifecycle=False),
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
    with_shell(admin_page),
    route=ADMIN_ROUTE,
    title="Operação · Arcano Tools",
    on_load=[AdminState.ensure_user, AdminState.refresh],
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
        on_load=[_state.ensure_user, _state.load],
    )
