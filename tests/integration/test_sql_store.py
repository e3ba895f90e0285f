"""What only the SQL store does: numbered migrations (and upgrading an old database in place)
and the database's own refusal of a second refund row. Everything the services rely on is in
the repository contract (``tests/contract``), run on this store too."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from arcano_tools.domain.records import FinishRequest, NewJob, utcnow
from arcano_tools.domain.status import FinishedBy, JobStatus, LedgerKind, OutputCopy
from arcano_tools.store import JobStore
from arcano_tools.store import schema as s
from arcano_tools.store.migrations import MIGRATIONS
from arcano_tools.store.store import _finish_freeing_slot_pg, _guarded_finish
from tests.support.old_schema import old_database
from tests.support.postgres import create_database
from tests.support.tools import tool_cost

TABLE = "upscaler_jobs"
COST = tool_cost("upscaler")  # what one job of TABLE costs


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    else:
        server: str = request.getfixturevalue("pg_server_url")
        url = create_database(server).replace("postgresql://", "postgresql+psycopg://")
    st = JobStore.from_url(url)
    await st.migrate()
    yield st
    await st.close()


async def new_job(store: JobStore, user: str = "u1") -> str:
    await store.ensure_user(user, credits=10 * COST)
    job_id = str(uuid.uuid4())
    await store.create_job(NewJob(id=job_id, table=TABLE, user_id=user, cost=COST, inputs={}))
    return job_id


async def test_migrations_are_recorded_and_idempotent(store: JobStore) -> None:
    assert await store.migrate() == []
    async with store.engine.connect() as conn:
        versions = (await conn.execute(sa.select(s.schema_migrations.c.version))).scalars().all()
    assert versions == [version for version, _, _ in MIGRATIONS]


async def test_the_ledger_refuses_a_second_refund_row(store: JobStore) -> None:
    job_id = await new_job(store)
    await store.finish(TABLE, job_id, FinishRequest(JobStatus.FAILED, FinishedBy.WEBHOOK))
    with pytest.raises(sa.exc.IntegrityError):
        async with store.engine.begin() as conn:
            await conn.execute(
                s.credit_ledger.insert().values(
                    user_id="u1",
                    amount=COST,
                    kind=LedgerKind.REFUND.value,
                    job_table=TABLE,
                    job_id=job_id,
                    created_at=utcnow(),
                )
            )


async def test_a_version_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    from arcano_tools.store import migrations

    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    old = JobStore.from_url(url)
    steps, migrations.MIGRATIONS = migrations.MIGRATIONS, migrations.MIGRATIONS[:1]
    try:
        assert await old.migrate() == [1]
    finally:
        migrations.MIGRATIONS = steps
    async with old.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO users (id, credits, is_admin, is_anonymous, created_at) "
                "VALUES ('u', :credits, false, false, CURRENT_TIMESTAMP)"
            ),
            {"credits": 2 * COST},
        )
    await old.close()

    store = JobStore.from_url(url)
    assert await store.migrate() == [version for version, _, _ in MIGRATIONS[1:]]
    await store.upsert_account("acc", "k" * 32, max_concurrent=1)
    job_id = str(uuid.uuid4())
    job = await store.create_job(NewJob(id=job_id, table=TABLE, user_id="u", cost=COST, inputs={}))
    claimed = await store.claim_slot(job, "acc")
    assert claimed is not None
    assert claimed.claim_id
    user = await store.get_user("u")
    assert user is not None
    assert user.credits == COST  # the old row survived the upgrade (and paid for one job)
    await store.close()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_a_version_3_database_with_a_start_in_flight_is_upgraded_in_place(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Start leases (migration 4) and the kept-events index (5) on a live v3 database: a
    start written by the old version has no lease, so the 5-minute rule still applies to it."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'v3.db'}"
    else:
        server: str = request.getfixturevalue("pg_server_url")
        url = create_database(server).replace("postgresql://", "postgresql+psycopg://")
    applied = await old_database(
        url,
        3,
        credits=2 * COST,
        job={"status": "starting", "cost": COST, "claim_id": "c1"},
    )
    assert applied == [1, 2, 3]

    store = JobStore.from_url(url)
    try:
        assert await store.migrate() == [version for version, _, _ in MIGRATIONS[3:]]
        job = await store.get_job(TABLE, "j1")
        assert job is not None
        assert (job.status, job.start_lease_until) == (JobStatus.STARTING, None)
        now = utcnow()
        lease = {"owner": "w", "now": now, "lease_for": timedelta(seconds=30), "limit": 10}
        assert (
            await store.lease_stalled_starts(legacy_before=now - timedelta(minutes=5), **lease)
            == []
        )
        (stalled,) = await store.lease_stalled_starts(legacy_before=now, **lease)
        assert stalled.id == "j1"
        assert await store.count_unmatched_webhooks() == 0
        async with store.engine.connect() as conn:
            indexes = await conn.run_sync(
                lambda sync: {i["name"] for i in sa.inspect(sync).get_indexes("webhook_events")}
            )
        assert "ix_webhook_events_outcome_unapplied" in indexes
    finally:
        await store.close()


@pytest.mark.postgres
async def test_every_finish_finds_its_row_by_id_in_the_plan_postgresql_keeps(
    pg_server_url: str,
) -> None:
    """psycopg prepares a statement from its fifth run on a connection, and PostgreSQL may
    then keep one generic plan for it, made while the table was small — every index as good
    as the primary key — for as long as the connection lives. The finish once kept a plan
    that found its row through the index on ``output_copy`` (``IS NULL``: every job), and took
    6 ms per finish with 12,000 jobs (BENCHMARKS.md, item 31)."""
    url = create_database(pg_server_url).replace("postgresql://", "postgresql+psycopg://")
    store = JobStore.from_url(url)
    await store.migrate()
    for _ in range(3):
        await new_job(store)
    statements = [
        _guarded_finish(TABLE, with_output, holding, of_task)
        for with_output, holding, of_task in itertools.product((False, True), repeat=3)
    ] + [
        _finish_freeing_slot_pg(TABLE, with_output, of_task)
        for with_output in (False, True)
        for of_task in (False, True)
    ]
    plans = await _generic_plans(store, statements)
    await store.close()
    scans = [line for lines in plans for line in lines if "Update" not in line]

    assert scans
    assert all(f"using {TABLE}_pkey on {TABLE}" in line for line in scans), scans


@pytest.mark.postgres
async def test_every_statement_on_one_job_finds_it_by_id_in_a_generic_plan(
    pg_server_url: str,
) -> None:
    """The same hazard for every statement that names one job by its id (the finishes are
    checked above, on the statements they are built from): a job's whole life is run through
    the store, each such statement is captured, and its generic plan — the one PostgreSQL may
    keep for a prepared statement while the table is small — must find the row through the
    primary key, never through an index on a column most rows share (``status``,
    ``output_copy``, ``next_check_at``…). (The finishes' first statements run on the
    driver's cursor, past this hook: the test above has them.)"""
    url = create_database(pg_server_url).replace("postgresql://", "postgresql+psycopg://")
    store = JobStore.from_url(url)
    await store.migrate()
    captured: dict[str, sa.ClauseElement] = {}
    by_id = re.compile(rf"\b{TABLE}\.id (= |IN )")

    def capture(_conn: Any, clause: Any, *_args: Any) -> None:
        if isinstance(clause, sa.sql.ClauseElement) and not isinstance(clause, sa.TextClause):
            text = str(clause.compile(dialect=postgresql.dialect()))
            if by_id.search(text):
                captured.setdefault(text, clause)

    for engine in store.sync_engines:
        sa.event.listen(engine, "before_execute", capture)
    try:
        await _one_job_through_its_life(store)
    finally:
        for engine in store.sync_engines:
            sa.event.remove(engine, "before_execute", capture)

    plans = dict(zip(captured, await _generic_plans(store, list(captured.values())), strict=True))
    await store.close()

    # the life below runs at least these (a statement renamed or dropped shows up here)
    verbs = {text.split()[0] for text in plans}
    assert {"SELECT", "UPDATE"} <= verbs, plans
    assert len(plans) >= 15, sorted(plans)  # what the life below runs today
    scans = {
        text: [line.strip() for line in lines if "Update" not in line]
        for text, lines in plans.items()
    }
    assert all(scans.values()), scans
    elsewhere = [
        f"{text.split()[0]} … WHERE {_where(text)[:160]} → {' / '.join(lines)}"
        for text, lines in scans.items()
        if not all(f"using {TABLE}_pkey on {TABLE}" in line for line in lines)
    ]
    assert elsewhere == [], "\n".join(elsewhere)


async def _generic_plans(store: JobStore, statements: list[Any]) -> list[list[str]]:
    """Each statement's generic plan on PostgreSQL (prepared, every parameter NULL): the
    lines of its plan that touch the jobs table."""
    dialect = postgresql.dialect(paramstyle="numeric_dollar")
    plans = []
    async with store.engine.connect() as conn:
        await conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        for n, statement in enumerate(statements):
            compiled = statement.compile(
                dialect=dialect, compile_kwargs={"render_postcompile": True}
            )
            nulls = ", ".join(["NULL"] * len(compiled.positiontup or ()))
            await conn.exec_driver_sql(f"PREPARE plan_{n} AS {compiled}")
            plan = await conn.exec_driver_sql(f"EXPLAIN EXECUTE plan_{n}({nulls})")
            plans.append([line for (line,) in plan if f"on {TABLE}" in line])
    return plans


def _where(sql: str) -> str:
    """A statement's conditions (SQLAlchemy puts its ``WHERE`` on a new line)."""
    return re.split(r"\s+WHERE\s+", sql, maxsplit=1)[-1]


async def _one_job_through_its_life(store: JobStore) -> None:
    """Submitted, started (claimed, leased, its task saved), checked by the watchdog, its
    result being copied (the copy leased); a second job turned away and put back in the
    queue; a third given its task by an early webhook."""
    now = utcnow()
    await store.upsert_account("acc", "k" * 32, max_concurrent=2)
    for _ in range(3):
        await new_job(store, user="other")
    job_id = await new_job(store)
    job = await store.get_job(TABLE, job_id)
    assert job is not None
    await store.queue_position(job)
    claimed = await store.claim_slot(job, "acc")
    assert claimed is not None
    assert await store.renew_start_lease(claimed, until=now + timedelta(minutes=1))
    started = await store.save_task_id(TABLE, job_id, "T1", claim_id=claimed.claim_id)
    assert started is not None
    assert await store.reserve_check(TABLE, job_id, now=now, next_check_at=now)
    await store.record_check_result(TABLE, job_id, 804, "running", lease_owner="w1")
    await store.release_lease(TABLE, job_id, "w1")
    began = await store.begin_output_copy(
        TABLE, job_id, upstream_url="https://x/o.png", reported_by=FinishedBy.WEBHOOK, due_at=now
    )
    assert began is not None
    assert began.changed
    assert await store.record_output_copy(
        TABLE, job_id, state=OutputCopy.SAVING, tries=1, due_at=now
    )
    (leased,) = await store.lease_output_copies(now=now, lease_for=timedelta(minutes=1), limit=5)
    assert leased.id == job_id
    await store.get_job(TABLE, job_id)

    # an early webhook's task onto a job no start has claimed yet (no claim to fence with)
    early_id = await new_job(store, user="u3")
    assert await store.save_task_id(TABLE, early_id, "T-early") is not None

    other_id = await new_job(store, user="u2")
    other = await store.get_job(TABLE, other_id)
    assert other is not None
    other_claimed = await store.claim_slot(other, "acc")
    assert other_claimed is not None
    assert await store.requeue(other_claimed, retry_at=now, reason="421 busy")


async def test_a_finish_failing_in_the_database_raises_sqlalchemys_error(
    store: JobStore,
) -> None:
    """The finishes run on the driver's cursor; a database failure there still reaches the
    callers as SQLAlchemy's error (the API answers it 503 "database down", not 500: found in
    review). The failure: a trigger refusing every update of the jobs; the job holds its
    slot, so the first statement (the one on the driver's cursor) is the one refused."""
    await store.upsert_account("acc", "k" * 32, max_concurrent=2)
    job_id = await new_job(store)
    queued = await store.get_job(TABLE, job_id)
    assert queued is not None
    claimed = await store.claim_slot(queued, "acc")
    assert claimed is not None
    assert await store.save_task_id(TABLE, job_id, "T1", claim_id=claimed.claim_id)
    if store.dialect == "postgresql":
        ddl = [
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'update refused by the test'; END $$",
            f"CREATE TRIGGER refuse BEFORE UPDATE ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION refuse()",
        ]
    else:
        ddl = [
            f"CREATE TRIGGER refuse BEFORE UPDATE ON {TABLE} "
            "BEGIN SELECT RAISE(ABORT, 'update refused by the test'); END"
        ]
    async with store.engine.begin() as conn:
        for statement in ddl:
            await conn.exec_driver_sql(statement)

    request = FinishRequest(JobStatus.FAILED, FinishedBy.WATCHDOG, error_message="x")
    with pytest.raises(sa.exc.DBAPIError, match="update refused by the test"):
        await store.finish(TABLE, job_id, request)

    job = await store.get_job(TABLE, job_id)
    assert job is not None
    assert job.status is JobStatus.RUNNING  # nothing half-written
    assert job.holds_slot
