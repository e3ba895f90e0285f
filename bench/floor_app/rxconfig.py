"""Reflex configuration of the browser benchmark's floor app (``bench/floor_app``).

Built and served by ``bench/browser.py`` from a copy in a temporary directory (its ``.web/``
never lands in the tree); ports come from REFLEX_FRONTEND_PORT / REFLEX_BACKEND_PORT like the
real app's ``rxconfig.py``.
"""

from __future__ import annotations

import os

import reflex as rx


def _port(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value else None


config = rx.Config(
    app_name="floor_app",
    telemetry_enabled=False,
    frontend_port=_port("REFLEX_FRONTEND_PORT"),
    backend_port=_port("REFLEX_BACKEND_PORT"),
    backend_host="127.0.0.1",
    plugins=[rx.plugins.RadixThemesPlugin()],
    disable_plugins=[rx.plugins.SitemapPlugin],
    show_built_with_reflex=False,
)
