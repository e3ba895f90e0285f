"""The result's size (``web/result_size.py``) against a real loopback file host."""

from __future__ import annotations

import asyncio
import http.server
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from arcano_tools.domain.status import JobStatus
from arcano_tools.domain.urls import OutputHosts
from arcano_tools.storage.local import LocalStorage
from arcano_tools.web import result_size
from arcano_tools.web.result_size import HEAD_CONNECTIONS, output_bytes, result_bytes
from tests.support.loopback import serving
from tests.support.records import job_record

FILE_BYTES = 1234


@pytest.fixture(autouse=True)
async def sessions_closed() -> AsyncIterator[None]:
    """Each test's event loop closes its connections to the file hosts, as a stop does."""
    yield
    await result_size.aclose()


class _FileHost(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(FILE_BYTES))
        self.end_headers()

    def log_message(self, *_args: Any) -> None:  # quiet
        pass


@pytest.fixture
def file_host() -> Iterator[str]:
    with serving(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FileHost)) as url:
        yield url + "/out.png"


async def test_the_tls_settings_are_built_once_for_every_size_asked(
    file_host: str, ca_bundle_loads: list[object]
) -> None:
    """Each check used to build its own SSL context, parsing the whole CA bundle on the event
    loop (20–60 ms here) for every result a page showed; now once per process."""
    hosts = OutputHosts.of(["127.0.0.1"])
    sizes = [await output_bytes(file_host, hosts) for _ in range(3)]
    assert sizes == [FILE_BYTES] * 3
    assert len(ca_bundle_loads) <= 1  # none when an earlier check in this process built it


class _KeepAliveHost(_FileHost):
    protocol_version = "HTTP/1.1"  # answers with a length: the connection stays open


@pytest.fixture
def counting_host() -> Iterator[tuple[str, list[int]]]:
    """A file host that counts the connections made to it."""
    connections: list[int] = []

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 4 * HEAD_CONNECTIONS  # no connection waits for a SYN retry

        def get_request(self) -> Any:
            connections.append(1)
            return super().get_request()

    with serving(Server(("127.0.0.1", 0), _KeepAliveHost)) as url:
        yield url + "/out.png", connections


async def test_sizes_asked_one_after_another_share_one_connection(
    counting_host: tuple[str, list[int]],
) -> None:
    """A client (and a connection) per size asked was most of the cost of showing a result
    when a thousand jobs ended at once."""
    url, connections = counting_host
    hosts = OutputHosts.of(["127.0.0.1"])
    sizes = [await output_bytes(url, hosts) for _ in range(3)]
    assert sizes == [FILE_BYTES] * 3
    assert len(connections) == 1


async def test_many_sizes_asked_at_once_all_come_back_over_a_few_connections(
    counting_host: tuple[str, list[int]],
) -> None:
    url, connections = counting_host
    hosts = OutputHosts.of(["127.0.0.1"])
    many = 3 * HEAD_CONNECTIONS
    sizes = await asyncio.gather(*(output_bytes(url, hosts) for _ in range(many)))
    assert sizes == [FILE_BYTES] * many
    assert 1 <= len(connections) <= HEAD_CONNECTIONS


async def test_a_result_in_our_storage_is_measured_there_not_asked_of_a_host(
    tmp_path: Path, file_host: str
) -> None:
    """In production a kept result's URL is our own address, which the output hosts (rightly)
    do not name: its size was never shown. The storage knows it."""
    storage = LocalStorage(tmp_path)
    storage.put("results/upscaler_jobs/j.png", b"x" * 5000, "image/png")
    hosts = OutputHosts.of(["*.runninghub.ai"])
    kept = job_record(
        datetime.now(UTC),
        status=JobStatus.COMPLETED,
        output_url="https://app.example.com/files/results/upscaler_jobs/j.png",
        output_key="results/upscaler_jobs/j.png",
    )
    assert await output_bytes(kept.output_url or "", hosts) is None  # refused, as it should be
    assert await result_bytes(kept, storage, hosts) == 5000

    gone = replace(kept, output_key="results/upscaler_jobs/deleted.png")
    assert await result_bytes(gone, storage, hosts) is None
    at_runninghub = replace(kept, output_key=None, output_url=file_host)
    assert await result_bytes(at_runninghub, storage, OutputHosts.of(["127.0.0.1"])) == FILE_BYTES
    running = replace(kept, status=JobStatus.RUNNING)
    assert await result_bytes(running, storage, hosts) is None


class _Proxy(_FileHost):
    """Plays an HTTP proxy: records the absolute URL each request names."""

    asked: list[str] = []

    def do_HEAD(self) -> None:
        type(self).asked.append(self.path)
        super().do_HEAD()


async def test_the_environments_proxy_carries_the_head_as_it_did_with_httpx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    _Proxy.asked = []
    with serving(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        size = await output_bytes("http://files.invalid/out.png", OutputHosts.of(["*.invalid"]))
    assert size == FILE_BYTES
    assert _Proxy.asked == ["http://files.invalid/out.png"]


async def test_heads_waiting_their_turn_at_a_stop_answer_unknown(file_host: str) -> None:
    """A stop closes the session while HEADs wait for a turn: each is "size unknown", not an
    error out of the page's handler (found in review: RuntimeError, session closed)."""
    hosts = OutputHosts.of(["127.0.0.1"])
    asking = [
        asyncio.ensure_future(output_bytes(file_host, hosts)) for _ in range(HEAD_CONNECTIONS * 2)
    ]
    await asyncio.sleep(0)  # they take their turns; the rest wait
    await result_size.aclose()
    sizes = await asyncio.gather(*asking)
    assert all(size in (FILE_BYTES, None) for size in sizes)
