"""Results that last, decided in milliseconds: the real services on the in-memory store, a
fake clock, the emulator in process (its output files fetched over ``httpx.ASGITransport``)
and a real local storage folder.

Each success path (webhook, sync, server watchdog) keeps RunningHub's URL and leaves the job
``running`` while the output is fetched, verified and stored; then one guarded finish
completes it with our copy. Refused outputs are retried with backoff; after five failed tries
the job completes with RunningHub's URL and the operator page lists it.
"""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from PIL import Image

from arcano_tools.api.replies import sync_reply
from arcano_tools.domain.errors import JobNotCancellable
from arcano_tools.domain.records import Job
from arcano_tools.domain.status import FinishedBy, JobStatus, OutputCopy, SyncReason
from arcano_tools.emulator.tasks import oom_failure
from arcano_tools.emulator.webhooks import webhook_body
from arcano_tools.services.output_copy import CopyPolicy, OutputCopier
from arcano_tools.services.output_verify import OutputLimits
from arcano_tools.services.report import failed_copies
from arcano_tools.services.webhooks import Delivery
from arcano_tools.storage.local import LocalStorage
from tests.support.core import BACKEND_BASE, Core, count_finishes

RETRY = timedelta(seconds=40)
LEASE = timedelta(minutes=3)


def attach_copier(core: Core, tmp_path: Path, **policy: object) -> OutputCopier:
    """A copier on a real folder, fetching from the in-process emulator, wired into the sync
    (so the webhook, the sync and the server watchdog all go through it)."""
    copier = OutputCopier(
        store=core.store,
        storage=LocalStorage(tmp_path / "kept"),
        queue=core.queue,
        hosts=core.sync.output_hosts,
        url_of=lambda key: f"{BACKEND_BASE}/files/{key}",
        policy=CopyPolicy(retry_base=RETRY, lease=LEASE, **policy),  # type: ignore[arg-type]
        clock=core.clock,
        transport=httpx.ASGITransport(app=core.emulator_app),
    )
    core.sync.copier = copier
    return copier


async def settle(copier: OutputCopier) -> None:
    """Wait for the copies begun in the background."""
    while copier._tasks:
        await asyncio.gather(*list(copier._tasks))


async def webhook(core: Core, job: Job) -> Delivery:
    result = await core.webhooks.receive(
        job.table, job.id, core.token(job), await core.webhook_for(job)
    )
    return result.delivery


async def test_the_copy_is_made_and_verified_before_the_job_completes(
    core: Core, tmp_path: Path
) -> None:
    copier = attach_copier(core, tmp_path)
    finishes = count_finishes(core)
    job = await core.running()
    core.control(files_delay_ms=150)  # the copy is in flight while we look
    assert (await core.store.get_account("arcano_main")).in_flight == 1  # type: ignore[union-attr]

    assert await webhook(core, job) is Delivery.APPLIED
    saving = await core.job(job)
    assert saving.status is JobStatus.RUNNING
    assert saving.saving
    assert saving.output_url is None
    upstream = saving.upstream_output_url
    assert upstream is not None
    assert upstream.startswith("http://emulator.test/files/")  # RunningHub's URL, kept now
    assert saving.output_reported_by is FinishedBy.WEBHOOK
    assert (await core.store.get_account("arcano_main")).in_flight == 0  # type: ignore[union-attr]

    await settle(copier)

    done = await core.job(job)
    assert done.status is JobStatus.COMPLETED
    assert done.finished_by is FinishedBy.WEBHOOK
    assert done.output_copy is OutputCopy.SAVED
    assert done.output_key == f"results/upscaler_jobs/{job.id}.png"
    assert done.output_url == f"{BACKEND_BASE}/files/results/upscaler_jobs/{job.id}.png"
    assert done.upstream_output_url == upstream
    kept = (tmp_path / "kept" / done.output_key).read_bytes()
    assert kept == core.emulator.output_path(upstream.rsplit("/", 1)[-1]).read_bytes()  # type: ignore[union-attr]
    assert Image.open(io.BytesIO(kept)).format == "PNG"
    assert finishes[(job.table, job.id)] == 1
    assert await core.ledger_kinds() == ["grant", "charge"]  # one charge, no refund


