"""The promise, as checks run after every reliability scenario (fault matrix, property-based
and race tests): whatever happened, each job ended once, was charged once and refunded exactly
when it failed or was cancelled, every balance equals its ledger, and no output URL points
outside http(s) and the allowed hosts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from arcano_tools.domain.records import Job
from arcano_tools.domain.repository import Repository
from arcano_tools.domain.status import REFUND_STATUSES, LedgerKind


@dataclass
class Violations:
    """Every broken promise found, as sentences (empty: the promise held)."""

    problems: list[str] = field(default_factory=list)

    def add(self, problem: str) -> None:
        self.problems.append(problem)

    def assert_none(self) -> None:
        assert not self.problems, "promise broken:\n  " + "\n  ".join(self.problems)


async def check_jobs(
    store: Repository,
    jobs: Sequence[tuple[str, str]],
    *,
    allowed_output_hosts: Iterable[str] | None = None,
    finishes: Counter[tuple[str, str]] | None = None,
) -> Violations:
    """Check the promise for ``jobs`` (``(table, id)`` pairs) and their users' balances.

    ``finishes`` counts the terminal transitions each job went through (from the services'
    own ``FinishResult.changed`` or from the ``job finished`` log lines): exactly one each.
    """
    found = Violations()
    hosts = {h.lower() for h in allowed_output_hosts} if allowed_output_hosts else None
    users: set[str] = set()
    for table, job_id in jobs:
        job = await store.get_job(table, job_id)
        if job is None:
            found.add(f"{table}/{job_id}: missing")
            continue
        users.add(job.user_id)
        _check_one(job, found, hosts)
        if finishes is not None and finishes[(table, job_id)] != 1:
            found.add(f"{job_id}: {finishes[(table, job_id)]} terminal transitions (want 1)")
        rows = [e for e in await store.ledger(job.user_id) if e["job_id"] == job_id]
        kinds = Counter(e["kind"] for e in rows)
        if kinds[LedgerKind.CHARGE.value] != 1:
            found.add(f"{job_id}: charged {kinds[LedgerKind.CHARGE.value]} times (want 1)")
        want_refunds = 1 if job.status in REFUND_STATUSES else 0
        if kinds[LedgerKind.REFUND.value] != want_refunds:
            found.add(
                f"{job_id}: {job.status.value} with {kinds[LedgerKind.REFUND.value]} refunds "
                f"(want {want_refunds})"
            )
    for user_id in sorted(users):
        user = await store.get_user(user_id)
        ledger_sum = sum(e["amount"] for e in await store.ledger(user_id))
        if user is None or user.credits != ledger_sum:
            balance = user.credits if user else None
            found.add(f"user {user_id}: balance {balance} but ledger sums to {ledger_sum}")
    return found


def _check_one(job: Job, found: Violations, hosts: set[str] | None) -> None:
    if not job.status.is_terminal:
        found.add(f"{job.id}: still {job.status.value}")
    if job.output_url is None:
        return
    parts = urlsplit(job.output_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        found.add(f"{job.id}: output URL {job.output_url!r} is not http(s)")
    elif hosts is not None and parts.hostname.lower() not in hosts:
        found.add(f"{job.id}: output URL host {parts.hostname!r} is not allowed")
