"""Plain records the repository hands to the services: no ORM objects leak out of storage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from arcano_tools.domain.status import FinishedBy, JobStatus, OutputCopy, WebhookOutcome


def utcnow() -> datetime:
    return datetime.now(UTC)


#: Where services and stores read the time: ``utcnow`` in production, a settable fake clock in
#: unit tests (deadlines and schedules are then tested without sleeping).
Clock = Callable[[], datetime]


#: A job whose result is being copied needs no upstream check (RunningHub is done, its copier
#: ends it): its next check is pushed this far, so the server watchdog does not lease it on
#: every pass (the copy normally ends within about ten minutes).
OUTPUT_COPY_CHECK_PAUSE = timedelta(hours=1)


@dataclass(frozen=True)
class Job:
    id: str
    table: str
    user_id: str
    status: JobStatus
    cost: int
    #: Uploaded files (input name → path under the data directory) and parameters (``scale``).
    inputs: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    task_id: str | None = None
    api_account: str | None = None
    output_url: str | None = None
    error_message: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    finished_by: FinishedBy | None = None
    holds_slot: bool = False
    attempts: int = 0
    start_failures: int = 0
    next_attempt_at: datetime | None = None
    next_check_at: datetime | None = None
    claim_id: str | None = None
    #: While ``starting``: the process starting the job renews this lease until the create
    #: call has answered; once it has expired that process is gone and any process may put
    #: the job back in the queue (``None``: written by a version without start leases).
    start_lease_until: datetime | None = None
    last_upstream_code: int | None = None
    last_upstream_msg: str | None = None
    #: RunningHub's output URL, kept the moment success is known (never lost while copying).
    upstream_output_url: str | None = None
    #: The copy of the result into our storage (``None``: none asked for).
    output_copy: OutputCopy | None = None
    #: Our copy's storage key, once stored.
    output_key: str | None = None
    output_copy_tries: int = 0
    #: When the next copy try is due; also the copier's lease (a try pushes it ahead first, so
    #: a copier that dies mid-copy leaves the job due again once it passes).
    output_copy_due_at: datetime | None = None
    #: Why the last copy try failed (for ``/admin``).
    output_copy_error: str | None = None
    #: Which path reported the success: the ``finished_by`` of the completion.
    output_reported_by: FinishedBy | None = None

    @property
    def saving(self) -> bool:
        """RunningHub succeeded and the result is being copied (the page: "Salvando
        resultado"); the job is still ``running`` and no deadline or cancel applies."""
        return self.status.is_active and self.output_copy is not None

    @property
    def clock_start(self) -> datetime:
        """Where the first upstream check (``WATCHDOG_INITIAL_DELAY_MS``) and the running time
        count from: the start in the database, never a page's clock (its creation while it is
        still queued). The deadline counts from :attr:`deadline_from`."""
        return self.started_at or self.created_at

    @property
    def deadline_from(self) -> datetime:
        """Where the deadline (``WATCHDOG_MAX_TIMEOUT_MS``) counts from: the submission.

        The plan's 12 minutes are "timeout total", what the person waits: time in the queue
        counts. (Counting from the start, a job queued for 11 minutes got 12 more when a slot
        freed — 24 minutes of "processando".) A job is never started past its deadline.
        """
        return self.created_at


@dataclass(frozen=True)
class ActiveSummary:
    """How many jobs are active across every tool, and when the oldest was submitted (the
    operator's gauges: ``/metrics``)."""

    count: int
    oldest_created_at: datetime | None


@dataclass(frozen=True)
class User:
    id: str
    credits: int
    is_admin: bool = False


@dataclass(frozen=True)
class Account:
    """A RunningHub account (API key) and how many tasks it may run at once."""

    name: str
    api_key: str
    max_concurrent: int
    in_flight: int = 0
    enabled: bool = True
    disabled_reason: str | None = None

    def __repr__(self) -> str:  # never print the key
        return f"Account(name={self.name!r}, in_flight={self.in_flight}/{self.max_concurrent})"


@dataclass(frozen=True)
class FinishRequest:
    """What a path asks of the one finish transition."""

    status: JobStatus
    finished_by: FinishedBy
    output_url: str | None = None
    error_message: str | None = None
    #: Only a job running this RunningHub task and not saving a result: a webhook's finish,
    #: tried before any read of the job (``FinishResult.changed`` false otherwise, with the job
    #: as it was — possibly still active). ``None``: any active job, as every other path asks.
    task_id: str | None = None


@dataclass(frozen=True)
class FinishResult:
    #: True only for the single caller whose conditional update changed the row.
    changed: bool
    job: Job
    refunded: bool = False


@dataclass(frozen=True)
class NewJob:
    id: str
    table: str
    user_id: str
    cost: int
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookRecord:
    """A webhook event to record: written at once, or later in bulk (one that changed
    nothing: a retried delivery of a job that has ended); ``received_at`` is when it came, not
    when it was written."""

    received_at: datetime
    outcome: WebhookOutcome
    table: str | None = None
    job_id: str | None = None
    task_id: str | None = None
    detail: str | None = None
    body: str | None = None
    #: Applied to its job (then ``applied_at`` is ``received_at``).
    applied: bool = False
