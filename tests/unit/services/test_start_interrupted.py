"""Starts interrupted while RunningHub's create call runs: a graceful stop gives them back to
the queue at once, a crash within seconds (the start lease), and a task one of them created
anyway (the create call has no idempotency key) is cancelled and never applied.

The create calls are held by a gate around the client: the real call to the emulator is made
(the task exists upstream), but its answer reaches the start only when the gate opens — a
create call "in flight" whose task has already landed, the worst case."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from arcano_tools import constants as c
from arcano_tools.domain.records import Job
from arcano_tools.domain.status import FinishedBy, JobStatus
from arcano_tools.emulator.webhooks import webhook_body
from arcano_tools.runninghub.client import CreatedTask
from arcano_tools.services.queue_manager import (
    MAX_START_FAILURES,
    MSG_REQUEUED_INTERRUPTED,
    MSG_UNAVAILABLE,
    QueueManager,
    webhook_token,
    webhook_token_claim,
    webhook_token_ok,
)
from arcano_tools.services.webhooks import Delivery
from tests.support.core import (
    ACCOUNT,
    BACKEND_BASE,
    EMULATOR_BASE,
    SECRET,
    UPSTREAM_WAIT_S,
    Core,
)


class CreateGate:
    """Holds the answers of the core's create calls (their tasks exist upstream) until opened."""

    def __init__(self, core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
        self.open = asyncio.Event()
        self.created: list[CreatedTask] = []
        self._landed = asyncio.Event()
        real = core.client.run_app

        async def held(*args: Any, **kwargs: Any) -> CreatedTask:
            created = await real(*args, **kwargs)
            self.created.append(created)
            self._landed.set()
            await self.open.wait()
            return created

        monkeypatch.setattr(core.client, "run_app", held)

    async def landed(self) -> CreatedTask:
        """Wait until a create call reached RunningHub (its answer is being held)."""
        await asyncio.wait_for(self._landed.wait(), UPSTREAM_WAIT_S)
        return self.created[-1]


@pytest.fixture
def gate(core: Core, monkeypatch: pytest.MonkeyPatch) -> CreateGate:
    return CreateGate(core, monkeypatch)


async def in_create_call(core: Core, gate: CreateGate) -> tuple[Job, CreatedTask]:
    """A job whose start is waiting on RunningHub's create call (the task already landed)."""
    job = await core.submit()
    assert await core.queue.dispatch_once() == 1
    created = await gate.landed()
    starting = await core.job(job)
    assert starting.status is JobStatus.STARTING
    return starting, created


async def drain(queue: QueueManager) -> None:
    while queue._starting:
        await asyncio.gather(*list(queue._starting), return_exceptions=True)


def restarted(core: Core) -> QueueManager:
    """The next process's queue manager (same database, same RunningHub)."""
    queue = QueueManager(
        store=core.store,
        client=core.client,
        tools=core.tools,
        files=core.queue.files,
        bus=core.bus,
        webhook_base_url=BACKEND_BASE,
        webhook_secret=SECRET,
        clock=core.clock,
    )
    queue.on_task_saved = core.webhooks.apply_kept
    return queue


def webhook_token_of(core: Core, task_id: str) -> str:
    """The token in the webhook URL RunningHub was given for this task."""
    url = core.emulator.tasks[task_id].webhook_url
    assert url is not None
    return parse_qs(urlsplit(url).query)["token"][0]


def success_webhook(task_id: str) -> bytes:
    """RunningHub's TASK_END webhook saying the task succeeded, with an output file."""
    item = {"fileUrl": f"{EMULATOR_BASE}/files/{task_id}.png", "fileType": "png", "nodeId": "9"}
    return webhook_body(task_id, {"code": 0, "msg": "success", "data": [item]})


async def account_in_flight(core: Core) -> int:
    account = await core.store.get_account(ACCOUNT)
    assert account is not None
    return account.in_flight


# --- a graceful stop ----------------------------------------------------------------------------


async def test_a_graceful_stop_puts_a_start_in_flight_back_in_the_queue_at_once(
    core: Core, gate: CreateGate
) -> None:
    starting, created = await in_create_call(core, gate)
    core.queue.shutdown_grace = 0

    assert await core.queue.shutdown() == 1

    back = await core.job(starting)
    assert back.status is JobStatus.QUEUED
    assert back.start_failures == 0  # the stop is ours: not a failed start
    assert back.next_attempt_at is not None
    assert back.next_attempt_at <= core.clock()  # due now, for whichever process is up
    assert back.error_message == MSG_REQUEUED_INTERRUPTED
    assert await account_in_flight(core) == 0
    assert await core.queue.dispatch_once() == 0  # a stopping process starts nothing new
    # the claim is given up: the interrupted start's task can never be saved onto the job
    late = await core.store.save_task_id(
        back.table, back.id, created.task_id, claim_id=starting.claim_id
    )
    assert late is not None
    assert late.task_id is None


async def test_a_graceful_stop_lets_a_start_whose_create_call_answers_in_time_finish(
    core: Core, gate: CreateGate
) -> None:
    starting, created = await in_create_call(core, gate)
    core.queue.shutdown_grace = UPSTREAM_WAIT_S
    asyncio.get_running_loop().call_later(0.01, gate.open.set)  # answers during the grace

    assert await core.queue.shutdown() == 0

    running = await core.job(starting)
    assert (running.status, running.task_id) == (JobStatus.RUNNING, created.task_id)


async def test_the_dispatcher_loops_end_gives_its_starts_the_same_grace(
    core: Core, gate: CreateGate
) -> None:
    """Its loop ending (the process stopping) does not cut the grace short."""
    stop = asyncio.Event()
    dispatcher = asyncio.create_task(core.queue.run(stop))
    job = await core.submit()  # wakes the dispatcher
    created = await gate.landed()
    core.queue.shutdown_grace = UPSTREAM_WAIT_S

    stop.set()
    core.queue.wake()
    asyncio.get_running_loop().call_later(0.01, gate.open.set)
    await asyncio.wait_for(dispatcher, UPSTREAM_WAIT_S)

    running = await core.job(job)
    assert (running.status, running.task_id) == (JobStatus.RUNNING, created.task_id)


async def test_an_orphan_task_of_an_interrupted_start_is_cancelled_and_never_applied(
    core: Core, gate: CreateGate
) -> None:
    """The stopped start's create call landed: its task runs upstream, its webhook names the
    job (and the start's claim). Whether it arrives while the job waits in the queue or after
    the next process started the job again, it is never applied; one charge, one result."""
    core.control(outcome="never")  # the orphan runs until someone cancels it
    starting, orphan = await in_create_call(core, gate)
    core.queue.shutdown_grace = 0
    await core.queue.shutdown()
    token = webhook_token_of(core, orphan.task_id)
    orphan_body = success_webhook(orphan.task_id)

    while_queued = await core.webhooks.receive(starting.table, starting.id, token, orphan_body)

    assert while_queued.delivery is Delivery.TASK_MISMATCH
    queued = await core.job(starting)
    assert (queued.status, queued.task_id) == (JobStatus.QUEUED, None)
    await drain(core.queue)
    assert core.emulator.tasks[orphan.task_id].status == "FAILED"  # cancelled upstream

    # the next process starts the job again; the orphan's webhook comes again (a retry)
    core.control(outcome="success")
    gate.open.set()
    nxt = restarted(core)
    await nxt.dispatch_once()
    await drain(nxt)
    running = await core.job(starting)
    assert running.status is JobStatus.RUNNING
    assert running.task_id != orphan.task_id
    again = await core.webhooks.receive(starting.table, starting.id, token, orphan_body)
    assert again.delivery is Delivery.TASK_MISMATCH
    assert (await core.job(starting)).task_id == running.task_id

    body = await core.webhook_for(running)
    done = await core.webhooks.receive(
        starting.table, starting.id, webhook_token_of(core, running.task_id or ""), body
    )
    assert done.status is JobStatus.COMPLETED
    assert await core.ledger_kinds() == ["grant", "charge"]  # charged once, never refunded


async def test_a_job_back_in_the_queue_applies_no_task_whatever_its_token(core: Core) -> None:
    """No start is current while a job waits in the queue: a task reaching it belongs to an
    abandoned one, even under a job-only token (URLs handed out before claims were in them)."""
    job = await core.submit()
    dead = await core.store.claim_slot(await core.job(job), ACCOUNT)
    assert dead is not None
    await core.queue.recover_stuck_start(dead)

    result = await core.webhooks.receive(
        job.table, job.id, core.token(job), success_webhook("OLD-URL-TASK")
    )

    assert result.delivery is Delivery.TASK_MISMATCH
    queued = await core.job(job)
    assert (queued.status, queued.task_id) == (JobStatus.QUEUED, None)


async def test_a_replayed_webhook_of_another_jobs_task_never_stops_that_task(
    core: Core,
) -> None:
    core.control(outcome="never")
    other = await core.running(user="u2")
    job = await core.submit()
    dead = await core.store.claim_slot(await core.job(job), ACCOUNT)
    assert dead is not None
    await core.queue.recover_stuck_start(dead)
    assert other.task_id is not None

    result = await core.webhooks.receive(
        job.table, job.id, core.token(job), success_webhook(other.task_id)
    )
    await drain(core.queue)

    assert result.delivery is Delivery.TASK_MISMATCH
    assert core.task(other).status == "RUNNING"
    assert core.emulator.stats.calls.get("cancel", 0) == 0


async def test_a_token_binds_its_claim(core: Core) -> None:
    job = await core.submit()
    token = webhook_token(SECRET, job.table, job.id, "a" * 32)
    forged = "b" * 32 + token[32:]  # another claim with the same MAC

    assert webhook_token_ok(SECRET, job.table, job.id, token)
    assert webhook_token_claim(token) == "a" * 32
    assert not webhook_token_ok(SECRET, job.table, job.id, forged)
    assert webhook_token_claim(core.token(job)) is None
    refused = await core.webhooks.receive(job.table, job.id, forged, success_webhook("T"))
    assert refused.delivery is Delivery.BAD_TOKEN


async def test_the_current_starts_own_webhook_before_its_create_answer_is_applied(
    core: Core, gate: CreateGate
) -> None:
    """The plan's early webhook, now with the claim in the URL: still the job's result."""
    starting, created = await in_create_call(core, gate)
    body = await core.webhook_for(dataclasses.replace(starting, task_id=created.task_id))

    result = await core.webhooks.receive(
        starting.table, starting.id, webhook_token_of(core, created.task_id), body
    )

    assert (result.delivery, result.early, result.status) == (
        Delivery.APPLIED,
        True,
        JobStatus.COMPLETED,
    )
    gate.open.set()
    await drain(core.queue)
    done = await core.job(starting)
    assert (done.status, done.task_id) == (JobStatus.COMPLETED, created.task_id)
    assert core.emulator.stats.calls.get("cancel", 0) == 0


# --- a crash ------------------------------------------------------------------------------------


async def test_a_start_left_by_a_killed_process_is_queued_again_within_seconds(
    core: Core,
) -> None:
    """What a SIGKILL leaves: starting, slot held, a start lease nobody renews."""
    job = await core.submit()
    dead = await core.store.claim_slot(
        await core.job(job), ACCOUNT, start_lease_for=core.queue.start_lease
    )
    assert dead is not None
    assert c.START_LEASE_S + c.START_RECOVERY_EVERY_S < 10

    core.clock.advance(seconds=c.START_LEASE_S - 1)
    assert await core.watchdog.recover_stalled_starts() == 0  # it may still be alive
    core.clock.advance(seconds=1)
    assert await core.watchdog.recover_stalled_starts() == 1

    back = await core.job(job)
    assert back.status is JobStatus.QUEUED
    assert back.start_failures == 1  # a crash counts: a job that kills processes gives up
    assert back.error_message == MSG_REQUEUED_INTERRUPTED
    assert await account_in_flight(core) == 0
    core.clock.advance(minutes=1)  # past its backoff
    await core.dispatch()
    assert (await core.job(job)).status is JobStatus.RUNNING


async def test_a_live_start_keeps_its_lease_however_long_its_create_call_takes(
    core: Core, gate: CreateGate
) -> None:
    """The heartbeat: minutes of a slow create call (longer than the old 5-minute rule)
    and neither the recovery nor the watchdog's pass takes the job away."""
    core.queue.heartbeat_every = 0.001
    starting, created = await in_create_call(core, gate)

    for _ in range(int(c.STARTING_STUCK_MS / 1000 / 5) + 12):  # six minutes, 5 s at a time
        core.clock.advance(seconds=5)
        await renewed(core, starting)
        assert await core.watchdog.recover_stalled_starts() == 0
    await core.watchdog.tick()

    assert (await core.job(starting)).claim_id == starting.claim_id
    gate.open.set()
    await drain(core.queue)
    running = await core.job(starting)
    assert (running.status, running.task_id) == (JobStatus.RUNNING, created.task_id)


async def renewed(core: Core, job: Job) -> None:
    """Wait (real time, milliseconds) until the heartbeat renewed the lease from now."""
    want = core.clock() + core.queue.start_lease
    for _ in range(1000):
        current = await core.job(job)
        if current.start_lease_until == want:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"lease not renewed: {current.start_lease_until} != {want}")


