"""The sync: ask RunningHub about one job and finish it if it ended — the plan's
``runninghub-job-sync`` edge function, plus what the plan missed.

Replies are exactly the plan's (see ``docs/api.md``), with these additions:

* RunningHub's code 805 (the task FAILED) finishes the job at once as ``failed`` with
  RunningHub's reason → ``{synced: true, status: 'failed', errorMessage}`` (the plan waited
  12 minutes);
* past the job's deadline (``WATCHDOG_MAX_TIMEOUT_MS`` after its start in the database) the
  server itself finishes it as ``failed`` with the plan's timeout message, cancels the task
  upstream and refunds — the browser never calls ``/finish``;
* one upstream schedule per job: every caller reserves the job's next check in the database,
  so page watchdogs in five tabs, the sync endpoint and the server watchdog make at most one
  RunningHub call per poll interval; a sync that is not due answers from the last known state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from arcano_tools.core.auth import Principal
from arcano_tools.core.jobs import FinishRequest, Job, utcnow
from arcano_tools.core.queue_manager import QueueManager
from arcano_tools.core.status import FinishedBy, JobStatus
from arcano_tools.core.tools import ToolRegistry
from arcano_tools.runninghub.client import RunningHubClient, TaskOutputs
from arcano_tools.runninghub.errors import APIError, HTTPStatusError, RunningHubError, TaskNotFound
from arcano_tools.store import JobStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncReply:
    status_code: int
    body: dict[str, Any]

    @property
    def synced(self) -> bool:
        return bool(self.body.get("synced"))


def _reply(body: dict[str, Any], status_code: int = 200) -> SyncReply:
    return SyncReply(status_code, body)


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
        store: JobStore,
        client: RunningHubClient,
        queue: QueueManager,
        tools: ToolRegistry,
        timings: SyncTimings,
        default_account: str,
    ) -> None:
        self.store = store
        self.client = client
        self.queue = queue
        self.tools = tools
        self.timings = timings
        self.default_account = default_account
        self.metrics = queue.metrics

    def deadline(self, job: Job) -> datetime:
        return job.clock_start + self.timings.max_timeout

    async def sync(
        self,
        table: Any,
        job_id: Any,
        principal: Principal,
        *,
        finished_by: FinishedBy = FinishedBy.WATCHDOG,
        force: bool = False,
    ) -> SyncReply:
        """The sync endpoint's whole contract. ``force`` skips the schedule (operator action)."""
        if not table or not job_id:
            return _reply({"error": "Missing table or jobId"}, 400)
        if not isinstance(table, str) or self.tools.by_table(table) is None:
            return _reply({"error": "Invalid table"}, 400)
        job = await self.store.get_job(table, str(job_id))
        if job is None or not principal.may_access(job.user_id):
            return _reply({"error": "Job not found", "synced": False}, 404)
        return await self.sync_job(job, finished_by=finished_by, force=force)

    async def sync_job(
        self, job: Job, *, finished_by: FinishedBy, force: bool = False
    ) -> SyncReply:
        if job.status.is_terminal:
            return _terminal_reply(job)
        now = utcnow()
        past_deadline = now >= self.deadline(job)
        if not job.task_id:
            if past_deadline:
                return await self._timeout(job)
            return _reply({"synced": False, "reason": "no_task_id"})
        account = await self.store.get_account(job.api_account or self.default_account)
        if account is None or not account.api_key:
            if past_deadline:  # nobody can ask RunningHub: the deadline still holds
                return await self._timeout(job)
            return _reply({"synced": False, "reason": "no_api_key"}, 500)

        due = await self.store.reserve_check(
            job.table, job.id, now=now, next_check_at=now + self.timings.poll_interval
        )
        asked = due or force or past_deadline
        self.metrics.sync_calls.labels(finished_by.value, "upstream" if asked else "cached").inc()
        if not asked:
            return _reply(
                {
                    "synced": False,
                    "reason": "still_processing",
                    "rhCode": job.last_upstream_code,
                    "rhMsg": job.last_upstream_msg,
                    "cached": True,
                }
            )
        try:
            outputs = await self.client.outputs(account.api_key, job.task_id, retries=1)
        except HTTPStatusError as exc:
            await self.store.record_upstream_error(
                "outputs", f"http_{exc.status_code}", job.table, job.id
            )
            return await self._unanswered(job, past_deadline, exc.status_code)
        except APIError as exc:
            await self.store.record_check_result(job.table, job.id, exc.code, exc.msg)
            await self.store.record_upstream_error("outputs", str(exc.code), job.table, job.id)
            if past_deadline:
                return await self._timeout(job)
            if isinstance(exc, TaskNotFound):
                log.warning(
                    "task unknown upstream",
                    extra={"action": "sync", "job_id": job.id, "task_id": job.task_id},
                )
            return _reply(
                {
                    "synced": False,
                    "reason": "still_processing",
                    "rhCode": exc.code,
                    "rhMsg": exc.msg,
                }
            )
        except RunningHubError as exc:
            await self.store.record_upstream_error("outputs", type(exc).__name__, job.table, job.id)
            return await self._unanswered(job, past_deadline, None)

        await self.store.record_check_result(job.table, job.id, outputs.code, outputs.msg)
        return await self._apply(job, outputs, finished_by, past_deadline)

    async def apply_outputs(
        self, job: Job, outputs: TaskOutputs, finished_by: FinishedBy
    ) -> SyncReply:
        """Finish a job from what RunningHub said (a webhook's eventData or ``/outputs``)."""
        return await self._apply(job, outputs, finished_by, past_deadline=False)

    async def _apply(
        self, job: Job, outputs: TaskOutputs, finished_by: FinishedBy, past_deadline: bool
    ) -> SyncReply:
        if outputs.state == "success" and outputs.output_url:
            result = await self.queue.finish(
                job.table,
                job.id,
                FinishRequest(JobStatus.COMPLETED, finished_by, output_url=outputs.output_url),
            )
            if not result.changed:
                return _terminal_reply(result.job)
            self._observe_recovery(result.job, outputs, finished_by)
            return _reply({"synced": True, "status": "completed", "outputUrl": outputs.output_url})
        if outputs.state == "failed":
            message = outputs.failure_message
            result = await self.queue.finish(
                job.table,
                job.id,
                FinishRequest(JobStatus.FAILED, finished_by, error_message=message),
            )
            if not result.changed:
                return _terminal_reply(result.job)
            return _reply({"synced": True, "status": "failed", "errorMessage": message})
        if past_deadline:
            return await self._timeout(job)
        return _reply(
            {
                "synced": False,
                "reason": "still_processing",
                "rhCode": outputs.code,
                "rhMsg": outputs.msg,
            }
        )

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
    ) -> SyncReply:
        if past_deadline:
            return await self._timeout(job)
        return _reply({"synced": False, "reason": "api_error", "status": http_status})

    async def _timeout(self, job: Job) -> SyncReply:
        """Past the deadline: fail with the plan's message, refund, cancel upstream."""
        message = self.timings.timeout_message
        result = await self.queue.finish(
            job.table,
            job.id,
            FinishRequest(JobStatus.FAILED, FinishedBy.TIMEOUT, error_message=message),
        )
        if not result.changed:
            return _terminal_reply(result.job)
        await self.queue.cancel_upstream(result.job)
        return _reply({"synced": True, "status": "failed", "errorMessage": message})


def _terminal_reply(job: Job) -> SyncReply:
    body: dict[str, Any] = {
        "synced": False,
        "reason": "already_terminal",
        "status": job.status.value,
        "outputUrl": job.output_url,
    }
    if job.error_message and job.status is not JobStatus.COMPLETED:
        body["errorMessage"] = job.error_message
    return _reply(body)
