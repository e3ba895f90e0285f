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


def state_manager() -> dict[str, rx.constants.StateManagerMode]:
    """Where Reflex keeps each tab's state: Redis when ``REFLEX_REDIS_URL`` is set (Reflex's own
    choice, left to it: several workers share the states there), else **memory**.

    Without Redis, ``reflex run --env prod`` runs one worker, which holds every state itself.
    Reflex's default there, the disk manager, pickles each changed state to a file and, after
    every batch of writes, lists and stats every state file: with a thousand pages open, each
    ticking once a second, that was 16 % of the worker's CPU (BENCHMARKS.md, item 12).
    What memory loses is a restart's carry-over, and the pages already recover from that (the
    tab's job comes back from its own sessionStorage, as after a Redis worker's crash): only
    a form's chosen-but-unsent inputs are lost. ``REFLEX_STATE_MANAGER_MODE`` still wins."""
    if os.environ.get("REFLEX_REDIS_URL", "").strip():
        return {}
    return {"state_manager_mode": rx.constants.StateManagerMode.MEMORY}


#: The socket's engine.io ping every 2 s (Reflex's default: 25 s), for every deployment. A tool
#: page runs its job's clock itself and the server pushes only changes, so the pings are the
#: page's sign of life: ``assets/arcano.js`` says "sem conexão" after ``STALE_MS`` (4.5 s: two
#: pings and some room) without a message. Set, not defaulted: a longer interval would show
#: every quiet page as offline. A ping and its answer cost the worker ~0.1–0.2 ms, every 2 s
#: for every open page; the once-a-second push it replaced cost ~0.6 ms per following page
#: (BENCHMARKS.md, items 12 and 20).
SOCKET_PING_S = "2"
os.environ["REFLEX_SOCKET_INTERVAL"] = SOCKET_PING_S

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
    **state_manager(),
)
