"""The fault matrix of the reliability issue: every fault we know RunningHub, the network, our
own processes or the database can throw at a job, as ONE table of scenarios, each run through
the real HTTP app (``python -m arcano_tools serve-api``) and the emulator (both subprocesses),
and judged by the promise (``tests/support/invariants.py::check_jobs``) plus the deadline.

Used by ``tests/integration/test_fault_matrix.py`` (eight jobs per scenario, the shrunk
timings of ``FAST_TIMINGS``, scenarios run four at a time) and by ``make matrix``::

    python -m tests.support.matrix --jobs 200          # the full-size run; prints the table
    python -m tests.support.matrix --only "webhook lost" --jobs 20

A scenario is data: its name, what is injected (emulator ``/_control`` settings, backend
environment, a fault proxy, hooks that post webhooks or kill a process mid-run), how many jobs,
and the terminal statuses its jobs may end in. Every run then checks, whatever happened:

* every job is terminal by its deadline (``created_at`` + ``WATCHDOG_MAX_TIMEOUT_MS``) plus one
  poll interval plus a margin, and in one of the expected statuses;
* exactly one terminal transition per job (``job finished`` lines in every API process's log);
* one charge, a refund iff failed/cancelled, each balance equal to its ledger;
* output URLs http(s) on the emulator's host, no two jobs sharing one;
* no account slot left held;
* what the scenario's own hooks expected (webhook answers 401/409/400, who finished the jobs).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import http.server
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa

from arcano_tools import constants as c
from arcano_tools.domain.records import Job
from arcano_tools.domain.status import LedgerKind
from arcano_tools.emulator.tasks import envelope, failure_envelope
from arcano_tools.emulator.webhooks import webhook_body
from arcano_tools.services.queue_manager import webhook_token
from arcano_tools.store import JobStore
from arcano_tools.tls import client_tls
from tests.support.invariants import check_jobs
from tests.support.postgres import PostgresServer, create_database, postgres_server_handle
from tests.support.processes import ServerProcess, free_port
from tests.support.servers import (
    FAST_TIMINGS,
    RH_API_KEY,
    SERVICE_KEY,
    SYNC_PATH,
    Backend,
    start_backend,
    start_emulator,
    submit_upscale,
)
from tests.support.waiting import wait_for

TABLE = "upscaler_jobs"
#: A user's starting credits pay for this many upscales with room to spare.
JOBS_PER_USER = 10
#: How long a timed fault (5xx burst, RunningHub unreachable, garbled answers) lasts after
#: the first job was submitted.
FAULT_S = 1.0
#: Where the emulator (and so every honest output URL) lives.
EMULATOR_HOST = "127.0.0.1"
#: Seconds an applied webhook's record may take to reach ``webhook_events`` (the receiving
#: process writes them in bulk every half second; a loaded machine takes longer).
EARLY_RECORD_WAIT_S = 10.0
WEBHOOK_SECRET = ("webhook:" + SERVICE_KEY).encode()
TERMINAL = frozenset({"completed", "failed", "cancelled"})
COMPLETED = frozenset({"completed"})
FAILED = frozenset({"failed"})
EITHER = frozenset({"completed", "failed"})


# --- sizes and timings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How big and how fast a matrix run is."""

    #: Jobs per scenario; ``None``: each scenario's own ``jobs`` (the ``make test`` size).
    jobs: int | None
    initial_ms: int
    poll_ms: int
    timeout_ms: int
    #: Slack on top of deadline + one poll interval (process start-up, a loaded machine).
    margin_s: float
    #: ``RUNNINGHUB_MAX_CONCURRENT``: enough that a full queue never waits out the deadline.
    max_concurrent: int
    #: Scenarios run at once (each with its own API processes and database, and an emulator
    #: of the pool reset for it).
    parallel: int
    #: Also run the scenarios marked ``full_only`` (minutes of fixed client timeouts).
    full: bool

    def env(self) -> dict[str, str]:
        return {
            "WATCHDOG_INITIAL_DELAY_MS": str(self.initial_ms),
            "WATCHDOG_POLL_INTERVAL_MS": str(self.poll_ms),
            "WATCHDOG_MAX_TIMEOUT_MS": str(self.timeout_ms),
            "RUNNINGHUB_MAX_CONCURRENT": str(self.max_concurrent),
            "SERVER_WATCHDOG_ENABLED": "true",
            "ARCANO_LOG_FORMAT": "json",
            "UPSTREAM_MAX_RPS": "500",
        }

    @property
    def deadline_s(self) -> float:
        """Longest a job may stay active after its clock started: the promise's bound."""
        return (self.timeout_ms + self.poll_ms) / 1000 + self.margin_s


#: ``make test``: the integration tests' shrunk timings (``FAST_TIMINGS``), eight jobs each.
TEST_PLAN = Plan(
    jobs=None,
    initial_ms=int(FAST_TIMINGS["WATCHDOG_INITIAL_DELAY_MS"]),
    poll_ms=int(FAST_TIMINGS["WATCHDOG_POLL_INTERVAL_MS"]),
    timeout_ms=int(FAST_TIMINGS["WATCHDOG_MAX_TIMEOUT_MS"]),
    margin_s=4.0,
    max_concurrent=4,
    parallel=4,
    full=False,
)


def full_plan(jobs: int, parallel: int = 1) -> Plan:
    """``make matrix``: ``jobs`` per scenario, the plan's 30 s and 15 s divided by 30 and its
    12 minutes by 24 (a 30 s deadline), scenarios one at a time so timings are not each
    other's load."""
    return Plan(
        jobs=jobs,
        initial_ms=1000,
        poll_ms=500,
        timeout_ms=30_000,
        margin_s=5.0,
        max_concurrent=50,
        parallel=parallel,
        full=True,
    )


# --- the scenario table ------------------------------------------------------------------------

Settings = Mapping[str, Any] | Callable[["Run"], Mapping[str, Any]]
Hook = Callable[["Run"], None]


