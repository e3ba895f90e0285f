"""docs/openapi.yaml is the HTTP contract: it lists exactly the routes we mount, and
Schemathesis, driving the real ``serve-api`` over HTTP with it, finds no 5xx, no error that is
not ``{"error": …}`` (the plan's own sync replies excepted: they are the plan's, exactly) and
no response that does not match its schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import hypothesis
import requests
import schemathesis
import yaml
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.routing import Mount, Route

from arcano_tools.api.routes import create_api
from arcano_tools.config import Settings
from arcano_tools.services.queue_manager import webhook_token
from tests.support.fixtures import EmulatorControl
from tests.support.servers import (
    SERVICE_KEY,
    SYNC_PATH,
    Backend,
    get_job,
    submit_upscale,
    wait_for,
    wait_synced,
    wait_terminal,
)

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

#: Examples per operation: 12 operations × this stays well under a minute (``--durations``).
MAX_EXAMPLES = 20

schema = schemathesis.openapi.from_path(OPENAPI)


def _operations_documented() -> set[tuple[str, str]]:
    document = yaml.safe_load(OPENAPI.read_text())
    return {
        (method.upper(), _shape(path))
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def _operations_mounted() -> set[tuple[str, str]]:
    app = create_api(SimpleNamespace(emulator_app=None))  # type: ignore[arg-type]
    mounted = set()
    for route in app.routes:
        if isinstance(route, Mount):
            continue
        assert isinstance(route, Route), route
        for method in route.methods or ():
            if method != "HEAD":  # Starlette answers HEAD for every GET itself
                mounted.add((method, _shape(route.path)))
    return mounted


def _shape(path: str) -> str:
    """``/api/jobs/{table}/{job_id}`` and ``…/{jobId}`` alike: parameter names aside."""
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_the_document_lists_exactly_the_mounted_routes() -> None:
    documented, mounted = _operations_documented(), _operations_mounted()
    assert mounted - documented == set(), "mounted but not in docs/openapi.yaml"
    assert documented - mounted == set(), "in docs/openapi.yaml but not mounted"


def test_the_document_is_valid_openapi() -> None:
    schema.validate()


# --- Schemathesis against the real server ---------------------------------------------------

#: Operations that need the service key (the others are called as a user).
SERVICE_OPERATIONS = {"POST /functions/v1/runninghub-queue-manager/finish", "GET /metrics"}


#: Where schema-valid data may rightly be refused, because the rule is beyond JSON Schema:
#: "a real PNG" (generated files are refused, 415) and "a string of JSON" (``eventData``).
SCHEMA_CANNOT_SAY = {"POST /api/jobs", "POST /webhooks/runninghub"}


#: Who the generated requests come from (as a user).
FUZZ_USER = "fuzz-user"

#: The one 5xx the plan itself answers (an account without an API key), not an ``{"error"}``.
PLAN_NO_API_KEY = {"synced": False, "reason": "no_api_key"}


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_the_api_keeps_its_contract(case: Any, backend_on_each_db: Backend) -> None:
    """Generated requests (valid and invalid, per the document) as a user, or as the service
    where only the service may call; Schemathesis's checks (no 5xx, documented status codes,
    content types and bodies, auth enforced) and ours: every error is ``{"error": …}``."""
    b = backend_on_each_db
    label = f"{case.method} {case.path}"
    headers = b.service_headers if label in SERVICE_OPERATIONS else b.user_headers(FUZZ_USER)
    excluded = [positive_data_acceptance] if label in SCHEMA_CANNOT_SAY else []
    with requests.Session() as session:
        response = case.call_and_validate(
            base_url=b.url,
            session=session,
            headers=headers,
            excluded_checks=excluded,
            timeout=30,
        )
    if response.status_code < 400:
        return
    body = response.json()
    if case.path == SYNC_PATH and response.status_code == 500 and body == PLAN_NO_API_KEY:
        return
    assert response.status_code < 500, response.text
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str), body
    assert body["error"], body


# --- what fuzzing cannot reach: real jobs' replies, each checked against the document --------

FINISH_PATH = "/functions/v1/runninghub-queue-manager/finish"
OUTPUT_URL = "https://rh-images.xiaoyaoyou.com/out/contract.png"


def conforms(response: httpx.Response, status: int, template: str | None = None) -> Any:
    """``response`` has ``status`` and matches what the document says of it; its JSON."""
    assert response.status_code == status, response.text
    response.request.read()  # a multipart body is streamed: read for the validator
    method = response.request.method
    path = template or response.request.url.path
    schema[path][method].validate_response(response)
    if response.headers["content-type"].startswith("application/json"):
        return response.json()
    return response.text


def test_real_replies_match_the_document(
    backend_on_each_db: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    b = backend_on_each_db
    mine, service = b.user_headers(user), b.service_headers
    job_path = "/api/jobs/{table}/{jobId}"
    # generated submits may have been real images: the fuzzer's jobs would hold the account's
    # slots until their deadline once the emulator below forgets their tasks
    fuzz = b.user_headers(FUZZ_USER)
    for job in client.get(b.url + "/api/jobs", headers=fuzz).json()["jobs"]:
        if job["status"] in ("pending", "queued", "starting", "running"):
            client.post(f"{b.url}/api/jobs/{job['table']}/{job['id']}/cancel", headers=fuzz)
    conforms(client.get(b.url + "/healthz"), 200)
    conforms(client.get(b.url + "/api/me", headers=mine), 200)
    assert conforms(client.get(b.url + "/api/me", headers=service), 200)["service"] is True
    conforms(client.get(b.url + "/api/jobs", headers=service), 200)
    conforms(client.get(b.url + "/metrics", headers=service), 200)

    # a job that runs until told: submitted, seen, synced, finished by the service
    emu.set(outcome="never")
    job_id = conforms(submit_upscale(client, b, user), 201)["jobId"]
    url = f"{b.url}/api/jobs/upscaler_jobs/{job_id}"
    conforms(client.get(url, headers=mine), 200, job_path)
    wait_for(lambda: get_job(client, b, user, job_id)["status"] == "running", what="running")
    ref = {"table": "upscaler_jobs", "jobId": job_id}
    sync = conforms(client.post(b.url + SYNC_PATH, headers=mine, json=ref), 200)
    assert sync["reason"] in ("still_processing", "no_task_id")
    done = {**ref, "status": "completed", "outputUrl": OUTPUT_URL}
    assert conforms(client.post(b.url + FINISH_PATH, headers=service, json=done), 200)["changed"]
    again = conforms(client.post(b.url + FINISH_PATH, headers=service, json=done), 200)
    assert again["changed"] is False
    sync = conforms(client.post(b.url + SYNC_PATH, headers=mine, json=ref), 200)
    assert sync["reason"] == "already_terminal"
    events = conforms(client.get(url + "/events", headers=mine), 200, job_path + "/events")
    assert events.endswith("event: end\ndata: {}\n\n")
    conforms(client.get(b.url + "/api/jobs", headers=mine), 200)

    # another, cancelled by its owner (twice: the second is a 409)
    other = submit_upscale(client, b, user).json()["jobId"]
    cancel = f"{b.url}/api/jobs/upscaler_jobs/{other}/cancel"
    assert conforms(client.post(cancel, headers=mine), 200, job_path + "/cancel")["refunded"]
    conforms(client.post(cancel, headers=mine), 409, job_path + "/cancel")
    ref = {"table": "upscaler_jobs", "jobId": other}
    assert conforms(client.post(b.url + SYNC_PATH, headers=mine, json=ref), 200)["status"] == (
        "cancelled"
    )

    # one that completes upstream while its webhook is lost: the sync finishes it
    emu.set(outcome="success", webhook="drop")
    lost = submit_upscale(client, b, user).json()["jobId"]
    synced = wait_synced(client, b, user, lost)
    schema[SYNC_PATH]["POST"].validate_response(
        client.post(b.url + SYNC_PATH, headers=mine, json={"table": "upscaler_jobs", "jobId": lost})
    )
    assert synced["status"] == "completed"

    # one whose webhook arrives, then again (a duplicate), and old-style copies of it
    emu.set(webhook="deliver")
    delivered = submit_upscale(client, b, user).json()["jobId"]
    task_id = wait_terminal(client, b, user, delivered)["taskId"]
    secret = Settings(ARCANO_SERVICE_KEY=SERVICE_KEY).webhook_secret
    token = webhook_token(secret, "upscaler_jobs", delivered)
    envelope = json.dumps({"code": 0, "msg": "success", "data": [{"fileUrl": OUTPUT_URL}]})
    event = {"event": "TASK_END", "taskId": task_id, "eventData": envelope}
    hook = f"{b.url}/webhooks/runninghub/upscaler_jobs/{delivered}?token={token}"
    assert conforms(client.post(hook, json=event), 200, "/webhooks/runninghub/{table}/{jobId}")[
        "duplicate"
    ]
    assert conforms(client.post(b.url + "/webhooks/runninghub", json=event), 200)["duplicate"]
    unknown = {**event, "taskId": "9" * 19}
    assert conforms(client.post(b.url + "/webhooks/runninghub", json=unknown), 202)["kept"]