async def test_a_late_create_answer_after_recovery_cancels_its_task_and_saves_nothing(
    core: Core, gate: CreateGate
) -> None:
    """The process only stalled: its job was recovered, then its create call answers."""
    core.control(outcome="never")
    core.queue.heartbeat_every = 3600  # the stalled process renews nothing
    starting, created = await in_create_call(core, gate)
    core.clock.advance(seconds=c.START_LEASE_S)
    assert await core.watchdog.recover_stalled_starts() == 1

    gate.open.set()
    await drain(core.queue)

    queued = await core.job(starting)
    assert (queued.status, queued.task_id) == (JobStatus.QUEUED, None)
    assert core.emulator.tasks[created.task_id].status == "FAILED"  # cancelled upstream
    assert await account_in_flight(core) == 0


async def test_a_job_whose_starts_keep_dying_fails_once_with_a_refund(core: Core) -> None:
    job = await core.submit()
    for _ in range(MAX_START_FAILURES):
        queued = await core.job(job)
        assert queued.status is JobStatus.QUEUED
        assert await core.store.claim_slot(queued, ACCOUNT, start_lease_for=timedelta(0))
        await core.watchdog.recover_stalled_starts()
        core.clock.advance(minutes=1)

    failed = await core.job(job)
    assert (failed.status, failed.finished_by) == (JobStatus.FAILED, FinishedBy.DISPATCH)
    assert failed.error_message == MSG_UNAVAILABLE
    assert await core.ledger_kinds() == ["grant", "charge", "refund"]
    assert await account_in_flight(core) == 0


async def test_a_recovery_that_lost_its_claim_never_fails_the_next_start(core: Core) -> None:
    """A recovery acting on an old snapshot (its last try) while the job was meanwhile put back
    and started again under a new claim: the new start keeps the job."""
    job = await core.submit()
    for _ in range(MAX_START_FAILURES - 1):
        claimed = await core.store.claim_slot(await core.job(job), ACCOUNT)
        assert claimed is not None
        assert await core.store.requeue(claimed, retry_at=core.clock(), reason="x", failed=True)
    stale = await core.store.claim_slot(await core.job(job), ACCOUNT)
    assert stale is not None
    assert await core.store.requeue(stale, retry_at=core.clock(), reason="stop")
    current = await core.store.claim_slot(await core.job(job), ACCOUNT)
    assert current is not None

    await core.queue.recover_stuck_start(stale)

    after = await core.job(job)
    assert (after.status, after.claim_id) == (JobStatus.STARTING, current.claim_id)
    assert await core.ledger_kinds() == ["grant", "charge"]
