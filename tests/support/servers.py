"""Real servers for the integration tests: the RunningHub emulator and our API, each a
subprocess on a free loopback port, stopped by PID (its whole process group) at teardown."""

from __future__ import annotations

import concurrent.futures
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from arcano_tools import constants as c
from arcano_tools.services.auth import issue_user_token
from arcano_tools.tls import client_tls
from tests.support.images import png_bytes
from tests.support.processes import ServerProcess, free_port, http_ready, start_process
from tests.support.waiting import wait_for

START_TIMEOUT_S = 60.0
SERVICE_KEY = "svc_test_" + "k" * 32
JWT_SECRET = "test-jwt-secret-" + "s" * 32
RH_API_KEY = "a" * 32


def start_server(
    name: str, args: list[str], env: Mapping[str, str], health_path: str, port: int
) -> ServerProcess:
    """Run ``python -m arcano_tools <args>`` and wait until ``health_path`` answers 200."""
    url = f"http://127.0.0.1:{port}"
    return start_process(
        name,
        [sys.executable, "-m", "arcano_tools", *args],
        ready=http_ready(url + health_path),
        url=url,
        env=env,
        timeout=START_TIMEOUT_S,
    )


def start_emulator(data_dir: Path) -> ServerProcess:
    port = free_port()
    return start_server(
        "emulator",
        ["emulator", "--port", str(port), "--data-dir", str(data_dir)],
        {},
        "/_control",
        port,
    )


#: Shrunk watchdog timings for tests (the plan's 30 s / 15 s / 12 min, divided).
FAST_TIMINGS = {
    "WATCHDOG_INITIAL_DELAY_MS": "400",
    "WATCHDOG_POLL_INTERVAL_MS": "250",
    "WATCHDOG_MAX_TIMEOUT_MS": "6000",
}


