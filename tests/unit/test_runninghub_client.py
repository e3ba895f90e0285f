"""The RunningHub client and the ``/outputs`` envelope parser, against RunningHub's wire format.

HTTP goes through an injected ``httpx.MockTransport`` (never a patch): each test scripts the
answers RunningHub gives, in order, and counts the requests the client really sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from arcano_tools.runninghub import errors as e
from arcano_tools.runninghub.client import (
    RunningHubClient,
    TaskOutputs,
    multipart_form,
    parse_outputs_envelope,
)

API_KEY = "rh-secret-" + "a1b2c3d4" * 3  # 34 characters, easy to spot in any text
BASE_URL = "https://rh.example"

Answer = httpx.Response | Exception


def envelope(code: Any, data: object = None, msg: str = "") -> httpx.Response:
    return httpx.Response(200, json={"code": code, "msg": msg, "data": data})


class ScriptedRunningHub:
    """A transport handler answering from a script; the last answer repeats forever."""

    def __init__(self, *answers: Answer) -> None:
        assert answers, "script at least one answer"
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def count(self) -> int:
        return len(self.requests)

    def json_body(self, index: int = 0) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.requests[index].content)
        return body


def client_for(
    handler: Callable[[httpx.Request], httpx.Response], **options: Any
) -> RunningHubClient:
    """A client on a mock transport: no backoff sleeps, no rate-limit spacing."""
    options.setdefault("max_rps", 10_000.0)
    return RunningHubClient(
        BASE_URL, transport=httpx.MockTransport(handler), retry_base_s=0, **options
    )


def failed_envelope(reason: object, msg: str = "APIKEY_TASK_STATUS_ERROR") -> dict[str, Any]:
    return {"code": 805, "msg": msg, "data": {"failedReason": reason}}


# --- parse_outputs_envelope ---------------------------------------------------------------------


def test_code_0_with_files_is_a_success_with_every_file_described() -> None:
    out = parse_outputs_envelope(
        {
            "code": 0,
            "msg": "success",
            "data": [
                {
                    "fileUrl": "https://rh-images.example/out/1.png",
                    "fileType": "png",
                    "taskCostTime": "35",
                    "nodeId": "9",
                },
                {"fileUrl": "https://rh-images.example/out/2.png", "fileType": "png"},
            ],
        }
    )
    assert out.state == "success"
    assert out.code == 0
    assert out.msg == "success"
    assert len(out.files) == 2
    first = out.files[0]
    assert (first.file_url, first.file_type, first.node_id) == (
        "https://rh-images.example/out/1.png",
        "png",
        "9",
    )
    assert first.task_cost_time == 35.0
    assert out.files[1].task_cost_time is None
    assert out.output_url == "https://rh-images.example/out/1.png"


@pytest.mark.parametrize("data", [[], None, [{"fileType": "png"}], [{"fileUrl": ""}], "nope"])
def test_code_0_without_any_file_url_is_still_running(data: object) -> None:
    out = parse_outputs_envelope({"code": 0, "msg": "success", "data": data})
    assert out.state == "running"
    assert out.output_url is None


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:image/png;base64,AAAA", "//x/y"])
def test_an_output_url_that_is_not_absolute_http_is_never_used(url: str) -> None:
    out = parse_outputs_envelope({"code": 0, "data": [{"fileUrl": url}]})
    assert out.state == "running"
    assert out.output_url is None


def test_code_804_is_running() -> None:
    out = parse_outputs_envelope({"code": 804, "msg": "APIKEY_TASK_IS_RUNNING", "data": None})
    assert (out.state, out.code, out.msg, out.files) == (
        "running",
        804,
        "APIKEY_TASK_IS_RUNNING",
        (),
    )


def test_code_813_is_queued() -> None:
    out = parse_outputs_envelope({"code": 813, "msg": "APIKEY_TASK_IS_QUEUED", "data": None})
    assert out.state == "queued"
    assert out.code == 813


def test_a_numeric_string_code_is_read_as_its_number() -> None:
    assert parse_outputs_envelope({"code": "804"}).state == "running"


def test_a_code_too_large_for_a_number_is_a_malformed_answer_not_a_crash() -> None:
    """``1e999`` is valid JSON and parses as infinity: ``int()`` of it overflowed, a webhook
    with a valid token then answered 500 (found in review)."""
    with pytest.raises(e.MalformedResponse):
        parse_outputs_envelope(json.loads('{"code": 1e999}'))


def test_code_805_is_failed_and_keeps_runninghubs_reason() -> None:
    reason = {
        "node_name": "KSampler",
        "exception_message": "CUDA out of memory. Tried to allocate 2.00 GiB",
        "exception_type": "torch.cuda.OutOfMemoryError",
        "node_id": "5",
        "traceback": ["Traceback (most recent call last):", "..."],
    }
    out = parse_outputs_envelope(failed_envelope(reason))
    assert out.state == "failed"
    assert out.code == 805
    assert out.failed_reason == reason
    assert out.failure_message == "CUDA out of memory. Tried to allocate 2.00 GiB"
    assert out.output_url is None


def test_a_failure_without_a_message_is_described_by_its_exception_type() -> None:
    out = parse_outputs_envelope(
        failed_envelope({"exception_message": "   ", "exception_type": "ValueError"})
    )
    assert out.failure_message == "ValueError"


def test_a_failure_without_a_reason_is_described_by_the_envelopes_msg() -> None:
    out = parse_outputs_envelope({"code": 805, "msg": "APIKEY_TASK_STATUS_ERROR", "data": None})
    assert out.failed_reason is None
    assert out.failure_message == "APIKEY_TASK_STATUS_ERROR"


def test_a_reason_that_is_not_an_object_is_dropped_and_msg_describes_the_failure() -> None:
    out = parse_outputs_envelope(failed_envelope("boom", msg="task failed"))
    assert out.failed_reason is None
    assert out.failure_message == "task failed"


def test_a_failure_with_nothing_to_say_gets_the_plans_default_message() -> None:
    out = parse_outputs_envelope({"code": 805, "msg": "", "data": {"failedReason": {}}})
    assert out.failure_message == "Erro no processamento"


def test_the_failure_message_is_capped_at_500_characters() -> None:
    out = TaskOutputs("failed", 805, failed_reason={"exception_message": "x" * 2000})
    assert out.failure_message == "x" * 500


def test_code_807_raises_task_not_found() -> None:
    with pytest.raises(e.TaskNotFound) as info:
        parse_outputs_envelope({"code": 807, "msg": "APIKEY_TASK_NOT_FOUND", "data": None})
    assert info.value.code == 807
    assert info.value.msg == "APIKEY_TASK_NOT_FOUND"
    assert not info.value.requeue


def test_code_421_raises_queue_full_which_asks_for_a_requeue() -> None:
    with pytest.raises(e.QueueFull) as info:
        parse_outputs_envelope({"code": 421, "msg": "TASK_QUEUE_MAXED"})
    assert info.value.requeue is True
    assert info.value.code == 421


def test_code_802_raises_unauthorized_which_is_neither_retried_nor_requeued() -> None:
    with pytest.raises(e.Unauthorized) as info:
        parse_outputs_envelope({"code": 802, "msg": "APIKEY_UNAUTHORIZED"})
    assert info.value.retryable is False
    assert info.value.requeue is False


def test_an_unknown_code_raises_a_plain_api_error_keeping_code_msg_and_data() -> None:
    with pytest.raises(e.APIError) as info:
        parse_outputs_envelope({"code": 999, "msg": "NEW_THING", "data": {"a": 1}})
    assert type(info.value) is e.APIError
    assert (info.value.code, info.value.msg, info.value.data) == (999, "NEW_THING", {"a": 1})
    assert info.value.retryable is False
    assert str(info.value) == "RunningHub code 999: NEW_THING"


@pytest.mark.parametrize(
    "body",
    [None, "code", 0, [{"code": 0}], {}, {"msg": "success", "data": []}],
    ids=["none", "str", "int", "list", "empty", "no-code"],
)
def test_a_body_that_is_not_an_envelope_is_malformed(body: object) -> None:
    with pytest.raises(e.MalformedResponse):
        parse_outputs_envelope(body)


@pytest.mark.parametrize("code", ["ok", None, "", [0], {"v": 0}])
def test_a_non_numeric_code_is_malformed(code: object) -> None:
    with pytest.raises(e.MalformedResponse, match="non-numeric"):
        parse_outputs_envelope({"code": code, "data": []})


# --- the request RunningHub receives --------------------------------------------------------


async def test_run_app_sends_the_key_in_body_and_bearer_header_and_the_app_id_as_a_string() -> None:
    rh = ScriptedRunningHub(envelope(0, {"taskId": "1910246754753896450", "taskStatus": "QUEUED"}))
    client = client_for(rh)
    nodes = [{"nodeId": "10", "fieldName": "image", "fieldValue": "api/a.png"}]
    app_id: Any = 1937084629516193794  # an int, as a JSON config could give it
    created = await client.run_app(API_KEY, app_id, nodes, webhook_url="https://me.example/hook")
    await client.aclose()

    assert (created.task_id, created.task_status) == ("1910246754753896450", "QUEUED")
    request = rh.requests[0]
    assert request.method == "POST"
    assert str(request.url) == f"{BASE_URL}/task/openapi/ai-app/run"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    body = rh.json_body()
    assert body["apiKey"] == API_KEY
    assert body["webappId"] == "1937084629516193794"
    assert isinstance(body["webappId"], str)
    assert body["nodeInfoList"] == nodes
    assert body["webhookUrl"] == "https://me.example/hook"
    assert "instanceType" not in body


async def test_run_app_leaves_out_the_webhook_url_when_there_is_none() -> None:
    rh = ScriptedRunningHub(envelope(0, {"taskId": "1"}))
    client = client_for(rh)
    await client.run_app(API_KEY, "7", [], instance_type="plus")
    await client.aclose()
    body = rh.json_body()
    assert "webhookUrl" not in body
    assert body["instanceType"] == "plus"


async def test_run_app_without_a_task_id_in_the_answer_is_malformed() -> None:
    client = client_for(ScriptedRunningHub(envelope(0, {"taskStatus": "QUEUED"})))
    with pytest.raises(e.MalformedResponse, match="taskId"):
        await client.run_app(API_KEY, "7", [])
    await client.aclose()


async def test_outputs_posts_the_task_id_with_the_key() -> None:
    rh = ScriptedRunningHub(envelope(804, msg="APIKEY_TASK_IS_RUNNING"))
    client = client_for(rh)
    out = await client.outputs(API_KEY, "1904163390028185602")
    await client.aclose()
    assert out.state == "running"
    assert rh.requests[0].url.path == "/task/openapi/outputs"
    assert rh.json_body() == {"apiKey": API_KEY, "taskId": "1904163390028185602"}
    assert rh.requests[0].headers["authorization"] == f"Bearer {API_KEY}"


# --- retries ----------------------------------------------------------------------------------


async def test_outputs_retries_a_5xx_then_returns_the_files() -> None:
    rh = ScriptedRunningHub(
        httpx.Response(502, text="<html>Bad Gateway</html>"),
        httpx.Response(503),
        envelope(0, [{"fileUrl": "https://cdn.example/o.png", "fileType": "png"}]),
    )
    client = client_for(rh, max_retries=2)
    out = await client.outputs(API_KEY, "T1")
    await client.aclose()
    assert out.state == "success"
    assert out.output_url == "https://cdn.example/o.png"
    assert rh.count == 3


@pytest.mark.parametrize("max_retries", [0, 1, 3])
async def test_a_5xx_that_never_ends_raises_http_status_error_after_one_plus_max_retries_attempts(
    max_retries: int,
) -> None:
    rh = ScriptedRunningHub(httpx.Response(503, text="unavailable"))
    client = client_for(rh, max_retries=max_retries)
    with pytest.raises(e.HTTPStatusError) as info:
        await client.outputs(API_KEY, "T1")
    await client.aclose()
    assert info.value.http_status == 503
    assert rh.count == 1 + max_retries


async def test_a_429_is_retried_like_a_5xx() -> None:
    rh = ScriptedRunningHub(httpx.Response(429), envelope(813))
    client = client_for(rh)
    out = await client.outputs(API_KEY, "T1")
    await client.aclose()
    assert out.state == "queued"
    assert rh.count == 2


async def test_an_envelope_with_code_500_is_retried_then_the_next_answer_is_used() -> None:
    rh = ScriptedRunningHub(envelope(500, msg="unknown error"), envelope(804))
    client = client_for(rh)
    out = await client.outputs(API_KEY, "T1")
    await client.aclose()
    assert out.state == "running"
    assert rh.count == 2


async def test_an_envelope_with_code_500_every_time_raises_server_error_after_every_attempt() -> (
    None
):
    rh = ScriptedRunningHub(envelope(500, msg="unknown error"))
    client = client_for(rh, max_retries=2)
    with pytest.raises(e.ServerError) as info:
        await client.status(API_KEY, "T1")
    await client.aclose()
    assert info.value.code == 500
    assert rh.count == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_a_4xx_is_not_retried(status: int) -> None:
    rh = ScriptedRunningHub(httpx.Response(status))
    client = client_for(rh, max_retries=3)
    with pytest.raises(e.HTTPStatusError) as info:
        await client.outputs(API_KEY, "T1")
    await client.aclose()
    assert info.value.http_status == status
    assert rh.count == 1


async def test_an_api_error_code_is_not_retried() -> None:
    rh = ScriptedRunningHub(envelope(802, msg="APIKEY_UNAUTHORIZED"))
    client = client_for(rh, max_retries=3)
    with pytest.raises(e.Unauthorized):
        await client.outputs(API_KEY, "T1")
    await client.aclose()
    assert rh.count == 1


async def test_run_app_is_not_retried_on_a_5xx_because_the_task_may_have_started() -> None:
    rh = ScriptedRunningHub(httpx.Response(502), envelope(0, {"taskId": "1"}))
    client = client_for(rh, max_retries=3)
    with pytest.raises(e.HTTPStatusError) as info:
        await client.run_app(API_KEY, "7", [])
    await client.aclose()
    assert info.value.http_status == 502
    assert rh.count == 1


async def test_run_app_is_not_retried_on_a_network_error_either() -> None:
    rh = ScriptedRunningHub(httpx.ReadTimeout("slow"), envelope(0, {"taskId": "1"}))
    client = client_for(rh, max_retries=3)
    with pytest.raises(e.TransportError):
        await client.run_app(API_KEY, "7", [])
    await client.aclose()
    assert rh.count == 1


async def test_run_app_returns_a_code_500_envelope_as_a_server_error_without_retrying() -> None:
    rh = ScriptedRunningHub(envelope(500, msg="unknown error"), envelope(0, {"taskId": "1"}))
    client = client_for(rh, max_retries=3)
    with pytest.raises(e.ServerError):
        await client.run_app(API_KEY, "7", [])
    await client.aclose()
    assert rh.count == 1


# --- transport failures and bodies that are not envelopes --------------------------------------


async def test_a_network_error_becomes_a_transport_error_after_retrying() -> None:
    rh = ScriptedRunningHub(httpx.ConnectError("connection refused"))
    client = client_for(rh, max_retries=2)
    with pytest.raises(e.TransportError, match="unreachable") as info:
        await client.outputs(API_KEY, "T1")
    await client.aclose()
    assert info.value.retryable is True
    assert rh.count == 3


async def test_a_network_error_then_an_answer_succeeds() -> None:
    rh = ScriptedRunningHub(httpx.ConnectError("reset"), envelope(804))
    client = client_for(rh)
    assert (await client.outputs(API_KEY, "T1")).state == "running"
    await client.aclose()
    assert rh.count == 2


async def test_a_read_timeout_becomes_a_transport_error_that_says_it_timed_out() -> None:
    rh = ScriptedRunningHub(httpx.ReadTimeout("timed out"))
    client = client_for(rh, max_retries=1)
    with pytest.raises(e.TransportError, match="timed out"):
        await client.outputs(API_KEY, "T1")
    await client.aclose()
    assert rh.count == 2


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>maintenance</html>"),
        httpx.Response(200, content=b"\xff\xfe\x00garbage"),
        httpx.Response(200, json=[{"code": 0}]),
        httpx.Response(200, json={"msg": "success", "data": {}}),
    ],
    ids=["html", "binary", "json-list", "json-without-code"],
)
async def test_a_body_that_is_not_an_envelope_raises_malformed_response(
    response: httpx.Response,
) -> None:
    rh = ScriptedRunningHub(response)
    client = client_for(rh, max_retries=0)
    with pytest.raises(e.MalformedResponse):
        await client.cancel(API_KEY, "T1")
    await client.aclose()
    assert rh.count == 1


async def test_a_malformed_body_is_retried_as_transient() -> None:
    rh = ScriptedRunningHub(httpx.Response(200, text="<html>502</html>"), envelope(804))
    client = client_for(rh)
    assert (await client.outputs(API_KEY, "T1")).state == "running"
    await client.aclose()
    assert rh.count == 2


# --- upload, cancel, status, account ---------------------------------------------------------


async def test_upload_sends_a_multipart_input_file_and_returns_runninghubs_file_name() -> None:
    rh = ScriptedRunningHub(
        envelope(0, {"fileName": "api/9d2f0c.png", "fileType": "input"}, msg="success")
    )
    client = client_for(rh)
    png = b"\x89PNG\r\n\x1a\n" + b"pixels"
    name = await client.upload(API_KEY, "foto.png", png, "image/png")
    await client.aclose()

    assert name == "api/9d2f0c.png"
    request = rh.requests[0]
    assert request.url.path == "/task/openapi/upload"
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    body = request.content
    assert b'Content-Disposition: form-data; name="fileType"\r\n\r\ninput\r\n' in body
    assert f'name="apiKey"\r\n\r\n{API_KEY}\r\n'.encode() in body
    assert b'name="file"; filename="foto.png"' in body
    assert b"Content-Type: image/png" in body
    assert png in body


class ChunkCounter(httpx.AsyncBaseTransport):
    """A transport that keeps the chunks a request body was handed over in."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        self.chunks = [chunk async for chunk in request.stream]
        return envelope(0, {"fileName": "api/1.png", "fileType": "input"})


