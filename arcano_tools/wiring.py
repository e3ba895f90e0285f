"""Wiring: one :class:`Services` per process, built from :class:`Settings`.

The HTTP routes, the Reflex pages and the CLI all reach the job core through this object, so a
page and a webhook in the same process share one store, one RunningHub client and one bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from arcano_tools.config import DEFAULT_ACCOUNT_NAME, DEV_MODE, Settings
from arcano_tools.domain.records import User, utcnow
from arcano_tools.domain.tools import ToolRegistry
from arcano_tools.logs import flush_logs
from arcano_tools.metrics import Metrics
from arcano_tools.runninghub.client import CallObserver, RunningHubClient
from arcano_tools.services.auth import TokenVerifier, issue_user_token
from arcano_tools.services.bus import JobBus
from arcano_tools.services.bus_relay import RedisBusRelay
from arcano_tools.services.output_copy import CopyPolicy, OutputCopier
from arcano_tools.services.queue_manager import QueueManager
from arcano_tools.services.schedule import CheckSchedule
from arcano_tools.services.server_watchdog import ServerWatchdog
from arcano_tools.services.signing_keys import SigningKeys
from arcano_tools.services.supabase_auth import SupabaseAuth
from arcano_tools.services.sync import JobSync, SyncTimings
from arcano_tools.services.uploads import FileStore
from arcano_tools.services.webhooks import WebhookReceiver
from arcano_tools.storage import ObjectStorage
from arcano_tools.storage.local import LocalStorage
from arcano_tools.storage.supabase import SupabaseStorage
from arcano_tools.store import JobStore
from arcano_tools.store.query_count import count_queries, counting_enabled

log = logging.getLogger(__name__)


class UnsafeConfiguration(SystemExit):
    """A server would start on demo defaults without anyone choosing the demo. A
    ``SystemExit`` so the process stops with the one line that says what to set."""


def refuse_unsafe_start(settings: Settings) -> None:
    """Stop the process (one clear line, logged and printed) when its settings would make a
    production server fail open: the emulator, generated secrets (``Settings.startup_problem``)."""
    problem = settings.startup_problem()
    if problem is not None:
        log.critical(problem, extra={"action": "refuse_start"})
        flush_logs()  # the record first: the process's last line is the one printed
        raise UnsafeConfiguration(f"arcano_tools: {problem}")


#: Where the backend serves stored results (``/files/results/<table>/<job>.<ext>``).
RESULT_FILES_PATH = "files"


def build_storage(settings: Settings) -> ObjectStorage:
    """Supabase Storage when ``SUPABASE_URL`` and ``SUPABASE_SERVICE_ROLE_KEY`` are set (several
    processes or machines, no shared disk); else the data directory (one machine)."""
    if settings.supabase_storage:
        return SupabaseStorage(
            settings.supabase_url,
            settings.supabase_service_role_key,
            settings.supabase_storage_bucket,
        )
    return LocalStorage(settings.data_dir)


class Services:
    def __init__(self, settings: Settings, *, observer: CallObserver | None = None) -> None:
        self.settings = settings
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # keys, uploads
        self.tools = ToolRegistry.from_config(settings.runninghub_tools_json)
        self.store = JobStore.from_url(
            settings.sqlalchemy_url, transaction_pooler=settings.transaction_pooler
        )
        self.metrics = Metrics()
        if counting_enabled():
            count_queries(self.store.sync_engines, self.metrics.db_queries.inc)
        self.client = RunningHubClient(
            settings.runninghub_base_url,
            observer=observer or self._count_upstream,
            max_concurrency=settings.upstream_max_concurrency,
            max_rps=settings.upstream_max_rps,
        )
        self.bus = JobBus()
        #: Carries job updates to the other backend processes (multi-worker deployments).
        self.relay = (
            RedisBusRelay(self.bus, settings.redis_url, metrics=self.metrics)
            if settings.redis_url
            else None
        )
        #: Inputs and results: Supabase Storage when configured, else the data directory.
        self.storage = build_storage(settings)
        self.files = FileStore(settings.data_dir, self.storage)
        #: Verifies user access tokens locally (ours, and Supabase's when configured).
        self.tokens = TokenVerifier(
            settings.effective_jwt_secret,
            SigningKeys.from_supabase(settings.supabase_url) if settings.supabase_url else None,
            issuer=settings.supabase_issuer,
        )
        #: Sign-up / sign-in pages talk to Supabase Auth (``SUPABASE_URL`` + anon key).
        self.auth = (
            SupabaseAuth(settings.supabase_url, settings.supabase_anon_key)
            if settings.supabase_auth
            else None
        )
        self.timings = SyncTimings(
            initial_delay=timedelta(milliseconds=settings.watchdog_initial_delay_ms),
            poll_interval=timedelta(milliseconds=settings.watchdog_poll_interval_ms),
            max_timeout=timedelta(milliseconds=settings.watchdog_max_timeout_ms),
            timeout_message=settings.timeout_message,
        )
        self.queue = QueueManager(
            store=self.store,
            client=self.client,
            tools=self.tools,
            files=self.files,
            bus=self.bus,
            webhook_base_url=settings.own_base_url,
            webhook_secret=settings.webhook_secret,
            metrics=self.metrics,
            schedule=CheckSchedule(
                initial_delay=self.timings.initial_delay,
                poll_interval=self.timings.poll_interval,
                max_timeout=self.timings.max_timeout,
            ),
            deadline=self.timings.max_timeout,
            timeout_message=self.timings.timeout_message,
        )
        self.sync = JobSync(
            store=self.store,
            client=self.client,
            queue=self.queue,
            tools=self.tools,
            timings=self.timings,
            default_account=DEFAULT_ACCOUNT_NAME,
            output_hosts=settings.output_hosts,
        )
        #: Copies each result into our storage before completing its job (results that last).
        self.copier: OutputCopier | None = None
        if settings.keep_results:
            self.copier = OutputCopier(
                store=self.store,
                storage=self.storage,
                queue=self.queue,
                hosts=settings.output_hosts,
                url_of=lambda key: f"{settings.own_base_url}/{RESULT_FILES_PATH}/{key}",
                policy=CopyPolicy(
                    retry_base=timedelta(milliseconds=settings.output_copy_retry_base_ms),
                    lease=timedelta(milliseconds=settings.output_copy_lease_ms),
                ),
            )
            self.sync.copier = self.copier
        self.webhooks = WebhookReceiver(
            store=self.store,
            sync=self.sync,
            tools=self.tools,
            webhook_secret=settings.webhook_secret,
        )
        self.queue.on_task_saved = self.webhooks.apply_kept
        self.server_watchdog = ServerWatchdog(
            store=self.store,
            sync=self.sync,
            queue=self.queue,
            max_concurrency=settings.upstream_max_concurrency,
            starting_stuck_after=timedelta(milliseconds=settings.starting_stuck_ms),
        )
        #: The embedded RunningHub emulator (an ASGI app mounted by the API) when no real URL.
        self.emulator_app: Any = None
        if settings.emulated:
            from arcano_tools.emulator import create_emulator_app
            from arcano_tools.emulator.guard import EmulatorGuard

            dev = settings.reflex_env_mode == DEV_MODE
            self.emulator_app = create_emulator_app(
                settings.data_dir / "emulator",
                guard=EmulatorGuard(
                    # make run's dev mode keeps them open (zero configuration); anywhere
                    # else steering the emulator needs the service key
                    control_key=None if dev else settings.effective_service_key,
                    # its webhooks go to this backend only (no request forgery through it)
                    webhook_origin=settings.own_base_url,
                ),
            )
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    def _count_upstream(self, endpoint: str, outcome: str) -> None:
        self.metrics.upstream_calls.labels(endpoint, outcome).inc()

    async def render_metrics(self) -> bytes:
        """The process's counters plus database gauges read now (same for every process)."""
        active = await self.store.active_summary()
        self.metrics.active_jobs.set(active.count)
        oldest = active.oldest_created_at
        age = (utcnow() - oldest).total_seconds() if oldest else 0.0
        self.metrics.oldest_active_age.set(age)
        return self.metrics.render()

    @property
    def service_key(self) -> str:
        return self.settings.effective_service_key

    @property
    def jwt_secret(self) -> str:
        return self.settings.effective_jwt_secret

    async def prepare(self) -> None:
        """Migrate, make sure the default RunningHub account (and the Supabase Storage
        bucket, when configured) exists (idempotent)."""
        await self.store.migrate()
        if isinstance(self.storage, SupabaseStorage):
            await asyncio.to_thread(self.storage.ensure_bucket)
        existing = await self.store.get_account(DEFAULT_ACCOUNT_NAME)
        if existing is None or self.settings.runninghub_api_key or self.settings.emulated:
            await self.store.upsert_account(
                DEFAULT_ACCOUNT_NAME,
                self.settings.effective_runninghub_api_key,
                self.settings.runninghub_max_concurrent,
            )

    async def start(self) -> None:
        """Prepare, then run the dispatcher in the background (a lifespan task)."""
        if self._started:
            return
        refuse_unsafe_start(self.settings)
        self._started = True
        await self.prepare()
        self._stop.clear()
        self.webhooks.events.open()
        if self.relay is not None:
            self.relay.start()
        self._tasks.append(asyncio.create_task(self.queue.run(self._stop), name="dispatcher"))
        # always: stalled starts are recovered even with the watchdog's checks switched off
        # (that recovery asks RunningHub nothing); the checks follow the flags
        self._tasks.append(
            asyncio.create_task(
                self.server_watchdog.run(self._stop, checks=self.settings.server_watchdog_active),
                name="server-watchdog",
            )
        )
        if self.copier is not None:  # retries and copies left by a stopped process
            self._tasks.append(asyncio.create_task(self.copier.run(self._stop), name="copier"))
        log.info(
            "services started",
            extra={
                "action": "start",
                "emulated": self.settings.emulated,
                "watchdog": self.settings.watchdog_enabled,
            },
        )

    async def stop(self) -> None:
        # first: starts in flight finish or go back in the queue (the store is still open)
        await self.queue.shutdown()
        self._stop.set()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.webhooks.events.aclose()  # duplicates' records not written yet
        if self.relay is not None:
            await self.relay.stop()
        if self.copier is not None:
            await self.copier.aclose()
        self.storage.close()
        if self.emulator_app is not None:  # a mounted app gets no lifespan of its own
            await self.emulator_app.state.emulator.shutdown()
        await self.client.aclose()
        await self.store.close()
        self._started = False
        # the stop's records (starts put back in the queue…) before the process ends: uvicorn
        # re-raises the stop's signal once it has served, and a process ended by a signal
        # runs no atexit, where the logging thread would have written what waits
        await asyncio.to_thread(flush_logs)

    async def user_token(self, user_id: str, *, anonymous: bool = False) -> tuple[User, str]:
        """Create the user if new (with starting credits) and mint an access token."""
        user = await self.store.ensure_user(
            user_id, credits=self.settings.starting_credits, anonymous=anonymous
        )
        return user, issue_user_token(self.jwt_secret, user_id)
