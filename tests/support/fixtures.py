"""Fixtures of the backend integration tests (imported by ``tests/integration/conftest.py``).

One emulator and one API server per test module (starting them costs about a second); each
test resets the emulator and uses its own user ids, so tests never see each other's credits.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from arcano_tools.tls import client_tls
from tests.support.postgres import create_database, postgres_server
from tests.support.processes import ServerProcess
from tests.support.servers import Backend, start_backend, start_emulator


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A real PostgreSQL server for the whole session (about 1 s to start)."""
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_emulator(tmp_path_factory.mktemp("emulator"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def backend(emulator: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """Our API on a fresh SQLite file, talking to the emulator."""
    data_dir: Path = tmp_path_factory.mktemp("backend")
    b = start_backend(emulator.url, data_dir)
    yield b
    b.api.stop()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def backend_on_each_db(
    request: pytest.FixtureRequest,
    emulator: ServerProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Backend]:
    """Our API on SQLite, then on a fresh database of the session's PostgreSQL server."""
    database_url = ""
    if request.param == "postgres":
        database_url = create_database(request.getfixturevalue("pg_server_url"))
    b = start_backend(emulator.url, tmp_path_factory.mktemp("backend"), database_url)
    yield b
    b.api.stop()


@pytest.fixture
def backends_on_one_postgres(
    emulator: ServerProcess, pg_server_url: str, tmp_path: Path
) -> Iterator[Callable[[Mapping[str, str]], tuple[Backend, Backend]]]:
    """``start(env) -> (first, second)``: two API processes sharing one fresh PostgreSQL
    database and one upload directory, as in production; both stopped after the test."""
    started: list[Backend] = []

    def start(env: Mapping[str, str]) -> tuple[Backend, Backend]:
        database_url = create_database(pg_server_url)
        for _ in range(2):
            started.append(start_backend(emulator.url, tmp_path, database_url, env))
        return started[-2], started[-1]

    yield start
    for backend in started:
        backend.api.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(verify=client_tls(), timeout=30.0) as c:
        yield c


@pytest.fixture
def emu(emulator: ServerProcess, client: httpx.Client) -> EmulatorControl:
    """The emulator, reset to fast defaults for this test."""
    control = EmulatorControl(client, emulator.url)
    control.set(reset=True)
    control.set(task_ms=150, webhook="deliver")
    return control


@pytest.fixture
def user(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh user id; its unfinished jobs are cancelled after the test (freeing the slots)."""
    user_id = "user-" + uuid.uuid4().hex[:10]
    yield user_id
    names = [n for n in ("backend", "backend_on_each_db") if n in request.fixturenames]
    if not names:
        return
    b: Backend = request.getfixturevalue(names[0])
    with httpx.Client(verify=client_tls(), timeout=30.0) as c:
        jobs = c.get(b.url + "/api/jobs", headers=b.user_headers(user_id)).json().get("jobs", [])
        for job in jobs:
            if job["status"] in ("pending", "queued", "starting", "running"):
                c.post(
                    f"{b.url}/api/jobs/{job['table']}/{job['id']}/cancel",
                    headers=b.user_headers(user_id),
                )


class EmulatorControl:
    def __init__(self, client: httpx.Client, url: str) -> None:
        self.client = client
        self.url = url

    def set(self, **settings: object) -> dict[str, object]:
        r = self.client.post(self.url + "/_control", json=settings)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def stats(self) -> dict[str, object]:
        r = self.client.get(self.url + "/_stats")
        assert r.status_code == 200, r.text
        return dict(r.json())
