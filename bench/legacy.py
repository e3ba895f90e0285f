"""The figures ``make bench`` printed before issue 9 (``python -m bench --legacy``): submit →
webhook completion latency through the emulator, sync latency due vs not due, RunningHub calls
of several tabs on one job, the learned schedule model, and the Redis relay's delay between
two processes. Measured figures only: without the relay a page would learn of an update at its
next 1 s re-read — 500 ms on average, a computed figure that is printed as such by
``python -m bench --legacy``, never among these measurements.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from arcano_tools.tls import client_tls
from tests.support.postgres import create_database, postgres_server
from tests.support.redis_server import RedisServer
from tests.support.servers import (
    Backend,
    start_backend,
    start_emulator,
    submit_upscale,
    wait_for,
)

#: Without the relay a page re-reads its job every second: it learns of an update 500 ms
#: after it on average. Computed, not measured (shown apart from the measured figures).
PAGE_REREAD_MEAN_MS_COMPUTED = 500.0

SYNC = "/functions/v1/runninghub-job-sync"


def emulator_set(url: str, **settings: Any) -> None:
    httpx.post(url + "/_control", json=settings, timeout=10).raise_for_status()


def emulator_stats(url: str) -> dict[str, Any]:
    return dict(httpx.get(url + "/_stats", timeout=10).json())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def parallel(n: int, fn: Callable[[int], Any], workers: int = 8) -> list[Any]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, range(n)))


def bench_submit_and_complete(backend: Backend, emulator_url: str, jobs: int) -> dict[str, float]:
    emulator_set(emulator_url, reset=True)
    emulator_set(emulator_url, task_ms=100, webhook="deliver")
    user = f"bench-{time.time_ns()}"
    backend.rows("SELECT 1")
    with httpx.Client(verify=client_tls(), timeout=30) as c:
        c.get(backend.url + "/api/me", headers=backend.user_headers(user))
    backend.rows("UPDATE users SET credits = 1000000 WHERE id = :u RETURNING 1", u=user)

    submitted: dict[str, float] = {}

    def one(_: int) -> None:
        with httpx.Client(verify=client_tls(), timeout=60) as c:
            t = time.monotonic()
            r = submit_upscale(c, backend, user)
            r.raise_for_status()
            submitted[r.json()["jobId"]] = t

    t0 = time.monotonic()
    parallel(jobs, one)
    submit_s = time.monotonic() - t0
    done: dict[str, float] = {}
    with httpx.Client(verify=client_tls(), timeout=30) as c:
        while len(done) < jobs:
            for job_id in submitted:
                if job_id in done:
                    continue
                j = c.get(
                    f"{backend.url}/api/jobs/upscaler_jobs/{job_id}",
                    headers=backend.service_headers,
                ).json()
                if j["status"] == "completed":
                    done[job_id] = time.monotonic()
            time.sleep(0.05)
    latencies = [done[j] - submitted[j] for j in submitted]
    return {
        "submit_jobs_per_s": jobs / submit_s,
        "complete_p50_s": statistics.median(latencies),
        "complete_p95_s": percentile(latencies, 0.95),
    }


def bench_sync(backend: Backend, emulator_url: str, jobs: int) -> dict[str, float]:
    """Sync latency: a due check (asks RunningHub, 150 ms like the real one) vs a check that
    is not due (answered from the shared schedule). Then cached throughput."""
    emulator_set(emulator_url, reset=True)
    emulator_set(emulator_url, outcome="never", latency_ms=150)
    user = f"bench-sync-{time.time_ns()}"
    with httpx.Client(verify=client_tls(), timeout=60) as c:
        c.get(backend.url + "/api/me", headers=backend.user_headers(user))
        backend.rows("UPDATE users SET credits = 1000000 WHERE id = :u RETURNING 1", u=user)
        ids = [submit_upscale(c, backend, user).json()["jobId"] for _ in range(jobs)]
        wait_for(
            lambda: all(
                c.get(
                    f"{backend.url}/api/jobs/upscaler_jobs/{j}", headers=backend.service_headers
                ).json()["taskId"]
                for j in ids
            ),
            timeout=120,
            what="every task id",
        )

        def timed(job_id: str) -> float:
            t = time.monotonic()
            c.post(
                backend.url + SYNC,
                json={"table": "upscaler_jobs", "jobId": job_id},
                headers=backend.service_headers,
            ).raise_for_status()
            return time.monotonic() - t

        upstream = [timed(j) for j in ids]  # first check of each job: due
        cached = [timed(j) for j in ids]  # within the interval: answered from the row
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 3:
            timed(ids[n % len(ids)])
            n += 1
        rate = n / (time.monotonic() - t0)
        for j in ids:
            c.post(
                f"{backend.url}/api/jobs/upscaler_jobs/{j}/cancel",
                headers=backend.user_headers(user),
            )
    return {
        "upstream_p50_ms": 1000 * statistics.median(upstream),
        "cached_p50_ms": 1000 * statistics.median(cached),
        "latency_ratio": statistics.median(upstream) / statistics.median(cached),
        "cached_per_s_one_client": rate,
    }


def bench_tabs(
    backend: Backend, emulator_url: str, tabs: int, interval_s: float, polls: int
) -> dict[str, float]:
    """``tabs`` pollers per job every interval, webhook lost: RunningHub calls made."""
    emulator_set(emulator_url, reset=True)
    emulator_set(emulator_url, webhook="drop", outcome="never")
    user = f"bench-tabs-{time.time_ns()}"
    with httpx.Client(verify=client_tls(), timeout=30) as c:
        job_id = submit_upscale(c, backend, user).json()["jobId"]
        body = {"table": "upscaler_jobs", "jobId": job_id}
        wait_for(
            lambda: c.get(
                f"{backend.url}/api/jobs/upscaler_jobs/{job_id}", headers=backend.service_headers
            ).json()["taskId"],
            what="task id",
        )
        for _ in range(polls):
            parallel(
                tabs,
                lambda _: c.post(backend.url + SYNC, json=body, headers=backend.user_headers(user)),
                workers=tabs,
            )
            time.sleep(interval_s)
        c.post(
            f"{backend.url}/api/jobs/upscaler_jobs/{job_id}/cancel",
            headers=backend.user_headers(user),
        )
    calls = sum(len(v) for v in emulator_stats(emulator_url)["outputs_calls_by_task"].values())
    plan_calls = tabs * polls
    return {"plan_calls": plan_calls, "shared_calls": calls, "ratio": plan_calls / max(calls, 1)}


def _completed_at_wall(backend: Backend, url: str, headers: dict[str, str]) -> float:
    """Follow a job's event stream; the wall-clock time its ``completed`` event arrived."""
    with httpx.stream("GET", url, headers=headers, timeout=60) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and '"status": "completed"' in line:
                return time.time()
    raise RuntimeError(f"{url}: stream ended without completion")


