"""A real PgBouncer in transaction mode in front of the suite's PostgreSQL, as Supabase's
pooler on port 6543 serves it: every transaction may run on another server connection, so
anything that outlives a transaction on the server (a prepared statement, a session ``SET``)
breaks. Started on a free loopback port with a config written here, stopped by PID.

PgBouncer refuses to run as root, so as root (CI) it runs as the ``postgres`` user, like the
test server itself (see docs/testing.md); ``scripts/bootstrap.sh --test`` installs it.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.processes import free_port, start_process

#: Debian installs it in /usr/sbin, off a non-root PATH.
PGBOUNCER_CANDIDATES = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
START_TIMEOUT_S = 15.0
#: Server connections per database/user pair: more than one, so consecutive transactions of
#: one client really land on different server connections (with ``server_round_robin``).
POOL_SIZE = 4


def pgbouncer_binary() -> str | None:
    found = shutil.which("pgbouncer")
    if found:
        return found
    return next((p for p in PGBOUNCER_CANDIDATES if Path(p).exists()), None)


def _config(server_url: str, port: int, root: Path) -> str:
    pg = urlsplit(server_url)
    return "\n".join(
        [
            "[databases]",
            # every database name on the test server, so each test's fresh database works
            f"* = host={pg.hostname} port={pg.port}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {root / 'userlist.txt'}",
            "pool_mode = transaction",
            f"default_pool_size = {POOL_SIZE}",
            "max_client_conn = 200",
            # the next transaction goes to another server connection, not the last one used
            "server_round_robin = 1",
            f"logfile = {root / 'pgbouncer.log'}",
            "",
        ]
    )


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def pgbouncer(server_url: str) -> Iterator[str]:
    """Yield ``postgresql://postgres@127.0.0.1:<port>/postgres`` through PgBouncer in
    transaction mode in front of ``server_url``; stop it (by PID) after."""
    binary = pgbouncer_binary()
    if binary is None:
        raise RuntimeError("pgbouncer not found: run scripts/bootstrap.sh --test")
    root = Path(tempfile.mkdtemp(prefix="arcano-pgbouncer-"))
    port = free_port()
    (root / "userlist.txt").write_text('"postgres" ""\n')
    (root / "pgbouncer.ini").write_text(_config(server_url, port, root))
    cmd = [binary, str(root / "pgbouncer.ini")]
    if os.geteuid() == 0:  # "PgBouncer should not run as root"
        shutil.chown(root, "postgres")
        for name in ("userlist.txt", "pgbouncer.ini"):
            shutil.chown(root / name, "postgres")
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    server = start_process(
        "pgbouncer", cmd, ready=lambda: _accepts(port), timeout=START_TIMEOUT_S, log_dir=root
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def through(pooler_url: str, database_url: str) -> str:
    """``database_url`` (a database on the test server) reached through the pooler."""
    return pooler_url.rsplit("/", 1)[0] + "/" + database_url.rsplit("/", 1)[1]
