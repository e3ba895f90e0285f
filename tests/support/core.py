"""The job core in one process, for millisecond tests of its decisions.

Real services over the in-memory repository and a settable clock, talking to the real
RunningHub emulator through ``httpx.ASGITransport`` (no sockets, no subprocesses). The
emulator's webhooks are dropped — a test hands a webhook to the receiver itself when it
wants one, so every ordering (early, duplicate, lost) is staged exactly.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from arcano_tools.domain.records import FinishRequest, FinishResult, Job
from arcano_tools.domain.status import FinishedBy, JobStatus
from arcano_tools.domain.tools import ToolRegistry
from arcano_tools.domain.urls import RUNNINGHUB_FILE_HOSTS, OutputHosts
from arcano_tools.emulator import create_emulator_app
from arcano_tools.emulator.control import EmulatorControl
from arcano_tools.emulator.guard import EmulatorGuard
from arcano_tools.emulator.runtime import EmulatorRuntime
from arcano_tools.emulator.tasks import Task
from arcano_tools.emulator.webhooks import webhook_body
from arcano_tools.metrics import Metrics
from arcano_tools.runninghub.client import RunningHubClient
from arcano_tools.services.bus import JobBus
from arcano_tools.services.queue_manager import QueueManager, webhook_token
from arcano_tools.services.schedule import CheckSchedule
from arcano_tools.services.server_watchdog import ServerWatchdog
from arcano_tools.services.sync import JobSync, SyncTimings
from arcano_tools.services.uploads import FileStore, Upload
from arcano_tools.services.webhooks import WebhookReceiver
from arcano_tools.store import JobStore
from arcano_tools.store.memory import InMemoryStore
from tests.support.images import png_bytes

ACCOUNT = "arcano_main"
API_KEY = "k" * 32
SECRET = b"unit-test-webhook-secret"
EMULATOR_BASE = "http://emulator.test"
#: Where webhook URLs point (nothing listens: the emulator's webhooks are dropped).
BACKEND_BASE = "http://arcano.test"
#: The plan's timings (the services' defaults), spelled out so tests can reason about them.
TIMINGS = SyncTimings(
    initial_delay=timedelta(seconds=30),
    poll_interval=timedelta(seconds=15),
    max_timeout=timedelta(minutes=12),
    timeout_message="Timeout: processamento excedeu o tempo limite (12 minutos)",
)
#: How long a test waits for the emulator's background work (a few ms of Pillow).
UPSTREAM_WAIT_S = 10.0


class FakeClock:
    """A clock that moves only when told to: deadlines are tested without sleeping."""

    def __init__(self, start: datetime = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclasses.dataclass
class Core:
    clock: FakeClock
    store: Any  # InMemoryStore, or JobStore when built on a database
    emulator: EmulatorRuntime
    client: RunningHubClient
    tools: ToolRegistry
    bus: JobBus
    queue: QueueManager
    sync: JobSync
    webhooks: WebhookReceiver
    watchdog: ServerWatchdog
    #: The emulator as an ASGI app (its output files, for a copier's HTTP transport).
    emulator_app: Any = None

    # --- staging ---------------------------------------------------------------------------
    def sync_with(self, **timings: Any) -> JobSync:
        """A second sync service over this core with other timings (``poll_interval=…``)."""
        return JobSync(
            store=self.store,
            client=self.client,
            queue=self.queue,
            tools=self.tools,
            timings=dataclasses.replace(self.sync.timings, **timings),
            default_account=ACCOUNT,
            output_hosts=self.sync.output_hosts,
            clock=self.clock,
        )

    async def submit(self, tool: str = "upscaler", user: str = "u1", *, credits: int = 100) -> Job:
        await self.store.ensure_user(user, credits=credits)
        spec = self.tools.by_name(tool)
        assert spec is not None
        uploads = {f.name: Upload(f"{f.name}.png", png_bytes((32, 24))) for f in spec.files}
        fields = {"scale": str(spec.scales[0])} if spec.scales else {}
        return await self.queue.submit(user, tool, fields, uploads)

    async def dispatch(self) -> int:
        """One dispatcher pass, waiting until every start it began has ended."""
        started = await self.queue.dispatch_once()
        await self.background()
        return started

    async def background(self) -> None:
        """Wait until the queue manager's background work (starts, upstream cancels) ended."""
        while self.queue._starting:
            await asyncio.gather(*list(self.queue._starting), return_exceptions=True)

    async def drop_background(self) -> None:
        """Cancel the queue manager's background work (an upstream cancel that a test's slow
        RunningHub would keep waiting long after the test has its answer)."""
        for task in list(self.queue._starting):
            task.cancel()
        await asyncio.gather(*list(self.queue._starting), return_exceptions=True)

    async def running(self, tool: str = "upscaler", user: str = "u1") -> Job:
        """A job RunningHub accepted (task id saved), its webhook not yet received."""
        job = await self.submit(tool, user)
        await self.dispatch()
        return await self.job(job)

    async def job(self, job: Job) -> Job:
        current = await self.store.get_job(job.table, job.id)
        assert current is not None
        return current

    def control(self, **changes: Any) -> None:
        self.emulator.apply_control(changes)

    def task(self, job: Job) -> Task:
        assert job.task_id is not None
        return self.emulator.tasks[job.task_id]

    async def upstream_done(self, job: Job) -> Task:
        """Wait (real time, a few ms) until the emulator has ended the job's task."""
        task = self.task(job)
        if task.runner is not None:
            await asyncio.wait_for(asyncio.shield(task.runner), UPSTREAM_WAIT_S)
        assert task.ended, f"task {task.task_id} is still {task.status}"
        return task

    async def webhook_for(self, job: Job, task: Task | None = None) -> bytes:
        """The body RunningHub would POST for the job's task once it ended."""
        task = task or await self.upstream_done(job)
        assert task.envelope is not None
        return webhook_body(task.task_id, task.envelope)

    def token(self, job: Job) -> str:
        return webhook_token(SECRET, job.table, job.id)

    async def balance(self, user: str = "u1") -> int:
        account = await self.store.get_user(user)
        assert account is not None
        return account.credits

    async def ledger_kinds(self, user: str = "u1") -> list[str]:
        return [e["kind"] for e in await self.store.ledger(user)]

    async def fail(self, job: Job, by: FinishedBy = FinishedBy.USER) -> None:
        await self.queue.finish(job.table, job.id, FinishRequest(JobStatus.FAILED, by))


