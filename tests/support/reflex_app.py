"""The real app for the browser tests: ``reflex run --env prod --single-port`` in a subprocess
on a free loopback port, started through :func:`tests.support.processes.start_process`."""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from tests.support.processes import ROOT, ServerProcess, free_port, http_ready, start_process

#: Seconds to wait for ``reflex run`` to serve: ~4 s warm, ~6 s with a fresh .web and bun cache.
APP_START_TIMEOUT_S = float(os.environ.get("ARCANO_TEST_APP_START_TIMEOUT", "120"))


def reflex_base_env() -> dict[str, str]:
    """The offline Reflex environment of scripts/env.sh, for runs outside ``make``."""
    bun_pkg = (
        "@oven/bun-linux-aarch64"
        if platform.machine() in ("aarch64", "arm64")
        else "@oven/bun-linux-x64"
    )
    tools = ROOT / ".tools"
    env = {
        "REFLEX_DIR": str(ROOT / ".reflex"),
        "REFLEX_BUN_PATH": str(tools / "node_modules" / bun_pkg / "bin" / "bun"),
        "REFLEX_CHECK_LATEST_VERSION": "0",
        "REFLEX_TELEMETRY_ENABLED": "false",
        "NPM_CONFIG_REGISTRY": os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org/"),
        "BUN_INSTALL_CACHE_DIR": str(tools / "bun-cache"),
        "BUN_RUNTIME_TRANSPILER_CACHE_PATH": str(tools / "bun-transpiler-cache"),
    }
    # Values already exported (by scripts/env.sh) win.
    return {k: os.environ.get(k, v) for k, v in env.items()}


@dataclasses.dataclass
class RunningApp:
    """A ``reflex run --env prod --single-port`` subprocess serving on one loopback port."""

    server: ServerProcess
    url: str  # frontend, e.g. http://127.0.0.1:41234
    backend_url: str  # same origin in single-port mode; API routes and /_event live here
    port: int
    env: dict[str, str]  # what the test asked for on top of the defaults
    start_seconds: float

    def running(self) -> bool:
        return self.server.process.poll() is None

    def log(self) -> str:
        return self.server.log()

    def stop(self) -> None:
        """SIGTERM the whole process group (reflex, granian workers), SIGKILL after 10 s."""
        self.server.stop()


def start_reflex_app(
    env: Mapping[str, str] | None = None,
    *,
    log_dir: Path,
    port: int | None = None,
    backend_only: bool = False,
    app_dir: Path = ROOT,
) -> RunningApp:
    """Start the app and wait until both the frontend and Reflex's /ping answer.

    ``port``: a given one (a restarted app keeps the address its pages connect to).
    ``backend_only``: another backend process of the same app (``--backend-only``: no
    frontend build, so the one in ``.web/`` is left alone) — a second worker of a deployment.
    ``app_dir``: the Reflex app to run (its ``rxconfig.py``; its ``.web/`` is built there).

    Raises :class:`tests.support.processes.ServerStartError` (with the log) when it does not.
    """
    port = port or free_port()
    extra = dict(env or {})
    child_env = {
        **reflex_base_env(),
        "REFLEX_FRONTEND_PORT": str(port),
        "REFLEX_BACKEND_PORT": str(port),
        # One worker unless a test asks otherwise (with Redis, Reflex would start 2×cores+1).
        "GRANIAN_WORKERS": "1",
        # The built-in RunningHub emulator and generated secrets: a demo, not production.
        "ARCANO_DEMO": "true",
        **extra,
    }
    if backend_only:  # Reflex refuses a frontend port when it runs no frontend
        del child_env["REFLEX_FRONTEND_PORT"]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    child_env["PATH"] = path
    reflex_bin = shutil.which("reflex", path=path) or "reflex"
    base = f"http://127.0.0.1:{port}"
    mode = (
        ["--backend-only", "--backend-port", str(port)]
        if backend_only
        else ["--single-port", "--frontend-port", str(port)]
    )
    t0 = time.monotonic()
    server = start_process(
        "reflex-backend" if backend_only else "reflex-app",
        [reflex_bin, "run", "--env", "prod", *mode, "--backend-host", "127.0.0.1"],
        ready=http_ready(f"{base}/ping")
        if backend_only
        else http_ready(f"{base}/ping", f"{base}/"),
        url=base,
        env=child_env,
        timeout=APP_START_TIMEOUT_S,
        log_dir=log_dir,
        cwd=app_dir,
    )
    return RunningApp(
        server=server,
        url=base,
        backend_url=base,
        port=port,
        env=extra,
        start_seconds=time.monotonic() - t0,
    )
