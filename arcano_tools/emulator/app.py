"""The RunningHub emulator as a Starlette app speaking RunningHub's legacy ``/task/openapi`` API.

Why: the product must run (``make run``) and be tested without the real RunningHub, including
the failures the watchdog plan exists for. The app works mounted under a prefix (the main app
mounts it at ``/_emulator/runninghub``) or alone at the root: every URL it hands out is built
from the request's own base URL and ``root_path``.

This module only assembles an app: the routes and their handlers are in ``routes.py``, the
state they share is the app's :class:`EmulatorRuntime` at ``app.state.emulator``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette

from arcano_tools.emulator.control import EmulatorControl
from arcano_tools.emulator.guard import EmulatorGuard
from arcano_tools.emulator.routes import ROUTES
from arcano_tools.emulator.runtime import EmulatorRuntime

log = logging.getLogger("arcano_tools.emulator")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Stop the tasks in flight when a standalone emulator stops. A mounted app gets no
    lifespan of its own: ``Services.stop`` shuts its runtime down instead."""
    yield
    runtime: EmulatorRuntime = app.state.emulator
    await runtime.shutdown()


def create_emulator_app(
    data_dir: Path, control: EmulatorControl | None = None, guard: EmulatorGuard | None = None
) -> Starlette:
    """A new, independent emulator storing uploads and outputs under ``data_dir``.

    ``control`` None reads the ``EMULATOR_*`` environment (bad values raise ``ControlError``).
    ``guard`` None: controls open, webhooks to loopback only (an emulator running alone).
    The runtime is reachable as ``app.state.emulator`` (an :class:`EmulatorRuntime`).
    """
    app = Starlette(routes=ROUTES, lifespan=lifespan)
    app.state.emulator = EmulatorRuntime(Path(data_dir), control or EmulatorControl.from_env())
    app.state.guard = guard or EmulatorGuard(control_key=os.environ.get(CONTROL_KEY_ENV) or None)
    return app


#: A standalone emulator's controls need this bearer key when it is set.
CONTROL_KEY_ENV = "EMULATOR_CONTROL_KEY"


def serve(host: str, port: int, data_dir: Path | None = None) -> None:
    """Run the emulator alone with uvicorn (``python -m arcano_tools emulator`` calls this).

    Without ``data_dir`` the files go to a fresh temporary directory (printed in the log).
    """
    import uvicorn

    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="arcano-emulator-"))
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    # httpx logs every request URL at INFO, and webhook URLs carry the receiver's secret token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    log.info("RunningHub emulator on http://%s:%d, files in %s", host, port, data_dir)
    uvicorn.run(
        create_emulator_app(data_dir),
        host=host,
        port=port,
        ws="none",
        log_level="info",
    )
