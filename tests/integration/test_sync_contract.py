"""Every reply of the plan's sync contract (``runninghub-job-sync``), each in its own test,
through the real API server and the emulator."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from arcano_tools import constants as c
from tests.support.fixtures import EmulatorControl
from tests.support.servers import (
    Backend,
    call_sync,
    get_job,
    submit_upscale,
    wait_for,
    wait_synced,
)


def running_job(client: httpx.Client, backend: Backend, user: str) -> str:
    job_id = str(submit_upscale(client, backend, user).json()["jobId"])
    wait_for(lambda: get_job(client, backend, user, job_id)["status"] == "running", what="running")
    return job_id


def test_missing_table_or_job_id_is_400(backend: Backend, client: httpx.Client, user: str) -> None:
    for body in ({}, {"table": "upscaler_jobs"}, {"jobId": "x"}, {"table": "", "jobId": ""}):
        r = call_sync(client, backend, user, body)
        assert r.status_code == 400
        assert r.json() == {"error": "Missing table or jobId"}


def test_invalid_table_is_400(backend: Backend, client: httpx.Client, user: str) -> None:
    r = call_sync(client, backend, user, {"table": "users", "jobId": "x"})
    assert r.status_code == 400
    assert r.json() == {"error": "Invalid table"}


def test_unknown_job_is_404(backend: Backend, client: httpx.Client, user: str) -> None:
    r = call_sync(client, backend, user, {"table": "upscaler_jobs", "jobId": "nope"})
    assert r.status_code == 404
    assert r.json() == {"error": "Job not found", "synced": False}


def test_terminal_job_answers_already_terminal(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    job_id = submit_upscale(client, backend, user).json()["jobId"]
    job = wait_for(
        lambda: (j := get_job(client, backend, user, job_id))["status"] == "completed" and j,
        what="completion",
    )
    r = call_sync(client, backend, user, {"table": "upscaler_jobs", "jobId": job_id})
    assert r.status_code == 200
    assert r.json() == {
        "synced": False,
        "reason": "already_terminal",
        "status": "completed",
        "outputUrl": job["outputUrl"],
    }


def test_job_without_task_id_answers_no_task_id(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    emu.set(queue_full_next=1000)  # RunningHub keeps refusing: the job stays queued
    job_id = submit_upscale(client, backend, user).json()["jobId"]
    wait_for(lambda: emu.stats()["queue_full_answers"] >= 1, what="a 421")
    r = call_sync(client, backend, user, {"table": "upscaler_jobs", "jobId": job_id})
    assert r.status_code == 200
    assert r.json() == {"synced": False, "reason": "no_task_id"}
    assert get_job(client, backend, user, job_id)["status"] in ("queued", "starting")
    client.post(
        f"{backend.url}/api/jobs/upscaler_jobs/{job_id}/cancel", headers=backend.user_headers(user)
    )


@pytest.fixture
def endless_job(backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str) -> str:
    """A running job of ``user`` whose task never ends upstream (cancelled after the test)."""
    emu.set(outcome="never")
    return running_job(client, backend, user)


@pytest.fixture
def keyless_job(backend: Backend, endless_job: str) -> Iterator[str]:
    """A running job whose account then lost its API key (the key is put back after)."""
    ((key,),) = backend.rows("SELECT api_key FROM runninghub_accounts")
    backend.rows("UPDATE runninghub_accounts SET api_key = '' RETURNING 1")
    yield endless_job
    backend.rows("UPDATE runninghub_accounts SET api_key = :k RETURNING 1", k=key)


def test_account_without_api_key_answers_500_no_api_key(
    backend: Backend, client: httpx.Client, user: str, keyless_job: str
) -> None:
    r = call_sync(client, backend, user, {"table": "upscaler_jobs", "jobId": keyless_job})
    assert r.status_code == 500
    assert r.json() == {"synced": False, "reason": "no_api_key"}


def test_a_job_whose_account_lost_its_key_still_times_out(
    backend: Backend, client: httpx.Client, user: str, keyless_job: str
) -> None:
    body = wait_synced(client, backend, user, keyless_job, timeout=30)
    assert body["status"] == "failed"
    assert body["errorMessage"].startswith("Timeout")


def test_runninghub_http_error_answers_api_error(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str, endless_job: str
) -> None:
    job_id = endless_job
    emu.set(http_error_rate=1.0)
    r = call_sync(client, backend, user, {"table": "upscaler_jobs", "jobId": job_id})
    assert r.status_code == 200
    body = r.json()
    assert body["synced"] is False
    assert body["reason"] == "api_error"
    assert body["status"] in (500, 502)


def test_unfinished_task_answers_still_processing_with_runninghub_code(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str, endless_job: str
) -> None:
    job_id = endless_job
    r = call_sync(client, backend, user, {"table": "upscaler_jobs", "jobId": job_id})
    assert r.status_code == 200
    body = r.json()
    assert body["synced"] is False
    assert body["reason"] == "still_processing"
    assert body["rhCode"] == 804
    assert body["rhMsg"]


def test_a_sync_before_the_next_check_is_due_answers_from_what_is_known(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str, endless_job: str
) -> None:
    job_id = endless_job
    first = call_sync(client, backend, user, {"table": "upscaler_jobs", "jobId": job_id}).json()
    second = call_sync(client, backend, user, {"table": "upscaler_jobs", "jobId": job_id}).json()
    assert first.get("cached") is None
    assert second == {
        "synced": False,
        "reason": "still_processing",
        "rhCode": 804,
        "rhMsg": first["rhMsg"],
        "cached": True,
    }
    assert emu.stats()["calls"]["outputs"] == 1


def test_finished_task_answers_synced_completed(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    emu.set(webhook="drop")
    job_id = running_job(client, backend, user)
    wait_for(lambda: emu.stats()["tasks"]["succeeded"] >= 1, what="upstream success")
    body = wait_synced(client, backend, user, job_id)
    assert set(body) == {"synced", "status", "outputUrl"}
    assert body["status"] == "completed"


def test_failed_task_answers_synced_failed_with_reason(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    emu.set(webhook="drop", outcome="fail")
    job_id = running_job(client, backend, user)
    wait_for(lambda: emu.stats()["tasks"]["failed"] >= 1, what="upstream failure")
    body = wait_synced(client, backend, user, job_id)
    assert set(body) == {"synced", "status", "errorMessage"}
    assert body["status"] == "failed"
    assert "CUDA out of memory" in body["errorMessage"]


def test_the_deadline_fails_the_job_with_the_timeout_message_and_cancels_upstream(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str, endless_job: str
) -> None:
    job_id = endless_job
    body = wait_synced(client, backend, user, job_id, timeout=30)
    # FAST_TIMINGS: 6 s (the plan's wording says "12 minutos" with the default setting)
    assert body == {
        "synced": True,
        "status": "failed",
        "errorMessage": "Timeout: processamento excedeu o tempo limite (6 segundos)",
    }
    wait_for(lambda: emu.stats()["tasks"]["cancelled"] >= 1, what="the upstream cancel")
    me = client.get(backend.url + "/api/me", headers=backend.user_headers(user)).json()
    assert me["credits"] == c.STARTING_CREDITS  # refunded
