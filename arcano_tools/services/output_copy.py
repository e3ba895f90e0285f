"""Results that last: copy a finished job's output from RunningHub into our storage before the
job becomes ``completed`` (RunningHub's links last about a day).

Flow (``docs/jobs.md`` draws it)::

    success reported (webhook, sync, server watchdog, /finish)
      ─► begin: RunningHub's URL kept, copy "saving", slot given back (job stays running)
      ─► copy now: fetch (allowed hosts only) ─► verify (type, size, decodes) ─► store
      ─► "saved" (our key) ─► the one guarded finish: completed, output_url = our copy
    a try fails ─► retried with backoff (40 s, 80 s, 160 s, 320 s: five tries over ~10 min)
      ─► after the fifth: "failed", completed with RunningHub's URL, listed on /admin

* The beginner copies at once; ``output_copy_due_at`` is its lease. A process that dies
  mid-copy leaves the job due again once the lease passes, and any process's sweep
  (:meth:`OutputCopier.run`, every second) resumes it — the same key is written again.
* Every step is conditional on the job being active, and the end is the one guarded finish:
  one completion, one charge, and a terminal job never changes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import httpx

from arcano_tools.domain.records import Clock, FinishRequest, FinishResult, Job, utcnow
from arcano_tools.domain.repository import Repository
from arcano_tools.domain.status import FinishedBy, JobStatus, OutputCopy
from arcano_tools.domain.urls import OutputHosts
from arcano_tools.services.bus import JobUpdate
from arcano_tools.services.output_verify import (
    OutputLimits,
    OutputRefused,
    VerifiedOutput,
    verify_output,
)
from arcano_tools.services.queue_manager import QueueManager
from arcano_tools.storage import ObjectStorage, StorageError
from arcano_tools.tls import client_tls

log = logging.getLogger(__name__)

#: Tries before a job completes with RunningHub's URL instead of our copy.
OUTPUT_COPY_MAX_TRIES = 5
#: Wait after the first failed try, doubled after each: 40+80+160+320 s = 10 minutes.
OUTPUT_COPY_RETRY_BASE_S = 40.0
#: How long one try may hold a job before a sweep may take it over (a fetch and a store).
OUTPUT_COPY_LEASE_S = 180.0
#: Seconds one fetch of an output may take.
OUTPUT_FETCH_TIMEOUT_S = 60.0
#: Redirects followed while fetching (each hop must be on an allowed host).
OUTPUT_MAX_REDIRECTS = 3
#: How often the sweep looks for copies that are due (retries, copies left by a crash).
OUTPUT_COPY_SWEEP_S = 1.0
#: A stop waits this long for the copies it cancelled to unwind.
STOP_WAIT_S = 2.0
#: Copies one sweep takes per table.
OUTPUT_COPY_BATCH = 20


@dataclass(frozen=True)
class CopyPolicy:
    """The copier's knobs (tests shrink the times)."""

    max_tries: int = OUTPUT_COPY_MAX_TRIES
    retry_base: timedelta = timedelta(seconds=OUTPUT_COPY_RETRY_BASE_S)
    lease: timedelta = timedelta(seconds=OUTPUT_COPY_LEASE_S)
    limits: OutputLimits = field(default_factory=OutputLimits)
    fetch_timeout_s: float = OUTPUT_FETCH_TIMEOUT_S

    def retry_delay(self, failed_tries: int) -> timedelta:
        """Wait after the ``failed_tries``-th failure (1-based)."""
        return self.retry_base * (1 << max(0, failed_tries - 1))


def result_key(job: Job, ext: str) -> str:
    """Where a job's result lives in our storage (one key per job: a retry overwrites)."""
    return f"results/{job.table}/{job.id}.{ext}"


