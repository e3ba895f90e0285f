"""A backend stopped while its starts wait on RunningHub's create call (held by the emulator's
``latency_ms``): killed (SIGKILL), its starts go back in the queue as soon as their start lease
expires — seconds, not the old 5 minutes with both account slots held; stopped gracefully
(SIGTERM), it puts them back itself before exiting. Either way every job then completes
once, is charged once, and the account's slots are all free again.

The backend restarts on the same port, as a deployed one does, so the webhooks of tasks the
stopped starts created anyway (orphans: the create call has no idempotency key) still reach
it — and are never applied (the unit tests stage every ordering of that exactly)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from arcano_tools import constants as c
from arcano_tools.services.queue_manager import MSG_REQUEUED_INTERRUPTED
from tests.support.fixtures import EmulatorControl
from tests.support.processes import ServerProcess
from tests.support.servers import Backend, start_backend, start_server, submit_upscales
from tests.support.waiting import wait_for

#: Jobs submitted: two start (the account's two slots), two wait in the queue behind them.
JOBS = 4
#: The whole job must not reach its deadline during the test (FAST_TIMINGS make it 6 s).
ENV = {"WATCHDOG_MAX_TIMEOUT_MS": "60000"}
#: How long the emulator holds each call of the killed backend's starts (upload, then create):
#: the two creates must still be held when the test looks, after the four submissions have
#: returned — on a loaded machine those took longer than an upload and a create held 1.5 s
#: each, the look came late, and the kill found one start or none (a flaky test).
CALL_HELD_MS = 5000
#: A restarted backend recovers the dead starts within this long of being ready (the brief's
#: 10 s): the lease (6 s from the last renewal, up to 2 s before the kill) plus a recovery pass.
RECOVERY_BOUND_S = 10.0


def restart(backend: Backend) -> Backend:
    """The same server again: same port (the webhook URLs it handed out reach it), database
    and data directory."""
    port = int(backend.url.rsplit(":", 1)[1])
    api = start_server("api", ["serve-api", "--port", str(port)], backend.env, "/healthz", port)
    return Backend(api, backend.emulator_url, backend.database_url, backend.data_dir, backend.env)


def jobs(backend: Backend) -> dict[str, tuple[str, str | None, str | None]]:
    """``{job id: (status, task id, claim id)}`` straight from the database."""
    rows = backend.rows("SELECT id, status, task_id, claim_id FROM upscaler_jobs")
    return {job_id: (status, task_id, claim) for job_id, status, task_id, claim in rows}


def creates_in_flight(emu: EmulatorControl, n: int) -> None:
    """Wait until ``n`` create calls are held by the emulator at once (``latency_ms``): all
    reached it and none was answered yet. Counting the calls that reached it was not enough:
    on a loaded machine the first create could be answered before the second arrived, and the
    kill then found one start, not two."""
    try:
        wait_for(
            lambda: stat(emu, "calls_in_flight", "run") >= n,
            timeout=30,
            what=f"{n} create calls in flight",
        )
    except AssertionError as exc:  # what the emulator saw, to tell a slow start from a bug
        stats = emu.stats()
        raise AssertionError(
            f"{exc}; calls {stats['calls']}, now {stats['calls_in_flight']}"
        ) from exc


def stat(emu: EmulatorControl, group: str, name: str) -> int:
    """One counter of the emulator's ``/_stats`` (0 when not counted yet)."""
    counters: dict[str, int] = dict(emu.stats()[group])  # type: ignore[call-overload]
    return int(counters.get(name, 0))


def tasks_created(emu: EmulatorControl) -> int:
    return stat(emu, "tasks", "created")


def webhooks_settled(emu: EmulatorControl) -> bool:
    """Every task's webhook was answered 2xx or given up after RunningHub's retries."""
    done = stat(emu, "webhooks", "sent") + stat(emu, "webhooks", "failed")
    return done >= tasks_created(emu)


def assert_each_job_completed_once_and_charged_once(backend: Backend, user: str) -> None:
    assert {status for status, _, _ in jobs(backend).values()} == {"completed"}
    kinds = [
        kind
        for (kind,) in backend.rows("SELECT kind FROM credit_ledger WHERE user_id = :u", u=user)
    ]
    assert sorted(kinds) == ["charge"] * JOBS + ["grant"]  # charged once each, never refunded
    ((in_flight,),) = backend.rows("SELECT in_flight FROM runninghub_accounts")
    assert in_flight == 0


@pytest.fixture
def stopped() -> Iterator[list[Backend]]:
    """Backends started by a test, stopped at its end."""
    started: list[Backend] = []
    yield started
    for backend in started:
        backend.api.stop()


