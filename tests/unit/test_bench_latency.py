"""The browser benchmark's arithmetic (bench/latency.py): nearest-rank summaries, the ratio
against the floor, and the figures' names in latest.json. Values worked out by hand."""

from __future__ import annotations

from bench.latency import Summary, p95_ratio


def test_summary_of_a_hundred_samples_is_nearest_rank() -> None:
    # 1..100 ms shuffled: p50 is the 50th value, p95 the 95th, max the 100th
    samples = [float((i * 37) % 100 + 1) for i in range(100)]
    assert sorted(samples) == [float(i) for i in range(1, 101)]
    s = Summary.of(samples)
    assert (s.n, s.p50_ms, s.p95_ms, s.max_ms, s.missed) == (100, 50.0, 95.0, 100.0, 0)


def test_summary_of_nothing_has_no_figures() -> None:
    s = Summary.of([], missed=3)
    assert (s.n, s.p50_ms, s.p95_ms, s.max_ms, s.missed) == (0, None, None, None, 3)


def test_figures_are_named_by_prefix_and_rounded() -> None:
    figures = Summary.of([1.234, 5.678], missed=1).figures("browser_floor")
    assert figures == {
        "browser_floor_n": 2,
        "browser_floor_missed": 1,
        "browser_floor_p50_ms": 1.23,
        "browser_floor_p95_ms": 5.68,
        "browser_floor_max_ms": 5.68,
    }


def test_ratio_is_p95_over_the_floors_p95() -> None:
    ours = Summary.of([10.0] * 19 + [30.0])  # p95 = the 19th of 20 values = 10
    floor = Summary.of([4.0] * 20)
    assert p95_ratio(ours, floor) == 2.5


def test_a_missed_result_leaves_no_ratio() -> None:
    ours = Summary.of([1.0] * 100, missed=1)
    assert p95_ratio(ours, Summary.of([1.0] * 100)) is None


def test_no_floor_leaves_no_ratio() -> None:
    assert p95_ratio(Summary.of([1.0]), Summary.of([])) is None
    assert p95_ratio(Summary.of([]), Summary.of([1.0])) is None
