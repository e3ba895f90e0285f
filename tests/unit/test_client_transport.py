"""The RunningHub client against RunningHub's documented wire format, through an injected
httpx transport (no patching): codes → typed results and errors, retries, secrets."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from arcano_tools.runninghub import errors as e
from arcano_tools.runninghub.client import RunningHubClient, parse_outputs_envelope

KEY = "k" * 32
Handler = Callable[[httpx.Request], httpx.Response]


def client_with(handler: Handler, **kwargs: object) -> RunningHubClient:
    return RunningHubClient(
        "https://rh.example",
        transport=httpx.MockTransport(handler),
        retry_base_s=0,
        **kwargs,  # type: ignore[arg-type]
    )


def envelope(code: int, data: object = None, msg: str = "") -> httpx.Response:
    return httpx.Response(200, json={"code": code, "msg": msg, "data": data})


# --- envelopes ----------------------------------------------------------------------------------


def test_code_0_with_a_file_is_success_with_the_first_file_url() -> None:
    out = parse_outputs_envelope(
        {
            "code": 0,
            "msg": "success",
            "data": [
                {"fileUrl": "", "nodeId": "8"},
                {
                    "fileUrl": "https://cdn.example/x.png",
                    "fileType": "png",
                    "taskCostTime": "12",
                    "nodeId": "9",
                },
            ],
        }
    )
    assert out.state == "success"
    assert out.output_url == "https://cdn.example/x.png"
    assert out.files[1].task_cost_time == 12.0


def test_code_0_without_files_is_still_running() -> None:
    assert parse_outputs_envelope({"code": 0, "data": []}).state == "running"


def test_running_and_queued_codes() -> None:
    assert parse_outputs_envelope({"code": 804, "msg": "APIKEY_TASK_IS_RUNNING"}).state == "running"
    assert parse_outputs_envelope({"code": 813, "data": None}).state == "queued"


def test_code_805_is_failed_with_runninghubs_reason() -> None:
    out = parse_outputs_envelope(
        {
            "code": 805,
            "msg": "APIKEY_TASK_STATUS_ERROR",
            "data": {
                "failedReason": {
                    "node_name": "KSampler",
                    "exception_type": "torch.OutOfMemoryError",
                    "exception_message": "CUDA out of memory",
                    "traceback": "Traceback …",
                }
            },
        }
    )
    assert out.state == "failed"
    assert out.failure_message == "CUDA out of memory"
    no_message = parse_outputs_envelope(
        {"code": 805, "data": {"failedReason": {"exception_type": "X"}}}
    )
    assert no_message.failure_message == "X"
    nothing = parse_outputs_envelope({"code": 805, "data": None})
    assert nothing.failure_message == "Erro no processamento"


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (807, e.TaskNotFound),
        (421, e.QueueFull),
        (415, e.QueueFull),
        (802, e.Unauthorized),
        (416, e.InsufficientBalance),
        (803, e.InvalidRequest),
        (500, e.ServerError),
        (999, e.APIError),
    ],
)
def test_other_codes_raise_their_typed_error(code: int, error: type[e.APIError]) -> None:
    with pytest.raises(error) as info:
        parse_outputs_envelope({"code": code, "msg": "m"})
    assert info.value.code == code


def test_queue_full_asks_for_a_requeue_and_a_bad_key_does_not() -> None:
    assert e.QueueFull(421).requeue
    assert not e.Unauthorized(802).requeue


@pytest.mark.parametrize("body", [[], "x", {"msg": "no code"}, {"code": "abc"}])
def test_not_an_envelope_is_malformed(body: object) -> None:
    with pytest.raises(e.MalformedResponse):
        parse_outputs_envelope(body)


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "data:text/html,x", "/relative.png", "ftp://h/x"]
)
def test_output_urls_that_are_not_http_are_dropped(url: str) -> None:
    out = parse_outputs_envelope({"code": 0, "data": [{"fileUrl": url}]})
    assert out.output_url is None
    assert out.state == "running"


# --- the client over a transport ------------------------------------------------------------


async def test_key_goes_in_body_and_bearer_header_and_app_id_as_a_string() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return envelope(0, {"taskId": "1910246754753896450", "taskStatus": "QUEUED"})

    client = client_with(handler)
    created = await client.run_app(KEY, "1937084629516193794", [], webhook_url="https://x/h")
    await client.aclose()

    assert created.task_id == "1910246754753896450"
    body = json.loads(seen[0].content)
    assert body["apiKey"] == KEY
    assert body["webappId"] == "1937084629516193794"
    assert body["webhookUrl"] == "https://x/h"
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert seen[0].url.path == "/task/openapi/ai-app/run"


async def test_outputs_retries_a_5xx_then_returns_the_files() -> None:
    answers = [
        httpx.Response(502, text="<html>bad gateway</html>"),
        envelope(0, [{"fileUrl": "https://cdn.example/o.png"}]),
    ]
    client = client_with(lambda _: answers.pop(0))
    out = await client.outputs(KEY, "T")
    await client.aclose()
    assert out.output_url == "https://cdn.example/o.png"
    assert answers == []


async def test_a_persistent_5xx_is_an_http_status_error_after_every_retry() -> None:
    calls: list[int] = []

    def handler(_: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(500, text="oops")

    client = client_with(handler, max_retries=2)
    with pytest.raises(e.HTTPStatusError) as info:
        await client.outputs(KEY, "T")
    await client.aclose()
    assert info.value.status_code == 500
    assert len(calls) == 3


async def test_code_500_in_the_envelope_is_retried() -> None:
    answers = [envelope(500, msg="unknown"), envelope(804, msg="APIKEY_TASK_IS_RUNNING")]
    client = client_with(lambda _: answers.pop(0))
    out = await client.outputs(KEY, "T")
    await client.aclose()
    assert out.state == "running"


async def test_a_4xx_and_the_create_call_are_never_retried() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(404 if "outputs" in request.url.path else 503)

    client = client_with(handler)
    with pytest.raises(e.HTTPStatusError):
        await client.outputs(KEY, "T")
    with pytest.raises(e.HTTPStatusError):
        await client.run_app(KEY, "1", [])
    await client.aclose()
    assert calls == ["/task/openapi/outputs", "/task/openapi/ai-app/run"]


@pytest.mark.parametrize("exc", [httpx.ConnectError("down"), httpx.ReadTimeout("slow")])
async def test_network_failures_are_transport_errors_without_the_key(exc: Exception) -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        raise exc

    client = client_with(handler, max_retries=1)
    with pytest.raises(e.TransportError) as info:
        await client.status(KEY, "T")
    await client.aclose()
    assert KEY not in str(info.value)


async def test_non_json_body_is_malformed() -> None:
    client = client_with(
        lambda _: httpx.Response(200, text="<html>maintenance</html>"), max_retries=0
    )
    with pytest.raises(e.MalformedResponse):
        await client.cancel(KEY, "T")
    await client.aclose()


async def test_upload_sends_multipart_input_and_returns_the_file_name() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return envelope(0, {"fileName": "api/abc.png", "fileType": "input"})

    client = client_with(handler)
    name = await client.upload(KEY, "image.png", b"\x89PNG...", "image/png")
    await client.aclose()
    assert name == "api/abc.png"
    content = seen[0].content
    assert b'name="fileType"' in content
    assert b"input" in content
    assert b'filename="image.png"' in content


async def test_cancel_of_an_unknown_task_raises_task_not_found() -> None:
    client = client_with(lambda _: envelope(807, msg="APIKEY_TASK_NOT_FOUND"))
    with pytest.raises(e.TaskNotFound):
        await client.cancel(KEY, "nope")
    await client.aclose()


async def test_the_observer_sees_every_attempt_and_its_outcome() -> None:
    answers = [httpx.Response(503), envelope(804)]
    seen: list[tuple[str, str]] = []
    client = client_with(
        lambda _: answers.pop(0), observer=lambda ep, outcome: seen.append((ep, outcome))
    )
    await client.outputs(KEY, "T")
    await client.aclose()
    assert seen == [("outputs", "http_503"), ("outputs", "804")]
