"""Driving ``wrk`` and reading its report; the interleaved floor/target ratio of the issue.

A ratio is the median over ``rounds`` of (target requests/s) / (floor requests/s), each round
running the floor (``GET /healthz``) right before the target, so slow drifts of a shared
machine hit both sides of a ratio alike.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LUA_DIR = Path(__file__).resolve().parent / "lua"
#: The issue's load: 32 connections; 2 threads (the machine has 2 cores).
CONNECTIONS = 32
THREADS = 2
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_ERRORS = re.compile(r"Socket errors:.*")
_TOTAL = re.compile(r"(\d+) requests in ([\d.]+)(\w+)")
_PCT = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass
class WrkRun:
    label: str
    rps: float
    requests: int
    non_2xx: int
    p50_ms: float | None
    p99_ms: float | None
    raw: list[str] = field(default_factory=list)

    def line(self) -> str:
        p99 = f"{self.p99_ms:.1f}" if self.p99_ms is not None else "?"
        return f"{self.label}: {self.rps:,.0f} req/s (p99 {p99} ms, non-2xx {self.non_2xx})"


def require_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk not found: run scripts/bootstrap.sh --bench (Debian package wrk)")
    return found


def run_wrk(
    label: str,
    url: str,
    *,
    duration_s: float,
    script: str | None = None,
    script_args: Sequence[str] = (),
    connections: int = CONNECTIONS,
) -> WrkRun:
    cmd = [
        require_wrk(),
        "-t",
        str(THREADS),
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(duration_s))}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    if script:
        cmd += ["-s", str(LUA_DIR / script)]
    cmd.append(url)
    if script_args:
        cmd += ["--", *script_args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = _RPS.search(out)
    if rps is None:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    non2xx = _NON2XX.search(out)
    total = _TOTAL.search(out)
    pct = {m.group(1): float(m.group(2)) * _UNIT_MS[m.group(3)] for m in _PCT.finditer(out)}
    raw = [f"[{label}] {line.strip()}" for line in out.splitlines() if line.strip()]
    return WrkRun(
        label=label,
        rps=float(rps.group(1)),
        requests=int(total.group(1)) if total else 0,
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        p50_ms=pct.get("50"),
        p99_ms=pct.get("99"),
        raw=raw,
    )


def floor_run(base_url: str, duration_s: float) -> WrkRun:
    return run_wrk("floor GET /healthz", base_url + "/healthz", duration_s=duration_s)


@dataclass
class Ratio:
    """The median ratio of interleaved runs, with every run kept for the raw lines."""

    name: str
    ratios: list[float]
    floors: list[WrkRun]
    targets: list[WrkRun]

    @property
    def value(self) -> float:
        return statistics.median(self.ratios)

    @property
    def floor_rps(self) -> float:
        return statistics.median(r.rps for r in self.floors)

    @property
    def target_rps(self) -> float:
        return statistics.median(r.rps for r in self.targets)

    @property
    def non_2xx(self) -> int:
        return sum(r.non_2xx for r in self.targets)

    def raw(self) -> list[str]:
        return [line for run in (*self.floors, *self.targets) for line in run.raw]


def interleaved(
    base_url: str,
    targets: dict[str, Callable[[int], WrkRun]],
    *,
    rounds: int,
    duration_s: float,
) -> dict[str, Ratio]:
    """``rounds`` × (floor, then each target in turn), every target's rate divided by the
    floor of its round. A target is called with the round's number (it may stage fresh data)."""
    out = {name: Ratio(name, [], [], []) for name in targets}
    for i in range(rounds):
        floor = floor_run(base_url, duration_s)
        for name, target in targets.items():
            run = target(i)
            ratio = out[name]
            ratio.floors.append(floor)
            ratio.targets.append(run)
            ratio.ratios.append(run.rps / floor.rps)
    return out
