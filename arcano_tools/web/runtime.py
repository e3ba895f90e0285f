"""The process-wide :class:`Services` the pages and the API share, and its lifespan.

Pages and HTTP routes run in the same backend process, so a webhook handled by a route is
published on the same bus a page follows: the browser sees it at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from arcano_tools import gc_tuning
from arcano_tools.config import load_settings
from arcano_tools.logs import configure_logging, lean_records
from arcano_tools.web import result_size
from arcano_tools.wiring import Services, refuse_unsafe_start

_services: Services | None = None
#: The Reflex app, set by the app module; used to tell whether a browser is still connected.
reflex_app: Any = None
#: (client token, job id) pairs followed by a background event of THIS process. Kept here, not
#: in the page state: with Redis the state outlives a crashed process, a flag in it would too.
followers: set[tuple[str, str]] = set()
#: The job each following tab of THIS process shows (client token → job id), kept while a
#: follower runs: a follower whose tab moved on to another job (reopened from "Meus
#: trabalhos", or a new submission) stops at its next look, although its own job is unchanged
#: and it pushes nothing (``ToolPageState.follow``).
tab_jobs: dict[str, str] = {}


def tab_moved_on(client_token: str, job_id: str) -> bool:
    """The tab now shows another job (or none) than ``job_id``."""
    return tab_jobs.get(client_token, job_id) != job_id


def tab_shows(client_token: str, job_id: str) -> None:
    """The tab shows ``job_id`` now (only noted for a tab that has a follower here)."""
    if client_token in tab_jobs:
        tab_jobs[client_token] = job_id


def services() -> Services:
    global _services
    if _services is None:
        settings = load_settings()
        if "REFLEX_BACKEND_PORT" not in os.environ:
            # the port Reflex really serves on (prod single-port mode uses the frontend's)
            from reflex.config import get_config

            port = get_config().backend_port
            if port:
                settings = load_settings(backend_port=port)
        configure_logging(settings.log_format, logging.INFO)
        refuse_unsafe_start(settings)
        _services = Services(settings)
    return _services


@contextlib.asynccontextmanager
async def lifespan() -> AsyncIterator[None]:
    """Registered with ``app.register_lifespan_task``: migrate, seed, run the dispatcher.
    Runs in the worker process (after granian's fork), once the app is loaded: the place to
    tune its garbage collector and its log records."""
    gc_tuning.tune_for_server()
    lean_records()
    s = services()
    await s.start()
    try:
        yield
    finally:
        try:
            await s.stop()
        finally:
            await result_size.aclose()


def client_connected(client_token: str) -> bool:
    """Is a browser tab with this Reflex client token connected right now?

    Asked by every following page at each of its looks (every 5 s once out of the queue).
    Reflex's ``token_to_sid`` is a copy of its token manager's map built on every access, so a
    thousand pages asking it cost a million dictionary entries a second (BENCHMARKS.md, item
    12): the token manager's own map (``token_to_socket``, what that copy is made of) is asked
    directly, in constant time."""
    namespace = getattr(reflex_app, "event_namespace", None)
    if namespace is None:
        return True  # not running under Reflex (tests of the state): assume yes
    sockets = getattr(getattr(namespace, "_token_manager", None), "token_to_socket", None)
    if isinstance(sockets, dict):
        return client_token in sockets
    return client_token in namespace.token_to_sid  # another Reflex: its public (slow) copy