async def test_an_upload_is_handed_to_the_connection_in_one_piece() -> None:
    """httpx's multipart encoder yielded each part's headers, data and separators apart (nine
    chunks here), each a socket write: a third of a job start's CPU (BENCHMARKS.md, item 19)."""
    transport = ChunkCounter()
    client = RunningHubClient(BASE_URL, transport=transport, retry_base_s=0, max_rps=10_000.0)

    assert await client.upload(API_KEY, "foto.png", b"\x89PNG\r\n\x1a\npixels", "image/png")
    await client.aclose()

    assert len(transport.chunks) == 1


@pytest.mark.parametrize(
    ("name", "filename"),
    [("file", "foto.png"), ('we"ird\\', 'a "b"\r\nc\\d\x00\x1b.png'), ("ç", "ação.png")],
)
def test_the_one_piece_form_is_the_body_httpx_would_send(name: str, filename: str) -> None:
    form = {"apiKey": 'k"1', "fileType": "input"}
    content_type, body = multipart_form(form, {name: (filename, b"\x00bytes\r\n", "image/png")})
    boundary = content_type.removeprefix("multipart/form-data; boundary=")
    theirs = httpx.Request(
        "POST",
        BASE_URL,
        data=form,
        files={name: (filename, b"\x00bytes\r\n", "image/png")},
        headers={"Content-Type": content_type},  # httpx then takes this boundary
    )

    assert theirs.read() == body
    assert theirs.headers["content-length"] == str(len(body))
    assert body.endswith(f"--{boundary}--\r\n".encode())
    assert len(boundary) == 32  # 16 random bytes, as httpx draws them


