"""Servers for the benchmarks: our API (``serve-api``, from this tree or from an older commit
for a before/after run), the RunningHub stub, each a subprocess on a free loopback port,
stopped by PID (its process group)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from arcano_tools.tls import client_tls
from tests.support.processes import free_port, stop_process_group
from tests.support.servers import JWT_SECRET, RH_API_KEY, SERVICE_KEY

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0

#: One process, no server watchdog, the plan's schedule stretched so nothing becomes due
#: during a run; a large default account so submissions start (and free the dispatcher).
BASE_ENV = {
    "RUNNINGHUB_API_KEY": RH_API_KEY,
    "ARCANO_SERVICE_KEY": SERVICE_KEY,
    "ARCANO_JWT_SECRET": JWT_SECRET,
    "ARCANO_NEW_USER_CREDITS": "1000000000",
    "RUNNINGHUB_MAX_CONCURRENT": "100000",
    "SERVER_WATCHDOG_ENABLED": "false",
    "WATCHDOG_INITIAL_DELAY_MS": "30000",
    "WATCHDOG_POLL_INTERVAL_MS": "15000",
    "WATCHDOG_MAX_TIMEOUT_MS": "3600000",
    "UPSTREAM_MAX_RPS": "5000",
    "UPSTREAM_MAX_CONCURRENCY": "64",
    # the ingestion path alone: with results kept, each success also starts a copy of the
    # output (issue 11), whose time the issue wants reported apart, not inside these ratios
    "ARCANO_KEEP_RESULTS": "false",
}


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        stop_process_group(self.process)

    def vm_hwm_mb(self) -> float:
        """Peak resident memory of the process (``VmHWM``), in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc status")


def _start(name: str, args: list[str], env: Mapping[str, str], cwd: Path, port: int) -> Server:
    url = f"http://127.0.0.1:{port}"
    log_path = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    child_env.pop("PYTHONWARNINGS", None)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=cwd,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, url, process, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2, verify=client_tls()).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{name} did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.1)


def start_stub() -> Server:
    port = free_port()
    return _start("stub", ["-m", "bench.stub_runninghub", "--port", str(port)], {}, ROOT, port)


def start_api(
    stub_url: str,
    data_dir: Path,
    database_url: str = "",
    extra_env: Mapping[str, str] | None = None,
    source: Path = ROOT,
) -> Server:
    """``python -m arcano_tools serve-api`` run from ``source`` (its ``arcano_tools``)."""
    port = free_port()
    env = {
        **BASE_ENV,
        "ARCANO_DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "RUNNINGHUB_API_URL": stub_url,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "PYTHONPATH": str(source),
        **(extra_env or {}),
    }
    args = ["-m", "arcano_tools", "serve-api", "--port", str(port)]
    return _start("api", args, env, source, port)


def export_tree(ref: str, into: Path) -> Path:
    """The package ``arcano_tools`` as of git ``ref`` (for a before/after run in one go)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "arcano_tools"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    tar_path = into / "tree.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    return into
