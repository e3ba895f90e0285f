"""Integration fixtures: real servers (emulator, API, PostgreSQL); see tests/support/."""

from collections.abc import Iterator

import pytest

from tests.support.fixtures import (  # noqa: F401  (fixtures are found by name)
    backend,
    backend_on_each_db,
    backends_on_one_postgres,
    client,
    emu,
    emulator,
    pg_server_url,
    user,
)
from tests.support.processes import STARTED_LOGS
from tests.support.secrets_scan import leaks


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_server_log() -> Iterator[None]:
    """After the whole integration run (every scenario, fault and race), no server log holds
    a key, a secret, a user token or a webhook token."""
    yield
    found = leaks(STARTED_LOGS)
    assert not found, f"secrets in {len(STARTED_LOGS)} server logs:\n  " + "\n  ".join(found)
