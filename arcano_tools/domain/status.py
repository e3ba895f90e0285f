"""The job state machine (drawn in ``docs/jobs.md``).

``pending → queued → starting → running → completed | failed | cancelled``; any active status
may end in any terminal one. A terminal job never changes again: the only way out of an active
status is :meth:`arcano_tools.store.JobStore.finish`, a guarded ``UPDATE … WHERE status IN
(active)``.
"""

from __future__ import annotations

import enum


class JobStatus(enum.StrEnum):
    #: Row written, credits charged, not yet in the dispatch queue (a transient state).
    PENDING = "pending"
    #: Waiting for a free account slot (or for a retry after RunningHub's 421/415).
    QUEUED = "queued"
    #: A slot is held; inputs are being uploaded and the task created upstream.
    STARTING = "starting"
    #: RunningHub accepted the task; its ``task_id`` is stored.
    RUNNING = "running"
    #: RunningHub produced the output; ``output_url`` is set.
    COMPLETED = "completed"
    #: RunningHub or we gave up; ``error_message`` says why; credits refunded once.
    FAILED = "failed"
    #: The user cancelled; credits refunded once.
    CANCELLED = "cancelled"

    @property
    def is_active(self) -> bool:
        return self in ACTIVE_STATUSES

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


ACTIVE_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.PENDING, JobStatus.QUEUED, JobStatus.STARTING, JobStatus.RUNNING}
)
TERMINAL_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
)
#: Terminal statuses that give the credits back.
REFUND_STATUSES: frozenset[JobStatus] = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})


class FinishedBy(enum.StrEnum):
    """Which path performed a job's terminal transition (for the operator page and metrics)."""

    #: RunningHub's ``TASK_END`` webhook.
    WEBHOOK = "webhook"
    #: The sync endpoint, called by a page watchdog or a script (the plan's ``syncedViaWatchdog``).
    WATCHDOG = "watchdog"
    #: The server-side watchdog, with no browser involved.
    SERVER_WATCHDOG = "server_watchdog"
    #: The deadline passed: forced to ``failed`` with the plan's timeout message.
    TIMEOUT = "timeout"
    #: The user cancelled it.
    USER = "user"
    #: The queue manager could not start it (a permanent RunningHub error).
    DISPATCH = "dispatch"
    #: A service-key call of ``/finish`` without the watchdog flag.
    SERVICE = "service"


class LedgerKind(enum.StrEnum):
    """What a ``credit_ledger`` row records (its sign follows the kind)."""

    #: Starting credits of a new user (positive).
    GRANT = "grant"
    #: The price of a job, taken when it is submitted (negative).
    CHARGE = "charge"
    #: The price given back when a job fails or is cancelled (positive; once per job).
    REFUND = "refund"


class WebhookOutcome(enum.StrEnum):
    """What became of one webhook delivery (``webhook_events.outcome``, the operator page)."""

    #: It finished its job (or told us the job is still running).
    ACCEPTED = "accepted"
    #: Its job had already ended: a retry or a second copy, changing nothing.
    DUPLICATE = "duplicate"
    #: It arrived before the create call returned; its task id was stored from it.
    EARLY = "early"
    #: Bad token, unknown table or a task id that is not its job's: nothing changed.
    REJECTED = "rejected"
    #: Its body is not RunningHub's format; the job was synced from ``/outputs`` instead.
    MALFORMED = "malformed"
    #: Old-style webhook whose task id is not stored yet: kept, applied once it is.
    UNMATCHED = "unmatched"
    #: Valid, but about nothing we can act on (a job we do not have).
    IGNORED = "ignored"


class SyncReason(enum.StrEnum):
    """Why a sync did not finish its job (the plan's ``reason`` field)."""

    #: The job ended before this sync.
    ALREADY_TERMINAL = "already_terminal"
    #: RunningHub has not created the task yet (nothing to ask about).
    NO_TASK_ID = "no_task_id"
    #: The job's RunningHub account has no key (a configuration error).
    NO_API_KEY = "no_api_key"
    #: RunningHub says (or said at the last check, when ``cached``) the task is not done.
    STILL_PROCESSING = "still_processing"
    #: RunningHub did not answer usefully (HTTP error, network): try again later.
    API_ERROR = "api_error"


class OutputCopy(enum.StrEnum):
    """Where a job's result stands on its way into our storage (``output_copy``).

    RunningHub's links last about a day: once it reports success the job stays ``running``
    (the page says "Salvando resultado") while the output is copied and verified; ``None``
    means no copy was asked for (a job that never succeeded, or copying switched off).
    """

    #: Success is known (``upstream_output_url`` kept); the copy is being made or retried.
    SAVING = "saving"
    #: Our copy is stored (``output_key``); only the finish as ``completed`` is left.
    SAVED = "saved"
    #: Every try failed: the job completes (or completed) with RunningHub's URL; ``/admin``
    #: lists it.
    FAILED = "failed"
