"""The deadline is a promise about the person's wait: ``WATCHDOG_MAX_TIMEOUT_MS`` after the
submission, kept at the speed of the clock, not of RunningHub, and never spent on a job that
can no longer start (see ``docs/watchdog.md``, "The deadline")."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from arcano_tools.domain.records import Job
from arcano_tools.domain.status import FinishedBy, JobStatus
from arcano_tools.services.auth import Principal
from arcano_tools.services.queue_manager import MSG_NO_ACCOUNT
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
    timings = dataclasses.replace(TIMINGS, poll_interval=timedelta(milliseconds=50))
    sync = JobSync(
        store=core.store,
        client=core.client,
        queue=core.queue,
        tools=core.tools,
        timings=timings,
        default_account=ACCOUNT,
        output_hosts=core.sync.output_hosts,
        clock=core.clock,
    )
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