@pytest.mark.parametrize("data", [None, {}, {"fileName": ""}, "api/x.png"])
async def test_an_upload_answer_without_a_file_name_is_malformed(data: object) -> None:
    client = client_for(ScriptedRunningHub(envelope(0, data)))
    with pytest.raises(e.MalformedResponse, match="fileName"):
        await client.upload(API_KEY, "a.png", b"x", "image/png")
    await client.aclose()


async def test_an_upload_refused_as_too_big_raises_invalid_request() -> None:
    client = client_for(ScriptedRunningHub(envelope(809, msg="FILE_SIZE_EXCEEDED")))
    with pytest.raises(e.InvalidRequest) as info:
        await client.upload(API_KEY, "a.png", b"x", "image/png")
    await client.aclose()
    assert info.value.code == 809


async def test_cancel_of_a_task_runninghub_does_not_know_raises_task_not_found() -> None:
    rh = ScriptedRunningHub(envelope(807, msg="APIKEY_TASK_NOT_FOUND"))
    client = client_for(rh)
    with pytest.raises(e.TaskNotFound) as info:
        await client.cancel(API_KEY, "1904163390028185602")
    await client.aclose()
    assert info.value.code == 807
    assert rh.requests[0].url.path == "/task/openapi/cancel"
    assert rh.json_body()["taskId"] == "1904163390028185602"


