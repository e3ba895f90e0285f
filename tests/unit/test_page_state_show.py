"""``ToolPageState._show`` on Reflex's real state classes: what a following page sends.

A page following a job shows it once a second (the elapsed time). Reflex sends every var that
was assigned — equal or not — and recomputes the computed vars depending on it, so the tick
must assign only what changed (BENCHMARKS.md, item 12)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from reflex.state import State

from arcano_tools.domain.status import JobStatus
from arcano_tools.web.state import EndDetails, SessionState, ToolPageState, UpscalerState
from tests.support.records import job_record

NOW = 1_800_000_000.0
#: What a second passing changes on a running job's page: the clock and what it drives.
CLOCK_VARS = {"elapsed_s", "run_s", "elapsed_text", "left_s", "progress", "typical_text"}


def _page() -> tuple[State, ToolPageState]:
    root = State(_reflex_internal_init=True)
    page = root.get_substate(UpscalerState.get_full_name().split(".")[1:])
    assert isinstance(page, UpscalerState)
    return root, page


def test_a_second_later_a_running_job_sends_its_clock_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, page = _page()
    job = job_record(datetime.fromtimestamp(NOW - 30, UTC), task_id="task-1")
    monkeypatch.setattr(time, "time", lambda: NOW)
    page._show(job)
    assert {"status", "job_id", "shown_job"} <= page.dirty_vars  # the first show sends it all
    root._clean()

    monkeypatch.setattr(time, "time", lambda: NOW + 1)
    page._show(job)
    assert page.dirty_vars == CLOCK_VARS
    assert page.elapsed_s == 31


def test_an_ended_job_shown_again_sends_nothing() -> None:
    root, page = _page()
    started = datetime.now(UTC) - timedelta(minutes=2)
    job = job_record(
        started,
        status=JobStatus.FAILED,
        completed_at=started + timedelta(seconds=40),
        error_message="out of memory",
    )
    page._show(job)
    root._clean()
    page._show(job)
    assert page.dirty_vars == set()
    assert page.status == JobStatus.FAILED.value


async def test_the_balance_after_the_end_is_shown_only_to_the_user_it_was_read_for() -> None:
    """The balance is read while the end is being shown; a tab signed out (or into another
    account) meanwhile must not be shown the first user's credits."""
    _root, page = _page()
    session = await page.get_state(SessionState)
    session.user_id, session.credits = "someone-else", 7
    await page._show_details(EndDetails(size=2048, credits=95, user_id="the-owner"))
    assert session.credits == 7
    assert page.output_size == "2 KB"

    session.user_id = "the-owner"
    await page._show_details(EndDetails(size=2048, credits=95, user_id="the-owner"))
    assert session.credits == 95
