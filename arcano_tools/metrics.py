"""Prometheus metrics of one backend process (``GET /metrics``, text format).

One registry per :class:`~arcano_tools.wiring.Services`, never the global one, so two
apps in one process (tests) never mix their counters. Gauges about the database (active jobs,
age of the oldest) are read at scrape time, so every process reports the same truth.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

#: Recovery after upstream completion: seconds to a few minutes (the plan's polls are 15 s).
RECOVERY_BUCKETS = (0.5, 1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 720)


class Metrics:
    def __init__(self) -> None:
        self._children: dict[tuple[Counter, tuple[str, ...]], Any] = {}
        self.registry = CollectorRegistry()
        r = self.registry
        self.db_queries = Counter(
            "arcano_db_queries",
            "SQL statements sent to the database; counted only with ARCANO_COUNT_QUERIES=1 "
            "(a benchmark's probe: issue 9's idle cost of open pages).",
            registry=r,
        )
        self.jobs_finished = Counter(
            "arcano_jobs_finished",
            "Jobs that reached a terminal status, by status and by the path that finished them.",
            ["table", "status", "finished_by"],
            registry=r,
        )
        self.output_copies = Counter(
            "arcano_output_copies",
            "Tries to copy a finished job's output into our storage, by outcome (saved, "
            "retry, gave_up: the job completed with RunningHub's URL).",
            ["outcome"],
            registry=r,
        )
        self.webhooks = Counter(
            "arcano_webhooks",
            "Webhooks received, by outcome (accepted, duplicate, early, rejected, malformed, "
            "unmatched, ignored).",
            ["outcome"],
            registry=r,
        )
        self.upstream_calls = Counter(
            "arcano_upstream_calls",
            "RunningHub calls by endpoint and outcome (envelope code, http_<status>, transport).",
            ["endpoint", "code"],
            registry=r,
        )
        self.sync_calls = Counter(
            "arcano_sync_calls",
            "Syncs run, by caller (watchdog = page watchdog or sync endpoint, server_watchdog, "
            "webhook) and whether RunningHub was asked (upstream) or the schedule answered "
            "(cached).",
            ["caller", "result"],
            registry=r,
        )
        self.recovery_seconds = Histogram(
            "arcano_recovery_seconds",
            "For jobs finished by a sync rather than the webhook: seconds between RunningHub "
            "finishing the task and our job reaching its terminal status.",
            buckets=RECOVERY_BUCKETS,
            registry=r,
        )
        self.bus_relay = Counter(
            "arcano_bus_relay",
            "Job updates relayed between backend processes through Redis, by outcome (sent, "
            "received, failed, dropped, malformed).",
            ["outcome"],
            registry=r,
        )
        self.slot_corrections = Counter(
            "arcano_slot_corrections",
            "Times the server watchdog found an account's in-flight count differing from the "
            "jobs holding its slots, and corrected it.",
            ["account"],
            registry=r,
        )
        self.webhooks_not_kept = Counter(
            "arcano_webhooks_not_kept",
            "Old-style webhooks for a task id not stored yet that were answered but not kept, "
            "because MAX_UNMATCHED_WEBHOOKS unapplied ones already were (a flood).",
            registry=r,
        )
        self.starts_given_back = Counter(
            "arcano_starts_given_back",
            "Starts put back in the queue before RunningHub's create call answered, by cause "
            "(stop = this process stopping gracefully, crash = another process's start lease "
            "expired).",
            ["cause"],
            registry=r,
        )
        self.orphan_tasks = Counter(
            "arcano_orphan_tasks",
            "Tasks of a start that had lost its claim (orphans), cancelled and never applied, "
            "by how their id became known: create_answer, or webhook (each delivery counts).",
            ["found_by"],
            registry=r,
        )
        self.active_jobs = Gauge(
            "arcano_active_jobs", "Jobs in an active status (all processes).", registry=r
        )
        self.oldest_active_age = Gauge(
            "arcano_oldest_active_job_age_seconds",
            "Age of the oldest active job, from its submission (0 when none).",
            registry=r,
        )

    def count(self, counter: Counter, *labels: str) -> None:
        """``counter.labels(*labels).inc()`` with the labelled child kept: ``labels()``
        checks its arguments and takes a lock at every call (2–3 % of a first webhook
        delivery's CPU, BENCHMARKS.md item 31)."""
        key = (counter, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(*labels)
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