async def test_cancel_of_a_known_task_returns_quietly() -> None:
    rh = ScriptedRunningHub(envelope(0, None, msg="success"))
    client = client_for(rh)
    assert await client.cancel(API_KEY, "T1") is None
    await client.aclose()
    assert rh.count == 1


async def test_status_returns_runninghubs_word() -> None:
    client = client_for(ScriptedRunningHub(envelope(0, "RUNNING")))
    assert await client.status(API_KEY, "T1") == "RUNNING"
    await client.aclose()


async def test_account_status_reads_coins_and_task_counts_and_sends_both_key_spellings() -> None:
    rh = ScriptedRunningHub(envelope(0, {"remainCoins": "1234", "currentTaskCounts": "2"}))
    client = client_for(rh)
    account = await client.account_status(API_KEY)
    await client.aclose()
    assert account.remain_coins == 1234.0
    assert account.current_task_counts == 2
    body = rh.json_body()
    assert body["apikey"] == API_KEY
    assert body["apiKey"] == API_KEY


# --- the observer -----------------------------------------------------------------------------


async def test_the_observer_receives_the_endpoint_and_outcome_of_every_attempt() -> None:
    seen: list[tuple[str, str]] = []
    rh = ScriptedRunningHub(
        httpx.ConnectError("down"),
        httpx.Response(503),
        envelope(500),
        httpx.Response(200, text="not json"),
        envelope(0, [{"fileUrl": "https://cdn.example/o.png"}]),
    )
    client = client_for(rh, max_retries=4, observer=lambda ep, out: seen.append((ep, out)))
    out = await client.outputs(API_KEY, "T1")
    await client.aclose()
    assert out.state == "success"
    assert seen == [
        ("outputs", "transport"),
        ("outputs", "http_503"),
        ("outputs", "500"),
        ("outputs", "malformed"),
        ("outputs", "0"),
    ]


