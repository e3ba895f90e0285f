"""Rows the benchmarks start from, written straight into the server's database (SQLite file or
PostgreSQL) in one transaction: thousands of jobs in a second, in the shape the app itself
leaves them (a charged, started job holding a slot of the default account)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from arcano_tools.config import DEFAULT_ACCOUNT_NAME
from arcano_tools.store import schema as s

#: Jobs are staged in the upscaler's table (the tools share one job shape).
TABLE = "upscaler_jobs"
COST = 1
#: Task ids of staged jobs (RunningHub's are 19-digit numbers).
FIRST_TASK_ID = 1_900_000_000_000_000_000


def sync_url(database_url: str, data_dir: Path) -> str:
    url = database_url or f"sqlite:///{data_dir / 'arcano.db'}"
    return url.replace("postgresql://", "postgresql+psycopg://")


@contextmanager
def connect(database_url: str, data_dir: Path) -> Iterator[sa.Connection]:
    engine = sa.create_engine(sync_url(database_url, data_dir))
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def ensure_user(conn: sa.Connection, user_id: str) -> None:
    now = datetime.now(UTC)
    if conn.execute(sa.select(s.users.c.id).where(s.users.c.id == user_id)).first() is None:
        conn.execute(
            s.users.insert().values(
                id=user_id, credits=10**9, is_admin=False, is_anonymous=False, created_at=now
            )
        )


def stage_running_jobs(
    database_url: str,
    data_dir: Path,
    n: int,
    *,
    user_id: str = "bench-user",
    started_ago: timedelta = timedelta(seconds=5),
    next_check_in: timedelta | None = None,
    task_offset: int = 0,
) -> list[tuple[str, str]]:
    """``n`` jobs ``running`` on RunningHub (task id, slot held, charge in the ledger);
    returns ``(job id, task id)`` pairs. ``next_check_in``: when the shared schedule lets the
    next check happen (``None``: due now)."""
    now = datetime.now(UTC)
    t = s.job_tables[TABLE]
    jobs = [(str(uuid.uuid4()), str(FIRST_TASK_ID + task_offset + i)) for i in range(n)]
    rows: list[dict[str, Any]] = [
        {
            "id": job_id,
            "user_id": user_id,
            "status": "running",
            "cost": COST,
            "task_id": task_id,
            "api_account": DEFAULT_ACCOUNT_NAME,
            "inputs": {"files": [], "scale": 2},
            "created_at": now - started_ago,
            "started_at": now - started_ago,
            "updated_at": now - started_ago,
            "holds_slot": True,
            "attempts": 0,
            "start_failures": 0,
            "check_count": 0,
            "next_check_at": None if next_check_in is None else now + next_check_in,
            "last_upstream_code": 804,
            "last_upstream_msg": "APIKEY_TASK_IS_RUNNING",
        }
        for job_id, task_id in jobs
    ]
    with connect(database_url, data_dir) as conn:
        ensure_user(conn, user_id)
        # the table as this database has it: a baseline (``--baseline``) migrated by older
        # code lacks later columns, which ``t``'s defaults would name
        conn.execute(sa.Table(t.name, sa.MetaData(), autoload_with=conn).insert(), rows)
        conn.execute(
            s.credit_ledger.insert(),
            [
                {
                    "user_id": user_id,
                    "amount": -COST,
                    "kind": "charge",
                    "job_table": TABLE,
                    "job_id": job_id,
                    "created_at": now,
                }
                for job_id, _ in jobs
            ],
        )
        a = s.runninghub_accounts
        conn.execute(
            a.update()
            .where(a.c.account_name == DEFAULT_ACCOUNT_NAME)
            .values(in_flight=a.c.in_flight + n)
        )
    return jobs


def delivery_report(database_url: str, data_dir: Path, job_ids: list[str]) -> dict[str, int]:
    """For the jobs that received at least one webhook (an event row): how many did not end
    ``completed``, how many were applied more than once (more than one ``accepted`` event),
    and how many refunds they got (a completed job gets none)."""
    t = s.job_tables[TABLE]
    w = s.webhook_events
    ledger = s.credit_ledger
    out = {"delivered": 0, "not_completed": 0, "applied_twice": 0, "refunds": 0}
    with connect(database_url, data_dir) as conn:
        for chunk in range(0, len(job_ids), 500):
            ids = job_ids[chunk : chunk + 500]
            delivered = {
                r[0] for r in conn.execute(sa.select(w.c.job_id).where(w.c.job_id.in_(ids)))
            }
            out["delivered"] += len(delivered)
            if not delivered:
                continue
            completed = conn.execute(
                sa.select(sa.func.count()).where(t.c.id.in_(delivered), t.c.status == "completed")
            ).scalar_one()
            out["not_completed"] += len(delivered) - completed
            out["applied_twice"] += conn.execute(
                sa.select(sa.func.count()).select_from(
                    sa.select(w.c.job_id)
                    .where(w.c.job_id.in_(ids), w.c.outcome == "accepted")
                    .group_by(w.c.job_id)
                    .having(sa.func.count() > 1)
                    .subquery()
                )
            ).scalar_one()
            out["refunds"] += conn.execute(
                sa.select(sa.func.count())
                .select_from(ledger)
                .where(ledger.c.kind == "refund", ledger.c.job_id.in_(ids))
            ).scalar_one()
    return out


def success_webhook_body(task_id: str, file_url: str) -> str:
    """RunningHub's ``TASK_END`` body: ``eventData`` is the ``/outputs`` envelope, as a string."""
    item = {"fileUrl": file_url, "fileType": "png", "taskCostTime": "12", "nodeId": "9"}
    data = {"code": 0, "msg": "success", "data": [item]}
    return json.dumps({"event": "TASK_END", "taskId": task_id, "eventData": json.dumps(data)})


def status_counts(database_url: str, data_dir: Path, user_id: str) -> dict[str, int]:
    """How many of the user's jobs (in the staging table) are in each status."""
    t = s.job_tables[TABLE]
    with connect(database_url, data_dir) as conn:
        rows = conn.execute(
            sa.select(t.c.status, sa.func.count())
            .where(t.c.user_id == user_id)
            .group_by(t.c.status)
        )
        return {str(status): int(n) for status, n in rows}
