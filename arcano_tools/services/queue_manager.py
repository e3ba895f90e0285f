"""The queue manager: submit, dispatch to an account slot, start the task upstream, finish.

Flow of a job (``docs/jobs.md`` draws it)::

    submit ─ charge + row (queued) ─► dispatcher ─ claim slot (starting) ─► upload inputs
        ─► create task with webhookUrl = /webhooks/runninghub/{table}/{jobId}?token=HMAC
        ─► save task_id (running) ─► … webhook / sync / watchdog ─► finish (terminal)

* A job only leaves ``queued`` by atomically taking a slot (``in_flight < max_concurrent``), so
  no account ever runs more tasks than its cap, with any number of dispatchers.
* 421/415 (RunningHub's queue is full) and transient failures put the job back in the queue
  with backoff; permanent errors fail it with a clear message and the refund.
* :meth:`QueueManager.finish` is the only way to end a job; it frees the slot and wakes the
  dispatcher so the next queued job starts at once.
* A start in flight holds a short lease on its job (``START_LEASE_S``, renewed every
  ``START_HEARTBEAT_S``): a killed process's starts go back in the queue within seconds (the
  server watchdog's ``recover_stalled_starts``); a graceful stop (:meth:`QueueManager.shutdown`)
  puts its own back at once. The webhook URL names the start's claim, so a task created by a
  start that lost its claim (an orphan: RunningHub's create call has no idempotency key) is
  cancelled and never applied, whether its id comes from a late answer or from its webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta

from arcano_tools import constants as c
from arcano_tools.domain.errors import InvalidInput, JobNotCancellable, JobNotFound
from arcano_tools.domain.records import (
    Account,
    Clock,
    FinishRequest,
    FinishResult,
    Job,
    NewJob,
    utcnow,
)
from arcano_tools.domain.repository import Repository
from arcano_tools.domain.status import FinishedBy, JobStatus
from arcano_tools.domain.tools import Tool, ToolRegistry
from arcano_tools.metrics import Metrics
from arcano_tools.runninghub.client import RunningHubClient
from arcano_tools.runninghub.errors import (
    APIError,
    InsufficientBalance,
    InvalidRequest,
    RunningHubError,
    TaskNotFound,
    Unauthorized,
)
from arcano_tools.services.bus import JobBus, JobUpdate
from arcano_tools.services.schedule import Cadence, CheckSchedule
from arcano_tools.services.uploads import CheckedFile, FileStore, Upload, check_file

log = logging.getLogger(__name__)

#: Transient failures (network, 5xx) while starting a job before we give up and refund.
MAX_START_FAILURES = 5
#: How long a tool's learned first-check delay is reused before re-reading its history.
FIRST_CHECK_CACHE_S = 60.0
#: A stop waits at most this long for interrupted starts to requeue their jobs (one write
#: each); past it the database is not answering and their leases will expire instead.
SHUTDOWN_UNWIND_S = 5.0

#: Messages shown to the user when a job cannot start; the technical cause goes to the log.
MSG_REJECTED = "O serviço de IA recusou este pedido. Seus créditos foram devolvidos."
#: Every RunningHub account is disabled (its key refused: 802/801/811): nothing queued can
#: start until an operator fixes the key, so queued jobs end now instead of at the deadline.
MSG_NO_ACCOUNT = (
    "O serviço de IA está indisponível no momento (nossa conta foi recusada). "
    "Seus créditos foram devolvidos; tente de novo mais tarde."
)
MSG_UNAVAILABLE = (
    "O serviço de IA está indisponível no momento. Seus créditos foram devolvidos; "
    "tente novamente em alguns minutos."
)
MSG_INPUT_MISSING = (
    "O arquivo enviado não está mais disponível no servidor. Seus créditos foram devolvidos; "
    "envie o arquivo de novo."
)
#: Shown while a job waits in the queue again (its ``error_message``; the page shows it). The
#: technical cause (RunningHub's code, the exception) goes to the log and ``upstream_errors``.
MSG_REQUEUED_BUSY = (
    "O serviço de IA está ocupado; seu trabalho continua na fila e começa sozinho em instantes."
)
MSG_REQUEUED_RETRY = (
    "O serviço de IA não respondeu; seu trabalho continua na fila e será tentado de novo "
    "em instantes."
)
MSG_REQUEUED_INTERRUPTED = (
    "O início do seu trabalho foi interrompido por uma reinicialização do servidor; ele "
    "continua na fila e começa sozinho em instantes."
)


def webhook_token(secret: bytes, table: str, job_id: str, claim_id: str | None = None) -> str:
    """The token in the webhook URL: HMAC of our own ids, unguessable without the key.

    With ``claim_id`` (every start since start leases): ``<claim_id>.<HMAC of table, job and
    claim>``, so a webhook says which start created its task and one from a start that lost its
    claim is never applied. Without: the job's token alone (URLs given out before that).
    """
    message = f"{table}:{job_id}" if claim_id is None else f"{table}:{job_id}:{claim_id}"
    # the one-shot C HMAC: a first webhook delivery verifies one (``hmac.new`` built an
    # ``HMAC`` object and two hash objects in Python: 1.4 % of a burst of job ends)
    digest = hmac.digest(secret, message.encode(), "sha256").hex()
    mac = digest[: c.WEBHOOK_TOKEN_HEX_CHARS]
    return mac if claim_id is None else f"{claim_id}.{mac}"


def webhook_token_claim(token: str | None) -> str | None:
    """The claim a (verified) token names, or ``None`` for a job-only token."""
    if not token or "." not in token:
        return None
    return token.split(".", 1)[0]


def webhook_token_ok(secret: bytes, table: str, job_id: str, token: str | None) -> bool:
    if not token:
        return False
    expected = webhook_token(secret, table, job_id, webhook_token_claim(token))
    # bytes, not str: compare_digest refuses non-ASCII text (a forged token must be a 401)
    return hmac.compare_digest(expected.encode(), token.encode())


class QueueManager:
    def __init__(
        self,
        *,
        store: Repository,
        client: RunningHubClient,
        tools: ToolRegistry,
        files: FileStore,
        bus: JobBus,
        webhook_base_url: str,
        webhook_secret: bytes,
        metrics: Metrics | None = None,
        schedule: CheckSchedule | None = None,
        deadline: timedelta | None = None,
        timeout_message: str = "",
        clock: Clock = utcnow,
    ) -> None:
        self.clock = clock
        #: ``WATCHDOG_MAX_TIMEOUT_MS``: a queued job past it is failed, never started (its
        #: task could not finish in time and would cost RunningHub time nobody waits for).
        self.deadline = deadline
        self.timeout_message = timeout_message
        self.metrics = metrics or Metrics()
        self.schedule = schedule
        self._cadences: dict[str, tuple[float, Cadence]] = {}
        self.store = store
        self.client = client
        self.tools = tools
        self.files = files
        self.bus = bus
        self.webhook_base_url = webhook_base_url.rstrip("/")
        self.webhook_secret = webhook_secret
        self._wake = asyncio.Event()
        #: The last read of the queue found no job due, and nothing was queued here since: a
        #: freed slot then has nothing to start (see :meth:`slot_freed`).
        self._queue_seen_empty = False
        #: Background work: starts and upstream cancels (a stop waits for them).
        self._starting: set[asyncio.Task[None]] = set()
        #: Starts still uploading or waiting on the create call: what a stop may interrupt.
        self._creating: set[asyncio.Task[None]] = set()
        self._closing = False
        #: Real-time seconds between start lease renewals, and the lease (tests shrink them).
        self.heartbeat_every = c.START_HEARTBEAT_S
        self.start_lease = timedelta(seconds=c.START_LEASE_S)
        #: How long a graceful stop lets starts in flight finish before it requeues them.
        self.shutdown_grace = c.SHUTDOWN_START_GRACE_S
        #: Called with a job whose task id was just saved (applies kept old-style webhooks).
        self.on_task_saved: Callable[[Job], Awaitable[None]] | None = None

    # --- submit ---------------------------------------------------------------------------

    def tool_for(self, name: str) -> Tool:
        tool = self.tools.by_name(name or "")
        if tool is None:
            known = ", ".join(t.name for t in self.tools.tools)
            raise InvalidInput(f"Ferramenta desconhecida: “{name}”. Use uma destas: {known}.")
        return tool

    def check_inputs(
        self, tool: Tool, fields: Mapping[str, str], uploads: Mapping[str, Upload]
    ) -> tuple[dict[str, object], list[CheckedFile]]:
        """Validate parameters and files; raises before anything is written or charged."""
        params: dict[str, object] = {}
        if tool.scales:
            raw = (fields.get("scale") or "").strip()
            allowed = " ou ".join(str(s) for s in tool.scales)
            if not raw:
                raise InvalidInput(f"Campo obrigatório ausente: scale ({allowed}).")
            # ASCII digits only, and short: "²" is isdigit() yet no int, "٢" is int 2, and
            # int() refuses 4,300+ digits (each was a 500 or an accepted oddity)
            plain = raw.isascii() and raw.isdecimal() and len(raw) <= 3
            if not plain or int(raw) not in tool.scales:
                raise InvalidInput(f"Escala inválida: “{raw[:12]}”. Use {allowed}.")
            params["scale"] = int(raw)
        checked: list[CheckedFile] = []
        for spec in tool.files:
            upload = uploads.get(spec.name)
            if upload is None:
                raise InvalidInput(f"Campo obrigatório ausente: {spec.name} ({spec.label}).")
            checked.append(check_file(spec, upload))
        return params, checked

    async def submit(
        self, user_id: str, tool_name: str, fields: Mapping[str, str], uploads: Mapping[str, Upload]
    ) -> Job:
        """Validate, store the inputs, charge the credits and queue the job."""
        tool = self.tool_for(tool_name)
        params, checked = self.check_inputs(tool, fields, uploads)
        job_id = str(uuid.uuid4())
        described = await asyncio.to_thread(self.files.save, tool.table, job_id, checked)
        try:
            job = await self.store.create_job(
                NewJob(
                    id=job_id,
                    table=tool.table,
                    user_id=user_id,
                    cost=tool.cost,
                    inputs={"files": described, **params},
                )
            )
        except BaseException:
            self.files.discard(tool.table, job_id)
            raise
        log.info(
            "job submitted",
            extra={"action": "submit", "job_id": job.id, "table": job.table, "user_id": user_id},
        )
        self._publish(job)
        self.wake()
        return job

    # --- dispatch -------------------------------------------------------------------------

    def wake(self) -> None:
        """Something may be waiting in the queue (a submission, a requeue, an account that
        can no longer start anything): read it now."""
        self._queue_seen_empty = False
        self._wake.set()

    def slot_freed(self) -> None:
        """A job let its account slot go (a finish, a result saved, a slot count corrected):
        read the queue now, unless its last read found nothing due and nothing was queued in
        this process since. Under a webhook burst with an empty queue that was a read every
        ``DISPATCH_MIN_GAP_S`` (50 a second, a tenth of a first delivery's CPU) to start
        nothing. A job queued by another process or due later is read on the next tick
        (``DISPATCH_TICK_S``) — as soon as its own process's wake would have it."""
        if not self._queue_seen_empty:
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """The dispatcher loop (a lifespan task): dispatch whenever woken, and on a tick.

        Dispatches are ``DISPATCH_MIN_GAP_S`` apart at least: every finish wakes the loop (a
        slot is free), and 300 webhooks a second read the queue 300 times a second — 3 % of
        a first delivery's CPU. Wakes within the gap are served by one dispatch after it.
        """
        while not stop.is_set():
            # cleared before the queue is read: a wake while it is read (a submission the
            # read missed) is kept for the next dispatch, not lost until the tick
            self._wake.clear()
            try:
                await self.dispatch_once()
            except Exception:
                log.exception("dispatch failed", extra={"action": "dispatch"})
            dispatched = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=c.DISPATCH_TICK_S)
            gap = dispatched + c.DISPATCH_MIN_GAP_S - time.monotonic()
            if gap > 0 and not stop.is_set():
                await asyncio.sleep(gap)
        await self.shutdown()

    async def dispatch_once(self) -> int:
        """Start as many due queued jobs as accounts have free slots; returns how many."""
        started = 0
        now = self.clock()
        queued = await self.store.queued_jobs_due(now)
        # a wake during the read (a submission it missed) is kept and clears this again
        self._queue_seen_empty = not queued
        usable = bool(queued) and await self.store.has_enabled_account()
        # the accounts with room, read again only once every one of them has refused a claim
        # (a read per job was a twentieth of a start's CPU); least busy first, as read
        accounts: list[Account] = []
        for job in queued:
            if self._closing:
                break
            if not usable:
                await self._end_unstarted(job, FinishedBy.DISPATCH, MSG_NO_ACCOUNT)
                continue
            if self.deadline is not None and now >= job.deadline_from + self.deadline:
                await self._end_unstarted(job, FinishedBy.TIMEOUT, self.timeout_message)
                continue
            if not accounts:
                accounts = await self.store.accounts_with_free_slots()
                if not accounts:
                    break
            first_check = await self.first_check_delay(job.table)
            for account in list(accounts):
                claimed = await self.store.claim_slot(
                    job, account.name, first_check_in=first_check, start_lease_for=self.start_lease
                )
                if claimed is None:  # full (or the job taken elsewhere): not asked again
                    accounts.remove(account)
                    continue
                accounts = _one_slot_taken(accounts, account)
                if self._closing:  # the stop began while this claim was being written
                    await self._give_back(claimed, "stopping before the start began")
                    return started
                self._publish(claimed)
                task = asyncio.create_task(self._start(claimed, account))
                self._starting.add(task)
                task.add_done_callback(self._starting.discard)
                started += 1
                break
        return started

    async def _end_unstarted(self, job: Job, by: FinishedBy, message: str) -> None:
        """Fail a queued job that can no longer start, with a refund (guarded like any finish:
        a cancel that got there first wins)."""
        result = await self.finish(
            job.table, job.id, FinishRequest(JobStatus.FAILED, by, error_message=message)
        )
        if result.changed:
            log.warning(
                "queued job ended before its start",
                extra={"action": "end_unstarted", "job_id": job.id, "table": job.table},
            )

    async def shutdown(self) -> int:
        """A graceful stop: start nothing new; let the starts in flight finish for
        ``shutdown_grace``, then put those still uploading or waiting on the create call back
        in the queue (slot released, claim given up, due at once for any process). Returns how
        many were put back.

        Not counted as failed starts: the stop is ours, not the job's or RunningHub's, and five
        deploys during one job's start must not fail it (its deadline still bounds it). A start
        interrupted by a crash is counted (``recover_stuck_start``): a job that kills the
        process starting it must not take every process down in turn until its deadline.
        """
        if self._closing:  # stopping already (the dispatcher loop's end after Services.stop)
            return 0
        self._closing = True
        if self._starting:
            await asyncio.wait(set(self._starting), timeout=self.shutdown_grace)
        interrupted = [task for task in self._creating if not task.done()]
        for task in interrupted:
            task.cancel()
        if self._starting:  # each interrupted start requeues its job as it unwinds
            await asyncio.wait(set(self._starting), timeout=SHUTDOWN_UNWIND_S)
        for task in list(self._starting):  # upstream cancels still running: best effort
            task.cancel()
        if interrupted:
            log.warning(
                "starts in flight put back in the queue",
                extra={"action": "shutdown", "count": len(interrupted)},
            )
        return len(interrupted)

    async def first_check_delay(self, table: str) -> timedelta | None:
        """The learned delay before a job's first upstream check (cached per tool a minute)."""
        cadence = await self.cadence(table)
        return None if cadence is None else cadence.first

    async def cadence(self, table: str) -> Cadence | None:
        """How the tool's jobs are checked, learned from its history (cached per tool a
        minute); ``None`` without a schedule (the plan's constants)."""
        if self.schedule is None:
            return None
        # the service clock, not the event loop's: a simulation on a virtual clock (and a
        # test's fake clock) sees the history refreshed on its own time
        now = self.clock().timestamp()
        cached = self._cadences.get(table)
        if cached is None or now - cached[0] > FIRST_CHECK_CACHE_S:
            durations = await self.store.recent_durations(table)
            cached = (now, self.schedule.cadence(durations))
            self._cadences[table] = cached
        return cached[1]

    async def _start(self, job: Job, account: Account) -> None:
        """Upload the inputs and create the task; never raises (outcomes land in the row),
        except the cancellation of a graceful stop, once the job is back in the queue."""
        tool = self.tools.by_table(job.table)
        assert tool is not None
        me = asyncio.current_task()
        assert me is not None
        self._creating.add(me)
        heartbeat = asyncio.create_task(self._keep_start_lease(job))
        try:
            try:  # the part a graceful stop may interrupt (only while in ``_creating``)
                nodes = await self._node_info_list(tool, job, account)
                created = await self.client.run_app(
                    account.api_key,
                    tool.app_id,
                    nodes,
                    webhook_url=self.webhook_url(job.table, job.id, job.claim_id),
                )
            finally:
                self._creating.discard(me)
                heartbeat.cancel()
        except asyncio.CancelledError:
            # a graceful stop (shutdown): the next process starts it; if this create call
            # landed anyway, its task's webhook names this claim and is never applied
            await self._give_back(job, "process stopping during the start")
            raise
        except RunningHubError as exc:
            await self._start_failed(job, exc)
            return
        except FileNotFoundError as exc:
            # retrying cannot bring the file back: fail now (refund) rather than after the
            # timeout. With several backend processes this means their upload storage
            # (ARCANO_DATA_DIR) is not shared — say so to the operator.
            log.error(
                "job input missing",
                extra={
                    "action": "start_input_missing",
                    "job_id": job.id,
                    "table": job.table,
                    "error": f"{exc.filename} not found; is ARCANO_DATA_DIR shared by every "
                    "backend process?",
                },
            )
            if await self._holds_claim(job):
                await self._fail_start(job, MSG_INPUT_MISSING)
            return
        except Exception:
            log.exception("job start crashed", extra={"action": "start", "job_id": job.id})
            await self._retry_start(job, "internal error while starting")
            return
        saved = await self.store.save_task_id(
            job.table, job.id, created.task_id, claim_id=job.claim_id
        )
        log.info(
            "task created",
            extra={
                "action": "task_created",
                "job_id": job.id,
                "table": job.table,
                "task_id": created.task_id,
                "account": account.name,
            },
        )
        if saved is None:
            return
        self._publish(saved)
        if saved.task_id != created.task_id:
            # this start lost its claim (put back in the queue, maybe dispatched again): its
            # task is an orphan nobody will follow
            self._note_orphan(job, created.task_id, "create_answer")
            await self._cancel_task(account, created.task_id, saved)
        elif saved.status in (JobStatus.CANCELLED, JobStatus.FAILED):
            # cancelled (or timed out) while the create call was in flight: stop the task
            await self.cancel_upstream(saved)
        elif self.on_task_saved is not None:
            await self.on_task_saved(saved)

    async def _node_info_list(self, tool: Tool, job: Job, account: Account) -> list[dict[str, str]]:
        nodes: list[dict[str, str]] = []
        files: dict[str, dict[str, str]] = job.inputs.get("files", {})
        for name, (node_id, field_name) in tool.nodes.items():
            if name in files:
                meta = files[name]
                content = await asyncio.to_thread(self.files.read, meta["path"])
                value = await self.client.upload(
                    account.api_key,
                    f"{name}{_suffix(meta['path'])}",
                    content,
                    meta.get("content_type", "application/octet-stream"),
                )
            else:
                value = str(job.inputs[name])
            nodes.append({"nodeId": node_id, "fieldName": field_name, "fieldValue": value})
        return nodes

    async def _keep_start_lease(self, job: Job) -> None:
        """Renew the start lease while the start runs (the heartbeat); stop once the claim
        is gone. A failed renewal is only logged: the next one may succeed."""
        while True:
            await asyncio.sleep(self.heartbeat_every)
            try:
                kept = await self.store.renew_start_lease(
                    job, until=self.clock() + self.start_lease
                )
            except Exception as exc:
                log.warning(
                    "start lease not renewed",
                    extra={"action": "start_lease", "job_id": job.id, "error": repr(exc)},
                )
                continue
            if not kept:
                return

    def webhook_url(self, table: str, job_id: str, claim_id: str | None = None) -> str:
        token = webhook_token(self.webhook_secret, table, job_id, claim_id)
        return f"{self.webhook_base_url}/webhooks/runninghub/{table}/{job_id}?token={token}"

    async def _start_failed(self, job: Job, exc: RunningHubError) -> None:
        code = str(exc.code) if isinstance(exc, APIError) else type(exc).__name__
        await self.store.record_upstream_error("run", code, job.table, job.id)
        if not await self._holds_claim(job):
            return  # this start lost its claim: the current one decides the job's fate
        if exc.requeue:
            await self._requeue(job, f"RunningHub busy ({code})", MSG_REQUEUED_BUSY)
            return
        if isinstance(exc, Unauthorized) and job.api_account:
            # RunningHub refuses this key (802/801/811): stop sending jobs to it; operators
            # see the account disabled, with the reason
            await self.store.disable_account(job.api_account, f"RunningHub code {code}")
            log.error(
                "account disabled",
                extra={"action": "account_disabled", "account": job.api_account, "code": code},
            )
            self.wake()  # with no account left, the queued jobs end now (``dispatch_once``)
        permanent = isinstance(
            exc, InvalidRequest | Unauthorized | InsufficientBalance | TaskNotFound
        )
        if permanent or (isinstance(exc, APIError) and not exc.retryable):
            log.error(
                "job rejected upstream",
                extra={
                    "action": "start_rejected",
                    "job_id": job.id,
                    "table": job.table,
                    "code": code,
                    "error": str(exc),
                },
            )
            await self._fail_start(job, MSG_REJECTED)
            return
        await self._retry_start(job, f"RunningHub unavailable ({code})")

    async def _holds_claim(self, job: Job) -> bool:
        """Is this start still the job's current one (not requeued as stuck and redispatched)?"""
        current = await self.store.get_job(job.table, job.id)
        return current is not None and current.claim_id == job.claim_id

    async def _fail_start(self, job: Job, message: str) -> None:
        """Fail a start with a refund — only under its claim: the slot is given back first
        (fenced, like any requeue), and only if that succeeded is the job finished, while it
        waits out a backoff no dispatcher takes it in. A start or recovery that lost its
        claim therefore never fails the job its successor is running."""
        parked = self.clock() + timedelta(seconds=c.QUEUE_RETRY_MAX_S)
        if await self.store.requeue(job, retry_at=parked, reason=message):
            await self.finish(
                job.table,
                job.id,
                FinishRequest(JobStatus.FAILED, FinishedBy.DISPATCH, error_message=message),
            )

    async def _retry_start(self, job: Job, cause: str, message: str = MSG_REQUEUED_RETRY) -> bool:
        """Queue a failed start again with backoff (True), or give up (refund) after too many.

        Only failed starts count (``start_failures``), not RunningHub's 421/415: a job that
        waited out a long busy spell still gets its full number of tries.
        """
        if job.start_failures + 1 >= MAX_START_FAILURES:
            await self._fail_start(job, MSG_UNAVAILABLE)
            return False
        return await self._requeue(job, cause, message, failed=True)

    async def _requeue(
        self, job: Job, cause: str, message: str, *, failed: bool = False, at_once: bool = False
    ) -> bool:
        """Back to the queue with jittered exponential backoff on the counter of the cause
        (``at_once``: due now, for any process). ``message`` is what the job's page shows;
        ``cause``, the technical reason, goes to the log."""
        tries = job.start_failures if failed else job.attempts
        delay = 0.0 if at_once else min(c.QUEUE_RETRY_MAX_S, c.QUEUE_RETRY_BASE_S * 2**tries)
        delay *= random.uniform(0.75, 1.25)
        if not await self.store.requeue(
            job, retry_at=self.clock() + timedelta(seconds=delay), reason=message, failed=failed
        ):
            return False
        log.info(
            "job requeued",
            extra={
                "action": "requeue",
                "job_id": job.id,
                "table": job.table,
                "reason": cause,
                "retry_in_s": round(delay, 2),
            },
        )
        requeued = await self.store.get_job(job.table, job.id)
        if requeued is not None:
            self._publish(requeued)
        self.wake()
        return True

    async def _give_back(self, job: Job, cause: str) -> None:
        """A graceful stop interrupts this start: queue the job again, due at once, without
        counting a failed start (see :meth:`shutdown`). Never raises: it runs while unwinding."""
        try:
            if await self._requeue(job, cause, MSG_REQUEUED_INTERRUPTED, at_once=True):
                self.metrics.starts_given_back.labels("stop").inc()
        except Exception:
            log.exception(
                "start not given back",
                extra={"action": "shutdown", "job_id": job.id, "table": job.table},
            )

    async def recover_stuck_start(self, job: Job) -> None:
        """A job left in ``starting`` with no task id by a crashed process: queue it again.

        Retrying is right (docs/watchdog.md): the user paid for a result and RunningHub most
        likely never created the task. If it did, that task belongs to the lost claim: its
        webhook (which names that claim) is never applied and the task is cancelled, so one
        result is applied and credits are charged once. It counts as a failed start: after
        ``MAX_START_FAILURES`` the job fails with a refund instead. Fenced by ``job``'s claim.
        """
        log.warning(
            "stuck start recovered",
            extra={"action": "recover_stuck_start", "job_id": job.id, "table": job.table},
        )
        if await self._retry_start(
            job,
            "start interrupted (process stopped before saving the task id)",
            MSG_REQUEUED_INTERRUPTED,
        ):
            self.metrics.starts_given_back.labels("crash").inc()

    # --- finish and cancel ------------------------------------------------------------------

    async def finish(self, table: str, job_id: str, req: FinishRequest) -> FinishResult:
        """The one terminal transition; publishes the change and starts the next queued job."""
        result = await self.store.finish(table, job_id, req)
        if result is None:
            raise JobNotFound()
        if result.changed:
            self.metrics.count(
                self.metrics.jobs_finished, table, req.status.value, req.finished_by.value
            )
            log.info(
                "job finished",
                extra={
                    "action": "finish",
                    "job_id": job_id,
                    "table": table,
                    "status": req.status.value,
                    "finished_by": req.finished_by.value,
                    "refunded": result.refunded,
                },
            )
            self._publish(result.job)
            self.slot_freed()
        return result

    async def cancel(self, table: str, job_id: str, user_id: str | None) -> FinishResult:
        """The user's cancel: finish as cancelled (refund), then cancel the task upstream."""
        job = await self.store.get_job(table, job_id)
        if job is None or (user_id is not None and job.user_id != user_id):
            raise JobNotFound()
        if job.status.is_terminal or job.saving:
            # saving: RunningHub already made the result and it is being kept; cancelling
            # would refund work that was done (the copy ends in minutes at most)
            raise JobNotCancellable()
        result = await self.finish(
            table,
            job_id,
            FinishRequest(
                JobStatus.CANCELLED, FinishedBy.USER, error_message="Cancelado pelo usuário."
            ),
        )
        if not result.changed:
            raise JobNotCancellable()  # it ended meanwhile (webhook, timeout): nothing refunded
        self.cancel_upstream_soon(result.job)
        return result

    def cancel_upstream_soon(self, job: Job) -> None:
        """Cancel upstream in the background: RunningHub's answer (and retries) never keeps
        a page event or an HTTP request waiting."""
        task = asyncio.create_task(self.cancel_upstream(job))
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def cancel_upstream(self, job: Job) -> None:
        """Best effort: stop RunningHub spending on a task we no longer want."""
        if not job.task_id:
            return
        account = await self.store.get_account(job.api_account or "")
        if account is None:
            return
        await self._cancel_task(account, job.task_id, job)

    def cancel_orphan_soon(self, job: Job, task_id: str) -> None:
        """A task of a start that lost its claim, learned from its webhook: cancel it upstream
        in the background, with the account the job was claimed on."""

        async def cancel() -> None:
            if await self.store.find_job_by_task_id(task_id) is not None:
                return  # another job's task (a replayed webhook): never ours to stop
            account = await self.store.get_account(job.api_account or "")
            if account is not None:
                await self._cancel_task(account, task_id, job)

        self._note_orphan(job, task_id, "webhook")
        task = asyncio.create_task(cancel())
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    def _note_orphan(self, job: Job, task_id: str, found_by: str) -> None:
        """Count and log an orphan task (one per way it was found: webhook, create answer)."""
        self.metrics.orphan_tasks.labels(found_by).inc()
        log.warning(
            "orphan task cancelled",
            extra={
                "action": "orphan_task",
                "job_id": job.id,
                "table": job.table,
                "task_id": task_id,
                "found_by": found_by,
            },
        )

    async def _cancel_task(self, account: Account, task_id: str, job: Job) -> None:
        try:
            await self.client.cancel(account.api_key, task_id)
        except RunningHubError as exc:
            log.warning(
                "upstream cancel failed",
                extra={"action": "cancel_upstream", "job_id": job.id, "error": str(exc)},
            )

    def _publish(self, job: Job) -> None:
        self.bus.publish(JobUpdate.of(job))


def _one_slot_taken(accounts: list[Account], account: Account) -> list[Account]:
    """``accounts`` once ``account`` has one task more: least busy first again (by name on a
    tie, as the store lists them), without it once it is full."""
    taken = dataclasses.replace(account, in_flight=account.in_flight + 1)
    rest = [a for a in accounts if a is not account]
    if taken.in_flight < taken.max_concurrent:
        rest.append(taken)
    return sorted(rest, key=lambda a: (a.in_flight, a.name))


def _suffix(path: str) -> str:
    dot = path.rfind(".")
    return path[dot:] if dot != -1 else ""