@dataclass(frozen=True)
class Scenario:
    name: str
    #: What is injected, in a few words (the table's second column).
    injected: str
    #: Terminal statuses the jobs may end in.
    expect: frozenset[str]
    #: The emulator's ``/_control`` settings for the run (over ``task_ms=150, webhook=deliver``).
    emulator: Settings = field(default_factory=dict)
    #: The API processes' environment (over the plan's).
    env: Settings = field(default_factory=dict)
    #: Jobs in ``make test`` (the full run uses the plan's number, capped by ``max_jobs``).
    jobs: int = 8
    max_jobs: int | None = None
    #: Before the jobs are submitted / while they run / once all are terminal (more injection,
    #: then waiting for the injected events to have happened).
    before: Hook | None = None
    during: Hook | None = None
    after: Hook | None = None
    #: The scenario's own checks: problems as sentences.
    verify: Callable[[Run], list[str]] | None = None
    #: Where RunningHub calls go: the emulator, a fault proxy in front of it, or a blackhole.
    upstream: str = "emulator"
    #: ``sqlite`` and/or ``postgres`` (a fresh database of the session's server); ``own-postgres``:
    #: a server of its own (the scenario restarts it).
    databases: tuple[str, ...] = ("sqlite",)
    backends: int = 1
    #: A page watchdog on each API process (the sync endpoint every poll interval, every job).
    followers: bool = False
    full_only: bool = False
    #: A real product bug this scenario exposes (the test is a strict xfail with this reason).
    known_bug: str = ""


@dataclass(frozen=True)
class Case:
    scenario: Scenario
    database: str

    @property
    def id(self) -> str:
        return f"{self.scenario.name.replace(' ', '-')}[{self.database}]"


# --- a run's context -------------------------------------------------------------------------------


class EmulatorClient:
    """The emulator's controls and RunningHub API, from the test process."""

    def __init__(self, client: httpx.Client, url: str) -> None:
        self.client = client
        self.url = url

    def set(self, **settings: object) -> None:
        r = self.client.post(self.url + "/_control", json=settings)
        r.raise_for_status()

    def stats(self) -> dict[str, Any]:
        r = self.client.get(self.url + "/_stats")
        r.raise_for_status()
        return dict(r.json())

    def outputs(self, task_id: str) -> dict[str, Any]:
        """RunningHub's ``/outputs`` envelope of a task (the content of its webhook)."""
        r = self.client.post(
            self.url + "/task/openapi/outputs", json={"apiKey": RH_API_KEY, "taskId": task_id}
        )
        r.raise_for_status()
        return dict(r.json())


@dataclass
class Run:
    """Everything a scenario's hooks may use: the servers, the jobs, and where to note
    problems."""

    case: Case
    plan: Plan
    n: int
    workdir: Path
    client: httpx.Client
    emulator: ServerProcess | None = None
    emu: EmulatorClient | None = None
    upstream_url: str = ""
    database_url: str = ""
    backends: list[Backend] = field(default_factory=list)
    #: Every API process started (a killed one's log still counts its transitions).
    processes: list[ServerProcess] = field(default_factory=list)
    backend_env: dict[str, str] = field(default_factory=dict)
    job_ids: list[str] = field(default_factory=list)
    #: Which backend each job was submitted to (its webhook URL names that one).
    owner: dict[str, int] = field(default_factory=dict)
    proxy: FaultProxy | None = None
    pg: PostgresServer | None = None
    notes: list[str] = field(default_factory=list)
    #: Seconds no API process (or no database) was there: added to the deadline's allowance.
    downtime_s: float = 0.0
    #: When API processes were SIGKILLed.
    killed_at: list[dt.datetime] = field(default_factory=list)
    #: Jobs a SIGKILLed process had leased, and until when (its leases outlive it).
    dead_leases: dict[str, dt.datetime] = field(default_factory=dict)
    #: What a scenario's hooks remember for its checks.
    memo: dict[str, Any] = field(default_factory=dict)
    #: When the first job was submitted (``time.monotonic()``).
    submitted_at: float = 0.0
    _engine: sa.Engine | None = None

    @property
    def scenario(self) -> Scenario:
        return self.case.scenario

    @property
    def control(self) -> EmulatorClient:
        assert self.emu is not None
        return self.emu

    @property
    def store_url(self) -> str:
        """The database in the product's async dialect (for ``JobStore.from_url``)."""
        if self.database_url:
            return self.database_url.replace("postgresql://", "postgresql+psycopg://")
        return f"sqlite+aiosqlite:///{self.workdir / 'api' / 'arcano.db'}"

    def sleep_until(self, seconds_after_submit: float) -> None:
        time.sleep(max(0.0, self.submitted_at + seconds_after_submit - time.monotonic()))

    # --- reading the database ---------------------------------------------------------------

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Read the run's database directly (one engine per run, reconnecting after a restart)."""
        if self._engine is None:
            url = self.store_url.replace("+aiosqlite", "")
            self._engine = sa.create_engine(url, pool_pre_ping=True)
        with self._engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql))]

    def jobs(self) -> list[JobRow]:
        """The run's jobs as stored now, in submission order (one query)."""
        found = {
            r[0]: JobRow(*r[:6], deadline_from=_utc(r[6]))
            for r in self.rows(
                "SELECT id, status, task_id, finished_by, error_message, output_url,"
                f" created_at FROM {TABLE}"
            )
        }
        return [found[j] for j in self.job_ids if j in found]

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def wait_jobs(
        self, predicate: Callable[[list[JobRow]], bool], what: str, timeout: float | None = None
    ) -> list[JobRow]:
        def ready() -> list[JobRow] | None:
            try:
                jobs = self.jobs()
            except sa.exc.SQLAlchemyError:  # the database restarting: ask again
                return None
            return jobs if len(jobs) == self.n and predicate(jobs) else None

        return list(
            wait_for(ready, timeout=timeout or self.plan.deadline_s + 30, interval=0.2, what=what)
        )

    def wait_task_ids(self) -> list[JobRow]:
        return self.wait_jobs(lambda js: all(j.task_id for j in js), "every task created")

    def wait_done_upstream(self, job: JobRow) -> dict[str, Any]:
        """The task's ``/outputs`` envelope once RunningHub has a result."""
        assert job.task_id
        task_id = job.task_id
        return dict(
            wait_for(
                lambda: (e := self.control.outputs(task_id))["code"] == 0 and e,
                timeout=30,
                what=f"task {task_id} to end upstream",
            )
        )

    # --- posting webhooks -----------------------------------------------------------------------

    def token(self, job_id: str) -> str:
        return webhook_token(WEBHOOK_SECRET, TABLE, job_id)

    def post_webhook(
        self, job_id: str, body: bytes, *, token: str | None = "", expect: int, why: str
    ) -> None:
        """POST ``body`` to the job's webhook URL (its own token unless ``token`` is given;
        ``None``: no token) and note a problem unless the answer is ``expect``."""
        backend = self.backends[self.owner.get(job_id, 0)]
        url = f"{backend.url}/webhooks/runninghub/{TABLE}/{job_id}"
        params = {} if token is None else {"token": token or self.token(job_id)}
        r = self.client.post(url, params=params, content=body)
        if r.status_code != expect:
            self.notes.append(f"{job_id}: {why} answered {r.status_code} (want {expect}): {r.text}")

    # --- processes ----------------------------------------------------------------------------

    def start_backend(self, index: int | None = None, port: int | None = None) -> Backend:
        backend = start_backend(
            self.upstream_url,
            self.workdir / "api",
            self.database_url,
            self.backend_env,
            port=port,
        )
        self.processes.append(backend.api)
        if index is None:
            self.backends.append(backend)
        else:
            self.backends[index] = backend
        return backend

    def kill_and_restart_backend(self, index: int = 0) -> None:
        """SIGKILL the API process (no shutdown at all) and start it again on its port."""
        backend = self.backends[index]
        began = time.monotonic()
        os.killpg(backend.api.process.pid, signal.SIGKILL)
        backend.api.process.wait(timeout=10)
        self.killed_at.append(dt.datetime.now(dt.UTC))
        # what the dead process leaves behind: the jobs it had leased for a check
        self.dead_leases.update(self.leases())
        port = urlsplit(backend.url).port
        self.start_backend(index, port=port)
        self.downtime_s += time.monotonic() - began

    def leases(self, *, checking: bool = False) -> dict[str, dt.datetime]:
        """Active jobs leased by a server watchdog now, and until when (``checking``: only
        those with a task id, whose check asks RunningHub)."""
        rows = self.rows(
            f"SELECT id, lease_until FROM {TABLE} WHERE lease_owner IS NOT NULL"
            " AND status IN ('pending', 'queued', 'starting', 'running')"
            + (" AND task_id IS NOT NULL" if checking else "")
        )
        return {job_id: _utc(until) for job_id, until in rows if until is not None}