async def test_while_saving_the_sync_keeps_the_plan_polling_and_no_deadline_applies(
    core: Core, tmp_path: Path
) -> None:
    attach_copier(core, tmp_path)
    job = await core.running()
    core.control(files="error")
    await webhook(core, job)
    await settle(core.sync.copier)  # type: ignore[arg-type]
    core.clock.advance(minutes=30)  # far past the 12-minute deadline

    outcome = await core.sync.sync_job(await core.job(job), finished_by=FinishedBy.WATCHDOG)

    assert not outcome.synced
    assert outcome.reason is SyncReason.STILL_PROCESSING
    status, body = sync_reply(outcome)
    assert status == 200
    assert body["synced"] is False
    assert body["reason"] == "still_processing"
    assert body["saving"] is True
    assert (await core.job(job)).status is JobStatus.RUNNING  # not timed out, not refunded
    with pytest.raises(JobNotCancellable):  # RunningHub's work is done: no refund for it
        await core.queue.cancel(job.table, job.id, "u1")


@pytest.mark.parametrize(
    ("files", "limits", "why"),
    [
        ("html", OutputLimits(), "neither an image nor a video"),
        ("corrupt", OutputLimits(), "does not decode as an image"),
        ("serve", OutputLimits(image_bytes=64), "exceeds 64"),
        ("missing", OutputLimits(), "HTTP 404"),
    ],
)
async def test_a_refused_output_is_retried_with_backoff_then_kept(
    core: Core, tmp_path: Path, files: str, limits: OutputLimits, why: str
) -> None:
    copier = attach_copier(core, tmp_path, limits=limits)
    job = await core.running()
    core.control(files=files)
    await webhook(core, job)
    await settle(copier)

    refused = await core.job(job)
    assert refused.status is JobStatus.RUNNING
    assert refused.output_copy is OutputCopy.SAVING
    assert refused.output_copy_tries == 1
    assert why in (refused.output_copy_error or "")
    assert refused.output_copy_due_at == core.clock() + RETRY
    assert not (tmp_path / "kept" / "results").exists()  # nothing refused is stored
    assert await copier.sweep() == 0  # not due yet

    core.control(files="serve")
    copier.policy = CopyPolicy(retry_base=RETRY, lease=LEASE)  # a normal size limit again
    core.clock.advance(seconds=RETRY.total_seconds())
    assert await copier.sweep() == 1

    kept = await core.job(job)
    assert kept.status is JobStatus.COMPLETED
    assert kept.output_copy is OutputCopy.SAVED
    assert kept.output_copy_tries == 2
    assert kept.output_url == f"{BACKEND_BASE}/files/{kept.output_key}"


async def test_after_five_failed_tries_over_ten_minutes_it_completes_with_runninghubs_url(
    core: Core, tmp_path: Path
) -> None:
    copier = attach_copier(core, tmp_path)
    finishes = count_finishes(core)
    job = await core.running()
    core.control(files="error")
    await webhook(core, job)
    await settle(copier)
    waited = timedelta()
    for tries in range(1, 5):
        current = await core.job(job)
        assert (current.status, current.output_copy_tries) == (JobStatus.RUNNING, tries)
        delay = current.output_copy_due_at - core.clock()  # type: ignore[operator]
        waited += delay
        core.clock.advance(seconds=delay.total_seconds())
        assert await copier.sweep() == 1

    assert waited == timedelta(minutes=10)  # 40 + 80 + 160 + 320 s
    done = await core.job(job)
    assert done.status is JobStatus.COMPLETED
    assert done.output_copy is OutputCopy.FAILED
    assert done.output_copy_tries == 5
    assert done.output_copy_error == "HTTP 500"
    assert done.output_url == done.upstream_output_url  # RunningHub's URL, never lost
    assert done.output_key is None
    assert finishes[(job.table, job.id)] == 1
    assert await core.ledger_kinds() == ["grant", "charge"]
    assert failed_copies([done]) == [done]  # what /admin lists

    # terminal: a late webhook, a sync, a sweep change nothing
    assert await webhook(core, job) is Delivery.DUPLICATE
    core.clock.advance(hours=1)
    assert await copier.sweep() == 0
    assert await core.job(job) == done


