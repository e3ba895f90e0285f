"""What the operator page reports, computed from plain job records (no Reflex, no SQL).

Kept out of the page state so the numbers have unit tests and a second reader (a script, a
future JSON endpoint) gets the same answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import median

from arcano_tools.domain.records import Job
from arcano_tools.domain.status import FinishedBy, JobStatus, OutputCopy

#: The paths that finished a job the webhook did not: each one is a job the watchdogs saved.
RESCUE_PATHS: frozenset[FinishedBy] = frozenset(
    {FinishedBy.WATCHDOG, FinishedBy.SERVER_WATCHDOG, FinishedBy.TIMEOUT}
)
#: Rescues listed on the operator page (the newest).
RESCUES_SHOWN = 20


@dataclass(frozen=True)
class FinishTime:
    """How long jobs finished by one path took, from their start to their end."""

    path: FinishedBy
    median_s: float
    jobs: int


def rescues(finished: Iterable[Job], limit: int = RESCUES_SHOWN) -> list[Job]:
    """The newest jobs (``finished`` is newest first) that a watchdog or the deadline ended."""
    return [j for j in finished if j.finished_by in RESCUE_PATHS][:limit]


def finish_times(finished: Iterable[Job]) -> list[FinishTime]:
    """Median time to finish per path, paths in alphabetical order."""
    by_path: dict[FinishedBy, list[float]] = defaultdict(list)
    for job in finished:
        if job.completed_at and job.finished_by:
            by_path[job.finished_by].append((job.completed_at - job.clock_start).total_seconds())
    return [
        FinishTime(path, round(median(seconds), 1), len(seconds))
        for path, seconds in sorted(by_path.items())
    ]


def failed_copies(finished: Iterable[Job], limit: int = RESCUES_SHOWN) -> list[Job]:
    """The newest completed jobs whose result could not be copied into our storage: they
    point at RunningHub's link, which expires in about a day (the operator may re-run them)."""
    return [
        j
        for j in finished
        if j.status is JobStatus.COMPLETED and j.output_copy is OutputCopy.FAILED
    ][:limit]
