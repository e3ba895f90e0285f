"""When to ask RunningHub about a job, learned from its tool's history: the cadence.

The plan checks every job 30 s after it starts and then every 15 s until its deadline. Calls
go where lost webhooks are likely instead (``docs/simulation.md`` measures the result):

* **the first check** at a low quantile of the durations its tool has shown (the 10th
  percentile of the last completed jobs), never earlier than the plan's initial delay: for a
  tool whose tasks usually take 80 s, checks at 30, 45 and 60 s are wasted on almost every
  job. Only a lost webhook of a job faster than the quantile is found later than the plan's;
* **then every 0.95 poll intervals** while the job is within its tool's usual durations. The
  plan's pages with a second tab poll a job twice per interval (two timers); one shared
  schedule gives every job a little of that, so a lost webhook waits at most 14.25 s;
* **past 1.25 × the tool's 99th percentile**, every 8 poll intervals: a job running that long
  is nearly always one that will never end (the deadline fails it), and checking it every
  15 s for the rest of its 12 minutes was a sixth of all calls. The deadline's own last look
  is kept (``JobSync._tail_check`` never moves a check past it).

While history is thin the plan's first check and no tail apply (at the shorter interval).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

#: Which quantile of past durations starts the checks (the trade-off on the simulation's
#: traces: docs/simulation.md, "What changed").
FIRST_CHECK_QUANTILE = 0.10
#: Completed jobs of a tool needed before its history is trusted.
MIN_HISTORY = 20
#: The shared schedule's interval as a share of the plan's poll interval (see the module).
CHECK_INTERVAL_SHARE = 0.95
#: Past this quantile of its tool's durations a job is checked every ``TAIL_INTERVAL_FACTOR``
#: poll intervals.
DENSE_UNTIL_QUANTILE = 0.99
TAIL_INTERVAL_FACTOR = 8
#: … times this margin: a quantile this high is estimated from a few jobs.
DENSE_UNTIL_MARGIN = 1.25
#: Completed jobs of a tool needed before its tail is trusted (a high quantile of few is
#: their maximum).
MIN_TAIL_HISTORY = 100
#: Never start checking later than this share of the timeout.
MAX_SHARE_OF_TIMEOUT = 0.5


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile by linear interpolation (``values`` need not be sorted)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("quantile of nothing")
    pos = q * (len(ordered) - 1)
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class Cadence:
    """How one tool's jobs are checked: the first check's delay (``None``: the plan's initial
    delay), the interval while a job is within its tool's usual durations, and past
    ``dense_until`` (``None``: never) the longer ``tail_interval``."""

    first: timedelta | None
    interval: timedelta
    dense_until: timedelta | None
    tail_interval: timedelta

    def next_after_answer(self, age: timedelta) -> timedelta | None:
        """The gap to the next check after a "still running" answer at ``age`` when it is
        not the interval's (``None``: it is, as reserved)."""
        if self.dense_until is not None and age >= self.dense_until:
            return self.tail_interval
        return None


@dataclass(frozen=True)
class CheckSchedule:
    initial_delay: timedelta
    poll_interval: timedelta
    max_timeout: timedelta

    def first_check_delay(self, durations_s: Sequence[float]) -> timedelta | None:
        """Delay from a job's start to its first upstream check, given its tool's history.

        ``None`` means the plan's schedule: history is thin, or the tool is fast enough that
        the plan's initial delay already comes after most jobs end.
        """
        if len(durations_s) < MIN_HISTORY:
            return None
        learned = timedelta(seconds=quantile(durations_s, FIRST_CHECK_QUANTILE))
        if learned <= self.initial_delay:
            return None
        return min(learned, self.max_timeout * MAX_SHARE_OF_TIMEOUT)

    @property
    def check_interval(self) -> timedelta:
        return self.poll_interval * CHECK_INTERVAL_SHARE

    def cadence(self, durations_s: Sequence[float]) -> Cadence:
        """The tool's cadence given its history (the plan's, at a shorter interval, while the
        history is thin)."""
        dense_until = None
        if len(durations_s) >= MIN_TAIL_HISTORY:
            tail = quantile(durations_s, DENSE_UNTIL_QUANTILE) * DENSE_UNTIL_MARGIN
            dense_until = timedelta(seconds=tail)
        return Cadence(
            first=self.first_check_delay(durations_s),
            interval=self.check_interval,
            dense_until=dense_until,
            tail_interval=self.poll_interval * TAIL_INTERVAL_FACTOR,
        )


def checks_until(duration_s: float, first_s: float, interval_s: float) -> int:
    """Upstream checks made for a job that ends at ``duration_s`` (its webhook lost or not:
    checks stop once the job is known to be terminal)."""
    if duration_s <= first_s:
        return 1
    return 1 + math.ceil((duration_s - first_s) / interval_s)


def detection_delay(duration_s: float, first_s: float, interval_s: float) -> float:
    """Seconds between the task ending and a check seeing it (its webhook lost)."""
    if duration_s <= first_s:
        return first_s - duration_s
    return first_s + math.ceil((duration_s - first_s) / interval_s) * interval_s - duration_s
