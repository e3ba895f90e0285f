"""The trace both watchdogs are run on: seeded, so ours and the plan's see the same jobs.

Every random draw is made here, once per job, before either system runs; the systems only
react to it. The figures come from issue 9 and each assumption is listed in
``docs/simulation.md``.
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass

#: Median task duration per tool, seconds (issue 9).
MEDIAN_S: dict[str, float] = {
    "upscaler": 40.0,
    "pose_changer": 80.0,
    "veste_ai": 90.0,
    "video_upscaler": 240.0,
}
#: Share of jobs per tool (assumed: the image tools are used more than the video one).
TOOL_MIX: dict[str, float] = {
    "upscaler": 0.40,
    "pose_changer": 0.20,
    "veste_ai": 0.25,
    "video_upscaler": 0.15,
}
#: Lognormal shape: the p99 of Pose Changer is ~5.4 min, of the video tool ~16 min.
DURATION_SIGMA = 0.6
#: RunningHub's outcome of a task (issue 9).
P_FAILED = 0.03
P_NEVER_ENDS = 0.02
#: What happens to the task's webhook (issue 9).
P_WEBHOOK_LOST = 0.10
P_WEBHOOK_EARLY = 0.02
#: What the user does with the page (issue 9): the rest keep one tab open to the end.
P_CLOSES = 0.30
P_SECOND_TAB = 0.20
#: A webhook that arrives "on time" takes this long after the task's end (uniform).
WEBHOOK_DELAY_S = (0.2, 2.0)
#: New jobs per second (Poisson): about 120 jobs active at once with the durations above.
ARRIVALS_PER_S = 1.0
#: A page is closed, or a second one opened, this long after the submit at most when the task
#: never ends (otherwise: before the task's end).
NEVER_ENDS_HORIZON_S = 720.0


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILED = "failed"  # RunningHub code 805
    NEVER = "never"  # RunningHub says "running" (804) forever


class Webhook(enum.StrEnum):
    ON_TIME = "on_time"
    LOST = "lost"
    #: Sent before the create call's answer (with the task id) was saved: the task ended at
    #: once (an immediate failure or a cached result), during the create call.
    EARLY = "early"


@dataclass(frozen=True)
class JobSpec:
    """One job of the trace, times in seconds from the start of the simulation."""

    index: int
    tool: str
    submit_at: float
    outcome: Outcome
    #: Seconds from the submit (= the task's creation) to RunningHub's end of the task;
    #: ``None`` when it never ends. 0 for an early webhook.
    ends_after: float | None
    webhook: Webhook
    webhook_delay: float
    #: When the only page is closed (``None``: kept open to the end).
    closes_at: float | None = None
    #: When a second tab is opened (``None``: no second tab); both stay open.
    second_tab_at: float | None = None

    @property
    def upstream_end(self) -> float | None:
        return None if self.ends_after is None else self.submit_at + self.ends_after

    @property
    def webhook_at(self) -> float | None:
        """When the webhook reaches us (``None``: lost, or the task never ends)."""
        if self.ends_after is None or self.webhook is Webhook.LOST:
            return None
        if self.webhook is Webhook.EARLY:
            return self.submit_at
        return self.submit_at + self.ends_after + self.webhook_delay


def _pick(rng: random.Random, shares: dict[str, float]) -> str:
    x = rng.random()
    for name, share in shares.items():
        x -= share
        if x < 0:
            return name
    return next(reversed(shares))


def generate(jobs: int, seed: int, *, arrivals_per_s: float = ARRIVALS_PER_S) -> list[JobSpec]:
    """``jobs`` jobs, the same for the same seed."""
    rng = random.Random(seed)
    specs: list[JobSpec] = []
    t = 0.0
    for index in range(jobs):
        t += rng.expovariate(arrivals_per_s)
        tool = _pick(rng, TOOL_MIX)
        duration = rng.lognormvariate(math.log(MEDIAN_S[tool]), DURATION_SIGMA)
        x = rng.random()
        outcome = (
            Outcome.FAILED
            if x < P_FAILED
            else Outcome.NEVER
            if x < P_FAILED + P_NEVER_ENDS
            else Outcome.SUCCESS
        )
        # a failure happens somewhere in the run (out of memory, a bad node), not at its end
        fail_point = rng.uniform(0.1, 1.0)
        y = rng.random()
        webhook = (
            Webhook.LOST
            if y < P_WEBHOOK_LOST
            else Webhook.EARLY
            if y < P_WEBHOOK_LOST + P_WEBHOOK_EARLY
            else Webhook.ON_TIME
        )
        delay = rng.uniform(*WEBHOOK_DELAY_S)
        ends_after: float | None
        if outcome is Outcome.NEVER:
            ends_after = None
        elif webhook is Webhook.EARLY:
            ends_after = 0.0
        else:
            ends_after = duration * (fail_point if outcome is Outcome.FAILED else 1.0)
        horizon = NEVER_ENDS_HORIZON_S if ends_after is None else max(ends_after, 1.0)
        z = rng.random()
        moment = rng.uniform(0.0, horizon)
        specs.append(
            JobSpec(
                index=index,
                tool=tool,
                submit_at=round(t, 3),
                outcome=outcome,
                ends_after=None if ends_after is None else round(ends_after, 3),
                webhook=webhook,
                webhook_delay=round(delay, 3),
                closes_at=round(t + moment, 3) if z < P_CLOSES else None,
                second_tab_at=round(t + moment, 3)
                if P_CLOSES <= z < P_CLOSES + P_SECOND_TAB
                else None,
            )
        )
    return specs
