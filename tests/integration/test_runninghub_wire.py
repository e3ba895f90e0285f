"""The RunningHub client over its production wire (aiohttp) against a real HTTP server.

``tests/unit/test_runninghub_client.py`` scripts RunningHub through an httpx transport; these
tests send the same calls through sockets, as production does (``runninghub/wire.py``):
what RunningHub receives, kept-alive connections, timeouts, a refused connection, redirects,
5xx retries, uploads, and one client used from two event loops.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from arcano_tools.runninghub import errors as e
from arcano_tools.runninghub.client import RunningHubClient
from arcano_tools.runninghub.wire import Timeouts
from tests.support.loopback import serving

API_KEY = "k" * 32
#: How long the "slow" RunningHub takes to answer: well past the tests' read timeout.
SLOW_ANSWER_S = 2.0
SHORT = Timeouts(connect=1.0, read=0.3)


@dataclass
class Seen:
    """What the far side received: one entry per request."""

    paths: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    connections: set[tuple[str, int]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(seen: Seen) -> type[http.server.BaseHTTPRequestHandler]:
    class RunningHub(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as RunningHub's servers

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with seen.lock:
                seen.paths.append(self.path)
                seen.headers.append({k.lower(): v for k, v in self.headers.items()})
                seen.bodies.append(body)
                seen.connections.add(self.client_address)
            if self.path.startswith("/slow/"):
                time.sleep(SLOW_ANSWER_S)
            if self.path.startswith("/down/"):
                self._answer(503, b"<html>maintenance</html>", "text/html")
            elif self.path.startswith("/moved/"):
                self.send_response(302)
                self.send_header("Location", "/elsewhere" + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path.endswith("/upload"):
                self._envelope({"fileName": "api/in.png", "fileType": "input"})
            else:
                self._answer(200, json.dumps({"code": 804, "msg": "RUNNING"}).encode())

        def _envelope(self, data: Any) -> None:
            self._answer(200, json.dumps({"code": 0, "msg": "success", "data": data}).encode())

        def _answer(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:  # quiet
            pass

    return RunningHub


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def runninghub(seen: Seen) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(seen))
    server.daemon_threads = True
    with serving(server) as url:
        yield url


def _client(base_url: str, **options: Any) -> RunningHubClient:
    return RunningHubClient(base_url, retry_base_s=0, max_rps=10_000.0, **options)


async def test_calls_carry_the_key_in_body_and_header_over_one_kept_alive_connection(
    runninghub: str, seen: Seen
) -> None:
    client = _client(runninghub)
    try:
        states = [(await client.outputs(API_KEY, f"T{n}")).state for n in range(20)]
    finally:
        await client.aclose()
    assert states == ["running"] * 20
    assert seen.paths == ["/task/openapi/outputs"] * 20
    assert len(seen.connections) == 1
    headers = seen.headers[0]
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "arcano-tools/1.0"
    assert json.loads(seen.bodies[7]) == {"apiKey": API_KEY, "taskId": "T7"}


async def test_an_answer_that_never_comes_is_a_transport_error_that_says_it_timed_out(
    runninghub: str, seen: Seen
) -> None:
    client = _client(f"{runninghub}/slow", timeouts=SHORT, max_retries=1)
    started = time.monotonic()
    try:
        with pytest.raises(e.TransportError, match="timed out"):
            await client.outputs(API_KEY, "T1")
    finally:
        await client.aclose()
    assert len(seen.paths) == 2  # retried once: a timeout is transient
    assert time.monotonic() - started < 2 * SLOW_ANSWER_S  # did not wait for the answers


async def test_nobody_listening_is_a_transport_error_that_says_unreachable() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago, now closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = _client(f"http://127.0.0.1:{port}", timeouts=SHORT, max_retries=0)
    try:
        with pytest.raises(e.TransportError, match="unreachable"):
            await client.outputs(API_KEY, "T1")
    finally:
        await client.aclose()


async def test_a_5xx_is_retried_then_raised_as_its_http_status(runninghub: str, seen: Seen) -> None:
    client = _client(f"{runninghub}/down", max_retries=2)
    try:
        with pytest.raises(e.HTTPStatusError) as raised:
            await client.outputs(API_KEY, "T1")
    finally:
        await client.aclose()
    assert raised.value.http_status == 503
    assert len(seen.paths) == 3


async def test_a_redirect_is_not_followed(runninghub: str, seen: Seen) -> None:
    """The API key travels in the body: a redirect must not carry it to another address."""
    client = _client(f"{runninghub}/moved", max_retries=0)
    try:
        with pytest.raises(e.MalformedResponse):
            await client.outputs(API_KEY, "T1")
    finally:
        await client.aclose()
    assert seen.paths == ["/moved/task/openapi/outputs"]


async def test_an_upload_arrives_as_one_multipart_form(runninghub: str, seen: Seen) -> None:
    content = bytes(range(256)) * 40
    client = _client(runninghub)
    try:
        name = await client.upload(API_KEY, "in.png", content, "image/png")
    finally:
        await client.aclose()
    assert name == "api/in.png"
    kind = seen.headers[0]["content-type"]
    assert kind.startswith("multipart/form-data; boundary=")
    boundary = kind.split("=", 1)[1].encode()
    body = seen.bodies[0]
    assert body.startswith(b"--" + boundary)
    assert body.endswith(b"--" + boundary + b"--\r\n")
    assert content in body
    assert b'name="apiKey"' in body


def test_a_client_closed_in_one_event_loop_serves_the_next(runninghub: str, seen: Seen) -> None:
    """A connection belongs to the event loop that opened it: the next loop opens its own."""
    client = _client(runninghub)

    async def ask(task: str) -> str:
        try:
            return (await client.outputs(API_KEY, task)).state
        finally:
            await client.aclose()  # this loop's connections

    assert asyncio.run(ask("T1")) == "running"
    assert asyncio.run(ask("T2")) == "running"
    assert seen.paths == ["/task/openapi/outputs"] * 2
    assert len(seen.connections) == 2


async def test_a_key_with_a_line_break_is_refused_before_anything_is_sent(
    runninghub: str, seen: Seen
) -> None:
    """aiohttp refuses such a header with a bare ``ValueError``: it escaped the client's error
    tree (a crash in the watchdog's log instead of an answer it understands)."""
    client = _client(runninghub)
    key = API_KEY + "\r\nX-Injected: 1"
    try:
        with pytest.raises(e.UnsendableRequest) as raised:
            await client.outputs(key, "T1")
    finally:
        await client.aclose()
    assert API_KEY not in str(raised.value)
    assert seen.paths == []


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


async def test_the_environments_proxy_carries_the_calls_as_it_did_with_httpx(
    runninghub: str, seen: Seen, no_proxy_settings: pytest.MonkeyPatch
) -> None:
    no_proxy_settings.setenv("HTTP_PROXY", runninghub)  # the test server plays the proxy
    client = _client("http://runninghub.invalid")
    try:
        assert (await client.outputs(API_KEY, "T1")).state == "running"
    finally:
        await client.aclose()
    assert seen.paths == ["http://runninghub.invalid/task/openapi/outputs"]


async def test_a_host_named_by_no_proxy_is_called_directly(
    runninghub: str, seen: Seen, no_proxy_settings: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a proxy nobody answers for
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    no_proxy_settings.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead}")
    no_proxy_settings.setenv("NO_PROXY", "127.0.0.1")
    client = _client(runninghub, max_retries=0)
    try:
        assert (await client.outputs(API_KEY, "T1")).state == "running"
    finally:
        await client.aclose()
    assert seen.paths == ["/task/openapi/outputs"]


async def test_text_beyond_ascii_travels_as_utf8_json(runninghub: str, seen: Seen) -> None:
    client = _client(runninghub)
    try:
        await client.run_app(API_KEY, "1", [{"nodeId": "1", "fieldName": "t", "fieldValue": "ção"}])
    except e.RunningHubError:
        pass  # the test server answers 804 to a create: only what it received matters here
    finally:
        await client.aclose()
    assert "ção".encode() in seen.bodies[0]
    assert json.loads(seen.bodies[0])["nodeInfoList"][0]["fieldValue"] == "ção"
