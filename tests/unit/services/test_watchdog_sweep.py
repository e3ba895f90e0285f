"""The server watchdog at scale (issue 9, target 5: one sweep over 10,000 due jobs): a check
of a job still running costs one lease and one write, a loop with no room for more checks
leases again as soon as some end (not a tick later), and the account whose key asks
RunningHub is read once per batch, not once per check."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest

from arcano_tools import constants as c
from arcano_tools.domain.status import JobStatus
from arcano_tools.services import server_watchdog
from arcano_tools.services.server_watchdog import ServerWatchdog
from tests.support.core import ACCOUNT, API_KEY, TIMINGS, Core
from tests.support.stores import CountingStore
from tests.support.waiting import wait_for_async


async def still_running(core: Core, count: int) -> None:
    """``count`` jobs RunningHub keeps running, due for the server watchdog."""
    core.control(outcome="never")
    await core.store.upsert_account(ACCOUNT, API_KEY, max_concurrent=count)  # a slot each
    for n in range(count):
        await core.running(user=f"sweep-{n}")
    core.clock.advance(seconds=TIMINGS.initial_delay.total_seconds())


def one_slot_watchdog(core: Core, *, store: Any = None, sync: Any = None) -> ServerWatchdog:
    """A server watchdog of ``core`` with one upstream slot: it holds at most
    ``IN_FLIGHT_PER_SLOT`` checks waiting for RunningHub."""
    return ServerWatchdog(
        store=store or core.store,
        sync=sync or core.sync,
        queue=core.queue,
        max_concurrency=1,
        starting_stuck_after=timedelta(minutes=5),
    )


def outputs_asked(core: Core) -> int:
    return core.emulator.stats.calls.get("outputs", 0)


@contextlib.contextmanager
def answers_held(core: Core) -> Iterator[None]:
    """A busy database: the checks' answers wait to be written until the block ends."""
    writes_may_end = asyncio.Event()
    real_record = core.store.record_check_result

    async def held_record(*args: object, **kwargs: object) -> None:
        await writes_may_end.wait()
        await real_record(*args, **kwargs)  # type: ignore[arg-type]

    core.store.record_check_result = held_record  # type: ignore[method-assign]
    try:
        yield
    finally:
        writes_may_end.set()


@contextlib.asynccontextmanager
async def running(watchdog: ServerWatchdog, *, checks: bool = True) -> AsyncIterator[None]:
    """The watchdog's loop, for the length of the block."""
    stop = asyncio.Event()
    loop = asyncio.create_task(watchdog.run(stop, checks=checks))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(loop, timeout=10)


async def test_a_check_of_a_job_still_running_is_one_lease_and_one_write(core: Core) -> None:
    await still_running(core, 3)
    counting = CountingStore(core.store)
    core.watchdog.store = counting  # type: ignore[assignment]
    core.sync.store = counting  # type: ignore[assignment]

    assert await core.watchdog.tick() == 3

    assert counting.calls["lease_due_jobs"] == 1  # it reserved the three checks too
    assert counting.calls["record_check_result"] == 3  # each answer ended its lease
    assert (counting.calls["reserve_check"], counting.calls["release_lease"]) == (0, 0)
    assert counting.calls["get_account"] == 1  # one read of the key for the batch
    # the shared schedule is kept: not due again for an interval, then due (leases ended)
    assert await core.watchdog.tick() == 0
    core.clock.advance(seconds=TIMINGS.poll_interval.total_seconds())
    assert await core.watchdog.tick() == 3


