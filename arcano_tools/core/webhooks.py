"""Receiving RunningHub's ``TASK_END`` webhooks.

RunningHub's webhooks carry no signature, may arrive before the create call returns, and are
retried (duplicates). So:

* the URL we give RunningHub names **our** job and carries an HMAC token: an early webhook
  always finds its job (its task id is stored from the webhook if still missing), and a forged
  one is refused with 401 before anything changes;
* a duplicate meets a terminal job and is a no-op (the guarded finish makes that safe even when
  two copies race);
* a malformed body with a valid token is recorded and answered 400, and the job is synced from
  ``/outputs`` instead, so nothing is lost;
* the old-style route (no job id, only ``taskId``) cannot authenticate its sender, so it is only
  a hint: the job is re-checked with ``/outputs`` before anything is trusted; an event whose task
  id is not stored yet is kept and applied the moment the id is saved.

Every event is recorded in ``webhook_events`` (the operator page's webhook health).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from arcano_tools.core.jobs import Job
from arcano_tools.core.queue_manager import webhook_token_ok
from arcano_tools.core.status import FinishedBy
from arcano_tools.core.sync import JobSync
from arcano_tools.core.tools import ToolRegistry
from arcano_tools.runninghub.client import parse_outputs_envelope
from arcano_tools.runninghub.errors import APIError, MalformedResponse
from arcano_tools.store import JobStore

log = logging.getLogger(__name__)

#: How much of a raw body is kept for forensics.
BODY_KEEP_CHARS = 4000


@dataclass(frozen=True)
class WebhookReply:
    status_code: int
    body: dict[str, Any]


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
    if not isinstance(task_id, str | int) or not str(task_id).strip():
        raise MalformedWebhook("taskId missing")
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
        self, *, store: JobStore, sync: JobSync, tools: ToolRegistry, webhook_secret: bytes
    ) -> None:
        self.store = store
        self.sync = sync
        self.tools = tools
        self.secret = webhook_secret
        self.metrics = sync.metrics

    async def _record(self, *, outcome: str, **fields: Any) -> None:
        self.metrics.webhooks.labels(outcome).inc()
        await self.store.record_webhook(outcome=outcome, **fields)

    async def receive(self, table: str, job_id: str, token: str | None, raw: bytes) -> WebhookReply:
        """``POST /webhooks/runninghub/{table}/{jobId}?token=…``."""
        if self.tools.by_table(table) is None or not webhook_token_ok(
            self.secret, table, job_id, token
        ):
            await self._record(
                outcome="rejected", table=table[:32], job_id=job_id[:36], detail="bad token"
            )
            log.warning(
                "webhook rejected", extra={"action": "webhook_rejected", "table": table[:32]}
            )
            return WebhookReply(401, {"error": "invalid webhook token"})
        body_text = raw[:BODY_KEEP_CHARS].decode("utf-8", "replace")
        try:
            event = parse_webhook(raw)
        except MalformedWebhook as exc:
            return await self._malformed(table, job_id, str(exc), body_text)
        job = await self.store.get_job(table, job_id)
        if job is None:  # a valid token for a job we do not have: deleted, or another database
            await self._record(
                outcome="ignored",
                table=table,
                job_id=job_id,
                task_id=event.task_id,
                detail="job not found",
                body=body_text,
            )
            return WebhookReply(200, {"ok": True, "ignored": "job not found"})
        if job.task_id and job.task_id != event.task_id:
            await self._record(
                outcome="rejected",
                table=table,
                job_id=job_id,
                task_id=event.task_id,
                detail=f"task id mismatch (job has {job.task_id})",
                body=body_text,
            )
            return WebhookReply(409, {"error": "taskId does not belong to this job"})
        if job.status.is_terminal:
            await self._record(
                outcome="duplicate", table=table, job_id=job_id, task_id=event.task_id
            )
            return WebhookReply(200, {"ok": True, "duplicate": True, "status": job.status.value})
        early = not job.task_id
        if early:
            saved = await self.store.save_task_id(table, job_id, event.task_id)
            job = saved or job
        try:
            outputs = parse_outputs_envelope(event.envelope)
        except (MalformedResponse, APIError) as exc:
            return await self._malformed(table, job_id, f"eventData: {exc}", body_text, job)
        reply = await self.sync.apply_outputs(job, outputs, FinishedBy.WEBHOOK)
        outcome = "early" if early else ("accepted" if reply.synced else "duplicate")
        await self._record(
            outcome=outcome,
            table=table,
            job_id=job_id,
            task_id=event.task_id,
            detail=f"code {outputs.code}",
            applied=True,
        )
        log.info(
            "webhook received",
            extra={
                "action": "webhook",
                "job_id": job_id,
                "table": table,
                "outcome": outcome,
                "rh_code": outputs.code,
            },
        )
        return WebhookReply(200, {"ok": True, "status": reply.body.get("status"), "early": early})

    async def _malformed(
        self, table: str, job_id: str, why: str, body_text: str, job: Job | None = None
    ) -> WebhookReply:
        await self._record(
            outcome="malformed", table=table, job_id=job_id, detail=why, body=body_text
        )
        log.warning(
            "malformed webhook",
            extra={"action": "webhook_malformed", "job_id": job_id, "table": table, "error": why},
        )
        job = job or await self.store.get_job(table, job_id)
        if job is not None and job.status.is_active:
            # RunningHub did try to tell us something: ask it directly instead.
            await self.sync.sync_job(job, finished_by=FinishedBy.WEBHOOK)
        return WebhookReply(400, {"error": f"malformed webhook: {why}"})

    async def receive_by_task(self, raw: bytes) -> WebhookReply:
        """``POST /webhooks/runninghub``: old-style URL, matched by ``taskId`` and verified."""
        body_text = raw[:BODY_KEEP_CHARS].decode("utf-8", "replace")
        try:
            event = parse_webhook(raw)
        except MalformedWebhook as exc:
            await self._record(outcome="malformed", detail=str(exc), body=body_text)
            return WebhookReply(400, {"error": f"malformed webhook: {exc}"})
        job = await self.store.find_job_by_task_id(event.task_id)
        if job is None:
            await self._record(
                outcome="unmatched",
                task_id=event.task_id,
                detail="task id not stored yet",
                body=body_text,
            )
            # the id may have been saved meanwhile (after its save looked for kept events)
            job = await self.store.find_job_by_task_id(event.task_id)
            if job is None:
                return WebhookReply(202, {"ok": True, "kept": True})
            await self.apply_kept(job)
            return WebhookReply(202, {"ok": True, "kept": True})
        if job.status.is_terminal:
            await self._record(
                outcome="duplicate", table=job.table, job_id=job.id, task_id=event.task_id
            )
            return WebhookReply(200, {"ok": True, "duplicate": True, "status": job.status.value})
        # only a hint (anyone may post here): it goes through the job's shared schedule
        reply = await self.sync.sync_job(job, finished_by=FinishedBy.WEBHOOK)
        await self._record(
            outcome="accepted" if reply.synced else "ignored",
            table=job.table,
            job_id=job.id,
            task_id=event.task_id,
            detail="verified with /outputs",
            applied=True,
        )
        return WebhookReply(200, {"ok": True, "status": reply.body.get("status")})

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