@dataclass(frozen=True)
class JobRow:
    """What the hooks read of a job (straight from its table)."""

    id: str
    status: str
    task_id: str | None
    finished_by: str | None
    error_message: str | None
    output_url: str | None
    #: Where its deadline counts from (``Job.deadline_from``: the submission).
    deadline_from: dt.datetime

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def _utc(value: Any) -> dt.datetime:
    """A timestamp read with plain SQL: SQLite's naive UTC text or PostgreSQL's aware value."""
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def with_store(url: str, read: Callable[[JobStore], Any]) -> Any:
    """Run ``read(store)`` on a fresh :class:`JobStore` over ``url`` (own event loop)."""

    async def go() -> Any:
        store = JobStore.from_url(url)
        try:
            return await read(store)
        finally:
            await store.close()

    return asyncio.run(go())


# --- faults in front of RunningHub -----------------------------------------------------------


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up mid-answer (a timed-out RunningHub call) is no news."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FaultProxy:
    """An HTTP proxy in front of the emulator that can be down (connection refused) or garble
    answers (a 200 whose JSON is cut in half) — what the emulator itself cannot do."""

    def __init__(self, target: str, *, seed: int = 7) -> None:
        self.target = target.rstrip("/")
        self.port = free_port()
        self.garble_rate = 0.0
        #: Garble at most this many answers (then answer honestly).
        self.garble_budget = 0
        self.garbled = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server: _QuietServer | None = None
        self._thread: threading.Thread | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def garble(self) -> bool:
        with self._lock:
            if self.garbled >= self.garble_budget:
                return False
            if self._rng.random() < self.garble_rate:
                self.garbled += 1
                return True
            return False

    def up(self) -> None:
        if self._server is not None:
            return
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._forward("GET")

            def do_POST(self) -> None:
                self._forward("POST")

            def _forward(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in ("content-type", "authorization")
                }
                try:
                    with httpx.Client(verify=client_tls(), timeout=120) as client:
                        r = client.request(
                            method, proxy.target + self.path, content=body, headers=headers
                        )
                except httpx.HTTPError:
                    self.send_error(502)
                    return
                content = r.content
                api = self.path.startswith(("/task/", "/uc/"))
                if api and r.status_code == 200 and proxy.garble():
                    content = content[: len(content) // 2]
                self.send_response(r.status_code)
                self.send_header("Content-Type", r.headers.get("content-type", "text/plain"))
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = _QuietServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def down(self) -> None:
        """Stop listening: every new connection is refused until :meth:`up`."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._server = None


class Blackhole:
    """A loopback port whose accept queue is full: a connection to it never completes, so a
    client's *connect* times out (``RH_CONNECT_TIMEOUT_S``) instead of being refused."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = int(self.sock.getsockname()[1])
        self.fillers: list[socket.socket] = []
        for _ in range(3):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", self.port))
            self.fillers.append(filler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        for s in [*self.fillers, self.sock]:
            s.close()


# --- the scenarios' hooks ----------------------------------------------------------------------


def _success(url: str) -> dict[str, Any]:
    item = {"fileUrl": url, "fileType": "png", "taskCostTime": 0.1, "nodeId": "9"}
    return envelope(0, "success", [item])


def _805() -> dict[str, Any]:
    return failure_envelope(
        node_id="5",
        node_name="KSampler",
        exception_type="RuntimeError",
        exception_message="a failure that arrived after the success",
    )


def post_failure_after_success(run: Run) -> None:
    for job in run.jobs():
        assert job.task_id
        body = webhook_body(job.task_id, _805())
        run.post_webhook(job.id, body, expect=200, why="a failure webhook after the success")


def post_success_after_timeout(run: Run) -> None:
    emulator_url = run.emu.url if run.emu else ""
    for i, job in enumerate(run.jobs()):
        # a job that timed out in the queue never had a task: RunningHub cannot name one
        task_id = job.task_id or f"{1_900_000_000_000_000_000 + i}"
        body = webhook_body(task_id, _success(f"{emulator_url}/files/late.png"))
        run.post_webhook(job.id, body, expect=200, why="a success webhook after the timeout")


def post_event_data_not_a_string(run: Run) -> None:
    """RunningHub documents ``eventData`` as a JSON string: send an object (accepted, it is the
    envelope itself) on half the jobs and a list (malformed: 400, then the job is re-checked)
    on the others."""
    for i, job in enumerate(run.wait_task_ids()):
        assert job.task_id
        data = run.wait_done_upstream(job)
        body = {"event": "TASK_END", "taskId": job.task_id}
        if i % 2 == 0:
            raw = json.dumps({**body, "eventData": data}).encode()
            run.post_webhook(job.id, raw, expect=200, why="eventData as an object")
        else:
            raw = json.dumps({**body, "eventData": [data]}).encode()
            run.post_webhook(job.id, raw, expect=400, why="eventData as a list")


def post_forged(run: Run) -> None:
    """A success naming an attacker's file, with no token, a made-up one, another job's."""
    jobs = run.wait_task_ids()
    for job, other in zip(jobs, [*jobs[1:], jobs[0]], strict=True):
        assert job.task_id
        body = webhook_body(job.task_id, _success("https://evil.example/out.png"))
        run.post_webhook(job.id, body, token=None, expect=401, why="a webhook without a token")
        run.post_webhook(job.id, body, token="0" * 32, expect=401, why="a made-up token")
        if other.id != job.id:
            run.post_webhook(
                job.id, body, token=run.token(other.id), expect=401, why="another job's token"
            )


def replay_from_another_job(run: Run) -> None:
    """Job A's real webhook, replayed to job B: with B's token (RunningHub's URL for B) it names
    the wrong task (409); with A's token on B's URL it is forged (401)."""
    jobs = run.wait_task_ids()
    for a, b in zip(jobs, [*jobs[1:], jobs[0]], strict=True):
        if a.id == b.id:
            continue
        assert a.task_id
        body = webhook_body(a.task_id, run.wait_done_upstream(a))
        run.post_webhook(b.id, body, expect=409, why="another job's webhook on this job's URL")
        run.post_webhook(
            b.id, body, token=run.token(a.id), expect=401, why="another job's URL token"
        )


def burst_of_5xx(run: Run) -> None:
    """5xx for ``FAULT_S`` after the first submit, and at least until one was answered."""
    wait_for(lambda: run.control.stats()["http_errors"] > 0, timeout=30, what="a first 5xx")
    run.sleep_until(FAULT_S)
    run.control.set(http_error_rate=0.0)


def proxy_down(run: Run) -> None:
    assert run.proxy is not None
    run.proxy.down()


def proxy_up_later(run: Run) -> None:
    """Up again ``FAULT_S`` after the first submit, once a connection was refused."""
    assert run.proxy is not None
    wait_for(
        lambda: "RunningHub unreachable" in run.processes[0].log(),
        timeout=30,
        what="a first connection refused",
    )
    run.sleep_until(FAULT_S)
    run.proxy.up()


def garble_answers(run: Run) -> None:
    """About a third of RunningHub's answers garbled until one per job was."""
    assert run.proxy is not None
    run.proxy.garble_rate = 0.3
    run.proxy.garble_budget = run.n


def verify_garbled(run: Run) -> list[str]:
    assert run.proxy is not None
    if run.proxy.garbled < run.n:
        return [f"only {run.proxy.garbled} answers garbled (want {run.n})"]
    return []


def verify_some_completed(run: Run) -> list[str]:
    """The fault was survivable: some job got through it (its peers may meet the deadline,
    since the client's backoff constants are not shrunk with the test's timings). Judged by
    ``make matrix`` (a 30 s deadline) only: with ``make test``'s 6 s deadline a loaded
    2-core machine can time every job out before the start backoff's next try (the promise —
    terminal, one charge, a refund — is still checked for each job)."""
    if run.plan is TEST_PLAN or any(j.status == "completed" for j in run.jobs()):
        return []
    return ["no job completed: the fault was never recovered from"]


def reset_emulator_mid_run(run: Run) -> None:
    """Every task forgotten upstream (RunningHub answers 807 for each) while they run."""
    jobs = run.wait_task_ids()
    run.control.set(reset=True)
    run.memo["running at the reset"] = [j.id for j in jobs if not j.terminal]


def verify_807(run: Run) -> list[str]:
    """Each job still running at the reset was asked about after it (so it met the 807)."""
    asked = run.control.stats()["outputs_calls_by_task"]
    running = set(run.memo["running at the reset"])
    if not running:
        return ["every job had ended before the reset: nothing was tested"]
    jobs = [j for j in run.jobs() if j.id in running]
    out = [f"{j.id}: never asked about after the reset" for j in jobs if j.task_id not in asked]
    return out + finished_by("timeout")(run)


def kill_backend_mid_run(run: Run) -> None:
    """SIGKILL once a first task exists (starts, webhooks and checks in flight)."""
    run.wait_jobs(
        lambda js: any(j.task_id for j in js) and not all(j.terminal for j in js),
        "a first task created",
    )
    run.kill_and_restart_backend(0)


def verify_dead_leases(run: Run) -> list[str]:
    """Why a job outlived its bound: the lease the dead process left on it (leases of checks
    are 4 poll intervals, at least 30 s), or something else."""
    return [
        f"{j.id}: still {j.status}"
        + (" — leased by the killed process" if j.id in run.dead_leases else "")
        for j in run.jobs()
        if not j.terminal
    ]


def kill_backend_mid_check(run: Run) -> None:
    """SIGKILL while the server watchdog holds a lease (its RunningHub check takes a while)."""
    wait_for(
        lambda: run.leases(checking=True), timeout=30, interval=0.02, what="a job being checked"
    )
    run.kill_and_restart_backend(0)
    if not run.dead_leases:
        run.notes.append("no lease was held at the kill: nothing was tested")


def restart_postgres_mid_run(run: Run) -> None:
    run.wait_jobs(lambda js: any(j.task_id for j in js), "a first task created")
    assert run.pg is not None
    began = time.monotonic()
    run.pg.restart(down_s=0.5)
    run.downtime_s += time.monotonic() - began


def settle_webhooks(copies: int) -> Hook:
    """Wait until the emulator has delivered ``copies`` webhooks per job (late/duplicates)."""

    def settle(run: Run) -> None:
        want = copies * run.n
        wait_for(
            lambda: run.control.stats()["webhooks"]["sent"] >= want,
            timeout=30,
            what=f"{want} webhooks delivered",
        )

    return settle


def settle_quiet(quiet_s: float, cap_s: float = 300.0) -> Hook:
    """Starts still in flight after their job ended (a client timeout is longer than the
    deadline) end before the checks: wait until no API process has logged for ``quiet_s``
    (every attempt that times out logs a retry), at most ``cap_s``."""

    def settle(run: Run) -> None:
        give_up = time.monotonic() + cap_s
        size, since = -1, time.monotonic()
        while time.monotonic() < give_up:
            now_size = sum(p.log_path.stat().st_size for p in run.processes)
            if now_size != size:
                size, since = now_size, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            time.sleep(0.2)
        run.notes.append(f"the API processes were still busy {cap_s:g} s after the jobs ended")

    return settle


def finished_by(*allowed: str) -> Callable[[Run], list[str]]:
    def verify(run: Run) -> list[str]:
        return [
            f"{j.id}: finished by {j.finished_by} (want {' or '.join(allowed)})"
            for j in run.jobs()
            if j.finished_by not in allowed
        ]

    return verify


def verify_late(run: Run) -> list[str]:
    """Some webhooks really came after the watchdog had finished their job (at scale the
    watchdog does not reach every job before its webhook: those are plain deliveries)."""
    if any(j.finished_by == "server_watchdog" for j in run.jobs()):
        return []
    return ["no job was finished by the watchdog first: no webhook came late"]


def verify_early(run: Run) -> list[str]:
    """Every webhook was sent before its create call answered, and the app stored the task id
    from such webhooks (on a loaded machine a first POST may fail and be retried later)."""
    early = run.control.stats()["webhooks"]["early"]
    out = [] if early == run.n else [f"{early} early webhooks sent (want {run.n})"]
    # recorded in the receiving process's next bulk write (EventBuffer, half a second)
    deadline = time.monotonic() + EARLY_RECORD_WAIT_S
    while True:
        ((applied,),) = run.rows("SELECT count(*) FROM webhook_events WHERE outcome = 'early'")
        if applied or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if not applied:
        out.append("no webhook was applied as early")
    return out


def verify_805(run: Run) -> list[str]:
    return [
        f"{j.id}: error {j.error_message!r} is not RunningHub's reason"
        for j in run.jobs()
        if "CUDA out of memory" not in (j.error_message or "")
    ]


def verify_timed_out(run: Run) -> list[str]:
    out = finished_by("timeout")(run)
    created = sum(1 for j in run.jobs() if j.task_id)
    cancelled = run.control.stats()["tasks"]["cancelled"]
    if cancelled != created:
        out.append(f"{cancelled} tasks cancelled upstream (want all {created} created)")
    return out


def verify_key_disabled(run: Run) -> list[str]:
    rows = run.rows("SELECT enabled FROM runninghub_accounts")
    return [] if rows and not any(r[0] for r in rows) else [f"account rows {rows}: not disabled"]


def verify_421(run: Run) -> list[str]:
    answers = run.control.stats()["queue_full_answers"]
    out = [] if answers == run.n else [f"{answers} answers 421 (want {run.n})"]
    return out + verify_some_completed(run)


SCENARIOS: list[Scenario] = [
    Scenario(
        "baseline",
        "nothing (webhooks delivered)",
        COMPLETED,
    ),
    Scenario(
        "webhook lost",
        "webhook=drop",
        COMPLETED,
        emulator={"webhook": "drop"},
        verify=finished_by("server_watchdog"),
        databases=("sqlite", "postgres"),
    ),
    Scenario(
        "webhook x3",
        "webhook=duplicate (3 copies)",
        COMPLETED,
        emulator={"webhook": "duplicate"},
        after=settle_webhooks(3),
        databases=("sqlite", "postgres"),
    ),
    Scenario(
        "webhook late",
        "webhook=delay, after the watchdog finished the job",
        COMPLETED,
        emulator=lambda run: {
            "webhook": "delay",
            "webhook_delay_ms": run.plan.initial_ms + 4 * run.plan.poll_ms + 500,
        },
        after=settle_webhooks(1),
        verify=verify_late,
    ),
    Scenario(
        "webhook early",
        "webhook=early (before the create call answers)",
        COMPLETED,
        emulator={"webhook": "early"},
        verify=verify_early,
    ),
    Scenario(
        "failure after success",
        "805 webhook posted after the success",
        COMPLETED,
        after=post_failure_after_success,
    ),
    Scenario(
        "success after timeout",
        "outcome=never, success webhook posted after the timeout",
        FAILED,
        emulator={"outcome": "never"},
        after=post_success_after_timeout,
        verify=finished_by("timeout"),
    ),
    Scenario(
        "webhook malformed",
        "malformed_webhook=true (body cut in half)",
        COMPLETED,
        emulator={"malformed_webhook": True},
    ),
    Scenario(
        "eventData not a string",
        "posted: eventData as an object / as a list",
        COMPLETED,
        emulator={"webhook": "drop"},
        env=lambda run: {"WATCHDOG_INITIAL_DELAY_MS": str(run.plan.initial_ms * 4)},
        during=post_event_data_not_a_string,
    ),
    Scenario(
        "webhook forged",
        "posted: success to evil.example, no/made-up/other job's token",
        COMPLETED,
        emulator={"webhook": "drop"},
        env=lambda run: {"WATCHDOG_INITIAL_DELAY_MS": str(run.plan.initial_ms * 4)},
        during=post_forged,
        verify=finished_by("server_watchdog"),
    ),
    Scenario(
        "webhook replayed",
        "posted: another job's real webhook on this job's URL",
        COMPLETED,
        emulator={"webhook": "drop"},
        env=lambda run: {"WATCHDOG_INITIAL_DELAY_MS": str(run.plan.initial_ms * 4)},
        during=replay_from_another_job,
        verify=finished_by("server_watchdog"),
    ),
    Scenario(
        "5xx burst",
        f"http_error_rate=0.5 for {FAULT_S:g} s",
        EITHER,
        emulator={"http_error_rate": 0.5, "seed": 11},
        during=burst_of_5xx,
        verify=verify_some_completed,
    ),
    Scenario(
        "421 for a while",
        "queue_full_next = one per job",
        EITHER,
        emulator=lambda run: {"queue_full_next": run.n},
        verify=verify_421,
    ),
    Scenario(
        "RunningHub slow",
        "latency_ms=300 on every call (below the fixed 20 s read timeout)",
        COMPLETED,
        emulator={"latency_ms": 300},
    ),
    Scenario(
        "RunningHub unreachable",
        f"connection refused for {FAULT_S:g} s (proxy down)",
        EITHER,
        upstream="proxy",
        before=proxy_down,
        during=proxy_up_later,
        verify=verify_some_completed,
    ),
    Scenario(
        "malformed JSON answers",
        "30 % of API answers cut in half (proxy), one per job in all",
        EITHER,
        upstream="proxy",
        before=garble_answers,
        verify=lambda run: verify_garbled(run) + verify_some_completed(run),
    ),
    Scenario(
        "connect timeout",
        "RunningHub's port accepts no connection (5 s connect timeout)",
        FAILED,
        upstream="blackhole",
        max_jobs=20,
        after=settle_quiet(c.RH_CONNECT_TIMEOUT_S + 1),
        verify=finished_by("timeout"),
    ),
    Scenario(
        "read timeout",
        f"latency_ms={int(c.RH_READ_TIMEOUT_S * 1000) + 1000} (above the 20 s read timeout)",
        EITHER,
        emulator={"latency_ms": int(c.RH_READ_TIMEOUT_S * 1000) + 1000},
        max_jobs=16,
        after=settle_quiet(c.RH_READ_TIMEOUT_S + 5),
        full_only=True,
    ),
    Scenario(
        "task failed (805)",
        "outcome=fail",
        FAILED,
        emulator={"outcome": "fail"},
        verify=verify_805,
    ),
    Scenario(
        "task unknown (807)",
        "emulator reset while every task runs",
        FAILED,
        emulator=lambda run: {"task_ms": 2 * run.plan.timeout_ms},
        env=lambda run: {"RUNNINGHUB_MAX_CONCURRENT": str(run.n)},
        during=reset_emulator_mid_run,
        verify=verify_807,
    ),
    Scenario(
        "task never ends",
        "outcome=never (the deadline)",
        FAILED,
        emulator={"outcome": "never"},
        verify=verify_timed_out,
    ),
    Scenario(
        "key refused (802)",
        "RUNNINGHUB_API_KEY the emulator refuses",
        FAILED,
        env={"RUNNINGHUB_API_KEY": "refused-" + "k" * 20},
        verify=verify_key_disabled,
    ),
    Scenario(
        "API SIGKILLed",
        "API process SIGKILLed after the first task, restarted",
        EITHER,
        emulator={"task_ms": 600},
        env={"ARCANO_STARTING_STUCK_MS": "1000"},
        during=kill_backend_mid_run,
        databases=("sqlite", "postgres"),
    ),
    Scenario(
        "API SIGKILLed mid-check",
        "API process SIGKILLed while its watchdog holds a lease, restarted",
        EITHER,
        emulator={"webhook": "drop", "latency_ms": 1000},
        env={"ARCANO_STARTING_STUCK_MS": "1000"},
        during=kill_backend_mid_check,
        verify=verify_dead_leases,
    ),
    Scenario(
        "PostgreSQL restarted",
        "PostgreSQL stopped (fast) for 0.5 s mid-run",
        EITHER,
        emulator={"task_ms": 600},
        during=restart_postgres_mid_run,
        databases=("own-postgres",),
    ),
    Scenario(
        "two API processes",
        "two processes on one PostgreSQL, a page on each, webhook x3",
        COMPLETED,
        emulator={"webhook": "duplicate", "task_ms": 500},
        backends=2,
        followers=True,
        after=settle_webhooks(3),
        databases=("postgres",),
    ),
]


def cases(*, full: bool, only: Sequence[str] = ()) -> list[Case]:
    """Every (scenario, database) pair of a run; ``only``: these scenario names."""
    return [
        Case(s, db)
        for s in SCENARIOS
        if (full or not s.full_only) and (not only or s.name in only)
        for db in s.databases
    ]


# --- running one case --------------------------------------------------------------------------


@dataclass
class Result:
    case: Case
    jobs: int
    #: ``status/finished_by`` → jobs.
    statuses: Counter[str] = field(default_factory=Counter)
    stuck: int = 0
    #: Jobs that ended, but after their bound (deadline + poll + margin + downtime).
    late: int = 0
    double_transitions: int = 0
    double_refunds: int = 0
    worst_s: float | None = None
    wall_s: float = 0.0
    problems: list[str] = field(default_factory=list)
    #: What the checks could not see and gave the benefit of the doubt (reported).
    tolerated: list[str] = field(default_factory=list)

    @property
    def ended_as(self) -> str:
        return ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items())) or "-"

    def report(self) -> str:
        head = f"{self.case.id}: {self.jobs} jobs, {self.ended_as}"
        lines = self.problems + [f"(tolerated) {t}" for t in self.tolerated]
        return head + ("\n  " + "\n  ".join(lines) if lines else "")