def bench_relay(first: Backend, second: Backend, emulator_url: str, jobs: int) -> dict[str, float]:
    """Two processes, one database, one Redis: a job's ``completed`` event as seen by an event
    stream on each process, measured from the job's ``completedAt``. One of them finished the
    job (local delivery), the other heard of it through the Redis relay."""
    emulator_set(emulator_url, reset=True)
    emulator_set(emulator_url, task_ms=300, webhook="deliver")
    user = f"bench-{time.time_ns()}"
    local: list[float] = []
    relayed: list[float] = []
    for _ in range(jobs):
        with httpx.Client(verify=client_tls(), timeout=30) as c:
            job_id = submit_upscale(c, first, user).json()["jobId"]
        path = f"/api/jobs/upscaler_jobs/{job_id}"
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            seen = [
                pool.submit(_completed_at_wall, b, b.url + path + "/events", b.user_headers(user))
                for b in (first, second)
            ]
            arrivals = sorted(f.result() for f in seen)
        job = httpx.get(first.url + path, headers=first.user_headers(user), timeout=10).json()
        done = datetime.fromisoformat(job["completedAt"]).timestamp()
        local.append(max(0.0, arrivals[0] - done) * 1000)
        relayed.append(max(0.0, arrivals[1] - done) * 1000)
    return {
        "local_p50_ms": statistics.median(local),
        "relayed_p50_ms": statistics.median(relayed),
        "relayed_p95_ms": percentile(relayed, 0.95),
    }


