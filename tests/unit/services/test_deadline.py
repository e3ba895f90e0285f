"""The deadline is a promise about the person's wait: ``WATCHDOG_MAX_TIMEOUT_MS`` after the
submission, kept at the speed of the clock, not of RunningHub, and never spent on a job that
can no longer start (see ``docs/watchdog.md``, "The deadline")."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from arcano_tools.domain.records import Job
from arcano_tools.domain.status import FinishedBy, JobStatus
from arcano_tools.services.auth import Principal
from arcano_tools.services.queue_manager import MSG_NO_ACCOUNT
from arcano_tools.services.server_watchdog import ServerWatchdog
from arcano_tools.services.sync import JobSync
from tests.support.core import ACCOUNT, TIMINGS, Core

USER = Principal(user_id="u1")


def calls(core: Core, endpoint: str) -> int:
    return core.emulator.stats.calls.get(endpoint, 0)


async def fill_both_slots(core: Core) -> list[Job]:
    """Two running jobs of another user hold the account's two slots."""
    core.control(outcome="never")
    return [await core.running(user="other") for _ in range(2)]


async def free_slots(core: Core, holders: list[Job]) -> None:
    for holder in holders:
        await core.fail(holder)


async def test_a_job_queued_past_its_deadline_is_failed_and_never_started(core: Core) -> None:
    holders = await fill_both_slots(core)
    job = await core.submit()
    core.clock.advance(seconds=TIMINGS.max_timeout.total_seconds())
    await free_slots(core, holders)
    runs = calls(core, "run") + calls(core, "create")
    assert runs > 0  # the two holders were started: the counters count

    await core.dispatch()

    ended = await core.job(job)
    assert (ended.status, ended.finished_by) == (JobStatus.FAILED, FinishedBy.TIMEOUT)
    assert ended.error_message == TIMINGS.timeout_message
    assert ended.task_id is None
    assert ended.started_at is None
    assert calls(core, "run") + calls(core, "create") == runs  # RunningHub never saw it
    assert await core.balance() == 100  # refunded


async def test_the_deadline_counts_from_the_submission_not_from_the_start(core: Core) -> None:
    holders = await fill_both_slots(core)
    job = await core.submit()
    core.clock.advance(minutes=10)  # ten minutes in the queue
    await free_slots(core, holders)
    await core.dispatch()
    assert (await core.job(job)).status is JobStatus.RUNNING

    core.clock.advance(minutes=2)  # twelve minutes after the submission, two after the start
    outcome = await core.sync.sync(job.table, job.id, USER)

    assert outcome.synced
    assert outcome.error_message == TIMINGS.timeout_message
    assert (await core.job(job)).finished_by is FinishedBy.TIMEOUT


async def test_past_the_deadline_a_job_checked_within_the_interval_ends_without_a_call(
    core: Core,
) -> None:
    core.control(outcome="never")
    job = await core.running()
    core.clock.advance(seconds=TIMINGS.max_timeout.total_seconds() - 5)
    before = await core.sync.sync(job.table, job.id, USER)
    assert not before.synced
    assert not before.cached
    asked = calls(core, "outputs")

    core.clock.advance(seconds=6)  # past the deadline, one poll interval not yet over
    outcome = await core.sync.sync(job.table, job.id, USER)

    assert outcome.synced
    assert outcome.error_message == TIMINGS.timeout_message
    assert calls(core, "outputs") == asked


async def test_the_last_look_at_the_deadline_waits_at_most_one_poll_interval(
    core: Core,
) -> None:
    core.control(outcome="never")
    job = await core.running()
    core.control(latency_ms=5_000)  # RunningHub answers far slower than one interval
    sync = core.sync_with(poll_interval=timedelta(milliseconds=50))
    core.clock.advance(seconds=TIMINGS.max_timeout.total_seconds())

    outcome = await sync.sync(job.table, job.id, USER)

    assert outcome.synced
    assert outcome.error_message == TIMINGS.timeout_message
    errors = await core.store.upstream_error_counts()
    assert ("outputs", "deadline_budget", 1) in errors
    core.control(latency_ms=0)


async def test_with_every_account_refused_the_queued_jobs_end_at_once(core: Core) -> None:
    await core.store.upsert_account(ACCOUNT, "not-a-valid-key", 2)
    jobs = [await core.submit() for _ in range(4)]

    await core.dispatch()  # two starts refused (802): the account is disabled
    await core.dispatch()  # what the woken dispatcher does next

    ended = [await core.job(job) for job in jobs]
    assert [j.status for j in ended] == [JobStatus.FAILED] * 4
    assert sum(j.error_message == MSG_NO_ACCOUNT for j in ended) == 2
    assert all(j.task_id is None for j in ended)
    assert await core.balance() == 100  # every charge refunded


#: RunningHub's answer time in the watchdog tests: a check that hangs far longer than the
#: jobs under test may take to end (half of it).
SLOW_MS = 8_000


def quick_sync(core: Core) -> JobSync:
    """The core's sync with a 0.2 s poll interval: the watchdog's loop ticks every 0.1 s
    (real time) and a last look waits 0.2 s at most, while the deadline stays 12 minutes."""
    return core.sync_with(poll_interval=timedelta(milliseconds=200))


