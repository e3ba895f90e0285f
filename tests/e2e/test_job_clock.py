"""The job's clock as the browser runs it (``assets/job_clock_math.js``), in Chromium.

The server sends a snapshot of the clock when the job changes; the page moves it along every
second by itself. Its text must read exactly as the server's (``web/texts.py``
``duration_text``, also used by "Meus trabalhos"), and its bar must behave as the estimate
promises: growing, never full before the end, and honest without history."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

from arcano_tools import constants as c
from arcano_tools.web.texts import duration_text

if TYPE_CHECKING:
    from playwright.async_api import Page

pytestmark = pytest.mark.e2e

MODULE = Path(__file__).resolve().parents[2] / "assets" / "job_clock_math.js"
NAMES = ("durationText", "liveSeconds", "liveLeft", "progressPercent")
LOW, HIGH = c.PROGRESS_QUEUED_PCT, c.PROGRESS_MAX_ACTIVE_PCT


@pytest_asyncio.fixture(loop_scope="session")
async def clock(page: Page) -> Page:
    """A blank page with the module's functions on ``window.clock``."""
    await page.set_content("<!doctype html><title>clock</title>")
    expose = f"\nwindow.clock = {{{', '.join(NAMES)}}};"
    await page.add_script_tag(content=MODULE.read_text() + expose, type="module")
    await page.wait_for_function("() => !!window.clock")
    return page


async def call(page: Page, name: str, *args: Any) -> Any:
    return await page.evaluate("([n, a]) => window.clock[n](...a)", [name, list(args)])


async def test_durations_read_as_the_server_writes_them(clock: Page) -> None:
    seconds = [*range(3_700), 7_199, 7_200, 86_400]
    browser = await clock.evaluate("(ss) => ss.map((s) => window.clock.durationText(s))", seconds)
    assert browser == [duration_text(s) for s in seconds]


async def test_the_elapsed_time_moves_only_while_the_job_runs(clock: Page) -> None:
    assert await call(clock, "liveSeconds", 30_000, 2_500, True) == 32
    assert await call(clock, "liveSeconds", 30_999, 1, True) == 31
    assert await call(clock, "liveSeconds", 30_000, 60_000, False) == 30  # ended: final
    assert await call(clock, "liveSeconds", 30_000, -5_000, True) == 30  # a clock set back


async def test_the_estimate_counts_down_once_out_of_the_queue_and_stops_at_zero(
    clock: Page,
) -> None:
    assert await call(clock, "liveLeft", 40, 3_200, True) == 37
    assert await call(clock, "liveLeft", 40, 3_200, False) == 40  # queued: waits as it is
    assert await call(clock, "liveLeft", 3, 10_000, True) == 0  # over the usual time
    assert await call(clock, "liveLeft", -1, 10_000, True) == -1  # no history: still none


async def test_the_bar_grows_and_never_claims_to_be_done(clock: Page) -> None:
    typical = 8
    values = [
        await call(clock, "progressPercent", s, max(0, typical - s), LOW, HIGH) for s in range(12)
    ]
    assert values == sorted(values)
    assert values[0] == LOW  # just clicked: a sliver, not an empty bar
    assert values[-1] == HIGH
    # an 8 s job is nearly full by its 7th second
    assert values[7] >= 80
    # 20 s queued + 5 s run of a 10 s tool: 25 of 30 s; halves round up (12.5 → 13)
    assert await call(clock, "progressPercent", 25, 5, LOW, HIGH) == 83
    assert await call(clock, "progressPercent", 1, 7, 0, 100) == 13


async def test_without_history_the_bar_has_no_percentage(clock: Page) -> None:
    assert await call(clock, "progressPercent", 3, -1, LOW, HIGH) == -1
