"""The learned first-check delay and the arithmetic of the page watchdog's plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from arcano_tools.services.follow import WatchdogPlan
from arcano_tools.services.schedule import (
    MIN_HISTORY,
    CheckSchedule,
    checks_until,
    detection_delay,
    quantile,
)
from arcano_tools.services.sync import SyncTimings
from tests.support.records import job_record

PLAN = CheckSchedule(
    initial_delay=timedelta(seconds=30),
    poll_interval=timedelta(seconds=15),
    max_timeout=timedelta(minutes=12),
)


def test_quantile_interpolates_between_neighbours() -> None:
    assert quantile([10, 20, 30, 40, 50], 0.5) == 30
    assert quantile([50, 10, 40, 20, 30], 0.1) == pytest.approx(14)
    with pytest.raises(ValueError):
        quantile([], 0.1)


def test_thin_history_keeps_the_plans_schedule() -> None:
    assert PLAN.first_check_delay([90.0] * (MIN_HISTORY - 1)) is None


def test_slow_tools_start_checking_at_the_tenth_percentile() -> None:
    durations = [70.0 + i for i in range(40)]  # 70 … 109 s
    delay = PLAN.first_check_delay(durations)
    assert delay == timedelta(seconds=quantile(durations, 0.1))


def test_fast_tools_keep_the_plans_initial_delay() -> None:
    assert PLAN.first_check_delay([5.0 + i for i in range(40)]) is None


def test_the_learned_delay_never_exceeds_half_the_timeout() -> None:
    assert PLAN.first_check_delay([3000.0] * 40) == timedelta(minutes=6)


def test_checks_and_detection_delay_of_a_lost_webhook() -> None:
    # plan: checks at 30, 45, 60, 75, 90 for a job ending at 80 s
    assert checks_until(80, 30, 15) == 5
    assert detection_delay(80, 30, 15) == 10
    # learned start at 70: checks at 70, 85
    assert checks_until(80, 70, 15) == 2
    assert detection_delay(80, 70, 15) == 5
    # a job faster than the first check is seen at the first check
    assert checks_until(20, 30, 15) == 1
    assert detection_delay(20, 30, 15) == 10


def test_page_watchdog_plan_counts_from_the_database_start_not_from_now() -> None:
    timings = SyncTimings(
        initial_delay=timedelta(seconds=30),
        poll_interval=timedelta(seconds=15),
        max_timeout=timedelta(minutes=12),
        timeout_message="x",
    )
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    plan = WatchdogPlan(timings)
    assert plan.next_sync(job_record(start)) == start + timedelta(seconds=30)
    plan.last_sync = start + timedelta(seconds=31)
    assert plan.next_sync(job_record(start)) == start + timedelta(seconds=46)
    plan.last_sync = start + timedelta(minutes=11, seconds=58)
    # the deadline comes before the next poll: the last sync is at the deadline itself
    assert plan.next_sync(job_record(start)) == start + timedelta(minutes=12)