async def test_a_copy_left_by_a_dead_process_is_resumed_after_its_lease(
    core: Core, tmp_path: Path
) -> None:
    """The process that began the copy died before storing it (its background try never
    ran): another process's sweep takes the job once the lease has passed."""
    job = await core.running()
    await core.upstream_done(job)
    task = core.task(job)
    began = await core.store.begin_output_copy(
        job.table,
        job.id,
        upstream_url=task.envelope["data"][0]["fileUrl"],  # type: ignore[index]
        reported_by=FinishedBy.SERVER_WATCHDOG,
        due_at=core.clock() + LEASE,
    )
    assert began is not None
    assert began.changed

    other_process = attach_copier(core, tmp_path)
    assert await other_process.sweep() == 0  # the lease still holds
    core.clock.advance(seconds=LEASE.total_seconds())
    assert await other_process.sweep() == 1

    done = await core.job(job)
    assert done.status is JobStatus.COMPLETED
    assert done.finished_by is FinishedBy.SERVER_WATCHDOG
    assert done.output_copy is OutputCopy.SAVED
    assert (tmp_path / "kept" / done.output_key).is_file()  # type: ignore[operator]


async def test_every_success_path_goes_through_the_copy(core: Core, tmp_path: Path) -> None:
    """The sync (page watchdog) and the server watchdog keep the result too, not only the
    webhook; only the first report begins the copy."""
    copier = attach_copier(core, tmp_path)
    by_sync = await core.running()
    by_watchdog = await core.running(user="u2")
    await core.upstream_done(by_sync)
    await core.upstream_done(by_watchdog)
    core.control(files_delay_ms=100)

    first = await core.sync.sync_job(by_sync, finished_by=FinishedBy.WATCHDOG, force=True)
    second = await core.sync.sync_job(
        await core.job(by_sync), finished_by=FinishedBy.WATCHDOG, force=True
    )
    assert (first.saving, first.began_saving) == (True, True)
    assert (second.saving, second.began_saving) == (True, False)
    core.clock.advance(minutes=5)  # the server watchdog's first check is due
    await core.watchdog.tick()
    await settle(copier)

    for job, by in ((by_sync, FinishedBy.WATCHDOG), (by_watchdog, FinishedBy.SERVER_WATCHDOG)):
        done = await core.job(job)
        assert (done.status, done.finished_by, done.output_copy) == (
            JobStatus.COMPLETED,
            by,
            OutputCopy.SAVED,
        )


async def test_a_contradicting_failure_webhook_never_ends_a_job_that_is_saving(
    core: Core, tmp_path: Path
) -> None:
    """RunningHub said success (the copy began); a failure webhook arriving after it must not
    fail the job and refund the work the user is getting."""
    copier = attach_copier(core, tmp_path)
    finishes = count_finishes(core)
    job = await core.running()
    core.control(files="error")
    assert await webhook(core, job) is Delivery.APPLIED
    await settle(copier)
    task = core.task(job)
    failure = webhook_body(task.task_id, oom_failure(task.spec))

    result = await core.webhooks.receive(job.table, job.id, core.token(job), failure)

    assert result.status is JobStatus.RUNNING
    assert (await core.job(job)).saving
    core.control(files="serve")
    core.clock.advance(seconds=RETRY.total_seconds())
    await copier.sweep()
    done = await core.job(job)
    assert (done.status, done.output_copy) == (JobStatus.COMPLETED, OutputCopy.SAVED)
    assert finishes[(job.table, job.id)] == 1
    assert await core.ledger_kinds() == ["grant", "charge"]
