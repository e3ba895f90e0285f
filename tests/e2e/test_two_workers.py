"""Two backend processes of the prod app on one Redis and one PostgreSQL (reached through
PgBouncer in transaction mode, as Supabase's pooler serves it), as several workers run.

The suite cannot choose which granian worker a request reaches, so the two workers are two
processes on two ports: A (``reflex run --env prod``, the page's frontend and backend) and B
(``--backend-only``). RunningHub (the emulator, a real server) calls the webhook at
``PUBLIC_BASE_URL`` — B's address, the way a load balancer may send it to any worker — and the
watchdogs are off, so only B's webhook can finish a job. Both are production-shaped: a real
RunningHub URL, explicit secrets, a user with a signed token (no demo).

* A page on A shows a job whose webhook hit B (the update crosses over the Redis relay).
* A is killed (SIGKILL, by its PID) while the next job runs; B finishes that job meanwhile; A
  comes back on the same port and the page — never reloaded — reconnects and shows the
  finished job: one charge per job, no refund, every job finished once, by B's webhook.

A comes back as its backend alone (``--backend-only``), as granian respawns a worker: the
page's code is already in the browser, and rebuilding the frontend would only cost time. The
crash leaves Reflex's socket record of the tab in Redis, so Reflex takes the reconnect for a
duplicated tab and hands it a fresh state: what brings the job back is the tab's own copy of
its job id (``ToolPageState.shown_job``, sessionStorage) — without it the page showed an
empty form.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest

from arcano_tools.services.auth import issue_user_token
from arcano_tools.tls import client_tls
from tests.support.app_driver import AppDriver
from tests.support.fixtures import pg_server_url  # noqa: F401  (fixtures are found by name)
from tests.support.pgbouncer import pgbouncer, through
from tests.support.postgres import create_database
from tests.support.processes import ServerProcess, ServerStartError, free_port
from tests.support.redis_server import RedisServer
from tests.support.reflex_app import RunningApp, start_reflex_app
from tests.support.servers import JWT_SECRET, RH_API_KEY, SERVICE_KEY, start_emulator
from tests.support.tools import tool_cost
from tests.support.waiting import wait_for_async

if TYPE_CHECKING:
    from playwright.async_api import Page

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

TABLE = "upscaler_jobs"
USER = "two-workers-user"
CREDITS = 100
#: How long the emulator runs each task: the first is seen finishing, the second outlives A.
FIRST_TASK_MS = 1000
SECOND_TASK_MS = 4000
#: Generous limits for conditions (a cold app build takes longer than a warm one).
JOB_WAIT_S = 30.0
RECONNECT_WAIT_MS = 60_000
#: What the browser logs for each reconnect attempt while nothing listens on A's port.
REFUSED = "net::ERR_CONNECTION_REFUSED"
#: ... and for a websocket handshake that reached A's port as it came back, before its server
#: took the connection.
RESET = "net::ERR_CONNECTION_RESET"


def _not_a_reconnect(error: str) -> bool:
    """Anything but a reconnect attempt while A was down or coming back."""
    return REFUSED not in error and not (
        error.startswith("WebSocket connection to") and RESET in error
    )


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def pooler(pg_server_url: str) -> Iterator[str]:  # noqa: F811  (the imported fixture)
    """PgBouncer in transaction mode, as Supabase's pooler on port 6543 serves the database."""
    with pgbouncer(pg_server_url) as url:
        yield url


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_emulator(tmp_path_factory.mktemp("emulator"))
    yield server
    server.stop()


def kill(app: RunningApp) -> None:
    """SIGKILL A's whole process group (the reflex CLI and its granian worker): a crash, no
    shutdown hook runs."""
    os.killpg(app.server.process.pid, signal.SIGKILL)
    app.server.process.wait(timeout=10)


class Worker:
    """One backend process seen from outside: its API as the test user, its counters."""

    def __init__(self, url: str) -> None:
        self.http = httpx.AsyncClient(verify=client_tls(), base_url=url, timeout=10)
        self.user_headers = {"Authorization": f"Bearer {issue_user_token(JWT_SECRET, USER)}"}
        self.service_headers = {"Authorization": f"Bearer {SERVICE_KEY}"}

    async def job(self, job_id: str) -> dict[str, Any]:
        r = await self.http.get(f"/api/jobs/{TABLE}/{job_id}", headers=self.user_headers)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def metric(self, name: str, **labels: str) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        text = (await self.http.get("/metrics", headers=self.service_headers)).text
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )


def ledger(database_url: str) -> list[tuple[str, str | None]]:
    """The test user's credit ledger rows: (kind, job id)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT kind, job_id FROM credit_ledger WHERE user_id = %s ORDER BY id", (USER,)
        ).fetchall()
    return [(str(kind), job_id) for kind, job_id in rows]


async def test_a_page_on_one_worker_follows_a_job_finished_on_another_and_survives_its_crash(
    reflex_app_factory: Callable[..., RunningApp],
    page: Page,
    pg_server_url: str,  # noqa: F811  (the imported fixture)
    pooler: str,
    redis_server: RedisServer,
    emulator: ServerProcess,
    tmp_path: Path,
) -> None:
    database_url = create_database(pg_server_url)
    # the workers reach it as on Supabase: through the pooler in transaction mode (the flag
    # turns the store's server-side prepared statements off)
    pooled_url = through(pooler, database_url) + "?pgbouncer=true"
    b_port = free_port()
    env = {
        "ARCANO_DATA_DIR": str(tmp_path / "data"),  # one shared volume for both
        "DATABASE_URL": pooled_url,
        "REFLEX_REDIS_URL": redis_server.url,
        "GRANIAN_WORKERS": "1",  # one worker per process; the two processes are the workers
        "RUNNINGHUB_API_URL": emulator.url,
        "RUNNINGHUB_API_KEY": RH_API_KEY,
        "ARCANO_SERVICE_KEY": SERVICE_KEY,
        "ARCANO_JWT_SECRET": JWT_SECRET,
        "ARCANO_DEMO": "false",
        "ARCANO_NEW_USER_CREDITS": str(CREDITS),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{b_port}",  # every webhook reaches B
        "WATCHDOG_ENABLED": "false",  # only B's webhook can finish a job
    }
    # B starts while A builds its frontend (B has none to build)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        b_start = pool.submit(
            start_reflex_app, env, log_dir=tmp_path, port=b_port, backend_only=True
        )
        try:
            a_app = reflex_app_factory(env)  # stopped by the factory
        except BaseException:
            with contextlib.suppress(Exception):
                b_start.result().stop()
            raise
        try:
            b_app = b_start.result()
        except ServerStartError as exc:
            pytest.fail(str(exc), pytrace=False)
    started = [b_app]
    a, b = Worker(a_app.url), Worker(b_app.url)
    emu = httpx.AsyncClient(verify=client_tls(), base_url=emulator.url, timeout=10)
    clients = [a.http, b.http, emu]
    driver = AppDriver(a_app, page)
    try:
        await emu.post("/_control", json={"reset": True, "task_ms": FIRST_TASK_MS})
        # the user's signed token, as a sign-in would leave it in the browser
        await page.goto(a_app.url + "/")
        await page.evaluate(
            "(t) => window.localStorage.setItem('arcano_token', t)",
            issue_user_token(JWT_SECRET, USER),
        )
        await driver.open_tool(credits=CREDITS)

        # --- 1. the page on A shows the job whose webhook hit B --------------------------
        relayed_before = await a.metric("arcano_bus_relay_total", outcome="received")
        first = await driver.submit_image()
        await page.get_by_test_id("result").wait_for(timeout=JOB_WAIT_S * 1000)
        job = await b.job(first)
        assert job["status"] == "completed"
        assert job["finishedBy"] == "webhook"
        assert await page.get_by_test_id("result").get_attribute("src") == job["outputUrl"]
        assert await b.metric("arcano_webhooks_total", outcome="accepted") == 1
        assert await a.metric("arcano_webhooks_total") == 0
        assert await a.metric("arcano_bus_relay_total", outcome="received") > relayed_before

        # --- 2. A dies while the next job runs; B finishes it ------------------------------
        await emu.post("/_control", json={"task_ms": SECOND_TASK_MS})
        await page.get_by_test_id("start-over").click()
        second = await driver.submit_image()
        await wait_for_async(
            lambda: _status_is(b, second, "running"), timeout=JOB_WAIT_S, what="job 2 running"
        )
        await page.evaluate("() => { window.__never_reloaded = true }")
        kill(a_app)
        assert (await b.job(second))["status"] == "running", "A must die before the job ends"
        await wait_for_async(
            lambda: _status_is(b, second, "completed"), timeout=JOB_WAIT_S, what="job 2 done"
        )

        # --- 3. A comes back on the same port; the same page reconnects and recovers ----------
        a_again = start_reflex_app(env, log_dir=tmp_path, port=a_app.port, backend_only=True)
        started.append(a_again)
        done = await b.job(second)
        await page.wait_for_function(
            "(src) => document.querySelector('[data-testid=result]')?.getAttribute('src') === src",
            arg=done["outputUrl"],
            timeout=RECONNECT_WAIT_MS,
        )
        assert await page.evaluate("() => window.__never_reloaded === true")
        cost = tool_cost("upscaler")
        await driver.session_ready(credits=CREDITS - 2 * cost)

        assert done["finishedBy"] == "webhook"
        assert await b.metric("arcano_jobs_finished_total", status="completed") == 2
        a_back = Worker(a_again.url)
        clients.append(a_back.http)
        assert await a_back.metric("arcano_jobs_finished_total") == 0
        rows = ledger(database_url)
        assert sorted(rows) == sorted([("grant", None), ("charge", first), ("charge", second)]), (
            rows
        )
        stats = (await emu.get("/_stats")).json()
        assert stats["tasks"]["created"] == 2, stats  # no job was started twice
        # the page's only complaints: its reconnect attempts while A was down
        assert [e for e in driver.console_errors if _not_a_reconnect(e)] == []
    finally:
        for app in started:
            app.stop()
        for client in clients:
            with contextlib.suppress(Exception):
                await client.aclose()
        await driver.close()


async def _status_is(worker: Worker, job_id: str, status: str) -> bool:
    return (await worker.job(job_id))["status"] == status
