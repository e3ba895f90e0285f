"""Receiving RunningHub's ``TASK_END`` webhooks.

RunningHub's webhooks carry no signature, may arrive before the create call returns, and are
retried (duplicates). So:

* the URL we give RunningHub names **our** job and carries an HMAC token: an early webhook
  always finds its job (its task id is stored from the webhook if still missing), and a forged
  one is refused with 401 before anything changes;
* a duplicate meets a terminal job and is a no-op (the guarded finish makes that safe even when
  two copies race); a job that ended never changes, so this process remembers it
  (``answer_cache.EndedJobs``) and a retried delivery is recognised without reading the job;
* a malformed body with a valid token is recorded and answered 400, and the job is synced from
  ``/outputs`` instead, so nothing is lost;
* the URL's token also names the start (claim) that created the task: a webhook from a start
  that lost its claim (interrupted by a stop or a crash, its job back in the queue) is an orphan
  task's — never applied, its task cancelled upstream — so one result is applied per job;
* the old-style route (no job id, only ``taskId``) cannot authenticate its sender, so it is only
  a hint: the job is re-checked with ``/outputs`` before anything is trusted; an event whose task
  id is not stored yet is kept and applied the moment the id is saved — at most
  ``MAX_UNMATCHED_WEBHOOKS`` of them unapplied, so a flood cannot fill the database.

Every event is recorded in ``webhook_events`` (the operator page's webhook health): refused,
malformed and kept ones before the answer, applied ones and duplicates in the next bulk write
(``event_buffer``), once the job's change they caused is committed.
"""

from __future__ import annotations

import enum
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from arcano_tools import constants as c
from arcano_tools.domain.records import Job, WebhookRecord
from arcano_tools.domain.repository import Repository
from arcano_tools.domain.status import FinishedBy, JobStatus, WebhookOutcome
from arcano_tools.domain.tools import ToolRegistry
from arcano_tools.runninghub.client import TaskOutputs, parse_outputs_envelope
from arcano_tools.runninghub.errors import APIError, MalformedResponse
from arcano_tools.services.answer_cache import EndedJobs, body_digest
from arcano_tools.services.event_buffer import EventBuffer
from arcano_tools.services.queue_manager import webhook_token_claim, webhook_token_ok
from arcano_tools.services.sync import JobSync, SyncOutcome

log = logging.getLogger(__name__)

#: Valid webhook tokens remembered per process (a retried delivery skips the HMAC).
MAX_GOOD_TOKENS = 50_000
#: How much of a raw body is kept for forensics.
BODY_KEEP_CHARS = 4000
#: RunningHub's task ids are decimal numbers (19 digits today); we accept letters, digits,
#: ``-`` and ``_`` up to the stored column's width, and nothing else.
TASK_ID_PATTERN = re.compile(rf"[A-Za-z0-9_-]{{1,{c.TASK_ID_MAX_CHARS}}}")


class Delivery(enum.StrEnum):
    """What one webhook delivery amounted to, for the sender (``api/`` picks the HTTP reply)."""

    #: Applied to its job (finished it, or learned it is still running).
    APPLIED = "applied"
    #: Its job had already ended: nothing changed.
    DUPLICATE = "duplicate"
    #: A valid token for a job we do not have (deleted, or another database).
    UNKNOWN_JOB = "unknown_job"
    #: Old-style delivery for a task id not stored yet: kept, applied once the id is saved
    #: (answered alike but not stored while ``MAX_UNMATCHED_WEBHOOKS`` already are).
    KEPT = "kept"
    #: Unknown table or a token that is not this job's: refused before anything changed.
    BAD_TOKEN = "bad_token"
    #: A task id that is not the one stored for its job, or a task of a start that lost its
    #: claim (an orphan, cancelled upstream): refused, never applied.
    TASK_MISMATCH = "task_mismatch"
    #: Not RunningHub's format (``detail`` says how); the job is synced from ``/outputs``.
    MALFORMED = "malformed"


@dataclass(frozen=True)
class WebhookResult:
    delivery: Delivery
    #: The job's status after the delivery (``None`` when unknown or still processing).
    status: JobStatus | None = None
    #: The webhook came before the create call returned (its task id was stored from it).
    early: bool = False
    #: Why a delivery is malformed.
    detail: str = ""


class MalformedWebhook(ValueError):
    pass


@dataclass(frozen=True)
class WebhookEvent:
    event: str
    task_id: str
    envelope: dict[str, Any]


