"""What a page shows of a job's progress, as plain arithmetic (no Reflex, unit-tested).

RunningHub reports no progress for an AI app, so the bar is an estimate from the tool's usual
duration: it moves steadily while the job runs, never reaches 100 % before the result exists,
and says "usual duration" only once the tool has a little history.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from arcano_tools import constants as c
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


def progress_percent(status: str, elapsed_s: int, typical_s: int) -> int:
    """0–100 for the progress bar: full only when completed, empty once the job ended badly."""
    if status == JobStatus.COMPLETED.value:
        return 100
    if status not in STEP_OF_STATUS:
        return 0
    if STEP_OF_STATUS[status] == 1:
        return c.PROGRESS_QUEUED_PCT
    expected = typical_s or c.PROGRESS_DEFAULT_EXPECTED_S
    span = c.PROGRESS_MAX_ACTIVE_PCT - c.PROGRESS_STARTED_PCT
    done = c.PROGRESS_STARTED_PCT + int(span * elapsed_s / max(expected, 1))
    return min(c.PROGRESS_MAX_ACTIVE_PCT, done)


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
