"""The tool pages in a real browser against the real app (prod build) and its embedded emulator.

Timings are shrunk by environment (the plan's 30 s / 15 s / 12 min become seconds) and the
server watchdog is off, so what these tests see is the page watchdog's doing. Screenshots of
each state land in ``tests/e2e/artifacts/`` for a person to look at.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from arcano_tools import constants as c
from tests.support.app_driver import (
    INITIAL_DELAY_MS,
    PHOTO_SIZE,
    POLL_MS,
    TIMEOUT_MS,
    WATCHDOG_OFF,
    WATCHDOG_ON,
    AppDriver,
    photo,
    running_app,
)
from tests.support.images import decode_image, png_bytes
from tests.support.reflex_app import RunningApp
from tests.support.tools import tool_cost
from tests.support.waiting import seconds_between, wait_for_async

if TYPE_CHECKING:
    from playwright.async_api import Page

pytestmark = pytest.mark.e2e
#: How long a job has been processing when the reload test reloads the page.
RELOAD_AFTER_S = 5


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
    assert await on.credits() == start_credits - tool_cost("upscaler")
    assert on.console_errors == []


#: socket.io's event frames (Reflex's state updates and event calls) start with this.
EVENT_FRAME_PREFIX = "42"
#: Before the page's scripts: the text of every websocket frame the tab sends, in
#: ``window.__sent``.
SENT_FRAMES_JS = """(() => {
  const Native = window.WebSocket;
  window.__sent = [];
  window.WebSocket = class extends Native {
    send(data) { window.__sent.push(String(data)); return super.send(data); }
  };
})();"""


async def test_the_results_facts_ask_the_server_nothing(on: AppDriver) -> None:
    """The browser reads the result's resolution itself (``assets/result_facts.jsx``). It used
    to send it to the server, which pushed it back: an event, the page state's lock and a
    re-render of every component of the page, per result, for a fact the browser had."""
    await on.page.add_init_script(SENT_FRAMES_JS)
    await on.open_tool()
    await on.submit_image()
    sent_before = await on.page.evaluate("() => window.__sent.length")  # the job is running
    await on.page.get_by_test_id("result").wait_for()
    width, height = (2 * side for side in PHOTO_SIZE)  # the emulator's 2× of the photo
    facts = on.page.get_by_test_id("result-facts")
    await facts.filter(has_text=f"{width}×{height} px · ").wait_for()  # resolution and size

    sent = await on.page.evaluate("(n) => window.__sent.slice(n)", sent_before)
    assert [frame for frame in sent if frame.startswith(EVENT_FRAME_PREFIX)] == []


async def test_dropped_webhook_is_recovered_by_the_page_watchdog(on: AppDriver) -> None:
    await on.emulator(webhook="drop")
    await on.open_tool()

    job_id = await on.submit_image()
    await on.page.get_by_text(c.TOAST_SUCCESS).wait_for(timeout=30_000)

    job = await on.job(job_id)
    assert job["status"] == "completed"
    assert job["finishedBy"] == "watchdog"
    took = seconds_between(job["createdAt"], job["completedAt"])
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
    # RunningHub's reason, as the page says it (its own words stay in the job)
    await on.page.get_by_text("grande demais para a GPU").first.wait_for(timeout=30_000)

    assert time.monotonic() - t0 < TIMEOUT_MS / 1000
    job = await on.job(job_id)
    assert job["status"] == "failed"
    assert job["errorMessage"].startswith("CUDA out of memory")
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
    assert seconds_between(job["createdAt"], job["completedAt"]) >= TIMEOUT_MS / 1000
    assert await on.credits() == start_credits

    async def cancelled() -> int:  # the upstream cancel runs after the refund, in the background
        return int((await on.emulator_stats())["tasks"]["cancelled"])

    assert await wait_for_async(cancelled, what="the upstream cancel") == 1


#: The page's animations that never end (a spinner's leaves, a bar with no estimate), by name.
ENDLESS_ANIMATIONS_JS = """() => document.getAnimations()
    .filter((a) => a.playState === "running" && a.effect?.getComputedTiming().endTime === Infinity)
    .map((a) => a.animationName || "(transition)")"""
#: Radix's bar without an estimate, as ``rx.progress`` renders it, added to the status card:
#: the page shows it only while the tool has no history, which other tests may have made.
NO_ESTIMATE_BAR_JS = """() => document.getElementById("job-status").insertAdjacentHTML("beforeend",
    '<div class="rt-ProgressRoot rt-r-size-2 rt-variant-surface" data-state="indeterminate">'
    + '<div class="rt-ProgressIndicator" data-state="indeterminate"></div></div>')"""
NO_ESTIMATE_ANIMATION = "rt-progress-indicator-indeterminate-shine-from-left"


async def test_a_working_page_stands_still_when_the_system_asks_for_reduced_motion(
    on: AppDriver,
) -> None:
    """Radix's spinner and its bar without an estimate run at the screen's frame rate for the
    whole job; with the system's "reduce motion" they stand still (``assets/pages.css``) and
    the clock alone moves. The same page asked for motion animates: the check can fail."""
    await on.emulator(outcome="never")
    await on.page.emulate_media(reduced_motion="reduce")
    await on.open_tool()
    await on.submit_image()
    await on.processing_for(1)
    spinner = on.page.locator("#job-status .rt-Spinner")
    await spinner.wait_for()
    await on.shots("upscaler-processing-reduced-motion")
    await on.page.evaluate(NO_ESTIMATE_BAR_JS)
    assert await on.page.evaluate(ENDLESS_ANIMATIONS_JS) == []
    leaves = await spinner.evaluate(
        "(s) => [...s.children].map((leaf) => getComputedStyle(leaf).opacity)"
    )
    # Radix's look at any instant, stopped: the first leaf darkest, lighter counter-clockwise
    assert leaves == ["1", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]

    await on.page.emulate_media(reduced_motion="no-preference")
    moving = await on.page.evaluate(ENDLESS_ANIMATIONS_JS)
    assert {"rt-spinner-leaf-fade", NO_ESTIMATE_ANIMATION} <= set(moving)


#: Before the page's scripts: the text of every websocket frame the tab receives, in
#: ``window.__frames`` (Reflex's socket.io client builds its sockets on ``window.WebSocket``).
#: The data is read through the browser's own getter, kept before ``arcano.js`` wraps it: this
#: listener's reads must not count as the page's signs of life.
FRAMES_JS = """(() => {
  const Native = window.WebSocket;
  const data = Object.getOwnPropertyDescriptor(MessageEvent.prototype, "data").get;
  window.__frames = [];
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => window.__frames.push(String(data.call(e))));
    }
  };
})();"""
#: engine.io's ping frame (socket.io's events: ``EVENT_FRAME_PREFIX``).
PING_FRAME = "2"
#: Long enough for two pings (``REFLEX_SOCKET_INTERVAL``, 2 s) and more than the silence after
#: which the page says "sem conexão" (``STALE_MS``, 4.5 s).
QUIET_WINDOW_S = 5


async def test_a_job_that_does_not_change_sends_the_page_nothing_but_pings(
    on: AppDriver,
) -> None:
    """The page runs its job's clock itself (``assets/job_clock.jsx``): while the job does not
    change, the server sends no state update — the page used to get one every second — the
    elapsed time still moves, and the socket's pings keep the page from saying the server is
    gone. (The page watchdog's syncs meanwhile, one a second here, change nothing.)"""
    await on.page.add_init_script(FRAMES_JS)
    await on.emulator(outcome="never")
    await on.open_tool()
    await on.submit_image()
    await on.page.get_by_test_id("status-label").filter(has_text="Processando").wait_for()
    await on.page.wait_for_timeout(300)  # the start's last updates
    before = await on.page.evaluate("window.__frames.length")
    elapsed_before = int((await on.page.get_by_test_id("elapsed").inner_text()).split()[0])

    await on.page.wait_for_timeout(QUIET_WINDOW_S * 1000)
    frames: list[str] = await on.page.evaluate("(n) => window.__frames.slice(n)", before)
    elapsed_after = int((await on.page.get_by_test_id("elapsed").inner_text()).split()[0])
    assert [f for f in frames if f.startswith(EVENT_FRAME_PREFIX)] == []
    assert frames.count(PING_FRAME) >= 2
    assert elapsed_after >= elapsed_before + QUIET_WINDOW_S - 1
    assert await on.page.get_by_test_id("status-label").inner_text() == "Processando"
    assert not await on.page.get_by_test_id("offline").is_visible()


async def test_reload_resumes_the_job_and_keeps_the_original_deadline(on: AppDriver) -> None:
    await on.emulator(outcome="never")
    await on.open_tool()
    job_id = await on.submit_image()
    # the page's clock and the deadline both count from the click (the queue included)
    await on.processing_for(RELOAD_AFTER_S)

    await on.page.reload()
    await on.page.get_by_test_id("status-label").wait_for()
    # the job is shown again; a reload that takes seconds on a busy machine may already
    # find it ended by the original deadline (which is what this test is about)
    assert await on.page.get_by_test_id("status-label").inner_text() in ("Processando", "Falhou")
    elapsed = await on.page.get_by_test_id("elapsed").inner_text()
    assert int(elapsed.split()[0]) >= RELOAD_AFTER_S  # the clock did not restart
    await on.page.get_by_text("Timeout: processamento excedeu o tempo limite").first.wait_for(
        timeout=60_000
    )

    job = await on.job(job_id)
    took = seconds_between(job["createdAt"], job["completedAt"])
    assert took >= TIMEOUT_MS / 1000
    # had the reload restarted the clock, the timeout would have come ≥ RELOAD_AFTER_S later
    assert took < TIMEOUT_MS / 1000 + RELOAD_AFTER_S - 1


async def test_the_page_watchdog_stops_when_the_browser_goes_away(on: AppDriver) -> None:
    await on.emulator(webhook="drop", outcome="never")
    await on.open_tool()
    job_id = await on.submit_image()
    token = await on.token()

    async def outputs_calls() -> int:
        return int((await on.emulator_stats())["calls"].get("outputs", 0))

    async def polled() -> bool:
        return await outputs_calls() >= 1

    await wait_for_async(polled, timeout=30, what="the page watchdog to poll RunningHub")
    await on.page.close()
    # Time passing is what this test is about: no event says "nobody polls any more", so it
    # lets the grace period end (plus two intervals, for a last call in flight)…
    grace_s = int(WATCHDOG_ON["ARCANO_PAGE_WATCHDOG_GRACE_MS"]) / 1000
    await asyncio.sleep(grace_s + 2 * POLL_MS / 1000)
    after_grace = await outputs_calls()

    # …then watches four more intervals, in which a watchdog still running would call.
    await asyncio.sleep(4 * POLL_MS / 1000)

    assert await outputs_calls() == after_grace  # nobody polls for a closed tab any more
    assert (await on.job(job_id, token))["status"] == "running"
    await on.http.post(
        f"/api/jobs/upscaler_jobs/{job_id}/cancel", headers={"Authorization": f"Bearer {token}"}
    )


async def test_double_click_creates_one_job(on: AppDriver) -> None:
    await on.open_tool()
    await on.upload("image", "foto.png", photo())
    await on.page.get_by_text("320×240 px").wait_for()
    await on.page.get_by_test_id("submit").dblclick()
    await on.page.get_by_test_id("status-label").wait_for()
    await on.page.get_by_text(c.TOAST_SUCCESS).wait_for()
    assert len(await on.my_jobs()) == 1


async def test_bad_uploads_get_a_clear_message_and_charge_nothing(
    on: AppDriver, tmp_path: Path
) -> None:
    await on.open_tool()
    start_credits = await on.credits()

    await on.upload("image", "foto.png", b"this is a text file, not a picture")
    error = on.page.get_by_test_id("error-image")
    await error.wait_for()
    assert "não é uma imagem válida" in await error.inner_text()
    assert await on.page.get_by_test_id("submit").is_disabled()

    big = tmp_path / "enorme.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * (c.MAX_IMAGE_BYTES + 1))
    await on.upload_path("image", big)
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
    person, garment = (220, 200, 180), (200, 20, 20)
    await on.open_tool("/veste-ai")
    start_credits = await on.credits()
    await on.upload("image", "pessoa.png", png_bytes((300, 400), person))
    await on.upload("garment_image", "roupa.png", png_bytes((200, 200), garment))
    await on.page.get_by_text("300×400 px").wait_for()
    await on.page.get_by_test_id("submit").click()
    await on.page.get_by_text(c.TOAST_SUCCESS).wait_for()
    result = on.page.get_by_test_id("result")
    await result.wait_for()
    await on.shot("veste-ai-done")

    src = await result.get_attribute("src")
    assert src
    shown = decode_image(await on.fetch(src))
    # the emulator's try-on: the person's picture, its size kept, the garment on the torso
    assert shown.size == (300, 400)
    for corner in ((0, 0), (299, 0), (0, 399), (299, 399)):
        assert shown.getpixel(corner) == person, corner
    torso = shown.getpixel((150, 150))
    assert isinstance(torso, tuple)
    assert all(abs(a - b) <= 3 for a, b in zip(torso, garment, strict=True)), torso
    assert await on.credits() == start_credits - tool_cost("veste_ai")


# --- watchdog off ---------------------------------------------------------------------------------


async def test_with_the_watchdog_off_a_lost_webhook_leaves_the_job_processing(
    off: AppDriver,
) -> None:
    """The plan's "nada muda": no sync call at all, the job stays processing."""
    await off.emulator(webhook="drop")
    await off.open_tool()
    job_id = await off.submit_image()

    # Time passing is what this test is about: the page's clock runs past the initial delay
    # and two intervals, when a watchdog would have called RunningHub twice.
    await off.processing_for(math.ceil((INITIAL_DELAY_MS + 2 * POLL_MS + 500) / 1000))

    assert "Processando" in await off.page.get_by_test_id("status-label").inner_text()
    assert (await off.job(job_id))["status"] == "running"
    assert (await off.emulator_stats())["calls"].get("outputs", 0) == 0
    assert await off.metric("arcano_sync_calls_total") == 0
    await off.page.get_by_test_id("cancel").click()
    await off.page.get_by_text("Cancelado").first.wait_for()


# --- results not copied: the page asks the file host for the size ------------------------------

#: The file host's delay: under the size check's 3 s timeout, far above a push.
SLOW_FILES_MS = 2500


async def test_the_result_shows_before_its_size_is_asked_of_the_file_host(
    reflex_app_factory: Callable[..., RunningApp], page: Page
) -> None:
    """With results not copied, the size is a HEAD to RunningHub's file host (far away in
    production). The page used to show the result only once that HEAD had come back; now the
    result is pushed first and the size follows."""
    env = {**WATCHDOG_OFF, "ARCANO_KEEP_RESULTS": "false"}
    async with running_app(reflex_app_factory, page, env) as app:
        await app.emulator(files_delay_ms=SLOW_FILES_MS)
        await app.open_tool()
        await app.submit_image()
        await app.page.get_by_test_id("result").wait_for(state="attached", timeout=30_000)
        facts = app.page.get_by_test_id("result-facts")
        assert "KB" not in await facts.inner_text()  # the HEAD is still on its way
        await facts.filter(has_text=" KB").wait_for(timeout=30_000)
        await app.emulator(files_delay_ms=0)
