"""The operator page and the shared upstream schedule, in the browser."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from tests.support.app_driver import SERVICE_KEY, WATCHDOG_ON, AppDriver, running_app
from tests.support.reflex_app import RunningApp
from tests.support.waiting import wait_for_async

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = pytest.mark.e2e


@pytest_asyncio.fixture(loop_scope="session")
async def app_server_watchdog(
    reflex_app_factory: Callable[..., RunningApp], page: Page
) -> AsyncIterator[AppDriver]:
    # a long deadline: this test watches a never-ending job, then cancels it
    env = {**WATCHDOG_ON, "SERVER_WATCHDOG_ENABLED": "true", "WATCHDOG_MAX_TIMEOUT_MS": "120000"}
    async with running_app(reflex_app_factory, page, env) as driver:
        yield driver


async def test_admin_shows_a_stuck_job_and_sync_now_finishes_it(
    on: AppDriver, browser: Browser
) -> None:
    app = on
    await app.emulator(webhook="drop")
    await app.open_tool()
    token = await app.token()
    # no page follows the job and the server watchdog is off: only the operator can rescue it
    await app.page.goto("about:blank")
    job_id = await app.submit_via_api(token)

    operator = await browser.new_context()
    admin = await operator.new_page()
    try:
        await admin.goto(app.app.url + "/admin")
        await admin.get_by_test_id("admin-key").fill(SERVICE_KEY)
        await admin.get_by_test_id("admin-login").click()
        row = admin.get_by_test_id("at-risk").get_by_text(job_id)

        async def shown_at_risk() -> bool:
            """The operator presses "Atualizar" until the job is past the initial delay."""
            await admin.get_by_role("button", name="Atualizar").click()
            return await row.count() > 0

        await wait_for_async(shown_at_risk, timeout=30, interval=0.25, what="the at-risk row")
        await admin.get_by_test_id("at-risk").get_by_test_id("sync-now").first.click()
        await admin.get_by_test_id("no-risk").wait_for()
        await admin.get_by_test_id("rescues").get_by_text(job_id[:8]).wait_for()
        await app.shot("admin", admin)
    finally:
        await operator.close()
    job = await app.job(job_id, token)
    assert job["status"] == "completed"
    assert job["finishedBy"] == "watchdog"


async def test_admin_is_refused_to_an_ordinary_user(on: AppDriver) -> None:
    app = on
    await app.page.goto(app.app.url + "/admin")
    await app.session_ready()
    await app.page.get_by_text("Acesso restrito").wait_for()
    assert await app.page.get_by_test_id("at-risk").count() == 0
    assert await app.page.get_by_test_id("status-counts").count() == 0
    await app.page.get_by_test_id("admin-key").fill("not-the-key")
    await app.page.get_by_test_id("admin-login").click()
    await app.page.get_by_text("Chave inválida.").wait_for()
    assert await app.page.get_by_test_id("status-counts").count() == 0


async def test_five_pages_and_the_server_watchdog_make_one_upstream_call_per_interval(
    app_server_watchdog: AppDriver, browser: Browser
) -> None:
    app = app_server_watchdog
    await app.emulator(webhook="drop", outcome="never")
    await app.open_tool()
    t0 = time.monotonic()
    job_id = await app.submit_image()
    pages = [app.page]
    for _ in range(4):  # four more tabs of the same user follow the same job
        tab = await app.page.context.new_page()
        await tab.goto(app.app.url + "/upscaler")
        await tab.get_by_test_id("status-label").wait_for()
        pages.append(tab)

    async def four_calls() -> dict[str, list[float]] | None:
        calls: dict[str, list[float]] = (await app.emulator_stats())["outputs_calls_by_task"]
        return calls if any(len(t) >= 4 for t in calls.values()) else None

    # one schedule makes four calls in three intervals after the initial delay (six watchers
    # each on their own would make them within moments of each other)
    calls = await wait_for_async(four_calls, timeout=30, what="four upstream checks")
    watched_s = time.monotonic() - t0  # since the submit: every call happened in this span
    assert calls is not None
    (times,) = calls.values()

    interval = int(WATCHDOG_ON["WATCHDOG_POLL_INTERVAL_MS"]) / 1000
    gaps = [b - a for a, b in itertools.pairwise(sorted(times))]
    # six watchers, one schedule: never two calls within (about) one interval
    assert min(gaps) >= interval * 0.5, gaps
    assert len(times) <= watched_s / interval + 1
    for tab in pages:
        assert "Processando" in await tab.get_by_test_id("status-label").inner_text()
    await app.page.get_by_test_id("cancel").click()
    await app.page.get_by_text("Cancelado").first.wait_for()
    assert (await app.job(job_id))["status"] == "cancelled"
