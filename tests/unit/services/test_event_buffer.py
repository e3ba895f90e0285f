"""Duplicates' records are written in bulk off the request path (``EventBuffer``), and none
is lost to a database hiccup or a stop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from arcano_tools.domain.records import WebhookRecord
from arcano_tools.domain.status import WebhookOutcome
from arcano_tools.services.event_buffer import EventBuffer
from arcano_tools.store.memory import InMemoryStore


def duplicate(n: int) -> WebhookRecord:
    return WebhookRecord(
        received_at=datetime(2026, 1, 5, 12, 0, n, tzinfo=UTC),
        outcome=WebhookOutcome.DUPLICATE,
        table="upscaler_jobs",
        job_id=f"job-{n}",
        task_id=f"T{n}",
    )


class FlakyStore(InMemoryStore):
    """Refuses the first ``failures`` bulk writes (the database down for a moment)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.writes = 0

    async def record_webhooks(self, records: Sequence[WebhookRecord]) -> None:
        self.writes += 1
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database unavailable")
        await super().record_webhooks(records)


async def test_events_are_written_together_after_the_interval_without_being_asked() -> None:
    store = FlakyStore(failures=0)
    events = EventBuffer(store, flush_every_s=0.01)

    for n in range(5):
        events.add(duplicate(n))
    assert await store.webhook_counts() == {}  # nothing written on the request path
    await asyncio.wait_for(events._writer, timeout=5)  # type: ignore[arg-type]

    assert await store.webhook_counts() == {"duplicate": 5}
    assert store.writes == 1  # one write for the five


async def test_a_failed_write_keeps_the_events_for_the_next_round() -> None:
    store = FlakyStore(failures=2)
    events = EventBuffer(store, flush_every_s=0.01)

    events.add(duplicate(1))
    events.add(duplicate(2))
    await asyncio.wait_for(events._writer, timeout=5)  # type: ignore[arg-type]

    assert store.writes == 3  # two refused, then written
    assert await store.webhook_counts() == {"duplicate": 2}


async def test_a_stop_writes_what_is_left_at_once() -> None:
    store = FlakyStore(failures=0)
    events = EventBuffer(store, flush_every_s=3600)  # the timer would never come
    events.add(duplicate(1))

    await asyncio.wait_for(events.aclose(), timeout=5)

    assert await store.webhook_counts() == {"duplicate": 1}
    events.add(duplicate(2))  # after the stop: kept for an explicit flush, no new timer
    assert events._writer is None