def _resolve(value: Settings, run: Run) -> dict[str, Any]:
    return dict(value(run) if callable(value) else value)


def _finish_lines(processes: Sequence[ServerProcess]) -> Counter[tuple[str, str]]:
    """Terminal transitions per job: the ``job finished`` lines of every API process."""
    found: Counter[tuple[str, str]] = Counter()
    for process in processes:
        for line in process.log().splitlines():
            if '"job finished"' not in line:
                continue
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("msg") == "job finished":
                    found[(record["table"], record["job_id"])] += 1
    return found


#: How long the judge waits for the ``job finished`` lines of jobs the database shows ended:
#: a process writes its line just after the commit, and on a loaded machine the judge can
#: read the database in between (that is no lost transition).
LOG_CATCH_UP_S = 5.0


def _finish_lines_caught_up(run: Run) -> Counter[tuple[str, str]]:
    """:func:`_finish_lines`, once every job ended in the database has its line or
    ``LOG_CATCH_UP_S`` passed (a transition with no line is then counted as missing)."""
    ended = {j.id for j in run.jobs() if j.terminal}
    until = time.monotonic() + LOG_CATCH_UP_S
    while True:
        finishes = _finish_lines(run.processes)
        if all(finishes[(TABLE, i)] for i in ended) or time.monotonic() >= until:
            return finishes
        time.sleep(0.1)