class OutputCopier:
    def __init__(
        self,
        *,
        store: Repository,
        storage: ObjectStorage,
        queue: QueueManager,
        hosts: OutputHosts,
        url_of: Callable[[str], str],
        policy: CopyPolicy | None = None,
        clock: Clock = utcnow,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.store = store
        self.storage = storage
        self.queue = queue
        self.hosts = hosts
        #: The public URL of a stored result (what ``output_url`` becomes).
        self.url_of = url_of
        self.policy = policy or CopyPolicy()
        self.clock = clock
        self.metrics = queue.metrics
        self._http = httpx.AsyncClient(
            timeout=self.policy.fetch_timeout_s,
            follow_redirects=False,
            transport=transport,
            verify=client_tls(),
        )
        self._tasks: set[asyncio.Task[None]] = set()

    # --- the start: success is known -------------------------------------------------------

    async def begin(self, job: Job, upstream_url: str, reported_by: FinishedBy) -> FinishResult:
        """Keep RunningHub's URL and start the copy (in the background); ``changed`` for the
        one caller that began it. The job stays ``running`` until the copy ends."""
        began = await self.store.begin_output_copy(
            job.table,
            job.id,
            upstream_url=upstream_url,
            reported_by=reported_by,
            due_at=self.clock() + self.policy.lease,
        )
        if began is None:
            raise LookupError(f"job {job.table}/{job.id} vanished")
        if began.changed:
            log.info(
                "output copy begun",
                extra={
                    "action": "output_copy_begin",
                    "job_id": job.id,
                    "table": job.table,
                    "reported_by": reported_by.value,
                },
            )
            self.queue.bus.publish(JobUpdate.of(began.job))
            self.queue.slot_freed()
            self.copy_soon(began.job)
        return began

    def copy_soon(self, job: Job) -> None:
        task = asyncio.create_task(self._copy_logged(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _copy_logged(self, job: Job) -> None:
        try:
            await self.copy(job)
        except Exception:  # the lease passes and a sweep tries again
            log.exception("output copy crashed", extra={"action": "output_copy", "job_id": job.id})

    # --- one try ------------------------------------------------------------------------------

    async def copy(self, job: Job) -> Job | None:
        """One try for a job this caller holds (just begun, or leased by a sweep); returns the
        job as it ended, or ``None`` while a retry is scheduled."""
        if job.output_copy is OutputCopy.SAVED and job.output_key:
            return await self._complete(job, self.url_of(job.output_key))
        if job.output_copy is OutputCopy.FAILED or job.output_copy is None:
            return await self._complete(job, job.upstream_output_url)
        tries = job.output_copy_tries + 1
        try:
            verified = await self._fetch(job.upstream_output_url or "")
            key = result_key(job, verified.ext)
            await asyncio.to_thread(self.storage.put, key, verified.content, verified.content_type)
        except (OutputRefused, StorageError, httpx.HTTPError, OSError) as exc:
            return await self._failed(job, tries, _describe(exc))
        if not await self.store.record_output_copy(
            job.table, job.id, state=OutputCopy.SAVED, tries=tries, output_key=key
        ):
            return None  # ended meanwhile (nothing else may end a saving job; kept safe)
        self.metrics.output_copies.labels("saved").inc()
        return await self._complete(job, self.url_of(key))

    async def _fetch(self, url: str) -> VerifiedOutput:
        """GET the output, following redirects only onto allowed hosts, reading at most the
        size limit; then verify it."""
        limit = self.policy.limits.largest
        for _ in range(OUTPUT_MAX_REDIRECTS + 1):
            if not self.hosts.allows(url):
                raise OutputRefused("output URL is not on an allowed host")
            async with self._http.stream("GET", url) as response:
                if response.is_redirect:
                    url = str(response.url.join(response.headers.get("location", "")))
                    continue
                if response.status_code != httpx.codes.OK:
                    raise OutputRefused(f"HTTP {response.status_code}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise OutputRefused(f"declared {declared} bytes, over {limit}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise OutputRefused(f"body over {limit} bytes")
                content_type = response.headers.get("content-type")
            return verify_output(bytes(body), content_type, self.policy.limits)
        raise OutputRefused("too many redirects")

    async def _failed(self, job: Job, tries: int, error: str) -> Job | None:
        log.warning(
            "output copy failed",
            extra={"action": "output_copy", "job_id": job.id, "tries": tries, "error": error},
        )
        if tries >= self.policy.max_tries:
            if not await self.store.record_output_copy(
                job.table, job.id, state=OutputCopy.FAILED, tries=tries, error=error
            ):
                return None
            self.metrics.output_copies.labels("gave_up").inc()
            log.error(
                "output copy given up: completing with RunningHub's URL",
                extra={"action": "output_copy_gave_up", "job_id": job.id, "table": job.table},
            )
            return await self._complete(job, job.upstream_output_url)
        self.metrics.output_copies.labels("retry").inc()
        await self.store.record_output_copy(
            job.table,
            job.id,
            state=OutputCopy.SAVING,
            tries=tries,
            due_at=self.clock() + self.policy.retry_delay(tries),
            error=error,
        )
        return None

    async def _complete(self, job: Job, output_url: str | None) -> Job:
        """The one guarded finish, as the path that reported the success."""
        by = job.output_reported_by or FinishedBy.WEBHOOK
        result = await self.queue.finish(
            job.table, job.id, FinishRequest(JobStatus.COMPLETED, by, output_url=output_url)
        )
        return result.job

    # --- the sweep: retries and copies left by a crash -----------------------------------------

    async def sweep(self) -> int:
        """Take the copies that are due and try each once; returns how many were tried."""
        due = await self.store.lease_output_copies(
            now=self.clock(), lease_for=self.policy.lease, limit=OUTPUT_COPY_BATCH
        )
        await asyncio.gather(*(self._copy_logged(job) for job in due))
        return len(due)

    async def run(self, stop: asyncio.Event) -> None:
        """The sweep loop (a lifespan task)."""
        while not stop.is_set():
            try:
                await self.sweep()
            except Exception:
                log.exception("output copy sweep failed", extra={"action": "output_copy"})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=OUTPUT_COPY_SWEEP_S)

    async def aclose(self) -> None:
        """A stop: cut the copies in flight (a deploy must not wait on a slow CDN; their lease
        passes and any process resumes them, writing the same key), then close."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=STOP_WAIT_S)
        await self._http.aclose()


def _describe(exc: Exception) -> str:
    """What ``/admin`` shows of a failed try (never a URL with its signature)."""
    if isinstance(exc, OutputRefused | StorageError):
        return str(exc)[:300]
    return type(exc).__name__  # an HTTP or OS error's text may carry the URL
