"""What the pages show of a job's progress and what the operator page reports, as the
plain functions the Reflex states call."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from arcano_tools import constants as c
from arcano_tools.domain.records import Job
from arcano_tools.domain.status import FinishedBy, JobStatus
from arcano_tools.services.progress import (
    TYPICAL_DURATION_CACHE_S,
    UNKNOWN,
    TypicalDurations,
    elapsed_ms_since_submission,
    left_estimate_s,
    timeline_step,
    typical_duration_s,
)
from arcano_tools.services.report import RESCUES_SHOWN, finish_times, rescues
from tests.support.records import job_record

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def finished(i: int, by: FinishedBy, took_s: float) -> Job:
    return job_record(
        T0,
        status=JobStatus.COMPLETED,
        id=f"job-{i}",
        completed_at=T0 + timedelta(seconds=took_s),
        finished_by=by,
    )


def test_the_timeline_stops_at_the_step_the_job_is_in() -> None:
    assert [timeline_step(s.value) for s in JobStatus] == [1, 1, 2, 3, 4, 4, 4]


def test_without_history_there_is_no_estimate() -> None:
    """(The bar and its arithmetic are the browser's: tests/e2e/test_job_clock.py.)"""
    assert left_estimate_s("running", 3, 0) == UNKNOWN
    assert left_estimate_s("completed", 3, 10) == UNKNOWN


def test_the_estimate_includes_the_queue_ahead() -> None:
    assert left_estimate_s("queued", 0, 10, queue_ahead=1) == 10
    assert left_estimate_s("queued", 0, 10, queue_ahead=3) == 30
    assert left_estimate_s("running", 4, 10) == 6
    assert left_estimate_s("running", 40, 10) == 0  # over the usual time: "menos de 5 s"


def test_elapsed_counts_from_the_click_not_from_the_start() -> None:
    queued_20s = job_record(T0, started_at=T0 + timedelta(seconds=20))
    now = (T0 + timedelta(seconds=25.25)).timestamp()
    assert elapsed_ms_since_submission(queued_20s, now) == 25_250
    ended = dataclasses.replace(queued_20s, completed_at=T0 + timedelta(seconds=30))
    assert elapsed_ms_since_submission(ended, now + 100) == 30_000


def test_the_usual_duration_needs_a_little_history() -> None:
    assert typical_duration_s([]) == 0
    assert typical_duration_s([10.0] * c.TYPICAL_DURATION_MIN_HISTORY) == 10
    assert typical_duration_s([10.0, 10.0, 40.0]) == 10
    assert typical_duration_s([0.2] * 5) == 1  # never "about 0 s"


def test_rescues_are_the_jobs_a_watchdog_or_the_deadline_ended_newest_first() -> None:
    jobs = [
        finished(0, FinishedBy.WEBHOOK, 3),
        finished(1, FinishedBy.SERVER_WATCHDOG, 40),
        finished(2, FinishedBy.TIMEOUT, 720),
        finished(3, FinishedBy.USER, 5),
        finished(4, FinishedBy.WATCHDOG, 35),
    ]
    assert [j.id for j in rescues(jobs)] == ["job-1", "job-2", "job-4"]
    many = [dataclasses.replace(jobs[1], id=f"r{i}") for i in range(RESCUES_SHOWN + 5)]
    assert len(rescues(many)) == RESCUES_SHOWN


def test_finish_times_are_medians_per_path() -> None:
    jobs = [
        finished(0, FinishedBy.WEBHOOK, 3),
        finished(1, FinishedBy.WEBHOOK, 5),
        finished(2, FinishedBy.WEBHOOK, 100),
        finished(3, FinishedBy.SERVER_WATCHDOG, 40),
    ]
    rows = [(t.path, t.median_s, t.jobs) for t in finish_times(jobs)]
    assert rows == [(FinishedBy.SERVER_WATCHDOG, 40.0, 1), (FinishedBy.WEBHOOK, 5.0, 3)]


async def test_a_tools_typical_duration_is_read_once_a_minute_per_process() -> None:
    reads: list[str] = []
    clock = [0.0]

    async def read(table: str) -> list[float]:
        reads.append(table)
        return [40.0] * 10

    typical = TypicalDurations(read, now=lambda: clock[0])
    assert [await typical.of("upscaler_jobs") for _ in range(3)] == [40, 40, 40]
    assert reads == ["upscaler_jobs"]  # a thousand page loads, one read
    clock[0] = TYPICAL_DURATION_CACHE_S
    await typical.of("upscaler_jobs")
    assert reads == ["upscaler_jobs"] * 2
