"""What a person reads while a job waits in the queue again: plain Portuguese on the page
(``error_message``), never RunningHub's code or an exception's name — those stay in the log
and in ``upstream_errors`` for the operators."""

from __future__ import annotations

import logging

import pytest

from arcano_tools.domain.records import Job
from arcano_tools.domain.status import JobStatus
from arcano_tools.services.queue_manager import (
    MSG_REQUEUED_BUSY,
    MSG_REQUEUED_INTERRUPTED,
    MSG_REQUEUED_RETRY,
)
from tests.support.core import ACCOUNT, Core

TECHNICAL = ("RunningHub", "Error", "(", "421", "http", "unavailable", "busy")


def plain_portuguese(message: str | None) -> None:
    assert message
    for word in TECHNICAL:
        assert word not in message, (word, message)
    assert "fila" in message  # says where the job is


def requeue_causes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        str(getattr(r, "reason", "")) for r in caplog.records if r.getMessage() == "job requeued"
    ]


async def queued_again(core: Core, job: Job) -> Job:
    current = await core.job(job)
    assert current.status is JobStatus.QUEUED
    return current


async def test_a_busy_runninghub_shows_the_job_still_queued_in_portuguese(
    core: Core, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="arcano_tools")
    core.control(queue_full_next=1)
    job = await core.submit()

    await core.dispatch()

    current = await queued_again(core, job)
    assert current.error_message == MSG_REQUEUED_BUSY
    plain_portuguese(current.error_message)
    assert requeue_causes(caplog) == ["RunningHub busy (421)"]
    assert await core.store.upstream_error_counts() == [("run", "421", 1)]


async def test_an_unreachable_runninghub_shows_a_plain_message_and_logs_the_cause(
    core: Core, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="arcano_tools")
    core.control(http_error_rate=1.0)  # every call answers 502/500, retries included
    job = await core.submit()

    await core.dispatch()

    current = await queued_again(core, job)
    assert current.error_message == MSG_REQUEUED_RETRY
    plain_portuguese(current.error_message)
    (cause,) = requeue_causes(caplog)
    assert cause.startswith("RunningHub unavailable (")
    assert [code for endpoint, code, _ in await core.store.upstream_error_counts()] != []


async def test_an_interrupted_start_shows_a_plain_message(core: Core) -> None:
    job = await core.submit()
    dead = await core.store.claim_slot(await core.job(job), ACCOUNT)
    assert dead is not None

    await core.queue.recover_stuck_start(dead)

    current = await queued_again(core, job)
    assert current.error_message == MSG_REQUEUED_INTERRUPTED
    plain_portuguese(current.error_message)


async def test_the_message_goes_away_once_the_job_starts_again(core: Core) -> None:
    core.control(queue_full_next=1)
    job = await core.submit()
    await core.dispatch()
    assert (await core.job(job)).error_message == MSG_REQUEUED_BUSY

    core.clock.advance(minutes=1)
    await core.dispatch()

    running = await core.job(job)
    assert (running.status, running.error_message) == (JobStatus.RUNNING, None)
