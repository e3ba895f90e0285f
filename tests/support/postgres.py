"""A real PostgreSQL server for the test session: ``initdb`` + ``pg_ctl`` on a free loopback
port in a temporary directory. As root (CI), the server runs as the ``postgres`` user, since
``initdb`` refuses root (see docs/testing.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import free_port

PG_BIN_CANDIDATES = ["/usr/lib/postgresql/15/bin", "/usr/local/bin", "/usr/bin"]


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for d in PG_BIN_CANDIDATES:
        if Path(d, name).exists():
            return str(Path(d, name))
    raise RuntimeError(f"{name} not found: run scripts/bootstrap.sh --test")


def _as_pg(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class PostgresServer:
    """A running test server: its URL, and a restart (the fault matrix restarts it mid-run)."""

    url: str
    data: Path
    log: Path
    opts: str

    def _ctl(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            _as_pg([_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), *args]),
            capture_output=True,
        )

    def restart(self, down_s: float = 0.0) -> None:
        """Stop the server (``-m fast``: every connection is closed), stay down ``down_s``
        seconds, and start it again on the same port with the same data."""
        self._ctl("-w", "-m", "fast", "stop").check_returncode()
        time.sleep(down_s)
        self._ctl("-w", "-o", self.opts, "start").check_returncode()


@contextmanager
def postgres_server_handle() -> Iterator[PostgresServer]:
    """Yield a :class:`PostgresServer` on a free loopback port; stop the server after."""
    root = Path(tempfile.mkdtemp(prefix="arcano-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data, log = root / "data", root / "log"
    port = free_port()
    subprocess.run(
        _as_pg([_pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    server = PostgresServer(f"postgresql://postgres@127.0.0.1:{port}/postgres", data, log, opts)
    server._ctl("-w", "-o", opts, "start").check_returncode()
    try:
        yield server
    finally:
        server._ctl("-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield ``postgresql://postgres@127.0.0.1:<port>/postgres``; stop the server after."""
    with postgres_server_handle() as server:
        yield server.url


def create_database(server_url: str) -> str:
    """A fresh empty database on the server; returns its URL."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name
