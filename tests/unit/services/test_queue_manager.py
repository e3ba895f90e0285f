"""The queue manager's decisions: charge once, never exceed an account's cap, requeue what
RunningHub turns away, fail (with a refund) what can never start."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from arcano_tools import constants
from arcano_tools.constants import DISPATCH_MIN_GAP_S, QUEUE_RETRY_MAX_S
from arcano_tools.domain.errors import InsufficientCredits, InvalidInput, JobNotCancellable
from arcano_tools.domain.records import FinishRequest, Job
from arcano_tools.domain.status import FinishedBy, JobStatus
from arcano_tools.services.queue_manager import (
    FIRST_CHECK_CACHE_S,
    MAX_START_FAILURES,
    MSG_INPUT_MISSING,
    MSG_REJECTED,
)
from arcano_tools.services.schedule import MIN_HISTORY
from tests.support.core import ACCOUNT, Core
from tests.support.waiting import wait_for_async

OUTPUT_URL = "https://rh-images.xiaoyaoyou.com/out.png"


async def test_a_submit_charges_the_tool_price_and_queues_the_job(core: Core) -> None:
    job = await core.submit("upscaler")

    price = core.tools.by_name("upscaler")
    assert price is not None
    assert job.status is JobStatus.QUEUED
    assert await core.balance() == 100 - price.cost
    assert await core.ledger_kinds() == ["grant", "charge"]


async def test_a_submit_without_enough_credits_stores_nothing(core: Core) -> None:
    with pytest.raises(InsufficientCredits):
        await core.submit("upscaler", "poor", credits=1)
    assert await core.store.list_user_jobs("poor") == []


async def test_an_unknown_tool_is_refused_naming_the_known_ones(core: Core) -> None:
    await core.store.ensure_user("u1", credits=100)
    with pytest.raises(InvalidInput, match="upscaler"):
        await core.queue.submit("u1", "sharpener", {}, {})


async def test_dispatch_starts_no_more_jobs_than_the_account_may_run(core: Core) -> None:
    jobs = [await core.submit() for _ in range(3)]

    assert await core.dispatch() == 2

    statuses = [(await core.job(j)).status for j in jobs]
    assert statuses == [JobStatus.RUNNING, JobStatus.RUNNING, JobStatus.QUEUED]
    account = await core.store.get_account(ACCOUNT)
    assert account is not None
    assert account.in_flight == 2


async def test_a_dispatch_reads_the_accounts_once_and_spreads_jobs_least_busy_first(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The accounts were read again for every job (a twentieth of a start's CPU)."""
    await core.store.upsert_account("arcano_second", "s" * 32, 3)
    jobs = [await core.submit() for _ in range(6)]
    reads = 0
    read_accounts = core.store.accounts_with_free_slots

    async def counted() -> Any:
        nonlocal reads
        reads += 1
        return await read_accounts()

    monkeypatch.setattr(core.store, "accounts_with_free_slots", counted)

    assert await core.dispatch() == 5  # 2 + 3 slots

    assert reads == 2  # once for the five, once more for the sixth (all full: none)
    started = [await core.job(j) for j in jobs]
    assert [j.api_account for j in started] == [
        ACCOUNT,  # both empty: by name
        "arcano_second",
        ACCOUNT,
        "arcano_second",
        "arcano_second",  # arcano_main is full
        None,
    ]
    for name, slots in ((ACCOUNT, 2), ("arcano_second", 3)):
        account = await core.store.get_account(name)
        assert account is not None
        assert account.in_flight == slots


async def test_a_finished_job_frees_its_slot_for_the_next_queued_one(core: Core) -> None:
    first, _second, third = [await core.submit() for _ in range(3)]
    await core.dispatch()

    await core.fail(await core.job(first))
    await core.dispatch()

    assert (await core.job(third)).status is JobStatus.RUNNING


async def test_a_busy_runninghub_requeues_without_using_up_the_failed_start_budget(
    core: Core,
) -> None:
    core.control(queue_full_next=1)  # the next create call answers 421
    job = await core.submit()

    await core.dispatch()

    requeued = await core.job(job)
    assert requeued.status is JobStatus.QUEUED
    assert (requeued.attempts, requeued.start_failures) == (1, 0)
    assert requeued.next_attempt_at is not None
    assert requeued.next_attempt_at > core.clock()
    assert await core.dispatch() == 0  # not before its backoff
    core.clock.advance(minutes=1)
    assert await core.dispatch() == 1
    assert (await core.job(job)).status is JobStatus.RUNNING


