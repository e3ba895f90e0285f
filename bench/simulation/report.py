"""Target 7's figures: ours against the plan's on one trace, with PASS / FALLS SHORT."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.simulation.ours import OursResult
from bench.simulation.plan import MAX_TIMEOUT_S, POLL_INTERVAL_S, PlanResult
from bench.simulation.trace import JobSpec, Outcome, Webhook

#: "Stuck": still active this long past its deadline (two poll intervals, issue 9).
STUCK_AFTER_S = 2 * POLL_INTERVAL_S
INITIAL_DELAY_S = 30.0


@dataclass(frozen=True)
class JobFate:
    """One job under one system, reduced to what the figures need."""

    spec: JobSpec
    terminal_at: float | None
    deadline: float
    timed_out: bool
    calls: int

    @property
    def stuck(self) -> bool:
        return self.terminal_at is None or self.terminal_at > self.deadline + STUCK_AFTER_S

    @property
    def latency(self) -> float:
        """Upstream end → terminal (inf: never terminal); only for tasks that ended."""
        end = self.spec.upstream_end
        assert end is not None
        return math.inf if self.terminal_at is None else self.terminal_at - end

    @property
    def wrong_timeout(self) -> bool:
        end = self.spec.upstream_end
        return self.timed_out and end is not None and end < self.deadline


def of_ours(spec: JobSpec, r: OursResult) -> JobFate:
    return JobFate(spec, r.terminal_at, r.deadline, r.finished_by == "timeout", r.upstream_calls)


def of_plan(spec: JobSpec, r: PlanResult) -> JobFate:
    # the plan's deadline for "stuck" is the job's own (12 min from the submit); its timeout
    # is counted from whichever tab forced it (always before a later tab's 12 minutes)
    deadline = (
        r.terminal_at
        if r.timed_out and r.terminal_at is not None
        else spec.submit_at + MAX_TIMEOUT_S
    )
    return JobFate(spec, r.terminal_at, deadline, r.timed_out, r.upstream_calls)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``inf`` entries are jobs that never ended)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _stats(outcomes: Sequence[JobFate], keep: Callable[[JobFate], bool]) -> dict[str, object]:
    lat = [o.latency for o in outcomes if o.spec.upstream_end is not None and keep(o)]
    return {
        "n": len(lat),
        "p50_s": _round(percentile(lat, 0.50)),
        "p95_s": _round(percentile(lat, 0.95)),
        "max_s": _round(max(lat) if lat else None),
    }


def _round(x: float | None) -> float | str | None:
    if x is None:
        return None
    return "inf" if math.isinf(x) else round(x, 1)


def _open(o: JobFate) -> bool:
    return o.spec.closes_at is None


def _webhook(kind: Webhook, *, open_only: bool = False) -> Callable[[JobFate], bool]:
    """Successful tasks whose webhook was ``kind`` (failures are a group of their own)."""

    def keep(o: JobFate) -> bool:
        wanted = o.spec.webhook is kind and o.spec.outcome is Outcome.SUCCESS
        return wanted and (_open(o) or not open_only)

    return keep


def summarize(outcomes: Sequence[JobFate]) -> dict[str, object]:
    jobs = len(outcomes) or 1
    return {
        "stuck": sum(o.stuck for o in outcomes),
        "wrong_timeouts": sum(o.wrong_timeout for o in outcomes),
        "timeouts": sum(o.timed_out for o in outcomes),
        "calls_per_job": round(sum(o.calls for o in outcomes) / jobs, 3),
        "lost": _stats(outcomes, _webhook(Webhook.LOST)),
        "lost_open": _stats(outcomes, _webhook(Webhook.LOST, open_only=True)),
        "early": _stats(outcomes, _webhook(Webhook.EARLY)),
        "early_open": _stats(outcomes, _webhook(Webhook.EARLY, open_only=True)),
        "failures": _stats(outcomes, lambda o: o.spec.outcome is Outcome.FAILED),
        "on_time": _stats(outcomes, _webhook(Webhook.ON_TIME)),
    }


def figures(ours: dict[str, object], plan: dict[str, object]) -> dict[str, object]:
    """The keys ``bench/results/latest.json`` carries (issue 9)."""

    def p95(summary: dict[str, object], group: str) -> object:
        stats = summary[group]
        assert isinstance(stats, dict)
        return stats["p95_s"]

    return {
        "stuck_ours": ours["stuck"],
        "stuck_plan": plan["stuck"],
        "fail_p95_ours_s": p95(ours, "failures"),
        "fail_p95_plan_s": p95(plan, "failures"),
        "lost_p95_ours_s": p95(ours, "lost"),
        "lost_p95_ours_open_s": p95(ours, "lost_open"),
        "lost_p95_plan_open_s": p95(plan, "lost_open"),
        "early_p95_ours_s": p95(ours, "early"),
        "early_p95_plan_open_s": p95(plan, "early_open"),
        "calls_per_job_ours": ours["calls_per_job"],
        "calls_per_job_plan": plan["calls_per_job"],
        "wrong_timeouts_ours": ours["wrong_timeouts"],
        "wrong_timeouts_plan": plan["wrong_timeouts"],
    }


def _num(x: object) -> float:
    if x is None:
        return 0.0
    if x == "inf":
        return math.inf
    assert isinstance(x, int | float)
    return float(x)


def verdicts(f: dict[str, object]) -> dict[str, bool]:
    """Issue 9's pass criteria for target 7."""
    return {
        "0 stuck": f["stuck_ours"] == 0,
        "failures p95 <= initial delay + one interval": _num(f["fail_p95_ours_s"])
        <= INITIAL_DELAY_S + POLL_INTERVAL_S,
        "lost p95 <= plan's (open pages)": _num(f["lost_p95_ours_s"])
        <= _num(f["lost_p95_plan_open_s"]),
        "early p95 <= plan's (open pages)": _num(f["early_p95_ours_s"])
        <= _num(f["early_p95_plan_open_s"]),
        "calls per job <= plan's": _num(f["calls_per_job_ours"]) <= _num(f["calls_per_job_plan"]),
    }
