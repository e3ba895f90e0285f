"""Table definitions (SQLAlchemy Core), mirroring the plan's Supabase tables.

The four job tables share one shape, built by :func:`_job_table`. Times are stored as UTC.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from arcano_tools.domain.records import WebhookRecord
from arcano_tools.domain.tools import JOB_TABLES

metadata = sa.MetaData()

TS = sa.DateTime(timezone=True)


def _job_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cost", sa.Integer, nullable=False),
        sa.Column("task_id", sa.String(64), nullable=True),
        sa.Column("api_account", sa.String(64), nullable=True),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("output_url", sa.Text, nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("completed_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("finished_by", sa.String(24), nullable=True),
        # True while the job holds one of its account's max_concurrent slots.
        sa.Column("holds_slot", sa.Boolean, nullable=False, default=False),
        # Every return to the queue (421/415 included: its backoff), and when the next try is due.
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        # Starts that failed (network, 5xx, interrupted) — only these count towards giving up
        # (migration 3): a busy RunningHub (421) never uses up a job's chances.
        sa.Column("start_failures", sa.Integer, nullable=False, default=0, server_default="0"),
        sa.Column("next_attempt_at", TS, nullable=True),
        # The shared upstream schedule: when RunningHub was last asked, when it may be next.
        sa.Column("last_checked_at", TS, nullable=True),
        sa.Column("next_check_at", TS, nullable=True),
        sa.Column("check_count", sa.Integer, nullable=False, default=0),
        # What RunningHub said at the last check (answers a sync that is not due yet).
        sa.Column("last_upstream_code", sa.Integer, nullable=True),
        sa.Column("last_upstream_msg", sa.Text, nullable=True),
        # Set anew at each dispatch (migration 2): only the current start may requeue or save.
        sa.Column("claim_id", sa.String(32), nullable=True),
        # While starting: renewed by the process starting the job (migration 4); once it has
        # passed, that process is gone and any process may put the job back in the queue.
        sa.Column("start_lease_until", TS, nullable=True),
        # The server watchdog's lease: one backend process checks a job at a time.
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        # Results that last (migration 7): RunningHub's URL kept when success is known, then the
        # copy into our storage (state, tries, next try = the copier's lease, last error, our
        # key) and the path that reported the success (the completion's finished_by).
        sa.Column("upstream_output_url", sa.Text, nullable=True),
        sa.Column("output_copy", sa.String(16), nullable=True),
        sa.Column("output_key", sa.Text, nullable=True),
        sa.Column("output_copy_tries", sa.Integer, nullable=False, default=0, server_default="0"),
        sa.Column("output_copy_due_at", TS, nullable=True),
        sa.Column("output_copy_error", sa.Text, nullable=True),
        sa.Column("output_reported_by", sa.String(24), nullable=True),
        sa.Index(f"ix_{name}_output_copy_due", "output_copy", "output_copy_due_at"),
        sa.Index(f"ix_{name}_status_created", "status", "created_at"),
        sa.Index(f"ix_{name}_user_created", "user_id", "created_at"),
        sa.Index(f"ix_{name}_task_id", "task_id"),
    )


users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("credits", sa.Integer, nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("is_anonymous", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", TS, nullable=False),
    sa.CheckConstraint("credits >= 0", name="ck_users_credits_non_negative"),
)

job_tables: dict[str, sa.Table] = {name: _job_table(name) for name in JOB_TABLES}

credit_ledger = sa.Table(
    "credit_ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("amount", sa.Integer, nullable=False),
    # grant | charge | refund
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("job_table", sa.String(32), nullable=True),
    sa.Column("job_id", sa.String(36), nullable=True),
    sa.Column("created_at", TS, nullable=False),
    # The database, not the code, guarantees one charge and at most one refund per job.
    sa.UniqueConstraint("job_table", "job_id", "kind", name="uq_credit_ledger_job_kind"),
)

runninghub_accounts = sa.Table(
    "runninghub_accounts",
    metadata,
    sa.Column("account_name", sa.String(64), primary_key=True),
    sa.Column("api_key", sa.String(128), nullable=False),
    sa.Column("max_concurrent", sa.Integer, nullable=False),
    sa.Column("in_flight", sa.Integer, nullable=False, default=0),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("disabled_reason", sa.Text, nullable=True),
    sa.Column("updated_at", TS, nullable=False),
    sa.CheckConstraint("in_flight >= 0", name="ck_accounts_in_flight_non_negative"),
)

webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("received_at", TS, nullable=False),
    sa.Column("job_table", sa.String(32), nullable=True),
    sa.Column("job_id", sa.String(36), nullable=True),
    sa.Column("task_id", sa.String(64), nullable=True),
    # accepted | duplicate | early | rejected | malformed | unmatched | ignored
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
    # The raw body (truncated), kept for unmatched events and forensics.
    sa.Column("body", sa.Text, nullable=True),
    sa.Column("applied_at", TS, nullable=True),
    sa.Index("ix_webhook_events_task_unapplied", "task_id", "applied_at"),
    # Counting the kept (unmatched, unapplied) events for their bound (migration 5).
    sa.Index("ix_webhook_events_outcome_unapplied", "outcome", "applied_at"),
)


def webhook_event_row(record: WebhookRecord) -> dict[str, Any]:
    """The ``webhook_events`` row of one record (both stores write it: SQL and in memory)."""
    return {
        "received_at": record.received_at,
        "job_table": record.table,
        "job_id": record.job_id,
        "task_id": record.task_id,
        "outcome": record.outcome.value,
        "detail": record.detail,
        "body": record.body,
        "applied_at": record.received_at if record.applied else None,
    }


upstream_errors = sa.Table(
    "upstream_errors",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", TS, nullable=False),
    sa.Column("endpoint", sa.String(32), nullable=False),
    sa.Column("code", sa.String(16), nullable=False),
    sa.Column("job_table", sa.String(32), nullable=True),
    sa.Column("job_id", sa.String(36), nullable=True),
)

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("applied_at", TS, nullable=False),
)
