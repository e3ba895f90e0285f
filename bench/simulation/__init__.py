"""Target 7 of issue 9: our watchdogs against the plan's, on one seeded trace.

``python -m bench.simulation [--jobs N] [--seed S]``; ``run()`` is what ``make bench`` calls.
The assumptions are in ``docs/simulation.md``.
"""

from __future__ import annotations

import asyncio
import json
import time

from bench.simulation.ours import run_ours
from bench.simulation.plan import run_plan_job
from bench.simulation.report import figures, of_ours, of_plan, summarize, verdicts
from bench.simulation.trace import generate

JOBS = 10_000
SEED = 20261129


def run(jobs: int = JOBS, seed: int = SEED, *, verbose: bool = True) -> dict[str, object]:
    """Simulate ``jobs`` jobs under both watchdogs; print and return the figures."""
    started = time.perf_counter()
    specs = generate(jobs, seed)
    ours_results = asyncio.run(run_ours(specs))
    ours = summarize([of_ours(s, r) for s, r in zip(specs, ours_results, strict=True)])
    plan = summarize([of_plan(s, run_plan_job(s)) for s in specs])
    result = figures(ours, plan)
    checks = verdicts(result)
    result["simulation_jobs"] = jobs
    result["simulation_seed"] = seed
    result["simulation_wall_s"] = round(time.perf_counter() - started, 1)
    if verbose:
        print(f"simulation: {jobs} jobs, seed {seed}, {result['simulation_wall_s']} s wall")
        for name, summary in (("ours", ours), ("plan", plan)):
            print(f"  {name:5} {json.dumps(summary)}")
        for name, ok in checks.items():
            print(f"  {'PASS' if ok else 'FALLS SHORT':11} {name}")
    result["simulation_detail"] = {"ours": ours, "plan": plan}
    result["simulation_pass"] = all(checks.values())
    return result