async def build_core(
    tmp_path: Path,
    *,
    control: Mapping[str, Any] | None = None,
    max_concurrent: int = 2,
    database_url: str | None = None,
) -> Core:
    """The core on the in-memory store, or on the SQL store at ``database_url`` (migrated)."""
    clock = FakeClock()
    store: Any
    if database_url is None:
        store = InMemoryStore(clock=clock)
    else:
        store = JobStore.from_url(database_url, clock=clock)
        await store.migrate()
    await store.upsert_account(ACCOUNT, API_KEY, max_concurrent)
    emulator_control = EmulatorControl(task_ms=0, webhook="drop", seed=7)
    emulator_app = create_emulator_app(
        tmp_path / "emulator", emulator_control, EmulatorGuard(webhook_origin=BACKEND_BASE)
    )
    emulator: EmulatorRuntime = emulator_app.state.emulator
    if control:
        emulator.apply_control(control)
    client = RunningHubClient(
        EMULATOR_BASE,
        transport=httpx.ASGITransport(app=emulator_app),
        retry_base_s=0.001,
    )
    tools = ToolRegistry.from_config("")
    bus = JobBus()
    metrics = Metrics()
    queue = QueueManager(
        store=store,
        client=client,
        tools=tools,
        files=FileStore(tmp_path / "data"),
        bus=bus,
        webhook_base_url=BACKEND_BASE,
        webhook_secret=SECRET,
        metrics=metrics,
        schedule=CheckSchedule(TIMINGS.initial_delay, TIMINGS.poll_interval, TIMINGS.max_timeout),
        deadline=TIMINGS.max_timeout,
        timeout_message=TIMINGS.timeout_message,
        clock=clock,
    )
    sync = JobSync(
        store=store,
        client=client,
        queue=queue,
        tools=tools,
        timings=TIMINGS,
        default_account=ACCOUNT,
        output_hosts=OutputHosts.of(RUNNINGHUB_FILE_HOSTS, also=["emulator.test"]),
        clock=clock,
    )
    webhooks = WebhookReceiver(store=store, sync=sync, tools=tools, webhook_secret=SECRET)
    queue.on_task_saved = webhooks.apply_kept
    watchdog = ServerWatchdog(
        store=store,
        sync=sync,
        queue=queue,
        max_concurrency=4,
        starting_stuck_after=timedelta(minutes=5),
        owner="unit",
    )
    return Core(
        clock, store, emulator, client, tools, bus, queue, sync, webhooks, watchdog, emulator_app
    )


def count_finishes(core: Core) -> Counter[tuple[str, str]]:
    """Count, per job, the terminal transitions that changed a row: every one goes through
    ``QueueManager.finish``, and the promise is exactly one."""
    finishes: Counter[tuple[str, str]] = Counter()
    original = core.queue.finish

    async def counted(table: str, job_id: str, req: FinishRequest) -> FinishResult:
        result = await original(table, job_id, req)
        if result.changed:
            finishes[(table, job_id)] += 1
        return result

    core.queue.finish = counted  # type: ignore[method-assign]
    return finishes
