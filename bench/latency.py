"""Latency samples of the browser benchmark (target 6): their summary and the ratio against
the floor's, with the figures' names in ``latest.json``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.simulation.report import percentile


@dataclass(frozen=True)
class Summary:
    """Nearest-rank percentiles of one path's latencies (ms); ``missed``: samples that never
    showed (counted apart, never as a number)."""

    n: int
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None
    missed: int = 0

    @classmethod
    def of(cls, latencies_ms: Sequence[float], *, missed: int = 0) -> Summary:
        return cls(
            n=len(latencies_ms),
            p50_ms=percentile(latencies_ms, 0.50),
            p95_ms=percentile(latencies_ms, 0.95),
            max_ms=max(latencies_ms) if latencies_ms else None,
            missed=missed,
        )

    def figures(self, prefix: str) -> dict[str, float | int | None]:
        """``{prefix}_p95_ms`` and its siblings, rounded to 0.01 ms."""
        return {
            f"{prefix}_n": self.n,
            f"{prefix}_missed": self.missed,
            f"{prefix}_p50_ms": _ms(self.p50_ms),
            f"{prefix}_p95_ms": _ms(self.p95_ms),
            f"{prefix}_max_ms": _ms(self.max_ms),
        }


def p95_ratio(path: Summary, floor: Summary) -> float | None:
    """The path's p95 over the floor's; None when either is unknown, or when a sample of the
    path never showed (a page that missed its result cannot pass on the others' speed)."""
    if path.p95_ms is None or not floor.p95_ms or path.missed:
        return None
    return round(path.p95_ms / floor.p95_ms, 3)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