async def test_the_observer_sees_an_api_error_code_and_a_4xx() -> None:
    seen: list[tuple[str, str]] = []
    client = client_for(
        ScriptedRunningHub(envelope(807), httpx.Response(404)),
        observer=lambda ep, out: seen.append((ep, out)),
    )
    with pytest.raises(e.TaskNotFound):
        await client.cancel(API_KEY, "T1")
    with pytest.raises(e.HTTPStatusError):
        await client.upload(API_KEY, "a.png", b"x", "image/png")
    await client.aclose()
    assert seen == [("cancel", "807"), ("upload", "http_404")]


# --- secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        httpx.ConnectError(f"cannot connect to {BASE_URL}?apiKey={API_KEY}"),
        httpx.ReadTimeout(f"read timed out, apiKey={API_KEY}"),
        httpx.Response(500, text=f"error for key {API_KEY}"),
        httpx.Response(401, text=f"bad key {API_KEY}"),
        httpx.Response(200, text=f"<html>{API_KEY}</html>"),
        envelope(802, msg="APIKEY_UNAUTHORIZED"),
        envelope(500, msg="unknown error"),
        envelope(807, msg="APIKEY_TASK_NOT_FOUND"),
    ],
    ids=["connect", "timeout", "5xx", "4xx", "not-json", "802", "500", "807"],
)
@pytest.mark.parametrize("call", ["outputs", "run_app", "upload", "cancel"])
async def test_the_api_key_never_appears_in_a_raised_exception(answer: Answer, call: str) -> None:
    client = client_for(ScriptedRunningHub(answer), max_retries=1)
    calls = {
        "outputs": lambda: client.outputs(API_KEY, "T1"),
        "run_app": lambda: client.run_app(API_KEY, "7", []),
        "upload": lambda: client.upload(API_KEY, "a.png", b"x", "image/png"),
        "cancel": lambda: client.cancel(API_KEY, "T1"),
    }
    with pytest.raises(e.RunningHubError) as info:
        await calls[call]()
    await client.aclose()
    exc = info.value
    assert API_KEY not in str(exc)
    assert API_KEY not in repr(exc)
    # the chained httpx exception (which may quote the request) is dropped, not attached
    assert exc.__cause__ is None
    assert exc.__suppress_context__ or exc.__context__ is None


# --- bugs -------------------------------------------------------------------------------------


async def test_a_success_code_sent_as_a_string_is_a_success_for_every_endpoint() -> None:
    client = client_for(ScriptedRunningHub(envelope("0", {"taskId": "42"})))
    created = await client.run_app(API_KEY, "7", [])
    await client.aclose()
    assert created.task_id == "42"