def test_a_killed_backends_starts_are_recovered_within_seconds_of_its_restart(
    emulator: ServerProcess,
    emu: EmulatorControl,
    tmp_path: Path,
    user: str,
    stopped: list[Backend],
) -> None:
    backend = start_backend(emulator.url, tmp_path, extra_env=ENV)
    stopped.append(backend)
    # uploads, then create calls, each held 2.5 s; the held creates land after the kill
    # (orphans) and their webhooks are dropped: arriving before the lease expires they would
    # be the dead starts' own early results (applied, as they should), which would spare this
    # test the recovery it is about. Set before they are created (the emulator snapshots its
    # settings then): set after the kill, a loaded machine let a create land first and its
    # webhook complete a job with the orphan task (5 tasks, not 6)
    emu.set(latency_ms=CALL_HELD_MS, webhook="drop")
    job_ids = submit_upscales(backend, user, JOBS)
    creates_in_flight(emu, 2)

    os.killpg(backend.api.process.pid, signal.SIGKILL)
    backend.api.process.wait(timeout=10)
    killed = time.monotonic()
    dead_claims = {claim for status, _, claim in jobs(backend).values() if status == "starting"}
    assert len(dead_claims) == 2  # both slots held by starts nobody will finish
    emu.set(latency_ms=0)
    wait_for(lambda: tasks_created(emu) >= 2, what="the orphan tasks")
    emu.set(webhook="deliver")

    again = restart(backend)
    stopped.append(again)
    ready = time.monotonic()

    def recovered() -> bool:
        return not dead_claims & {claim for _, _, claim in jobs(again).values()}

    wait_for(recovered, timeout=30, interval=0.1, what="the dead starts back in the queue")
    recovered_s = time.monotonic() - ready
    wait_for(
        lambda: {s for s, _, _ in jobs(again).values()} == {"completed"},
        timeout=30,
        interval=0.1,
        what="every job to complete",
    )
    completed_s = time.monotonic() - ready
    print(
        f"\nSIGKILL: restart ready {ready - killed:.1f} s after the kill; dead starts recovered "
        f"{recovered_s:.1f} s and all {JOBS} jobs completed {completed_s:.1f} s after it"
    )

    assert recovered_s <= RECOVERY_BOUND_S
    assert set(jobs(again)) == set(job_ids)
    assert_each_job_completed_once_and_charged_once(again, user)
    assert tasks_created(emu) == JOBS + 2  # each job's own task, and the two orphans
    assert c.START_LEASE_S + c.START_RECOVERY_EVERY_S < RECOVERY_BOUND_S


def test_a_gracefully_stopped_backend_puts_its_starts_back_in_the_queue_before_exiting(
    emulator: ServerProcess,
    emu: EmulatorControl,
    tmp_path: Path,
    user: str,
    stopped: list[Backend],
) -> None:
    backend = start_backend(emulator.url, tmp_path, extra_env=ENV)
    stopped.append(backend)
    # held longer than the stop's grace, so the create calls are still waiting when it ends
    emu.set(latency_ms=int((c.SHUTDOWN_START_GRACE_S + 0.8) * 1000))
    submit_upscales(backend, user, JOBS)
    creates_in_flight(emu, 2)

    stop_sent = time.monotonic()
    os.killpg(backend.api.process.pid, signal.SIGTERM)
    backend.api.process.wait(timeout=30)
    stop_s = time.monotonic() - stop_sent
    emu.set(latency_ms=0)

    # between the stop and the restart: back in the queue, due now, slots free, not counted
    rows = backend.rows(
        "SELECT status, start_failures, error_message, next_attempt_at <= CURRENT_TIMESTAMP "
        "FROM upscaler_jobs WHERE next_attempt_at IS NOT NULL"
    )
    assert [(status, failures, message) for status, failures, message, _ in rows] == [
        ("queued", 0, MSG_REQUEUED_INTERRUPTED)
    ] * 2
    ((in_flight,),) = backend.rows("SELECT in_flight FROM runninghub_accounts")
    assert in_flight == 0
    assert "starts in flight put back in the queue" in backend.api.log()

    again = restart(backend)
    stopped.append(again)
    ready = time.monotonic()
    wait_for(
        lambda: {s for s, _, _ in jobs(again).values()} == {"completed"},
        timeout=30,
        interval=0.1,
        what="every job to complete",
    )
    completed_s = time.monotonic() - ready
    print(
        f"\nSIGTERM: the stop took {stop_s:.1f} s (grace {c.SHUTDOWN_START_GRACE_S:g} s); all "
        f"{JOBS} jobs completed {completed_s:.1f} s after the restart was ready"
    )

    assert stop_s < c.SHUTDOWN_START_GRACE_S + 5
    assert completed_s <= 5.0  # due at once: no lease to wait for
    assert_each_job_completed_once_and_charged_once(again, user)
    # the interrupted create calls landed anyway (orphans, under the given-up claims): once
    # RunningHub has tried every webhook, none of theirs was applied
    assert tasks_created(emu) == JOBS + 2
    wait_for(lambda: webhooks_settled(emu), timeout=20, what="every webhook delivered or given up")
    job_tasks = {task for _, task, _ in jobs(again).values()}
    rows = again.rows("SELECT task_id, outcome FROM webhook_events")
    assert {outcome for task, outcome in rows if task not in job_tasks} <= {"duplicate", "rejected"}
    assert_each_job_completed_once_and_charged_once(again, user)
