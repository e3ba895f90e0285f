"""A job's life under arbitrary interleavings, as a Hypothesis state machine.

Hypothesis picks any order of: submitting, dispatching, RunningHub's webhook (right, duplicated,
contradicting an earlier one, forged), a page's sync, a server-watchdog tick, time passing
(through the deadline), a user's cancel and a service ``/finish``. After every step the promise
must hold for every job so far (``tests/support/invariants.py``), the account's slot count must
equal the jobs holding a slot, and no job may have gone through two terminal transitions; at
the end, past every deadline, every job must be terminal.

The same machine runs on the in-memory store (unit suite) and on PostgreSQL (integration).
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from arcano_tools.domain.errors import InsufficientCredits, JobNotCancellable
from arcano_tools.domain.records import FinishRequest, Job
from arcano_tools.domain.status import FinishedBy, JobStatus
from arcano_tools.emulator.tasks import oom_failure
from arcano_tools.emulator.webhooks import webhook_body
from tests.support.core import ACCOUNT, TIMINGS, Core, build_core, count_finishes
from tests.support.invariants import check_jobs

#: The emulator's outcomes a new task may get.
OUTCOMES = ("success", "fail", "never")
#: Jumps of the clock, in seconds: within an interval, past the first check, past the deadline.
TIME_STEPS = (1, 15, 31, 200, 13 * 60)
#: Past any job's deadline, plus one poll interval and a margin: everything must have ended.
FINAL_WAIT_S = TIMINGS.max_timeout.total_seconds() + 2 * TIMINGS.poll_interval.total_seconds()
OUTPUT_HOSTS = ("emulator.test",)


class JobLifeMachine(RuleBasedStateMachine):
    #: Where the store lives: ``None`` for the in-memory store; a SQLAlchemy URL otherwise.
    database_url: str | None = None

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory(prefix="job-life-")
        self.core: Core = self.run(build_core(Path(self.tmp.name), database_url=self.database_url))
        self.jobs: list[Job] = []
        self.finishes = count_finishes(self.core)
        self.user = f"u-{uuid.uuid4().hex[:12]}"

    # --- plumbing ----------------------------------------------------------------------------
    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _fresh(self, job: Job) -> Job:
        current = await self.core.store.get_job(job.table, job.id)
        assert current is not None
        return current

    def teardown(self) -> None:
        try:
            self.check_everything_ended()
        finally:
            self._close()

    def _close(self) -> None:
        try:
            self.run(self.core.background())
            self.run(self.core.webhooks.events.aclose())
            self.run(self.core.emulator.shutdown())
            self.run(self.core.client.aclose())
            self.run(self.core.store.close())
        finally:
            self.loop.close()
            self.tmp.cleanup()

    # --- rules ---------------------------------------------------------------------------------
    @initialize()
    def user_with_credits(self) -> None:
        self.run(self.core.store.ensure_user(self.user, credits=1_000))

    @rule(outcome=st.sampled_from(OUTCOMES))
    def submit(self, outcome: str) -> None:
        if len(self.jobs) >= 6:
            return
        self.core.control(outcome=outcome)
        try:
            job = self.run(self.core.submit("upscaler", self.user))
        except InsufficientCredits:
            return
        self.jobs.append(job)

    @precondition(lambda self: self.jobs)
    @rule()
    def dispatch(self) -> None:
        self.run(self.core.dispatch())
        self.run(self._settle_upstream())

    async def _settle_upstream(self) -> None:
        """Let the emulator finish whatever it will finish (never-ending tasks stay)."""
        for job in self.jobs:
            current = await self._fresh(job)
            if current.task_id and current.task_id in self.core.emulator.tasks:
                task = self.core.emulator.tasks[current.task_id]
                if task.settings.outcome != "never" and task.runner is not None:
                    await asyncio.wait_for(asyncio.shield(task.runner), 10)

    @precondition(lambda self: self.jobs)
    @rule(
        index=st.integers(0, 5),
        kind=st.sampled_from(("upstream", "duplicate", "failure", "forged", "other_job")),
    )
    def webhook(self, index: int, kind: str) -> None:
        self.run(self._webhook(self.jobs[index % len(self.jobs)], kind))

    async def _webhook(self, job: Job, kind: str) -> None:
        current = await self._fresh(job)
        task_id = current.task_id
        if task_id is None or task_id not in self.core.emulator.tasks:
            return
        task = self.core.emulator.tasks[task_id]
        receiver = self.core.webhooks
        if kind == "failure":  # a failure arriving after (or instead of) the real answer
            body = webhook_body(task_id, oom_failure(task.spec))
        elif task.envelope is None:
            return  # RunningHub has nothing to say yet
        else:
            body = webhook_body(task_id, task.envelope)
        token = self.core.token(current)
        if kind == "forged":
            token = "f" * len(token)
        if kind == "other_job":  # replayed against another job of ours
            others = [j for j in self.jobs if j.id != job.id]
            if not others:
                return
            other = others[0]
            await receiver.receive(other.table, other.id, self.core.token(other), body)
            return
        copies = 3 if kind == "duplicate" else 1
        for _ in range(copies):
            await receiver.receive(current.table, current.id, token, body)

    @precondition(lambda self: self.jobs)
    @rule(index=st.integers(0, 5))
    def page_sync(self, index: int) -> None:
        job = self.jobs[index % len(self.jobs)]
        current = self.run(self._fresh(job))
        self.run(self.core.sync.sync_job(current, finished_by=FinishedBy.WATCHDOG))

    @rule()
    def server_watchdog_tick(self) -> None:
        self.run(self.core.watchdog.tick())

    @rule(seconds=st.sampled_from(TIME_STEPS))
    def time_passes(self, seconds: int) -> None:
        self.core.clock.advance(seconds=seconds)

    @precondition(lambda self: self.jobs)
    @rule(index=st.integers(0, 5))
    def cancel(self, index: int) -> None:
        job = self.jobs[index % len(self.jobs)]
        try:
            result = self.run(self.core.queue.cancel(job.table, job.id, self.user))
        except JobNotCancellable:
            return
        self.run(self.core.queue.cancel_upstream(result.job))

    @precondition(lambda self: self.jobs)
    @rule(index=st.integers(0, 5), status=st.sampled_from(list(JobStatus)))
    def service_finish(self, index: int, status: JobStatus) -> None:
        if not status.is_terminal:
            return
        job = self.jobs[index % len(self.jobs)]
        url = "http://emulator.test/files/manual.png" if status is JobStatus.COMPLETED else None
        self.run(
            self.core.queue.finish(
                job.table,
                job.id,
                FinishRequest(status, FinishedBy.SERVICE, output_url=url, error_message="x"),
            )
        )

    # --- what must always hold -------------------------------------------------------------------
    @invariant()
    def promise_holds(self) -> None:
        self.run(self._promise(final=False))

    async def _promise(self, *, final: bool) -> None:
        refs = [(j.table, j.id) for j in self.jobs]
        found = await check_jobs(
            self.core.store, refs, allowed_output_hosts=OUTPUT_HOSTS, finishes=None
        )
        problems = [p for p in found.problems if final or " still " not in p]
        for ref in refs:
            if self.finishes[ref] > 1:
                problems.append(f"{ref[1]}: {self.finishes[ref]} terminal transitions")
            job = await self.core.store.get_job(*ref)
            assert job is not None
            if job.status.is_terminal and self.finishes[ref] != 1:
                problems.append(f"{ref[1]}: terminal after {self.finishes[ref]} transitions")
        held = 0
        for ref in refs:
            job = await self.core.store.get_job(*ref)
            held += bool(job and job.holds_slot)
        account = await self.core.store.get_account(ACCOUNT)
        if account is not None and account.in_flight != held:
            problems.append(f"account in_flight {account.in_flight} but {held} jobs hold a slot")
        assert not problems, "promise broken:\n  " + "\n  ".join(problems)

    def check_everything_ended(self) -> None:
        """Past every deadline, one more watchdog pass ends whatever is still active."""
        self.core.clock.advance(seconds=FINAL_WAIT_S)
        self.run(self.core.watchdog.tick())
        self.run(self._promise(final=True))
