"""The schema in Supabase's layout (``supabase/migrations/*.sql``, generated from the app's
migrations) on a real PostgreSQL set up with Supabase's roles and JWT-claims functions: it
builds exactly the schema the app's own migrations build, from an empty database and from one
at the previous version (in either order of the two tools), and its row-level security lets a
signed-in user read only their own jobs."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.errors import InsufficientPrivilege

from arcano_tools.domain.tools import JOB_TABLES
from arcano_tools.store import JobStore, migrations
from tests.support.postgres import create_database
from tests.support.supabase_db import (
    apply_files,
    as_role,
    make_supabase_like,
    migration_files,
    schema_snapshot,
)

pytestmark = pytest.mark.postgres


def supabase_like_database(server: str) -> str:
    url = create_database(server)
    make_supabase_like(url)
    return url


async def app_migrate(url: str, *, steps: int | None = None) -> list[int]:
    """Run the app's own migrations (the first ``steps`` of them, if given)."""
    store = JobStore.from_url(url.replace("postgresql://", "postgresql+psycopg://"))
    every = migrations.MIGRATIONS
    if steps is not None:
        migrations.MIGRATIONS = every[:steps]
    try:
        return await store.migrate()
    finally:
        migrations.MIGRATIONS = every
        await store.close()


@pytest.fixture(scope="module")
def reference(pg_server_url: str) -> dict[str, list[tuple[object, ...]]]:
    """The schema the app's migrations build on a Supabase-like database."""
    url = supabase_like_database(pg_server_url)
    asyncio.run(app_migrate(url))
    return schema_snapshot(url)


@pytest.fixture(scope="module")
def built_by_supabase_files(pg_server_url: str) -> str:
    url = supabase_like_database(pg_server_url)
    apply_files(url, migration_files())
    return url


async def test_the_supabase_files_build_the_apps_schema(
    built_by_supabase_files: str, reference: dict[str, list[tuple[object, ...]]]
) -> None:
    snapshot = schema_snapshot(built_by_supabase_files)
    assert snapshot == reference
    assert [v for v, _ in snapshot["migrations"]] == [v for v, _, _ in migrations.MIGRATIONS]
    # the app, started on that database, finds nothing to do
    assert await app_migrate(built_by_supabase_files) == []


async def test_the_files_upgrade_a_database_the_app_left_at_the_previous_version(
    pg_server_url: str, reference: dict[str, list[tuple[object, ...]]]
) -> None:
    url = supabase_like_database(pg_server_url)
    previous = len(migrations.MIGRATIONS) - 1
    await app_migrate(url, steps=previous)
    apply_files(url, migration_files())  # the versions already there are skipped
    assert schema_snapshot(url) == reference


async def test_the_app_upgrades_a_database_the_files_left_at_the_previous_version(
    pg_server_url: str, reference: dict[str, list[tuple[object, ...]]]
) -> None:
    url = supabase_like_database(pg_server_url)
    apply_files(url, migration_files()[:-1])
    assert await app_migrate(url) == [migrations.MIGRATIONS[-1][0]]
    assert schema_snapshot(url) == reference


# --- row-level security -------------------------------------------------------------------------


def seed(url: str) -> tuple[str, str]:
    """Two users with a job each in every job table, and a RunningHub account (written by the
    owner, as the app does); returns the two user ids."""
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO runninghub_accounts (account_name, api_key, max_concurrent, in_flight,"
            " enabled, updated_at) VALUES (%s, 'secret-key', 1, 0, true, %s)",
            ["account-" + alice[:8], now],
        )
        for user in (alice, bob):
            conn.execute(
                "INSERT INTO users (id, credits, is_admin, is_anonymous, created_at)"
                " VALUES (%s, 10, false, false, %s)",
                [user, now],
            )
            conn.execute(
                "INSERT INTO credit_ledger (user_id, amount, kind, created_at)"
                " VALUES (%s, 10, 'grant', %s)",
                [user, now],
            )
            for table in JOB_TABLES:
                conn.execute(
                    f"INSERT INTO {table} (id, user_id, status, cost, inputs, created_at,"
                    " updated_at, holds_slot, attempts, check_count)"
                    " VALUES (%s, %s, 'queued', 5, '{}', %s, %s, false, 0, 0)",
                    [str(uuid.uuid4()), user, now, now],
                )
    return alice, bob


def test_a_signed_in_user_reads_only_their_own_rows(built_by_supabase_files: str) -> None:
    url = built_by_supabase_files
    alice, bob = seed(url)
    with as_role(url, "authenticated", alice) as conn:
        for table in JOB_TABLES:
            owners = conn.execute(f"SELECT user_id FROM {table}").fetchall()
            assert owners == [(alice,)], table
        assert conn.execute("SELECT id FROM users").fetchall() == [(alice,)]
        assert conn.execute("SELECT user_id FROM credit_ledger").fetchall() == [(alice,)]
        # tables with no policy are invisible: RunningHub's API keys above all
        for table in ("runninghub_accounts", "webhook_events", "upstream_errors"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
        # reading is all a user may do through Supabase's API: no write policy exists
        assert conn.execute("UPDATE users SET credits = 1000").rowcount == 0
    with as_role(url, "authenticated", alice) as conn, pytest.raises(InsufficientPrivilege):
        conn.execute(
            "INSERT INTO credit_ledger (user_id, amount, kind, created_at)"
            " VALUES (%s, 1000, 'grant', now())",
            [alice],
        )
    with as_role(url, "authenticated", bob) as conn:
        assert conn.execute("SELECT user_id FROM upscaler_jobs").fetchall() == [(bob,)]


def test_the_anon_role_reads_nothing(built_by_supabase_files: str) -> None:
    url = built_by_supabase_files
    seed(url)
    with as_role(url, "anon") as conn:
        for table in [*JOB_TABLES, "users", "credit_ledger", "runninghub_accounts"]:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table


def test_every_table_has_row_level_security(
    reference: dict[str, list[tuple[object, ...]]],
) -> None:
    """A table added by a later migration without RLS would be readable by every visitor
    through Supabase's Data API (its default privileges grant it to ``anon``)."""
    assert reference["rls"]
    assert [name for name, on in reference["rls"] if not on] == []
