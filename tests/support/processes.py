"""Server subprocesses for the tests, started and stopped one way.

:func:`start_process` runs a command in its own session (so its whole process group can be
stopped by PID), sends its output to a log file, and polls a readiness probe until it answers;
if the process exits first or the deadline passes, the group is stopped and
:class:`ServerStartError` carries the log. The emulator, the API, Redis and the Reflex app all
start through it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from arcano_tools.tls import client_tls

ROOT = Path(__file__).resolve().parents[2]
#: The log file of every server started in this test session (searched for secrets at its end).
STARTED_LOGS: list[Path] = []


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


class ServerStartError(RuntimeError):
    """A server exited before it was ready, or was not ready in time (the message has its log)."""


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


def http_ready(*urls: str) -> Callable[[], bool]:
    """A readiness probe: every one of ``urls`` answers 200 (no connection yet = not ready).

    Each try builds a client with the process's one TLS setting: httpx's default parses the
    CA bundle per client (60 ms of CPU), and a probe every 50 ms kept half a core busy next
    to the server it was waiting for."""

    def probe() -> bool:
        try:
            return all(
                httpx.get(url, timeout=2.0, verify=client_tls()).status_code == 200 for url in urls
            )
        except httpx.TransportError:
            return False

    return probe


def start_process(
    name: str,
    cmd: Sequence[str],
    *,
    ready: Callable[[], bool],
    url: str = "",
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    log_dir: Path | None = None,
    cwd: Path = ROOT,
) -> ServerProcess:
    """Start ``cmd`` in ``cwd`` (environment: ours plus ``env``) and wait until ``ready()`` is
    true."""
    log_path = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log", dir=log_dir)[1])
    STARTED_LOGS.append(log_path)
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    # The test runner's warning filters must not leak into the server.
    child_env.pop("PYTHONWARNINGS", None)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stopped as a whole
        )
    server = ServerProcess(name, url, process, log_path)
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            server.stop()  # whatever it started may still run
            raise ServerStartError(
                f"{name} exited with {process.returncode} before it was ready.\n"
                f"--- {log_path} ---\n{server.log()}"
            )
        if time.monotonic() > deadline:
            server.stop()
            raise ServerStartError(
                f"{name} was not ready within {timeout:.0f} s.\n--- {log_path} ---\n{server.log()}"
            )
        time.sleep(0.05)  # the poll interval of a wait with a deadline
    return server
