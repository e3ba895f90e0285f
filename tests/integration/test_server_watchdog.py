"""The server-side watchdog: no browser open, several backend processes on one PostgreSQL,
one upstream schedule per job, bounded upstream concurrency, stuck starts recovered."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from arcano_tools.tls import client_tls
from tests.support.fixtures import EmulatorControl
from tests.support.processes import ServerProcess
from tests.support.servers import (
    Backend,
    start_backend,
    submit_upscale,
    submit_upscales,
    wait_for,
    wait_terminal,
)
from tests.support.waiting import seconds_between

INITIAL_MS = 600
POLL_MS = 400
WATCHDOG_ENV = {
    "SERVER_WATCHDOG_ENABLED": "true",
    "WATCHDOG_INITIAL_DELAY_MS": str(INITIAL_MS),
    "WATCHDOG_POLL_INTERVAL_MS": str(POLL_MS),
    "WATCHDOG_MAX_TIMEOUT_MS": "60000",
    "RUNNINGHUB_MAX_CONCURRENT": "200",
    "UPSTREAM_MAX_RPS": "500",
}


def job_of(client: httpx.Client, backend: Backend, job_id: str) -> dict[str, Any]:
    r = client.get(
        f"{backend.url}/api/jobs/upscaler_jobs/{job_id}", headers=backend.service_headers
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def submit_many(backend: Backend, user: str, n: int) -> list[str]:
    # creates the user, then tops up its credits
    with httpx.Client(verify=client_tls(), timeout=30) as c:
        assert c.get(backend.url + "/api/me", headers=backend.user_headers(user)).status_code == 200
    backend.rows("UPDATE users SET credits = 100000 WHERE id = :u RETURNING 1", u=user)
    return submit_upscales(backend, user, n)


def wait_all_terminal(
    client: httpx.Client, backend: Backend, job_ids: list[str], timeout: float
) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        jobs = [job_of(client, backend, j) for j in job_ids]
        return (
            jobs if all(j["status"] in ("completed", "failed", "cancelled") for j in jobs) else None
        )

    return list(wait_for(done, timeout=timeout, interval=0.3, what="every job to end"))


def min_gap(times: list[float]) -> float:
    ordered = sorted(times)
    return min((b - a for a, b in itertools.pairwise(ordered)), default=float("inf"))


@pytest.fixture(scope="module")
def watchdog_backend(
    emulator: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    b = start_backend(emulator.url, tmp_path_factory.mktemp("wd"), extra_env=WATCHDOG_ENV)
    yield b
    b.api.stop()


def test_with_no_browser_a_lost_webhook_ends_after_initial_delay_plus_one_interval(
    watchdog_backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    emu.set(webhook="drop", task_ms=100)
    job_id = submit_upscale(client, watchdog_backend, user).json()["jobId"]

    job = wait_for(
        lambda: (j := job_of(client, watchdog_backend, job_id))["status"] == "completed" and j,
        what="the server watchdog to finish the job",
    )

    assert job["finishedBy"] == "server_watchdog"
    took = seconds_between(job["startedAt"], job["completedAt"])
    assert took >= INITIAL_MS / 1000
    # the first check after the initial delay found it (margin: one tick and the call itself)
    assert took <= (INITIAL_MS + POLL_MS) / 1000 + 1.5
    assert emu.stats()["calls"]["outputs"] == 1


def test_a_hundred_stuck_jobs_all_recover_with_bounded_upstream_concurrency(
    emulator: ServerProcess,
    client: httpx.Client,
    emu: EmulatorControl,
    tmp_path: Path,
    user: str,
) -> None:
    backend = start_backend(
        emulator.url, tmp_path, extra_env={**WATCHDOG_ENV, "UPSTREAM_MAX_CONCURRENCY": "4"}
    )
    try:
        emu.set(webhook="drop", task_ms=50, latency_ms=20)
        job_ids = submit_many(backend, user, 100)

        jobs = wait_all_terminal(client, backend, job_ids, timeout=120)

        assert [j["status"] for j in jobs] == ["completed"] * 100
        assert {j["finishedBy"] for j in jobs} == {"server_watchdog"}
        stats = emu.stats()
        assert stats["max_requests_in_flight"] <= 4
        assert stats["max_requests_in_flight"] >= 2  # the cap was really exercised
    finally:
        backend.api.stop()


def test_stuck_start_is_put_back_in_the_queue_and_completes(
    emulator: ServerProcess, client: httpx.Client, emu: EmulatorControl, tmp_path: Path, user: str
) -> None:
    """A process died between RunningHub's create call and saving the task id."""
    backend = start_backend(
        emulator.url, tmp_path, extra_env={**WATCHDOG_ENV, "ARCANO_STARTING_STUCK_MS": "500"}
    )
    try:
        emu.set(queue_full_next=1000)  # keep the job from starting while we stage the crash
        job_id = submit_upscale(client, backend, user).json()["jobId"]
        wait_for(lambda: emu.stats()["queue_full_answers"] >= 1, what="a first attempt")

        # what a crash leaves behind: starting, slot held, no task id — staged atomically and
        # only while the job sits in the queue (not while the dispatcher is retrying it)
        def stage_crash() -> bool:
            return backend.stage(
                (
                    "UPDATE upscaler_jobs SET status = 'starting', holds_slot = true, "
                    "next_attempt_at = NULL, updated_at = CURRENT_TIMESTAMP "
                    "WHERE id = :j AND status = 'queued' RETURNING id",
                    {"j": job_id},
                ),
                (
                    "UPDATE runninghub_accounts SET in_flight = in_flight + 1 RETURNING in_flight",
                    {},
                ),
            )

        wait_for(stage_crash, what="the job to sit in the queue")
        emu.set(queue_full_next=0)

        job = wait_for(
            lambda: (j := job_of(client, backend, job_id))["status"] == "completed" and j,
            timeout=30,
            what="the stuck job to be retried and complete",
        )

        assert job["taskId"]
        ((in_flight,),) = backend.rows("SELECT in_flight FROM runninghub_accounts")
        assert in_flight == 0  # the slot was given back, not leaked
    finally:
        backend.api.stop()


