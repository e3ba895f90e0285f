"""The sync's decisions — every reply of the plan's edge function, plus 805, the deadline and
the shared schedule — and how ``api/`` spells each one."""

from __future__ import annotations

import pytest

from arcano_tools.api.replies import sync_reply
from arcano_tools.domain.errors import JobNotFound
from arcano_tools.domain.status import FinishedBy, JobStatus, SyncReason
from arcano_tools.runninghub.client import OutputFile, TaskOutputs
from arcano_tools.services.auth import Principal
from arcano_tools.services.sync import MSG_UNTRUSTED_OUTPUT
from tests.support.core import TIMINGS, Core

USER = Principal(user_id="u1")


def outputs_calls(core: Core) -> int:
    return core.emulator.stats.calls.get("outputs", 0)


async def test_a_queued_job_has_no_task_to_ask_about(core: Core) -> None:
    job = await core.submit()

    outcome = await core.sync.sync(job.table, job.id, USER)

    assert outcome.reason is SyncReason.NO_TASK_ID
    assert sync_reply(outcome) == (200, {"synced": False, "reason": "no_task_id"})


async def test_a_job_still_queued_at_its_deadline_fails_with_the_timeout_and_a_refund(
    core: Core,
) -> None:
    job = await core.submit()
    core.clock.advance(seconds=TIMINGS.max_timeout.total_seconds())

    outcome = await core.sync.sync(job.table, job.id, USER)

    assert sync_reply(outcome) == (
        200,
        {"synced": True, "status": "failed", "errorMessage": TIMINGS.timeout_message},
    )
    assert (await core.job(job)).finished_by is FinishedBy.TIMEOUT
    assert await core.balance() == 100


async def test_a_finished_task_whose_webhook_was_lost_completes_the_job(core: Core) -> None:
    job = await core.running()
    await core.upstream_done(job)

    outcome = await core.sync.sync(job.table, job.id, USER)

    done = await core.job(job)
    assert done.status is JobStatus.COMPLETED
    assert done.finished_by is FinishedBy.WATCHDOG
    assert done.output_url is not None
    assert sync_reply(outcome) == (
        200,
        {"synced": True, "status": "completed", "outputUrl": done.output_url},
    )


async def test_a_second_sync_of_an_ended_job_reports_it_without_asking_runninghub(
    core: Core,
) -> None:
    job = await core.running()
    await core.upstream_done(job)
    await core.sync.sync(job.table, job.id, USER)
    calls = outputs_calls(core)

    outcome = await core.sync.sync(job.table, job.id, USER)

    done = await core.job(job)
    assert sync_reply(outcome) == (
        200,
        {
            "synced": False,
            "reason": "already_terminal",
            "status": "completed",
            "outputUrl": done.output_url,
        },
    )
    assert outputs_calls(core) == calls


async def test_runninghub_805_fails_the_job_at_once_with_its_reason(core: Core) -> None:
    core.control(outcome="fail")
    job = await core.running()
    await core.upstream_done(job)

    outcome = await core.sync.sync(job.table, job.id, USER)

    failed = await core.job(job)
    assert failed.status is JobStatus.FAILED
    assert failed.error_message
    assert "out of memory" in failed.error_message.lower()
    assert sync_reply(outcome) == (
        200,
        {"synced": True, "status": "failed", "errorMessage": failed.error_message},
    )
    assert await core.balance() == 100


async def test_a_sync_before_the_next_check_answers_from_the_last_one(core: Core) -> None:
    core.control(outcome="never")
    job = await core.running()
    first = await core.sync.sync(job.table, job.id, USER)
    calls = outputs_calls(core)

    cached = await core.sync.sync(job.table, job.id, USER)

    assert first.reason is SyncReason.STILL_PROCESSING
    assert first.rh_code is not None
    assert not first.cached
    assert outputs_calls(core) == calls  # no second upstream call within the interval
    assert sync_reply(cached) == (
        200,
        {
            "synced": False,
            "reason": "still_processing",
            "rhCode": first.rh_code,
            "rhMsg": first.rh_msg,
            "cached": True,
        },
    )
    core.clock.advance(seconds=TIMINGS.poll_interval.total_seconds())
    again = await core.sync.sync(job.table, job.id, USER)
    assert not again.cached
    assert outputs_calls(core) == calls + 1


async def test_at_the_deadline_a_running_job_fails_is_refunded_and_cancelled_upstream(
    core: Core,
) -> None:
    core.control(outcome="never")
    job = await core.running()
    core.clock.advance(seconds=TIMINGS.max_timeout.total_seconds())

    outcome = await core.sync.sync(job.table, job.id, USER)

    assert outcome.synced
    assert outcome.error_message == TIMINGS.timeout_message
    assert (await core.job(job)).finished_by is FinishedBy.TIMEOUT
    await core.background()  # the upstream cancel runs after the reply
    assert core.task(job).status == "FAILED"  # cancelled upstream
    assert await core.ledger_kinds() == ["grant", "charge", "refund"]


async def test_an_account_without_a_key_is_the_plans_500(core: Core) -> None:
    core.control(outcome="never")
    job = await core.running()
    await core.store.upsert_account("arcano_main", "", 2)

    outcome = await core.sync.sync(job.table, job.id, USER)

    assert sync_reply(outcome) == (500, {"synced": False, "reason": "no_api_key"})


async def test_runninghub_errors_leave_the_job_running_and_say_so(core: Core) -> None:
    core.control(outcome="never")
    job = await core.running()
    core.control(http_error_rate=1.0)

    outcome = await core.sync.sync(job.table, job.id, USER)

    status, body = sync_reply(outcome)
    assert (status, body["reason"]) == (200, "api_error")
    assert body["status"] >= 500
    assert (await core.job(job)).status is JobStatus.RUNNING


async def test_someone_elses_job_and_an_unknown_table_are_not_found(core: Core) -> None:
    job = await core.submit()
    with pytest.raises(JobNotFound):
        await core.sync.sync(job.table, job.id, Principal(user_id="intruder"))
    with pytest.raises(JobNotFound):
        await core.sync.sync("users", job.id, Principal(is_service=True))
    assert (await core.sync.sync(job.table, job.id, Principal(is_service=True))).reason is (
        SyncReason.NO_TASK_ID
    )


async def test_an_output_on_an_untrusted_host_is_never_stored_and_the_job_is_refunded(
    core: Core,
) -> None:
    core.control(outcome="never")
    job = await core.running()
    forged = TaskOutputs(
        state="success",
        code=0,
        msg="success",
        files=(OutputFile(file_url="https://evil.example/x.png", file_type="png"),),
    )

    outcome = await core.sync.apply_outputs(job, forged, FinishedBy.WEBHOOK)

    failed = await core.job(job)
    assert failed.status is JobStatus.FAILED
    assert failed.output_url is None
    assert failed.error_message == MSG_UNTRUSTED_OUTPUT
    assert outcome.synced
    assert await core.balance() == 100
    assert ("outputs", "output_host", 1) in await core.store.upstream_error_counts()
