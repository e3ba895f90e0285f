"""A real Redis server for tests: ``redis-server`` on a free loopback port, no persistence,
stopped by PID. Restartable on the same port, to test reconnects."""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

from tests.support.processes import ServerProcess, free_port, start_process

START_TIMEOUT_S = 15.0


class RedisServer:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: run scripts/bootstrap.sh --test")
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="arcano-redis-"))
        self.server: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.server = start_process(
            "redis-server",
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.dir),
            ],
            ready=self._answers_ping,
            url=self.url,
            timeout=START_TIMEOUT_S,
            log_dir=self.dir,
        )  # fmt: skip

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.server = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False