async def test_a_watchdog_with_no_room_leases_again_as_checks_end_not_a_tick_later(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At its cap the loop leases only overdue jobs; it then waited a whole tick (half a poll
    interval, minutes here) before leasing the due ones again: a sweep crawled."""
    monkeypatch.setattr(server_watchdog, "LEASE_BATCH", 2)
    await still_running(core, 6)
    sync = core.sync_with(poll_interval=timedelta(minutes=10))  # a tick of five minutes
    watchdog = one_slot_watchdog(core, sync=sync)  # a cap of IN_FLIGHT_PER_SLOT checks in hand
    core.control(latency_ms=200)  # each check outlasts the pause between two leases

    async def all_checked() -> bool:
        return outputs_asked(core) >= 6

    try:
        async with running(watchdog):
            await wait_for_async(all_checked, timeout=15, interval=0.05, what="six checks")
    finally:
        core.control(latency_ms=0)


async def test_a_check_writing_its_answer_leaves_its_slot_to_the_next_call(core: Core) -> None:
    """The slot bounds calls to RunningHub, not writes: held through the group commit's wait
    for the answer's write, the 64 slots were the sweep's limit."""
    await still_running(core, 2)
    watchdog = one_slot_watchdog(core)

    async def both_asked() -> bool:
        return outputs_asked(core) >= 2

    with answers_held(core):  # the second call goes out while the first check's write waits
        tick = asyncio.create_task(watchdog.tick())
        await wait_for_async(both_asked, timeout=10, interval=0.02, what="the second call")
    assert await asyncio.wait_for(tick, timeout=10) == 2


async def test_a_sweep_of_many_leases_looks_for_stalled_starts_once_a_period_not_per_lease(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look for stalled starts (a write transaction) ran before every lease: in a sweep,
    one every few tens of milliseconds, 40 % of the sweep's time. It keeps its own period."""
    monkeypatch.setattr(server_watchdog, "LEASE_BATCH", 2)
    monkeypatch.setattr(server_watchdog, "IN_FLIGHT_PER_SLOT", 1)  # leases of two at most
    monkeypatch.setattr(c, "START_RECOVERY_EVERY_S", 3600.0)  # one look in this test
    await still_running(core, 8)
    counting = CountingStore(core.store)
    watchdog = one_slot_watchdog(core, store=counting)

    async def all_checked() -> bool:
        return outputs_asked(core) >= 8

    async with running(watchdog):
        await wait_for_async(all_checked, timeout=15, interval=0.02, what="eight checks")
    assert counting.calls["lease_due_jobs"] >= 4
    assert counting.calls["lease_stalled_starts"] == 1


async def test_checks_writing_their_answers_leave_room_for_more_leases(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cap of checks in hand is a multiple of the upstream slots: it counts the checks
    still waiting for RunningHub. Counted until their answers' writes ended, a busy database
    held the sweep back although RunningHub had room."""
    monkeypatch.setattr(server_watchdog, "LEASE_BATCH", 2)
    jobs = 3 * server_watchdog.IN_FLIGHT_PER_SLOT  # three times the cap
    await still_running(core, jobs)
    watchdog = one_slot_watchdog(core)

    async def all_asked() -> bool:
        return outputs_asked(core) >= jobs

    # every job is asked while the first answers still wait for their writes
    async with running(watchdog):
        with answers_held(core):
            await wait_for_async(all_asked, timeout=10, interval=0.02, what="every job asked")


async def test_answered_checks_held_by_a_stalled_database_stop_at_a_ceiling(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counting only the checks waiting for RunningHub, a database that stalls would let the
    answered ones (each holding its lease) pile up at RunningHub's answer rate."""
    monkeypatch.setattr(server_watchdog, "LEASE_BATCH", 2)
    monkeypatch.setattr(server_watchdog, "IN_FLIGHT_PER_SLOT", 2)
    monkeypatch.setattr(server_watchdog, "HELD_PER_CAP", 2)
    monkeypatch.setattr(c, "START_RECOVERY_EVERY_S", 0.05)  # the loop looks often for room
    ceiling = 2 * 2  # HELD_PER_CAP × the cap (IN_FLIGHT_PER_SLOT × one slot)
    await still_running(core, 3 * ceiling)
    watchdog = one_slot_watchdog(core)

    async def at_the_ceiling() -> bool:
        return outputs_asked(core) >= ceiling

    async with running(watchdog):
        with answers_held(core):
            await wait_for_async(at_the_ceiling, timeout=10, interval=0.02, what="the ceiling")
            await asyncio.sleep(0.5)  # time enough for more leases, were there room
            assert outputs_asked(core) == ceiling


async def test_a_backlog_of_dead_starts_is_recovered_batch_after_batch_not_one_a_period(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_watchdog, "LEASE_BATCH", 2)
    monkeypatch.setattr(c, "START_RECOVERY_EVERY_S", 3600.0)
    await core.store.upsert_account(ACCOUNT, API_KEY, max_concurrent=5)
    jobs = [await core.submit(user=f"dead-{n}") for n in range(5)]
    for job in jobs:  # what SIGKILLed starts leave: starting, slot held, nobody renewing
        claimed = await core.store.claim_slot(
            await core.job(job), ACCOUNT, start_lease_for=core.queue.start_lease
        )
        assert claimed is not None
    core.clock.advance(seconds=c.START_LEASE_S + 1)

    async def all_back() -> bool:
        now = [await core.job(job) for job in jobs]
        return all(job.status is JobStatus.QUEUED for job in now)

    async with running(core.watchdog, checks=False):
        await wait_for_async(all_back, timeout=10, interval=0.02, what="every start recovered")
