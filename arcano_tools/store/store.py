"""The one storage seam: every query the services run, named, in one place.

SQLite (the embedded default) and PostgreSQL (``DATABASE_URL``) run the same Core statements.
Two rules keep them correct under concurrency:

* every state change is a *conditional* update (``… WHERE status IN (…)``, ``… WHERE in_flight
  < max_concurrent``, ``… WHERE credits >= cost``): whoever changes the row wins, the others see
  ``rowcount == 0`` and read the new state;
* on SQLite every write transaction is ``BEGIN IMMEDIATE`` so a read-then-write transaction never
  fails to upgrade its lock, and the busy timeout turns contention into waiting, not errors.

Speed (issue 9, see BENCHMARKS.md): the small writes of the hot paths (a finish, a webhook
event, a check reserved or recorded, a lease released, a job created) go through one writer
per process that commits the writes of concurrent requests together (``group_commit.py``); on
SQLite every write transaction of the process also waits its turn behind one lock, so this
process's connections never sleep in SQLite's busy handler fighting each other for the file's
one write lock (other processes still meet the busy timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from arcano_tools.domain.errors import InsufficientCredits
from arcano_tools.domain.records import (
    OUTPUT_COPY_CHECK_PAUSE,
    Account,
    ActiveSummary,
    Clock,
    FinishRequest,
    FinishResult,
    Job,
    NewJob,
    User,
    WebhookRecord,
    utcnow,
)
from arcano_tools.domain.status import (
    ACTIVE_STATUSES,
    REFUND_STATUSES,
    FinishedBy,
    JobStatus,
    LedgerKind,
    OutputCopy,
    WebhookOutcome,
)
from arcano_tools.store import schema as s
from arcano_tools.store.group_commit import GroupCommit
from arcano_tools.store.migrations import run_migrations

log = logging.getLogger(__name__)

#: SQLite waits this long for the write lock before giving up (contention, not an error).
SQLITE_BUSY_TIMEOUT_S = 30
_ACTIVE = [st.value for st in ACTIVE_STATUSES]


def _active(status: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """``status IN ('pending', 'queued', 'starting', 'running')``, the values written into the
    SQL: as bound parameters they were an "expanding" list that SQLAlchemy renders into the
    statement again at every execution — 12 % of a first webhook delivery's CPU (its guarded
    finish; BENCHMARKS.md item 26). Our own constants, never user input."""
    return status.in_([sa.literal_column(f"'{value}'") for value in _ACTIVE])


# --- statements of the hot paths, built once -------------------------------------------------
# A Core statement built per call costs its construction and its cache key at every execution
# (a webhook's guarded finish: about 600 µs of CPU against 110 µs for one built once with bind
# parameters, measured on SQLite; py-spy put statement building at a quarter of a first
# delivery's CPU — BENCHMARKS.md). The bind parameters are named b_* so they never collide
# with the columns an UPDATE sets.

#: The values a finish sets, each a bind parameter (``output_url`` only when one is given).
_FINISH_VALUES = (
    "status",
    "completed_at",
    "updated_at",
    "finished_by",
    "error_message",
    "lease_owner",
    "lease_until",
    "next_check_at",
)


@functools.cache
def _finish_freeing_slot_pg(table: str, with_output: bool, of_task: bool) -> Any:
    """PostgreSQL: :func:`_guarded_finish` of a job holding its slot and the account's count
    freed, in one statement (data-modifying CTEs) — a round trip less per finish, in the
    group commit's one transaction: under a webhook burst it sent them one after the other.
    The account's update reads the finish's own output, so a finish that changed nothing
    (a racing one committed first: PostgreSQL re-checks the guard) frees nothing."""
    finished = _guarded_finish(table, with_output, True, of_task).cte("finished")
    its_account = sa.select(finished.c.api_account).scalar_subquery()
    freed = _one_slot_freed(its_account, sa.bindparam("b_updated_at")).cte("freed")
    return sa.select(finished).add_cte(freed)


@functools.cache
def _slot_given_back(table: str) -> Any:
    t = s.job_tables[table]
    return t.update().where(t.c.id == sa.bindparam("b_id")).values(holds_slot=False)


@functools.cache
def _select_job(table: str) -> Any:
    t = s.job_tables[table]
    return sa.select(t).where(t.c.id == sa.bindparam("b_id"))


def _in_list_size(n: int) -> int:
    """The size of the ``IN`` list that reads ``n`` ids: the next power of two (the last id
    repeated to fill it). One statement per power of two, not per count: a statement per
    count up to a batch of 128, for four tables, was 508 compiled statements — 77 MB kept
    by each process (found in review)."""
    return 1 << max(0, n - 1).bit_length()


@functools.cache
def _select_jobs(table: str, n: int) -> Any:
    """``n`` jobs of one table by id in one statement: ``id IN (:b_0, …)``, a bound parameter
    each (an "expanding" list is rendered into the SQL again at every execution); ``n`` is
    a power of two (:func:`_in_list_size`)."""
    t = s.job_tables[table]
    return sa.select(t).where(t.c.id.in_([sa.bindparam(f"b_{i}") for i in range(n)]))


@functools.cache
def _guarded_finish(table: str, with_output: bool, holding_slot: bool, of_task: bool) -> Any:
    """The one terminal transition: only from an active status, the new row returned.
    ``holding_slot``: only a job that holds its account's slot, which it gives back in the
    same statement (the caller then frees the account's slot); otherwise any active job, its
    slot flag as it was. ``of_task``: only a job running task ``b_task`` and saving no result
    (``FinishRequest.task_id``: a webhook's finish with no read of the job before it)."""
    t = s.job_tables[table]
    names = _FINISH_VALUES + (("output_url",) if with_output else ())
    values: dict[str, Any] = {name: sa.bindparam(f"b_{name}") for name in names}
    checks = [_active(t.c.status)]
    if of_task:
        checks += [t.c.task_id == sa.bindparam("b_task"), t.c.output_copy.is_(None)]
    if holding_slot:
        checks += [t.c.holds_slot.is_(True), t.c.api_account.is_not(None)]
        values["holds_slot"] = False
    return (
        t.update().where(_the_job(t, sa.bindparam("b_id"), *checks)).values(values).returning(*t.c)
    )


def _checked_on_the_row(checks: list[sa.ColumnElement[bool]]) -> sa.ColumnElement[bool]:
    """``checks``, true of the row its id found, and never a way to find it: one ``CASE``
    no index can serve. PostgreSQL plans a statement prepared by psycopg (from its fifth run
    on a connection) once, generically — on a table still small every index looks as good
    as the primary key — and keeps that plan as the table grows: the finish once found its
    row through the index on ``output_copy`` (``IS NULL``: every job), 6 ms per finish with
    12,000 jobs, first deliveries at 120 requests/s (BENCHMARKS.md, item 31); the claim,
    through the index on ``status``, walked every queued job (item 32).

    The rule: every statement that names jobs by their ids (``id = …``, ``id IN`` a list) and
    checks more of their rows puts those checks here (one job: :func:`_the_job`), indexed
    columns or not — so that a check added later cannot bring the hazard back.
    ``test_sql_store`` checks the generic plans of a job's whole life."""
    return sa.case((sa.and_(*checks), sa.true()), else_=sa.false())


def _the_job(t: sa.Table, job_id: Any, *checks: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
    """The row of job ``job_id`` (a value or a bound parameter) if ``checks`` hold of it —
    found by its id alone (:func:`_checked_on_the_row`)."""
    return sa.and_(t.c.id == job_id, _checked_on_the_row(list(checks)))


@functools.cache
def _check_reserved(table: str) -> Any:
    """A check's conditional reservation: due (or never scheduled) and still active."""
    t = s.job_tables[table]
    return (
        t.update()
        .where(
            _the_job(
                t,
                sa.bindparam("b_id"),
                _active(t.c.status),
                sa.or_(t.c.next_check_at.is_(None), t.c.next_check_at <= sa.bindparam("b_now")),
            )
        )
        .values(
            last_checked_at=sa.bindparam("b_now"),
            next_check_at=sa.bindparam("b_next"),
            check_count=t.c.check_count + 1,
        )
    )


@functools.cache
def _check_result(table: str, release_lease: bool = False) -> Any:
    """RunningHub's last answer; ``release_lease``: and the lease of ``b_owner`` ends."""
    t = s.job_tables[table]
    later = sa.bindparam("b_next", type_=t.c.next_check_at.type)
    # only an active job's, and not one saving its result (the copier's pause is kept): a
    # webhook may have ended or begun saving it between RunningHub's answer and this write
    movable = sa.and_(later.is_not(None), _active(t.c.status), t.c.output_copy.is_(None))
    values: dict[str, Any] = {
        "last_upstream_code": sa.bindparam("b_code"),
        "last_upstream_msg": sa.bindparam("b_msg"),
        "next_check_at": sa.case((movable, later), else_=t.c.next_check_at),
    }
    if release_lease:
        held = t.c.lease_owner == sa.bindparam("b_owner")
        values["lease_owner"] = sa.case((held, None), else_=t.c.lease_owner)
        values["lease_until"] = sa.case((held, None), else_=t.c.lease_until)
    return t.update().where(t.c.id == sa.bindparam("b_id")).values(values)


@functools.cache
def _lease_released(table: str) -> Any:
    t = s.job_tables[table]
    return (
        t.update()
        .where(_the_job(t, sa.bindparam("b_id"), t.c.lease_owner == sa.bindparam("b_owner")))
        .values(lease_owner=None, lease_until=None)
    )


class _OneStatement:
    """A group-commit write that is one statement whose result nobody reads (a check's answer
    recorded). Consecutive ones of the same statement in a transaction run as one
    ``executemany``: in a sweep of 10,000 jobs, a thousand such ``UPDATE``s a second each
    went through SQLAlchemy's execution and a round trip of their own, holding the GIL the
    event loop needed (BENCHMARKS.md, item 25). Alone (or on the group commit's one-by-one
    fallback) it is a plain ``execute``."""

    __slots__ = ("params", "statement")

    def __init__(self, statement: Any, params: dict[str, Any]) -> None:
        self.statement = statement
        self.params = params

    def __call__(self, conn: sa.Connection) -> None:
        conn.execute(self.statement, self.params)


class _JobRead:
    """``get_job``'s read, as one of the store's batched reads. Alone it is the one-row
    ``SELECT``; several in one batch (a burst of first webhook deliveries, each reading its
    job) are read together, a statement per table (``_read_jobs_together``): on PostgreSQL
    one round trip instead of one per read."""

    __slots__ = ("job_id", "table")

    def __init__(self, table: str, job_id: str) -> None:
        self.table = table
        self.job_id = job_id

    def __call__(self, conn: sa.Connection) -> Job | None:
        row = conn.execute(_select_job(self.table), {"b_id": self.job_id}).mappings().first()
        return _job_from_row(self.table, row) if row else None


def _read_jobs_together(
    conn: sa.Connection, reads: list[Callable[[sa.Connection], Any]]
) -> dict[tuple[str, str], Job | None]:
    """The jobs of the :class:`_JobRead` among ``reads``, each table's (if it has more than
    one to read) in one statement; ``(table, id)`` → the job, ``None`` if there is none."""
    ids: dict[str, set[str]] = {}
    for read in reads:
        if isinstance(read, _JobRead):
            ids.setdefault(read.table, set()).add(read.job_id)
    found: dict[tuple[str, str], Job | None] = {}
    for table, wanted in ids.items():
        if len(wanted) < 2:
            continue
        ordered = sorted(wanted)
        size = _in_list_size(len(ordered))
        padded = ordered + [ordered[-1]] * (size - len(ordered))
        params = {f"b_{i}": job_id for i, job_id in enumerate(padded)}
        found.update(dict.fromkeys(((table, job_id) for job_id in ordered), None))
        for row in conn.execute(_select_jobs(table, size), params).mappings():
            found[(table, str(row["id"]))] = _job_from_row(table, row)
    return found


class _Finish:
    """``finish``'s write: its first statement (the guarded update — on PostgreSQL with the
    account's slot freed in it), then ``rest``, which depends on the row that statement
    returned (``None``: it changed nothing). The first statement runs on the driver's cursor
    (``_first_rows``); the group commit runs those of a batch's finishes together, then
    their rests in order.

    On PostgreSQL the first statements of consecutive finishes in one transaction are sent
    in one pipeline (``_first_rows_pipelined``) before their rests run in order: under a
    burst of first webhook deliveries the group commit sent them one after the other, a
    round trip each, and its thread spent half its time waiting for the server. The
    server still runs them in order, so each sees the ones before it (a second finish of
    the same job finds it ended); a rest runs after the later finishes' first statements,
    which only ever touch other rows or find the job already ended."""

    __slots__ = ("first", "params", "rest")

    def __init__(
        self,
        first: Any,
        params: dict[str, Any],
        rest: Callable[[sa.Connection, Mapping[Any, Any] | None], FinishResult | None],
    ) -> None:
        self.first = first
        self.params = params
        self.rest = rest

    def __call__(self, conn: sa.Connection) -> FinishResult | None:
        return self.rest(conn, _first_rows(conn, [self])[0])


def _first_rows(conn: sa.Connection, finishes: list[_Finish]) -> list[Mapping[Any, Any] | None]:
    """The rows the finishes' first statements return, run on the driver's cursor: on
    PostgreSQL in one pipeline, on SQLite one after the other."""
    if conn.dialect.name == "postgresql":
        return _first_rows_pipelined(conn, finishes)
    return _first_rows_on_sqlite(conn, finishes)


def _first_rows_pipelined(
    conn: sa.Connection, finishes: list[_Finish]
) -> list[Mapping[Any, Any] | None]:
    """(PostgreSQL, psycopg.) The rows the finishes' first statements return, the statements
    sent in one pipeline on the transaction's connection. Each is compiled as SQLAlchemy
    would (its bound parameters processed alike) and announced to the engine's cursor hooks
    (the statement count of ``/metrics``, the tests' statement lists)."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursors = []
    with _driver_errors_as_sqlalchemys(conn), raw.pipeline():
        for finish in finishes:
            compiled = _compiled(finish.first, conn.dialect)
            params = _bound(compiled, finish.params)
            cursor = raw.cursor()
            conn.dispatch.before_cursor_execute(conn, cursor, compiled.string, params, None, False)
            cursor.execute(compiled.string, params)
            cursors.append(cursor)
    rows: list[Mapping[Any, Any] | None] = []
    for finish, cursor in zip(finishes, cursors, strict=True):
        with _driver_errors_as_sqlalchemys(conn):
            record = cursor.fetchone()
        rows.append(None if record is None else _row_of(finish.first, conn.dialect, record))
        cursor.close()
    return rows


def _first_rows_on_sqlite(
    conn: sa.Connection, finishes: list[_Finish]
) -> list[Mapping[Any, Any] | None]:
    """(SQLite.) The rows the finishes' first statements return, run one after the other on
    the transaction's DBAPI cursor: each compiled and its parameters processed as SQLAlchemy
    would, its row's values read back as SQLAlchemy would (SQLite keeps datetimes and JSON as
    text), announced to the engine's cursor hooks. SQLAlchemy's execution around each
    statement — its context, result and row objects — cost more than SQLite's own work on
    it (BENCHMARKS.md, item 31)."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    rows: list[Mapping[Any, Any] | None] = []
    try:
        with _driver_errors_as_sqlalchemys(conn):
            for finish in finishes:
                compiled = _compiled(finish.first, conn.dialect)
                params = _bound(compiled, finish.params)
                positional = tuple(params[name] for name in compiled.positiontup)
                conn.dispatch.before_cursor_execute(
                    conn, cursor, compiled.string, positional, None, False
                )
                cursor.execute(compiled.string, positional)
                records = cursor.fetchall()  # RETURNING: one row at most; the statement ends
                rows.append(_row_of(finish.first, conn.dialect, records[0]) if records else None)
    finally:
        cursor.close()
    return rows


@contextlib.contextmanager
def _driver_errors_as_sqlalchemys(conn: sa.Connection) -> Iterator[None]:
    """The driver's errors, raised by statements run on its cursor, as SQLAlchemy raises them
    (``OperationalError``…; a lost connection invalidated): the API answers a database
    failure with 503 whoever ran the statement, not 500 (found in review)."""
    try:
        yield
    except conn.dialect.loaded_dbapi.Error as exc:
        conn._handle_dbapi_exception(exc, None, None, None, None)


def _bound(compiled: Any, given: dict[str, Any]) -> dict[str, Any]:
    """A compiled statement's parameters as SQLAlchemy sends them: ``given`` over the
    statement's own values, each through its type's bind processor."""
    params: dict[str, Any] = compiled.construct_params(given)
    for name, process in compiled._bind_processors.items():
        if name in params:
            params[name] = process(params[name])
    return params


def _row_of(statement: Any, dialect: sa.Dialect, record: Sequence[Any]) -> dict[str, Any]:
    """A row ``statement`` returned, as SQLAlchemy reads it: named after its columns, each
    value through its type's result processor (SQLite keeps datetimes and JSON as text;
    psycopg's values need none)."""
    return {
        name: value if process is None else process(value)
        for name, process, value in zip(
            _returned_names(statement), _result_processors(statement, dialect), record, strict=True
        )
    }


@functools.cache
def _result_processors(statement: Any, dialect: sa.Dialect) -> tuple[Any, ...]:
    """Per column ``statement`` returns, the function that reads its value back (``None``:
    as the driver gives it), as SQLAlchemy's results do."""
    return tuple(
        column.type._cached_result_processor(dialect, None) for column in statement.exported_columns
    )


@functools.cache
def _returned_names(statement: Any) -> tuple[str, ...]:
    """The names of the columns ``statement`` returns, in order: psycopg's
    ``cursor.description`` builds a ``Column`` object per column of every cursor — a tenth of
    the group commit's thread time under a burst of first deliveries (BENCHMARKS.md, item 31)."""
    return tuple(column.name for column in statement.exported_columns)


@functools.cache
def _compiled(statement: Any, dialect: sa.Dialect) -> Any:
    return statement.compile(dialect=dialect)


def _runs_of_one_statement(
    writes: list[Callable[[sa.Connection], Any]],
) -> Iterator[list[Callable[[sa.Connection], Any]]]:
    """``writes`` in order, consecutive :class:`_OneStatement` writes of the same statement
    together, and consecutive :class:`_Finish` writes (every other write alone)."""
    run: list[Callable[[sa.Connection], Any]] = []
    for write in writes:
        last = run[-1] if run else None
        if (
            isinstance(write, _OneStatement)
            and isinstance(last, _OneStatement)
            and write.statement is last.statement
        ) or (isinstance(write, _Finish) and isinstance(last, _Finish)):
            run.append(write)
            continue
        if run:
            yield run
        run = [write]
    if run:
        yield run


#: A webhook event row (its columns given as parameters at each execution).
_WEBHOOK_EVENT = s.webhook_events.insert()
#: A submission's charge: only if the user has the credits.
_CHARGE = (
    s.users.update()
    .where(s.users.c.id == sa.bindparam("b_user"), s.users.c.credits >= sa.bindparam("b_cost"))
    .values(credits=s.users.c.credits - sa.bindparam("b_cost"))
)
#: A user, and an account, by name: a page reads its user's balance when its job ends, and
#: a statement built per call cost 4× the read (its cache key and parameters extracted anew;
#: 8 % of the worker's CPU when 1,000 jobs ended at once, BENCHMARKS.md item 26).
_USER = sa.select(s.users).where(s.users.c.id == sa.bindparam("b_id"))
_ACCOUNT = sa.select(s.runninghub_accounts).where(
    s.runninghub_accounts.c.account_name == sa.bindparam("b_name")
)
#: A ledger row (its columns given as parameters).
_LEDGER_ROW = s.credit_ledger.insert()


@functools.cache
def _job_inserted(table: str) -> Any:
    """A new job's row (its columns given as parameters), returned as written."""
    t = s.job_tables[table]
    return t.insert().returning(*t.c)


def _one_slot_freed(account_name: Any, now: Any) -> Any:
    """The account named by ``account_name`` (a value or an expression) has one slot less in
    use, never below zero."""
    a = s.runninghub_accounts
    return (
        a.update()
        .where(a.c.account_name == account_name, a.c.in_flight > 0)
        .values(in_flight=a.c.in_flight - 1, updated_at=now)
    )


@functools.cache
def _account_slot_freed() -> Any:
    return _one_slot_freed(sa.bindparam("b_account"), sa.bindparam("b_now"))


@functools.cache
def _account_slot_taken() -> Any:
    """One of the account's slots, if it is enabled and has one free."""
    a = s.runninghub_accounts
    return (
        a.update()
        .where(
            a.c.account_name == sa.bindparam("b_account"),
            a.c.enabled.is_(True),
            a.c.in_flight < a.c.max_concurrent,
        )
        .values(in_flight=a.c.in_flight + 1, updated_at=sa.bindparam("b_now"))
    )


@functools.cache
def _job_claimed(table: str) -> Any:
    """A queued job moved to ``starting`` under a new claim, the new row returned."""
    t = s.job_tables[table]
    now = sa.bindparam("b_now", type_=t.c.updated_at.type)
    return (
        t.update()
        .where(_the_job(t, sa.bindparam("b_id"), t.c.status == JobStatus.QUEUED.value))
        .values(
            status=JobStatus.STARTING.value,
            api_account=sa.bindparam("b_account"),
            holds_slot=True,
            started_at=sa.func.coalesce(t.c.started_at, now),
            updated_at=now,
            claim_id=sa.bindparam("b_claim"),
            start_lease_until=sa.bindparam("b_lease_until", type_=t.c.start_lease_until.type),
            error_message=None,  # a requeue's "still in the queue" no longer holds
            next_check_at=sa.bindparam("b_next_check_at", type_=t.c.next_check_at.type),
        )
        .returning(*t.c)
    )


@functools.cache
def _task_id_saved(table: str, fenced: bool) -> Any:
    """RunningHub's task id onto the job (``starting`` becomes ``running``), never over another
    task id; ``fenced``: only under claim ``b_claim`` and not onto a job back in the queue."""
    t = s.job_tables[table]
    task = sa.bindparam("b_task", type_=t.c.task_id.type)
    checks = [sa.or_(t.c.task_id.is_(None), t.c.task_id == task)]
    if fenced:
        checks.append(t.c.claim_id == sa.bindparam("b_claim"))
        checks.append(t.c.status != JobStatus.QUEUED.value)
    return (
        t.update()
        .where(_the_job(t, sa.bindparam("b_id"), *checks))
        .values(
            task_id=task,
            status=sa.case(
                (t.c.status == JobStatus.STARTING.value, JobStatus.RUNNING.value),
                else_=t.c.status,
            ),
            updated_at=sa.bindparam("b_now", type_=t.c.updated_at.type),
        )
        .returning(*t.c)
    )


#: Whether any RunningHub account is enabled.
_ANY_ENABLED = (
    sa.select(s.runninghub_accounts.c.account_name)
    .where(s.runninghub_accounts.c.enabled.is_(True))
    .limit(1)
)
#: Kept old-style webhook events of a task, not applied yet (ids only: almost always none).
_UNMATCHED_IDS = sa.select(s.webhook_events.c.id).where(
    s.webhook_events.c.task_id == sa.bindparam("b_task"),
    s.webhook_events.c.outcome == WebhookOutcome.UNMATCHED.value,
    s.webhook_events.c.applied_at.is_(None),
)


_WRITE_OPTION = "arcano_write"
#: A read of one statement, on SQLite sent without our ``BEGIN`` (see ``_read_in_thread``).
_SINGLE_READ = "arcano_single_read"
#: Threads that run the store's work (group commits, hot reads): its own, not asyncio's
#: default executor. That one is shared with the DNS lookups of every outgoing request
#: (``getaddrinfo``) and other ``to_thread`` work: 1,000 pages asking the size of results on
#: a host that resolved slowly once filled it, and every webhook's finish waited behind them
#: — pages saw their job end 98 s late (``make bench``, target 4). Two: a read never waits
#: behind a group commit, and no more, because every thread contends for the one GIL with the
#: event loop — with six, a first webhook delivery cost 48 context switches and 2.7 ms of CPU
#: (SQLite), and two threads took 25 % more of them a second on SQLite and 35 % more on
#: PostgreSQL, the sweep unchanged (BENCHMARKS.md, item 26).
DB_THREADS = 2
#: PostgreSQL connections of the blocking engine: one per store thread.
THREAD_POOL_SIZE = DB_THREADS
_T = TypeVar("_T")


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; everything we store is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _job_from_row(table: str, row: Mapping[Any, Any]) -> Job:
    inputs = row["inputs"]
    if isinstance(inputs, str):
        inputs = json.loads(inputs)
    return Job(
        id=row["id"],
        table=table,
        user_id=row["user_id"],
        status=JobStatus(row["status"]),
        cost=row["cost"],
        inputs=inputs or {},
        created_at=_aware(row["created_at"]),  # type: ignore[arg-type]
        updated_at=_aware(row["updated_at"]),  # type: ignore[arg-type]
        task_id=row["task_id"],
        api_account=row["api_account"],
        output_url=row["output_url"],
        error_message=row["error_message"],
        started_at=_aware(row["started_at"]),
        completed_at=_aware(row["completed_at"]),
        finished_by=FinishedBy(row["finished_by"]) if row["finished_by"] else None,
        holds_slot=bool(row["holds_slot"]),
        attempts=row["attempts"] or 0,
        start_failures=row["start_failures"] or 0,
        next_attempt_at=_aware(row["next_attempt_at"]),
        next_check_at=_aware(row["next_check_at"]),
        claim_id=row["claim_id"],
        start_lease_until=_aware(row["start_lease_until"]),
        last_upstream_code=row["last_upstream_code"],
        last_upstream_msg=row["last_upstream_msg"],
        upstream_output_url=row["upstream_output_url"],
        output_copy=OutputCopy(row["output_copy"]) if row["output_copy"] else None,
        output_key=row["output_key"],
        output_copy_tries=row["output_copy_tries"] or 0,
        output_copy_due_at=_aware(row["output_copy_due_at"]),
        output_copy_error=row["output_copy_error"],
        output_reported_by=(
            FinishedBy(row["output_reported_by"]) if row["output_reported_by"] else None
        ),
    )


def _account_from_row(row: sa.RowMapping) -> Account:
    return Account(
        name=row["account_name"],
        api_key=row["api_key"],
        max_concurrent=row["max_concurrent"],
        in_flight=row["in_flight"],
        enabled=bool(row["enabled"]),
        disabled_reason=row["disabled_reason"],
    )


def _private_sqlite_file(url: str) -> None:
    """The database holds RunningHub API keys: its file is created owner-only (0600) before
    SQLite opens it (SQLite gives its -wal and -shm the file's mode), and an existing one is
    made so (with its -wal and -shm). Anything the OS refuses is left to SQLite to report."""
    path = sa.make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for name in (path, path + "-wal", path + "-shm"):
        with contextlib.suppress(OSError):
            os.chmod(name, 0o600)


def _tune_sqlite(engine: sa.Engine) -> None:
    """WAL, the busy timeout, foreign keys; and our own ``BEGIN`` (``IMMEDIATE`` to write)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        options = conn.get_execution_options()
        if options.get(_SINGLE_READ):
            return  # one statement read alone: atomic without a transaction
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITE_OPTION) else "BEGIN")


def create_engine(url: str, *, transaction_pooler: bool = False) -> AsyncEngine:
    """An async engine tuned per dialect (see the module docstring). ``transaction_pooler``:
    PostgreSQL is reached through a pooler in transaction mode (Supabase's port 6543,
    PgBouncer), so no server-side prepared statements (:func:`pooled_connect_args`)."""
    if url.startswith("sqlite"):
        _private_sqlite_file(url)
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        _tune_sqlite(engine.sync_engine)
        return engine
    connect_args = pooled_connect_args() if transaction_pooler else {}
    return create_async_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=10, connect_args=connect_args
    )


def pooled_connect_args() -> dict[str, Any]:
    """psycopg's arguments behind a pooler in transaction mode. psycopg 3 prepares a statement
    on the server after it ran ``PREPARE_THRESHOLD`` times on one connection; behind the pooler
    the next transaction may run on another server connection, where that statement does not
    exist (``prepared statement "_pg3_0" does not exist``) or another one of that name does
    (``… already exists``). ``None`` never prepares (the driver here is psycopg, not asyncpg,
    so asyncpg's ``statement_cache_size`` has no part in it)."""
    return {"prepare_threshold": None}


def create_thread_engine(async_url: sa.URL, *, transaction_pooler: bool = False) -> sa.Engine:
    """The blocking engine on the same database, for work run whole in a worker thread (the
    hot paths' reads and group commits): one thread hop per unit of work instead of several
    per statement through aiosqlite (see BENCHMARKS.md). Behind a transaction pooler it
    prepares nothing on the server either (:func:`pooled_connect_args`)."""
    if async_url.get_backend_name() == "sqlite":
        engine = sa.create_engine(
            async_url.set(drivername="sqlite"),
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
        )
        _tune_sqlite(engine)
        return engine
    return sa.create_engine(
        async_url,
        pool_pre_ping=True,
        pool_size=THREAD_POOL_SIZE,
        max_overflow=THREAD_POOL_SIZE,
        connect_args=pooled_connect_args() if transaction_pooler else {},
    )


class JobStore:
    """Jobs, users, credits, accounts and webhook events over one SQLAlchemy engine."""

    def __init__(
        self, engine: AsyncEngine, *, clock: Clock = utcnow, transaction_pooler: bool = False
    ) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        #: Time of every timestamp the store writes (injectable, like the services' clock).
        self.clock = clock
        #: The group-commit writer and (SQLite) the write lock, of the loop that uses them.
        self._group: GroupCommit | None = None
        #: The one-statement reads of that loop, run in turns the same way (no transaction).
        self._reads: GroupCommit | None = None
        #: The same database through a blocking driver, for work done whole in a thread.
        self._thread_engine = create_thread_engine(
            engine.url, transaction_pooler=transaction_pooler
        )
        self._write_lock: asyncio.Lock | None = None
        self._write_lock_loop: asyncio.AbstractEventLoop | None = None
        self._db_threads = ThreadPoolExecutor(DB_THREADS, thread_name_prefix="arcano-db")

    @property
    def sync_engines(self) -> list[sa.Engine]:
        """Every engine that sends statements (the async one's and the worker-thread one)."""
        return [self.engine.sync_engine, self._thread_engine]

    @classmethod
    def from_url(
        cls, url: str, *, clock: Clock = utcnow, transaction_pooler: bool = False
    ) -> JobStore:
        return cls(
            create_engine(url, transaction_pooler=transaction_pooler),
            clock=clock,
            transaction_pooler=transaction_pooler,
        )

    async def migrate(self) -> list[int]:
        """Apply pending migrations; returns the versions applied now."""
        async with self._write() as conn:
            return await run_migrations(conn)

    async def close(self) -> None:
        for group in (self._group, self._reads):
            if group is not None and group.loop is asyncio.get_running_loop():
                await group.idle()
        await self.engine.dispose()
        await self._in_thread(self._thread_engine.dispose)
        self._db_threads.shutdown(wait=False)

    async def _in_thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(*args)`` on the store's own threads (``DB_THREADS``)."""
        return await asyncio.get_running_loop().run_in_executor(self._db_threads, fn, *args)

    # --- transactions ---------------------------------------------------------------------

    def _sqlite_write_lock(self) -> asyncio.Lock | None:
        """SQLite has one write lock per file: this process's writers take turns for it here
        (an asyncio lock costs nothing; SQLite's busy handler sleeps up to 100 ms a try)."""
        if self.dialect != "sqlite":
            return None
        loop = asyncio.get_running_loop()
        if self._write_lock is None or self._write_lock_loop is not loop:
            self._write_lock, self._write_lock_loop = asyncio.Lock(), loop
        return self._write_lock

    @asynccontextmanager
    async def _write_turn(self) -> AsyncIterator[None]:
        """This process's turn to write (SQLite: one writer at a time; PostgreSQL: at once)."""
        lock = self._sqlite_write_lock()
        if lock is None:
            yield
            return
        async with lock:
            yield

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        async with self._write_turn(), self.engine.connect() as conn:
            await conn.execution_options(**{_WRITE_OPTION: True})
            async with conn.begin():
                yield conn

    def _write_in_thread(self, writes: list[Callable[[sa.Connection], Any]]) -> list[Any]:
        """(In a worker thread.) Run ``writes`` in order in one transaction; their results.
        Consecutive :class:`_OneStatement` writes of the same statement run as one
        ``executemany``."""
        with self._thread_engine.connect() as conn:
            conn = conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                results: list[Any] = []
                for run in _runs_of_one_statement(writes):
                    if isinstance(run[0], _Finish):
                        finishes = cast(list[_Finish], run)
                        rows = _first_rows(conn, finishes)
                        results += [
                            f.rest(conn, row) for f, row in zip(finishes, rows, strict=True)
                        ]
                    elif len(run) == 1:
                        results.append(run[0](conn))
                    else:
                        batch = cast(list[_OneStatement], run)
                        conn.execute(batch[0].statement, [w.params for w in batch])
                        results += [None] * len(batch)
                return results

    async def _grouped(self, write: Callable[[sa.Connection], _T]) -> _T:
        """Run ``write`` (blocking statements on a connection) in the transaction of the
        process's next group commit."""
        loop = asyncio.get_running_loop()
        if self._group is None or self._group.loop is not loop:
            self._group = GroupCommit(self._write_in_thread, self._write_turn, self._in_thread)
        return await self._group.run(write)

    def _without_transaction(self, conn: sa.Connection) -> sa.Connection:
        """``conn`` for reads of one statement each: atomic on their own, so no BEGIN and
        COMMIT (round trips on PostgreSQL; on SQLite two more statements, 3 % of a first
        webhook delivery). SQLite's connections are in autocommit already (``_tune_sqlite``):
        only our BEGIN is left out — its driver-level AUTOCOMMIT would leave them in pysqlite's
        implicit-transaction mode afterwards."""
        if self.dialect == "postgresql":
            return conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn.execution_options(**{_SINGLE_READ: True})

    def _reads_in_thread(self, reads: list[Callable[[sa.Connection], Any]]) -> list[Any]:
        """(In a worker thread.) One-statement reads one after the other on one connection;
        their results."""
        with self._thread_engine.connect() as conn:
            conn = self._without_transaction(conn)
            together = _read_jobs_together(conn, reads)
            return [
                together[(read.table, read.job_id)]
                if isinstance(read, _JobRead) and (read.table, read.job_id) in together
                else read(conn)
                for read in reads
            ]

    def _snapshot_read_in_thread(self, read: Callable[[sa.Connection], _T]) -> _T:
        with self._thread_engine.connect() as conn, conn.begin():
            return read(conn)

    async def _thread_read(
        self,
        read: Callable[[sa.Connection], _T],
        *,
        one_statement: bool = True,
        quick: bool = True,
    ) -> _T:
        """A hot path's read, done whole in a worker thread (see create_thread_engine);
        several statements see one snapshot (``one_statement=False``).

        One-statement reads take turns like the group commit's writes: those that arrive
        while a batch of them is in the thread run together in the next one, on one
        connection. Under a webhook burst each read was a hand-off to a thread and back and a
        connection checked out and in, each costing more than the read itself. A read that
        may take long (``quick=False``: a sort over many rows) runs alone instead, so it never
        holds up the others' batch (a webhook's read waited 0.8 s behind one, in review)."""
        if not one_statement:
            return await self._in_thread(self._snapshot_read_in_thread, read)
        if not quick:
            (alone,) = await self._in_thread(self._reads_in_thread, [read])
            return cast(_T, alone)
        loop = asyncio.get_running_loop()
        if self._reads is None or self._reads.loop is not loop:
            self._reads = GroupCommit(
                self._reads_in_thread,
                contextlib.nullcontext,
                self._in_thread,
                name="reads",
                outcome_awaited=False,
            )
        return await self._reads.run(read)

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    def _insert(self, table: sa.Table) -> Any:
        return (pg_insert if self.dialect == "postgresql" else sqlite_insert)(table)

    # --- users and credits -------------------------------------------------------------------

    async def ensure_user(
        self, user_id: str, *, credits: int, anonymous: bool = False, admin: bool = False
    ) -> User:
        """Create the user with a starting grant if new; return it either way."""
        now = self.clock()
        async with self._write() as conn:
            res = await conn.execute(
                self._insert(s.users)
                .values(
                    id=user_id,
                    credits=credits,
                    is_admin=admin,
                    is_anonymous=anonymous,
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=["id"])
                .returning(s.users.c.id)
            )
            # RETURNING, not rowcount: psycopg reports no rowcount for ON CONFLICT inserts
            if res.first() is not None and credits:
                await conn.execute(
                    s.credit_ledger.insert().values(
                        user_id=user_id, amount=credits, kind=LedgerKind.GRANT.value, created_at=now
                    )
                )
            if admin:
                await conn.execute(
                    s.users.update().where(s.users.c.id == user_id).values(is_admin=True)
                )
            row = (
                (await conn.execute(sa.select(s.users).where(s.users.c.id == user_id)))
                .mappings()
                .one()
            )
        return _user_from_row(row)

    async def get_user(self, user_id: str) -> User | None:
        params = {"b_id": user_id}
        row = await self._thread_read(lambda conn: conn.execute(_USER, params).mappings().first())
        return _user_from_row(row) if row else None

    async def ledger(self, user_id: str) -> list[dict[str, Any]]:
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    sa.select(s.credit_ledger)
                    .where(s.credit_ledger.c.user_id == user_id)
                    .order_by(s.credit_ledger.c.id)
                )
            ).mappings()
            return [dict(r) for r in rows]

    # --- jobs ---------------------------------------------------------------------------------

    async def create_job(self, new: NewJob) -> Job:
        """Charge the credits and write the job as ``queued``, in one transaction."""
        now = self.clock()
        charge = {"b_user": new.user_id, "b_cost": new.cost}
        row = {
            "id": new.id,
            "user_id": new.user_id,
            "status": JobStatus.QUEUED.value,
            "cost": new.cost,
            "inputs": new.inputs,
            "created_at": now,
            "updated_at": now,
            "holds_slot": False,
            "attempts": 0,
            "check_count": 0,
        }
        ledger = {
            "user_id": new.user_id,
            "amount": -new.cost,
            "kind": LedgerKind.CHARGE.value,
            "job_table": new.table,
            "job_id": new.id,
            "created_at": now,
        }
        insert = _job_inserted(new.table)

        def write(conn: sa.Connection) -> Job | None:
            if conn.execute(_CHARGE, charge).rowcount != 1:
                return None  # raised below: an expected answer must not undo the others' batch
            created = conn.execute(insert, row).mappings().one()
            conn.execute(_LEDGER_ROW, ledger)
            return _job_from_row(new.table, created)

        job = await self._grouped(write)
        if job is None:
            raise InsufficientCredits()
        return job

    async def _get_job(self, conn: AsyncConnection, table: str, job_id: str) -> Job | None:
        t = s.job_tables[table]
        row = (await conn.execute(sa.select(t).where(t.c.id == job_id))).mappings().first()
        return _job_from_row(table, row) if row else None

    def _get_job_sync(self, conn: sa.Connection, table: str, job_id: str) -> Job | None:
        return _JobRead(table, job_id)(conn)

    async def get_job(self, table: str, job_id: str) -> Job | None:
        return cast(Job | None, await self._thread_read(_JobRead(table, job_id)))

    async def find_job_by_task_id(self, task_id: str) -> Job | None:
        async with self._read() as conn:
            for table, t in s.job_tables.items():
                row = (
                    (await conn.execute(sa.select(t).where(t.c.task_id == task_id)))
                    .mappings()
                    .first()
                )
                if row:
                    return _job_from_row(table, row)
        return None

    async def list_user_jobs(self, user_id: str, limit: int = 50) -> list[Job]:
        """The user's jobs across the four tables, newest first."""
        jobs: list[Job] = []
        async with self._read() as conn:
            for table, t in s.job_tables.items():
                rows = await conn.execute(
                    sa.select(t)
                    .where(t.c.user_id == user_id)
                    .order_by(t.c.created_at.desc())
                    .limit(limit)
                )
                jobs.extend(_job_from_row(table, r) for r in rows.mappings())
        jobs.sort(key=lambda j: j.created_at, reverse=True)
        return jobs[:limit]

    async def active_job_of_user(self, user_id: str, table: str) -> Job | None:
        """The user's newest active job of one tool, however many jobs they have."""
        t = s.job_tables[table]
        async with self._read() as conn:
            row = (
                (
                    await conn.execute(
                        sa.select(t)
                        .where(t.c.user_id == user_id, _active(t.c.status))
                        .order_by(t.c.created_at.desc())
                        .limit(1)
                    )
                )
                .mappings()
                .first()
            )
        return _job_from_row(table, row) if row else None

    async def active_jobs(
        self, *, older_than: datetime | None = None, limit: int = 500
    ) -> list[Job]:
        """Active jobs (oldest first), optionally only those started before ``older_than``."""
        jobs: list[Job] = []
        async with self._read() as conn:
            for table, t in s.job_tables.items():
                q = sa.select(t).where(_active(t.c.status))
                if older_than is not None:
                    q = q.where(sa.func.coalesce(t.c.started_at, t.c.created_at) <= older_than)
                rows = await conn.execute(q.order_by(t.c.created_at).limit(limit))
                jobs.extend(_job_from_row(table, r) for r in rows.mappings())
        jobs.sort(key=lambda j: j.created_at)
        return jobs[:limit]

    async def active_summary(self) -> ActiveSummary:
        """One statement: each tool's count and oldest submission, added up by the database."""
        columns = [
            sa.select(aggregate).where(_active(t.c.status)).scalar_subquery()
            for t in s.job_tables.values()
            for aggregate in (sa.func.count(), sa.func.min(t.c.created_at))
        ]
        async with self._read() as conn:
            rows = (await conn.execute(sa.select(*columns))).one()
        oldest = [when for o in rows[1::2] if (when := _aware(o)) is not None]
        return ActiveSummary(sum(rows[0::2]), min(oldest, default=None))

    async def queued_jobs_due(self, now: datetime, limit: int = 50) -> list[Job]:
        """Queued jobs whose retry time has come, in the order they were submitted."""

        def read(conn: sa.Connection) -> list[Job]:
            jobs: list[Job] = []
            for table, t in s.job_tables.items():
                rows = conn.execute(
                    sa.select(t)
                    .where(
                        t.c.status == JobStatus.QUEUED.value,
                        sa.or_(t.c.next_attempt_at.is_(None), t.c.next_attempt_at <= now),
                    )
                    .order_by(t.c.created_at)
                    .limit(limit)
                )
                jobs.extend(_job_from_row(table, r) for r in rows.mappings())
            return jobs

        # the dispatcher asks this after every submission and every finish: one hand-off
        jobs = await self._thread_read(read, one_statement=False)
        jobs.sort(key=lambda j: j.created_at)
        return jobs[:limit]

    async def queue_position(self, job: Job) -> int:
        """1-based position of a queued job among all queued jobs (0 when not queued).

        One statement: the queued jobs created before this one, counted in every tool's table
        and added up by the database (a page following a queued job asks this each step)."""
        if job.status is not JobStatus.QUEUED:
            return 0
        counts = [
            sa.select(sa.func.count())
            .select_from(t)
            .where(t.c.status == JobStatus.QUEUED.value, t.c.created_at < job.created_at)
            .scalar_subquery()
            for t in s.job_tables.values()
        ]
        async with self._read() as conn:
            ahead = (await conn.execute(sa.select(sum(counts[1:], counts[0])))).scalar_one()
        return int(ahead) + 1

    async def recent_durations(self, table: str, limit: int = 200) -> list[float]:
        """Seconds from start to completion of the table's last completed jobs."""
        t = s.job_tables[table]
        query = (
            sa.select(t.c.created_at, t.c.started_at, t.c.completed_at)
            .where(t.c.status == JobStatus.COMPLETED.value, t.c.completed_at.is_not(None))
            .order_by(t.c.completed_at.desc())
            .limit(limit)
        )
        rows = await self._thread_read(lambda conn: list(conn.execute(query).all()), quick=False)
        out = []
        for created, started, completed in rows:
            begin, end = _aware(started or created), _aware(completed)
            if begin is not None and end is not None:
                out.append(max(0.0, (end - begin).total_seconds()))
        return out

    async def claim_slot(
        self,
        job: Job,
        account_name: str,
        *,
        first_check_in: timedelta | None = None,
        start_lease_for: timedelta | None = None,
    ) -> Job | None:
        """Move a queued job to ``starting`` holding one of the account's slots, atomically.

        Returns ``None`` when the account is full or the job is no longer queued (another
        dispatcher took it): nothing changes. Written in the process's group commit (the
        dispatcher claims one job after another; each claim was its own transaction of five
        statements handed one by one to aiosqlite's thread — BENCHMARKS.md, item 19).
        """
        now = self.clock()
        table = job.table
        params = {
            "b_id": job.id,
            "b_account": account_name,
            "b_now": now,
            "b_claim": uuid.uuid4().hex,
            "b_lease_until": now + start_lease_for if start_lease_for is not None else None,
            "b_next_check_at": now + first_check_in if first_check_in is not None else None,
        }

        def write(conn: sa.Connection) -> Job | None:
            if conn.execute(_account_slot_taken(), params).rowcount != 1:
                return None
            row = conn.execute(_job_claimed(table), params).mappings().first()
            if row is None:
                # taken by another dispatcher meanwhile: the slot taken above goes back in the
                # same transaction (no exception: it would undo the others' writes of the batch)
                self._release_slot_sync(conn, account_name)
                return None
            return _job_from_row(table, row)

        return await self._grouped(write)

    async def renew_start_lease(self, job: Job, *, until: datetime) -> bool:
        """The starting process is alive: extend its lease, only under its own claim."""
        t = s.job_tables[job.table]
        async with self._write() as conn:
            res = await conn.execute(
                t.update()
                .where(
                    _the_job(
                        t,
                        job.id,
                        t.c.status == JobStatus.STARTING.value,
                        t.c.claim_id == job.claim_id,
                        t.c.task_id.is_(None),
                    )
                )
                .values(start_lease_until=until)
            )
            return res.rowcount == 1

    async def requeue(
        self, job: Job, *, retry_at: datetime, reason: str, failed: bool = False
    ) -> bool:
        """Give the slot back and put a ``starting`` job back in the queue.

        ``failed`` marks a start that failed (network, 5xx, interrupted) rather than one
        RunningHub turned away because it was busy (421/415): only those count towards
        giving up.

        Only the start that holds the current claim may do this: a start that lost its claim
        (the server watchdog requeued it and it was dispatched again) changes nothing.
        """
        t = s.job_tables[job.table]
        async with self._write() as conn:
            res = await conn.execute(
                t.update()
                .where(
                    _the_job(
                        t,
                        job.id,
                        t.c.status == JobStatus.STARTING.value,
                        t.c.claim_id == job.claim_id,
                    )
                )
                .values(
                    status=JobStatus.QUEUED.value,
                    holds_slot=False,
                    attempts=t.c.attempts + 1,
                    start_failures=t.c.start_failures + (1 if failed else 0),
                    next_attempt_at=retry_at,
                    error_message=reason,
                    start_lease_until=None,
                    updated_at=self.clock(),
                )
            )
            if res.rowcount == 1 and job.api_account:
                await self._release_slot(conn, job.api_account)
            return res.rowcount == 1

    async def save_task_id(
        self, table: str, job_id: str, task_id: str, *, claim_id: str | None = None
    ) -> Job | None:
        """Store RunningHub's task id; a ``starting`` job becomes ``running``.

        Never overwrites a different task id and never touches a terminal status: an early
        webhook may already have finished the job (and stored this same id). With
        ``claim_id`` (the dispatcher's own save) only the current claim may save, and not onto
        a job put back in the queue (its claim was given up): the caller sees a different
        ``task_id`` on the returned job when its claim was lost. In the group commit, the row
        returned by the update (read only when the update changed nothing).
        """
        params = {"b_id": job_id, "b_task": task_id, "b_claim": claim_id, "b_now": self.clock()}
        saved = _task_id_saved(table, claim_id is not None)

        def write(conn: sa.Connection) -> Job | None:
            row = conn.execute(saved, params).mappings().first()
            if row is None:
                return self._get_job_sync(conn, table, job_id)
            return _job_from_row(table, row)

        return await self._grouped(write)

    async def finish(self, table: str, job_id: str, req: FinishRequest) -> FinishResult | None:
        """The one terminal transition, shared by every path (webhook, sync, watchdogs, cancel).

        One transaction: the guarded status update; if it changed the row, the account slot is
        released and, for failed/cancelled, the credits are refunded through a ledger row the
        database allows only once. Returns ``None`` if the job does not exist.
        """
        if not req.status.is_terminal:
            raise ValueError(f"finish needs a terminal status, got {req.status}")
        now = self.clock()
        params: dict[str, Any] = {
            "b_id": job_id,
            "b_status": req.status.value,
            "b_completed_at": now,
            "b_updated_at": now,
            "b_finished_by": req.finished_by.value,
            "b_error_message": req.error_message,
            "b_lease_owner": None,
            "b_lease_until": None,
            "b_next_check_at": None,
        }
        if req.output_url is not None:
            params["b_output_url"] = req.output_url
        of_task = req.task_id is not None
        if of_task:
            params["b_task"] = req.task_id
        with_output = req.output_url is not None
        holding, any_active = (
            _guarded_finish(table, with_output, h, of_task) for h in (True, False)
        )
        slot_freed_with_it = self.dialect == "postgresql"
        if slot_freed_with_it:
            holding = _finish_freeing_slot_pg(table, with_output, of_task)

        def rest(conn: sa.Connection, row: Mapping[Any, Any] | None) -> FinishResult | None:
            # the usual job holds its slot: finished and the slot flag cleared in one
            # statement (``holding``, run before this), then the account's count (on
            # PostgreSQL in the same statement); a job that holds none (still queued) misses
            # it and is finished by the second
            if row is not None:
                job = _job_from_row(table, row)
                if not slot_freed_with_it:
                    assert job.api_account is not None  # the statement's guard
                    self._release_slot_sync(conn, job.api_account)
            elif (row := conn.execute(any_active, params).mappings().first()) is not None:
                job = _job_from_row(table, row)
                if job.holds_slot and job.api_account:
                    # PostgreSQL: a claim committed between the two statements (the first
                    # saw the job queued, this one waited for the claim's lock and re-checked
                    # the claimed row): its slot is given back here, as a finish always did
                    self._release_slot_sync(conn, job.api_account)
                    conn.execute(_slot_given_back(table), {"b_id": job_id})
                    job = dataclasses.replace(job, holds_slot=False)
            else:  # ended before, another task's (``of_task``), or no such job: a read
                as_is = self._get_job_sync(conn, table, job_id)
                return None if as_is is None else FinishResult(changed=False, job=as_is)
            refunded = False
            if req.status in REFUND_STATUSES:
                refunded = self._refund_sync(conn, job, now)
            return FinishResult(changed=True, job=job, refunded=refunded)

        return await self._grouped(_Finish(holding, params, rest))

    async def _release_slot(self, conn: AsyncConnection, account_name: str) -> None:
        await conn.execute(
            _account_slot_freed(), {"b_account": account_name, "b_now": self.clock()}
        )

    def _release_slot_sync(self, conn: sa.Connection, account_name: str) -> None:
        conn.execute(_account_slot_freed(), {"b_account": account_name, "b_now": self.clock()})

    def _refund_stmts(self, job: Job, now: datetime) -> tuple[Any, Any]:
        """The refund's ledger row (at most one per job, the database sees to it) and, if that
        row was written, the credit."""
        ledger_row = (
            self._insert(s.credit_ledger)
            .values(
                user_id=job.user_id,
                amount=job.cost,
                kind=LedgerKind.REFUND.value,
                job_table=job.table,
                job_id=job.id,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["job_table", "job_id", "kind"])
            .returning(s.credit_ledger.c.id)
        )
        credit = (
            s.users.update()
            .where(s.users.c.id == job.user_id)
            .values(credits=s.users.c.credits + job.cost)
        )
        return ledger_row, credit

    async def _refund(self, conn: AsyncConnection, job: Job, now: datetime) -> bool:
        ledger_row, credit = self._refund_stmts(job, now)
        if (await conn.execute(ledger_row)).first() is None:
            return False
        await conn.execute(credit)
        return True

    def _refund_sync(self, conn: sa.Connection, job: Job, now: datetime) -> bool:
        ledger_row, credit = self._refund_stmts(job, now)
        if conn.execute(ledger_row).first() is None:
            return False
        conn.execute(credit)
        return True

    # --- results that last ----------------------------------------------------------------------

    async def begin_output_copy(
        self,
        table: str,
        job_id: str,
        *,
        upstream_url: str,
        reported_by: FinishedBy,
        due_at: datetime,
    ) -> FinishResult | None:
        """Keep RunningHub's URL and mark the copy due, giving the account slot back — one
        conditional update (active, no copy yet), so one caller begins it."""
        now = self.clock()
        t = s.job_tables[table]
        async with self._write() as conn:
            res = await conn.execute(
                t.update()
                .where(_the_job(t, job_id, _active(t.c.status), t.c.output_copy.is_(None)))
                .values(
                    upstream_output_url=upstream_url,
                    output_copy=OutputCopy.SAVING.value,
                    output_copy_tries=0,
                    output_copy_due_at=due_at,
                    output_reported_by=reported_by.value,
                    next_check_at=due_at + OUTPUT_COPY_CHECK_PAUSE,
                    updated_at=now,
                )
            )
            job = await self._get_job(conn, table, job_id)
            if job is None:
                return None
            if res.rowcount != 1:
                return FinishResult(changed=False, job=job)
            if job.holds_slot and job.api_account:
                await self._release_slot(conn, job.api_account)
                await conn.execute(t.update().where(t.c.id == job_id).values(holds_slot=False))
                job = await self._get_job(conn, table, job_id)
                assert job is not None
            return FinishResult(changed=True, job=job)

    async def lease_output_copies(
        self, *, now: datetime, lease_for: timedelta, limit: int
    ) -> list[Job]:
        leased: list[Job] = []
        for table, t in s.job_tables.items():
            due = sa.and_(
                t.c.output_copy.is_not(None),
                _active(t.c.status),
                t.c.output_copy_due_at <= now,
            )
            q = sa.select(t.c.id).where(due).order_by(t.c.output_copy_due_at).limit(limit)
            async with self._read() as conn:  # every process sweeps each second: read first
                if (await conn.execute(q.limit(1))).first() is None:
                    continue
            if self.dialect == "postgresql":
                q = q.with_for_update(skip_locked=True)
            async with self._write() as conn:
                ids = [r[0] for r in await conn.execute(q)]
                if not ids:
                    continue
                # the same condition again: on SQLite the write lock makes it exact, on
                # PostgreSQL the rows are locked; either way one copier takes a job
                taken = await conn.execute(
                    t.update()
                    .where(t.c.id.in_(ids), _checked_on_the_row([due]))
                    .values(output_copy_due_at=now + lease_for)
                    .returning(t.c.id)
                )
                got = [r[0] for r in taken]
                rows = await conn.execute(sa.select(t).where(t.c.id.in_(got)))
                leased += [_job_from_row(table, r) for r in rows.mappings()]
        return leased

    async def record_output_copy(
        self,
        table: str,
        job_id: str,
        *,
        state: OutputCopy,
        tries: int,
        due_at: datetime | None = None,
        error: str | None = None,
        output_key: str | None = None,
    ) -> bool:
        t = s.job_tables[table]
        values: dict[str, Any] = {
            "output_copy": state.value,
            "output_copy_tries": tries,
            "output_copy_due_at": due_at,
            "output_copy_error": error[:500] if error else None,
            "updated_at": self.clock(),
        }
        if output_key is not None:
            values["output_key"] = output_key
        async with self._write() as conn:
            res = await conn.execute(
                t.update()
                .where(_the_job(t, job_id, _active(t.c.status), t.c.output_copy.is_not(None)))
                .values(**values)
            )
            return res.rowcount == 1

    # --- the shared upstream schedule ----------------------------------------------------------

    async def reserve_check(
        self, table: str, job_id: str, *, now: datetime, next_check_at: datetime
    ) -> bool:
        """Take the right to ask RunningHub about this job now; False if it is not due yet.

        Every caller (page watchdogs, the sync endpoint, the server watchdog) goes through this
        conditional update, so concurrent callers cause one upstream call per interval.
        """
        stmt = _check_reserved(table)
        params = {"b_id": job_id, "b_now": now, "b_next": next_check_at}

        def write(conn: sa.Connection) -> bool:
            return conn.execute(stmt, params).rowcount == 1

        return await self._grouped(write)

    async def record_check_result(
        self,
        table: str,
        job_id: str,
        code: int,
        msg: str,
        *,
        lease_owner: str | None = None,
        next_check_at: datetime | None = None,
    ) -> None:
        """Remember RunningHub's last answer, for syncs that arrive before the next check;
        with ``lease_owner``, that owner's lease on the job ends in the same statement; with
        ``next_check_at``, the job's next check moves there."""
        stmt = _check_result(table, lease_owner is not None)
        params = {
            "b_id": job_id,
            "b_code": code,
            "b_msg": msg[:500],
            "b_owner": lease_owner,
            "b_next": next_check_at,
        }
        await self._grouped(_OneStatement(stmt, params))

    async def lease_due_jobs(
        self,
        *,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        started_before: datetime,
        deadline_before: datetime,
        limit: int,
        overdue_only: bool = False,
        reserve_until: datetime | None = None,
    ) -> list[Job]:
        """Lease to ``owner`` up to ``limit`` jobs per table that need the server watchdog.

        That is: active, older than the initial delay, check due, and either known upstream
        (a task id) or past the deadline — a queue backlog of jobs RunningHub has not seen
        never crowds out the running ones, and a start in flight (no task id yet) is left to
        :meth:`lease_stalled_starts`, whose lease a check's would block. Slot holders first.
        A job leased by a crashed process becomes available again when its lease expires —
        or at once when it is past its deadline: a lease is no reason to let a dead process
        hold the deadline back (the finish is guarded, so a second checker costs one call).
        Never again to the owner that holds it: its check is still in flight there.
        ``overdue_only``: the jobs past their deadline alone (a watchdog with no room for
        more checks still keeps the deadline). ``reserve_until``: the due ones are reserved
        too, in the same statement (:meth:`reserve_check`'s write, one per check saved).
        """
        leases: list[tuple[str, Any]] = []
        for table, t in s.job_tables.items():
            clock_start = sa.func.coalesce(t.c.started_at, t.c.created_at)
            # Job.deadline_from; a job saving its result is RunningHub's success, no deadline
            overdue = sa.and_(t.c.created_at <= deadline_before, t.c.output_copy.is_(None))
            free = sa.or_(
                t.c.lease_until.is_(None),
                t.c.lease_until <= now,
                sa.and_(overdue, t.c.lease_owner != owner),
            )
            q = (
                sa.select(t.c.id)
                .where(
                    _active(t.c.status),
                    overdue if overdue_only else sa.true(),
                    sa.or_(clock_start <= started_before, overdue),
                    sa.or_(t.c.next_check_at.is_(None), t.c.next_check_at <= now, overdue),
                    free,
                    sa.or_(t.c.task_id.is_not(None), overdue),
                )
                # created_at first is overdue first: the deadline is the promise to keep
                .order_by(t.c.created_at, t.c.holds_slot.desc())
                .limit(limit)
            )
            reserve: dict[str, Any] = {}
            if reserve_until is not None:
                due = sa.or_(t.c.next_check_at.is_(None), t.c.next_check_at <= now)
                reserve = {
                    "last_checked_at": sa.case((due, now), else_=t.c.last_checked_at),
                    "next_check_at": sa.case((due, reserve_until), else_=t.c.next_check_at),
                    "check_count": t.c.check_count + sa.case((due, 1), else_=0),
                }
            leases.append(self._lease_stmt(table, q, free, owner, now + lease_for, reserve))
        return await self._take_leases(leases)

    async def release_lease(self, table: str, job_id: str, owner: str) -> None:
        stmt = _lease_released(table)
        params = {"b_id": job_id, "b_owner": owner}

        def write(conn: sa.Connection) -> None:
            conn.execute(stmt, params)

        await self._grouped(write)

    async def lease_stalled_starts(
        self,
        *,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        legacy_before: datetime,
        limit: int,
    ) -> list[Job]:
        """Lease to ``owner`` the ``starting`` jobs with no task id whose starting process is
        gone: start lease expired, or none and untouched since ``legacy_before`` (a start by a
        version without start leases). Same leases as :meth:`lease_due_jobs`, so one process
        recovers a job at a time (``FOR UPDATE SKIP LOCKED`` on PostgreSQL)."""
        leases: list[tuple[str, Any]] = []
        for table, t in s.job_tables.items():
            free = sa.or_(t.c.lease_until.is_(None), t.c.lease_until <= now)
            q = (
                sa.select(t.c.id)
                .where(
                    t.c.status == JobStatus.STARTING.value,
                    t.c.task_id.is_(None),
                    sa.or_(
                        t.c.start_lease_until <= now,
                        sa.and_(t.c.start_lease_until.is_(None), t.c.updated_at <= legacy_before),
                    ),
                    free,
                )
                .order_by(t.c.created_at)
                .limit(limit)
            )
            leases.append(self._lease_stmt(table, q, free, owner, now + lease_for))
        return await self._take_leases(leases)

    def _lease_stmt(
        self,
        table: str,
        ids_query: Any,
        free: Any,
        owner: str,
        until: datetime,
        also: dict[str, Any] | None = None,
    ) -> tuple[str, Any]:
        """Lease to ``owner`` the jobs ``ids_query`` selects whose lease is ``free``, in one
        statement (``UPDATE … WHERE id IN (…) RETURNING``; on PostgreSQL rows another process
        is leasing are skipped, ``FOR UPDATE SKIP LOCKED``). ``also``: more columns set."""
        t = s.job_tables[table]
        if self.dialect == "postgresql":
            ids_query = ids_query.with_for_update(skip_locked=True)
        stmt = (
            t.update()
            .where(t.c.id.in_(ids_query), free)
            .values(lease_owner=owner, lease_until=until, **(also or {}))
            .returning(*t.c)
        )
        return table, stmt

    async def _take_leases(self, leases: list[tuple[str, Any]]) -> list[Job]:
        """Run the lease statements of every table in one transaction (the group commit's):
        a sweep of 10,000 jobs leases them 50 at a time, and a connection, a transaction and
        three statements per table and lease (8–20 ms each on a busy machine) were most of
        its time. Returns the jobs leased, oldest first."""

        def write(conn: sa.Connection) -> list[Job]:
            return [
                _job_from_row(table, row)
                for table, stmt in leases
                for row in conn.execute(stmt).mappings()
            ]

        jobs = await self._grouped(write)
        jobs.sort(key=lambda job: (job.created_at, not job.holds_slot))
        return jobs

    # --- accounts ------------------------------------------------------------------------------

    async def upsert_account(self, name: str, api_key: str, max_concurrent: int) -> None:
        """Create or update an account's key and cap, enabled (its in-flight count is kept)."""
        a = s.runninghub_accounts
        now = self.clock()
        async with self._write() as conn:
            await conn.execute(
                self._insert(a)
                .values(
                    account_name=name,
                    api_key=api_key,
                    max_concurrent=max_concurrent,
                    in_flight=0,
                    enabled=True,
                    updated_at=now,
                )
                .on_conflict_do_update(
                    index_elements=["account_name"],
                    # the configuration at start-up is the operator's word: a key disabled
                    # after RunningHub refused it is enabled again (fixed, or to be re-tried)
                    set_={
                        "api_key": api_key,
                        "max_concurrent": max_concurrent,
                        "enabled": True,
                        "disabled_reason": None,
                        "updated_at": now,
                    },
                )
            )

    async def get_account(self, name: str) -> Account | None:
        params = {"b_name": name}
        row = await self._thread_read(
            lambda conn: conn.execute(_ACCOUNT, params).mappings().first()
        )
        return _account_from_row(row) if row else None

    async def accounts_with_free_slots(self) -> list[Account]:
        a = s.runninghub_accounts
        query = (
            sa.select(a)
            .where(a.c.enabled.is_(True), a.c.in_flight < a.c.max_concurrent)
            .order_by(a.c.in_flight, a.c.account_name)
        )
        rows = await self._thread_read(lambda conn: list(conn.execute(query).mappings()))
        return [_account_from_row(r) for r in rows]

    async def has_enabled_account(self) -> bool:
        """(Asked by every dispatch that finds queued jobs: one hand-off, a statement built once.)"""
        return await self._thread_read(lambda conn: conn.execute(_ANY_ENABLED).first() is not None)

    async def disable_account(self, name: str, reason: str) -> None:
        a = s.runninghub_accounts
        async with self._write() as conn:
            await conn.execute(
                a.update()
                .where(a.c.account_name == name)
                .values(enabled=False, disabled_reason=reason, updated_at=self.clock())
            )

    # --- webhook events and upstream errors --------------------------------------------------

    async def record_webhook(self, record: WebhookRecord) -> None:
        row = s.webhook_event_row(record)

        def write(conn: sa.Connection) -> None:
            conn.execute(_WEBHOOK_EVENT, row)  # one row: not an executemany

        await self._grouped(write)

    async def record_webhooks(self, records: Sequence[WebhookRecord]) -> None:
        if not records:
            return
        rows = [s.webhook_event_row(r) for r in records]

        def write(conn: sa.Connection) -> None:
            conn.execute(_WEBHOOK_EVENT, rows)  # one statement, however many rows

        await self._grouped(write)

    async def reconcile_slots(self) -> list[tuple[str, int, int]]:
        """Set each account's ``in_flight`` to the number of jobs holding one of its slots.

        Every slot change already happens in the transaction that changes the job, so this
        only finds drift from outside (a manual edit, a restored backup, a bug): it returns
        ``(account, counted before, corrected to)`` for each account it fixed. On PostgreSQL
        the account rows are locked first, so a claim, requeue or finish in flight either
        committed before the count or waits for the correction (no lost update).
        """
        a = s.runninghub_accounts
        fixed: list[tuple[str, int, int]] = []
        async with self._write() as conn:
            q = sa.select(a.c.account_name, a.c.in_flight).order_by(a.c.account_name)
            if self.dialect == "postgresql":
                q = q.with_for_update()
            accounts = (await conn.execute(q)).all()
            held: dict[str, int] = {}
            for t in s.job_tables.values():
                rows = await conn.execute(
                    sa.select(t.c.api_account, sa.func.count())
                    .where(t.c.holds_slot.is_(True), t.c.api_account.is_not(None))
                    .group_by(t.c.api_account)
                )
                for name, count in rows.all():
                    held[name] = held.get(name, 0) + int(count)
            for name, in_flight in accounts:
                want = held.get(name, 0)
                if want != in_flight:
                    await conn.execute(
                        a.update()
                        .where(a.c.account_name == name)
                        .values(in_flight=want, updated_at=self.clock())
                    )
                    fixed.append((name, int(in_flight), want))
        return fixed

    async def prune_events(self, older_than: datetime) -> int:
        """Forget webhook events and upstream errors older than ``older_than`` (forged posts
        included: the tables must not grow without bound). Returns the rows deleted."""
        async with self._write() as conn:
            events = await conn.execute(
                s.webhook_events.delete().where(s.webhook_events.c.received_at < older_than)
            )
            errors = await conn.execute(
                s.upstream_errors.delete().where(s.upstream_errors.c.at < older_than)
            )
            return int(events.rowcount or 0) + int(errors.rowcount or 0)

    async def take_unmatched_webhooks(self, task_id: str) -> list[dict[str, Any]]:
        """Mark the kept events of ``task_id`` applied and return them (each is taken once).

        Asked at every start, and almost always there are none: a read first (no write lock),
        and only when it finds some, the taking write (which reads them again, in its own
        transaction: whoever marks an event applied first takes it)."""
        params = {"b_task": task_id}
        found = await self._thread_read(lambda conn: conn.execute(_UNMATCHED_IDS, params).first())
        if found is None:
            return []
        w = s.webhook_events
        now = self.clock()

        def write(conn: sa.Connection) -> list[dict[str, Any]]:
            rows = [
                dict(r)
                for r in conn.execute(
                    sa.select(w).where(w.c.id.in_(_UNMATCHED_IDS.scalar_subquery())), params
                ).mappings()
            ]
            if rows:
                conn.execute(
                    w.update().where(w.c.id.in_([r["id"] for r in rows])).values(applied_at=now)
                )
            return rows

        return await self._grouped(write)

    async def count_unmatched_webhooks(self) -> int:
        """Kept old-style events not applied yet (read from their index, migration 5)."""
        w = s.webhook_events
        async with self._read() as conn:
            n = await conn.execute(
                sa.select(sa.func.count())
                .select_from(w)
                .where(
                    w.c.outcome == WebhookOutcome.UNMATCHED.value,
                    w.c.applied_at.is_(None),
                )
            )
            return int(n.scalar_one())

    async def webhook_counts(self) -> dict[str, int]:
        w = s.webhook_events
        async with self._read() as conn:
            rows = await conn.execute(sa.select(w.c.outcome, sa.func.count()).group_by(w.c.outcome))
            return dict(rows.all())

    async def record_upstream_error(
        self, endpoint: str, code: str, table: str | None = None, job_id: str | None = None
    ) -> None:
        def write(conn: sa.Connection) -> None:
            conn.execute(
                s.upstream_errors.insert().values(
                    at=self.clock(), endpoint=endpoint, code=code, job_table=table, job_id=job_id
                )
            )

        await self._grouped(write)

    async def upstream_error_counts(self) -> list[tuple[str, str, int]]:
        """``(endpoint, code, n)`` of recorded RunningHub errors, most frequent first."""
        u = s.upstream_errors
        async with self._read() as conn:
            rows = await conn.execute(
                sa.select(u.c.endpoint, u.c.code, sa.func.count().label("n"))
                .group_by(u.c.endpoint, u.c.code)
                .order_by(sa.desc("n"))
            )
            return [(e, code, n) for e, code, n in rows.all()]

    async def counts_by_status(self) -> dict[str, dict[str, int]]:
        """``{table: {status: n}}`` for the operator page."""
        out: dict[str, dict[str, int]] = {}
        async with self._read() as conn:
            for table, t in s.job_tables.items():
                rows = await conn.execute(
                    sa.select(t.c.status, sa.func.count()).group_by(t.c.status)
                )
                out[table] = dict(rows.all())
        return out

    async def finished_jobs(
        self, *, limit: int = 200, tables: Iterable[str] | None = None
    ) -> list[Job]:
        """Recently finished jobs, newest first (operator page, duration history)."""
        jobs: list[Job] = []
        async with self._read() as conn:
            for table in tables or s.job_tables:
                t = s.job_tables[table]
                rows = await conn.execute(
                    sa.select(t)
                    .where(t.c.completed_at.is_not(None))
                    .order_by(t.c.completed_at.desc())
                    .limit(limit)
                )
                jobs.extend(_job_from_row(table, r) for r in rows.mappings())
        jobs.sort(key=lambda j: j.completed_at or j.created_at, reverse=True)
        return jobs[:limit]


def _user_from_row(row: sa.RowMapping) -> User:
    return User(
        id=row["id"],
        credits=row["credits"],
        is_admin=bool(row["is_admin"]),
    )
