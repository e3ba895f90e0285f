"""The tool pages in a real browser against the real app (prod build) and its embedded emulator.

Timings are shrunk by environment (the plan's 30 s / 15 s / 12 min become seconds) and the
server watchdog is off, so what these tests see is the page watchdog's doing. Screenshots of
each state land in ``tests/e2e/artifacts/`` for a person to look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import pytest_asyncio
from PIL import Image

from arcano_tools import constants as c

if TYPE_CHECKING:
    from playwright.async_api import Page

    from tests.conftest import RunningApp

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).parent / "artifacts"
INITIAL_DELAY_MS = 2500
POLL_MS = 1000
TIMEOUT_MS = 9000
WATCHDOG_ON = {
    "WATCHDOG_INITIAL_DELAY_MS": str(INITIAL_DELAY_MS),
    "WATCHDOG_POLL_INTERVAL_MS": str(POLL_MS),
    "WATCHDOG_MAX_TIMEOUT_MS": str(TIMEOUT_MS),
    "SERVER_WATCHDOG_ENABLED": "false",
    "UPSTREAM_MAX_RPS": "100",
    "ARCANO_PAGE_WATCHDOG_GRACE_MS": "2000",
}
WATCHDOG_OFF = {**WATCHDOG_ON, "WATCHDOG_ENABLED": "false"}
SERVICE_KEY = "svc_e2e_" + "k" * 32
UPLOAD_INPUT = "[data-testid=drop-{}] input[type=file]"


def png(size: tuple[int, int] = (320, 240), color: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


class AppDriver:
    """The app under test: its emulator control, its API as the page's own user."""

    def __init__(self, app: RunningApp, page: Page) -> None:
        self.app = app
        self.page = page
        self.http = httpx.AsyncClient(base_url=app.url, timeout=10)
        self.console_errors: list[str] = []
        page.on(
            "console",
            lambda m: self.console_errors.append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.console_errors.append(str(e)))

    async def emulator(self, **settings: Any) -> dict[str, Any]:
        r = await self.http.post("/_emulator/runninghub/_control", json=settings)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def emulator_stats(self) -> dict[str, Any]:
        return dict((await self.http.get("/_emulator/runninghub/_stats")).json())

    async def token(self) -> str:
        token = await self.page.evaluate("() => window.localStorage.getItem('arcano_token')")
        assert token
        return str(token).strip('"')

    async def job(self, job_id: str, token: str | None = None) -> dict[str, Any]:
        r = await self.http.get(
            f"/api/jobs/upscaler_jobs/{job_id}",
            headers={"Authorization": f"Bearer {token or await self.token()}"},
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def my_jobs(self) -> list[dict[str, Any]]:
        r = await self.http.get(
            "/api/jobs", headers={"Authorization": f"Bearer {await self.token()}"}
        )
        return list(r.json()["jobs"])

    async def credits(self) -> int:
        r = await self.http.get(
            "/api/me", headers={"Authorization": f"Bearer {await self.token()}"}
        )
        return int(r.json()["credits"])

    async def metric(self, name: str, **labels: str) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        svc = self.app.env["ARCANO_SERVICE_KEY"]
        text = (await self.http.get("/metrics", headers={"Authorization": f"Bearer {svc}"})).text
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return float(s.value)
        return 0.0

    async def open_tool(self, route: str = "/upscaler") -> None:
        await self.page.goto(self.app.url + route)
        await self.page.get_by_test_id("submit").wait_for()
        await self.session_ready()

    async def session_ready(self) -> None:
        """The anonymous user exists once its token is in localStorage and credits show."""
        await self.page.wait_for_function(
            "() => !!window.localStorage.getItem('arcano_token')"
            " && /[1-9]\\d* créditos/.test(document.querySelector('#credits')?.textContent || '')"
        )

    async def upload(self, field: str, name: str, content: bytes, mime: str = "image/png") -> None:
        await self.page.set_input_files(
            UPLOAD_INPUT.format(field), files=[{"name": name, "mimeType": mime, "buffer": content}]
        )

    async def submit_image(self) -> str:
        await self.upload("image", "foto.png", png())
        await self.page.get_by_text("320×240 px").wait_for()
        await self.page.get_by_test_id("submit").click()
        await self.page.get_by_test_id("status-label").wait_for()
        jobs = await self.my_jobs()
        assert jobs, "the click created no job"
        return str(jobs[0]["id"])

    async def submit_via_api(self, token: str) -> str:
        """Submit as the page's user without the page (so no page follows the job)."""
        r = await self.http.post(
            "/api/jobs",
            headers={"Authorization": f"Bearer {token}"},
            data={"tool": "upscaler", "scale": "2"},
            files={"image": ("foto.png", png(), "image/png")},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["jobId"])

    async def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        await self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    async def close(self) -> None:
        await self.http.aclose()


def seconds_between(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


@contextlib.asynccontextmanager
async def running_app(factory: Any, page: Page, env: dict[str, str]) -> AsyncIterator[AppDriver]:
    """The app with ``env`` (restarted only when the env changes), emulator reset and fast."""
    driver = AppDriver(factory({**env, "ARCANO_SERVICE_KEY": SERVICE_KEY}), page)
    await driver.emulator(reset=True)
    await driver.emulator(task_ms=400)
    try:
        yield driver
    finally:
        await driver.close()


@pytest_asyncio.fixture(loop_scope="session")
async def on(reflex_app_factory: Any, page: Page) -> AsyncIterator[AppDriver]:
    async with running_app(reflex_app_factory, page, WATCHDOG_ON) as driver:
        yield driver


@pytest_asyncio.fixture(loop_scope="session")
async def off(reflex_app_factory: Any, page: Page) -> AsyncIterator[AppDriver]:
    async with running_app(reflex_app_factory, page, WATCHDOG_OFF) as driver:
        yield driver


# --- watchdog on --------------------------------------------------------------------------------


async def test_delivered_webhook_shows_the_result_and_never_syncs(on: AppDriver) -> None:
    syncs_before = await on.metric("arcano_sync_calls_total")
    await on.open_tool()
    await on.shot("upscaler-empty")
    start_credits = await on.credits()

    job_id = await on.submit_image()
    await on.shot("upscaler-processing")

    await on.page.get_by_text(c.TOAST_SUCCESS).wait_for()
    await on.page.get_by_test_id("result").wait_for()
    await on.shot("upscaler-done")
    job = await on.job(job_id)
    assert job["status"] == "completed"
    assert job["finishedBy"] == "webhook"
    assert await on.page.get_by_test_id("result").get_attribute("src") == job["outputUrl"]
    assert (await on.emulator_stats())["calls"].get("outputs", 0) == 0
    assert await on.metric("arcano_sync_calls_total") == syncs_before
    assert await on.credits() == start_credits - 5
    assert on.console_errors == []


async def test_dropped_webhook_is_recovered_by_the_page_watchdog(on: AppDriver) -> None:
    await on.emulator(webhook="drop")
    await on.open_tool()

    job_id = await on.submit_image()
    await on.page.get_by_text(c.TOAST_SUCCESS).wait_for(timeout=30_000)

    job = await on.job(job_id)
    assert job["status"] == "completed"
    assert job["finishedBy"] == "watchdog"
    took = seconds_between(job["startedAt"], job["completedAt"])
    # never before the initial delay (nothing else could have found the result)…
    assert took >= INITIAL_DELAY_MS / 1000
    # …and by the first check after it: one upstream call did it
    stats = await on.emulator_stats()
    assert stats["webhooks"]["dropped"] == 1
    assert stats["calls"]["outputs"] == 1
    await on.page.get_by_test_id("result").wait_for()


async def test_failed_task_shows_runninghubs_reason_long_before_the_timeout(on: AppDriver) -> None:
    await on.emulator(webhook="drop", outcome="fail")
    await on.open_tool()
    start_credits = await on.credits()
    t0 = time.monotonic()

    job_id = await on.submit_image()
    await on.page.get_by_text("CUDA out of memory").first.wait_for(timeout=30_000)

    assert time.monotonic() - t0 < TIMEOUT_MS / 1000
    job = await on.job(job_id)
    assert job["status"] == "failed"
    assert await on.credits() == start_credits
    await on.shot("upscaler-failed")


async def test_never_ending_task_times_out_at_the_deadline_with_refund_and_cancel(
    on: AppDriver,
) -> None:
    await on.emulator(outcome="never")
    await on.open_tool()
    start_credits = await on.credits()

    job_id = await on.submit_image()
    await on.page.get_by_text("Timeout: processamento excedeu o tempo limite").first.wait_for(
        timeout=60_000
    )

    job = await on.job(job_id)
    assert job["status"] == "failed"
    assert job["finishedBy"] == "timeout"
    assert job["errorMessage"] == "Timeout: processamento excedeu o tempo limite (9 segundos)"
    assert seconds_between(job["startedAt"], job["completedAt"]) >= TIMEOUT_MS / 1000
    assert await on.credits() == start_credits
    assert (await on.emulator_stats())["tasks"]["cancelled"] == 1


async def test_reload_resumes_the_job_and_keeps_the_original_deadline(on: AppDriver) -> None:
    await on.emulator(outcome="never")
    await on.open_tool()
    job_id = await on.submit_image()
    await on.page.wait_for_timeout(6000)

    await on.page.reload()
    await on.page.get_by_test_id("status-label").wait_for()
    assert "Processando" in await on.page.get_by_test_id("status-label").inner_text()
    elapsed = await on.page.get_by_test_id("elapsed").inner_text()
    assert int(elapsed.split()[0]) >= 6  # the clock did not restart
    await on.page.get_by_text("Timeout: processamento excedeu o tempo limite").first.wait_for(
        timeout=60_000
    )

    job = await on.job(job_id)
    took = seconds_between(job["startedAt"], job["completedAt"])
    assert took >= TIMEOUT_MS / 1000
    # had the reload restarted the clock, the timeout would have come ≥ 6 s later
    assert took < TIMEOUT_MS / 1000 + 5


async def test_the_page_watchdog_stops_when_the_browser_goes_away(on: AppDriver) -> None:
    await on.emulator(webhook="drop", outcome="never")
    await on.open_tool()
    job_id = await on.submit_image()
    token = await on.token()

    async def outputs_calls() -> int:
        return int((await on.emulator_stats())["calls"].get("outputs", 0))

    while await outputs_calls() < 1:  # the watchdog is polling RunningHub
        await on.page.wait_for_timeout(200)
    await on.page.close()
    grace_s = int(WATCHDOG_ON["ARCANO_PAGE_WATCHDOG_GRACE_MS"]) / 1000
    await asyncio.sleep(grace_s + 2 * POLL_MS / 1000)  # the grace ends, a last call may land
    after_grace = await outputs_calls()

    await asyncio.sleep(4 * POLL_MS / 1000)

    assert await outputs_calls() == after_grace  # nobody polls for a closed tab any more
    assert (await on.job(job_id, token))["status"] == "running"
    await on.http.post(
        f"/api/jobs/upscaler_jobs/{job_id}/cancel", headers={"Authorization": f"Bearer {token}"}
    )


async def test_double_click_creates_one_job(on: AppDriver) -> None:
    await on.open_tool()
    await on.upload("image", "foto.png", png())
    await on.page.get_by_text("320×240 px").wait_for()
    await on.page.get_by_test_id("submit").dblclick()
    await on.page.get_by_test_id("status-label").wait_for()
    await on.page.get_by_text(c.TOAST_SUCCESS).wait_for()
    assert len(await on.my_jobs()) == 1


async def test_bad_uploads_get_a_clear_message_and_charge_nothing(on: AppDriver) -> None:
    await on.open_tool()
    start_credits = await on.credits()

    await on.upload("image", "foto.png", b"this is a text file, not a picture")
    error = on.page.get_by_test_id("error-image")
    await error.wait_for()
    assert "não é uma imagem válida" in await error.inner_text()
    assert await on.page.get_by_test_id("submit").is_disabled()

    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (c.MAX_IMAGE_BYTES + 1)
    await on.upload("image", "enorme.png", big)
    await on.page.get_by_text("Arquivo grande demais").wait_for()
    await on.shot("upscaler-bad-upload")

    assert await on.my_jobs() == []
    assert await on.credits() == start_credits


async def test_every_page_loads_without_console_errors(on: AppDriver) -> None:
    for route, name in [
        ("/", "home"),
        ("/upscaler", "upscaler"),
        ("/pose-changer", "pose-changer"),
        ("/veste-ai", "veste-ai"),
        ("/video-upscaler", "video-upscaler"),
        ("/meus-trabalhos", "meus-trabalhos"),
    ]:
        await on.page.goto(on.app.url + route)
        await on.session_ready()
        await on.shot(f"page-{name}")
    assert on.console_errors == []


async def test_veste_ai_composes_the_garment_and_shows_it(on: AppDriver) -> None:
    await on.open_tool("/veste-ai")
    await on.upload("image", "pessoa.png", png((300, 400), (220, 200, 180)))
    await on.upload("garment_image", "roupa.png", png((200, 200), (200, 20, 20)))
    await on.page.get_by_text("300×400 px").wait_for()
    await on.page.get_by_test_id("submit").click()
    await on.page.get_by_text(c.TOAST_SUCCESS).wait_for()
    await on.page.get_by_test_id("result").wait_for()
    await on.shot("veste-ai-done")


# --- watchdog off ---------------------------------------------------------------------------------


async def test_with_the_watchdog_off_a_lost_webhook_leaves_the_job_processing(
    off: AppDriver,
) -> None:
    """The plan's "nada muda": no sync call at all, the job stays processing."""
    await off.emulator(webhook="drop")
    await off.open_tool()
    job_id = await off.submit_image()

    await off.page.wait_for_timeout(INITIAL_DELAY_MS + 2 * POLL_MS + 500)

    assert "Processando" in await off.page.get_by_test_id("status-label").inner_text()
    assert (await off.job(job_id))["status"] == "running"
    assert (await off.emulator_stats())["calls"].get("outputs", 0) == 0
    assert await off.metric("arcano_sync_calls_total") == 0
    await off.page.get_by_test_id("cancel").click()
    await off.page.get_by_text("Cancelado").first.wait_for()
