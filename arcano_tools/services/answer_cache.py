"""Per-process memory of answers that cannot change before a known time, so the hot paths
answer them without the database (issue 9):

* :class:`NotDueCache` — a sync that is not due yet answers RunningHub's last word; until the
  job's next check it can only change if the job changes, and every change of a job is
  published on the job bus, which drops the entry. Entries end at the next check (or the
  deadline, whichever is first), so even an update the bus never carried (several processes
  without the Redis relay) is stale for at most one poll interval. Nothing is served while the
  bus says it may be missing other processes' updates (the relay is down).
* :class:`EndedJobs` — a job that ended never changes again (every finish is guarded on an
  active status and jobs are never deleted), so "ended, with this task" is kept as is: a
  retried webhook is recognised without reading its job — and a byte-identical retry (what
  RunningHub's retries are) without even parsing its body, by a digest of the body that was
  found to name the job's task.

Both are bounded (least recently stored entries go first).
"""

from __future__ import annotations

import hashlib
import itertools
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from arcano_tools.domain.status import JobStatus
from arcano_tools.services.bus import JobBus, JobUpdate

#: Entries kept at most per cache (a few hundred bytes each).
MAX_ENTRIES = 50_000
#: Jobs whose last update is remembered, to refuse entries read before it.
MAX_RECENT_UPDATES = 50_000

Key = tuple[str, str]


@dataclass(frozen=True)
class NotDue:
    user_id: str
    #: The answer holds until then (the next check, or the deadline if earlier).
    until: datetime
    code: int | None
    msg: str | None


class NotDueCache:
    def __init__(self, bus: JobBus, *, max_entries: int = MAX_ENTRIES) -> None:
        self._bus = bus
        self._max = max_entries
        self._entries: OrderedDict[Key, NotDue] = OrderedDict()
        #: Sequence number of each job's last update heard of, and of the last one forgotten.
        self._seq = itertools.count(1)
        self._now_seq = 0
        self._updated: OrderedDict[Key, int] = OrderedDict()
        self._forgotten_seq = 0
        bus.listen(self._on_update)

    def mark(self) -> int:
        """A point in the stream of updates; take it before reading the job to be cached."""
        return self._now_seq

    def get(self, table: str, job_id: str, now: datetime) -> NotDue | None:
        if not self._bus.complete:
            return None
        entry = self._entries.get((table, job_id))
        if entry is None:
            return None
        if now >= entry.until:
            del self._entries[(table, job_id)]
            return None
        return entry

    def put(self, table: str, job_id: str, entry: NotDue, *, read_at: int) -> None:
        """Keep ``entry`` unless the job changed since ``read_at`` (a :meth:`mark`)."""
        key = (table, job_id)
        if self._updated.get(key, 0) > read_at or self._forgotten_seq > read_at:
            return
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def _on_update(self, update: JobUpdate) -> None:
        key = (update.table, update.job_id)
        self._entries.pop(key, None)
        self._now_seq = next(self._seq)
        self._updated[key] = self._now_seq
        self._updated.move_to_end(key)
        while len(self._updated) > MAX_RECENT_UPDATES:
            _, seq = self._updated.popitem(last=False)
            self._forgotten_seq = max(self._forgotten_seq, seq)


#: Bytes of a body's digest: a 128-bit BLAKE2b, so no two bodies share one (kept instead of
#: the body itself: 16 bytes an entry, not a webhook's few hundred).
BODY_DIGEST_BYTES = 16


def body_digest(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=BODY_DIGEST_BYTES).digest()


class Ended(NamedTuple):
    status: JobStatus
    task_id: str | None
    #: :func:`body_digest` of a delivery whose ``taskId`` is ``task_id`` (``None``: none seen).
    body: bytes | None = None


class EndedJobs:
    """``(table, job id) → (final status, task id, a delivery's body digest)`` of jobs known to
    have ended."""

    def __init__(self, *, max_entries: int = MAX_ENTRIES) -> None:
        self._max = max_entries
        self._entries: OrderedDict[Key, Ended] = OrderedDict()

    def get(self, table: str, job_id: str) -> Ended | None:
        return self._entries.get((table, job_id))

    def put(
        self,
        table: str,
        job_id: str,
        status: JobStatus,
        task_id: str | None,
        *,
        body: bytes | None = None,
    ) -> None:
        """Remember an ended job; ``body``: the digest of a delivery naming its ``task_id``."""
        if not status.is_terminal:
            raise ValueError(f"only an ended job is kept, not a {status} one")
        self._entries[(table, job_id)] = Ended(status, task_id, body)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
