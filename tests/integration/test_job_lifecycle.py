"""A job's life through the real API server and the emulator as a real server: the happy path,
lost, early, duplicated and failing webhooks, and the queue's concurrency cap."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from arcano_tools import constants as c
from arcano_tools.emulator.control import EmulatorRandom
from arcano_tools.services.queue_manager import MSG_REQUEUED_RETRY
from tests.support.fixtures import EmulatorControl
from tests.support.postgres import create_database
from tests.support.processes import ServerProcess
from tests.support.servers import (
    Backend,
    call_sync,
    get_job,
    start_backend,
    submit_upscale,
    submit_upscales,
    wait_for,
    wait_synced,
    wait_terminal,
)
from tests.support.tools import tool_cost

UPSCALER_COST = tool_cost("upscaler")


def credits(client: httpx.Client, backend: Backend, user: str) -> int:
    r = client.get(backend.url + "/api/me", headers=backend.user_headers(user))
    assert r.status_code == 200, r.text
    return int(r.json()["credits"])


@pytest.fixture
def backend(backend_on_each_db: Backend) -> Backend:
    """Every test of this module runs on SQLite and on PostgreSQL."""
    return backend_on_each_db


@pytest.fixture
def patient_backend(
    backend: Backend, emulator: ServerProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Backend]:
    """``backend``'s kind of database, with a 30 s deadline: the deadline counts the time in
    the queue, and twenty jobs through two slots take longer than the suite's 6 s."""
    database_url = ""
    if backend.database_url:
        database_url = create_database(request.getfixturevalue("pg_server_url"))
    patient = start_backend(
        emulator.url, tmp_path, database_url, {"WATCHDOG_MAX_TIMEOUT_MS": "30000"}
    )
    yield patient
    patient.api.stop()


def webhook_events(backend: Backend, job_id: str) -> list[str]:
    rows = backend.rows(
        "SELECT outcome FROM webhook_events WHERE job_id = :j ORDER BY id", j=job_id
    )
    return [r[0] for r in rows]


def ledger(backend: Backend, job_id: str) -> list[tuple[str, int]]:
    rows = backend.rows(
        "SELECT kind, amount FROM credit_ledger WHERE job_id = :j ORDER BY id", j=job_id
    )
    return [(r[0], r[1]) for r in rows]


