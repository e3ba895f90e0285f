"""Real servers for the integration tests: the RunningHub emulator and our API, each a
subprocess on a free loopback port, stopped by PID (its whole process group) at teardown."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from arcano_tools.services.auth import issue_user_token

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0
SERVICE_KEY = "svc_test_" + "k" * 32
JWT_SECRET = "test-jwt-secret-" + "s" * 32
RH_API_KEY = "a" * 32


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the usual small race is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process's whole group (it was started in its own session), SIGKILL after
    10 s, then SIGKILL whatever of the group outlived its parent (granian workers)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@dataclass
class ServerProcess:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process_group(self.process)


def start_server(
    name: str, args: list[str], env: Mapping[str, str], health_path: str, port: int
) -> ServerProcess:
    """Run ``python -m arcano_tools <args>`` and wait until ``health_path`` answers 200."""
    log_path = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    child_env.pop("PYTHONWARNINGS", None)
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "arcano_tools", *args],
            cwd=ROOT,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(name, url, proc, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(timeout=2.0) as client:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{server.log()}")
            try:
                if client.get(url + health_path).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"{name} did not start:\n{server.log()}")
            time.sleep(0.05)


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
    "WATCHDOG_MAX_TIMEOUT_MS": "4000",
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
) -> Backend:
    port = free_port()
    env = {
        "ARCANO_DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "RUNNINGHUB_API_URL": emulator_url,
        "RUNNINGHUB_API_KEY": RH_API_KEY,
        "RUNNINGHUB_MAX_CONCURRENT": "2",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "ARCANO_SERVICE_KEY": SERVICE_KEY,
        "ARCANO_JWT_SECRET": JWT_SECRET,
        "SERVER_WATCHDOG_ENABLED": "false",
        **FAST_TIMINGS,
        **(extra_env or {}),
    }
    api = start_server("api", ["serve-api", "--port", str(port)], env, "/healthz", port)
    return Backend(api, emulator_url, database_url, data_dir, env)


# --- test inputs ------------------------------------------------------------------------------


def png_bytes(
    size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 40, 40)
) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def submit_upscale(
    client: httpx.Client, backend: Backend, user: str, *, scale: int = 2, image: bytes | None = None
) -> httpx.Response:
    return client.post(
        backend.url + "/api/jobs",
        headers=backend.user_headers(user),
        data={"tool": "upscaler", "scale": str(scale)},
        files={"image": ("foto.png", image or png_bytes(), "image/png")},
    )


def wait_for(
    predicate: Any, *, timeout: float = 15.0, interval: float = 0.05, what: str = "condition"
) -> Any:
    """Poll ``predicate()`` until it returns a truthy value (tests only; never on a timer)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


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
