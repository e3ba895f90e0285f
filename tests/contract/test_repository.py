"""The repository contract, run on the in-memory store, real SQLite and a real PostgreSQL
server the suite starts itself: the guarded finish under concurrency, exactly one refund, the
account cap, claims, the shared check schedule, leases. Whatever the services may rely on is
asserted here, so the in-memory twin their unit tests use cannot drift from the SQL store."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from arcano_tools.domain.errors import InsufficientCredits
from arcano_tools.domain.records import (
    ActiveSummary,
    FinishRequest,
    NewJob,
    WebhookRecord,
    utcnow,
)
from arcano_tools.domain.repository import Repository
from arcano_tools.domain.status import FinishedBy, JobStatus, WebhookOutcome
from tests.support.stores import force_in_flight

TABLE = "upscaler_jobs"


async def new_job(store: Repository, user: str = "u1", cost: int = 5) -> str:
    await store.ensure_user(user, credits=100)
    job_id = str(uuid.uuid4())
    await store.create_job(
        NewJob(id=job_id, table=TABLE, user_id=user, cost=cost, inputs={"scale": 2})
    )
    return job_id


async def running_jobs(store: Repository, count: int) -> list[str]:
    """``count`` jobs started on RunningHub (slot claimed, task id saved), oldest first."""
    ids = []
    for _ in range(count):
        job_id = await new_job(store, cost=1)
        job = await store.get_job(TABLE, job_id)
        assert job is not None
        claimed = await store.claim_slot(job, "acc")
        assert claimed is not None
        await store.save_task_id(TABLE, job_id, f"T-{job_id}", claim_id=claimed.claim_id)
        ids.append(job_id)
    return ids


async def test_concurrent_finishes_make_exactly_one_transition_and_one_refund(
    store: Repository,
) -> None:
    job_id = await new_job(store)
    requests = [
        FinishRequest(JobStatus.FAILED, FinishedBy.WEBHOOK, error_message="boom"),
        FinishRequest(JobStatus.FAILED, FinishedBy.WATCHDOG, error_message="boom"),
        FinishRequest(JobStatus.CANCELLED, FinishedBy.USER),
        FinishRequest(JobStatus.COMPLETED, FinishedBy.SERVER_WATCHDOG, output_url="https://x/y"),
    ] * 3
    results = await asyncio.gather(*(store.finish(TABLE, job_id, r) for r in requests))

    winners = [r for r in results if r is not None and r.changed]
    assert len(winners) == 1
    final = await store.get_job(TABLE, job_id)
    assert final is not None
    assert final.status is winners[0].job.status
    user = await store.get_user("u1")
    assert user is not None
    refunds = [e for e in await store.ledger("u1") if e["kind"] == "refund"]
    if final.status is JobStatus.COMPLETED:
        assert refunds == []
        assert user.credits == 95
    else:
        assert len(refunds) == 1
        assert user.credits == 100


async def test_a_terminal_job_never_changes_again(store: Repository) -> None:
    job_id = await new_job(store)
    first = await store.finish(
        TABLE,
        job_id,
        FinishRequest(JobStatus.COMPLETED, FinishedBy.WEBHOOK, output_url="https://a"),
    )
    second = await store.finish(
        TABLE, job_id, FinishRequest(JobStatus.FAILED, FinishedBy.TIMEOUT, error_message="late")
    )
    assert first is not None
    assert first.changed
    assert second is not None
    assert not second.changed
    assert second.job.status is JobStatus.COMPLETED
    assert second.job.output_url == "https://a"
    assert second.job.error_message is None


async def test_credits_are_never_overdrawn_by_concurrent_submits(store: Repository) -> None:
    await store.ensure_user("poor", credits=12)

    async def submit() -> bool:
        try:
            await store.create_job(
                NewJob(id=str(uuid.uuid4()), table=TABLE, user_id="poor", cost=5, inputs={})
            )
        except InsufficientCredits:
            return False
        return True

    outcomes = await asyncio.gather(*(submit() for _ in range(8)))
    assert outcomes.count(True) == 2
    user = await store.get_user("poor")
    assert user is not None
    assert user.credits == 2


async def test_concurrent_claims_never_exceed_max_concurrent(store: Repository) -> None:
    jobs = [await new_job(store, cost=1) for _ in range(10)]
    queued = [await store.get_job(TABLE, j) for j in jobs]

    claims = await asyncio.gather(*(store.claim_slot(j, "acc") for j in queued if j is not None))

    assert sum(c is not None for c in claims) == 2
    account = await store.get_account("acc")
    assert account is not None
    assert account.in_flight == 2
    # finishing one frees exactly one slot
    first = next(c for c in claims if c is not None)
    await store.finish(
        TABLE, first.id, FinishRequest(JobStatus.COMPLETED, FinishedBy.WEBHOOK, output_url="u")
    )
    account = await store.get_account("acc")
    assert account is not None
    assert account.in_flight == 1


async def test_two_claims_of_one_job_take_it_once_and_one_slot(store: Repository) -> None:
    """The loser took a slot before it found the job gone: it gives it back (SQL store: in the
    same group-commit transaction as the winner's claim)."""
    job = await store.get_job(TABLE, await new_job(store))
    assert job is not None

    claims = await asyncio.gather(store.claim_slot(job, "acc"), store.claim_slot(job, "acc"))

    assert sum(c is not None for c in claims) == 1
    account = await store.get_account("acc")
    assert account is not None
    assert account.in_flight == 1


async def test_requeue_gives_the_slot_back_and_delays_the_job(store: Repository) -> None:
    job_id = await new_job(store)
    job = await store.get_job(TABLE, job_id)
    assert job is not None
    claimed = await store.claim_slot(job, "acc")
    assert claimed is not None
    assert claimed.status is JobStatus.STARTING
    retry_at = utcnow() + timedelta(seconds=60)

    assert await store.requeue(claimed, retry_at=retry_at, reason="busy")

    account = await store.get_account("acc")
    assert account is not None
    assert account.in_flight == 0
    assert [j.id for j in await store.queued_jobs_due(utcnow())] == []
    assert [j.id for j in await store.queued_jobs_due(retry_at + timedelta(seconds=1))] == [job_id]


async def test_slot_counts_are_recounted_from_the_jobs_holding_them(store: Repository) -> None:
    job = await store.get_job(TABLE, await new_job(store))
    assert job is not None
    assert await store.claim_slot(job, "acc") is not None
    assert await store.reconcile_slots() == []  # consistent: nothing to fix

    await force_in_flight(store, "acc", 2)  # drift from outside (a manual edit)
    assert await store.accounts_with_free_slots() == []

    assert await store.reconcile_slots() == [("acc", 2, 1)]
    account = await store.get_account("acc")
    assert account is not None
    assert account.in_flight == 1
    assert [a.name for a in await store.accounts_with_free_slots()] == ["acc"]
    assert await store.reconcile_slots() == []


async def test_only_failed_starts_count_towards_giving_up(store: Repository) -> None:
    """A busy RunningHub (421) requeues without using up the job's failed-start budget."""
    job_id = await new_job(store)
    outcomes = [False, False, False, True, False]  # four 421s and one network error
    for failed in outcomes:
        job = await store.get_job(TABLE, job_id)
        assert job is not None
        claimed = await store.claim_slot(job, "acc")
        assert claimed is not None
        assert await store.requeue(claimed, retry_at=utcnow(), reason="x", failed=failed)

    job = await store.get_job(TABLE, job_id)
    assert job is not None
    assert (job.attempts, job.start_failures) == (5, 1)


async def test_an_early_finish_is_not_undone_by_saving_the_task_id(store: Repository) -> None:
    job_id = await new_job(store)
    job = await store.get_job(TABLE, job_id)
    assert job is not None
    claimed = await store.claim_slot(job, "acc")
    assert claimed is not None
    await store.save_task_id(TABLE, job_id, "T1")  # the early webhook stores it…
    await store.finish(
        TABLE, job_id, FinishRequest(JobStatus.COMPLETED, FinishedBy.WEBHOOK, output_url="u")
    )

    after = await store.save_task_id(TABLE, job_id, "T1")  # …then the create call returns

    assert after is not None
    assert after.status is JobStatus.COMPLETED
    assert after.task_id == "T1"
    other = await store.save_task_id(TABLE, job_id, "T2")
    assert other is not None
    assert other.task_id == "T1"  # a different id never overwrites


async def test_only_one_caller_reserves_a_check_per_interval(store: Repository) -> None:
    job_id = await new_job(store)
    now = utcnow()
    later = now + timedelta(seconds=15)
    results = await asyncio.gather(
        *(store.reserve_check(TABLE, job_id, now=now, next_check_at=later) for _ in range(6))
    )
    assert results.count(True) == 1
    assert await store.reserve_check(
        TABLE, job_id, now=later, next_check_at=later + timedelta(seconds=15)
    )


async def test_a_user_is_granted_starting_credits_once(store: Repository) -> None:
    await store.ensure_user("new", credits=100)
    await store.ensure_user("new", credits=100)
    assert [e["kind"] for e in await store.ledger("new")] == ["grant"]
    user = await store.get_user("new")
    assert user is not None
    assert user.credits == 100


async def test_a_claim_sets_the_learned_first_check_and_durations_are_read_back(
    store: Repository,
) -> None:
    job_id = await new_job(store)
    job = await store.get_job(TABLE, job_id)
    assert job is not None
    claimed = await store.claim_slot(job, "acc", first_check_in=timedelta(seconds=70))
    assert claimed is not None
    assert claimed.started_at is not None
    assert claimed.next_check_at is not None
    assert claimed.next_check_at - claimed.started_at == timedelta(seconds=70)
    # not due yet: no caller may ask RunningHub before then
    assert not await store.reserve_check(
        TABLE, job_id, now=utcnow(), next_check_at=utcnow() + timedelta(seconds=15)
    )
    await store.finish(
        TABLE, job_id, FinishRequest(JobStatus.COMPLETED, FinishedBy.WEBHOOK, output_url="u")
    )
    (duration,) = await store.recent_durations(TABLE)
    assert 0 <= duration < 60


async def test_a_start_that_lost_its_claim_can_neither_requeue_nor_save(store: Repository) -> None:
    """Stuck-start recovery requeued the job and it was dispatched again; the first start
    then answers late (a 421, or a task id): it must not touch the new claim or its slot."""
    await store.upsert_account("other", "o" * 32, max_concurrent=1)
    job_id = await new_job(store)
    queued = await store.get_job(TABLE, job_id)
    assert queued is not None
    first = await store.claim_slot(queued, "acc")
    assert first is not None
    assert await store.requeue(first, retry_at=utcnow(), reason="stuck")  # the watchdog
    requeued = await store.get_job(TABLE, job_id)
    assert requeued is not None
    second = await store.claim_slot(requeued, "other")
    assert second is not None
    assert second.claim_id != first.claim_id

    assert not await store.requeue(first, retry_at=utcnow(), reason="late 421")
    late = await store.save_task_id(TABLE, job_id, "T-first", claim_id=first.claim_id)

    assert late is not None
    assert late.task_id is None  # not saved: the first start must cancel its duplicate task
    assert late.status is JobStatus.STARTING
    acc, other = await store.get_account("acc"), await store.get_account("other")
    assert acc is not None
    assert other is not None
    assert (acc.in_flight, other.in_flight) == (0, 1)
    saved = await store.save_task_id(TABLE, job_id, "T-second", claim_id=second.claim_id)
    assert saved is not None
    assert saved.task_id == "T-second"
    assert saved.status is JobStatus.RUNNING


async def test_the_server_watchdog_leases_running_jobs_not_a_queue_backlog(
    store: Repository,
) -> None:
    backlog = [await new_job(store, cost=1) for _ in range(6)]
    running_id = await new_job(store, cost=1)
    running = await store.get_job(TABLE, running_id)
    assert running is not None
    claimed = await store.claim_slot(running, "acc")
    assert claimed is not None
    await store.save_task_id(TABLE, running_id, "T1", claim_id=claimed.claim_id)
    later = utcnow() + timedelta(seconds=60)

    leased = await store.lease_due_jobs(
        owner="w1",
        now=later,
        lease_for=timedelta(seconds=30),
        started_before=later,
        deadline_before=later - timedelta(minutes=12),
        limit=3,
    )

    assert [j.id for j in leased] == [running_id]  # queued jobs RunningHub never saw wait
    past_deadline = later + timedelta(minutes=13)
    overdue = await store.lease_due_jobs(
        owner="w2",
        now=past_deadline,
        lease_for=timedelta(seconds=30),
        started_before=past_deadline,
        deadline_before=past_deadline - timedelta(minutes=12),
        limit=10,
    )
    assert set(backlog) <= {j.id for j in overdue}  # …until their deadline needs enforcing


async def test_a_start_in_flight_is_the_recovery_s_not_the_check_s_before_its_deadline(
    store: Repository,
) -> None:
    """A job ``starting`` with no task id has nothing to ask RunningHub about: a check lease
    on it would only hide it from the stalled-start recovery (a watchdog whose checks queue
    behind a slow RunningHub would hold it forever, and its slot with it)."""
    job = await store.get_job(TABLE, await new_job(store))
    assert job is not None
    assert await store.claim_slot(job, "acc") is not None  # starting, the create call unsent
    later = utcnow() + timedelta(seconds=60)
    lease = {"lease_for": timedelta(seconds=30), "started_before": later, "limit": 10}

    before = await store.lease_due_jobs(
        owner="w", now=later, deadline_before=later - timedelta(minutes=12), **lease
    )
    after = await store.lease_due_jobs(owner="w", now=later, deadline_before=later, **lease)

    assert before == []
    assert [j.id for j in after] == [job.id]  # past its deadline: the timeout is due


async def test_jobs_past_their_deadline_are_leased_first_whatever_their_schedule(
    store: Repository,
) -> None:
    """The deadline is enforced on time: an overdue job is leased before younger due ones,
    even though it was checked a moment ago (the sync then ends it without a call) and
    another owner holds its lease."""
    jobs = await running_jobs(store, 2)
    old = jobs[0]
    now = utcnow() + timedelta(minutes=12, seconds=1)
    deadline_before = now - timedelta(minutes=12)
    old_job = await store.get_job(TABLE, old)
    assert old_job is not None
    assert old_job.deadline_from <= deadline_before
    assert await store.reserve_check(TABLE, old, now=now, next_check_at=now + timedelta(seconds=15))
    args = {
        "now": now,
        "lease_for": timedelta(seconds=30),
        "started_before": now,
        "deadline_before": old_job.deadline_from,  # the older one only is overdue
    }

    first = await store.lease_due_jobs(owner="w1", limit=1, **args)  # type: ignore[arg-type]
    again = await store.lease_due_jobs(owner="w2", limit=2, **args)  # type: ignore[arg-type]

    assert [j.id for j in first] == [old]
    assert old in {j.id for j in again}  # overdue: w1's lease does not hold it back

    # RunningHub succeeded and the result is being copied: no deadline, nothing to lease
    await store.release_lease(TABLE, old, "w1")
    await store.release_lease(TABLE, old, "w2")
    began = await store.begin_output_copy(
        TABLE,
        old,
        upstream_url="https://rh-images.xiaoyaoyou.com/x.png",
        reported_by=FinishedBy.WEBHOOK,
        due_at=now + timedelta(minutes=1),
    )
    assert began is not None
    assert began.changed
    saving = await store.lease_due_jobs(owner="w3", limit=2, **args)  # type: ignore[arg-type]
    assert old not in {j.id for j in saving}


async def test_start_up_configuration_re_enables_a_disabled_account(store: Repository) -> None:
    await store.disable_account("acc", "RunningHub code 802")
    assert await store.accounts_with_free_slots() == []
    await store.upsert_account("acc", "n" * 32, max_concurrent=2)  # the operator fixed the key
    (account,) = await store.accounts_with_free_slots()
    assert account.name == "acc"
    assert account.enabled
    assert account.disabled_reason is None


async def test_an_account_disabled_is_not_enabled_even_when_full(store: Repository) -> None:
    assert await store.has_enabled_account()
    await store.upsert_account("acc", "n" * 32, max_concurrent=0)  # enabled, but full
    assert await store.accounts_with_free_slots() == []
    assert await store.has_enabled_account()
    await store.disable_account("acc", "RunningHub code 802")
    assert not await store.has_enabled_account()


async def test_old_webhook_events_and_upstream_errors_are_pruned(store: Repository) -> None:
    await store.record_webhook(WebhookRecord(utcnow(), WebhookOutcome.REJECTED, detail="forged"))
    await store.record_upstream_error("outputs", "http_502")
    assert await store.prune_events(utcnow() - timedelta(days=7)) == 0  # recent: kept
    assert await store.webhook_counts() == {"rejected": 1}

    assert await store.prune_events(utcnow() + timedelta(seconds=1)) == 2

    assert await store.webhook_counts() == {}
    assert await store.upstream_error_counts() == []


async def test_a_finish_of_a_job_that_does_not_exist_returns_nothing(store: Repository) -> None:
    missing = str(uuid.uuid4())
    assert (
        await store.finish(TABLE, missing, FinishRequest(JobStatus.FAILED, FinishedBy.USER)) is None
    )
    assert await store.get_job(TABLE, missing) is None


async def test_a_finish_needs_a_terminal_status(store: Repository) -> None:
    job_id = await new_job(store)
    with pytest.raises(ValueError):
        await store.finish(TABLE, job_id, FinishRequest(JobStatus.RUNNING, FinishedBy.USER))
    job = await store.get_job(TABLE, job_id)
    assert job is not None
    assert job.status is JobStatus.QUEUED


async def test_a_completed_job_is_charged_and_never_refunded(store: Repository) -> None:
    job_id = await new_job(store, cost=7)
    result = await store.finish(
        TABLE, job_id, FinishRequest(JobStatus.COMPLETED, FinishedBy.WEBHOOK, output_url="u")
    )
    assert result is not None
    assert (result.changed, result.refunded) == (True, False)
    assert [(e["kind"], e["amount"]) for e in await store.ledger("u1")] == [
        ("grant", 100),
        ("charge", -7),
    ]


async def test_a_cancel_refunds_once_and_frees_the_slot(store: Repository) -> None:
    job = await store.get_job(TABLE, await new_job(store, cost=7))
    assert job is not None
    claimed = await store.claim_slot(job, "acc")
    assert claimed is not None
    cancel = FinishRequest(JobStatus.CANCELLED, FinishedBy.USER, error_message="x")

    first = await store.finish(TABLE, job.id, cancel)
    again = await store.finish(TABLE, job.id, cancel)

    assert first is not None
    assert again is not None
    assert (first.changed, first.refunded) == (True, True)
    assert (again.changed, again.refunded) == (False, False)
    assert first.job.holds_slot is False
    account = await store.get_account("acc")
    assert account is not None
    assert account.in_flight == 0
    user = await store.get_user("u1")
    assert user is not None
    assert user.credits == 100
    kinds = [e["kind"] for e in await store.ledger("u1")]
    assert kinds == ["grant", "charge", "refund"]


async def test_the_active_job_of_a_user_is_found_among_many_finished_ones(
    store: Repository,
) -> None:
    active = await new_job(store, cost=1)
    for _ in range(25):  # more finished jobs than a page of recent jobs
        done = await new_job(store, cost=1)
        await store.finish(TABLE, done, FinishRequest(JobStatus.FAILED, FinishedBy.USER))
    await new_job(store, user="someone-else", cost=1)

    found = await store.active_job_of_user("u1", TABLE)

    assert found is not None
    assert found.id == active
    assert await store.active_job_of_user("u1", "pose_changer_jobs") is None
    assert await store.active_job_of_user("nobody", TABLE) is None


async def test_the_queue_position_counts_queued_jobs_of_every_tool(store: Repository) -> None:
    await store.ensure_user("u1", credits=100)
    ids = []
    for table in ("upscaler_jobs", "pose_changer_jobs", "upscaler_jobs"):
        job_id = str(uuid.uuid4())
        await store.create_job(NewJob(id=job_id, table=table, user_id="u1", cost=1))
        ids.append((table, job_id))
        await asyncio.sleep(0.002)  # distinct creation times
    jobs = [await store.get_job(t, j) for t, j in ids]
    assert all(j is not None for j in jobs)

    positions = [await store.queue_position(j) for j in jobs if j is not None]

    assert positions == [1, 2, 3]
    first = jobs[0]
    assert first is not None
    claimed = await store.claim_slot(first, "acc")
    assert claimed is not None
    assert await store.queue_position(claimed) == 0  # not queued any more
    last = jobs[2]
    assert last is not None
    assert await store.queue_position(last) == 2


async def test_a_lease_is_exclusive_until_released_or_expired(store: Repository) -> None:
    job = await store.get_job(TABLE, await new_job(store))
    assert job is not None
    claimed = await store.claim_slot(job, "acc")
    assert claimed is not None
    await store.save_task_id(TABLE, job.id, "T1", claim_id=claimed.claim_id)
    now = utcnow() + timedelta(seconds=60)
    lease = {
        "lease_for": timedelta(seconds=30),
        "started_before": now,
        "deadline_before": now - timedelta(minutes=12),
        "limit": 10,
    }

    assert [j.id for j in await store.lease_due_jobs(owner="a", now=now, **lease)] == [job.id]
    assert await store.lease_due_jobs(owner="b", now=now, **lease) == []
    await store.release_lease(TABLE, job.id, "b")  # not b's lease: nothing happens
    assert await store.lease_due_jobs(owner="b", now=now, **lease) == []
    expired = now + timedelta(seconds=31)
    assert [j.id for j in await store.lease_due_jobs(owner="b", now=expired, **lease)] == [job.id]
    await store.release_lease(TABLE, job.id, "b")
    assert [j.id for j in await store.lease_due_jobs(owner="c", now=expired, **lease)] == [job.id]


async def test_a_kept_webhook_event_is_taken_exactly_once(store: Repository) -> None:
    await store.record_webhook(
        WebhookRecord(utcnow(), WebhookOutcome.UNMATCHED, task_id="T9", body="{}")
    )
    await store.record_webhook(WebhookRecord(utcnow(), WebhookOutcome.REJECTED, task_id="T9"))

    first = await store.take_unmatched_webhooks("T9")
    second = await store.take_unmatched_webhooks("T9")

    assert [e["outcome"] for e in first] == ["unmatched"]
    assert second == []
    assert await store.webhook_counts() == {"unmatched": 1, "rejected": 1}


async def test_a_submit_without_enough_credits_writes_nothing(store: Repository) -> None:
    await store.ensure_user("poor", credits=3)
    job_id = str(uuid.uuid4())
    with pytest.raises(InsufficientCredits):
        await store.create_job(NewJob(id=job_id, table=TABLE, user_id="poor", cost=5))
    assert await store.get_job(TABLE, job_id) is None
    assert [e["kind"] for e in await store.ledger("poor")] == ["grant"]
    assert await store.list_user_jobs("poor") == []


async def test_a_claim_takes_a_start_lease_that_only_its_own_claim_renews(
    store: Repository,
) -> None:
    job = await store.get_job(TABLE, await new_job(store))
    assert job is not None
    first = await store.claim_slot(job, "acc", start_lease_for=timedelta(seconds=6))
    assert first is not None
    assert first.started_at is not None
    assert first.start_lease_until == first.started_at + timedelta(seconds=6)
    later = utcnow() + timedelta(seconds=30)

    assert await store.renew_start_lease(first, until=later)
    renewed = await store.get_job(TABLE, job.id)
    assert renewed is not None
    assert renewed.start_lease_until == later

    assert await store.requeue(first, retry_at=utcnow(), reason="fila")
    requeued = await store.get_job(TABLE, job.id)
    assert requeued is not None
    assert (requeued.start_lease_until, requeued.error_message) == (None, "fila")
    assert not await store.renew_start_lease(first, until=later)  # back in the queue
    second = await store.claim_slot(requeued, "acc")
    assert second is not None
    assert second.error_message is None  # the queue's message no longer holds
    assert not await store.renew_start_lease(first, until=later)  # another claim's job
    await store.save_task_id(TABLE, job.id, "T1", claim_id=second.claim_id)
    assert not await store.renew_start_lease(second, until=later)  # RunningHub has it


async def test_only_starts_whose_process_is_gone_are_leased_for_recovery(
    store: Repository,
) -> None:
    now = utcnow() + timedelta(seconds=60)

    async def claimed(lease: timedelta | None, task_id: str | None = None) -> str:
        job = await store.get_job(TABLE, await new_job(store, cost=1))
        assert job is not None
        claim = await store.claim_slot(job, "big", start_lease_for=lease)
        assert claim is not None
        if task_id:
            await store.save_task_id(TABLE, job.id, task_id, claim_id=claim.claim_id)
        return job.id

    await store.upsert_account("big", "b" * 32, max_concurrent=10)
    expired = await claimed(timedelta(seconds=6))
    alive = await claimed(timedelta(seconds=120))
    legacy = await claimed(None)  # started by a version without start leases
    await claimed(timedelta(seconds=6), task_id="T-running")  # RunningHub has it: running
    await new_job(store, cost=1)  # queued
    lease = {"lease_for": timedelta(minutes=10), "limit": 10}

    recent = await store.lease_stalled_starts(
        owner="a", now=now, legacy_before=now - timedelta(minutes=5), **lease
    )
    assert [j.id for j in recent] == [expired]
    assert recent[0].status is JobStatus.STARTING
    assert (
        await store.lease_stalled_starts(  # leased: one process recovers it at a time
            owner="b", now=now, legacy_before=now - timedelta(minutes=5), **lease
        )
        == []
    )
    old = await store.lease_stalled_starts(owner="c", now=now, legacy_before=now, **lease)
    assert [j.id for j in old] == [legacy]
    much_later = now + timedelta(minutes=3)
    late = await store.lease_stalled_starts(
        owner="d", now=much_later, legacy_before=now - timedelta(minutes=5), **lease
    )
    assert [j.id for j in late] == [alive]  # a and c still hold the others' leases


async def test_a_late_create_answer_never_lands_on_a_job_back_in_the_queue(
    store: Repository,
) -> None:
    """Recovery put the job back (its claim id unchanged until the next claim); the stalled
    start's create call then answers: nothing is saved, the caller cancels its task."""
    job = await store.get_job(TABLE, await new_job(store))
    assert job is not None
    claimed = await store.claim_slot(job, "acc")
    assert claimed is not None
    assert await store.requeue(claimed, retry_at=utcnow(), reason="fila", failed=True)

    late = await store.save_task_id(TABLE, job.id, "T-late", claim_id=claimed.claim_id)

    assert late is not None
    assert (late.status, late.task_id) == (JobStatus.QUEUED, None)


async def test_kept_webhook_events_are_counted_until_applied(store: Repository) -> None:
    assert await store.count_unmatched_webhooks() == 0
    for task_id in ("T1", "T2", "T3"):
        await store.record_webhook(
            WebhookRecord(utcnow(), WebhookOutcome.UNMATCHED, task_id=task_id, body="{}")
        )
    await store.record_webhook(WebhookRecord(utcnow(), WebhookOutcome.REJECTED, task_id="T4"))
    await store.record_webhook(
        WebhookRecord(utcnow(), WebhookOutcome.UNMATCHED, task_id="T5", applied=True)
    )
    assert await store.count_unmatched_webhooks() == 3

    await store.take_unmatched_webhooks("T2")

    assert await store.count_unmatched_webhooks() == 2
    assert await store.prune_events(utcnow() + timedelta(seconds=1)) == 5
    assert await store.count_unmatched_webhooks() == 0


async def test_webhook_events_written_in_bulk_are_counted_like_the_others(
    store: Repository,
) -> None:
    now = utcnow()
    await store.record_webhook(
        WebhookRecord(utcnow(), WebhookOutcome.ACCEPTED, task_id="T0", applied=True)
    )
    records = [
        WebhookRecord(now, WebhookOutcome.DUPLICATE, TABLE, f"job-{n}", f"T{n}") for n in range(3)
    ]

    await store.record_webhooks(records)
    await store.record_webhooks([])

    assert await store.webhook_counts() == {"accepted": 1, "duplicate": 3}
    assert await store.prune_events(now + timedelta(seconds=1)) == 4


async def test_a_lease_never_holds_back_a_job_past_its_deadline(store: Repository) -> None:
    """A process SIGKILLed while checking a job leaves its lease behind; past the deadline
    any process must still see the job, or the dead lease would delay the timeout."""
    job = await store.get_job(TABLE, await new_job(store))
    assert job is not None
    claimed = await store.claim_slot(job, "acc")
    assert claimed is not None
    await store.save_task_id(TABLE, job.id, "T1", claim_id=claimed.claim_id)
    now = utcnow() + timedelta(seconds=60)
    lease = {"lease_for": timedelta(minutes=10), "started_before": now, "limit": 10}
    early = now - timedelta(minutes=12)
    taken = await store.lease_due_jobs(owner="dead", now=now, deadline_before=early, **lease)
    assert [j.id for j in taken] == [job.id]

    within = await store.lease_due_jobs(owner="alive", now=now, deadline_before=early, **lease)
    overdue = await store.lease_due_jobs(owner="alive", now=now, deadline_before=now, **lease)

    assert within == []  # still the dead process's to check, before the deadline
    assert [j.id for j in overdue] == [job.id]


async def test_an_overdue_job_is_not_leased_again_by_the_owner_checking_it(
    store: Repository,
) -> None:
    """A watchdog does not wait for its slow checks before leasing more: the overdue job it
    is already checking must not come back to it (that would check it twice, and fill every
    batch with jobs already in hand), while another process may still take it over."""
    job = await store.get_job(TABLE, await new_job(store))
    assert job is not None
    claimed = await store.claim_slot(job, "acc")
    assert claimed is not None
    await store.save_task_id(TABLE, job.id, "T1", claim_id=claimed.claim_id)
    now = utcnow() + timedelta(seconds=60)
    lease = {"lease_for": timedelta(minutes=10), "started_before": now, "limit": 10}

    first = await store.lease_due_jobs(owner="w1", now=now, deadline_before=now, **lease)
    again = await store.lease_due_jobs(owner="w1", now=now, deadline_before=now, **lease)
    other = await store.lease_due_jobs(owner="w2", now=now, deadline_before=now, **lease)

    assert [j.id for j in first] == [job.id]
    assert again == []
    assert [j.id for j in other] == [job.id]


async def test_overdue_only_leases_the_jobs_past_their_deadline_alone(store: Repository) -> None:
    """A watchdog with no room for more checks still takes the overdue ones."""
    ids = [await new_job(store)]
    await asyncio.sleep(0.01)  # created strictly later
    ids.append(await new_job(store))
    for n, job_id in enumerate(ids):
        job = await store.get_job(TABLE, job_id)
        assert job is not None
        claimed = await store.claim_slot(job, "acc")
        assert claimed is not None
        await store.save_task_id(TABLE, job_id, f"T{n}", claim_id=claimed.claim_id)
    old = await store.get_job(TABLE, ids[0])
    assert old is not None
    now = utcnow() + timedelta(seconds=60)
    lease = {"lease_for": timedelta(minutes=10), "started_before": now, "limit": 10}
    # only the first job was created by then: it alone is past its deadline
    deadline_before = old.created_at

    only = await store.lease_due_jobs(
        owner="w", now=now, deadline_before=deadline_before, overdue_only=True, **lease
    )
    rest = await store.lease_due_jobs(owner="w", now=now, deadline_before=deadline_before, **lease)

    assert [j.id for j in only] == [ids[0]]
    assert [j.id for j in rest] == [ids[1]]


#: Jobs per caller in the repeated-life test: well past psycopg's prepare threshold (5
#: executions of one statement on one connection), so a driver that prepares on the server
#: does so here — behind a pooler in transaction mode that fails on the next transaction that
#: lands on another server connection.
REPEATED_LIVES = 8
CALLERS = 4


async def test_many_job_lives_at_once_reuse_each_statement_many_times(store: Repository) -> None:
    """Submit, claim and finish, over and over from concurrent callers: every statement of the
    hot path runs many times on the same pooled connections, and the books still balance."""

    async def lives(caller: int) -> list[JobStatus]:
        user = f"repeat-{caller}"
        await store.ensure_user(user, credits=100)
        ends = []
        for n in range(REPEATED_LIVES):
            job = await store.create_job(
                NewJob(id=str(uuid.uuid4()), table=TABLE, user_id=user, cost=5, inputs={"n": n})
            )
            claimed = None
            while claimed is None:  # two slots for four callers: wait for one
                claimed = await store.claim_slot(job, "acc")
                if claimed is None:
                    await asyncio.sleep(0.01)
                    job = await store.get_job(TABLE, job.id) or job
            status = JobStatus.COMPLETED if n % 2 == 0 else JobStatus.FAILED
            done = await store.finish(
                TABLE, job.id, FinishRequest(status, FinishedBy.WEBHOOK, output_url="https://x/y")
            )
            assert done is not None
            assert done.changed
            ends.append(done.job.status)
        return ends

    results = await asyncio.gather(*(lives(caller) for caller in range(CALLERS)))

    for caller, ends in enumerate(results):
        assert ends == [
            JobStatus.COMPLETED if n % 2 == 0 else JobStatus.FAILED for n in range(REPEATED_LIVES)
        ]
        user = await store.get_user(f"repeat-{caller}")
        assert user is not None
        # every job charged 5, the failed half refunded
        assert user.credits == 100 - 5 * (REPEATED_LIVES // 2)
    account = await store.get_account("acc")
    assert account is not None
    assert account.in_flight == 0


async def test_a_lease_reserves_the_due_checks_and_their_answer_ends_it(store: Repository) -> None:
    """The server watchdog's check is one lease (which reserves it, as ``reserve_check``
    would) and one write (RunningHub's answer, which ends the lease)."""
    due, checked = await running_jobs(store, 2)
    now = utcnow() + timedelta(minutes=13)  # both past their deadline: both are leased
    checked_until = now + timedelta(seconds=5)
    assert await store.reserve_check(TABLE, checked, now=now, next_check_at=checked_until)
    reserve_until = now + timedelta(seconds=15)
    args = {"lease_for": timedelta(seconds=30), "started_before": now, "limit": 5}

    leased = await store.lease_due_jobs(
        owner="w1",
        now=now,
        deadline_before=now - timedelta(minutes=12),
        reserve_until=reserve_until,
        **args,  # type: ignore[arg-type]
    )

    by_id = {j.id: j for j in leased}
    assert set(by_id) == {due, checked}
    assert by_id[due].next_check_at == reserve_until  # due: reserved with its lease
    assert by_id[checked].next_check_at == checked_until  # checked a moment ago: not again
    assert not await store.reserve_check(TABLE, due, now=now, next_check_at=reserve_until)
    after = now + timedelta(seconds=1)
    later_args = {"now": after, "deadline_before": after - timedelta(hours=1), **args}
    assert await store.lease_due_jobs(owner="w2", **later_args) == []  # leased, not due

    await store.record_check_result(TABLE, due, 804, "APIKEY_TASK_IS_RUNNING", lease_owner="w2")
    await store.record_check_result(TABLE, checked, 804, "still", lease_owner="w1")

    kept = await store.get_job(TABLE, due)
    assert kept is not None
    assert (kept.last_upstream_code, kept.last_upstream_msg) == (804, "APIKEY_TASK_IS_RUNNING")
    due_again = reserve_until + timedelta(seconds=1)
    again_args = {"now": due_again, "deadline_before": due_again - timedelta(hours=1), **args}
    # w2 held no lease on ``due``: w1's still holds it; ``checked``'s was ended by its answer
    assert [j.id for j in await store.lease_due_jobs(owner="w3", **again_args)] == [checked]


async def test_a_check_result_may_move_the_next_check_and_otherwise_keeps_it(
    store: Repository,
) -> None:
    """A job in its tool's tail: RunningHub's "still running" and a later next check are one
    write; any other answer leaves the reserved check where it is."""
    job_id = await new_job(store)
    job = await store.get_job(TABLE, job_id)
    assert job is not None
    claimed = await store.claim_slot(job, "acc", first_check_in=timedelta(seconds=30))
    assert claimed is not None
    assert claimed.next_check_at is not None
    reserved = claimed.next_check_at

    await store.record_check_result(TABLE, job_id, 804, "running")
    kept = await store.get_job(TABLE, job_id)
    assert kept is not None
    assert kept.next_check_at == reserved

    later = reserved + timedelta(minutes=1)
    await store.record_check_result(TABLE, job_id, 804, "running", next_check_at=later)
    moved = await store.get_job(TABLE, job_id)
    assert moved is not None
    assert (moved.next_check_at, moved.last_upstream_code) == (later, 804)

    # a webhook ended the job between RunningHub's answer and its write: nothing moves
    await store.finish(
        TABLE, job_id, FinishRequest(JobStatus.COMPLETED, FinishedBy.WEBHOOK, output_url="u")
    )
    finished = await store.get_job(TABLE, job_id)
    assert finished is not None
    await store.record_check_result(
        TABLE, job_id, 804, "running", next_check_at=later + timedelta(minutes=1)
    )
    ended = await store.get_job(TABLE, job_id)
    assert ended is not None
    assert ended.next_check_at == finished.next_check_at  # as the finish left it


async def test_the_active_summary_counts_every_tools_active_jobs_and_the_oldest(
    store: Repository,
) -> None:
    """``/metrics``' gauges, counted by the database (it read every active job before)."""
    assert await store.active_summary() == ActiveSummary(0, None)
    await store.ensure_user("u2", credits=100)
    first = str(uuid.uuid4())  # the oldest, in another tool's table than the upscaler's
    await store.create_job(
        NewJob(id=first, table="pose_changer_jobs", user_id="u2", cost=1, inputs={})
    )
    await asyncio.sleep(0.01)  # a later creation time, whatever the clock's resolution
    await new_job(store, cost=1)
    ended = await new_job(store, cost=1)
    await store.finish(TABLE, ended, FinishRequest(JobStatus.CANCELLED, FinishedBy.USER))

    summary = await store.active_summary()

    oldest = await store.get_job("pose_changer_jobs", first)
    assert oldest is not None
    assert summary == ActiveSummary(2, oldest.created_at)


def webhook_failure(task_id: str) -> FinishRequest:
    """A failure webhook's finish, naming its task (no read of the job before it)."""
    return FinishRequest(JobStatus.FAILED, FinishedBy.WEBHOOK, error_message="x", task_id=task_id)


async def test_a_finish_naming_a_task_ends_only_the_job_running_that_task(
    store: Repository,
) -> None:
    """A webhook's finish, tried before any read of its job (``FinishRequest.task_id``): it
    ends the job only if the job runs that task; otherwise it changes nothing — no status, no
    slot, no refund — and returns the job as it found it, for the webhook's other checks."""
    [job_id] = await running_jobs(store, 1)
    other_task = webhook_failure("T-x")

    missed = await store.finish(TABLE, job_id, other_task)

    assert missed is not None
    assert not missed.changed
    assert missed.job.status is JobStatus.RUNNING
    assert missed.job.task_id == f"T-{job_id}"
    assert missed.job.holds_slot
    account = await store.get_account("acc")
    assert account is not None
    assert account.in_flight == 1
    assert [e["kind"] for e in await store.ledger("u1")] == ["grant", "charge"]

    ended = await store.finish(TABLE, job_id, webhook_failure(f"T-{job_id}"))

    assert ended is not None
    assert ended.changed
    assert ended.refunded
    assert ended.job.status is JobStatus.FAILED
    assert not ended.job.holds_slot
    account = await store.get_account("acc")
    assert account is not None
    assert account.in_flight == 0
    again = await store.finish(TABLE, job_id, webhook_failure(f"T-{job_id}"))
    assert again is not None
    assert not again.changed
    assert again.job.status is JobStatus.FAILED
    missing = await store.finish(TABLE, str(uuid.uuid4()), other_task)
    assert missing is None


async def test_a_finish_naming_a_task_never_ends_a_job_saving_its_result(
    store: Repository,
) -> None:
    """RunningHub's success was reported and is being kept: a later webhook of the same task
    (a contradicting failure) finds the job saving and leaves it to the copy."""
    [job_id] = await running_jobs(store, 1)
    began = await store.begin_output_copy(
        TABLE,
        job_id,
        upstream_url="https://x/y.png",
        reported_by=FinishedBy.WEBHOOK,
        due_at=utcnow(),
    )
    assert began is not None
    assert began.changed

    result = await store.finish(TABLE, job_id, webhook_failure(f"T-{job_id}"))

    assert result is not None
    assert not result.changed
    assert result.job.saving
    job = await store.get_job(TABLE, job_id)
    assert job is not None
    assert job.status is JobStatus.RUNNING
    assert job.saving