def test_happy_path_webhook_completes_the_job_and_charges_once(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    r = submit_upscale(client, backend, user, scale=2)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["table"] == "upscaler_jobs"
    assert body["status"] == "queued"

    job = wait_terminal(client, backend, user, body["jobId"])

    assert job["status"] == "completed"
    assert job["finishedBy"] == "webhook"
    assert job["taskId"]
    assert job["startedAt"]
    assert job["completedAt"]
    output = client.get(job["outputUrl"])
    assert output.status_code == 200
    assert output.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert credits(client, backend, user) == c.STARTING_CREDITS - UPSCALER_COST
    assert ledger(backend, body["jobId"]) == [("charge", -UPSCALER_COST)]
    # an applied delivery is recorded in the next bulk write (EventBuffer's half second)
    events = wait_for(lambda: webhook_events(backend, body["jobId"]), what="the event's record")
    assert events == ["accepted"]
    stats = emu.stats()
    assert stats["calls"].get("outputs", 0) == 0  # the sync was never needed


def test_lost_webhook_is_recovered_by_the_sync_endpoint(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    emu.set(webhook="drop")
    job_id = submit_upscale(client, backend, user).json()["jobId"]
    wait_for(lambda: emu.stats()["tasks"]["succeeded"] >= 1, what="the task to end upstream")
    assert get_job(client, backend, user, job_id)["status"] == "running"

    reply = wait_synced(client, backend, user, job_id)

    assert reply["status"] == "completed"
    assert reply["outputUrl"].startswith(backend.emulator_url)
    job = get_job(client, backend, user, job_id)
    assert job["status"] == "completed"
    assert job["finishedBy"] == "watchdog"
    assert job["outputUrl"] == reply["outputUrl"]
    assert emu.stats()["webhooks"]["dropped"] == 1


def test_early_webhook_finds_its_job_by_our_id(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    emu.set(webhook="early")
    job_id = submit_upscale(client, backend, user).json()["jobId"]

    job = wait_terminal(client, backend, user, job_id)

    assert job["status"] == "completed"
    assert job["finishedBy"] == "webhook"
    assert emu.stats()["webhooks"]["early"] == 1
    events = wait_for(lambda: webhook_events(backend, job_id), what="the event's record")
    assert events == ["early"], events  # never "Job not found", never rejected
    # the create call's answer arrived after the job ended: the task id is kept, status stays
    detail = wait_for(lambda: get_job(client, backend, user, job_id)["taskId"], what="task id")
    assert detail
    assert get_job(client, backend, user, job_id)["status"] == "completed"


def test_failed_task_fails_the_job_at_once_through_the_sync_with_refund(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    emu.set(webhook="drop", outcome="fail")
    job_id = submit_upscale(client, backend, user).json()["jobId"]
    wait_for(lambda: emu.stats()["tasks"]["failed"] >= 1, what="the task to fail upstream")

    reply = wait_synced(client, backend, user, job_id)

    assert reply["status"] == "failed"
    assert "CUDA out of memory" in reply["errorMessage"]
    job = get_job(client, backend, user, job_id)
    assert job["status"] == "failed"
    assert "CUDA out of memory" in job["errorMessage"]
    assert credits(client, backend, user) == c.STARTING_CREDITS
    assert ledger(backend, job_id) == [("charge", -UPSCALER_COST), ("refund", UPSCALER_COST)]


def test_failed_task_webhook_fails_the_job_with_the_reason(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    emu.set(outcome="fail")
    job_id = submit_upscale(client, backend, user).json()["jobId"]

    job = wait_terminal(client, backend, user, job_id)

    assert job["status"] == "failed"
    assert job["finishedBy"] == "webhook"
    assert "CUDA out of memory" in job["errorMessage"]
    assert credits(client, backend, user) == c.STARTING_CREDITS


def test_input_lost_before_the_start_fails_the_job_at_once_with_refund(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    """Retrying cannot bring a deleted upload back: no waiting for the timeout."""
    emu.set(queue_full_next=1000)  # hold the job in the queue
    job_id = submit_upscale(client, backend, user).json()["jobId"]
    wait_for(lambda: emu.stats()["queue_full_answers"] >= 1, what="a first attempt")
    uploads = [p for p in (backend.data_dir / "uploads").rglob("*") if job_id in str(p)]
    files = [p for p in uploads if p.is_file()]
    assert files, uploads
    for path in files:
        path.unlink()
    emu.set(queue_full_next=0)

    job = wait_terminal(client, backend, user, job_id)

    assert job["status"] == "failed"
    assert job["finishedBy"] == "dispatch"
    assert "envie o arquivo de novo" in job["errorMessage"]
    assert credits(client, backend, user) == c.STARTING_CREDITS
    assert ledger(backend, job_id) == [("charge", -UPSCALER_COST), ("refund", UPSCALER_COST)]
    ((in_flight,),) = backend.rows("SELECT SUM(in_flight) FROM runninghub_accounts")
    assert in_flight == 0
    wait_for(lambda: "is ARCANO_DATA_DIR shared" in backend.api.log(), what="the hint's line")


def test_a_network_error_after_a_long_busy_spell_does_not_give_up_on_the_job(
    patient_backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    """Six 421s then one 5xx: the job still has its failed-start budget and completes (its
    backoffs and the client's retries are real seconds: more than the suite's deadline)."""
    backend = patient_backend
    emu.set(queue_full_next=1)
    job_id = submit_upscale(client, backend, user).json()["jobId"]
    wait_for(lambda: emu.stats()["queue_full_answers"] >= 1, what="a first 421")
    # what five more 421s leave behind (their backoff would make this test take a minute)
    wait_for(
        lambda: backend.stage(
            (
                "UPDATE upscaler_jobs SET attempts = 6 "
                "WHERE id = :j AND status = 'queued' RETURNING id",
                {"j": job_id},
            )
        ),
        what="the job back in the queue",
    )
    emu.set(http_error_rate=1.0)  # RunningHub answers 5xx to everything, retries included

    def requeued_after_the_error() -> dict[str, Any] | None:
        job = get_job(client, backend, user, job_id)
        if job["status"] == "failed" or job["errorMessage"] == MSG_REQUEUED_RETRY:
            return job
        return None

    after_error = wait_for(requeued_after_the_error, what="the 5xx to reach the queue manager")
    emu.set(http_error_rate=0.0)

    assert after_error["status"] == "queued", after_error
    job = wait_terminal(client, backend, user, job_id)
    assert job["status"] == "completed", job
    assert credits(client, backend, user) == c.STARTING_CREDITS - UPSCALER_COST


def test_duplicates_finish_and_sync_make_one_transition_and_one_refund(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    emu.set(webhook="duplicate", outcome="fail")
    job_id = submit_upscale(client, backend, user).json()["jobId"]
    job = wait_terminal(client, backend, user, job_id)
    wait_for(lambda: emu.stats()["webhooks"]["sent"] >= 3, what="three webhook copies")

    finish = client.post(
        backend.url + "/functions/v1/runninghub-queue-manager/finish",
        headers=backend.service_headers,
        json={"table": "upscaler_jobs", "jobId": job_id, "status": "failed", "errorMessage": "x"},
    )
    again = call_sync(client, backend, user, {"table": "upscaler_jobs", "jobId": job_id})

    assert finish.status_code == 200
    assert finish.json()["changed"] is False
    assert finish.json()["refunded"] is False
    assert again.json() == {
        "synced": False,
        "reason": "already_terminal",
        "status": "failed",
        "outputUrl": None,
        "errorMessage": job["errorMessage"],
    }
    assert get_job(client, backend, user, job_id)["finishedBy"] == "webhook"
    assert credits(client, backend, user) == c.STARTING_CREDITS
    assert ledger(backend, job_id) == [("charge", -UPSCALER_COST), ("refund", UPSCALER_COST)]
    # duplicates are recorded in the next bulk write (within EventBuffer's half second)
    events = wait_for(
        lambda: (e := webhook_events(backend, job_id)).count("duplicate") >= 2 and e,
        what="the duplicates' records",
    )
    assert events.count("accepted") == 1
    assert events.count("duplicate") == 2


def test_twenty_jobs_on_two_slots_never_exceed_the_cap_and_all_finish(
    patient_backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    backend = patient_backend
    emu.set(task_ms=200, queue_full_next=4)

    job_ids = submit_upscales(backend, user, 20, workers=10)

    jobs = [wait_terminal(client, backend, user, j) for j in job_ids]

    assert [j["status"] for j in jobs] == ["completed"] * 20
    stats = emu.stats()
    assert stats["queue_full_answers"] == 4  # those jobs went back to the queue and still ended
    assert stats["tasks"]["max_running"] <= 2
    assert max(stats["tasks"]["max_running_by_key"].values()) <= 2
    assert stats["tasks"]["created"] == 20
    assert credits(client, backend, user) == c.STARTING_CREDITS - 20 * UPSCALER_COST


def old_style_webhook(
    client: httpx.Client, backend: Backend, task_id: str, envelope: dict[str, Any]
) -> httpx.Response:
    """``POST /webhooks/runninghub``: the URL without our job id, matched by ``taskId``."""
    return client.post(
        backend.url + "/webhooks/runninghub",
        json={"event": "TASK_END", "taskId": task_id, "eventData": json.dumps(envelope)},
    )


def kept_events(backend: Backend, task_id: str) -> list[tuple[str, bool]]:
    """The task's webhook events as (outcome, applied)."""
    rows = backend.rows(
        "SELECT outcome, applied_at FROM webhook_events WHERE task_id = :t ORDER BY id", t=task_id
    )
    return [(r[0], r[1] is not None) for r in rows]


def test_old_style_webhook_before_the_task_id_is_saved_is_kept_and_applied_when_it_is(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    # With a seed the emulator's task ids are known in advance: the id our next job's task
    # will get is staged as the old-style webhook of a task we do not know yet.
    seed = secrets.randbits(32)
    task_id = EmulatorRandom(seed).task_id()
    # "early": the task is done inside the create call, and its own webhook (to our job's URL)
    # is unreadable, so it cannot finish the job: only the kept event can.
    emu.set(seed=seed, webhook="early", malformed_webhook=True)

    kept = old_style_webhook(client, backend, task_id, {"code": 0, "data": []})

    assert kept.status_code == 202, kept.text
    assert kept.json() == {"ok": True, "kept": True}
    assert kept_events(backend, task_id) == [("unmatched", False)]

    job_id = submit_upscale(client, backend, user).json()["jobId"]
    job = wait_terminal(client, backend, user, job_id)

    assert job["taskId"] == task_id, "another task took the seeded id"
    # saving the task id applied the kept event: one check of /outputs finished the job
    assert kept_events(backend, task_id) == [("unmatched", True)]
    assert job["status"] == "completed", job
    assert job["finishedBy"] == "webhook"
    assert job["outputUrl"].startswith(backend.emulator_url)
    # its own webhook (and the emulator's re-sends of it) could not be read
    assert set(webhook_events(backend, job_id)) == {"malformed"}
    assert emu.stats()["calls"]["outputs"] == 1


def test_old_style_webhook_for_a_known_task_is_verified_against_outputs(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    emu.set(webhook="drop", task_ms=100)
    job_id = submit_upscale(client, backend, user).json()["jobId"]
    task_id = wait_for(lambda: get_job(client, backend, user, job_id)["taskId"], what="task id")
    wait_for(lambda: emu.stats()["tasks"]["succeeded"] >= 1, what="the task to end upstream")
    # anyone may post here: the claimed output is checked against /outputs before any change
    forged_url = "https://evil.example/x.png"

    r = old_style_webhook(client, backend, task_id, {"code": 0, "data": [{"fileUrl": forged_url}]})

    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed", r.text
    job = get_job(client, backend, user, job_id)
    assert job["status"] == "completed"
    assert job["outputUrl"] != forged_url
    assert job["outputUrl"].startswith(backend.emulator_url)
