"""An in-memory twin of :class:`~arcano_tools.store.JobStore`, for millisecond tests.

The role of procrastinate's ``testing.InMemoryConnector``: the services' decisions (the
queue manager, the sync, webhooks, the watchdogs) are unit-tested against this store with a
fake clock, and the contract suite (``tests/contract``) runs the same assertions against
this store, SQLite and PostgreSQL, so the twin keeps the real store's rules:

* every method runs without awaiting in the middle, so under asyncio each one is atomic —
  the same all-or-nothing the SQL store gets from a transaction;
* conditional updates behave like the SQL ``UPDATE … WHERE``: a loser changes nothing and
  reads the new state.

It is a real implementation, not a mock: nothing is recorded for assertions except what the
SQL store also keeps (the ledger, webhook events, upstream errors).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

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
    REFUND_STATUSES,
    FinishedBy,
    JobStatus,
    LedgerKind,
    OutputCopy,
    WebhookOutcome,
)
from arcano_tools.store.schema import job_tables, webhook_event_row

#: Upstream messages are kept to this length (the SQL store's column does the same).
UPSTREAM_MSG_KEEP_CHARS = 500


@dataclasses.dataclass
class _Lease:
    owner: str
    until: datetime


class InMemoryStore:
    """Implements :class:`~arcano_tools.domain.repository.Repository` over dicts."""

    def __init__(self, *, clock: Clock = utcnow, tables: Iterable[str] = job_tables) -> None:
        self.clock = clock
        self._jobs: dict[str, dict[str, Job]] = {table: {} for table in tables}
        self._users: dict[str, User] = {}
        self._ledger: list[dict[str, Any]] = []
        self._accounts: dict[str, Account] = {}
        self._leases: dict[tuple[str, str], _Lease] = {}
        self._check_counts: Counter[tuple[str, str]] = Counter()
        self._webhooks: list[dict[str, Any]] = []
        self._upstream_errors: list[dict[str, Any]] = []
        self._next_id = 1

    # --- lifecycle ------------------------------------------------------------------------
    async def migrate(self) -> list[int]:
        return []

    async def close(self) -> None:
        return None

    def _row_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    # --- users and credits -------------------------------------------------------------------
    async def ensure_user(
        self, user_id: str, *, credits: int, anonymous: bool = False, admin: bool = False
    ) -> User:
        user = self._users.get(user_id)
        if user is None:
            user = User(id=user_id, credits=credits, is_admin=admin)
            if credits:
                self._add_ledger(user_id, credits, LedgerKind.GRANT)
        if admin and not user.is_admin:
            user = dataclasses.replace(user, is_admin=True)
        self._users[user_id] = user
        return user

    async def get_user(self, user_id: str) -> User | None:
        return self._users.get(user_id)

    async def ledger(self, user_id: str) -> list[dict[str, Any]]:
        return [dict(row) for row in self._ledger if row["user_id"] == user_id]

    def _add_ledger(
        self,
        user_id: str,
        amount: int,
        kind: LedgerKind,
        table: str | None = None,
        job_id: str | None = None,
    ) -> None:
        self._ledger.append(
            {
                "id": self._row_id(),
                "user_id": user_id,
                "amount": amount,
                "kind": kind.value,
                "job_table": table,
                "job_id": job_id,
                "created_at": self.clock(),
            }
        )

    def _add_credits(self, user_id: str, amount: int) -> None:
        user = self._users[user_id]
        self._users[user_id] = dataclasses.replace(user, credits=user.credits + amount)

    # --- jobs ------------------------------------------------------------------------------------
    def _table(self, table: str) -> dict[str, Job]:
        return self._jobs[table]  # KeyError for an unknown table, like the SQL store

    def _all_jobs(self) -> Iterable[Job]:
        for jobs in self._jobs.values():
            yield from jobs.values()

    def _put(self, job: Job, **changes: Any) -> Job:
        job = dataclasses.replace(job, **changes)
        self._jobs[job.table][job.id] = job
        return job

    async def create_job(self, new: NewJob) -> Job:
        jobs = self._table(new.table)
        user = self._users.get(new.user_id)
        if user is None or user.credits < new.cost:
            raise InsufficientCredits()
        if new.id in jobs:
            raise ValueError(f"job {new.id} exists")
        now = self.clock()
        self._add_credits(new.user_id, -new.cost)
        self._add_ledger(new.user_id, -new.cost, LedgerKind.CHARGE, new.table, new.id)
        job = Job(
            id=new.id,
            table=new.table,
            user_id=new.user_id,
            status=JobStatus.QUEUED,
            cost=new.cost,
            inputs=dict(new.inputs),
            created_at=now,
            updated_at=now,
        )
        jobs[job.id] = job
        return job

    async def get_job(self, table: str, job_id: str) -> Job | None:
        return self._table(table).get(job_id)

    async def find_job_by_task_id(self, task_id: str) -> Job | None:
        return next((j for j in self._all_jobs() if j.task_id == task_id), None)

    async def list_user_jobs(self, user_id: str, limit: int = 50) -> list[Job]:
        mine = [j for j in self._all_jobs() if j.user_id == user_id]
        return sorted(mine, key=lambda j: j.created_at, reverse=True)[:limit]

    async def active_job_of_user(self, user_id: str, table: str) -> Job | None:
        active = [
            j for j in self._table(table).values() if j.user_id == user_id and j.status.is_active
        ]
        return max(active, key=lambda j: j.created_at, default=None)

    async def active_jobs(
        self, *, older_than: datetime | None = None, limit: int = 500
    ) -> list[Job]:
        jobs = [
            j
            for j in self._all_jobs()
            if j.status.is_active and (older_than is None or j.clock_start <= older_than)
        ]
        return sorted(jobs, key=lambda j: j.created_at)[:limit]

    async def active_summary(self) -> ActiveSummary:
        active = [j for j in self._all_jobs() if j.status.is_active]
        return ActiveSummary(len(active), min((j.created_at for j in active), default=None))

    async def queued_jobs_due(self, now: datetime, limit: int = 50) -> list[Job]:
        jobs = [
            j
            for j in self._all_jobs()
            if j.status is JobStatus.QUEUED
            and (j.next_attempt_at is None or j.next_attempt_at <= now)
        ]
        return sorted(jobs, key=lambda j: j.created_at)[:limit]

    async def queue_position(self, job: Job) -> int:
        if job.status is not JobStatus.QUEUED:
            return 0
        return 1 + sum(
            1
            for j in self._all_jobs()
            if j.status is JobStatus.QUEUED and j.created_at < job.created_at
        )

    async def recent_durations(self, table: str, limit: int = 200) -> list[float]:
        done = [
            j
            for j in self._table(table).values()
            if j.status is JobStatus.COMPLETED and j.completed_at is not None
        ]
        done.sort(key=lambda j: j.completed_at or j.created_at, reverse=True)
        return [
            max(0.0, ((j.completed_at or j.created_at) - j.clock_start).total_seconds())
            for j in done[:limit]
        ]

    # --- the transitions -------------------------------------------------------------------------
    async def claim_slot(
        self,
        job: Job,
        account_name: str,
        *,
        first_check_in: timedelta | None = None,
        start_lease_for: timedelta | None = None,
    ) -> Job | None:
        account = self._accounts.get(account_name)
        current = self._table(job.table).get(job.id)
        if account is None or not account.enabled or account.in_flight >= account.max_concurrent:
            return None
        if current is None or current.status is not JobStatus.QUEUED:
            return None
        now = self.clock()
        self._accounts[account_name] = dataclasses.replace(account, in_flight=account.in_flight + 1)
        return self._put(
            current,
            status=JobStatus.STARTING,
            api_account=account_name,
            holds_slot=True,
            started_at=current.started_at or now,
            updated_at=now,
            claim_id=uuid.uuid4().hex,
            start_lease_until=now + start_lease_for if start_lease_for is not None else None,
            error_message=None,
            next_check_at=now + first_check_in if first_check_in is not None else None,
        )

    async def renew_start_lease(self, job: Job, *, until: datetime) -> bool:
        current = self._table(job.table).get(job.id)
        if (
            current is None
            or current.status is not JobStatus.STARTING
            or current.claim_id != job.claim_id
            or current.task_id is not None
        ):
            return False
        self._put(current, start_lease_until=until)
        return True

    async def requeue(
        self, job: Job, *, retry_at: datetime, reason: str, failed: bool = False
    ) -> bool:
        current = self._table(job.table).get(job.id)
        if (
            current is None
            or current.status is not JobStatus.STARTING
            or current.claim_id != job.claim_id
        ):
            return False
        self._put(
            current,
            status=JobStatus.QUEUED,
            holds_slot=False,
            attempts=current.attempts + 1,
            start_failures=current.start_failures + (1 if failed else 0),
            next_attempt_at=retry_at,
            error_message=reason,
            start_lease_until=None,
            updated_at=self.clock(),
        )
        if job.api_account:
            self._release_slot(job.api_account)
        return True

    async def save_task_id(
        self, table: str, job_id: str, task_id: str, *, claim_id: str | None = None
    ) -> Job | None:
        current = self._table(table).get(job_id)
        if current is None:
            return None
        if current.task_id not in (None, task_id):
            return current
        if claim_id is not None and (
            current.claim_id != claim_id or current.status is JobStatus.QUEUED
        ):
            return current
        status = JobStatus.RUNNING if current.status is JobStatus.STARTING else current.status
        return self._put(current, task_id=task_id, status=status, updated_at=self.clock())

    async def finish(self, table: str, job_id: str, req: FinishRequest) -> FinishResult | None:
        if not req.status.is_terminal:
            raise ValueError(f"finish needs a terminal status, got {req.status}")
        current = self._table(table).get(job_id)
        if current is None:
            return None
        if not current.status.is_active or (
            req.task_id is not None and (current.task_id != req.task_id or current.saving)
        ):
            return FinishResult(changed=False, job=current)
        now = self.clock()
        changes: dict[str, Any] = {
            "status": req.status,
            "completed_at": now,
            "updated_at": now,
            "finished_by": req.finished_by,
            "error_message": req.error_message,
            "next_check_at": None,
        }
        if req.output_url is not None:
            changes["output_url"] = req.output_url
        if current.holds_slot and current.api_account:
            self._release_slot(current.api_account)
            changes["holds_slot"] = False
        self._leases.pop((table, job_id), None)
        job = self._put(current, **changes)
        refunded = req.status in REFUND_STATUSES and self._refund(job)
        return FinishResult(changed=True, job=job, refunded=refunded)

    # --- results that last (same rules as JobStore's) ---------------------------------------------

    async def begin_output_copy(
        self,
        table: str,
        job_id: str,
        *,
        upstream_url: str,
        reported_by: FinishedBy,
        due_at: datetime,
    ) -> FinishResult | None:
        current = self._table(table).get(job_id)
        if current is None:
            return None
        if not current.status.is_active or current.output_copy is not None:
            return FinishResult(changed=False, job=current)
        now = self.clock()
        changes: dict[str, Any] = {
            "upstream_output_url": upstream_url,
            "output_copy": OutputCopy.SAVING,
            "output_copy_tries": 0,
            "output_copy_due_at": due_at,
            "output_reported_by": reported_by,
            "next_check_at": due_at + OUTPUT_COPY_CHECK_PAUSE,
            "updated_at": now,
        }
        if current.holds_slot and current.api_account:
            self._release_slot(current.api_account)
            changes["holds_slot"] = False
        return FinishResult(changed=True, job=self._put(current, **changes))

    async def lease_output_copies(
        self, *, now: datetime, lease_for: timedelta, limit: int
    ) -> list[Job]:
        leased: list[Job] = []
        for jobs in self._jobs.values():
            due = sorted(
                (
                    j
                    for j in jobs.values()
                    if j.output_copy is not None
                    and j.status.is_active
                    and j.output_copy_due_at is not None
                    and j.output_copy_due_at <= now
                ),
                key=lambda j: j.output_copy_due_at or now,
            )
            leased += [self._put(j, output_copy_due_at=now + lease_for) for j in due[:limit]]
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
        current = self._table(table).get(job_id)
        if current is None or not current.status.is_active or current.output_copy is None:
            return False
        changes: dict[str, Any] = {
            "output_copy": state,
            "output_copy_tries": tries,
            "output_copy_due_at": due_at,
            "output_copy_error": error[:500] if error else None,
            "updated_at": self.clock(),
        }
        if output_key is not None:
            changes["output_key"] = output_key
        self._put(current, **changes)
        return True

    def _release_slot(self, account_name: str) -> None:
        account = self._accounts.get(account_name)
        if account is not None and account.in_flight > 0:
            self._accounts[account_name] = dataclasses.replace(
                account, in_flight=account.in_flight - 1
            )

    def _refund(self, job: Job) -> bool:
        """At most one refund per job: the SQL store's unique ``(job_table, job_id, kind)``."""
        if any(
            r["job_table"] == job.table
            and r["job_id"] == job.id
            and r["kind"] == LedgerKind.REFUND.value
            for r in self._ledger
        ):
            return False
        self._add_ledger(job.user_id, job.cost, LedgerKind.REFUND, job.table, job.id)
        self._add_credits(job.user_id, job.cost)
        return True

    # --- the shared upstream schedule and leases ---------------------------------------------------
    async def reserve_check(
        self, table: str, job_id: str, *, now: datetime, next_check_at: datetime
    ) -> bool:
        current = self._table(table).get(job_id)
        if current is None or not current.status.is_active:
            return False
        if current.next_check_at is not None and current.next_check_at > now:
            return False
        self._put(current, next_check_at=next_check_at)
        self._check_counts[(table, job_id)] += 1
        return True

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
        current = self._table(table).get(job_id)
        if current is not None:
            self._put(
                current,
                last_upstream_code=code,
                last_upstream_msg=msg[:UPSTREAM_MSG_KEEP_CHARS],
                next_check_at=next_check_at
                if next_check_at is not None
                and current.status.is_active
                and current.output_copy is None
                else current.next_check_at,
            )
        if lease_owner is not None:
            await self.release_lease(table, job_id, lease_owner)

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
        leased: list[Job] = []
        for table, jobs in self._jobs.items():

            def wanted(j: Job) -> bool:
                overdue = j.deadline_from <= deadline_before and not j.saving
                lease = self._leases.get((j.table, j.id))
                free = self._lease_free(j.table, j.id, now) or (
                    overdue and lease is not None and lease.owner != owner
                )
                return (
                    j.status.is_active
                    and (overdue or not overdue_only)
                    and (j.clock_start <= started_before or overdue)
                    and (j.next_check_at is None or j.next_check_at <= now or overdue)
                    and free
                    and (j.task_id is not None or overdue)
                )

            due = sorted(
                (j for j in jobs.values() if wanted(j)),
                key=lambda j: (j.created_at, not j.holds_slot),
            )
            for job in due[:limit]:
                self._leases[(table, job.id)] = _Lease(owner, now + lease_for)
                if reserve_until is not None and (
                    job.next_check_at is None or job.next_check_at <= now
                ):
                    await self.reserve_check(table, job.id, now=now, next_check_at=reserve_until)
                    job = self._table(table)[job.id]
                leased.append(job)
        return leased

    def _lease_free(self, table: str, job_id: str, now: datetime) -> bool:
        lease = self._leases.get((table, job_id))
        return lease is None or lease.until <= now

    async def release_lease(self, table: str, job_id: str, owner: str) -> None:
        lease = self._leases.get((table, job_id))
        if lease is not None and lease.owner == owner:
            del self._leases[(table, job_id)]

    async def lease_stalled_starts(
        self,
        *,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        legacy_before: datetime,
        limit: int,
    ) -> list[Job]:
        leased: list[Job] = []
        for table, jobs in self._jobs.items():
            stalled = [
                j
                for j in jobs.values()
                if j.status is JobStatus.STARTING
                and j.task_id is None
                and (
                    j.start_lease_until <= now
                    if j.start_lease_until is not None
                    else j.updated_at <= legacy_before
                )
                and self._lease_free(table, j.id, now)
            ]
            stalled.sort(key=lambda j: j.created_at)
            for job in stalled[:limit]:
                self._leases[(table, job.id)] = _Lease(owner, now + lease_for)
                leased.append(job)
        return leased

    # --- accounts -------------------------------------------------------------------------------
    async def upsert_account(self, name: str, api_key: str, max_concurrent: int) -> None:
        existing = self._accounts.get(name)
        self._accounts[name] = Account(
            name=name,
            api_key=api_key,
            max_concurrent=max_concurrent,
            in_flight=existing.in_flight if existing else 0,
            enabled=True,
            disabled_reason=None,
        )

    async def get_account(self, name: str) -> Account | None:
        return self._accounts.get(name)

    async def accounts_with_free_slots(self) -> list[Account]:
        free = [a for a in self._accounts.values() if a.enabled and a.in_flight < a.max_concurrent]
        return sorted(free, key=lambda a: (a.in_flight, a.name))

    async def has_enabled_account(self) -> bool:
        return any(a.enabled for a in self._accounts.values())

    async def disable_account(self, name: str, reason: str) -> None:
        account = self._accounts.get(name)
        if account is not None:
            self._accounts[name] = dataclasses.replace(
                account, enabled=False, disabled_reason=reason
            )

    async def reconcile_slots(self) -> list[tuple[str, int, int]]:
        held = Counter(j.api_account for j in self._all_jobs() if j.holds_slot and j.api_account)
        fixed: list[tuple[str, int, int]] = []
        for name in sorted(self._accounts):
            account = self._accounts[name]
            want = held.get(name, 0)
            if want != account.in_flight:
                self._accounts[name] = dataclasses.replace(account, in_flight=want)
                fixed.append((name, account.in_flight, want))
        return fixed

    # --- webhook events and upstream errors ---------------------------------------------------------
    async def record_webhook(self, record: WebhookRecord) -> None:
        await self.record_webhooks([record])

    async def record_webhooks(self, records: Sequence[WebhookRecord]) -> None:
        for record in records:
            self._webhooks.append({"id": self._row_id(), **webhook_event_row(record)})

    async def take_unmatched_webhooks(self, task_id: str) -> list[dict[str, Any]]:
        taken = []
        for row in self._webhooks:
            if (
                row["task_id"] == task_id
                and row["outcome"] == WebhookOutcome.UNMATCHED.value
                and row["applied_at"] is None
            ):
                taken.append(dict(row))
                row["applied_at"] = self.clock()
        return taken

    async def count_unmatched_webhooks(self) -> int:
        return sum(
            1
            for row in self._webhooks
            if row["outcome"] == WebhookOutcome.UNMATCHED.value and row["applied_at"] is None
        )

    async def webhook_counts(self) -> dict[str, int]:
        return dict(Counter(row["outcome"] for row in self._webhooks))

    async def record_upstream_error(
        self, endpoint: str, code: str, table: str | None = None, job_id: str | None = None
    ) -> None:
        self._upstream_errors.append(
            {"at": self.clock(), "endpoint": endpoint, "code": code, "table": table, "id": job_id}
        )

    async def upstream_error_counts(self) -> list[tuple[str, str, int]]:
        counts = Counter((row["endpoint"], row["code"]) for row in self._upstream_errors)
        return [(endpoint, code, n) for (endpoint, code), n in counts.most_common()]

    async def prune_events(self, older_than: datetime) -> int:
        before = len(self._webhooks) + len(self._upstream_errors)
        self._webhooks = [r for r in self._webhooks if r["received_at"] >= older_than]
        self._upstream_errors = [r for r in self._upstream_errors if r["at"] >= older_than]
        return before - len(self._webhooks) - len(self._upstream_errors)

    # --- the operator page ----------------------------------------------------------------------------
    async def counts_by_status(self) -> dict[str, dict[str, int]]:
        return {
            table: dict(Counter(j.status.value for j in jobs.values()))
            for table, jobs in self._jobs.items()
        }

    async def finished_jobs(
        self, *, limit: int = 200, tables: Iterable[str] | None = None
    ) -> list[Job]:
        chosen = list(tables) if tables is not None else list(self._jobs)
        done = [
            j for table in chosen for j in self._table(table).values() if j.completed_at is not None
        ]
        return sorted(done, key=lambda j: j.completed_at or j.created_at, reverse=True)[:limit]