@dataclass
class Backend:
    """Our API served alone (``python -m arcano_tools serve-api``) against an emulator."""

    api: ServerProcess
    emulator_url: str
    database_url: str
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.api.url

    def rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Read our database directly (SQLite file or PostgreSQL), to check what was written."""
        return self.transaction((sql, params))[0]

    def transaction(self, *statements: tuple[str, dict[str, Any]]) -> list[list[tuple[Any, ...]]]:
        """Run statements in one transaction and commit."""
        out = self._run(statements, all_or_nothing=False)
        assert out is not None
        return out

    def stage(self, *statements: tuple[str, dict[str, Any]]) -> bool:
        """Stage a state the app could produce, all or nothing: every statement must be a
        ``… RETURNING`` that matches a row; if one matches none, everything is rolled back
        and the answer is False (so a staging that lost a race leaves no half-written state).
        """
        return self._run(statements, all_or_nothing=True) is not None

    def _run(
        self, statements: tuple[tuple[str, dict[str, Any]], ...], *, all_or_nothing: bool
    ) -> list[list[tuple[Any, ...]]] | None:
        import sqlalchemy as sa

        url = self.database_url or f"sqlite:///{self.data_dir / 'arcano.db'}"
        url = url.replace("postgresql://", "postgresql+psycopg://")
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                out = []
                for sql, params in statements:
                    result = conn.execute(sa.text(sql), params)
                    rows = [tuple(r) for r in result] if result.returns_rows else []
                    if all_or_nothing and not rows:
                        conn.rollback()
                        return None
                    out.append(rows)
                conn.commit()
                return out
        finally:
            engine.dispose()

    def token(self, user_id: str) -> str:
        return issue_user_token(JWT_SECRET, user_id)

    def user_headers(self, user_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id)}"}

    @property
    def service_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {SERVICE_KEY}"}


def start_backend(
    emulator_url: str,
    data_dir: Path,
    database_url: str = "",
    extra_env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Backend:
    """``port``: a given one (a restarted backend keeps the webhook URLs it handed out)."""
    port = port or free_port()
    env = {
        "ARCANO_DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "RUNNINGHUB_API_URL": emulator_url,
        "RUNNINGHUB_API_KEY": RH_API_KEY,
        "RUNNINGHUB_MAX_CONCURRENT": "2",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "ARCANO_SERVICE_KEY": SERVICE_KEY,
        "ARCANO_JWT_SECRET": JWT_SECRET,
        # a production-shaped server (real RunningHub URL, explicit secrets: not the demo),
        # whose test users get the demo's grant so each test can pay for its jobs
        "ARCANO_NEW_USER_CREDITS": str(c.STARTING_CREDITS),
        "SERVER_WATCHDOG_ENABLED": "false",
        # the suites written before results that last check RunningHub's URL and the plan's
        # immediate `synced: true`; the copy has its own (test_results_that_last.py)
        "ARCANO_KEEP_RESULTS": "false",
        **FAST_TIMINGS,
        **(extra_env or {}),
    }
    api = start_server("api", ["serve-api", "--port", str(port)], env, "/healthz", port)
    return Backend(api, emulator_url, database_url, data_dir, env)


# --- jobs through the API ------------------------------------------------------------------------

#: The plan's sync endpoint (what the page watchdog calls).
SYNC_PATH = "/functions/v1/runninghub-job-sync"


def submit_job(
    client: httpx.Client,
    backend: Backend,
    user: str,
    data: Mapping[str, str],
    files: Mapping[str, tuple[str, bytes, str]],
) -> httpx.Response:
    """``POST /api/jobs`` as ``user``: form fields and files, as the pages send them."""
    return client.post(
        backend.url + "/api/jobs", headers=backend.user_headers(user), data=data, files=files
    )


def submit_upscale(
    client: httpx.Client, backend: Backend, user: str, *, scale: int = 2, image: bytes | None = None
) -> httpx.Response:
    return submit_job(
        client,
        backend,
        user,
        {"tool": "upscaler", "scale": str(scale)},
        {"image": ("foto.png", image or png_bytes(), "image/png")},
    )


def submit_upscales(backend: Backend, user: str, n: int, *, workers: int = 8) -> list[str]:
    """``n`` upscales submitted at once, each on its own connection; their job ids."""

    def one(_: int) -> str:
        with httpx.Client(verify=client_tls(), timeout=60) as own:
            r = submit_upscale(own, backend, user)
            assert r.status_code == 201, r.text
            return str(r.json()["jobId"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, range(n)))


def call_sync(client: httpx.Client, backend: Backend, user: str, body: object) -> httpx.Response:
    """The sync endpoint as ``user`` with any body (``{"table": …, "jobId": …}``)."""
    return client.post(backend.url + SYNC_PATH, headers=backend.user_headers(user), json=body)


def wait_synced(
    client: httpx.Client,
    backend: Backend,
    user: str,
    job_id: str,
    *,
    table: str = "upscaler_jobs",
    timeout: float = 15.0,
) -> dict[str, Any]:
    """Call the sync until it answers ``synced`` (the watchdog's loop, from a test)."""

    def synced() -> dict[str, Any] | None:
        body = call_sync(client, backend, user, {"table": table, "jobId": job_id}).json()
        return dict(body) if body.get("synced") else None

    return dict(wait_for(synced, timeout=timeout, interval=0.1, what=f"job {job_id} synced"))


TERMINAL = ("completed", "failed", "cancelled")


def get_job(
    client: httpx.Client, backend: Backend, user: str, job_id: str, table: str = "upscaler_jobs"
) -> dict[str, Any]:
    """The job as its owner sees it through the API."""
    r = client.get(f"{backend.url}/api/jobs/{table}/{job_id}", headers=backend.user_headers(user))
    assert r.status_code == 200, r.text
    return dict(r.json())


def wait_terminal(
    client: httpx.Client, backend: Backend, user: str, job_id: str, *, timeout: float = 15.0
) -> dict[str, Any]:
    """Wait until the job has ended (any terminal status) and return it."""
    return dict(
        wait_for(
            lambda: (j := get_job(client, backend, user, job_id))["status"] in TERMINAL and j,
            timeout=timeout,
            what=f"job {job_id} to end",
        )
    )