def _submit(run: Run) -> None:
    """Submit ``run.n`` upscales, ``JOBS_PER_USER`` per user, spread over the API processes."""
    stem = f"{run.scenario.name.replace(' ', '-')}-{uuid.uuid4().hex[:6]}"

    def one(i: int) -> tuple[str, int]:
        index = i % len(run.backends)
        with httpx.Client(verify=client_tls(), timeout=60) as own:
            r = submit_upscale(own, run.backends[index], f"{stem}-{i // JOBS_PER_USER}")
        assert r.status_code == 201, r.text
        return str(r.json()["jobId"]), index

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for job_id, index in pool.map(one, range(run.n)):
            run.job_ids.append(job_id)
            run.owner[job_id] = index


@contextlib.contextmanager
def _followers(run: Run) -> Iterator[None]:
    """A page watchdog on each API process: the sync endpoint for every unfinished job, every
    poll interval, until it answers that the job ended."""
    if not run.scenario.followers:
        yield
        return
    stop = threading.Event()

    def follow(backend: Backend) -> None:
        pending = set(run.job_ids)
        with httpx.Client(verify=client_tls(), timeout=30, headers=backend.service_headers) as http:
            while pending and not stop.is_set():
                for job_id in sorted(pending):
                    with contextlib.suppress(httpx.HTTPError, ValueError):
                        body = http.post(
                            backend.url + SYNC_PATH, json={"table": TABLE, "jobId": job_id}
                        ).json()
                        if body.get("synced") or body.get("reason") == "already_terminal":
                            pending.discard(job_id)
                stop.wait(run.plan.poll_ms / 1000)

    threads = [threading.Thread(target=follow, args=(b,), daemon=True) for b in run.backends]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)


