"""The repository seam: everything the services ask of storage, as a ``Protocol``.

This is the role procrastinate's ``BaseConnector`` plays. Two implementations keep it:
:class:`arcano_tools.store.JobStore` (SQLAlchemy Core on SQLite or PostgreSQL) and
:class:`arcano_tools.store.memory.InMemoryStore` (dicts, for millisecond tests of the
services' decisions). One contract suite (``tests/contract``) runs against all three
back-ends, so the twin cannot drift from the real thing.

Rules every implementation keeps (the contract suite checks each):

* every state change is conditional — a finish only changes an active job, a claim only a
  queued one with a free slot, a check reservation only a due one — and a loser sees the
  new state, never an error;
* :meth:`Repository.finish` is the only way into a terminal status; in the same atomic step it
  releases the account slot and, for failed/cancelled, refunds the credits exactly once;
* claims fence starts: ``requeue``, ``renew_start_lease`` and ``save_task_id(claim_id=…)``
  change nothing for a start that lost its claim (or whose job went back to the queue).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from arcano_tools.domain.records import (
    Account,
    ActiveSummary,
    FinishRequest,
    FinishResult,
    Job,
    NewJob,
    User,
    WebhookRecord,
)
from arcano_tools.domain.status import FinishedBy, OutputCopy


class Repository(Protocol):
    # --- lifecycle --------------------------------------------------------------------------
    async def migrate(self) -> list[int]:
        """Bring the storage to the current schema; returns the versions applied now."""

    async def close(self) -> None: ...

    # --- users and credits ----------------------------------------------------------------------
    async def ensure_user(
        self, user_id: str, *, credits: int, anonymous: bool = False, admin: bool = False
    ) -> User:
        """Create the user with a starting grant if new; return it either way."""

    async def get_user(self, user_id: str) -> User | None: ...

    async def ledger(self, user_id: str) -> list[dict[str, Any]]:
        """The user's ledger rows (``kind``, ``amount``, ``job_table``, ``job_id``), in order."""

    # --- jobs -------------------------------------------------------------------------------------
    async def create_job(self, new: NewJob) -> Job:
        """Charge the credits and write the job as ``queued`` atomically; raises
        :class:`~arcano_tools.domain.errors.InsufficientCredits` without writing anything."""

    async def get_job(self, table: str, job_id: str) -> Job | None: ...

    async def find_job_by_task_id(self, task_id: str) -> Job | None: ...

    async def list_user_jobs(self, user_id: str, limit: int = 50) -> list[Job]:
        """The user's jobs across every tool, newest first."""

    async def active_job_of_user(self, user_id: str, table: str) -> Job | None:
        """The user's newest active job of one tool (a page resumes it on load)."""

    async def active_jobs(
        self, *, older_than: datetime | None = None, limit: int = 500
    ) -> list[Job]: ...

    async def active_summary(self) -> ActiveSummary:
        """Counted by the database, whatever the number of active jobs (``/metrics`` asks it
        on every scrape; reading the jobs themselves blocked a worker 330 ms at 10,000)."""

    async def queued_jobs_due(self, now: datetime, limit: int = 50) -> list[Job]: ...

    async def queue_position(self, job: Job) -> int:
        """1-based place of a queued job among every queued job (0 when not queued)."""

    async def recent_durations(self, table: str, limit: int = 200) -> list[float]: ...

    # --- the transitions ----------------------------------------------------------------------------
    async def claim_slot(
        self,
        job: Job,
        account_name: str,
        *,
        first_check_in: timedelta | None = None,
        start_lease_for: timedelta | None = None,
    ) -> Job | None:
        """Queued → starting holding one of the account's slots, or ``None`` (nothing changed).

        A new claim id; ``start_lease_until`` = now + ``start_lease_for``; the requeue message
        (``error_message``) is cleared."""

    async def renew_start_lease(self, job: Job, *, until: datetime) -> bool:
        """Extend the start lease of ``job``'s claim; False (nothing changed) once the job is no
        longer ``starting`` without a task id under that claim."""

    async def requeue(
        self, job: Job, *, retry_at: datetime, reason: str, failed: bool = False
    ) -> bool:
        """Starting → queued, slot given back, start lease cleared; only for the start holding
        the current claim. ``reason`` is what the job's page shows (``error_message``)."""

    async def save_task_id(
        self, table: str, job_id: str, task_id: str, *, claim_id: str | None = None
    ) -> Job | None:
        """Store the task id (starting → running); never over another id or a terminal job.
        With ``claim_id``: only for that claim, and never onto a job back in the queue."""

    async def finish(self, table: str, job_id: str, req: FinishRequest) -> FinishResult | None:
        """The one guarded terminal transition (``None``: no such job). Unchanged, the result
        holds the job as read in the same transaction: ended, or (``req.task_id``) another
        task's or saving its result."""

    # --- results that last: the copy of a job's output into our storage --------------------------
    async def begin_output_copy(
        self,
        table: str,
        job_id: str,
        *,
        upstream_url: str,
        reported_by: FinishedBy,
        due_at: datetime,
    ) -> FinishResult | None:
        """RunningHub reported success: keep its URL and mark the copy ``saving``, due at
        ``due_at`` (the caller copies at once; past ``due_at`` a sweep takes over from it).

        Only for an active job with no copy yet (``changed``: this caller began it); the job
        stays ``running`` and, in the same step, gives its account slot back (RunningHub's
        work is done). ``None``: no such job."""

    async def lease_output_copies(
        self, *, now: datetime, lease_for: timedelta, limit: int
    ) -> list[Job]:
        """Take up to ``limit`` jobs per table whose copy is due (active, ``output_copy`` set,
        ``output_copy_due_at`` passed), pushing their due time ``lease_for`` ahead so no other
        copier takes them meanwhile; a copier that dies leaves them due again after that."""

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
        """Write a copy try's result on an active job that is saving; False (nothing changed)
        for a terminal job or one with no copy."""

    # --- the shared upstream schedule and the server watchdog's leases ------------------------------
    async def reserve_check(
        self, table: str, job_id: str, *, now: datetime, next_check_at: datetime
    ) -> bool:
        """Take the right to ask RunningHub about the job now; False when not due yet."""

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
        """Remember RunningHub's last answer; with ``lease_owner``, the lease that owner holds
        on the job ends in the same write (the server watchdog's "still running"); with
        ``next_check_at``, the job's next check moves there (a job in its tool's tail)."""

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
        """Lease to ``owner`` up to ``limit`` jobs per table that need the server watchdog
        (``overdue_only``: only those past their deadline). A job past its deadline is leased
        whatever another owner's lease says, never again by the owner that holds it (its
        check is in flight there). With ``reserve_until``, a leased job whose check is due is
        also reserved in the same write, as :meth:`reserve_check` would (``now``,
        ``next_check_at=reserve_until``): its returned ``next_check_at`` is ``reserve_until``."""
        ...

    async def release_lease(self, table: str, job_id: str, owner: str) -> None: ...

    async def lease_stalled_starts(
        self,
        *,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        legacy_before: datetime,
        limit: int,
    ) -> list[Job]:
        """Lease to ``owner`` (like :meth:`lease_due_jobs`) up to ``limit`` jobs per table left
        ``starting`` with no task id by a process that is gone: their start lease expired, or
        they have none (an older version started them) and were last updated before
        ``legacy_before``."""

    # --- accounts -------------------------------------------------------------------------------------
    async def upsert_account(self, name: str, api_key: str, max_concurrent: int) -> None: ...

    async def get_account(self, name: str) -> Account | None: ...

    async def accounts_with_free_slots(self) -> list[Account]: ...

    async def has_enabled_account(self) -> bool:
        """Is any RunningHub account enabled (full or not)? None: nothing queued can start."""

    async def disable_account(self, name: str, reason: str) -> None: ...

    async def reconcile_slots(self) -> list[tuple[str, int, int]]:
        """Recount ``in_flight`` from the slot-holding jobs; ``(account, before, after)``."""

    # --- webhook events and upstream errors --------------------------------------------------------------
    async def record_webhook(self, record: WebhookRecord) -> None:
        """Write one event now (its body kept: the receiver's answer waits for it)."""

    async def record_webhooks(self, records: Sequence[WebhookRecord]) -> None:
        """Write many events at once (``EventBuffer``'s batches: one statement, no body)."""
        ...

    async def take_unmatched_webhooks(self, task_id: str) -> list[dict[str, Any]]:
        """Mark the kept events of ``task_id`` applied and return them (each taken once)."""

    async def count_unmatched_webhooks(self) -> int:
        """How many kept (``unmatched``) events are not applied yet: the bound's measure."""

    async def webhook_counts(self) -> dict[str, int]: ...

    async def record_upstream_error(
        self, endpoint: str, code: str, table: str | None = None, job_id: str | None = None
    ) -> None: ...

    async def upstream_error_counts(self) -> list[tuple[str, str, int]]: ...

    async def prune_events(self, older_than: datetime) -> int: ...

    # --- the operator page --------------------------------------------------------------------------------
    async def counts_by_status(self) -> dict[str, dict[str, int]]: ...

    async def finished_jobs(
        self, *, limit: int = 200, tables: Iterable[str] | None = None
    ) -> list[Job]: ...
