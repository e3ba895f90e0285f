"""The repository contract of results that last (memory, SQLite, PostgreSQL): one caller
begins a job's copy, the slot is given back once, copies are leased one copier at a time and
come back after a copier's death, and a terminal job's copy state never changes again."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from arcano_tools.domain.records import FinishRequest, Job, NewJob, utcnow
from arcano_tools.domain.repository import Repository
from arcano_tools.domain.status import FinishedBy, JobStatus, OutputCopy

TABLE = "upscaler_jobs"
RH_URL = "https://rh-images.xiaoyaoyou.com/out/1.png"
LEASE = timedelta(seconds=30)


async def running_job(store: Repository, user: str = "u1") -> Job:
    """A job running on account ``acc``, holding one of its slots."""
    await store.ensure_user(user, credits=100)
    job = await store.create_job(
        NewJob(id=str(uuid.uuid4()), table=TABLE, user_id=user, cost=5, inputs={"scale": 2})
    )
    claimed = await store.claim_slot(job, "acc")
    assert claimed is not None
    saved = await store.save_task_id(TABLE, job.id, "task-" + job.id[:8])
    assert saved is not None
    assert saved.status is JobStatus.RUNNING
    return saved


async def in_flight(store: Repository) -> int:
    account = await store.get_account("acc")
    assert account is not None
    return account.in_flight


async def test_one_caller_begins_the_copy_and_the_slot_is_given_back_once(
    store: Repository,
) -> None:
    job = await running_job(store)
    other = await running_job(store, "u2")
    assert await in_flight(store) == 2

    results = await asyncio.gather(
        *(
            store.begin_output_copy(
                TABLE, job.id, upstream_url=f"{RH_URL}?{n}", reported_by=by, due_at=utcnow()
            )
            for n, by in enumerate([FinishedBy.WEBHOOK, FinishedBy.WATCHDOG] * 3)
        )
    )

    began = [r for r in results if r is not None and r.changed]
    assert len(began) == 1
    saving = await store.get_job(TABLE, job.id)
    assert saving is not None
    assert saving.status is JobStatus.RUNNING
    assert saving.saving
    assert saving.output_copy is OutputCopy.SAVING
    assert saving.upstream_output_url == began[0].job.upstream_output_url
    assert saving.output_reported_by is began[0].job.output_reported_by
    assert saving.output_url is None
    assert not saving.holds_slot
    assert await in_flight(store) == 1  # RunningHub's work is done: its slot is free

    done = await store.finish(
        TABLE, job.id, FinishRequest(JobStatus.COMPLETED, FinishedBy.WEBHOOK, output_url="u")
    )
    assert done is not None
    assert done.changed
    assert await in_flight(store) == 1  # not released twice: the other job keeps its slot
    assert (await store.get_job(TABLE, other.id)).holds_slot  # type: ignore[union-attr]


async def test_no_copy_begins_on_a_terminal_or_unknown_job(store: Repository) -> None:
    job = await running_job(store)
    await store.finish(TABLE, job.id, FinishRequest(JobStatus.CANCELLED, FinishedBy.USER))

    late = await store.begin_output_copy(
        TABLE, job.id, upstream_url=RH_URL, reported_by=FinishedBy.WEBHOOK, due_at=utcnow()
    )
    assert late is not None
    assert not late.changed
    assert late.job.status is JobStatus.CANCELLED
    assert late.job.output_copy is None
    assert late.job.upstream_output_url is None
    unknown = await store.begin_output_copy(
        TABLE,
        str(uuid.uuid4()),
        upstream_url=RH_URL,
        reported_by=FinishedBy.WEBHOOK,
        due_at=utcnow(),
    )
    assert unknown is None


async def test_copies_are_leased_to_one_copier_and_come_back_when_it_dies(
    store: Repository,
) -> None:
    job = await running_job(store)
    await store.begin_output_copy(
        TABLE, job.id, upstream_url=RH_URL, reported_by=FinishedBy.WEBHOOK, due_at=utcnow()
    )
    now = utcnow() + timedelta(seconds=1)

    leases = await asyncio.gather(
        *(store.lease_output_copies(now=now, lease_for=LEASE, limit=10) for _ in range(4))
    )

    assert sorted(len(got) for got in leases) == [0, 0, 0, 1]
    assert await store.lease_output_copies(now=now + LEASE / 2, lease_for=LEASE, limit=10) == []
    # the copier died mid-copy: once its lease has passed, another takes the job
    again = await store.lease_output_copies(now=now + LEASE * 2, lease_for=LEASE, limit=10)
    assert [j.id for j in again] == [job.id]


async def test_copy_results_are_recorded_only_on_a_saving_active_job(store: Repository) -> None:
    job = await running_job(store)
    plain = await running_job(store, "u2")
    await store.begin_output_copy(
        TABLE, job.id, upstream_url=RH_URL, reported_by=FinishedBy.WEBHOOK, due_at=utcnow()
    )
    retry_at = utcnow() + timedelta(minutes=1)

    assert await store.record_output_copy(
        TABLE, job.id, state=OutputCopy.SAVING, tries=1, due_at=retry_at, error="HTTP 500"
    )
    failed_once = await store.get_job(TABLE, job.id)
    assert failed_once is not None
    assert failed_once.output_copy_tries == 1
    assert failed_once.output_copy_error == "HTTP 500"
    assert failed_once.output_copy_due_at == retry_at
    assert await store.lease_output_copies(now=utcnow(), lease_for=LEASE, limit=10) == []

    assert await store.record_output_copy(
        TABLE, job.id, state=OutputCopy.SAVED, tries=2, output_key="results/upscaler_jobs/x.png"
    )
    saved = await store.get_job(TABLE, job.id)
    assert saved is not None
    assert saved.output_copy is OutputCopy.SAVED
    assert saved.output_key == "results/upscaler_jobs/x.png"
    assert saved.output_copy_error is None

    # a job with no copy asked for, and a terminal one, never change
    assert not await store.record_output_copy(TABLE, plain.id, state=OutputCopy.FAILED, tries=5)
    await store.finish(
        TABLE, job.id, FinishRequest(JobStatus.COMPLETED, FinishedBy.WEBHOOK, output_url="u")
    )
    assert not await store.record_output_copy(TABLE, job.id, state=OutputCopy.FAILED, tries=5)
    final = await store.get_job(TABLE, job.id)
    assert final is not None
    assert final.output_copy is OutputCopy.SAVED
    assert not final.saving
    assert (
        await store.lease_output_copies(
            now=utcnow() + timedelta(hours=1), lease_for=LEASE, limit=10
        )
        == []
    )


async def test_the_server_watchdog_does_not_lease_a_job_that_is_saving(store: Repository) -> None:
    """RunningHub is done with it and its copier ends it: no upstream check is due."""
    saving = await running_job(store)
    plain = await running_job(store, "u2")
    await store.begin_output_copy(
        TABLE, saving.id, upstream_url=RH_URL, reported_by=FinishedBy.WEBHOOK, due_at=utcnow()
    )
    now = utcnow() + timedelta(minutes=5)

    leased = await store.lease_due_jobs(
        owner="w",
        now=now,
        lease_for=LEASE,
        started_before=now,
        deadline_before=now - timedelta(days=1),
        limit=10,
    )

    assert [j.id for j in leased] == [plain.id]
