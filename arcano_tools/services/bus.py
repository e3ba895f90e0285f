"""The job-update bus: every change of a job is published here; pages follow their job.

In-process fan-out over asyncio queues; with several backend processes on one database,
``services/bus_relay.py`` carries every update to the others through Redis. A
subscriber that stops reading loses old updates rather than growing memory: each queue is
bounded and the oldest update is dropped — the subscriber re-reads the job from the store
whenever it matters, so an update is a hint to refresh, never the only copy of the truth.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from arcano_tools.domain.records import Job

#: Updates buffered per subscriber before the oldest is dropped.
SUBSCRIBER_BUFFER = 100


@dataclass(frozen=True)
class JobUpdate:
    table: str
    job_id: str
    user_id: str
    status: str
    output_url: str | None = None
    error_message: str | None = None
    finished_by: str | None = None
    #: The job as this process wrote it (never relayed: other processes re-read it). A page
    #: following the job shows it without reading it again — a read per followed job per
    #: change, on the way from a webhook to the page (BENCHMARKS.md, item 22).
    job: Job | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, job: Job) -> JobUpdate:
        return cls(
            table=job.table,
            job_id=job.id,
            user_id=job.user_id,
            status=job.status.value,
            output_url=job.output_url,
            error_message=job.error_message,
            finished_by=job.finished_by.value if job.finished_by else None,
            job=job,
        )


class JobBus:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[JobUpdate]] = set()
        #: Subscribers of one job only: a page follows one job, and with a thousand pages
        #: open a burst of updates must not wake every page for every job.
        self._by_job: dict[str, set[asyncio.Queue[JobUpdate]]] = {}
        #: False while updates made in other processes may not reach this bus (the Redis
        #: relay is configured but not connected): followers then re-read their job every
        #: tick instead of waiting for an update. A bus with no relay serves one process.
        self.complete = True
        #: Where this process's own updates also go (the Redis relay when several processes
        #: serve one database); must not block.
        self.forward: Callable[[JobUpdate], None] | None = None
        #: Called with every update this process hears of (its own and relayed ones), before
        #: any subscriber: per-process caches drop what an update makes stale. Must not block.
        self._listeners: list[Callable[[JobUpdate], None]] = []

    def listen(self, listener: Callable[[JobUpdate], None]) -> None:
        self._listeners.append(listener)

    def publish(self, update: JobUpdate) -> None:
        """An update made in this process: to local subscribers and to the other processes."""
        self.deliver(update)
        if self.forward is not None:
            self.forward(update)

    def deliver(self, update: JobUpdate) -> None:
        """Hand an update to this process's subscribers only (the relay's incoming side)."""
        for listener in self._listeners:
            listener(update)
        for queue in [*self._subscribers, *self._by_job.get(update.job_id, ())]:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(update)

    @asynccontextmanager
    async def subscribe(self, job_id: str | None = None) -> AsyncIterator[asyncio.Queue[JobUpdate]]:
        """A queue of every update, or only of ``job_id``'s (the oldest dropped when full:
        for one job the newest update, the one that matters, is always kept)."""
        queue: asyncio.Queue[JobUpdate] = asyncio.Queue(maxsize=SUBSCRIBER_BUFFER)
        group = self._subscribers if job_id is None else self._by_job.setdefault(job_id, set())
        group.add(queue)
        try:
            yield queue
        finally:
            group.discard(queue)
            if job_id is not None and not group:
                self._by_job.pop(job_id, None)
