"""Generic test fixtures: the real app in a subprocess and a Chromium browser.

* ``reflex_app_factory(env)`` starts ``reflex run --env prod --single-port`` on a free loopback
  port with extra environment variables and returns a :class:`RunningApp` (``.url``,
  ``.backend_url``; started by ``tests/support/reflex_app.py``). Reflex bakes the port into
  the frontend build in the shared ``.web/``, so only ONE app runs at a time: asking for the
  same env again returns the running app, asking for a different env stops the running one
  first. About 4 s per start.
* ``reflex_app``: the app with the default environment.
* ``browser``: a session-wide Playwright (ASYNC API) Chromium on Debian's ``/usr/bin/chromium``
  (never ``playwright install``); ``page`` gives each test a fresh context and page. Async tests
  under ``tests/e2e/`` run on the session event loop automatically (see the hook below).

Project-specific fixtures (databases, Redis, emulator, ...) belong in the conftest.py of the
sub-directories, not here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from pytest_asyncio import is_async_test

from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.support.processes import ROOT, ServerStartError
from tests.support.reflex_app import RunningApp, start_reflex_app

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page


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
            if app.env == wanted and app.running():
                return app
            app.stop()
            current.clear()
        try:
            app = start_reflex_app(wanted, log_dir=log_dir)
        except ServerStartError as exc:
            pytest.fail(str(exc), pytrace=False)
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
