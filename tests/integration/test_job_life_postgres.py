"""The promise on a real PostgreSQL server: the job-life state machine (arbitrary
interleavings, as on the in-memory store) and randomized concurrent races between a webhook,
two watchdogs, the deadline, a cancel and ``/finish`` — zero double transitions, zero double
refunds. ``ARCANO_RACES`` sets how many races run (100 here; ``make matrix`` runs 1,000)."""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from arcano_tools.domain.errors import JobNotCancellable
from arcano_tools.domain.records import FinishRequest, Job
from arcano_tools.domain.status import FinishedBy, JobStatus
from arcano_tools.services.sync import JobSync
from tests.support.core import ACCOUNT, TIMINGS, Core, build_core, count_finishes
from tests.support.invariants import check_jobs
from tests.support.job_life import OUTPUT_HOSTS, JobLifeMachine
from tests.support.postgres import create_database

pytestmark = pytest.mark.postgres

#: Races in ``make test``; ``make matrix`` sets ``ARCANO_RACES=1000``.
RACES = int(os.environ.get("ARCANO_RACES", "100"))
#: A racer waits up to this long before acting, so every order of arrival happens.
MAX_STAGGER_S = 0.004


def _pg_url(server: str) -> str:
    return create_database(server).replace("postgresql://", "postgresql+psycopg://")


def test_the_job_life_state_machine_on_postgresql(pg_server_url: str) -> None:
    url = _pg_url(pg_server_url)

    class OnPostgres(JobLifeMachine):
        database_url = url

    run_state_machine_as_test(
        OnPostgres,
        settings=settings(
            max_examples=8,
            stateful_step_count=20,
            derandomize=True,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


async def test_randomized_races_never_transition_or_refund_twice(
    pg_server_url: str, tmp_path: Path
) -> None:
    core = await build_core(tmp_path, database_url=_pg_url(pg_server_url), max_concurrent=4)
    finishes = count_finishes(core)
    overdue = _overdue_sync(core)
    rng = random.Random(20261129)
    await core.store.ensure_user("racer", credits=10 * RACES * 5)
    refs: list[tuple[str, str]] = []
    try:
        for _ in range(RACES):
            core.control(outcome=rng.choice(("success", "success", "fail", "never")))
            job = await core.running("upscaler", "racer")
            refs.append((job.table, job.id))
            task = core.task(job)
            if task.settings.outcome != "never":
                await core.upstream_done(job)
            racers = _racers(core, job, overdue)
            chosen = rng.sample(sorted(racers), rng.randint(2, len(racers)))
            if "deadline" not in chosen:
                chosen.append("deadline")  # whatever else happens, the deadline ends it
            await asyncio.gather(*(_staggered(rng, racers[name]) for name in chosen))
        found = await check_jobs(
            core.store, refs, allowed_output_hosts=OUTPUT_HOSTS, finishes=finishes
        )
        found.assert_none()
        account = await core.store.get_account(ACCOUNT)
        assert account is not None
        assert account.in_flight == 0
        statuses: Counter[JobStatus] = Counter()
        for ref in refs:
            ended = await core.store.get_job(*ref)
            assert ended is not None
            statuses[ended.status] += 1
        assert statuses[JobStatus.COMPLETED] > 0
        assert statuses[JobStatus.FAILED] + statuses[JobStatus.CANCELLED] > 0
    finally:
        await core.background()
        await core.webhooks.events.aclose()
        await core.emulator.shutdown()
        await core.client.aclose()
        await core.store.close()


def _overdue_sync(core: Core) -> JobSync:
    """The same sync, on a clock already past every job's deadline (the deadline racer)."""
    late = TIMINGS.max_timeout + timedelta(seconds=1)
    return JobSync(
        store=core.store,
        client=core.client,
        queue=core.queue,
        tools=core.tools,
        timings=TIMINGS,
        default_account=ACCOUNT,
        output_hosts=core.sync.output_hosts,
        clock=lambda: core.clock() + late,
    )


def _racers(core: Core, job: Job, overdue: JobSync) -> dict[str, Callable[[], Awaitable[object]]]:
    async def webhook() -> object:
        if core.task(job).envelope is None:
            return None
        body = await core.webhook_for(job)
        return await core.webhooks.receive(job.table, job.id, core.token(job), body)

    async def page_watchdog() -> object:
        return await core.sync.sync_job(job, finished_by=FinishedBy.WATCHDOG, force=True)

    async def server_watchdog() -> object:
        return await core.sync.sync_job(job, finished_by=FinishedBy.SERVER_WATCHDOG, force=True)

    async def deadline() -> object:
        return await overdue.sync_job(job, finished_by=FinishedBy.SERVER_WATCHDOG)

    async def cancel() -> object:
        try:
            return await core.queue.cancel(job.table, job.id, "racer")
        except JobNotCancellable:
            return None

    async def finish() -> object:
        request = FinishRequest(
            JobStatus.COMPLETED,
            FinishedBy.SERVICE,
            output_url="http://emulator.test/files/by-service.png",
        )
        return await core.queue.finish(job.table, job.id, request)

    return {
        "webhook": webhook,
        "webhook_again": webhook,
        "page_watchdog": page_watchdog,
        "server_watchdog": server_watchdog,
        "deadline": deadline,
        "cancel": cancel,
        "finish": finish,
    }


async def _staggered(rng: random.Random, act: Callable[[], Awaitable[object]]) -> object:
    await asyncio.sleep(rng.uniform(0, MAX_STAGGER_S))  # the order of arrival is the variable
    return await act()
