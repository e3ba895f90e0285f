"""The shared schedule's cadence (``services/schedule.py``): a job running past nearly every
job of its tool is checked less often, and never so late that its deadline comes first."""

from __future__ import annotations

from datetime import timedelta

from arcano_tools.domain.records import FinishRequest
from arcano_tools.domain.status import FinishedBy, JobStatus
from arcano_tools.services.auth import Principal
from arcano_tools.services.queue_manager import FIRST_CHECK_CACHE_S
from arcano_tools.services.schedule import (
    DENSE_UNTIL_MARGIN,
    MIN_TAIL_HISTORY,
    TAIL_INTERVAL_FACTOR,
)
from tests.support.core import ACCOUNT, API_KEY, TIMINGS, Core

USER = Principal(user_id="u1")
OUTPUT_URL = "https://rh-images.xiaoyaoyou.com/out.png"
#: Every job of the history took this long.
HISTORY_S = 60.0
TAIL = TIMINGS.poll_interval * TAIL_INTERVAL_FACTOR


def calls(core: Core, endpoint: str) -> int:
    return core.emulator.stats.calls.get(endpoint, 0)


async def with_history(core: Core) -> None:
    """Enough completed upscaler jobs, each ``HISTORY_S`` long, to trust the tool's tail
    (started together: the account gets a slot for each, then back to its two)."""
    await core.store.upsert_account(ACCOUNT, API_KEY, MIN_TAIL_HISTORY)
    jobs = [await core.submit(user=f"past{i}") for i in range(MIN_TAIL_HISTORY)]
    await core.dispatch()
    core.clock.advance(seconds=HISTORY_S)
    for job in jobs:
        await core.queue.finish(
            job.table,
            job.id,
            FinishRequest(JobStatus.COMPLETED, FinishedBy.WEBHOOK, output_url=OUTPUT_URL),
        )
    await core.store.upsert_account(ACCOUNT, API_KEY, 2)
    assert len(await core.store.recent_durations("upscaler_jobs")) == MIN_TAIL_HISTORY
    core.clock.advance(seconds=FIRST_CHECK_CACHE_S + 1)  # the cached cadence is learned again


async def test_a_job_past_its_tools_tail_is_checked_less_often_but_by_its_deadline(
    core: Core,
) -> None:
    await with_history(core)
    cadence = await core.queue.cadence("upscaler_jobs")
    assert cadence is not None
    assert cadence.dense_until == timedelta(seconds=HISTORY_S * DENSE_UNTIL_MARGIN)
    core.control(outcome="never")
    job = await core.running()

    # inside the tool's usual durations: the next check is one interval away
    core.clock.advance(seconds=HISTORY_S)
    asked = calls(core, "outputs")
    assert not (await core.sync.sync(job.table, job.id, USER)).synced
    assert calls(core, "outputs") == asked + 1
    assert (await core.job(job)).next_check_at == core.clock() + core.sync.check_interval

    # past them: RunningHub's "still running" moves the next check a tail interval away
    core.clock.advance(seconds=HISTORY_S)
    assert not (await core.sync.sync(job.table, job.id, USER)).synced
    assert calls(core, "outputs") == asked + 2
    assert (await core.job(job)).next_check_at == core.clock() + TAIL
    core.clock.advance(seconds=TAIL.total_seconds() / 2)
    assert (await core.sync.sync(job.table, job.id, USER)).cached  # not due: no call
    assert calls(core, "outputs") == asked + 2

    # a tail interval would end after the deadline: the next check is the deadline itself
    deadline = core.sync.deadline(await core.job(job))
    core.clock.advance(seconds=(deadline - core.clock()).total_seconds() - TAIL.total_seconds() / 2)
    assert not (await core.sync.sync(job.table, job.id, USER)).synced
    assert calls(core, "outputs") == asked + 3
    assert (await core.job(job)).next_check_at == deadline

    # so at the deadline the server looks once more (a task that ended meanwhile, its
    # webhook lost, is completed, not timed out) before it times the job out
    core.clock.advance(seconds=TAIL.total_seconds() / 2)
    ended = await core.sync.sync(job.table, job.id, USER)
    assert calls(core, "outputs") == asked + 4
    assert ended.synced
    assert ended.error_message == TIMINGS.timeout_message
