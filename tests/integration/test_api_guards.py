"""Who may call what, and bad input: clear 4xx errors that create nothing and charge nothing."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from arcano_tools import constants as c
from arcano_tools.api.routes import MSG_INTERNAL, _route
from arcano_tools.services.auth import issue_user_token
from tests.support.fixtures import EmulatorControl
from tests.support.images import png_bytes
from tests.support.processes import ServerProcess
from tests.support.servers import (
    SYNC_PATH,
    Backend,
    get_job,
    start_backend,
    submit_job,
    submit_upscale,
    wait_for,
    wait_terminal,
)
from tests.support.tools import tool_cost


def my_jobs(client: httpx.Client, backend: Backend, user: str) -> list[dict[str, object]]:
    r = client.get(backend.url + "/api/jobs", headers=backend.user_headers(user))
    assert r.status_code == 200
    return list(r.json()["jobs"])


def my_credits(client: httpx.Client, backend: Backend, user: str) -> int:
    return int(
        client.get(backend.url + "/api/me", headers=backend.user_headers(user)).json()["credits"]
    )


@pytest.fixture
def endless_job(backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str) -> str:
    """A job of ``user`` just submitted, whose task never ends upstream (cancelled after)."""
    emu.set(outcome="never")
    return str(submit_upscale(client, backend, user).json()["jobId"])


# --- auth ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/jobs"),
        ("GET", "/api/jobs"),
        ("GET", "/api/me"),
        ("GET", "/api/jobs/upscaler_jobs/x"),
        ("POST", "/api/jobs/upscaler_jobs/x/cancel"),
        ("POST", "/functions/v1/runninghub-job-sync"),
        ("POST", "/functions/v1/runninghub-queue-manager/finish"),
    ],
)
def test_no_token_is_401(backend: Backend, client: httpx.Client, method: str, path: str) -> None:
    r = client.request(method, backend.url + path, json={})
    assert r.status_code == 401
    assert "error" in r.json()


def test_forged_and_expired_user_tokens_are_401(backend: Backend, client: httpx.Client) -> None:
    forged = issue_user_token("not-the-secret-" + "x" * 32, "mallory")
    expired = issue_user_token("test-jwt-secret-" + "s" * 32, "mallory", ttl_s=-10)
    for token in (forged, expired, "garbage"):
        r = client.get(backend.url + "/api/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401


def test_another_users_job_is_404_everywhere(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str, endless_job: str
) -> None:
    job_id = endless_job
    other = backend.user_headers(user + "-other")
    base = f"{backend.url}/api/jobs/upscaler_jobs/{job_id}"
    wait_for(
        lambda: client.get(base, headers=backend.user_headers(user)).json()["status"] == "running",
        what="the task to run upstream",
    )
    assert client.get(base, headers=other).status_code == 404
    assert client.post(base + "/cancel", headers=other).status_code == 404
    r = client.post(
        backend.url + "/functions/v1/runninghub-job-sync",
        headers=other,
        json={"table": "upscaler_jobs", "jobId": job_id},
    )
    assert r.status_code == 404
    assert r.json() == {"error": "Job not found", "synced": False}
    # the owner and the service key do see it
    assert client.get(base, headers=backend.user_headers(user)).status_code == 200
    assert client.get(base, headers=backend.service_headers).status_code == 200
    cancel = client.post(base + "/cancel", headers=backend.user_headers(user))
    assert cancel.status_code == 200
    assert cancel.json()["status"] == "cancelled"
    assert cancel.json()["refunded"] is True
    wait_for(lambda: emu.stats()["tasks"]["cancelled"] >= 1, what="upstream cancel")


def test_finish_needs_the_service_key(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str, endless_job: str
) -> None:
    job_id = endless_job
    body = {
        "table": "upscaler_jobs",
        "jobId": job_id,
        "status": "completed",
        "outputUrl": "https://rh-images.xiaoyaoyou.com/out/y.png",
    }
    finish = backend.url + "/functions/v1/runninghub-queue-manager/finish"
    assert client.post(finish, json=body).status_code == 401
    assert client.post(finish, json=body, headers=backend.user_headers(user)).status_code == 401
    assert get_job(client, backend, user, job_id)["status"] in ("queued", "starting", "running")

    ok = client.post(finish, json=body, headers=backend.service_headers)
    assert ok.status_code == 200
    assert ok.json()["changed"] is True
    again = client.post(finish, json=body, headers=backend.service_headers)
    assert again.json()["changed"] is False
    assert again.json()["job"]["status"] == "completed"


def test_finish_refuses_an_output_url_that_is_not_http(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str, endless_job: str
) -> None:
    job_id = endless_job
    finish = backend.url + "/functions/v1/runninghub-queue-manager/finish"
    for url in (
        "javascript:alert(1)",
        "data:text/html,x",
        42,
        "https://evil.example/y.png",  # http(s), but not one of RunningHub's file hosts
        "https://user:pw@rh-images.xiaoyaoyou.com/y.png",
    ):
        r = client.post(
            finish,
            headers=backend.service_headers,
            json={
                "table": "upscaler_jobs",
                "jobId": job_id,
                "status": "completed",
                "outputUrl": url,
            },
        )
        assert r.status_code == 400
    assert get_job(client, backend, user, job_id)["outputUrl"] is None


def test_a_chunked_upload_without_length_is_refused_before_reading(
    backend: Backend, client: httpx.Client, user: str
) -> None:
    boundary = "xyz"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="tool"\r\n\r\nupscaler\r\n'
        f"--{boundary}--\r\n"
    ).encode()

    def chunks():  # type: ignore[no-untyped-def]
        yield body

    r = client.post(
        backend.url + "/api/jobs",
        headers={
            **backend.user_headers(user),
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
        content=chunks(),
    )
    assert r.status_code == 411
    assert_nothing_created(client, backend, user)


def test_a_webhook_token_with_unicode_is_a_401_not_a_crash(
    backend: Backend, client: httpx.Client
) -> None:
    r = client.post(f"{backend.url}/webhooks/runninghub/upscaler_jobs/x?token=%C3%A9", json={})
    assert r.status_code == 401


def test_forged_webhook_token_is_401_and_changes_nothing(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str, endless_job: str
) -> None:
    job_id = endless_job
    payload = {
        "event": "TASK_END",
        "taskId": "123",
        "eventData": json.dumps({"code": 0, "data": [{"fileUrl": "https://evil.example/a.png"}]}),
    }
    for token in ("", "0" * 32, "deadbeef"):
        r = client.post(
            f"{backend.url}/webhooks/runninghub/upscaler_jobs/{job_id}?token={token}", json=payload
        )
        assert r.status_code == 401
    r = client.post(f"{backend.url}/webhooks/runninghub/upscaler_jobs/{job_id}", json=payload)
    assert r.status_code == 401
    job = get_job(client, backend, user, job_id)
    assert job["status"] in ("queued", "starting", "running")
    assert job["outputUrl"] is None


def test_malformed_webhook_with_a_valid_token_is_recorded_and_the_job_resynced(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    emu.set(malformed_webhook=True)
    job_id = submit_upscale(client, backend, user).json()["jobId"]
    job = wait_terminal(client, backend, user, job_id)
    assert job["status"] == "completed", "the job completes despite the malformed webhook"
    assert job["finishedBy"] == "webhook"
    assert backend.api.process.poll() is None  # nothing crashed


# --- bad input ----------------------------------------------------------------------------------


def assert_nothing_created(client: httpx.Client, backend: Backend, user: str) -> None:
    assert my_jobs(client, backend, user) == []
    assert my_credits(client, backend, user) == c.STARTING_CREDITS


def test_text_file_renamed_png_is_415(backend: Backend, client: httpx.Client, user: str) -> None:
    r = submit_job(
        client,
        backend,
        user,
        {"tool": "upscaler", "scale": "2"},
        {"image": ("foto.png", b"just some text, not an image", "image/png")},
    )
    assert r.status_code == 415
    assert "não é uma imagem válida" in r.json()["error"]
    assert_nothing_created(client, backend, user)


def test_oversized_image_is_413(backend: Backend, client: httpx.Client, user: str) -> None:
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (c.MAX_IMAGE_BYTES + 10)
    r = submit_job(
        client,
        backend,
        user,
        {"tool": "upscaler", "scale": "2"},
        {"image": ("big.png", big, "image/png")},
    )
    assert r.status_code == 413
    assert "limite" in r.json()["error"]
    assert_nothing_created(client, backend, user)


def test_image_too_large_in_pixels_is_413(
    backend: Backend, client: httpx.Client, user: str
) -> None:
    wide = png_bytes((c.MAX_IMAGE_SIDE_PX + 1, 8), 0, mode="L")
    r = submit_upscale(client, backend, user, image=wide)
    assert r.status_code == 413
    assert_nothing_created(client, backend, user)


def test_missing_field_is_422(backend: Backend, client: httpx.Client, user: str) -> None:
    r = submit_job(
        client, backend, user, {"tool": "veste_ai"}, {"image": ("p.png", png_bytes(), "image/png")}
    )
    assert r.status_code == 422
    assert "garment_image" in r.json()["error"]
    r = submit_job(
        client, backend, user, {"tool": "upscaler"}, {"image": ("p.png", png_bytes(), "image/png")}
    )
    assert r.status_code == 422
    assert "scale" in r.json()["error"]
    assert_nothing_created(client, backend, user)


def test_bad_scale_and_unknown_tool_are_422(
    backend: Backend, client: httpx.Client, user: str
) -> None:
    r = submit_upscale(client, backend, user, scale=3)
    assert r.status_code == 422
    assert "Escala inválida" in r.json()["error"]
    r = submit_job(
        client, backend, user, {"tool": "photoshop"}, {"image": ("p.png", png_bytes(), "image/png")}
    )
    assert r.status_code == 422
    assert "Ferramenta desconhecida" in r.json()["error"]
    assert_nothing_created(client, backend, user)


def test_not_multipart_is_415(backend: Backend, client: httpx.Client, user: str) -> None:
    r = client.post(
        backend.url + "/api/jobs", headers=backend.user_headers(user), json={"tool": "upscaler"}
    )
    assert r.status_code == 415
    assert_nothing_created(client, backend, user)


def test_insufficient_credits_is_402_and_charges_nothing(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    emu.set(outcome="never")
    videos = c.STARTING_CREDITS // tool_cost("video_upscaler")  # as many as the credits pay
    left = c.STARTING_CREDITS - videos * tool_cost("video_upscaler")
    assert left < tool_cost("upscaler")  # then not even an upscale is paid for
    for _ in range(videos):
        r = submit_job(
            client,
            backend,
            user,
            {"tool": "video_upscaler", "scale": "2"},
            {"video": ("v.mp4", b"\0\0\0\x18ftypisom" + b"\0" * 64, "video/mp4")},
        )
        assert r.status_code == 201, r.text
    r = submit_upscale(client, backend, user)
    assert r.status_code == 402
    assert "Créditos insuficientes" in r.json()["error"]
    assert my_credits(client, backend, user) == left
    assert len(my_jobs(client, backend, user)) == videos


def test_a_job_cancelled_while_its_task_is_being_created_is_cancelled_upstream(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str, endless_job: str
) -> None:
    job_id = endless_job
    cancel = client.post(
        f"{backend.url}/api/jobs/upscaler_jobs/{job_id}/cancel", headers=backend.user_headers(user)
    )
    assert cancel.status_code == 200
    assert cancel.json()["status"] == "cancelled"
    # whether the create call was already under way or not, nothing keeps running upstream
    wait_for(
        lambda: (s := emu.stats())["tasks"]["created"] == s["tasks"]["cancelled"],
        what="every created task to be cancelled",
    )
    assert my_credits(client, backend, user) == c.STARTING_CREDITS


def test_a_refused_api_key_fails_the_job_with_refund_and_disables_the_account(
    emulator: ServerProcess, client: httpx.Client, emu: EmulatorControl, tmp_path: Path, user: str
) -> None:
    bad = start_backend(emulator.url, tmp_path, extra_env={"RUNNINGHUB_API_KEY": "too-short"})
    try:
        job_id = submit_upscale(client, bad, user).json()["jobId"]
        job = wait_terminal(client, bad, user, job_id)
        assert job["status"] == "failed"
        assert (
            job["errorMessage"]
            == "O serviço de IA recusou este pedido. Seus créditos foram devolvidos."
        )
        assert my_credits(client, bad, user) == c.STARTING_CREDITS
        assert bad.rows("SELECT enabled, disabled_reason FROM runninghub_accounts") == [
            (False, "RunningHub code 802")
        ]
    finally:
        bad.api.stop()


# --- audit (low): odd input answered as JSON 4xx, never a plain-text 500 or 400 --------------


@pytest.mark.parametrize(
    "scale",
    [
        "²",  # a superscript two: str.isdigit() is true, int() refuses it (was a 500)
        "٢",  # an Arabic-Indic two: int() reads it as 2 (was accepted)
        "9" * 5000,  # past int()'s 4,300-digit limit (was a 500)
        "2" * 40,
    ],
    ids=["superscript", "arabic-indic", "5000-digits", "40-digits"],
)
def test_a_scale_that_is_not_a_plain_small_number_is_422(
    backend: Backend, client: httpx.Client, user: str, scale: str
) -> None:
    r = submit_upscale_with_scale(client, backend, user, scale)
    assert r.status_code == 422, r.text
    assert "Escala inválida" in r.json()["error"]
    assert_nothing_created(client, backend, user)


def submit_upscale_with_scale(
    client: httpx.Client, backend: Backend, user: str, scale: str
) -> httpx.Response:
    return submit_job(
        client,
        backend,
        user,
        {"tool": "upscaler", "scale": scale},
        {"image": ("p.png", png_bytes(), "image/png")},
    )


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "b0undary") -> bytes:
    """A multipart body by hand: ``(name, filename or None, content)`` per part."""
    out = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


UPSCALE_PARTS: list[tuple[str, str | None, bytes]] = [
    ("tool", None, b"upscaler"),
    ("scale", None, b"2"),
]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (
            "multipart/form-data; boundary=b0undary",
            multipart([*UPSCALE_PARTS, *((f"f{i}", None, b"x") for i in range(10_000))]),
        ),
        (
            "multipart/form-data; boundary=b0undary",
            multipart([*UPSCALE_PARTS, *((f"img{i}", f"{i}.png", b"x") for i in range(6))]),
        ),
        (
            "multipart/form-data; boundary=b0undary",
            multipart([*UPSCALE_PARTS, ("note", None, b"x" * (2 * 1024 * 1024))]),
        ),
        ("multipart/form-data", multipart(UPSCALE_PARTS)),
        ("multipart/form-data; boundary=b0undary", b"--b0undary\r\nnot a part at all"),
        (
            "multipart/form-data; boundary=b0undary",
            b"--b0undary\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b0undary--\r\n",
        ),
    ],
    ids=["10000-fields", "6-files", "2MB-field", "no-boundary", "truncated", "no-name"],
)
def test_a_multipart_body_past_the_limits_is_a_json_400(
    backend: Backend, client: httpx.Client, user: str, content_type: str, body: bytes
) -> None:
    r = client.post(
        backend.url + "/api/jobs",
        headers={**backend.user_headers(user), "Content-Type": content_type},
        content=body,
    )
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]
    assert_nothing_created(client, backend, user)


def test_the_database_file_and_a_data_dir_we_create_are_private(
    emulator: ServerProcess, client: httpx.Client, tmp_path: Path, user: str
) -> None:
    """The SQLite file holds RunningHub API keys: 0600 with its -wal/-shm, in a 0700 dir."""
    data_dir = tmp_path / "fresh" / "data"
    own = start_backend(emulator.url, data_dir)
    try:
        assert my_credits(client, own, user) == c.STARTING_CREDITS  # the database is written
        assert data_dir.stat().st_mode & 0o777 == 0o700
        files = [data_dir / n for n in ("arcano.db", "arcano.db-wal", "arcano.db-shm")]
        assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {
            f.name: oct(0o600) for f in files
        }
    finally:
        own.api.stop()


# --- found by Schemathesis (tests/integration/test_openapi.py) -----------------------------------

FINISH = "/functions/v1/runninghub-queue-manager/finish"
NUL_ID = "a\x00b"


def _finish_body(**fields: object) -> dict[str, object]:
    return {"table": "upscaler_jobs", "jobId": "no-such-job", "status": "failed", **fields}


@pytest.mark.parametrize(
    ("method", "path", "as_service", "body", "status"),
    [
        ("GET", "/api/jobs/upscaler_jobs/a%00b", False, None, 404),
        ("POST", "/api/jobs/upscaler_jobs/a%00b/cancel", False, None, 404),
        ("GET", "/api/jobs/upscaler_jobs/a%00b/events", False, None, 404),
        (
            "POST",
            "/functions/v1/runninghub-job-sync",
            False,
            {"table": "upscaler_jobs", "jobId": NUL_ID},
            404,
        ),
        ("POST", FINISH, True, _finish_body(jobId=NUL_ID), 404),
        ("POST", FINISH, True, _finish_body(errorMessage=NUL_ID), 400),
        (
            "POST",
            FINISH,
            True,
            _finish_body(status="completed", outputUrl="https://rh-images.xiaoyaoyou.com/a\x00"),
            400,
        ),
        ("POST", "/webhooks/runninghub/upscaler_jobs/a%00b?token=x", False, {}, 401),
        ("POST", "/webhooks/runninghub/upscaler%00jobs/x?token=x", False, {}, 401),
        ("POST", "/webhooks/runninghub/upscaler_jobs/x?token=x", False, b"\x00", 401),
        ("POST", "/webhooks/runninghub", False, b"\x00", 400),
        ("POST", "/webhooks/runninghub", False, '{"taskId": "1"}'.encode("utf-16"), 400),
    ],
    ids=[
        "get",
        "cancel",
        "events",
        "sync",
        "finish-id",
        "finish-message",
        "finish-url",
        "webhook-id",
        "webhook-table",
        "webhook-body",
        "old-webhook-body",
        "old-webhook-utf16",
    ],
)
def test_a_nul_in_an_id_or_a_text_is_an_answer_not_a_database_error(
    backend_on_each_db: Backend,
    client: httpx.Client,
    method: str,
    path: str,
    as_service: bool,
    body: object,
    status: int,
) -> None:
    """PostgreSQL cannot store or compare U+0000 in text: a NUL in a job id was a 503
    "database down" (a 500 on the sync), in a webhook's body a 503 too. No id has one."""
    b = backend_on_each_db
    headers = b.service_headers if as_service else b.user_headers("nul-user")
    content = body if isinstance(body, bytes) else None
    r = client.request(
        method,
        b.url + path,
        headers=headers,
        json=None if content is not None else body,
        content=content,
    )
    assert r.status_code == status, r.text
    assert r.json()["error"]
    if path == SYNC_PATH:
        assert r.json() == {"error": "Job not found", "synced": False}


