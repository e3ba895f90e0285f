"""What a page shows of a job's progress, as plain arithmetic (no Reflex, unit-tested).

RunningHub reports no progress for an AI app, so the bar is an estimate: the time since the
person clicked "Processar" (a queued wait included, so a job leaving the queue never restarts the
clock) over that plus an estimate of the time left from the tool's history (the queue ahead
included). It never reaches 100 % before the result exists, and with no history at all there
is no percentage to show (``-1``: the page draws a bar that only says it is working).

The server computes a snapshot — the elapsed time and the estimate — when the job changes; the
browser moves it along every second and draws the bar (``assets/job_clock_math.js``), so a
followed page is sent nothing while its job does not change.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from arcano_tools import constants as c
from arcano_tools.domain.records import Job
from arcano_tools.domain.status import JobStatus
from arcano_tools.services.schedule import quantile

#: The timeline's steps: 1 in the queue, 2 starting, 3 processing, 4 ended (any way).
STEP_OF_STATUS: dict[str, int] = {
    JobStatus.PENDING.value: 1,
    JobStatus.QUEUED.value: 1,
    JobStatus.STARTING.value: 2,
    JobStatus.RUNNING.value: 3,
}
STEP_ENDED = 4


def timeline_step(status: str) -> int:
    return STEP_OF_STATUS.get(status, STEP_ENDED)


#: No estimate: the tool has no history yet.
UNKNOWN = -1


def elapsed_ms_since_submission(job: Job, now: float) -> int:
    """Milliseconds from the click to the end (or ``now``), the queue included."""
    end = job.completed_at.timestamp() if job.completed_at else now
    return max(0, int((end - job.created_at.timestamp()) * 1000))


def left_estimate_s(status: str, run_s: int, typical_s: int, *, queue_ahead: int = 0) -> int:
    """Seconds probably left: the tool's usual run minus what it has run, plus — while queued —
    one usual run per job ahead in the queue (``queue_ahead`` is the job's 1-based position).
    0 once the usual run is over; :data:`UNKNOWN` without history or after the end."""
    if typical_s <= 0 or status not in STEP_OF_STATUS:
        return UNKNOWN
    if STEP_OF_STATUS[status] == 1:
        return typical_s * (1 + max(0, queue_ahead - 1))
    return max(0, typical_s - run_s)


def typical_duration_s(durations_s: Sequence[float]) -> int:
    """The tool's median duration in whole seconds, or 0 while its history is too thin."""
    if len(durations_s) < c.TYPICAL_DURATION_MIN_HISTORY:
        return 0
    return max(1, round(quantile(durations_s, 0.5)))


#: A tool's typical duration is re-read at most this often per process: every page load
#: asks for it, and a thousand pages opening together must not send a thousand reads.
TYPICAL_DURATION_CACHE_S = 60.0


class TypicalDurations:
    """Each tool's typical duration, read through ``read(table)`` (its recent durations) at
    most once per ``TYPICAL_DURATION_CACHE_S`` of ``now()`` (monotonic seconds)."""

    def __init__(
        self,
        read: Callable[[str], Awaitable[Sequence[float]]],
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._now = now
        self._cache: dict[str, tuple[float, int]] = {}

    async def of(self, table: str) -> int:
        cached = self._cache.get(table)
        if cached is not None and self._now() - cached[0] < TYPICAL_DURATION_CACHE_S:
            return cached[1]
        value = typical_duration_s(await self._read(table))
        self._cache[table] = (self._now(), value)
        return value
