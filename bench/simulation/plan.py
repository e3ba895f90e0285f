"""The plan's watchdog (``WATCHDOG_FALLBACK_PLAN.md``), modelled on the same trace.

The plan is not code of ours, so it is modelled here, rule by rule from the document:

* the watchdog is a React hook (``useJobWatchdog``): it runs only in an open tab, and its
  timer starts when the tab mounts with the job active (``startTimeRef = Date.now()``);
* 30 s after the mount it calls ``runninghub-job-sync``, then every 15 s; each call asks
  RunningHub's ``/outputs`` (the edge function has no shared schedule: two tabs, two calls);
* a success found by the sync finishes the job; RunningHub's 805 (failed) is not ``code 0``,
  so it answers ``still_processing``;
* after a call that did not finish the job, if 12 minutes passed since **this tab's** mount
  the hook forces ``failed`` (timeout);
* a webhook that arrives ends the job (the plan keeps the existing webhook flow, successes and
  failures); an early webhook finds no job with that task id ("Job not found") and is lost;
* Realtime tells every open tab when the job ended, and every hook stops.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from bench.simulation.trace import JobSpec, Outcome

INITIAL_DELAY_S = 30.0
POLL_INTERVAL_S = 15.0
MAX_TIMEOUT_S = 720.0


@dataclass(frozen=True)
class PlanResult:
    """What happened to one job under the plan (times in simulation seconds)."""

    terminal_at: float | None
    status: str | None  # completed | failed | None (still active for ever)
    timed_out: bool
    upstream_calls: int


def _tabs(spec: JobSpec) -> list[tuple[float, float]]:
    """(mount, close) of each tab; the user submits from the first one."""
    forever = float("inf")
    first_close = spec.closes_at if spec.closes_at is not None else forever
    tabs = [(spec.submit_at, first_close)]
    if spec.second_tab_at is not None:
        tabs.append((spec.second_tab_at, forever))
    return tabs


def run_plan_job(spec: JobSpec) -> PlanResult:
    """Replay the plan's rules for one job, in time order."""
    webhook_at = spec.webhook_at if spec.webhook.value == "on_time" else None
    end = spec.upstream_end
    polls: list[tuple[float, int, float]] = []  # (time, tab, mount)
    for tab, (mount, _close) in enumerate(_tabs(spec)):
        heapq.heappush(polls, (mount + INITIAL_DELAY_S, tab, mount))
    closes = [close for _mount, close in _tabs(spec)]
    calls = 0
    while polls:
        at, tab, mount = heapq.heappop(polls)
        if webhook_at is not None and webhook_at <= at:
            break
        if at >= closes[tab]:
            continue  # the tab was closed: its hook is gone
        calls += 1
        if end is not None and at >= end and spec.outcome is Outcome.SUCCESS:
            return PlanResult(at, "completed", False, calls)
        if at - mount >= MAX_TIMEOUT_S:
            return PlanResult(at, "failed", True, calls)
        heapq.heappush(polls, (at + POLL_INTERVAL_S, tab, mount))
    if webhook_at is not None:
        status = "completed" if spec.outcome is Outcome.SUCCESS else "failed"
        return PlanResult(webhook_at, status, False, calls)
    return PlanResult(None, None, False, calls)