def _unlogged_by_the_dead(
    run: Run, jobs: Sequence[Job], finishes: Counter[tuple[str, str]], result: Result
) -> None:
    """A SIGKILL can land between a finish's commit and its ``job finished`` line: a job that
    ended before the kill with no line counts as the one transition the dead process made."""
    if not run.killed_at:
        return
    last_kill = max(run.killed_at)
    for job in jobs:
        key = (TABLE, job.id)
        if finishes[key] == 0 and job.completed_at is not None and job.completed_at <= last_kill:
            finishes[key] = 1
            result.tolerated.append(f"{job.id}: ended by the killed process, its log line lost")


def _check(run: Run, result: Result) -> None:
    """The promise and the deadline over the run's jobs (read straight from its database)."""
    finishes = _finish_lines_caught_up(run)
    plan, scenario = run.plan, run.scenario

    async def inspect(store: JobStore) -> tuple[list[str], list[Job], Counter[str]]:
        jobs = [j for j in [await store.get_job(TABLE, i) for i in run.job_ids] if j]
        _unlogged_by_the_dead(run, jobs, finishes, result)
        found = await check_jobs(
            store,
            [(TABLE, j) for j in run.job_ids],
            allowed_output_hosts=[EMULATOR_HOST],
            finishes=finishes,
        )
        refunds: Counter[str] = Counter()
        for user in {j.user_id for j in jobs}:
            for entry in await store.ledger(user):
                if entry["kind"] == LedgerKind.REFUND.value:
                    refunds[entry["job_id"]] += 1
        return found.problems, jobs, refunds

    problems, jobs, refunds = with_store(run.store_url, inspect)
    result.problems.extend(problems)
    result.statuses = Counter(
        f"{j.status.value}/{j.finished_by.value if j.finished_by else '-'}" for j in jobs
    )
    result.stuck = sum(1 for j in jobs if not j.status.is_terminal) + run.n - len(jobs)
    result.double_transitions = sum(1 for j in run.job_ids if finishes[(TABLE, j)] > 1)
    result.double_refunds = sum(1 for n in refunds.values() if n > 1)
    times = [(j.completed_at - j.created_at).total_seconds() for j in jobs if j.completed_at]
    result.worst_s = max(times, default=None)
    for job in jobs:
        if job.status.is_terminal and job.status.value not in scenario.expect:
            result.problems.append(
                f"{job.id}: {job.status.value} (expected {'/'.join(sorted(scenario.expect))}):"
                f" {job.error_message}"
            )
        allowed = plan.deadline_s + run.downtime_s
        if job.started_at is not None:
            # a job still queued past its deadline is failed by the dispatcher, never started
            queued_late = (job.started_at - job.created_at).total_seconds() - allowed
            if queued_late > 0:
                result.late += 1
                result.problems.append(
                    f"{job.id}: started {queued_late:.1f} s after its queue deadline + poll +"
                    " margin had passed"
                )
        if job.completed_at is not None:
            late = (job.completed_at - job.deadline_from).total_seconds() - allowed
            if late > 0:
                result.late += 1
                result.problems.append(
                    f"{job.id}: ended {late:.1f} s after its deadline + poll + margin"
                    + (f" + {run.downtime_s:.1f} s down" if run.downtime_s else "")
                )
    urls = Counter(j.output_url for j in jobs if j.output_url)
    result.problems.extend(f"output {u} shared by {n} jobs" for u, n in urls.items() if n > 1)
    held = run.rows("SELECT account_name, in_flight FROM runninghub_accounts")
    result.problems.extend(f"account {a}: {n} slots still held" for a, n in held if n)
    result.problems.extend(run.notes)
    if scenario.verify is not None:
        result.problems.extend(scenario.verify(run))