async def old_and_young(core: Core, sync: JobSync, before_deadline: timedelta) -> tuple[Job, Job]:
    """Two running jobs five minutes apart, the clock ``before_deadline`` short of the old
    one's deadline; the old one just checked (not due again for a poll interval)."""
    core.control(outcome="never")
    old = await core.running()
    core.clock.advance(minutes=5)
    young = await core.running(user="other")
    core.clock.advance(
        seconds=(TIMINGS.max_timeout - timedelta(minutes=5) - before_deadline).total_seconds()
    )
    assert not (await sync.sync(old.table, old.id, USER)).synced
    return old, young


async def wait_until_ended(core: Core, job: Job, within_s: float) -> Job:
    loop = asyncio.get_running_loop()
    until = loop.time() + within_s
    now = await core.job(job)
    while now.status.is_active and loop.time() < until:
        await asyncio.sleep(0.02)  # the store has no event to wait on
        now = await core.job(job)
    return now


async def first_call_in_flight(core: Core, before: int) -> None:
    for _ in range(500):
        if calls(core, "outputs") > before:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the watchdog never asked RunningHub")


@contextlib.asynccontextmanager
async def watchdog_running(core: Core, sync: JobSync, max_concurrency: int) -> AsyncIterator[None]:
    """The real watchdog loop on ``sync`` while RunningHub answers in ``SLOW_MS``, from its
    first call on RunningHub (a check that hangs); stopped and cleaned up after."""
    watchdog = ServerWatchdog(
        store=core.store,
        sync=sync,
        queue=core.queue,
        max_concurrency=max_concurrency,
        starting_stuck_after=timedelta(minutes=5),
        owner=f"slots-{max_concurrency}",
    )
    asked = calls(core, "outputs")
    core.control(latency_ms=SLOW_MS)
    stop = asyncio.Event()
    loop = asyncio.create_task(watchdog.run(stop))
    try:
        await first_call_in_flight(core, asked)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(loop, timeout=10)
        await core.drop_background()
        core.control(latency_ms=0)


async def test_a_slow_check_never_holds_back_the_watchdog_from_an_overdue_job(
    core: Core,
) -> None:
    """A SIGKILLed API process came back to 200 due jobs behind a slow RunningHub: its
    watchdog waited for each batch of checks before leasing again, and jobs whose deadline
    passed meanwhile ended seconds late. The loop leases on while checks are in flight."""
    sync = quick_sync(core)
    old, young = await old_and_young(core, sync, before_deadline=timedelta(seconds=10))
    async with watchdog_running(core, sync, max_concurrency=4):  # the young job's check hangs
        core.clock.advance(seconds=20)  # the old job is past its deadline, the young one not

        ended = await wait_until_ended(core, old, within_s=SLOW_MS / 2000)

        assert (ended.status, ended.finished_by) == (JobStatus.FAILED, FinishedBy.TIMEOUT)
        assert (await core.job(young)).status is JobStatus.RUNNING  # its check still waits


async def test_a_job_waiting_for_a_check_slot_goes_on_without_one_at_its_deadline(
    core: Core,
) -> None:
    """Leased before its deadline, the old job waits for the only check slot (held by a
    check that hangs); when its deadline passes it waits no longer: a last look, a timeout."""
    sync = quick_sync(core)
    old, young = await old_and_young(core, sync, before_deadline=timedelta(seconds=2))
    async with watchdog_running(core, sync, max_concurrency=1):  # the young job holds the slot
        core.clock.advance(seconds=0.5)  # the old job is due again, 1.5 s before its deadline
        await asyncio.sleep(0.5)  # leased by the next tick, waiting for the slot
        core.clock.advance(seconds=5)  # its deadline passes while it waits

        ended = await wait_until_ended(core, old, within_s=SLOW_MS / 2000)

        assert (ended.status, ended.finished_by) == (JobStatus.FAILED, FinishedBy.TIMEOUT)
        assert (await core.job(young)).status is JobStatus.RUNNING


async def test_a_check_begun_before_the_deadline_is_answered_by_it_plus_one_interval(
    core: Core,
) -> None:
    """A check that starts 0.3 s before the deadline behind a RunningHub that answers in
    8 s (queued behind other calls) gives up one poll interval (0.2 s) past the deadline:
    the job times out then instead of seconds later, whatever the answer would have been."""
    sync = quick_sync(core)
    core.control(outcome="never")
    job = await core.running()
    core.clock.advance(seconds=TIMINGS.max_timeout.total_seconds() - 0.3)
    core.control(latency_ms=SLOW_MS)
    began = asyncio.get_running_loop().time()

    try:
        outcome = await asyncio.wait_for(sync.sync(job.table, job.id, USER), timeout=SLOW_MS / 2000)
        waited = asyncio.get_running_loop().time() - began
    finally:
        await core.drop_background()
        core.control(latency_ms=0)

    assert outcome.synced
    assert outcome.error_message == TIMINGS.timeout_message
    assert waited >= 0.3  # it did wait for the answer until the budget ran out
    errors = await core.store.upstream_error_counts()
    assert ("outputs", "deadline_budget", 1) in errors
