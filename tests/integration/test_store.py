"""The store's guarantees on real SQLite and a real PostgreSQL server the suite starts itself:
migrations, the guarded finish under concurrency, one refund, the account cap."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from arcano_tools.core.errors import InsufficientCredits
from arcano_tools.core.jobs import FinishRequest, NewJob, utcnow
from arcano_tools.core.status import FinishedBy, JobStatus
from arcano_tools.store import JobStore
from arcano_tools.store import schema as s
from tests.support.postgres import create_database

TABLE = "upscaler_jobs"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    else:
        server: str = request.getfixturevalue("pg_server_url")
        url = create_database(server).replace("postgresql://", "postgresql+psycopg://")
    st = JobStore.from_url(url)
    await st.migrate()
    await st.upsert_account("acc", "k" * 32, max_concurrent=2)
    yield st
    await st.close()


async def new_job(store: JobStore, user: str = "u1", cost: int = 5) -> str:
    await store.ensure_user(user, credits=100)
    job_id = str(uuid.uuid4())
    await store.create_job(
        NewJob(id=job_id, table=TABLE, user_id=user, cost=cost, inputs={"scale": 2})
    )
    return job_id


async def test_migrations_are_recorded_and_idempotent(store: JobStore) -> None:
    assert await store.migrate() == []
    async with store.engine.connect() as conn:
        versions = (await conn.execute(sa.select(s.schema_migrations.c.version))).scalars().all()
    assert versions == [1, 2, 3]


async def test_concurrent_finishes_make_exactly_one_transition_and_one_refund(
    store: JobStore,
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


async def test_a_terminal_job_never_changes_again(store: JobStore) -> None:
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


async def test_the_ledger_refuses_a_second_refund_row(store: JobStore) -> None:
    job_id = await new_job(store)
    await store.finish(TABLE, job_id, FinishRequest(JobStatus.FAILED, FinishedBy.WEBHOOK))
    with pytest.raises(sa.exc.IntegrityError):
        async with store.engine.begin() as conn:
            await conn.execute(
                s.credit_ledger.insert().values(
                    user_id="u1",
                    amount=5,
                    kind="refund",
                    job_table=TABLE,
                    job_id=job_id,
                    created_at=utcnow(),
                )
            )


async def test_credits_are_never_overdrawn_by_concurrent_submits(store: JobStore) -> None:
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


async def test_concurrent_claims_never_exceed_max_concurrent(store: JobStore) -> None:
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


async def test_requeue_gives_the_slot_back_and_delays_the_job(store: JobStore) -> None:
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


async def test_slot_counts_are_recounted_from_the_jobs_holding_them(store: JobStore) -> None:
    job = await store.get_job(TABLE, await new_job(store))
    assert job is not None
    assert await store.claim_slot(job, "acc") is not None
    assert await store.reconcile_slots() == []  # consistent: nothing to fix

    async with store.engine.begin() as conn:  # drift from outside (a manual edit)
        await conn.execute(sa.text("UPDATE runninghub_accounts SET in_flight = 2"))
    assert await store.accounts_with_free_slots() == []

    assert await store.reconcile_slots() == [("acc", 2, 1)]
    account = await store.get_account("acc")
    assert account is not None
    assert account.in_flight == 1
    assert [a.name for a in await store.accounts_with_free_slots()] == ["acc"]
    assert await store.reconcile_slots() == []


async def test_only_failed_starts_count_towards_giving_up(store: JobStore) -> None:
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


async def test_an_early_finish_is_not_undone_by_saving_the_task_id(store: JobStore) -> None:
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


async def test_only_one_caller_reserves_a_check_per_interval(store: JobStore) -> None:
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


async def test_a_user_is_granted_starting_credits_once(store: JobStore) -> None:
    await store.ensure_user("new", credits=100)
    await store.ensure_user("new", credits=100)
    assert [e["kind"] for e in await store.ledger("new")] == ["grant"]
    user = await store.get_user("new")
    assert user is not None
    assert user.credits == 100


async def test_a_claim_sets_the_learned_first_check_and_durations_are_read_back(
    store: JobStore,
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


async def test_a_start_that_lost_its_claim_can_neither_requeue_nor_save(store: JobStore) -> None:
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


async def test_the_server_watchdog_leases_running_jobs_not_a_queue_backlog(store: JobStore) -> None:
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


async def test_a_version_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    from arcano_tools.store import migrations

    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    old = JobStore.from_url(url)
    steps, migrations.MIGRATIONS = migrations.MIGRATIONS, migrations.MIGRATIONS[:1]
    try:
        assert await old.migrate() == [1]
    finally:
        migrations.MIGRATIONS = steps
    async with old.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO users (id, credits, is_admin, is_anonymous, created_at) "
                "VALUES ('u', 10, false, false, CURRENT_TIMESTAMP)"
            )
        )
    await old.close()

    store = JobStore.from_url(url)
    assert await store.migrate() == [2, 3]
    await store.upsert_account("acc", "k" * 32, max_concurrent=1)
    job_id = str(uuid.uuid4())
    job = await store.create_job(NewJob(id=job_id, table=TABLE, user_id="u", cost=5, inputs={}))
    claimed = await store.claim_slot(job, "acc")
    assert claimed is not None
    assert claimed.claim_id
    user = await store.get_user("u")
    assert user is not None
    assert user.credits == 5  # the old row survived the upgrade
    await store.close()


async def test_start_up_configuration_re_enables_a_disabled_account(store: JobStore) -> None:
    await store.disable_account("acc", "RunningHub code 802")
    assert await store.accounts_with_free_slots() == []
    await store.upsert_account("acc", "n" * 32, max_concurrent=2)  # the operator fixed the key
    (account,) = await store.accounts_with_free_slots()
    assert account.name == "acc"
    assert account.enabled
    assert account.disabled_reason is None


async def test_old_webhook_events_and_upstream_errors_are_pruned(store: JobStore) -> None:
    await store.record_webhook(outcome="rejected", detail="forged")
    await store.record_upstream_error("outputs", "http_502")
    assert await store.prune_events(utcnow() - timedelta(days=7)) == 0  # recent: kept
    assert await store.webhook_counts() == {"rejected": 1}

    assert await store.prune_events(utcnow() + timedelta(seconds=1)) == 2

    assert await store.webhook_counts() == {}
    assert await store.upstream_error_counts() == []