def _ended_or_overdue(run: Run) -> Callable[[list[JobRow]], bool]:
    """Every job has ended, or is still active past its bound (stuck: counted, not awaited).

    The bound is the deadline + one poll interval + the margin (+ any time the API or the
    database was down).
    """

    def settled(jobs: list[JobRow]) -> bool:
        now = dt.datetime.now(dt.UTC)
        for job in jobs:
            if job.terminal:
                continue
            bound = job.deadline_from + dt.timedelta(
                seconds=run.plan.deadline_s + run.downtime_s + 1
            )
            if now < bound:
                return False
        return True

    return settled


class EmulatorPool:
    """Emulator processes reused from one case to the next (reset in between: settings,
    tasks, in-flight webhooks and counters), so a matrix starts one per worker, not per case."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._idle: list[ServerProcess] = []
        self._all: list[ServerProcess] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def lease(self) -> Iterator[ServerProcess]:
        with self._lock:
            emulator = self._idle.pop() if self._idle else None
        if emulator is None:
            emulator = start_emulator(self.workdir / f"emulator-{len(self._all)}")
            with self._lock:
                self._all.append(emulator)
        try:
            yield emulator
        finally:
            with self._lock:
                self._idle.append(emulator)

    def close(self) -> None:
        for emulator in self._all:
            emulator.stop()


def run_case(
    case: Case,
    plan: Plan,
    workdir: Path,
    pg_server_url: str | None = None,
    emulators: EmulatorPool | None = None,
) -> Result:
    """Run one scenario on one database from scratch (own emulator, API processes, database)
    and judge it. Never raises: a crash is a problem of the result."""
    scenario = case.scenario
    n = scenario.jobs if plan.jobs is None else min(plan.jobs, scenario.max_jobs or plan.jobs)
    result = Result(case, n)
    began = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(httpx.Client(verify=client_tls(), timeout=30))
        run = Run(case, plan, n, workdir, client)
        stack.callback(run.close)
        try:
            if emulators is None:
                run.emulator = start_emulator(workdir / "emulator")
                stack.callback(run.emulator.stop)
            else:
                run.emulator = stack.enter_context(emulators.lease())
            run.emu = EmulatorClient(client, run.emulator.url)
            run.control.set(reset=True)
            run.control.set(
                **{"task_ms": 150, "webhook": "deliver", **_resolve(scenario.emulator, run)}
            )
            run.upstream_url = run.emulator.url
            if scenario.upstream == "proxy":
                run.proxy = FaultProxy(run.emulator.url)
                stack.callback(run.proxy.down)
                run.upstream_url = run.proxy.url
            elif scenario.upstream == "blackhole":
                hole = Blackhole()
                stack.callback(hole.close)
                run.upstream_url = hole.url
            if case.database == "postgres":
                assert pg_server_url, "a PostgreSQL case needs the session's server"
                run.database_url = create_database(pg_server_url)
            elif case.database == "own-postgres":
                run.pg = stack.enter_context(postgres_server_handle())
                run.database_url = create_database(run.pg.url)
            run.backend_env = {**plan.env(), **_resolve(scenario.env, run)}
            stack.callback(lambda: [p.stop() for p in run.processes])
            for _ in range(scenario.backends):
                run.start_backend()
            if scenario.before:
                scenario.before(run)
            run.submitted_at = time.monotonic()
            _submit(run)
            with _followers(run):
                if scenario.during:
                    scenario.during(run)
                run.wait_jobs(
                    _ended_or_overdue(run), "every job to end or pass its bound", timeout=600
                )
            if scenario.after:
                scenario.after(run)
            _check(run, result)
        except Exception as exc:
            result.problems.append(f"the run crashed: {exc!r}\n{traceback.format_exc()}")
    result.wall_s = time.monotonic() - began
    return result


def _expected_length(case: Case) -> int:
    """Rough rank of a case's wall time, so the longest start first."""
    s = case.scenario
    return (
        (s.upstream == "blackhole") * 8
        + (case.database == "own-postgres") * 4
        + (s.during is kill_backend_mid_run) * 4
        + (s.expect == FAILED) * 2
        + (case.database == "postgres")
    )


