"""Integration fixtures: real servers (emulator, API, PostgreSQL); see tests/support/."""

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
