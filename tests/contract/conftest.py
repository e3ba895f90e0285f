"""The repository contract: one suite, four back-ends (in-memory, SQLite, PostgreSQL, and
PostgreSQL through PgBouncer in transaction mode — Supabase's pooler on port 6543).

Every test takes the ``store`` fixture and runs once per back-end; the ids in pytest's output
say which (``[memory]``, ``[sqlite]``, ``[postgres]``, ``[pgbouncer]``), and a closing line
counts the passes of each, so a back-end that silently stopped running shows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from arcano_tools.domain.repository import Repository
from arcano_tools.store import JobStore
from arcano_tools.store.memory import InMemoryStore
from tests.support.fixtures import pg_server_url  # noqa: F401  (fixtures are found by name)
from tests.support.pgbouncer import pgbouncer, through
from tests.support.postgres import create_database

BACKENDS = [
    "memory",
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("pgbouncer", marks=pytest.mark.postgres),
]
_passed: Counter[str] = Counter()


@pytest.fixture(scope="session")
def pgbouncer_url(pg_server_url: str) -> Iterator[str]:  # noqa: F811  (the fixture above)
    """PgBouncer in transaction mode in front of the session's PostgreSQL."""
    with pgbouncer(pg_server_url) as url:
        yield url


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Repository]:
    st: Repository
    if request.param == "memory":
        st = InMemoryStore()
    elif request.param == "sqlite":
        st = JobStore.from_url(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    else:
        server: str = request.getfixturevalue("pg_server_url")
        url = create_database(server)
        pooled = request.param == "pgbouncer"
        if pooled:
            url = through(request.getfixturevalue("pgbouncer_url"), url)
        url = url.replace("postgresql://", "postgresql+psycopg://")
        st = JobStore.from_url(url, transaction_pooler=pooled)
    await st.migrate()
    await st.upsert_account("acc", "k" * 32, max_concurrent=2)
    yield st
    await st.close()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed and "tests/contract/" in report.nodeid:
        backend = report.nodeid.rsplit("[", 1)[-1].rstrip("]")
        _passed[backend] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _passed:
        counts = ", ".join(f"{name}: {n} passed" for name, n in sorted(_passed.items()))
        terminalreporter.write_line(f"repository contract back-ends — {counts}")
