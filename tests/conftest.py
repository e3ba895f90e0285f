"""Generic test fixtures: the real app in a subprocess and a Chromium browser.

* ``reflex_app_factory(env)`` starts ``reflex run --env prod --single-port`` on a free loopback
  port with extra environment variables and returns a :class:`RunningApp` (``.url``,
  ``.backend_url``). Reflex bakes the port into the frontend build in the shared ``.web/``,
  so only ONE app runs at a time: asking for the same env again returns the running app,
  asking for a different env stops the running one first. About 4 s per start.
* ``reflex_app``: the app with the default environment.
* ``browser``: a session-wide Playwright (ASYNC API) Chromium on Debian's ``/usr/bin/chromium``
  (never ``playwright install``); ``page`` gives each test a fresh context and page. Async tests
  under ``tests/e2e/`` run on the session event loop automatically (see the hook below).

Project-specific fixtures (databases, Redis, emulator, ...) belong in the conftest.py of the
sub-directories, not here.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import pytest_asyncio
from pytest_asyncio import is_async_test

from tests.support.servers import free_port, stop_process_group

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Seconds to wait for ``reflex run`` to serve: ~4 s warm, ~6 s with a fresh .web and bun cache.
APP_START_TIMEOUT_S = float(os.environ.get("ARCANO_TEST_APP_START_TIMEOUT", "120"))


# --- helpers -----------------------------------------------------------------------------------
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

    url: str  # frontend, e.g. http://127.0.0.1:41234
    backend_url: str  # same origin in single-port mode; API routes and /_event live here
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    start_seconds: float

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM the whole process group (reflex, granian workers), SIGKILL after 10 s."""
        stop_process_group(self.process)


def start_reflex_app(env: Mapping[str, str] | None = None, *, log_dir: Path) -> RunningApp:
    """Start the app and wait until both the frontend and our /healthz answer."""
    port = free_port()
    extra = dict(env or {})
    child_env = {
        **os.environ,
        **reflex_base_env(),
        "PYTHONUNBUFFERED": "1",
        "REFLEX_FRONTEND_PORT": str(port),
        "REFLEX_BACKEND_PORT": str(port),
        # One worker unless a test asks otherwise (with Redis, Reflex would start 2×cores+1).
        "GRANIAN_WORKERS": "1",
        **extra,
    }
    # The test runner's warning filters must not leak into the server.
    child_env.pop("PYTHONWARNINGS", None)
    child_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{child_env.get('PATH', '')}"
    log_path = Path(tempfile.mkstemp(prefix="reflex-app-", suffix=".log", dir=log_dir)[1])
    reflex_bin = shutil.which("reflex", path=child_env["PATH"]) or "reflex"
    cmd = [
        reflex_bin,
        "run",
        "--env",
        "prod",
        "--single-port",
        "--frontend-port",
        str(port),
        "--backend-host",
        "127.0.0.1",
    ]
    t0 = time.monotonic()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stopped as a whole
        )
    base = f"http://127.0.0.1:{port}"
    app = RunningApp(
        url=base,
        backend_url=base,
        port=port,
        env=extra,
        process=process,
        log_path=log_path,
        start_seconds=0.0,
    )
    deadline = t0 + APP_START_TIMEOUT_S
    with httpx.Client(timeout=2.0) as client:
        while True:
            if process.poll() is not None:
                app.stop()
                pytest.fail(
                    f"reflex run exited with {process.returncode} before serving.\n"
                    f"--- {log_path} ---\n{app.log()}",
                    pytrace=False,
                )
            try:
                if (
                    client.get(f"{base}/ping").status_code == 200
                    and client.get(f"{base}/").status_code == 200
                ):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                app.stop()
                pytest.fail(
                    f"reflex run did not serve {base} within {APP_START_TIMEOUT_S:.0f} s.\n"
                    f"--- {log_path} ---\n{app.log()}",
                    pytrace=False,
                )
            time.sleep(0.1)
    app.start_seconds = time.monotonic() - t0
    return app


# --- app fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def reflex_app_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., RunningApp]]:
    """``reflex_app_factory(env: dict | None = None) -> RunningApp``; one live app at a time."""
    log_dir = tmp_path_factory.mktemp("reflex-logs")
    current: list[RunningApp] = []

    def factory(env: Mapping[str, str] | None = None) -> RunningApp:
        wanted = dict(env or {})
        if current:
            app = current[0]
            if app.env == wanted and app.process.poll() is None:
                return app
            app.stop()
            current.clear()
        app = start_reflex_app(wanted, log_dir=log_dir)
        current.append(app)
        return app

    try:
        yield factory
    finally:
        for app in current:
            app.stop()


@pytest.fixture
def reflex_app(reflex_app_factory: Callable[..., RunningApp]) -> RunningApp:
    """The app with the default environment (started once, reused while the env matches)."""
    return reflex_app_factory()


# --- browser fixtures -------------------------------------------------------------------------
# Playwright's ASYNC API on pytest-asyncio's session loop. The sync API cannot be used here: while
# a sync Playwright is alive it leaves its own loop marked "running" in the main thread between
# calls, and every later async test then fails with "Runner.run() cannot be called from a running
# event loop" (measured with pytest-asyncio 1.5 / playwright 1.65).
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Async tests under tests/e2e/ run on the session loop that owns the browser."""
    e2e_dir = ROOT / "tests" / "e2e"
    session_loop = pytest.mark.asyncio(loop_scope="session")
    for item in items:
        if e2e_dir in Path(str(item.path)).parents and is_async_test(item):
            item.add_marker(session_loop, append=False)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Headless Debian Chromium (never `playwright install`), one per test session."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: run `scripts/bootstrap.sh --test` (apt chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh browser context and page per test (cookies/localStorage not shared)."""
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(10_000)
    try:
        yield page
    finally:
        await context.close()
