"""TEMPORARY app module (build/test frame placeholder; the lead replaces its content).

Keeps the two things the frame verifies: a home page with the heading "Arcano Tools" and a
``GET /healthz`` route served by our own Starlette app through ``api_transformer``.
"""

from __future__ import annotations

import reflex as rx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def healthz(_request: Request) -> JSONResponse:
    """Liveness probe answered by our API app, not by Reflex."""
    return JSONResponse({"ok": True})


api = Starlette(routes=[Route("/healthz", healthz, methods=["GET"])])


def index() -> rx.Component:
    """The home page."""
    return rx.container(rx.heading("Arcano Tools", size="8"))


app = rx.App(api_transformer=api)
app.add_page(index, route="/", title="Arcano Tools")