def run_cases(
    selected: Sequence[Case],
    plan: Plan,
    workdir: Path,
    pg_server_url: str | None = None,
    *,
    progress: Callable[[Result], None] | None = None,
) -> dict[str, Result]:
    """Run ``selected`` ``plan.parallel`` at a time (the ones that wait out a deadline first)."""
    slow_first = sorted(selected, key=_expected_length, reverse=True)
    results: dict[str, Result] = {}
    emulators = EmulatorPool(workdir)
    with (
        contextlib.closing(emulators),
        concurrent.futures.ThreadPoolExecutor(max_workers=max(1, plan.parallel)) as pool,
    ):
        futures = [
            pool.submit(
                run_case,
                k,
                plan,
                workdir / k.id.replace("[", "-").strip("]"),
                pg_server_url,
                emulators,
            )
            for k in slow_first
        ]
        for future in concurrent.futures.as_completed(futures):
            result = future.result()
            results[result.case.id] = result
            if progress is not None:
                progress(result)
    return {k.id: results[k.id] for k in selected}


# --- the table -------------------------------------------------------------------------------------

HEADER = (
    "| scenario | db | injected | jobs | ended as | stuck | late | double transitions "
    "| double refunds | worst time to terminal | promise |"
)


def table(results: Sequence[Result]) -> str:
    lines = [HEADER, "|" + "---|" * 11]
    for r in results:
        worst = f"{r.worst_s:.1f} s" if r.worst_s is not None else "-"
        verdict = "held" if not r.problems else f"**broken** ({len(r.problems)})"
        if r.tolerated:
            verdict += f", {len(r.tolerated)} unlogged finish by the killed process"
        lines.append(
            f"| {r.case.scenario.name} | {r.case.database} | {r.case.scenario.injected} "
            f"| {r.jobs} | {r.ended_as} | {r.stuck} | {r.late} | {r.double_transitions} "
            f"| {r.double_refunds} | {worst} | {verdict} |"
        )
    return "\n".join(lines)


def machine() -> str:
    mem = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        mem = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.split("\n")[1]
        mem = " ".join(mem.split()[:2]).replace("Mem:", "memory")
    return f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {mem}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.matrix",
        description="Run the fault matrix at full size and print its table.",
    )
    parser.add_argument("--jobs", type=int, default=200, help="jobs per scenario (default 200)")
    parser.add_argument("--only", action="append", default=[], help="a scenario name (repeat)")
    parser.add_argument("--parallel", type=int, default=1, help="scenarios at once (default 1)")
    parser.add_argument(
        "--test-size", action="store_true", help="make test's sizes and timings instead"
    )
    parser.add_argument(
        "--keep", type=Path, help="keep each run's databases and logs under this directory"
    )
    args = parser.parse_args(argv)
    plan = TEST_PLAN if args.test_size else full_plan(args.jobs, args.parallel)
    selected = cases(full=plan.full, only=args.only)
    if not selected:
        parser.error(f"no scenario named {args.only}")
    began = time.monotonic()
    print(f"fault matrix: {len(selected)} runs, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine()}")
    print(
        f"timings: initial {plan.initial_ms} ms, poll {plan.poll_ms} ms, deadline "
        f"{plan.timeout_ms} ms (+ poll + {plan.margin_s:g} s margin), "
        f"RUNNINGHUB_MAX_CONCURRENT={plan.max_concurrent}",
        flush=True,
    )

    def progress(r: Result) -> None:
        state = "ok" if not r.problems else "BROKEN"
        print(f"  {state:6} {r.case.id} ({r.wall_s:.0f} s): {r.ended_as}", flush=True)
        if r.problems:
            print("         " + r.problems[0].splitlines()[0][:300], flush=True)

    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            workdir = args.keep
            print(f"keeping databases and logs in {workdir}")
        else:
            workdir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="arcano-matrix-"))
            )
        pg_url = None
        if any(k.database == "postgres" for k in selected):
            pg_url = stack.enter_context(postgres_server_handle()).url
        results = run_cases(selected, plan, workdir, pg_url, progress=progress)
    print()
    print(table(list(results.values())))
    broken = [r for r in results.values() if r.problems]
    for r in broken:
        print("\n" + r.report()[:4000])
    print(f"\n{len(results)} runs in {time.monotonic() - began:.0f} s; {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
