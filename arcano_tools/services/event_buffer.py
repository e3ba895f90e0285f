"""Webhook events whose effect is committed (or that have none), written in bulk off the
request path.

RunningHub retries its webhooks, and a job that has ended gets the same delivery again and
again. Each one is kept in ``webhook_events`` (the webhook health on ``/admin`` counts them),
but writing it before answering made a retried delivery cost a database transaction — most
of a duplicate's time under load (``make bench``, target 1; BENCHMARKS.md). Such an event
changes nothing, so it waits here: one background task writes what gathered every
``FLUSH_EVERY_S`` in one statement, and a stop writes what is left. A delivery that finished
its job is recorded the same way once that finish has committed (its own transaction was a
sixth of a first delivery's CPU, BENCHMARKS.md item 26).

What this costs: a process killed (SIGKILL) loses at most ``FLUSH_EVERY_S`` of these
records — health counts, never a job's state, a charge or a refund — and ``/admin`` shows
them up to that much later. Beyond ``MAX_PENDING`` unwritten events (a database down
for a long while) further ones are counted in the metric only, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from arcano_tools.domain.records import WebhookRecord
from arcano_tools.domain.repository import Repository

log = logging.getLogger(__name__)

#: How long an event may wait before it is written (and the most a SIGKILL can lose).
FLUSH_EVERY_S = 0.5
#: Events held at most while the database cannot take them; later ones are not kept.
MAX_PENDING = 10_000


class EventBuffer:
    """The events of one process (and event loop), written by one background task."""

    def __init__(self, store: Repository, *, flush_every_s: float = FLUSH_EVERY_S) -> None:
        self.store = store
        self.flush_every_s = flush_every_s
        self._pending: list[WebhookRecord] = []
        self._writer: asyncio.Task[None] | None = None
        #: Events not kept because ``MAX_PENDING`` were waiting (logged once per flush).
        self.dropped = 0
        self._closed = False
        self._stopping = asyncio.Event()

    def add(self, record: WebhookRecord) -> None:
        """Keep ``record`` for the next write (no waiting: called on the request path)."""
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            return
        self._pending.append(record)
        if not self._closed and (self._writer is None or self._writer.done()):
            self._stopping = asyncio.Event()  # of this writer's event loop
            self._writer = asyncio.create_task(self._write_soon(), name="webhook-events")

    async def _write_soon(self) -> None:
        # events added while a write is under way are written by the next round
        while self._pending:
            with contextlib.suppress(TimeoutError):  # a stop ends the wait at once
                await asyncio.wait_for(self._stopping.wait(), timeout=self.flush_every_s)
            await self.flush()
            if self._closed:
                return

    async def flush(self) -> None:
        """Write every event gathered so far, in one statement. A failure (the database
        down) keeps them for the next round instead of losing them."""
        if self.dropped:
            log.warning(
                "webhook events not kept (too many waiting)",
                extra={"action": "webhook_events", "n": self.dropped},
            )
            self.dropped = 0
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            await self.store.record_webhooks(batch)
        except Exception:
            log.warning(
                "webhook events not written yet",
                extra={"action": "webhook_events", "n": len(batch)},
                exc_info=True,
            )
            self._pending = (batch + self._pending)[:MAX_PENDING]

    def open(self) -> None:
        """(Again) write in the background: services started after a stop."""
        self._closed = False

    async def aclose(self) -> None:
        """At a stop: end the writer and write what is left (before the store closes)."""
        self._closed = True
        self._stopping.set()
        if self._writer is not None:
            # woken, not cancelled: a batch it is writing would be lost
            with contextlib.suppress(Exception):
                await self._writer
        self._writer = None
        await self.flush()
