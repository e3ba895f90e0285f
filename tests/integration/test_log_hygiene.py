"""No secret ever reaches a log line: the API key, the service key, the JWT secret, user
tokens and per-job webhook tokens, after a job's whole life including a forged webhook."""

from __future__ import annotations

import httpx

from arcano_tools.services.queue_manager import webhook_token
from tests.support.fixtures import EmulatorControl
from tests.support.servers import (
    JWT_SECRET,
    RH_API_KEY,
    SERVICE_KEY,
    Backend,
    submit_upscale,
    wait_for,
    wait_synced,
)


def test_logs_carry_actions_and_ids_but_no_secrets(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    emu.set(webhook="drop")
    job_id = submit_upscale(client, backend, user).json()["jobId"]
    wait_for(lambda: emu.stats()["tasks"]["succeeded"] >= 1, what="the task")
    wait_synced(client, backend, user, job_id)
    client.post(f"{backend.url}/webhooks/runninghub/upscaler_jobs/{job_id}?token=forged", json={})

    # the logging thread writes a moment's lines together (LOG_LINGER_S): the forged
    # webhook's, the last, is awaited before the log is read
    wait_for(lambda: "action=webhook_rejected" in backend.api.log(), what="the last line")
    log = backend.api.log()

    assert f"job_id={job_id}" in log  # the log is there and structured…
    assert "action=finish" in log
    token = webhook_token(("webhook:" + SERVICE_KEY).encode(), "upscaler_jobs", job_id)
    for secret in (RH_API_KEY, SERVICE_KEY, JWT_SECRET, backend.token(user), token):
        assert secret not in log  # …and holds none of these
