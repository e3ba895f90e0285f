"""The sync: ask RunningHub about one job and finish it if it ended — the plan's
``runninghub-job-sync`` edge function, plus what the plan missed.

Replies are exactly the plan's (see ``docs/api.md``), with these additions:

* RunningHub's code 805 (the task FAILED) finishes the job at once as ``failed`` with
  RunningHub's reason → ``{synced: true, status: 'failed', errorMessage}`` (the plan waited
  12 minutes);
* past the job's deadline (``WATCHDOG_MAX_TIMEOUT_MS`` after its submission, as stored) the
  server itself finishes it as ``failed`` with the plan's timeout message, refunds and cancels
  the task upstream in the background — the browser never calls ``/finish``. The deadline is
  kept at the speed of the clock, not of RunningHub: one last look is made only when the job's
  next check is due (none happened within the check interval; a tail check is never put past
  the deadline), without retries, and waits at most one poll interval (``_last_look``);
* one upstream schedule per job: every caller reserves the job's next check in the database,
  so page watchdogs in five tabs, the sync endpoint and the server watchdog make at most one
  RunningHub call per check interval (``services/schedule.py``); a sync that is not due
  answers from the last known state — read from the job's row without writing anything, and
  kept in a per-process cache until the next check (``answer_cache.py``) that the job bus
  clears when the job changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from arcano_tools.domain.errors import JobNotFound
from arcano_tools.domain.records import (
    Account,
    Clock,
    FinishRequest,
    FinishResult,
    Job,
    utcnow,
)
from arcano_tools.domain.repository import Repository
from arcano_tools.domain.status import FinishedBy, JobStatus, SyncReason
from arcano_tools.domain.tools import ToolRegistry
from arcano_tools.domain.urls import OutputHosts
from arcano_tools.runninghub.client import RunningHubClient, TaskOutputs
from arcano_tools.runninghub.errors import APIError, HTTPStatusError, RunningHubError, TaskNotFound
from arcano_tools.services.answer_cache import NotDue, NotDueCache
from arcano_tools.services.auth import Principal
from arcano_tools.services.output_copy import OutputCopier
from arcano_tools.services.queue_manager import QueueManager

log = logging.getLogger(__name__)

#: Shown when a result came from a host that is not RunningHub's (never displayed itself).
MSG_UNTRUSTED_OUTPUT = (
    "O serviço de IA devolveu o resultado de um endereço não reconhecido; por segurança ele "
    "não foi usado. Seus créditos foram devolvidos."
)


@dataclass(frozen=True)
class SyncOutcome:
    """What one sync found and did. ``api/`` turns it into the plan's exact JSON reply.

    ``synced`` is true only for the one sync whose finish changed the job (``status`` is then
    ``completed`` with ``output_url``, or ``failed`` with ``error_message``). Otherwise
    ``reason`` says why nothing changed; for ``already_terminal`` the fields describe the
    job as it ended, for ``still_processing`` ``rh_code``/``rh_msg`` are RunningHub's last
    answer (``cached`` when this sync was not due and did not ask again).
    """

    synced: bool
    status: JobStatus | None = None
    reason: SyncReason | None = None
    output_url: str | None = None
    error_message: str | None = None
    rh_code: int | None = None
    rh_msg: str | None = None
    cached: bool = False
    #: For ``api_error``: the HTTP status RunningHub answered with (``None``: no answer).
    upstream_http_status: int | None = None
    #: RunningHub succeeded and the result is being copied into our storage (the job is still
    #: ``running``; the reply is ``still_processing`` with ``saving: true``).
    saving: bool = False
    #: This sync (or webhook) is the one that reported the success and began the copy.
    began_saving: bool = False

    @classmethod
    def finished(cls, job: Job) -> SyncOutcome:
        return cls(
            synced=True,
            status=job.status,
            output_url=job.output_url,
            error_message=job.error_message,
        )

    @classmethod
    def already_terminal(cls, job: Job) -> SyncOutcome:
        return cls(
            synced=False,
            reason=SyncReason.ALREADY_TERMINAL,
            status=job.status,
            output_url=job.output_url,
            error_message=job.error_message,
        )

    @classmethod
    def saving_result(cls, job: Job, *, began: bool = False) -> SyncOutcome:
        """Success is known and the output is being kept: not finished yet, so the plan's
        page watchdog keeps polling (``still_processing``) until the copy completes it."""
        return cls(
            synced=False,
            reason=SyncReason.STILL_PROCESSING,
            status=job.status,
            rh_code=job.last_upstream_code,
            rh_msg=job.last_upstream_msg,
            saving=True,
            began_saving=began,
        )

    @classmethod
    def still_processing(
        cls, code: int | None, msg: str | None, *, cached: bool = False
    ) -> SyncOutcome:
        return cls(
            synced=False,
            reason=SyncReason.STILL_PROCESSING,
            rh_code=code,
            rh_msg=msg,
            cached=cached,
        )


@dataclass(frozen=True)
class TaskFinish:
    """What :meth:`JobSync.finish_task` did: ``outcome`` when its finish ended the job,
    else ``None`` and ``job`` as the finish found it (``None``: no such job)."""

    outcome: SyncOutcome | None
    job: Job | None


@dataclass
class CheckLease:
    """The server watchdog's lease on the job it checks (``ServerWatchdog``): the sync ends
    it in the write of RunningHub's answer when that answer is "still running" (one write per
    check, not two); otherwise the watchdog ends it on the way out, whatever happened."""

    owner: str
    #: The lease reserved the check already (``lease_due_jobs(reserve_until=…)``).
    reserved: bool = False
    #: The job's account as read once for the watchdog's whole batch (a sweep of 10,000 jobs
    #: read the same row 10,000 times: 7 % of its CPU); ``None``: read it here.
    account: Account | None = None
    #: Called once RunningHub has answered (or the call failed): the watchdog's slot is for
    #: the call, and the next check takes it while this one writes the answer.
    answered: Callable[[], None] | None = None
    released: bool = False


@dataclass(frozen=True)
class SyncTimings:
    initial_delay: timedelta
    poll_interval: timedelta
    max_timeout: timedelta
    timeout_message: str


class JobSync:
    def __init__(
        self,
        *,
        store: Repository,
        client: RunningHubClient,
        queue: QueueManager,
        tools: ToolRegistry,
        timings: SyncTimings,
        default_account: str,
        output_hosts: OutputHosts,
        clock: Clock = utcnow,
    ) -> None:
        self.store = store
        #: Hosts an output URL may come from (anything else fails the job, never shown).
        self.output_hosts = output_hosts
        self.clock = clock
        self.client = client
        self.queue = queue
        self.tools = tools
        self.timings = timings
        self.default_account = default_account
        self.metrics = queue.metrics
        #: Copies results into our storage before completing (``None``: complete with
        #: RunningHub's URL at once, as before results that last).
        self.copier: OutputCopier | None = None
        #: "Not due yet" answers of this process, until the next check (cleared by the bus).
        self.not_due = NotDueCache(queue.bus)

    def deadline(self, job: Job) -> datetime:
        return job.deadline_from + self.timings.max_timeout

    @property
    def check_interval(self) -> timedelta:
        """The shared schedule's interval between checks of a job (``services/schedule.py``)."""
        schedule = self.queue.schedule
        return self.timings.poll_interval if schedule is None else schedule.check_interval

    async def sync(
        self,
        table: str,
        job_id: str,
        principal: Principal,
        *,
        finished_by: FinishedBy = FinishedBy.WATCHDOG,
        force: bool = False,
    ) -> SyncOutcome:
        """The sync endpoint's decisions for one job the caller may see (``force`` skips the
        schedule: the operator's "sync now"). Raises :class:`JobNotFound` for a job that does
        not exist or is someone else's (the same answer, so ids cannot be probed)."""
        if self.tools.by_table(table) is None:
            raise JobNotFound()
        now = self.clock()
        if not force:
            known = self.not_due.get(table, job_id, now)
            if known is not None and principal.may_access(known.user_id):
                self.metrics.sync_calls.labels(finished_by.value, "cached").inc()
                return SyncOutcome.still_processing(known.code, known.msg, cached=True)
        read_at = self.not_due.mark()
        job = await self.store.get_job(table, job_id)
        if job is None or not principal.may_access(job.user_id):
            raise JobNotFound()
        outcome = await self.sync_job(job, finished_by=finished_by, force=force)
        if outcome.reason is SyncReason.STILL_PROCESSING and not (force or outcome.saving):
            # not due before the next check: the reservation's time if this sync asked
            # RunningHub (at least ``now`` + the interval), else the one in the row
            next_check = job.next_check_at if outcome.cached else now + self.check_interval
            if next_check is not None:
                until = min(next_check, self.deadline(job))
                entry = NotDue(job.user_id, until, outcome.rh_code, outcome.rh_msg)
                self.not_due.put(table, job_id, entry, read_at=read_at)
        return outcome

    async def sync_job(
        self,
        job: Job,
        *,
        finished_by: FinishedBy,
        force: bool = False,
        lease: CheckLease | None = None,
    ) -> SyncOutcome:
        """Check one job against RunningHub if due (``force``: whether due or not); with
        ``lease``, the watchdog's: RunningHub's "still running" ends it in the same write."""
        if job.status.is_terminal:
            return SyncOutcome.already_terminal(job)
        if job.saving:  # RunningHub is done; the copier ends it (no deadline applies)
            return SyncOutcome.saving_result(job)
        now = self.clock()
        past_deadline = now >= self.deadline(job)
        if not job.task_id:
            if past_deadline:
                return await self._timeout(job)
            return SyncOutcome(synced=False, reason=SyncReason.NO_TASK_ID)
        name = job.api_account or self.default_account
        account = lease.account if lease is not None else None
        if account is None or account.name != name:
            account = await self.store.get_account(name)
        if account is None or not account.api_key:
            if past_deadline:  # nobody can ask RunningHub: the deadline still holds
                return await self._timeout(job)
            return SyncOutcome(synced=False, reason=SyncReason.NO_API_KEY)

        if lease is not None and lease.reserved:
            due = True  # reserved with the lease (same conditional write)
        elif not force and job.next_check_at is not None and now < job.next_check_at:
            # not due: the conditional reservation would change nothing — a read, no write
            due = False
        else:
            due = await self.store.reserve_check(
                job.table, job.id, now=now, next_check_at=now + self.check_interval
            )
        asked = due or force
        self.metrics.sync_calls.labels(finished_by.value, "upstream" if asked else "cached").inc()
        if not asked:
            if past_deadline:  # checked within the interval: that answer was "still running"
                return await self._timeout(job)
            return SyncOutcome.still_processing(
                job.last_upstream_code, job.last_upstream_msg, cached=True
            )
        try:
            try:
                if past_deadline:
                    outputs = await self._last_look(account.api_key, job.task_id)
                else:
                    outputs = await self._ask(account.api_key, job.task_id, self.deadline(job))
            finally:
                if lease is not None and lease.answered is not None:
                    lease.answered()
        except HTTPStatusError as exc:
            await self.store.record_upstream_error(
                "outputs", f"http_{exc.http_status}", job.table, job.id
            )
            return await self._unanswered(job, past_deadline, exc.http_status)
        except APIError as exc:
            await self._record(job, exc.code, exc.msg, lease)
            await self.store.record_upstream_error("outputs", str(exc.code), job.table, job.id)
            if past_deadline:
                return await self._timeout(job)
            if isinstance(exc, TaskNotFound):
                log.warning(
                    "task unknown upstream",
                    extra={"action": "sync", "job_id": job.id, "task_id": job.task_id},
                )
            return SyncOutcome.still_processing(exc.code, exc.msg)
        except RunningHubError as exc:
            await self.store.record_upstream_error("outputs", type(exc).__name__, job.table, job.id)
            return await self._unanswered(job, past_deadline, None)
        except TimeoutError:  # the deadline's budget ran out (queued behind other calls)
            await self.store.record_upstream_error("outputs", "deadline_budget", job.table, job.id)
            return await self._timeout(job)

        # an answer that ends the job is applied before the lease ends
        still_running = outputs.state not in ("success", "failed")
        later = await self._tail_check(job, self.clock()) if still_running else None
        await self._record(
            job, outputs.code, outputs.msg, lease if still_running else None, next_check_at=later
        )
        return await self._apply(job, outputs, finished_by, past_deadline)

    async def _tail_check(self, job: Job, now: datetime) -> datetime | None:
        """The next check of a job running past nearly all of its tool's jobs, further off
        than the interval (``None``: the reservation's)."""
        cadence = await self.queue.cadence(job.table)
        gap = None if cadence is None else cadence.next_after_answer(now - job.clock_start)
        # never past the deadline: the timeout's last look counts on a check being due there
        return None if gap is None else min(now + gap, self.deadline(job))

    async def _record(
        self,
        job: Job,
        code: int,
        msg: str,
        lease: CheckLease | None,
        *,
        next_check_at: datetime | None = None,
    ) -> None:
        """RunningHub's answer kept for later syncs; with ``lease``, the lease ends with it;
        with ``next_check_at``, the job's next check moves there."""
        owner = lease.owner if lease is not None else None
        await self.store.record_check_result(
            job.table, job.id, code, msg, lease_owner=owner, next_check_at=next_check_at
        )
        if lease is not None:
            lease.released = True

    async def _ask(self, api_key: str, task_id: str, deadline: datetime) -> TaskOutputs:
        """Before the deadline: one call and one retry, answered by the deadline + one poll
        interval at most. A check begun in time but queued behind a slow RunningHub (other
        checks, the dispatcher's creates) must not carry the job seconds past its deadline;
        when that budget runs out the job is past it, and times out like a last look."""
        budget = deadline - self.clock() + self.timings.poll_interval
        async with asyncio.timeout(budget.total_seconds()):
            return await self.client.outputs(api_key, task_id, retries=1)

    async def _last_look(self, api_key: str, task_id: str) -> TaskOutputs:
        """At the deadline: did the task end meanwhile (a lost webhook)? One call, no retry,
        and at most one poll interval of waiting — including the wait for a free upstream
        slot, so 200 jobs due at once behind a slow RunningHub are failed on time instead of
        one after another (``asyncio.TimeoutError`` when the budget runs out)."""
        budget = self.timings.poll_interval.total_seconds()
        async with asyncio.timeout(budget):
            return await self.client.outputs(api_key, task_id, retries=0)

    async def apply_outputs(
        self, job: Job, outputs: TaskOutputs, finished_by: FinishedBy
    ) -> SyncOutcome:
        """Finish a job from what RunningHub said (a webhook's eventData or ``/outputs``)."""
        return await self._apply(job, outputs, finished_by, past_deadline=False)

    async def finish_task(
        self, table: str, job_id: str, task_id: str, outputs: TaskOutputs
    ) -> TaskFinish | None:
        """A webhook's end of the job running ``task_id``, tried before reading the job: a
        first delivery was a read, then the finish — two turns of the store's thread and
        two statements where the finish's guard can say it all (BENCHMARKS.md, item 31).

        ``None`` when ``outputs`` need more than the finish (a result to keep, an untrusted
        host, no end yet): the caller reads the job and applies them. Otherwise the finish
        ran: it changed the job (``outcome``), or the job it returns is the one read in its
        transaction — ended, another task's, saving a result, or ``None`` (no such job) —
        for the caller to handle as it would a read's."""
        request = self._plain_finish(outputs, FinishedBy.WEBHOOK)
        if request is None:
            return None
        try:
            result = await self.queue.finish(table, job_id, replace(request, task_id=task_id))
        except JobNotFound:
            return TaskFinish(None, None)
        if result.changed:
            return TaskFinish(SyncOutcome.finished(result.job), result.job)
        return TaskFinish(None, result.job)

    def _plain_finish(self, outputs: TaskOutputs, finished_by: FinishedBy) -> FinishRequest | None:
        """The finish ``outputs`` ask for when nothing else comes first: a failure, or a
        success on a trusted host when results are not kept (``None`` otherwise)."""
        if outputs.state == "success" and outputs.output_url:
            if self.copier is not None or not self.output_hosts.allows(outputs.output_url):
                return None
            return FinishRequest(JobStatus.COMPLETED, finished_by, output_url=outputs.output_url)
        if outputs.state == "failed":
            message = outputs.failure_message
            return FinishRequest(JobStatus.FAILED, finished_by, error_message=message)
        return None

    async def _apply(
        self, job: Job, outputs: TaskOutputs, finished_by: FinishedBy, past_deadline: bool
    ) -> SyncOutcome:
        if job.saving:  # success was reported already: a later answer (a contradicting
            return SyncOutcome.saving_result(job)  # failure webhook) never ends it
        request = self._plain_finish(outputs, finished_by)
        if request is not None:
            result, outcome = await self._end(job, request)
            if result.changed and request.status is JobStatus.COMPLETED:
                self._observe_recovery(result.job, outputs, finished_by)
            return outcome
        if outputs.state == "success" and outputs.output_url:
            if not self.output_hosts.allows(outputs.output_url):
                return await self._untrusted_output(job, outputs.output_url, finished_by)
            return await self.save_output(job, outputs.output_url, finished_by)
        if past_deadline:
            return await self._timeout(job)
        return SyncOutcome.still_processing(outputs.code, outputs.msg)

    async def save_output(self, job: Job, url: str, reported_by: FinishedBy) -> SyncOutcome:
        """Success: keep RunningHub's URL and copy the result before completing the job."""
        assert self.copier is not None
        began = await self.copier.begin(job, url, reported_by)
        if began.job.status.is_terminal:
            return SyncOutcome.already_terminal(began.job)
        return SyncOutcome.saving_result(began.job, began=began.changed)

    async def _untrusted_output(self, job: Job, url: str, finished_by: FinishedBy) -> SyncOutcome:
        """RunningHub (or whoever answered in its name) named an output on a host we do not
        trust: the URL is never stored or shown; the job fails with a refund and operators see
        the host (add it to ``RUNNINGHUB_OUTPUT_HOSTS`` if RunningHub really moved)."""
        host = urlsplit(url).hostname or "?"
        log.error(
            "output on an untrusted host",
            extra={"action": "output_host_refused", "job_id": job.id, "host": host[:100]},
        )
        await self.store.record_upstream_error("outputs", "output_host", job.table, job.id)
        _, outcome = await self._end(
            job, FinishRequest(JobStatus.FAILED, finished_by, error_message=MSG_UNTRUSTED_OUTPUT)
        )
        return outcome

    def _observe_recovery(self, job: Job, outputs: TaskOutputs, finished_by: FinishedBy) -> None:
        """How long after RunningHub finished did a sync (not the webhook) finish our job?"""
        if finished_by is FinishedBy.WEBHOOK or job.started_at is None or job.completed_at is None:
            return
        cost = next((f.task_cost_time for f in outputs.files if f.task_cost_time is not None), None)
        if cost is None:
            return
        upstream_done = job.started_at + timedelta(seconds=cost)
        self.metrics.recovery_seconds.observe(
            max(0.0, (job.completed_at - upstream_done).total_seconds())
        )

    async def _unanswered(
        self, job: Job, past_deadline: bool, http_status: int | None
    ) -> SyncOutcome:
        if past_deadline:
            return await self._timeout(job)
        return SyncOutcome(
            synced=False, reason=SyncReason.API_ERROR, upstream_http_status=http_status
        )

    async def _timeout(self, job: Job) -> SyncOutcome:
        """Past the deadline: fail with the plan's message and refund now; cancel the task
        upstream in the background (that call never holds the deadline back)."""
        message = self.timings.timeout_message
        result, outcome = await self._end(
            job, FinishRequest(JobStatus.FAILED, FinishedBy.TIMEOUT, error_message=message)
        )
        if result.changed:
            self.queue.cancel_upstream_soon(result.job)
        return outcome

    async def _end(self, job: Job, request: FinishRequest) -> tuple[FinishResult, SyncOutcome]:
        """The guarded finish every sync path ends a job with, and what it means for the
        reply: ``finished`` for the one caller that changed the row, else ``already_terminal``."""
        result = await self.queue.finish(job.table, job.id, request)
        if result.changed:
            return result, SyncOutcome.finished(result.job)
        return result, SyncOutcome.already_terminal(result.job)
