"""When to ask RunningHub about a job for the first time, learned from the tool's history.

The plan checks every job 30 s after it starts and then every 15 s. For a tool whose tasks
usually take 80 s, the checks at 30, 45 and 60 s are wasted on almost every job. We start a
job's checks at a low quantile of the durations its tool has shown (the 10th percentile of the
last completed jobs), never earlier than the plan's initial delay, and fall back to the plan's
constants while history is thin. The poll interval after the first check is the plan's, so a
lost webhook of a typical job is still found within one interval.

The trade-off, measured by ``make bench`` (``schedule model`` line): the few jobs faster than
the quantile (10 %) wait for that first check instead of the plan's — their webhook usually
arrives anyway; only a lost webhook of such a fast job is found later than the plan would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

#: Which quantile of past durations starts the checks.
FIRST_CHECK_QUANTILE = 0.10
#: Completed jobs of a tool needed before its history is trusted.
MIN_HISTORY = 20
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
