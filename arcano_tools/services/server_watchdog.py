"""The server-side watchdog: no job stays "processing" because its browser was closed.

Every tick it leases the active jobs that are older than the initial delay and whose next
check is due (``next_check_at``: nobody checked them within the check interval), and runs the
same sync as the page watchdog on each — which also enforces the deadline (timeout, upstream
cancel, refund).

Safe with several backend processes on one PostgreSQL database: jobs are leased with
``FOR UPDATE SKIP LOCKED`` plus a ``lease_until`` column, so one process checks a job at a
time and a crashed process's lease simply expires. The shared schedule (``next_check_at``)
means the page watchdogs, the sync endpoint and this loop together make at most one
RunningHub call per job per interval.

Jobs stuck in ``starting`` with no task id (a crash between RunningHub's create call and
saving its id) are put back in the queue once no live process can still be starting them —
their start lease expired (``START_LEASE_S``, renewed by the starting process) — looked for
every ``START_RECOVERY_EVERY_S``, and even with the watchdog's checks switched off (that
recovery asks RunningHub nothing); see ``docs/watchdog.md`` for why retrying beats failing.

At start-up and every minute it also recounts each account's ``in_flight`` from the jobs that
hold its slots: a counter that drifted (a manual edit, a restored backup) would otherwise keep
an account "full" forever, and every new job would wait in the queue until its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

from arcano_tools import constants as c
from arcano_tools.domain.records import Account, Job
from arcano_tools.domain.repository import Repository
from arcano_tools.domain.status import FinishedBy
from arcano_tools.services.queue_manager import QueueManager
from arcano_tools.services.sync import CheckLease, JobSync

log = logging.getLogger(__name__)

#: Jobs leased per table per tick: bounded so one process never hoards a backlog another
#: process could share.
LEASE_BATCH = 50
#: After a full batch the next lease comes this soon (more are due), not a tick later; a
#: pause all the same, so the loop never spins. Short: a sweep of 10,000 due jobs waits it
#: once per batch (0.05 s was a third of the sweep's time).
FULL_BATCH_PAUSE_S = 0.01
#: Checks one process holds at once that have not had RunningHub's answer yet, in batches of
#: ``LEASE_BATCH``, as a multiple of its upstream concurrency: enough that a slot never waits
#: for a lease, few enough that leases do not pile up behind the limit (another process could
#: be checking those jobs). A check writing its answer no longer counts: counted until its
#: write's group commit, 128 checks in hand were the sweep's limit (BENCHMARKS.md, item 24).
#: Past the cap only overdue jobs are leased.
IN_FLIGHT_PER_SLOT = 4
#: A loose ceiling on all the checks in hand, those writing their answers included, as a
#: multiple of the cap: a stalled database must not let answered checks (each holding its
#: lease) pile up at RunningHub's answer rate.
HELD_PER_CAP = 4


#: Leases per check interval (see ``tick_s``).
TICKS_PER_INTERVAL = 8


def process_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class ServerWatchdog:
    def __init__(
        self,
        *,
        store: Repository,
        sync: JobSync,
        queue: QueueManager,
        max_concurrency: int,
        starting_stuck_after: timedelta,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.sync = sync
        self.queue = queue
        self.owner = owner or process_identity()
        self.starting_stuck_after = starting_stuck_after
        self._limit = asyncio.Semaphore(max_concurrency)
        self._cap = max(LEASE_BATCH, IN_FLIGHT_PER_SLOT * max_concurrency)
        #: The checks running now (``run`` does not wait for a batch before leasing more).
        self._in_flight: set[asyncio.Task[None]] = set()
        #: Those of them still waiting for RunningHub's answer (what the cap counts).
        self._asking: set[asyncio.Task[None]] = set()
        #: Set when checks are answered and leave room for more (``run`` waits on it when full).
        self._room = asyncio.Event()
        self._next_prune = 0.0
        self._next_reconcile = 0.0
        self._next_recovery = 0.0

    @property
    def interval(self) -> timedelta:
        return self.sync.check_interval

    @property
    def tick_s(self) -> float:
        """Seconds between leases: a fraction of the interval, so a job left to this loop
        alone (its tab closed) is checked at most that much after its check fell due."""
        return max(0.05, self.interval.total_seconds() / TICKS_PER_INTERVAL)

    async def run(self, stop: asyncio.Event, *, checks: bool = True) -> None:
        """Until ``stop`` is set (a lifespan task): recover stalled starts every
        ``START_RECOVERY_EVERY_S`` and, with ``checks`` (the watchdog flags), tick every
        ``tick_s``."""
        tick = self.tick_s
        every = min(tick, c.START_RECOVERY_EVERY_S) if checks else c.START_RECOVERY_EVERY_S
        next_tick = 0.0
        try:
            while not stop.is_set():
                capped = False
                try:
                    await self._recover_when_due()
                    if checks and time.monotonic() >= next_tick:
                        # more may be due (a full batch, or no room to lease them): go on at
                        # once, not a tick later. The checks run on while the loop leases
                        # again: a batch slow upstream never holds back a job whose deadline
                        # passes meanwhile.
                        _, more = await self._lease_and_start()
                        capped = more and self._full()
                        next_tick = time.monotonic() + (FULL_BATCH_PAUSE_S if more else tick)
                except Exception:
                    log.exception(
                        "server watchdog tick failed", extra={"action": "server_watchdog"}
                    )
                    next_tick = time.monotonic() + tick  # a failing lease never spins the loop
                wait = min(every, max(0.0, next_tick - time.monotonic())) if checks else every
                if capped:
                    # no room for more checks: lease again as soon as some end (their
                    # leases must not wait a tick), or at the tick for the overdue ones
                    wait, next_tick = every, 0.0
                # the next look for dead starts (at once after a full batch of them)
                wait = min(wait, max(FULL_BATCH_PAUSE_S, self._next_recovery - time.monotonic()))
                if capped:
                    self._room.clear()
                    await self._wait_for_room(stop, wait)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=wait)
        finally:
            # stopped (or cancelled): the checks in flight end with the loop, as a batch did
            for task in list(self._in_flight):
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _full(self) -> bool:
        """As many checks waiting for RunningHub as the cap allows, or as many in hand as
        the ceiling allows (only overdue jobs are leased then)."""
        return len(self._asking) >= self._cap or len(self._in_flight) >= HELD_PER_CAP * self._cap

    def _note_room(self) -> None:
        half = LEASE_BATCH // 2  # room for half a batch: worth a lease
        if (
            len(self._asking) <= self._cap - half
            and len(self._in_flight) <= HELD_PER_CAP * self._cap - half
        ):
            self._room.set()

    def _answered(self, task: asyncio.Task[None]) -> None:
        """RunningHub answered ``task``'s check (or it ended without a call): room for another."""
        if task in self._asking:
            self._asking.discard(task)
            self._note_room()

    def _check_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._asking.discard(task)  # also a check cancelled before its first step
        self._note_room()

    async def _wait_for_room(self, stop: asyncio.Event, timeout: float) -> None:
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._room.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def _recover_when_due(self) -> None:
        """Stalled starts are looked for every ``START_RECOVERY_EVERY_S``, however often the
        loop leases: a sweep leases every few tens of milliseconds, and a look (a write
        transaction) before each lease was 40 % of a 10,000-job sweep (BENCHMARKS.md, item 24)."""
        if time.monotonic() >= self._next_recovery:
            self._next_recovery = time.monotonic() + c.START_RECOVERY_EVERY_S
            if await self.recover_stalled_starts() >= LEASE_BATCH:
                self._next_recovery = 0.0  # a full batch: more may be waiting

    async def recover_stalled_starts(self) -> int:
        """Put back in the queue the starts whose process is gone (start lease expired, or
        none and older than ``starting_stuck_after``); returns how many were leased."""
        now = self.sync.clock()
        jobs = await self.store.lease_stalled_starts(
            owner=self.owner,
            now=now,
            # a recovery is two writes: a process killed during one delays it by this much
            # at most (two processes recovering the same start are fenced by its claim)
            lease_for=timedelta(seconds=c.START_LEASE_S),
            legacy_before=now - self.starting_stuck_after,
            limit=LEASE_BATCH,
        )
        for job in jobs:
            try:
                await self.queue.recover_stuck_start(job)
            except Exception:
                log.exception(
                    "start recovery failed",
                    extra={"action": "recover_stuck_start", "job_id": job.id, "table": job.table},
                )
            finally:
                await self.store.release_lease(job.table, job.id, self.owner)
        return len(jobs)

    async def tick(self) -> int:
        """One pass, waited for: recover stalled starts, lease due jobs and sync them, at most
        ``max_concurrency`` at a time (overdue ones outside that limit); returns how many jobs
        were synced. ``run`` does the same without waiting for the checks."""
        await self.recover_stalled_starts()
        started, _ = await self._lease_and_start()
        await asyncio.gather(*started)
        return len(started)

    async def _lease_and_start(self) -> tuple[list[asyncio.Task[None]], bool]:
        """Lease due jobs and start their checks (tracked in ``_in_flight``): up to the
        in-flight cap, and past it the overdue jobs alone. Returns the checks started, and
        whether more may be due (a full batch, or only overdue jobs were looked for)."""
        now = self.sync.clock()
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + c.PRUNE_EVERY_S
            await self.store.prune_events(now - timedelta(seconds=c.EVENT_RETENTION_S))
        if time.monotonic() >= self._next_reconcile:
            self._next_reconcile = time.monotonic() + c.RECONCILE_SLOTS_EVERY_S
            await self._reconcile_slots()
        overdue_only = self._full()
        # a batch at least, and as much as there is room for (fewer, larger leases in a sweep)
        batch = max(LEASE_BATCH, self._cap - len(self._asking))
        reserve_until = now + self.interval
        jobs = await self.store.lease_due_jobs(
            owner=self.owner,
            now=now,
            lease_for=max(self.interval * 4, timedelta(seconds=30)),
            started_before=now - self.sync.timings.initial_delay,
            deadline_before=now - self.sync.timings.max_timeout,
            limit=batch,
            overdue_only=overdue_only,
            reserve_until=reserve_until,
        )
        accounts = await self._accounts_of(jobs)
        started = [
            asyncio.create_task(
                self._check(job, reserve_until, accounts.get(job.api_account or ""))
            )
            for job in jobs
        ]
        self._in_flight.update(started)
        self._asking.update(started)
        for task in started:
            task.add_done_callback(self._check_done)
        return started, overdue_only or len(jobs) >= batch

    async def _accounts_of(self, jobs: list[Job]) -> dict[str, Account]:
        """The accounts of a batch's jobs, each read once for the batch (their keys ask)."""
        found: dict[str, Account] = {}
        for name in {job.api_account for job in jobs if job.api_account}:
            account = await self.store.get_account(name)
            if account is not None:
                found[name] = account
        return found

    async def _check(self, job: Job, reserved_until: datetime, account: Account | None) -> None:
        # the lease reserved the check if it was due (then its next check is the reservation's)
        reserved = job.next_check_at == reserved_until
        lease = CheckLease(self.owner, reserved=reserved, account=account)
        task = asyncio.current_task()
        assert task is not None

        try:
            async with self._slot(job) as free_slot:

                def answered() -> None:  # the slot, and room for another check
                    free_slot()
                    self._answered(task)

                lease.answered = answered
                await self.sync.sync_job(job, finished_by=FinishedBy.SERVER_WATCHDOG, lease=lease)
        except Exception:
            log.exception(
                "server watchdog check failed",
                extra={"action": "server_watchdog", "job_id": job.id, "table": job.table},
            )
        finally:
            self._answered(task)  # no call made (checked recently, past its deadline, an error)
            if not lease.released:  # any end but "still running" (whose write ended it)
                await self.store.release_lease(job.table, job.id, self.owner)

    @contextlib.asynccontextmanager
    async def _slot(self, job: Job) -> AsyncIterator[Callable[[], None]]:
        """One of ``max_concurrency`` slots, waited for until the job's deadline at most;
        yields the slot's early release (once RunningHub answered: the slot is for the call,
        not for the write of its answer — held through the group commit's wait, 64 slots
        were the sweep's limit).

        Past its deadline a check waits for no other: the sync bounds its one last look at
        RunningHub by a poll interval, and most end without a call (checked recently). A job
        whose deadline passes while it waits for a slot goes on without one then.
        """
        wait = (self.sync.deadline(job) - self.sync.clock()).total_seconds()
        held = False
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._limit.acquire(), timeout=wait)
                held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self._limit.release()

        try:
            yield release
        finally:
            release()

    async def _reconcile_slots(self) -> None:
        """Recount the accounts' slots (at start-up, then every minute); log any drift."""
        fixed = await self.store.reconcile_slots()
        for account, before, after in fixed:
            log.warning(
                "account slot count corrected",
                extra={
                    "action": "reconcile_slots",
                    "account": account,
                    "in_flight_before": before,
                    "in_flight_after": after,
                },
            )
            self.queue.metrics.slot_corrections.labels(account).inc()
        if fixed:
            self.queue.slot_freed()