def schedule_model(samples: int = 20_000, seed: int = 7) -> dict[str, float]:
    """The schedule model: durations like RunningHub's simple apps (lognormal, median 80 s),
    every job checked until it ends (a tab open or the server watchdog), webhook lost or not.
    Compares the plan's 30 s + 15 s with the learned start (10th percentile of history)."""
    import random

    from arcano_tools.services.schedule import CheckSchedule, checks_until, detection_delay

    rng = random.Random(seed)
    history = [rng.lognormvariate(4.38, 0.35) for _ in range(500)]  # median ≈ 80 s
    jobs = [rng.lognormvariate(4.38, 0.35) for _ in range(samples)]
    plan = CheckSchedule(
        initial_delay=timedelta(seconds=30),
        poll_interval=timedelta(seconds=15),
        max_timeout=timedelta(minutes=12),
    )
    learned = plan.first_check_delay(history)
    first_plan, interval = 30.0, 15.0
    first_learned = learned.total_seconds() if learned else first_plan
    plan_calls = sum(checks_until(d, first_plan, interval) for d in jobs) / samples
    learned_calls = sum(checks_until(d, first_learned, interval) for d in jobs) / samples
    plan_delays = sorted(detection_delay(d, first_plan, interval) for d in jobs)
    learned_delays = sorted(detection_delay(d, first_learned, interval) for d in jobs)
    return {
        "first_check_s": first_learned,
        "plan_calls_per_job": plan_calls,
        "learned_calls_per_job": learned_calls,
        "calls_ratio": plan_calls / learned_calls,
        "plan_p90_delay_s": percentile(plan_delays, 0.9),
        "learned_p90_delay_s": percentile(learned_delays, 0.9),
        "plan_max_delay_s": plan_delays[-1],
        "learned_max_delay_s": learned_delays[-1],
    }


def relay_run(
    emulator_url: str, pg_server: str, env: dict[str, str], data_dir: Path, jobs: int
) -> dict[str, float]:
    redis = RedisServer()
    redis.start()
    try:
        relay_env = {**env, "REFLEX_REDIS_URL": redis.url}
        database = create_database(pg_server)
        first = start_backend(emulator_url, data_dir, database, relay_env)
        second = start_backend(emulator_url, data_dir, database, relay_env)
        try:
            return bench_relay(first, second, emulator_url, jobs)
        finally:
            first.api.stop()
            second.api.stop()
    finally:
        redis.cleanup()


def run_legacy(
    jobs: int = 60, sync_jobs: int = 20, relay_jobs: int = 20
) -> dict[str, dict[str, float]]:
    """The pre-issue-9 sections, each on its own emulator-backed server."""
    env = {
        "SERVER_WATCHDOG_ENABLED": "false",
        "RUNNINGHUB_MAX_CONCURRENT": "500",
        "UPSTREAM_MAX_RPS": "1000",
        "UPSTREAM_MAX_CONCURRENCY": "16",
        "WATCHDOG_POLL_INTERVAL_MS": "60000",
        "WATCHDOG_MAX_TIMEOUT_MS": "600000",
    }
    results: dict[str, dict[str, float]] = {"schedule model": schedule_model()}
    with tempfile.TemporaryDirectory() as tmp:
        emulator = start_emulator(Path(tmp) / "emu")
        try:
            sqlite = start_backend(emulator.url, Path(tmp) / "sqlite", "", env)
            try:
                results["sqlite"] = bench_submit_and_complete(sqlite, emulator.url, jobs)
                results["sync (sqlite)"] = bench_sync(sqlite, emulator.url, sync_jobs)
            finally:
                sqlite.api.stop()
            interval_ms = 400
            tabs_env = {**env, "WATCHDOG_POLL_INTERVAL_MS": str(interval_ms)}
            tabs = start_backend(emulator.url, Path(tmp) / "tabs", "", tabs_env)
            try:
                results["5 tabs x 10 polls"] = bench_tabs(
                    tabs, emulator.url, tabs=5, interval_s=interval_ms / 1000, polls=10
                )
            finally:
                tabs.api.stop()
            with postgres_server() as server:
                pg = start_backend(emulator.url, Path(tmp) / "pg", create_database(server), env)
                try:
                    results["postgres"] = bench_submit_and_complete(pg, emulator.url, jobs)
                finally:
                    pg.api.stop()
                if shutil.which("redis-server"):
                    results["relay (2 processes)"] = relay_run(
                        emulator.url, server, env, Path(tmp) / "relay", relay_jobs
                    )
        finally:
            emulator.stop()
    return results
