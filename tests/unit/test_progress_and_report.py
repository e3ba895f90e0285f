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
    TypicalDurations,
    progress_percent,
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


def test_progress_is_full_only_when_completed_and_empty_after_a_failure() -> None:
    assert progress_percent("completed", 10, 30) == 100
    assert progress_percent("failed", 10, 30) == 0
    assert progress_percent("cancelled", 10, 30) == 0
    assert progress_percent("queued", 500, 30) == c.PROGRESS_QUEUED_PCT


def test_progress_grows_with_time_and_never_claims_to_be_done() -> None:
    values = [progress_percent("running", s, 40) for s in (0, 10, 20, 40, 400)]
    assert values == sorted(values)
    assert values[0] == c.PROGRESS_STARTED_PCT
    assert values[-1] == c.PROGRESS_MAX_ACTIVE_PCT
    # with no history the page assumes the default duration
    assert progress_percent("running", c.PROGRESS_DEFAULT_EXPECTED_S, 0) == (
        c.PROGRESS_MAX_ACTIVE_PCT
    )


def test_the_usual_duration_needs_a_little_history() -> None:
    few = [10.0] * (c.TYPICAL_DURATION_MIN_HISTORY - 1)
    assert typical_duration_s(few) == 0
    assert typical_duration_s([*few, 40.0]) == 10
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
