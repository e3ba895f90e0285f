"""The learned first-check delay and the arithmetic of the page watchdog's plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from arcano_tools.services.follow import MIN_SYNC_GAP, WatchdogPlan
from arcano_tools.services.schedule import (
    CHECK_INTERVAL_SHARE,
    DENSE_UNTIL_MARGIN,
    DENSE_UNTIL_QUANTILE,
    FIRST_CHECK_QUANTILE,
    MIN_HISTORY,
    MIN_TAIL_HISTORY,
    TAIL_INTERVAL_FACTOR,
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
TIMINGS = SyncTimings(
    initial_delay=PLAN.initial_delay,
    poll_interval=PLAN.poll_interval,
    max_timeout=PLAN.max_timeout,
    timeout_message="x",
)


def test_quantile_interpolates_between_neighbours() -> None:
    assert quantile([10, 20, 30, 40, 50], 0.5) == 30
    assert quantile([50, 10, 40, 20, 30], 0.1) == pytest.approx(14)
    with pytest.raises(ValueError):
        quantile([], 0.1)


def test_thin_history_keeps_the_plans_schedule() -> None:
    assert PLAN.first_check_delay([90.0] * (MIN_HISTORY - 1)) is None


def test_slow_tools_start_checking_at_a_low_quantile_of_their_durations() -> None:
    durations = [70.0 + i for i in range(40)]  # 70 … 109 s
    delay = PLAN.first_check_delay(durations)
    assert delay == timedelta(seconds=quantile(durations, FIRST_CHECK_QUANTILE))
    assert timedelta(seconds=73) < delay < timedelta(seconds=76)


def test_fast_tools_keep_the_plans_initial_delay() -> None:
    assert PLAN.first_check_delay([5.0 + i for i in range(40)]) is None


def test_the_learned_delay_never_exceeds_half_the_timeout() -> None:
    assert PLAN.first_check_delay([3000.0] * 40) == timedelta(minutes=6)


def test_the_shared_interval_is_a_little_shorter_than_the_plans() -> None:
    # the plan's two-tab pages poll twice per interval; one shared schedule checks every job
    # a little more often than one tab would, and pays for it in the tail
    assert PLAN.check_interval == timedelta(seconds=15) * CHECK_INTERVAL_SHARE
    assert timedelta(seconds=14) < PLAN.check_interval < timedelta(seconds=14.43)


def test_thin_history_has_no_tail() -> None:
    cadence = PLAN.cadence([90.0] * (MIN_TAIL_HISTORY - 1))
    assert cadence.dense_until is None
    assert cadence.first == timedelta(seconds=90)  # enough for the first check
    assert cadence.next_after_answer(timedelta(minutes=11)) is None


def test_jobs_past_their_tools_tail_are_checked_less_often() -> None:
    durations = [float(i) for i in range(1, 201)]  # 1 … 200 s
    cadence = PLAN.cadence(durations)
    tail = quantile(durations, DENSE_UNTIL_QUANTILE) * DENSE_UNTIL_MARGIN
    assert cadence.dense_until == timedelta(seconds=tail)
    assert 240 < tail < 250
    assert cadence.interval == PLAN.check_interval
    assert cadence.next_after_answer(timedelta(seconds=tail - 1)) is None
    assert cadence.next_after_answer(timedelta(seconds=tail)) == timedelta(
        seconds=15 * TAIL_INTERVAL_FACTOR
    )


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
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    plan = WatchdogPlan(TIMINGS)
    assert plan.next_sync(job_record(start)) == start + timedelta(seconds=30)
    plan.last_sync = start + timedelta(seconds=31)
    assert plan.next_sync(job_record(start)) == start + timedelta(seconds=46)
    plan.last_sync = start + timedelta(minutes=11, seconds=58)
    # the deadline comes before the next poll: the last sync is at the deadline itself
    assert plan.next_sync(job_record(start)) == start + timedelta(minutes=12)


def test_page_watchdog_plan_follows_the_jobs_shared_schedule() -> None:
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    plan = WatchdogPlan(TIMINGS)
    # a learned first check later than the initial delay: the tab waits for it
    later = start + timedelta(seconds=74)
    assert plan.next_sync(job_record(start, next_check_at=later)) == later
    # never before the initial delay, whatever the row says
    early = start + timedelta(seconds=5)
    assert plan.next_sync(job_record(start, next_check_at=early)) == start + timedelta(seconds=30)
    # checked elsewhere 14.25 s ago: the tab's next sync is the job's next check, not 15 s
    # after its own last sync
    plan.last_sync = start + timedelta(seconds=40)
    due = start + timedelta(seconds=44.25)
    assert plan.next_sync(job_record(start, next_check_at=due)) == due
    # a schedule this tab's last sync did not move (no API key, a job back in the queue):
    # the plan's interval, not a sync a second
    stale = start + timedelta(seconds=35)
    assert plan.next_sync(job_record(start, next_check_at=stale)) == start + timedelta(seconds=55)
    assert plan.next_sync(job_record(start)) == start + timedelta(seconds=55)
    # the deadline still caps it
    beyond = start + timedelta(minutes=13)
    assert plan.next_sync(job_record(start, next_check_at=beyond)) == start + timedelta(minutes=12)
    # past the deadline (a job saving its result has none): once a second, never in a loop
    plan.last_sync = start + timedelta(minutes=12, seconds=30)
    assert plan.next_sync(job_record(start, next_check_at=beyond)) == plan.last_sync + MIN_SYNC_GAP
