"""Target 7's simulation on a trace small enough to work out by hand.

Eight jobs, far apart so they never meet, each staging one case. The expected times and call
counts below follow from the plan's rules (30 s, then every 15 s, 12-minute timeout from the
tab's mount) and from ours (one shared schedule per job: 30 s, then every 0.95 × 15 = 14.25 s
— eight jobs are too few history for a learned first check or a tail — checked by the open
tab when due or by the server watchdog on its ticks every 14.25 / 8 = 1.78125 s, 805 ends a
job at once, the deadline enforced by the server) — the simulation must reproduce them
exactly, running our real services. Every time here is exact in binary floating point.
"""

from __future__ import annotations

import pytest

from bench.simulation.ours import run_ours
from bench.simulation.plan import run_plan_job
from bench.simulation.report import figures, of_ours, of_plan, summarize
from bench.simulation.trace import JobSpec, Outcome, Webhook, generate


def job(
    index: int,
    submit_at: float,
    outcome: Outcome = Outcome.SUCCESS,
    ends_after: float | None = 100.0,
    webhook: Webhook = Webhook.LOST,
    *,
    closes_at: float | None = None,
    second_tab_at: float | None = None,
) -> JobSpec:
    return JobSpec(
        index=index,
        tool="upscaler",
        submit_at=submit_at,
        outcome=outcome,
        ends_after=ends_after,
        webhook=webhook,
        webhook_delay=1.0,
        closes_at=closes_at,
        second_tab_at=second_tab_at,
    )


TRACE = [
    # ends at 40 s, webhook at 41 s: one check at 30 s (running) in both
    job(0, 0, ends_after=40.0, webhook=Webhook.ON_TIME),
    # ends at 1000, webhook lost: the plan's checks at 930, 945, …, 1005 find it; ours at
    # 930, 944.25, …, 1001.25 (the tab's, due before any tick)
    job(1, 900),
    # fails (805) at 1850, webhook lost: ours ends it at the 1858.5 check; the plan polls
    # until its 12 minutes (1830…2520: 47 calls) and times it out — wrongly
    job(2, 1800, Outcome.FAILED, ends_after=50.0),
    # ends at 2800, webhook lost, tab closed at 2710: the plan never asks (stuck); our server
    # watchdog checks at its first tick past 2730 (2730.65625 = 1533 ticks), then every 8
    # ticks to 2801.90625
    job(3, 2700, closes_at=2710.0),
    # never ends: the timeout at 4320 in both; the plan's 47 checks (3630…4320), ours 49
    # (3630…4314, so no last look at 4320) and the cancel upstream
    job(4, 3600, Outcome.NEVER, ends_after=None),
    # early webhook (during the create call): ours applies it at once; the plan loses it
    # ("Job not found") and finds the result at its first poll
    job(5, 4500, ends_after=0.0, webhook=Webhook.EARLY),
    # a second tab at 5420: the plan's two timers ask RunningHub 6 + 4 times; ours, 6 (the
    # tabs share the schedule: 5430 … 5501.25)
    job(6, 5400, second_tab_at=5420.0),
    # submitted between two server watchdog ticks: the tab's syncs (6333…6404.25) come first
    job(7, 6303),
]

#: (terminal_at, status, calls) per job.
OURS = [
    (41.0, "completed", 1),
    (1001.25, "completed", 6),
    (1858.5, "failed", 3),
    (2801.90625, "completed", 6),
    (4320.0, "failed", 50),
    (4500.0, "completed", 0),
    (5501.25, "completed", 6),
    (6404.25, "completed", 6),
]
PLAN = [
    (41.0, "completed", 1),
    (1005.0, "completed", 6),
    (2520.0, "failed", 47),
    (None, None, 0),
    (4320.0, "failed", 47),
    (4530.0, "completed", 1),
    (5505.0, "completed", 10),
    (6408.0, "completed", 6),
]


async def test_our_real_services_give_the_hand_computed_answer() -> None:
    results = await run_ours(TRACE)

    assert [(r.terminal_at, r.status, r.upstream_calls) for r in results] == OURS
    # an open tab syncs when its job's check falls due, before the server watchdog's next
    # tick; the closed tab's job is the server watchdog's
    assert [r.finished_by for r in results] == [
        "webhook",
        "watchdog",
        "watchdog",
        "server_watchdog",
        "timeout",
        "webhook",
        "watchdog",
        "watchdog",
    ]


def test_the_plan_model_gives_the_hand_computed_answer() -> None:
    results = [run_plan_job(spec) for spec in TRACE]

    assert [(r.terminal_at, r.status, r.upstream_calls) for r in results] == PLAN
    assert [r.timed_out for r in results] == [False, False, True, False, True, False, False, False]


async def test_the_figures_compare_the_two_on_the_same_trace() -> None:
    ours = summarize([of_ours(s, r) for s, r in zip(TRACE, await run_ours(TRACE), strict=True)])
    plan = summarize([of_plan(s, run_plan_job(s)) for s in TRACE])

    f = figures(ours, plan)

    assert (f["stuck_ours"], f["stuck_plan"]) == (0, 1)
    assert (f["wrong_timeouts_ours"], f["wrong_timeouts_plan"]) == (0, 1)
    assert f["fail_p95_ours_s"] == 8.5  # failed at 1850, ended at 1858.5
    assert f["fail_p95_plan_s"] == 670.0  # …at 2520
    assert f["lost_p95_ours_s"] == 1.9  # 1.25 (three) and 1.90625 (the closed tab)
    assert f["lost_p95_plan_open_s"] == 5.0
    assert (f["early_p95_ours_s"], f["early_p95_plan_open_s"]) == (0.0, 30.0)
    assert f["calls_per_job_ours"] == round(78 / 8, 3)
    assert f["calls_per_job_plan"] == round(118 / 8, 3)


def test_the_trace_is_the_same_for_the_same_seed_and_follows_the_shares() -> None:
    specs = generate(2000, seed=11)

    assert specs == generate(2000, seed=11)
    assert specs != generate(2000, seed=12)
    never = sum(s.outcome is Outcome.NEVER for s in specs) / len(specs)
    lost = sum(s.webhook is Webhook.LOST for s in specs) / len(specs)
    assert never == pytest.approx(0.02, abs=0.01)
    assert lost == pytest.approx(0.10, abs=0.02)
    assert all(s.ends_after == 0.0 for s in specs if s.webhook is Webhook.EARLY and s.ends_after)
