"""A simulated RunningHub: answers the real client's HTTP calls from the trace.

It is an ``httpx`` transport, so the real :class:`RunningHubClient` (envelopes, error
mapping) sits between our services and it. Tasks end when the trace says, on the virtual
clock; the answers have RunningHub's documented shapes (``docs/runninghub-api.md``): 804 while
running, 805 with a ``failedReason`` for a failure, code 0 with the files for a success. An
early webhook is posted to our receiver *during* the create call, before its answer (the task
id) reaches the caller — the race the plan was written about.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx

from arcano_tools.emulator.tasks import (
    CODE_TASK_NOT_FOUND,
    CODE_TASK_RUNNING,
    cancelled_failure,
    envelope,
    failure_envelope,
)
from arcano_tools.emulator.webhooks import webhook_body
from bench.simulation.trace import JobSpec, Outcome, Webhook

#: Where results are "served" (a RunningHub file host, so our output check accepts them).
FILE_BASE = "https://rh-images.xiaoyaoyou.com/sim"
#: Endpoints counted as "upstream calls per job" (after the task exists).
STATUS_ENDPOINTS = ("outputs", "cancel")

Deliver = Callable[[str, str, str, bytes], Awaitable[object]]


@dataclass
class SimTask:
    spec: JobSpec
    task_id: str
    created_at: float
    webhook_url: str
    cancelled_at: float | None = None

    def ended_by(self, now: float) -> bool:
        end = self.end_at
        return end is not None and now >= end

    @property
    def end_at(self) -> float | None:
        if self.spec.ends_after is None:
            return None
        return self.created_at + self.spec.ends_after

    def result(self) -> dict[str, object]:
        """The ``/outputs`` envelope once the task ended (also the webhook's eventData)."""
        if self.spec.outcome is Outcome.SUCCESS:
            item = {
                "fileUrl": f"{FILE_BASE}/{self.task_id}.png",
                "fileType": "png",
                "taskCostTime": round(self.spec.ends_after or 0.0, 3),
                "nodeId": "9",
                "consumeCoins": 10,
                "consumeMoney": None,
            }
            return envelope(0, "success", [item])
        return failure_envelope(
            node_id="5",
            node_name="KSampler",
            exception_type="torch.cuda.OutOfMemoryError",
            exception_message="CUDA out of memory.",
        )


@dataclass
class SimulatedRunningHub:
    """The stand-in. ``now`` reads the virtual clock (seconds); ``spec_for`` maps a job id
    (from the webhook URL) to its trace entry; ``deliver`` posts a webhook to our receiver
    as ``(table, job_id, token, body)``."""

    now: Callable[[], float]
    spec_for: Callable[[str], JobSpec]
    deliver: Deliver | None = None
    tasks: dict[str, SimTask] = field(default_factory=dict)
    by_job: dict[int, SimTask] = field(default_factory=dict)
    #: (job index, endpoint) -> calls
    calls: Counter[tuple[int, str]] = field(default_factory=Counter)
    _next_id: int = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        endpoint = request.url.path.rsplit("/", 1)[-1]
        if endpoint == "upload":
            return _answer(envelope(0, "success", {"fileName": "api/sim-input.png"}))
        body = json.loads(request.content or b"{}")
        if endpoint == "run":
            return _answer(await self._create(body))
        task = self.tasks.get(str(body.get("taskId")))
        if task is None:
            return _answer(envelope(CODE_TASK_NOT_FOUND, "APIKEY_TASK_NOT_FOUND"))
        self.calls[(task.spec.index, endpoint)] += 1
        if endpoint == "cancel":
            if task.cancelled_at is None and not task.ended_by(self.now()):
                task.cancelled_at = self.now()
            return _answer(envelope(0, "success"))
        if endpoint == "outputs":
            return _answer(self.outputs(task))
        return _answer(envelope(CODE_TASK_NOT_FOUND, f"not simulated: {endpoint}"))

    def outputs(self, task: SimTask) -> dict[str, object]:
        if task.cancelled_at is not None:
            return cancelled_failure()
        if task.ended_by(self.now()):
            return task.result()
        return envelope(CODE_TASK_RUNNING, "APIKEY_TASK_IS_RUNNING")

    async def _create(self, body: dict[str, object]) -> dict[str, object]:
        url = str(body.get("webhookUrl") or "")
        job_id = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
        spec = self.spec_for(job_id)
        self._next_id += 1
        task = SimTask(spec, f"sim{self._next_id:08d}", self.now(), url)
        self.tasks[task.task_id] = task
        self.by_job[spec.index] = task
        self.calls[(spec.index, "run")] += 1
        if spec.webhook is Webhook.EARLY and spec.ends_after is not None:
            await self.post_webhook(task)  # before the caller has the task id
        return envelope(0, "success", {"taskId": task.task_id, "taskStatus": "RUNNING"})

    async def post_webhook(self, task: SimTask) -> None:
        """RunningHub's TASK_END POST to the task's webhook URL (not for a cancelled task)."""
        if self.deliver is None or task.cancelled_at is not None:
            return
        parts = urlsplit(task.webhook_url)
        segments = parts.path.rstrip("/").split("/")
        token = parse_qs(parts.query).get("token", [""])[0]
        body = webhook_body(task.task_id, task.result())
        await self.deliver(segments[-2], segments[-1], token, body)


def _answer(payload: dict[str, object]) -> httpx.Response:
    return httpx.Response(200, json=payload)
