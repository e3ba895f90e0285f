"""Target 5 of issue 9: one server-watchdog sweep over 10,000 due active jobs in PostgreSQL,
RunningHub (the stub) answering 804 "still running" to every check.

The jobs are staged while no watchdog runs; then a backend with the watchdog on starts and the
sweep's length is read from the database: from the first job's ``last_checked_at`` to the last
one's (the server's own clock, so start-up is not counted). Peak memory is the backend
process's ``VmHWM``. A sweep that has not ended after ``SWEEP_WAIT_S`` is reported as such,
with the rate it reached.
"""

from __future__ import annotations

import contextlib
import itertools
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from arcano_tools.store import schema as s
from bench import staging
from bench.profile import Profiler
from bench.servers import start_api

SWEEP_JOBS = 10_000
#: The issue's limits for upstream calls during the sweep.
SWEEP_ENV = {
    "SERVER_WATCHDOG_ENABLED": "true",
    "UPSTREAM_MAX_CONCURRENCY": "64",
    "UPSTREAM_MAX_RPS": "2000",
    # the plan's schedule: a checked job is not due again during the sweep
    "WATCHDOG_INITIAL_DELAY_MS": "30000",
    "WATCHDOG_POLL_INTERVAL_MS": "15000",
}
#: How long the benchmark waits for one sweep before reporting how far it got.
SWEEP_WAIT_S = 40.0
POLL_S = 0.25


def _progress(database_url: str, data_dir: Path) -> tuple[int, float | None]:
    """Jobs checked so far, and seconds from the first check to the last."""
    t = s.job_tables[staging.TABLE]
    with staging.connect(database_url, data_dir) as conn:
        row = conn.execute(
            sa.select(
                sa.func.count(t.c.last_checked_at),
                sa.func.min(t.c.last_checked_at),
                sa.func.max(t.c.last_checked_at),
            )
        ).one()
    checked, first, last = row
    span = (last - first).total_seconds() if first is not None and last is not None else None
    return int(checked), span


#: Checks further apart than this belong to different ticks of the watchdog.
TICK_GAP_S = 1.0


def _busy_rate(database_url: str, data_dir: Path) -> float:
    """Checks per second while the watchdog was checking (the waits between its ticks left
    out): what the checking itself costs, apart from how often a tick comes."""
    t = s.job_tables[staging.TABLE]
    with staging.connect(database_url, data_dir) as conn:
        times = sorted(
            r[0]
            for r in conn.execute(
                sa.select(t.c.last_checked_at).where(t.c.last_checked_at.is_not(None))
            )
        )
    if len(times) < 2:
        return 0.0
    busy = sum(
        gap
        for gap in ((b - a).total_seconds() for a, b in itertools.pairwise(times))
        if gap <= TICK_GAP_S
    )
    return len(times) / busy if busy else 0.0


def run_sweep(
    stub_url: str,
    database_url: str,
    work: Path,
    jobs: int = SWEEP_JOBS,
    *,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """``profile_dir``: py-spy records the backend for the whole sweep (``sweep.txt``)."""
    data = work / f"sweep-{uuid.uuid4().hex[:6]}"
    data.mkdir()
    start_api(stub_url, data, database_url).stop()  # migrate the fresh database
    staging.stage_running_jobs(
        database_url, data, jobs, started_ago=timedelta(minutes=2), user_id="bench-sweep"
    )
    server = start_api(stub_url, data, database_url, SWEEP_ENV)
    try:
        profiling = (
            Profiler(server.pid, profile_dir, "sweep")
            if profile_dir is not None
            else contextlib.nullcontext()
        )
        deadline = time.monotonic() + SWEEP_WAIT_S
        checked, span = 0, None
        with profiling:
            while time.monotonic() < deadline:
                checked, span = _progress(database_url, data)
                if checked >= jobs:
                    break
                time.sleep(POLL_S)
        rss = server.vm_hwm_mb()
        busy = _busy_rate(database_url, data)
    finally:
        server.stop()
    done = checked >= jobs
    rate = checked / span if span else 0.0
    return {
        "sweep_jobs": jobs,
        "sweep_checked": checked,
        "sweep_done": done,
        # an unfinished sweep: its length at the rate it reached (labelled as such)
        "sweep_10k_s": span if done else None,
        "sweep_10k_s_extrapolated": None if done or not rate else jobs / rate,
        "sweep_checks_per_s": rate,
        "sweep_checks_per_busy_s": busy,
        "sweep_rss_mb": rss,
        "sweep_env": {k: SWEEP_ENV[k] for k in ("UPSTREAM_MAX_CONCURRENCY", "UPSTREAM_MAX_RPS")},
    }