async def test_a_refused_key_fails_the_job_with_a_refund_and_disables_the_account(
    core: Core,
) -> None:
    await core.store.upsert_account(ACCOUNT, "not-a-valid-key", 2)
    job = await core.submit()

    await core.dispatch()

    failed = await core.job(job)
    assert failed.status is JobStatus.FAILED
    assert failed.finished_by is FinishedBy.DISPATCH
    assert failed.error_message == MSG_REJECTED
    assert await core.balance() == 100
    account = await core.store.get_account(ACCOUNT)
    assert account is not None
    assert not account.enabled
    assert account.in_flight == 0


async def test_a_start_whose_input_is_gone_fails_at_once_with_a_refund(core: Core) -> None:
    job = await core.submit()
    path = job.inputs["files"]["image"]["path"]
    core.queue.files.discard(job.table, job.id)
    assert not (core.queue.files.root / path).exists()

    await core.dispatch()

    failed = await core.job(job)
    assert (failed.status, failed.error_message) == (JobStatus.FAILED, MSG_INPUT_MISSING)
    assert await core.ledger_kinds() == ["grant", "charge", "refund"]


async def test_repeated_failed_starts_give_up_with_a_refund(core: Core) -> None:
    core.control(http_error_rate=1.0)  # every RunningHub call answers 5xx
    job = await core.submit()

    for _ in range(MAX_START_FAILURES):
        await core.dispatch()
        core.clock.advance(seconds=2 * QUEUE_RETRY_MAX_S)  # past any backoff, not the deadline

    failed = await core.job(job)
    assert failed.status is JobStatus.FAILED
    assert failed.start_failures == MAX_START_FAILURES - 1
    assert await core.balance() == 100


async def test_a_cancel_refunds_and_stops_the_task_upstream(core: Core) -> None:
    core.control(outcome="never")
    job = await core.running()

    result = await core.queue.cancel(job.table, job.id, "u1")
    await core.queue.cancel_upstream(result.job)

    assert (result.changed, result.refunded) == (True, True)
    assert result.job.status is JobStatus.CANCELLED
    assert core.task(job).status == "FAILED"  # RunningHub's word for a cancelled task
    with pytest.raises(JobNotCancellable):
        await core.queue.cancel(job.table, job.id, "u1")


async def test_a_stuck_start_is_requeued_and_a_late_answer_changes_nothing(core: Core) -> None:
    job = await core.submit()
    queued = await core.job(job)
    claimed = await core.store.claim_slot(queued, ACCOUNT)
    assert claimed is not None

    await core.queue.recover_stuck_start(claimed)  # the process that was starting it died
    assert (await core.job(job)).status is JobStatus.QUEUED
    core.clock.advance(minutes=1)  # past its backoff
    await core.dispatch()
    current = await core.job(job)
    assert current.status is JobStatus.RUNNING
    assert current.claim_id != claimed.claim_id

    # the dead start answers late: it holds no claim any more
    assert not await core.store.requeue(
        claimed, retry_at=core.clock() + timedelta(seconds=1), reason="late"
    )
    assert (await core.job(job)).task_id == current.task_id


async def test_the_learned_first_check_is_refreshed_on_the_service_clock(core: Core) -> None:
    """The cache of a tool's learned first-check delay ages on the services' clock (a virtual
    one in the simulation), not the event loop's: history gathered in virtual time is used."""
    assert await core.queue.first_check_delay("upscaler_jobs") is None  # no history yet
    for _ in range(MIN_HISTORY):
        job = await core.running()
        core.clock.advance(seconds=90)
        await core.queue.finish(
            job.table,
            job.id,
            FinishRequest(JobStatus.COMPLETED, FinishedBy.WEBHOOK, output_url=OUTPUT_URL),
        )
    core.clock.advance(seconds=FIRST_CHECK_CACHE_S + 1)

    assert await core.queue.first_check_delay("upscaler_jobs") == timedelta(seconds=90)


async def test_a_burst_of_wakes_is_served_by_few_dispatches(core: Core) -> None:
    """Every finish wakes the dispatcher (a slot is free); a burst of them must not read the
    queue once each (a webhook burst read it 300 times a second)."""
    reads = 0
    real_read = core.store.queued_jobs_due

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return await real_read(*args, **kwargs)

    core.store.queued_jobs_due = counted  # type: ignore[method-assign]
    stop = asyncio.Event()
    dispatcher = asyncio.create_task(core.queue.run(stop))
    await asyncio.sleep(0)  # its first dispatch
    before = reads
    wakes = 100

    for _ in range(wakes):
        core.queue.wake()
        await asyncio.sleep(0)  # the loop runs between two finishes' wakes
    await asyncio.sleep(2 * DISPATCH_MIN_GAP_S)
    burst_reads = reads - before
    job = await core.submit()  # a job submitted after the burst still starts at once

    await started_then_stop(core, job, stop, dispatcher)

    assert 1 <= burst_reads < wakes / 10


