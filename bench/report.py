"""The issue's targets, their verdicts (PASS / FALLS SHORT — a miss is shown, never hidden) and
``bench/results/latest.json``."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    passes: Callable[[float], bool]
    bound: str


def at_least(limit: float) -> Callable[[float], bool]:
    return lambda v: v >= limit


def at_most(limit: float) -> Callable[[float], bool]:
    return lambda v: v <= limit


#: Issue 9's targets measured by this module's sections (other sections add theirs).
TARGETS: list[Target] = [
    Target(
        "webhook_rps_ratio", "1. webhooks, SQLite (first + duplicates)", at_least(0.5), ">= 0.5"
    ),
    Target("webhook_rps_ratio_pg", "1. webhooks, PostgreSQL", at_least(0.5), ">= 0.5"),
    Target("webhook_first_rps_ratio", "1. first deliveries, SQLite", at_least(0.2), ">= 0.2"),
    Target(
        "webhook_first_rps_ratio_pg", "1. first deliveries, PostgreSQL", at_least(0.2), ">= 0.2"
    ),
    Target("webhook_lost", "1. jobs not completed exactly once", at_most(0), "== 0"),
    Target("sync_cached_rps_ratio", "2. sync answering 'not due yet'", at_least(0.5), ">= 0.5"),
    Target("submit_rps_ratio", "3. submission (64x48 PNG)", at_least(0.08), ">= 0.08"),
    Target("sweep_10k_s", "5. watchdog sweep, 10,000 jobs (s)", at_most(10), "<= 10"),
    Target("sweep_rss_mb", "5. backend peak memory, VmHWM (MB)", at_most(300), "<= 300"),
    Target("browser_p95_ratio", "6. webhook -> page p95 / floor's (browser)", at_most(3), "<= 3"),
]


TARGET_KEYS = {t.key for t in TARGETS}


def verdict(target: Target, value: Any) -> str:
    if value is None:
        return "FALLS SHORT (not reached)"
    return "PASS" if target.passes(float(value)) else "FALLS SHORT"


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def write_latest(
    figures: dict[str, Any], verdicts: dict[str, str], raw: list[str], extra: dict[str, Any]
) -> Path:
    RESULTS.mkdir(exist_ok=True)
    # the results file itself is rewritten by this run: not counted as a dirty tree
    status = [
        line
        for line in git("status", "--porcelain").splitlines()
        if not line.endswith("bench/results/latest.json")
    ]
    doc = {
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(status),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs",
        **figures,
        "verdicts": verdicts,
        **extra,
        "wrk_raw": raw,
    }
    path = RESULTS / "latest.json"
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    return path
