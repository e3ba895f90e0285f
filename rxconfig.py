"""Reflex configuration of arcano_tools.

Ports come from REFLEX_FRONTEND_PORT / REFLEX_BACKEND_PORT. When they are unset we pass
``None`` so Reflex uses its defaults (dev: frontend 3000, backend 8000; prod: one port, 3000).
Setting both to different fixed values here would make ``reflex run --env prod`` refuse to
start ("frontend and backend must run on the same port").
"""

from __future__ import annotations

import os

import reflex as rx


def _port(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value else None


config = rx.Config(
    app_name="arcano_tools",
    telemetry_enabled=False,
    frontend_port=_port("REFLEX_FRONTEND_PORT"),
    backend_port=_port("REFLEX_BACKEND_PORT"),
    # Loopback unless a deployment says otherwise (REFLEX_BACKEND_HOST=0.0.0.0 behind its
    # proxy): a laptop running the demo does not offer its backend to the whole network.
    backend_host=os.environ.get("REFLEX_BACKEND_HOST", "127.0.0.1"),
    # Explicit, or Reflex 0.10 prints a deprecation warning on every compile. The theme lives
    # here: `rx.App(theme=...)` is deprecated in 0.10 (it still works, with a warning).
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(accent_color="violet", radius="large"))],
    # Enabled by default with a warning on every compile; this app needs no sitemap.xml.
    disable_plugins=[rx.plugins.SitemapPlugin],
    # The sticky "Built with Reflex" badge covers the toasts in the corner of every page.
    show_built_with_reflex=False,
)