@pytest.mark.parametrize(
    "url", ["http://[abc", "https://[::1/x", "http://rh-images.xiaoyaoyou.com:x/"]
)
def test_finish_refuses_an_output_url_python_cannot_parse(
    backend: Backend, client: httpx.Client, url: str
) -> None:
    """``urlsplit`` raises on a bracket left open: it was a plain-text 500."""
    r = client.post(
        backend.url + FINISH,
        headers=backend.service_headers,
        json=_finish_body(status="completed", outputUrl=url),
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]


def test_a_method_a_path_does_not_take_is_a_json_405_naming_all_it_does(
    backend: Backend, client: httpx.Client, user: str
) -> None:
    """``GET`` and ``POST /api/jobs`` were two routes: ``DELETE`` said ``Allow: POST``."""
    r = client.delete(backend.url + "/api/jobs", headers=backend.user_headers(user))
    assert r.status_code == 405
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "POST"}
    assert r.json()["error"]
    r = client.put(backend.url + "/healthz")
    assert r.status_code == 405
    assert r.json()["error"]


async def test_a_bug_in_a_handler_is_a_json_500_not_a_traceback() -> None:
    """In-process: whatever a handler raises is logged and answered in the one error shape."""

    async def broken(_request: Request) -> Response:
        return Response(str(int("9" * 5000)))  # int() refuses past 4,300 digits

    app = Starlette(routes=[_route("/broken", broken, ["GET"])])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as in_process:
        r = await in_process.get("/broken")
    assert r.status_code == 500
    assert r.json() == {"error": MSG_INTERNAL}


@pytest.mark.parametrize("task_id", [False, True, 1.5, None, [], {}])
def test_a_webhook_task_id_that_is_no_string_or_integer_is_malformed(
    backend: Backend, client: httpx.Client, task_id: object
) -> None:
    """``true`` and ``false`` are ints to Python: ``"taskId": false`` was kept as task "False"."""
    r = client.post(
        backend.url + "/webhooks/runninghub",
        json={"event": "TASK_END", "taskId": task_id, "eventData": {"code": 0, "data": []}},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith("malformed webhook")
