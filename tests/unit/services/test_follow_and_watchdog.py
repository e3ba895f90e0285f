"""Following a job from a page (push updates, the plan's watchdog, re-reads only on a
change) and the server watchdog's decisions (lost webhooks, stuck starts, drifted slots)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from arcano_tools import constants as c
from arcano_tools.domain.records import Job
from arcano_tools.domain.repository import Repository
from arcano_tools.domain.status import FinishedBy, JobStatus
from arcano_tools.services.bus import JobUpdate
from arcano_tools.services.follow import QUIET_JITTER, Followed, follow_job
from arcano_tools.store.memory import InMemoryStore
from tests.support.core import ACCOUNT, TIMINGS, Core
from tests.support.stores import force_in_flight

TICK = timedelta(milliseconds=5)
FOLLOW_WAIT_S = 5.0


class CountingStore(InMemoryStore):
    """The in-memory store, counting how often a job is read (a follower's cost)."""

    reads = 0

    async def get_job(self, table: str, job_id: str) -> Job | None:
        self.reads += 1
        return await super().get_job(table, job_id)


def follower(
    core: Core,
    job: Job,
    *,
    watchdog: bool = False,
    store: Repository | None = None,
    idle_tick: timedelta | None = None,
) -> AsyncIterator[Followed]:
    """``follow_job`` of ``job`` on the core's bus and sync, ticking every ``TICK``."""
    return follow_job(
        store=store or core.store,
        bus=core.bus,
        sync=core.sync,
        table=job.table,
        job_id=job.id,
        watchdog_enabled=watchdog,
        tick=TICK,
        idle_tick=idle_tick,
    )


async def follow(core: Core, job: Job, *, watchdog: bool, steps: int) -> list[Followed]:
    seen: list[Followed] = []
    async with asyncio.timeout(FOLLOW_WAIT_S):
        async for step in follower(core, job, watchdog=watchdog):
            seen.append(step)
            if len(seen) >= steps:
                break
    return seen


async def test_a_follower_sees_the_webhooks_result_and_stops_at_the_end(core: Core) -> None:
    job = await core.running()
    body = await core.webhook_for(job)

    async def deliver_later() -> None:
        await asyncio.sleep(0.02)
        await core.webhooks.receive(job.table, job.id, core.token(job), body)

    delivery = asyncio.create_task(deliver_later())
    steps = await follow(core, job, watchdog=False, steps=10_000)
    await delivery

    assert steps[0].job.status is JobStatus.RUNNING
    assert steps[-1].job.status is JobStatus.COMPLETED
    assert not any(s.from_watchdog for s in steps)


async def test_the_page_watchdog_recovers_a_lost_webhook_after_the_initial_delay(
    core: Core,
) -> None:
    job = await core.running()
    await core.upstream_done(job)  # RunningHub finished; its webhook was dropped
    core.clock.advance(seconds=TIMINGS.initial_delay.total_seconds())

    steps = await follow(core, job, watchdog=True, steps=10_000)

    assert steps[-1].job.status is JobStatus.COMPLETED
    assert steps[-1].job.finished_by is FinishedBy.WATCHDOG
    assert steps[-1].from_watchdog


async def test_with_the_watchdog_off_a_follower_never_asks_runninghub(core: Core) -> None:
    job = await core.running()
    await core.upstream_done(job)
    core.clock.advance(seconds=TIMINGS.initial_delay.total_seconds())
    calls = core.emulator.stats.calls.get("outputs", 0)

    steps = await follow(core, job, watchdog=False, steps=5)

    assert [s.job.status for s in steps] == [JobStatus.RUNNING] * 5
    assert core.emulator.stats.calls.get("outputs", 0) == calls


async def test_a_quiet_follower_does_not_re_read_its_job_while_the_bus_is_complete(
    core: Core,
) -> None:
    counting = CountingStore(clock=core.clock)
    await counting.upsert_account(ACCOUNT, "k" * 32, 2)
    core.store = counting
    core.queue.store = counting
    core.sync.store = counting
    job = await core.running()

    counting.reads = 0
    await follow(core, job, watchdog=False, steps=20)
    assert counting.reads == 1  # the first read only: nothing changed

    core.bus.complete = False  # the Redis relay went down: updates may be missed
    counting.reads = 0
    await follow(core, job, watchdog=False, steps=20)
    assert counting.reads == 20  # the one-tick re-read is the fallback


async def test_the_server_watchdog_finishes_a_job_whose_webhook_was_lost(core: Core) -> None:
    job = await core.running()
    await core.upstream_done(job)
    assert await core.watchdog.tick() == 0  # within the initial delay: not its business yet

    core.clock.advance(seconds=TIMINGS.initial_delay.total_seconds())
    assert await core.watchdog.tick() == 1

    done = await core.job(job)
    assert (done.status, done.finished_by) == (JobStatus.COMPLETED, FinishedBy.SERVER_WATCHDOG)


async def test_the_server_watchdog_leaves_a_queue_backlog_alone_until_its_deadline(
    core: Core,
) -> None:
    await core.store.disable_account(ACCOUNT, "maintenance")
    job = await core.submit()
    core.clock.advance(minutes=5)
    assert await core.watchdog.tick() == 0

    core.clock.advance(seconds=TIMINGS.max_timeout.total_seconds())
    assert await core.watchdog.tick() == 1

    failed = await core.job(job)
    assert (failed.status, failed.finished_by) == (JobStatus.FAILED, FinishedBy.TIMEOUT)
    assert await core.balance() == 100


async def test_a_start_stuck_without_a_task_id_is_queued_again(core: Core) -> None:
    job = await core.submit()
    claimed = await core.store.claim_slot(await core.job(job), ACCOUNT)
    assert claimed is not None
    core.clock.advance(minutes=6)  # longer than any live start takes

    await core.watchdog.tick()

    requeued = await core.job(job)
    assert requeued.status is JobStatus.QUEUED
    assert requeued.start_failures == 1
    account = await core.store.get_account(ACCOUNT)
    assert account is not None
    assert account.in_flight == 0


async def test_the_server_watchdog_recounts_a_drifted_slot_counter(core: Core) -> None:
    await force_in_flight(core.store, ACCOUNT, 2)  # a manual edit left the account "full"
    job = await core.submit()
    assert await core.dispatch() == 0

    await core.watchdog.tick()
    await core.dispatch()

    assert (await core.job(job)).status is JobStatus.RUNNING


async def test_a_follower_is_woken_by_its_own_jobs_updates_only(core: Core) -> None:
    mine, other = await core.running(), await core.running()
    async with core.bus.subscribe(mine.id) as updates, core.bus.subscribe() as everything:
        await core.fail(other)
        await core.fail(mine)

        assert [updates.get_nowait().job_id] == [mine.id]
        assert updates.empty()
        assert [everything.get_nowait().job_id for _ in range(2)] == [other.id, mine.id]


async def test_a_quiet_follower_re_reads_its_job_about_once_a_minute(core: Core) -> None:
    counting = CountingStore(clock=core.clock)
    await counting.upsert_account(ACCOUNT, "k" * 32, 2)
    core.store = counting
    core.queue.store = counting
    core.sync.store = counting
    job = await core.running()
    counting.reads = 0
    steps = follower(core, job, store=counting)
    await anext(steps)
    low = c.FOLLOW_REREAD_QUIET_S * (1 - QUIET_JITTER)
    high = c.FOLLOW_REREAD_QUIET_S * (1 + QUIET_JITTER)

    core.clock.advance(seconds=low - 1)
    await anext(steps)
    assert counting.reads == 1  # before the shortest guard: nothing re-read
    core.clock.advance(seconds=high - low + 1)
    await anext(steps)
    assert counting.reads == 2  # past the longest: re-read once
    await steps.aclose()


def quiet_follower(
    core: Core, job: Job, *, store: Repository | None = None
) -> AsyncIterator[Followed]:
    """A follower of ``job`` without the page watchdog whose idle tick is an hour away: it
    yields only on a change (or, while queued, on its ``TICK``)."""
    return follower(core, job, store=store, idle_tick=timedelta(hours=1))


async def _next_within(steps: AsyncIterator[Followed], seconds: float) -> Followed | None:
    """The follower's next step, or None when it yields nothing for ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            return await anext(steps)
    except TimeoutError:
        return None


async def test_out_of_the_queue_a_follower_wakes_only_at_its_idle_tick(core: Core) -> None:
    """A tool page runs its clock itself: a running job's follower has nothing to do each
    tick (a thousand pages woke a worker a thousand times a second for nothing)."""
    job = await core.running()
    steps = quiet_follower(core, job)
    assert (await anext(steps)).job.status is JobStatus.RUNNING
    assert await _next_within(steps, 40 * TICK.total_seconds()) is None  # 40 ticks: nothing
    await steps.aclose()

    # a change still comes at once
    steps = quiet_follower(core, job)
    await anext(steps)
    await core.webhooks.receive(job.table, job.id, core.token(job), await core.webhook_for(job))
    step = await _next_within(steps, FOLLOW_WAIT_S)
    assert step is not None
    assert step.job.status is JobStatus.COMPLETED
    await steps.aclose()


async def test_a_queued_jobs_follower_still_ticks_its_place_in_the_queue_moves(
    core: Core,
) -> None:
    job = await core.submit()  # not dispatched: queued
    assert job.status is JobStatus.QUEUED
    steps = quiet_follower(core, job)
    await anext(steps)
    assert await _next_within(steps, FOLLOW_WAIT_S) is not None  # a tick, not an hour
    await steps.aclose()


async def test_a_follower_shows_the_job_its_update_carries_without_reading_it_again(
    core: Core,
) -> None:
    """An update made in this process carries the job as written: the follower shows it
    (one read less per followed job per change, on the way from a webhook to the page).
    An update relayed from another process carries none: the follower reads the job."""
    counting = CountingStore(clock=core.clock)
    await counting.upsert_account(ACCOUNT, "k" * 32, 2)
    core.store = counting
    core.queue.store = counting
    core.sync.store = counting
    core.webhooks.store = counting
    job = await core.running()
    steps = quiet_follower(core, job, store=counting)
    await anext(steps)
    counting.reads = 0
    await core.webhooks.receive(job.table, job.id, core.token(job), await core.webhook_for(job))
    reads_by_the_webhook = counting.reads
    step = await _next_within(steps, FOLLOW_WAIT_S)
    assert step is not None
    assert step.job.status is JobStatus.COMPLETED
    assert step.job.output_url
    assert counting.reads == reads_by_the_webhook  # the follower read nothing
    await steps.aclose()

    other = await core.running(user="u2")
    steps = quiet_follower(core, other, store=counting)
    await anext(steps)
    counting.reads = 0
    relayed = JobUpdate.of(other)
    core.bus.deliver(JobUpdate(relayed.table, relayed.job_id, relayed.user_id, relayed.status))
    step = await _next_within(steps, FOLLOW_WAIT_S)
    assert step is not None
    assert counting.reads == 1  # the database says what changed
    await steps.aclose()


async def test_of_two_carried_rows_the_follower_shows_the_newest_whatever_their_order(
    core: Core,
) -> None:
    """Two writes' updates may be delivered in either order (their commits answered in
    another order under load): the follower must not settle on the older row — it would
    show "Processando" for a job that has ended, until the next quiet re-read."""
    job = await core.running()
    steps = quiet_follower(core, job)
    running = (await anext(steps)).job
    core.clock.advance(seconds=1)
    await core.fail(job)  # publishes the failed row
    core.bus.publish(JobUpdate.of(running))  # then an older row arrives late
    step = await _next_within(steps, FOLLOW_WAIT_S)
    assert step is not None
    assert step.job.status is JobStatus.FAILED
    with pytest.raises(StopAsyncIteration):  # ended: the follower stops
        await anext(steps)
