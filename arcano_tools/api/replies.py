"""Outcomes of the services as the plan's exact JSON replies (``docs/api.md``).

The services decide and return dataclasses; these functions only spell the decisions the way
the plan's clients read them (camelCase keys, the edge function's status codes).
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any

from arcano_tools.domain.records import Job
from arcano_tools.domain.status import JobStatus, SyncReason
from arcano_tools.services.sync import SyncOutcome
from arcano_tools.services.webhooks import Delivery, WebhookResult

#: Webhook replies kept rendered (a few shapes; a malformed body's detail adds one each).
WEBHOOK_REPLIES_CACHED = 256

#: The plan's edge function answers a missing API key with a 500 (a configuration error).
STATUS_OF_SYNC_REASON = {SyncReason.NO_API_KEY: 500}


def job_json(job: Job) -> dict[str, Any]:
    """The shape of ``GET /api/jobs/{table}/{jobId}`` (camelCase, like the plan's clients)."""
    return {
        "id": job.id,
        "table": job.table,
        "status": job.status.value,
        "taskId": job.task_id,
        "outputUrl": job.output_url,
        "errorMessage": job.error_message,
        "createdAt": _iso(job.created_at),
        "startedAt": _iso(job.started_at),
        "completedAt": _iso(job.completed_at),
        "finishedBy": job.finished_by.value if job.finished_by else None,
        "saving": job.saving,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def sync_reply(outcome: SyncOutcome) -> tuple[int, dict[str, Any]]:
    """``(status code, body)`` of ``POST /functions/v1/runninghub-job-sync``."""
    if outcome.synced:
        if outcome.status is JobStatus.COMPLETED:
            return 200, {"synced": True, "status": "completed", "outputUrl": outcome.output_url}
        return 200, {"synced": True, "status": "failed", "errorMessage": outcome.error_message}
    reason = outcome.reason
    assert reason is not None, "an unsynced outcome always has a reason"
    body: dict[str, Any] = {"synced": False, "reason": reason.value}
    if reason is SyncReason.ALREADY_TERMINAL:
        assert outcome.status is not None
        body["status"] = outcome.status.value
        body["outputUrl"] = outcome.output_url
        if outcome.error_message and outcome.status is not JobStatus.COMPLETED:
            body["errorMessage"] = outcome.error_message
    elif reason is SyncReason.STILL_PROCESSING:
        body["rhCode"] = outcome.rh_code
        body["rhMsg"] = outcome.rh_msg
        if outcome.cached:
            body["cached"] = True
        if outcome.saving:  # RunningHub is done; our copy of the result is being made
            body["saving"] = True
    elif reason is SyncReason.API_ERROR:
        body["status"] = outcome.upstream_http_status
    return STATUS_OF_SYNC_REASON.get(reason, 200), body


def webhook_reply(result: WebhookResult, *, by_job: bool = True) -> tuple[int, dict[str, Any]]:
    """``(status code, body)`` answered to RunningHub for one webhook delivery.

    ``by_job``: the delivery came to our per-job URL (its reply says whether it was early);
    the old-style ``/webhooks/runninghub`` route answers without that field.
    """
    status = result.status.value if result.status else None
    match result.delivery:
        case Delivery.APPLIED:
            body: dict[str, Any] = {"ok": True, "status": status}
            if by_job:
                body["early"] = result.early
            return 200, body
        case Delivery.DUPLICATE:
            return 200, {"ok": True, "duplicate": True, "status": status}
        case Delivery.UNKNOWN_JOB:
            return 200, {"ok": True, "ignored": "job not found"}
        case Delivery.KEPT:
            return 202, {"ok": True, "kept": True}
        case Delivery.BAD_TOKEN:
            return 401, {"error": "invalid webhook token"}
        case Delivery.TASK_MISMATCH:
            return 409, {"error": "taskId does not belong to this job"}
        case Delivery.MALFORMED:
            return 400, {"error": f"malformed webhook: {result.detail}"}


@functools.lru_cache(maxsize=WEBHOOK_REPLIES_CACHED)
def webhook_reply_bytes(result: WebhookResult, *, by_job: bool = True) -> tuple[int, bytes]:
    """:func:`webhook_reply` rendered as Starlette's ``JSONResponse`` renders it, once per
    distinct result: RunningHub's retries get one of a handful of replies, and rendering each
    anew was 4 % of a retried delivery's CPU (``BENCHMARKS.md``)."""
    status, body = webhook_reply(result, by_job=by_job)
    text = json.dumps(body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))
    return status, text.encode("utf-8")