async def started_then_stop(
    core: Core, job: Job | list[Job], stop: asyncio.Event, dispatcher: asyncio.Task[None]
) -> None:
    """Wait until the running dispatcher has started ``job`` (or the first job of a list
    filled meanwhile), then stop it (also on failure)."""
    jobs = job if isinstance(job, list) else [job]

    async def started() -> bool:
        return bool(jobs) and (await core.job(jobs[0])).status is not JobStatus.QUEUED

    try:
        await wait_for_async(started, timeout=5, interval=DISPATCH_MIN_GAP_S, what="the start")
    finally:
        stop.set()
        core.queue.wake()
        await asyncio.wait_for(dispatcher, 5)


def count_queue_reads(core: Core) -> list[int]:
    """Counts the dispatcher's reads of the queue (one item, incremented per read)."""
    reads = [0]
    real_read = core.store.queued_jobs_due

    async def counted(*args: Any, **kwargs: Any) -> Any:
        reads[0] += 1
        return await real_read(*args, **kwargs)

    core.store.queued_jobs_due = counted  # type: ignore[method-assign]
    return reads


async def test_freed_slots_do_not_read_a_queue_last_seen_empty(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A webhook burst frees a slot per job; with nothing queued, each dispatch read the queue
    to start nothing (50 reads a second). The tick still reads it (other processes' jobs)."""
    monkeypatch.setattr(constants, "DISPATCH_TICK_S", 3600.0)
    jobs = [await core.running() for _ in range(2)]
    reads = count_queue_reads(core)
    stop = asyncio.Event()
    dispatcher = asyncio.create_task(core.queue.run(stop))
    await wait_for_async(lambda: _true(reads[0] == 1), timeout=5, what="the first read")

    for job in jobs:
        await core.queue.finish(
            job.table,
            job.id,
            FinishRequest(JobStatus.COMPLETED, FinishedBy.WEBHOOK, output_url=OUTPUT_URL),
        )
        await asyncio.sleep(2 * DISPATCH_MIN_GAP_S)
    quiet_reads = reads[0]
    queued = await core.submit()  # a submission wakes it: read, and started at once

    await started_then_stop(core, queued, stop, dispatcher)

    assert quiet_reads == 1


async def test_a_freed_slot_starts_a_job_waiting_for_one_at_once(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job queued behind a full account is started by the finish that frees a slot, not by
    the tick."""
    monkeypatch.setattr(constants, "DISPATCH_TICK_S", 3600.0)
    running = [await core.running(user=user) for user in ("u1", "u2")]  # both slots taken
    waiting = await core.submit(user="u3")
    await core.dispatch()
    assert (await core.job(waiting)).status is JobStatus.QUEUED
    reads = count_queue_reads(core)
    stop = asyncio.Event()
    dispatcher = asyncio.create_task(core.queue.run(stop))
    await wait_for_async(lambda: _true(reads[0] == 1), timeout=5, what="the first read")

    await core.queue.finish(
        running[0].table,
        running[0].id,
        FinishRequest(JobStatus.COMPLETED, FinishedBy.WEBHOOK, output_url=OUTPUT_URL),
    )

    await started_then_stop(core, waiting, stop, dispatcher)


async def _true(value: bool) -> bool:
    return value


async def test_a_wake_during_a_dispatch_is_not_lost(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job submitted while the dispatcher reads the queue (the read does not see it) wakes
    it; that wake was cleared when the dispatch ended, and the job waited for the tick."""
    monkeypatch.setattr(constants, "DISPATCH_TICK_S", 3600.0)  # a lost wake: never started
    real_read = core.store.queued_jobs_due
    submitted: list[Job] = []

    async def submit_during_the_read(*args: Any, **kwargs: Any) -> Any:
        found = await real_read(*args, **kwargs)
        if not submitted:  # the first read: a job arrives before its answer is used
            submitted.append(await core.submit())
        return found

    core.store.queued_jobs_due = submit_during_the_read  # type: ignore[method-assign]
    stop = asyncio.Event()
    dispatcher = asyncio.create_task(core.queue.run(stop))

    await started_then_stop(core, submitted, stop, dispatcher)
