"""Schema migrations: an ordered list of steps, each applied once, on SQLite and PostgreSQL.

Why not Alembic: four small tables whose DDL SQLAlchemy already emits for both dialects; a
numbered list keeps the history readable and runs inside the caller's write transaction
(``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL), so two processes starting at
once never apply a step twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from arcano_tools.domain.records import utcnow
from arcano_tools.domain.tools import JOB_TABLES
from arcano_tools.store import schema as s

#: Columns of the current job tables that later migrations add (v1 creates tables without).
V1_LATER_COLUMNS = ("claim_id", "start_failures", "start_lease_until")
#: Columns of migration 7 (results that last), dropped with their index from v1's tables too.
V7_OUTPUT_COPY_COLUMNS = (
    "upstream_output_url",
    "output_copy",
    "output_key",
    "output_copy_tries",
    "output_copy_due_at",
    "output_copy_error",
    "output_reported_by",
)
#: Indexes of the current tables that later migrations create (v1 creates tables without).
V1_LATER_INDEXES = ("ix_webhook_events_outcome_unapplied",)

#: Arbitrary constant key of the PostgreSQL advisory lock that serialises migrations.
_PG_MIGRATION_LOCK_KEY = 724_311_985

Step = Callable[[AsyncConnection], Awaitable[None]]


async def _v1_initial(conn: AsyncConnection) -> None:
    """The plan's four job tables, users and credits, RunningHub accounts, webhook events."""
    tables = [t for name, t in s.metadata.tables.items() if name != "schema_migrations"]

    def create(sync: sa.Connection) -> None:
        s.metadata.create_all(sync, tables=tables)
        for name in JOB_TABLES:  # v1's shape: columns added by later steps come from them
            sync.exec_driver_sql(f"DROP INDEX ix_{name}_output_copy_due")
            for column in (*V1_LATER_COLUMNS, *V7_OUTPUT_COPY_COLUMNS):
                sync.exec_driver_sql(f"ALTER TABLE {name} DROP COLUMN {column}")
        for index in V1_LATER_INDEXES:
            sync.exec_driver_sql(f"DROP INDEX {index}")

    await conn.run_sync(create)


async def _v2_claim_id(conn: AsyncConnection) -> None:
    """Each dispatch of a job gets a claim id: a start that lost its claim (requeued by the
    server watchdog and dispatched again) can no longer requeue or save onto the new one."""
    for table in JOB_TABLES:
        await conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN claim_id VARCHAR(32)"))


async def _v3_start_failures(conn: AsyncConnection) -> None:
    """Failed starts counted apart from 421 requeues, so a long queue-full spell followed by
    one network error no longer fails the job as if it had failed five times."""
    for table in JOB_TABLES:
        await conn.execute(
            sa.text(f"ALTER TABLE {table} ADD COLUMN start_failures INTEGER NOT NULL DEFAULT 0")
        )


async def _v4_start_lease(conn: AsyncConnection) -> None:
    """The process starting a job renews a short lease on it while the create call runs, so a
    start left by a killed process is put back in the queue within seconds, not minutes."""
    ts = sa.DateTime(timezone=True).compile(dialect=conn.dialect)
    for table in JOB_TABLES:
        await conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN start_lease_until {ts}"))


async def _v5_unmatched_index(conn: AsyncConnection) -> None:
    """Old-style webhook events kept for a task id not stored yet are bounded; every such
    delivery counts them, so the count reads an index, not the whole events table."""
    await conn.execute(
        sa.text(
            "CREATE INDEX IF NOT EXISTS ix_webhook_events_outcome_unapplied "
            "ON webhook_events (outcome, applied_at)"
        )
    )


async def _v7_output_copy(conn: AsyncConnection) -> None:
    """Results that last: RunningHub's output URL is kept the moment success is known and the
    job stays running while the output is copied into our storage (retried with backoff), so
    a result outlives RunningHub's day-long links and a crash mid-copy resumes."""
    ts = sa.DateTime(timezone=True).compile(dialect=conn.dialect)
    for table in JOB_TABLES:
        for column, kind in (
            ("upstream_output_url", "TEXT"),
            ("output_copy", "VARCHAR(16)"),
            ("output_key", "TEXT"),
            ("output_copy_tries", "INTEGER NOT NULL DEFAULT 0"),
            ("output_copy_due_at", ts),
            ("output_copy_error", "TEXT"),
            ("output_reported_by", "VARCHAR(24)"),
        ):
            await conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} {kind}"))
        await conn.execute(
            sa.text(
                f"CREATE INDEX IF NOT EXISTS ix_{table}_output_copy_due "
                f"ON {table} (output_copy, output_copy_due_at)"
            )
        )


#: Row-level security (migration 8): the tables a signed-in user may read their own rows of,
#: and the column naming the owner. Every other table is readable by no API role at all.
OWN_ROWS = {**dict.fromkeys(JOB_TABLES, "user_id"), "users": "id", "credit_ledger": "user_id"}


def _rls_sql() -> str:
    """PostgreSQL: RLS on every table of the schema; on Supabase (its ``authenticated`` role
    and ``auth.uid()`` exist) a policy letting a signed-in user read only their own rows.

    This app connects as the tables' owner, which RLS does not restrict; the policies are for
    Supabase's Data API (PostgREST as ``anon``/``authenticated``), whose default privileges
    grant every new table to those roles — without RLS they could read RunningHub's API keys.
    No ``%`` in the SQL: the driver would read it as a parameter.
    """
    policies = "\n".join(
        f"    CREATE POLICY own_rows_read ON {table} FOR SELECT TO authenticated"
        f" USING ({owner} = CAST((SELECT auth.uid()) AS text));"
        for table, owner in OWN_ROWS.items()
    )
    return f"""DO $rls$
DECLARE
  t text;
BEGIN
  FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() LOOP
    EXECUTE 'ALTER TABLE ' || quote_ident(t) || ' ENABLE ROW LEVEL SECURITY';
  END LOOP;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated')
     AND to_regprocedure('auth.uid()') IS NOT NULL THEN
{policies}
  END IF;
END
$rls$"""


async def _v8_row_level_security(conn: AsyncConnection) -> None:
    """Supabase's layout (issue 11): a user reads only their own jobs through Supabase's
    client libraries. SQLite has no roles: nothing to do there."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text(_rls_sql()))


MIGRATIONS: list[tuple[int, str, Step]] = [
    (1, "initial", _v1_initial),
    (2, "claim_id", _v2_claim_id),
    (3, "start_failures", _v3_start_failures),
    (4, "start_lease", _v4_start_lease),
    (5, "unmatched_webhooks_index", _v5_unmatched_index),
    (7, "output_copy", _v7_output_copy),
    (8, "row_level_security", _v8_row_level_security),
]


async def run_migrations(conn: AsyncConnection) -> list[int]:
    """Apply the steps not yet recorded in ``schema_migrations``; return their versions."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK_KEY})"))
    await conn.run_sync(lambda sync: s.schema_migrations.create(sync, checkfirst=True))
    done = set((await conn.execute(sa.select(s.schema_migrations.c.version))).scalars())
    applied: list[int] = []
    for version, name, step in MIGRATIONS:
        if version in done:
            continue
        await step(conn)
        await conn.execute(
            s.schema_migrations.insert().values(version=version, name=name, applied_at=utcnow())
        )
        applied.append(version)
    return applied
