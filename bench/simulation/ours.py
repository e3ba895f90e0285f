"""Our watchdogs on the trace: the real services, driven on a virtual clock.

Nothing here decides anything about a job. The real :class:`QueueManager` submits, dispatches
and finishes; the real :class:`WebhookReceiver` takes the webhooks; simulated pages call the
real :class:`JobSync` when the real :class:`WatchdogPlan` says a sync is due (what
``follow_job`` does in a tab); the real :class:`ServerWatchdog` ticks every half poll
interval. All of it on the :class:`InMemoryStore`, every service reading one settable clock
that this driver moves from event to event (no sleeping): a discrete-event loop.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import io
import itertools
import logging
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image

from arcano_tools import constants as c
from arcano_tools.domain.records import Job
from arcano_tools.domain.status import FinishedBy
from arcano_tools.domain.tools import ToolRegistry
from arcano_tools.domain.urls import RUNNINGHUB_FILE_HOSTS, OutputHosts
from arcano_tools.metrics import Metrics
from arcano_tools.runninghub.client import RunningHubClient
from arcano_tools.services.bus import JobBus
from arcano_tools.services.follow import TICK, WatchdogPlan
from arcano_tools.services.queue_manager import QueueManager
from arcano_tools.services.schedule import CheckSchedule
from arcano_tools.services.server_watchdog import ServerWatchdog
from arcano_tools.services.sync import JobSync, SyncTimings
from arcano_tools.services.uploads import FileStore, Upload
from arcano_tools.services.webhooks import WebhookReceiver
from arcano_tools.store.memory import InMemoryStore
from bench.simulation.trace import JobSpec, Webhook
from bench.simulation.upstream import SimulatedRunningHub

EPOCH = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
ACCOUNT = "sim_account"
API_KEY = "s" * 32
SECRET = b"simulation-webhook-secret"
#: The plan's timings (the settings' defaults).
TIMINGS = SyncTimings(
    initial_delay=timedelta(milliseconds=c.WATCHDOG_INITIAL_DELAY_MS),
    poll_interval=timedelta(milliseconds=c.WATCHDOG_POLL_INTERVAL_MS),
    max_timeout=timedelta(milliseconds=c.WATCHDOG_MAX_TIMEOUT_MS),
    timeout_message="Timeout: processamento excedeu o tempo limite (12 minutos)",
)
#: Account slots: enough that no job waits in the queue (queueing is not compared here).
SLOTS = 100_000
#: The rate limiter spaces calls in real time; on a virtual clock it would only slow the run.
UNLIMITED_RPS = 1e9
#: A closed tab's watchdog keeps running this long (a reload must not interrupt it).
PAGE_GRACE_S = c.PAGE_WATCHDOG_GRACE_MS / 1000
#: The simulation runs until every job had time to reach its deadline and be seen stuck.
TAIL_S = TIMINGS.max_timeout.total_seconds() + 4 * TIMINGS.poll_interval.total_seconds()


class VirtualClock:
    """The one clock every service reads; moved only by the event loop below."""

    def __init__(self) -> None:
        self.now = EPOCH

    def __call__(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        return (self.now - EPOCH).total_seconds()

    def at(self, seconds: float) -> datetime:
        return EPOCH + timedelta(seconds=seconds)


@dataclass(frozen=True)
class OursResult:
    """What happened to one job under our code (times in simulation seconds)."""

    terminal_at: float | None
    status: str | None
    finished_by: str | None
    deadline: float
    upstream_calls: int


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (40, 90, 200)).save(buf, format="PNG")
    return buf.getvalue()


#: The smallest MP4 header our upload check accepts (the video is never decoded).
MP4_HEADER = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 16


@contextmanager
def _quiet() -> Iterator[None]:
    """The services log every job; 10,000 jobs of it would only slow the run."""
    logger = logging.getLogger("arcano_tools")
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


class Simulation:
    """One run of our code over a trace."""

    def __init__(self, specs: Sequence[JobSpec], data_dir: Path) -> None:
        self.specs = list(specs)
        self.clock = VirtualClock()
        self.store = InMemoryStore(clock=self.clock)
        self.tools = ToolRegistry.from_config("")
        self._spec_of_job: dict[str, JobSpec] = {}
        self._job_of_spec: dict[int, Job] = {}
        self.upstream = SimulatedRunningHub(
            now=self.clock.seconds, spec_for=self._spec_of_job.__getitem__
        )
        self.client = RunningHubClient(
            "http://runninghub.sim",
            transport=self.upstream.transport(),
            max_concurrency=SLOTS,
            max_rps=UNLIMITED_RPS,
        )
        self.queue = QueueManager(
            store=self.store,
            client=self.client,
            tools=self.tools,
            files=FileStore(data_dir),
            bus=JobBus(),
            webhook_base_url="http://arcano.sim",
            webhook_secret=SECRET,
            metrics=Metrics(),
            schedule=CheckSchedule(
                TIMINGS.initial_delay, TIMINGS.poll_interval, TIMINGS.max_timeout
            ),
            clock=self.clock,
        )
        self.sync = JobSync(
            store=self.store,
            client=self.client,
            queue=self.queue,
            tools=self.tools,
            timings=TIMINGS,
            default_account=ACCOUNT,
            output_hosts=OutputHosts.of(RUNNINGHUB_FILE_HOSTS),
            clock=self.clock,
        )
        self.webhooks = WebhookReceiver(
            store=self.store, sync=self.sync, tools=self.tools, webhook_secret=SECRET
        )
        self.queue.on_task_saved = self.webhooks.apply_kept
        self.upstream.deliver = self.webhooks.receive
        self.watchdog = ServerWatchdog(
            store=self.store,
            sync=self.sync,
            queue=self.queue,
            max_concurrency=c.UPSTREAM_MAX_CONCURRENCY,
            starting_stuck_after=timedelta(minutes=5),
            owner="simulation",
        )
        #: How often the server watchdog ticks: ``ServerWatchdog.run``'s ``tick_s``.
        self.server_tick_s = self.watchdog.tick_s
        self._events: list[tuple[float, int, Callable[[], Awaitable[None]]]] = []
        self._seq = itertools.count()
        self._png = _png()

    # --- the event loop ---------------------------------------------------------------------
    def at(self, seconds: float, action: Callable[[], Awaitable[None]]) -> None:
        heapq.heappush(self._events, (seconds, next(self._seq), action))

    async def run(self) -> list[OursResult]:
        await self.store.upsert_account(ACCOUNT, API_KEY, SLOTS)
        for spec in self.specs:
            self.at(spec.submit_at, functools.partial(self._submit, spec))
        if not self.specs:
            return []
        end = max(s.submit_at for s in self.specs) + TAIL_S
        tick = self.server_tick_s
        for k in range(int(self.specs[0].submit_at / tick), int(end / tick) + 1):
            self.at(k * tick, self._watchdog_tick)
        with _quiet():
            while self._events:
                when, _, action = heapq.heappop(self._events)
                self.clock.now = self.clock.at(when)
                await action()
                await self._settle()
        await self.client.aclose()
        return [await self._result(spec) for spec in self.specs]

    async def _settle(self) -> None:
        """Let the background work an event began (starts, upstream cancels) finish at the
        same virtual instant: none of it waits on time here."""
        while self.queue._starting:
            await asyncio.gather(*list(self.queue._starting), return_exceptions=True)

    async def _watchdog_tick(self) -> None:
        await self.watchdog.tick()

    # --- a job's life -----------------------------------------------------------------------
    async def _submit(self, spec: JobSpec) -> None:
        user = f"user{spec.index}"
        await self.store.ensure_user(user, credits=1000)
        tool = self.tools.by_name(spec.tool)
        assert tool is not None
        content = MP4_HEADER if spec.tool == "video_upscaler" else self._png
        suffix = "mp4" if spec.tool == "video_upscaler" else "png"
        uploads = {f.name: Upload(f"{f.name}.{suffix}", content) for f in tool.files}
        fields = {"scale": str(tool.scales[0])} if tool.scales else {}
        job = await self.queue.submit(user, spec.tool, fields, uploads)
        # known before the start, so the simulated RunningHub maps the webhook URL back
        self._spec_of_job[job.id] = spec
        self._job_of_spec[spec.index] = job
        await self.queue.dispatch_once()
        await self._settle()
        if spec.webhook is Webhook.ON_TIME and spec.webhook_at is not None:
            self.at(spec.webhook_at, lambda: self._webhook(spec))
        close = spec.closes_at + PAGE_GRACE_S if spec.closes_at is not None else None
        self._open_page(spec, job, close)
        if spec.second_tab_at is not None:
            self.at(spec.second_tab_at, lambda: self._mount_second(spec, job))

    async def _mount_second(self, spec: JobSpec, job: Job) -> None:
        self._open_page(spec, job, None)

    async def _webhook(self, spec: JobSpec) -> None:
        await self.upstream.post_webhook(self.upstream.by_job[spec.index])

    def _open_page(self, spec: JobSpec, job: Job, gone_at: float | None) -> None:
        """A tab following the job: its watchdog syncs whenever ``WatchdogPlan`` says so
        (``follow_job``), until the job ends or the tab is gone (closed + grace)."""
        plan = WatchdogPlan(TIMINGS)

        async def step() -> None:
            current = await self.store.get_job(job.table, job.id)
            now = self.clock.seconds()
            if current is None or not current.status.is_active:
                return
            if gone_at is not None and now >= gone_at:
                return
            if self.clock() >= plan.next_sync(current):
                plan.last_sync = self.clock()
                await self.sync.sync_job(current, finished_by=FinishedBy.WATCHDOG)
                current = await self.store.get_job(job.table, job.id)
                if current is None or not current.status.is_active:
                    return
            due = (plan.next_sync(current) - EPOCH).total_seconds()
            if due <= now:  # past the deadline and still active: ``follow_job`` waits a tick
                due = now + TICK.total_seconds()
            self.at(due, step)

        self.at(self.clock.seconds(), step)

    async def _result(self, spec: JobSpec) -> OursResult:
        job = self._job_of_spec[spec.index]
        final = await self.store.get_job(job.table, job.id)
        assert final is not None
        terminal = (
            (final.completed_at - EPOCH).total_seconds()
            if final.completed_at is not None and final.status.is_terminal
            else None
        )
        deadline = (final.clock_start + TIMINGS.max_timeout - EPOCH).total_seconds()
        calls = sum(self.upstream.calls[(spec.index, e)] for e in ("outputs", "cancel"))
        return OursResult(
            terminal_at=terminal,
            status=final.status.value if final.status.is_terminal else None,
            finished_by=final.finished_by.value if final.finished_by else None,
            deadline=deadline,
            upstream_calls=calls,
        )


#: Jobs per block. The in-memory store scans every job it holds for each query (the queue,
#: the watchdog's due jobs), which makes one run over 10,000 jobs quadratic; consecutive blocks
#: on fresh stores carry the same load (jobs active at once) in linear time.
BLOCK = 1000
#: Inputs are written for every job: on a RAM disk when there is one.
SCRATCH = Path("/dev/shm") if Path("/dev/shm").is_dir() else None


async def run_ours(specs: Sequence[JobSpec], *, block: int = BLOCK) -> list[OursResult]:
    """Our code over the trace, in consecutive blocks of ``block`` jobs (each on a fresh
    store and fresh services, its clock starting where its first job arrives)."""
    results: list[OursResult] = []
    for first in range(0, len(specs), block):
        part = specs[first : first + block]
        with tempfile.TemporaryDirectory(prefix="arcano-sim-", dir=SCRATCH) as tmp:
            results.extend(await Simulation(part, Path(tmp)).run())
    return results