def parse_webhook(raw: bytes) -> WebhookEvent:
    """RunningHub's documented body: ``{event, taskId, eventData: "<JSON string>"}``."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedWebhook("body is not JSON") from exc
    if not isinstance(body, dict):
        raise MalformedWebhook("body is not a JSON object")
    task_id = body.get("taskId")
    # bool is an int to Python: "taskId": false was kept as task "False"
    if isinstance(task_id, bool) or not isinstance(task_id, str | int) or not str(task_id).strip():
        raise MalformedWebhook("taskId missing")
    negative = isinstance(task_id, int) and task_id < 0  # RunningHub numbers its tasks from 0
    if negative or not TASK_ID_PATTERN.fullmatch(str(task_id).strip()):
        # checked before anything is stored: a forged 200,000-character id once filled the
        # events table, and a 65-character one overflowed PostgreSQL's column (a 503)
        raise MalformedWebhook(
            f"taskId is not a RunningHub task id (1–{c.TASK_ID_MAX_CHARS} letters/digits)"
        )
    data = body.get("eventData")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise MalformedWebhook("eventData is not JSON") from exc
    if not isinstance(data, dict):
        raise MalformedWebhook("eventData missing")
    return WebhookEvent(str(body.get("event") or ""), str(task_id).strip(), data)


class WebhookReceiver:
    def __init__(
        self, *, store: Repository, sync: JobSync, tools: ToolRegistry, webhook_secret: bytes
    ) -> None:
        self.store = store
        self.sync = sync
        self.tools = tools
        self.secret = webhook_secret
        self.metrics = sync.metrics
        #: Unapplied unmatched events kept at most (the constant; tests shrink it).
        self.max_unmatched = c.MAX_UNMATCHED_WEBHOOKS
        self._last_not_kept: datetime | None = None
        #: Jobs this process saw ended (final status, task id): duplicates need no read.
        self.ended = EndedJobs()
        #: Duplicates' records, written in bulk off the request path.
        self.events = EventBuffer(store)
        #: ``(table, job id, token)`` found valid (see :meth:`_token_ok`).
        self._good_tokens: set[tuple[str, str, str]] = set()
        self._duplicates_seen = self.metrics.webhooks.labels(WebhookOutcome.DUPLICATE)

    def _token_ok(self, table: str, job_id: str, token: str | None) -> bool:
        """The URL's token is ours for this job; a token verified once is remembered, so
        RunningHub's retries cost a set lookup, not an HMAC (bounded: cleared when full)."""
        key = (table, job_id, token or "")
        if key in self._good_tokens:
            return True
        if not webhook_token_ok(self.secret, table, job_id, token):
            return False
        if len(self._good_tokens) >= MAX_GOOD_TOKENS:
            self._good_tokens.clear()
        self._good_tokens.add(key)
        return True

    async def _record(self, *, outcome: WebhookOutcome, **fields: Any) -> None:
        self.metrics.webhooks.labels(outcome).inc()
        record = WebhookRecord(received_at=self.sync.clock(), outcome=outcome, **fields)
        await self.store.record_webhook(record)

    def _note(self, *, outcome: WebhookOutcome, **fields: Any) -> None:
        """Like :meth:`_record`, for an event that was applied: written in the next bulk write
        of ``events`` (health counts only; the job's own change is already committed)."""
        self.metrics.count(self.metrics.webhooks, outcome)
        self.events.add(WebhookRecord(received_at=self.sync.clock(), outcome=outcome, **fields))

    async def receive(
        self, table: str, job_id: str, token: str | None, raw: bytes
    ) -> WebhookResult:
        """``POST /webhooks/runninghub/{table}/{jobId}?token=…``."""
        if self.tools.by_table(table) is None or not self._token_ok(table, job_id, token):
            await self._record(
                outcome=WebhookOutcome.REJECTED,
                table=table[:32],
                job_id=job_id[:36],
                detail="bad token",
            )
            log.warning(
                "webhook rejected", extra={"action": "webhook_rejected", "table": table[:32]}
            )
            return WebhookResult(Delivery.BAD_TOKEN)
        ended = self.ended.get(table, job_id)
        digest = body_digest(raw)
        if ended is not None and ended.body == digest and ended.task_id is not None:
            # a byte-identical retry of a delivery that named this job's task: not parsed
            return self._duplicate(table, job_id, ended.task_id, ended.status)
        body_text = raw[:BODY_KEEP_CHARS].decode("utf-8", "replace")
        try:
            event = parse_webhook(raw)
        except MalformedWebhook as exc:
            return await self._malformed(table, job_id, str(exc), body_text)
        if ended is not None and ended.task_id == event.task_id:
            self.ended.put(table, job_id, ended.status, ended.task_id, body=digest)
            return self._duplicate(table, job_id, event.task_id, ended.status)
        outputs: TaskOutputs | None = None
        malformed_outputs = ""
        try:
            outputs = parse_outputs_envelope(event.envelope)
        except (MalformedResponse, APIError) as exc:
            malformed_outputs = f"eventData: {exc}"  # answered below, as after a read
        direct = None
        if outputs is not None:
            # the usual first delivery: its job's end in one guarded statement, no read first
            direct = await self.sync.finish_task(table, job_id, event.task_id, outputs)
            if direct is not None and direct.outcome is not None and direct.job is not None:
                return self._applied(
                    direct.job, event, outputs, direct.outcome, digest, early=False
                )
        job = direct.job if direct is not None else await self.store.get_job(table, job_id)
        claim = webhook_token_claim(token)
        if (
            job is not None
            and job.status.is_active
            and job.task_id != event.task_id
            # back in the queue, no start is current (whatever the token); otherwise the
            # token's claim must be the current one (a token without one cannot tell)
            and (job.status is JobStatus.QUEUED or claim not in (None, job.claim_id))
        ):
            return await self._orphan(job, event.task_id, claim, body_text)
        if job is None:  # a valid token for a job we do not have: deleted, or another database
            await self._record(
                outcome=WebhookOutcome.IGNORED,
                table=table,
                job_id=job_id,
                task_id=event.task_id,
                detail="job not found",
                body=body_text,
            )
            return WebhookResult(Delivery.UNKNOWN_JOB)
        if job.task_id and job.task_id != event.task_id:
            await self._record(
                outcome=WebhookOutcome.REJECTED,
                table=table,
                job_id=job_id,
                task_id=event.task_id,
                detail=f"task id mismatch (job has {job.task_id})",
                body=body_text,
            )
            return WebhookResult(Delivery.TASK_MISMATCH)
        if job.status.is_terminal:  # its task id is the event's (a mismatch was refused)
            self.ended.put(table, job_id, job.status, job.task_id, body=digest)
            return self._duplicate(table, job_id, event.task_id, job.status)
        early = not job.task_id
        if early:
            # under the URL's claim (if it names one): never onto a start that lost it
            saved = await self.store.save_task_id(table, job_id, event.task_id, claim_id=claim)
            if saved is not None and claim is not None and saved.task_id != event.task_id:
                if saved.status.is_terminal:
                    return WebhookResult(Delivery.DUPLICATE, saved.status)
                return await self._orphan(saved, event.task_id, claim, body_text)
            job = saved or job
        if outputs is None:
            return await self._malformed(table, job_id, malformed_outputs, body_text, job)
        synced = await self.sync.apply_outputs(job, outputs, FinishedBy.WEBHOOK)
        return self._applied(job, event, outputs, synced, digest, early=early)

    def _applied(
        self,
        job: Job,
        event: WebhookEvent,
        outputs: TaskOutputs,
        synced: SyncOutcome,
        digest: bytes,
        *,
        early: bool,
    ) -> WebhookResult:
        """A delivery whose outputs were applied to its job: remembered if the job ended,
        recorded in the next bulk write."""
        table, job_id = job.table, job.id
        if synced.status is not None and synced.status.is_terminal:
            same_task = job.task_id == event.task_id
            self.ended.put(
                table, job_id, synced.status, job.task_id, body=digest if same_task else None
            )
        if early:
            outcome = WebhookOutcome.EARLY
        elif synced.synced or synced.began_saving:
            outcome = WebhookOutcome.ACCEPTED
        else:
            outcome = WebhookOutcome.DUPLICATE
        # recorded in the next bulk write, as a duplicate is: the job's change is committed
        # already, and a transaction of its own was a sixth of a first delivery's CPU
        self._note(
            outcome=outcome,
            table=table,
            job_id=job_id,
            task_id=event.task_id,
            detail=f"code {outputs.code}",
            applied=True,
        )
        # DEBUG: the finish it caused is logged once per job ("job finished"); a line per
        # delivery was formatting work on the hot path of every retried webhook
        log.debug(
            "webhook received",
            extra={
                "action": "webhook",
                "job_id": job_id,
                "table": table,
                "outcome": outcome,
                "rh_code": outputs.code,
            },
        )
        return WebhookResult(Delivery.APPLIED, synced.status, early=early)

    def _duplicate(self, table: str, job_id: str, task_id: str, status: JobStatus) -> WebhookResult:
        """A retried delivery for a job that has ended: no change, and no write before the
        answer — recorded (webhook health) in the next bulk write of ``events``."""
        self._duplicates_seen.inc()
        self.events.add(
            WebhookRecord(
                received_at=self.sync.clock(),
                outcome=WebhookOutcome.DUPLICATE,
                table=table,
                job_id=job_id,
                task_id=task_id,
            )
        )
        return WebhookResult(Delivery.DUPLICATE, status)

    async def _orphan(
        self, job: Job, task_id: str, claim: str | None, body_text: str
    ) -> WebhookResult:
        """The task of a start that lost its claim (a stop or a crash put its job back in the
        queue; RunningHub's create call has no idempotency key): never applied, cancelled
        upstream, so the job keeps one result and one charge."""
        await self._record(
            outcome=WebhookOutcome.REJECTED,
            table=job.table,
            job_id=job.id,
            task_id=task_id,
            detail=f"orphan task of an abandoned start (claim {(claim or '?')[:32]})",
            body=body_text,
        )
        self.sync.queue.cancel_orphan_soon(job, task_id)
        return WebhookResult(Delivery.TASK_MISMATCH, job.status)

    async def _malformed(
        self, table: str, job_id: str, why: str, body_text: str, job: Job | None = None
    ) -> WebhookResult:
        await self._record(
            outcome=WebhookOutcome.MALFORMED,
            table=table,
            job_id=job_id,
            detail=why,
            body=body_text,
        )
        log.warning(
            "malformed webhook",
            extra={"action": "webhook_malformed", "job_id": job_id, "table": table, "error": why},
        )
        job = job or await self.store.get_job(table, job_id)
        if job is not None and job.status.is_active:
            # RunningHub did try to tell us something: ask it directly instead.
            await self.sync.sync_job(job, finished_by=FinishedBy.WEBHOOK)
        return WebhookResult(Delivery.MALFORMED, detail=why)

    async def receive_by_task(self, raw: bytes) -> WebhookResult:
        """``POST /webhooks/runninghub``: old-style URL, matched by ``taskId`` and verified."""
        body_text = raw[:BODY_KEEP_CHARS].decode("utf-8", "replace")
        try:
            event = parse_webhook(raw)
        except MalformedWebhook as exc:
            await self._record(outcome=WebhookOutcome.MALFORMED, detail=str(exc), body=body_text)
            return WebhookResult(Delivery.MALFORMED, detail=str(exc))
        job = await self.store.find_job_by_task_id(event.task_id)
        if job is None:
            if await self.store.count_unmatched_webhooks() >= self.max_unmatched:
                return self._not_kept(event.task_id)
            self._last_not_kept = None  # below the bound again: the next burst is logged
            await self._record(
                outcome=WebhookOutcome.UNMATCHED,
                task_id=event.task_id,
                detail="task id not stored yet",
                body=body_text,
            )
            # the id may have been saved meanwhile (after its save looked for kept events)
            job = await self.store.find_job_by_task_id(event.task_id)
            if job is not None:
                await self.apply_kept(job)
            return WebhookResult(Delivery.KEPT)
        if job.status.is_terminal:
            return self._duplicate(job.table, job.id, event.task_id, job.status)
        # only a hint (anyone may post here): it goes through the job's shared schedule
        synced = await self.sync.sync_job(job, finished_by=FinishedBy.WEBHOOK)
        await self._record(
            outcome=WebhookOutcome.ACCEPTED if synced.synced else WebhookOutcome.IGNORED,
            table=job.table,
            job_id=job.id,
            task_id=event.task_id,
            detail="verified with /outputs",
            applied=True,
        )
        return WebhookResult(Delivery.APPLIED, synced.status)

    def _not_kept(self, task_id: str) -> WebhookResult:
        """Past the bound: answered like a kept event (202), so a flood learns nothing and a
        sender has no reason to retry, but nothing is stored. Losing a real one costs nothing
        lasting: the job's own webhook URL and the watchdog's checks still end it. One warning
        per burst (a new one after ``UNMATCHED_DROP_LOG_QUIET_S`` without any)."""
        self.metrics.webhooks.labels(WebhookOutcome.UNMATCHED).inc()
        self.metrics.webhooks_not_kept.inc()
        now = self.sync.clock()
        quiet = timedelta(seconds=c.UNMATCHED_DROP_LOG_QUIET_S)
        if self._last_not_kept is None or now - self._last_not_kept >= quiet:
            log.warning(
                "unmatched webhooks not kept",
                extra={
                    "action": "webhook_not_kept",
                    "task_id": task_id,
                    "limit": self.max_unmatched,
                },
            )
        self._last_not_kept = now
        return WebhookResult(Delivery.KEPT)

    async def apply_kept(self, job: Job) -> None:
        """Called when a task id is saved: apply old-style events that arrived before it."""
        if not job.task_id or not job.status.is_active:
            return
        kept = await self.store.take_unmatched_webhooks(job.task_id)
        if kept:
            log.info(
                "applying kept webhook",
                extra={"action": "webhook_apply_kept", "job_id": job.id, "table": job.table},
            )
            await self.sync.sync_job(job, finished_by=FinishedBy.WEBHOOK)
