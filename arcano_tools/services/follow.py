"""Following one job from a page: push updates from the bus, plus the plan's watchdog.

This is ``useJobWatchdog`` of the plan, moved to the server and fixed:

* the clock is the job's ``started_at`` in the database (``created_at`` while still queued),
  so a reload or a second tab never restarts the initial delay or the 12-minute timeout;
* the watchdog calls the sync in-process (the same code as the sync endpoint, so it shares the
  job's upstream schedule with every other caller) and the **server** enforces the deadline —
  the browser never calls ``/finish``;
* with ``WATCHDOG_ENABLED=false`` it makes no sync call at all (the plan's "nada muda"): the
  page only follows the job's updates.

The Reflex page state runs :func:`follow_job` in a background event and copies each yielded
job into its vars; nothing here imports Reflex, so it is tested directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from arcano_tools import constants as c
from arcano_tools.domain.records import Job
from arcano_tools.domain.repository import Repository
from arcano_tools.domain.status import FinishedBy, JobStatus
from arcano_tools.services.bus import JobBus, JobUpdate
from arcano_tools.services.sync import JobSync, SyncTimings

#: How often a follower looks again when nothing happens: while its job is queued (its place
#: in the queue moves as others leave it) or the bus may miss updates.
TICK = timedelta(seconds=1)
#: A follower syncs at most this often, whatever its job's schedule or deadline says (a check
#: due within a second of this tab's last sync, a deadline passed while the result is being
#: saved: neither may make it spin).
MIN_SYNC_GAP = timedelta(seconds=1)
#: Each follower's quiet re-read period is ``FOLLOW_REREAD_QUIET_S`` times a factor drawn in
#: ``1 ± QUIET_JITTER``.
QUIET_JITTER = 0.2


@dataclass(frozen=True)
class Followed:
    """One step of a followed job: its current row and when the page last heard of it."""

    job: Job
    #: True when the step came from a watchdog sync rather than a push update or a tick.
    from_watchdog: bool = False


@dataclass
class WatchdogPlan:
    """When the next watchdog sync of a job is due (pure arithmetic, unit-tested)."""

    timings: SyncTimings
    last_sync: datetime | None = None

    def next_sync(self, job: Job) -> datetime:
        first = job.clock_start + self.timings.initial_delay
        deadline = job.deadline_from + self.timings.max_timeout
        scheduled = job.next_check_at
        if scheduled is not None and (self.last_sync is None or scheduled > self.last_sync):
            # the job's shared schedule: its next check, whoever made the last one
            due = max(first, scheduled)
        elif self.last_sync is None:
            due = first
        else:
            # no schedule yet, or this tab's last sync did not move it (no API key, a job
            # back in the queue): the plan's interval
            due = max(first, self.last_sync + self.timings.poll_interval)
        due = min(due, deadline)
        if self.last_sync is not None:
            # never more often than this, past the deadline too (a job saving its result
            # has no deadline: it stays active until the copy ends)
            due = max(due, self.last_sync + MIN_SYNC_GAP)
        return due


async def follow_job(
    *,
    store: Repository,
    bus: JobBus,
    sync: JobSync,
    table: str,
    job_id: str,
    watchdog_enabled: bool,
    alive: Callable[[], bool] = lambda: True,
    tick: timedelta = TICK,
    idle_tick: timedelta | None = None,
) -> AsyncIterator[Followed]:
    """Yield the job now, on every change, on every tick, until it is terminal or the page left.

    ``idle_tick`` (default: ``tick``) is the tick while nothing can change unseen — the job
    out of the queue, the bus complete: a tool page runs its clock itself and needs no tick
    then, only a look now and then at whether its tab is still there (``alive``).

    The job is re-read from the store only when something may have changed it: an update on
    the bus (this job's only), a watchdog sync, or — while the bus may miss updates (the Redis
    relay is down) — every tick. A quiet re-read every ``FOLLOW_REREAD_QUIET_S`` (jittered,
    so pages opened together do not re-read together) guards against an update lost on the
    way (the bus is a hint, the database the truth): with a thousand pages open that is
    about 17 reads a second, not one per page per tick.
    """
    plan = WatchdogPlan(sync.timings)
    clock = sync.clock
    idle = tick if idle_tick is None else idle_tick
    quiet_reread = timedelta(
        seconds=c.FOLLOW_REREAD_QUIET_S * random.uniform(1 - QUIET_JITTER, 1 + QUIET_JITTER)
    )
    async with bus.subscribe(job_id) as updates:
        job = await store.get_job(table, job_id)
        if job is None:
            return
        read_at = clock()
        yield Followed(job)
        while job.status.is_active:
            if not alive():
                return
            now = clock()
            wait = tick if job.status is JobStatus.QUEUED or not bus.complete else idle
            due_at: datetime | None = None
            if watchdog_enabled:
                due_at = plan.next_sync(job)
                wait = min(wait, max(due_at - now, timedelta(0)))
            heard = await _wait_for_updates(updates, job_id, wait.total_seconds())
            changed = bool(heard)
            from_watchdog = False
            if due_at is not None and clock() >= due_at and not changed:
                plan.last_sync = clock()
                await sync.sync_job(job, finished_by=FinishedBy.WATCHDOG)
                from_watchdog = True
            carried = _newest_carried(heard, job)
            if (
                (changed and carried is None)
                or from_watchdog
                or not bus.complete
                or clock() - read_at >= quiet_reread
            ):
                fresh = await store.get_job(table, job_id)
                if fresh is None:
                    return
                job, read_at = fresh, clock()
            elif carried is not None:
                job = carried
            yield Followed(job, from_watchdog)


def _newest_carried(heard: list[JobUpdate], shown: Job) -> Job | None:
    """The newest row the updates carry, if every one of them carries its row (a relayed
    update does not: the database must be asked) and it is not older than ``shown``. The
    newest by ``updated_at``, not the last delivered: two writes' updates may arrive in
    either order."""
    rows = [update.job for update in heard if update.job is not None]
    if not rows or len(rows) < len(heard):
        return None
    newest = max(rows, key=lambda row: row.updated_at)
    return newest if newest.updated_at >= shown.updated_at else None


async def _wait_for_updates(
    updates: asyncio.Queue[JobUpdate], job_id: str, timeout: float
) -> list[JobUpdate]:
    """The updates of ``job_id`` as soon as one arrives (with any others already queued
    behind it); empty after ``timeout`` seconds.

    A thousand following pages wait here: ``asyncio.timeout`` is one timer on the waiting
    task, where ``asyncio.wait_for`` also wrapped every wait in a new task."""
    heard: list[JobUpdate] = []
    if timeout <= 0:
        return heard
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while not heard:
                update = await updates.get()
                if update.job_id == job_id:
                    heard.append(update)
    while heard and not updates.empty():
        update = updates.get_nowait()
        if update.job_id == job_id:
            heard.append(update)
    return heard