def test_an_account_left_looking_full_is_recounted_and_serves_jobs_again(
    emulator: ServerProcess, client: httpx.Client, emu: EmulatorControl, tmp_path: Path, user: str
) -> None:
    """A restored backup or a manual edit left in_flight at the cap with no job holding a slot:
    without the recount every new job would wait in the queue until its timeout."""
    first = start_backend(emulator.url, tmp_path)  # creates the database and the account
    first.api.stop()
    first.transaction(("UPDATE runninghub_accounts SET in_flight = max_concurrent", {}))

    env = {**WATCHDOG_ENV, "RUNNINGHUB_MAX_CONCURRENT": "2"}  # the cap the staging filled
    backend = start_backend(emulator.url, tmp_path, extra_env=env)
    try:
        job_id = submit_upscale(client, backend, user).json()["jobId"]
        job = wait_terminal(client, backend, user, job_id)

        assert job["status"] == "completed"
        wait_for(lambda: "account slot count corrected" in backend.api.log(), what="the line")
        ((in_flight,),) = backend.rows("SELECT in_flight FROM runninghub_accounts")
        assert in_flight == 0
        text = client.get(backend.url + "/metrics", headers=backend.service_headers).text
        assert 'arcano_slot_corrections_total{account="arcano_main"} 1.0' in text
    finally:
        backend.api.stop()


@pytest.mark.postgres
def test_two_processes_on_one_postgres_share_the_work_and_the_schedule(
    backends_on_one_postgres: Callable[[Mapping[str, str]], tuple[Backend, Backend]],
    client: httpx.Client,
    emu: EmulatorControl,
    user: str,
) -> None:
    first, second = backends_on_one_postgres({**WATCHDOG_ENV, "UPSTREAM_MAX_CONCURRENCY": "8"})
    emu.set(webhook="drop", task_ms=300, latency_ms=10)
    job_ids = submit_many(first, user, 25) + submit_many(second, user, 25)

    jobs = wait_all_terminal(client, first, job_ids, timeout=120)

    assert [j["status"] for j in jobs] == ["completed"] * 50, repr(
        [j for j in jobs if j["status"] != "completed"]
    )
    assert {j["finishedBy"] for j in jobs} == {"server_watchdog"}
    for backend in (first, second):  # both processes did part of the checking
        text = client.get(backend.url + "/metrics", headers=backend.service_headers).text
        assert 'arcano_sync_calls_total{caller="server_watchdog",result="upstream"}' in text
    calls = emu.stats()["outputs_calls_by_task"]
    assert len(calls) == 50
    interval = POLL_MS / 1000
    for task_id, times in calls.items():
        # at most one RunningHub call per job per interval, whichever process made it
        # (half an interval of slack for network jitter between two reserved checks)
        assert min_gap(times) >= interval * 0.5, (task_id, times)
