"""``ToolPageState._show`` on Reflex's real state classes: what a following page sends.

Reflex sends every var that was assigned — equal or not — and recomputes the computed vars
depending on it, so a show assigns only what changed (BENCHMARKS.md, item 12). The clock runs in
the browser from a snapshot taken when the job changes: a job shown again unchanged sends
nothing, however much time passed (item 20)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from reflex.state import State

from arcano_tools.domain.status import JobStatus
from arcano_tools.storage.local import LocalStorage
from arcano_tools.store.memory import InMemoryStore
from arcano_tools.web import runtime
from arcano_tools.web import state as state_module
from arcano_tools.web.state import (
    EndDetails,
    SessionState,
    ToolPageState,
    UpscalerState,
    seen_by_the_page,
)
from tests.support.records import job_record

NOW = 1_800_000_000.0
#: A new snapshot of a running job's clock: what the browser counts on from.
CLOCK_VARS = {"elapsed_ms", "run_s", "left_s"}


def _page() -> tuple[State, ToolPageState]:
    root = State(_reflex_internal_init=True)
    page = root.get_substate(UpscalerState.get_full_name().split(".")[1:])
    assert isinstance(page, UpscalerState)
    return root, page


def test_a_running_job_shown_again_later_sends_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, page = _page()
    job = job_record(datetime.fromtimestamp(NOW - 30, UTC), task_id="task-1")
    monkeypatch.setattr(time, "time", lambda: NOW)
    page._show(job)
    assert {"status", "job_id", "shown_job", "elapsed_ms"} <= page.dirty_vars  # all of it
    assert page.elapsed_ms == 30_000
    root._clean()

    monkeypatch.setattr(time, "time", lambda: NOW + 5)
    page._show(job)
    assert page.dirty_vars == set()  # the browser moves the clock on by itself
    assert page.elapsed_ms == 30_000


def test_a_change_or_a_page_load_takes_a_new_snapshot_of_the_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, page = _page()
    created = datetime.fromtimestamp(NOW - 30, UTC)
    job = job_record(created, task_id="task-1")
    monkeypatch.setattr(time, "time", lambda: NOW)
    page._show(job)
    root._clean()

    monkeypatch.setattr(time, "time", lambda: NOW + 5)
    page._show(job, clock=True)  # a reload: its restored state holds an old snapshot
    assert page.dirty_vars == CLOCK_VARS
    assert page.elapsed_ms == 35_000
    root._clean()

    monkeypatch.setattr(time, "time", lambda: NOW + 60)
    ended = replace(
        job,
        status=JobStatus.FAILED,
        completed_at=created + timedelta(seconds=37.5),
        error_message="out of memory",
    )
    page._show(ended)
    assert {"status", "error_message", "elapsed_ms", "left_counts"} <= page.dirty_vars
    assert page.elapsed_ms == 37_500  # the end's time, final
    assert page.left_counts is False


def test_a_queued_jobs_new_place_in_the_queue_is_a_change() -> None:
    root, page = _page()
    job = job_record(datetime.now(UTC), status=JobStatus.QUEUED, started_at=None)
    page._show(job, 3)
    root._clean()
    page._show(job, 2)
    assert "queue_position" in page.dirty_vars
    assert page.queue_position == 2
    assert page.left_counts is False  # no estimate counts down in the queue


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


def test_a_tab_showing_another_job_tells_its_old_follower_to_stop() -> None:
    """A follower pushes nothing while its job does not change, so it no longer finds out
    from the page state that the tab moved on (reopened another job, or submitted one): the
    tab's job is noted where the follower looks (``runtime.tab_jobs``)."""
    _root, page = _page()
    token = page.router.session.client_token
    first = job_record(datetime.now(UTC), id="job-a")
    page._show(first)
    runtime.tab_jobs[token] = first.id  # its follower started
    try:
        page._show(first)
        assert not runtime.tab_moved_on(token, first.id)
        page._show(job_record(datetime.now(UTC), id="job-b"))
        assert runtime.tab_moved_on(token, first.id)
        assert not runtime.tab_moved_on(token, "job-b")
        page._forget_job()  # "Processar outra imagem"
        assert runtime.tab_moved_on(token, "job-b")
    finally:
        runtime.tab_jobs.pop(token, None)


BOOKKEEPING = {  # a row changes every poll interval, the page does not
    "next-check": {"next_check_at": datetime.fromtimestamp(NOW + 15, UTC)},
    "upstream-answer": {"last_upstream_code": 804, "last_upstream_msg": "APIKEY_TASK_IS_RUNNING"},
    "updated-at": {"updated_at": datetime.fromtimestamp(NOW, UTC)},
    "start-lease": {"start_lease_until": datetime.fromtimestamp(NOW + 30, UTC), "attempts": 2},
}
SHOWN = {
    "ended": {"status": JobStatus.FAILED, "completed_at": datetime.fromtimestamp(NOW, UTC)},
    "error": {"error_message": "out of memory"},
    "not-started": {"started_at": None, "status": JobStatus.QUEUED},
    "saved": {"status": JobStatus.COMPLETED, "output_url": "https://cdn.example/o.png"},
    "other-job": {"id": "another-job"},
}


@pytest.mark.parametrize(
    ("change", "shown"),
    [(c, False) for c in BOOKKEEPING.values()] + [(c, True) for c in SHOWN.values()],
    ids=[*BOOKKEEPING, *SHOWN],
)
def test_what_the_follower_compares_changes_when_the_page_does(
    monkeypatch: pytest.MonkeyPatch, change: dict[str, object], shown: bool
) -> None:
    """The follower skips the page state's lock when ``seen_by_the_page`` is unchanged: then
    ``_show`` must have nothing to send. It compared whole rows, so a check's bookkeeping took
    the lock every poll interval to send nothing."""
    monkeypatch.setattr(time, "time", lambda: NOW)
    monkeypatch.setattr(state_module, "download_href", lambda job: f"/download/{job.id}")
    root, page = _page()
    job = job_record(datetime.fromtimestamp(NOW - 30, UTC), task_id="task-1")
    changed = replace(job, **change)  # type: ignore[arg-type]
    page._show(job)
    root._clean()

    page._show(changed)

    assert (seen_by_the_page(changed) != seen_by_the_page(job)) is shown
    assert bool(page.dirty_vars) is shown


async def test_only_an_end_that_gave_credits_back_reads_the_balance(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A completion changes no balance (the credits went at the submit): its end reads no
    user, one read fewer per result in a burst. A failure's refund is read and shown."""
    store = InMemoryStore()
    await store.ensure_user("the-owner", credits=95)
    services = SimpleNamespace(
        store=store, storage=LocalStorage(tmp_path), settings=SimpleNamespace(output_hosts=())
    )
    monkeypatch.setattr(runtime, "_services", services)
    ended = datetime.now(UTC)
    done = job_record(ended, status=JobStatus.COMPLETED, completed_at=ended)
    failed = job_record(ended, status=JobStatus.FAILED, completed_at=ended)

    assert (await state_module._end_details(done, "the-owner")).credits is None
    assert (await state_module._end_details(failed, "the-owner")).credits == 95
    assert (await state_module._end_details(failed, "")).credits is None  # not signed in
