"""The result's size (``web/result_size.py``) against a real loopback file host."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from arcano_tools.domain.urls import OutputHosts
from arcano_tools.web.result_size import output_bytes

FILE_BYTES = 1234


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
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FileHost)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/out.png"
    finally:
        server.shutdown()
        server.server_close()


async def test_the_tls_settings_are_built_once_for_every_size_asked(
    file_host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each check used to build its own SSL context, parsing the whole CA bundle on the event
    loop (20–60 ms here) for every result a page showed; now once per process."""
    loaded: list[object] = []
    original = ssl.SSLContext.load_verify_locations

    def counting(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loaded.append(args or kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)
    hosts = OutputHosts.of(["127.0.0.1"])
    sizes = [await output_bytes(file_host, hosts) for _ in range(3)]
    assert sizes == [FILE_BYTES] * 3
    assert len(loaded) <= 1  # none when an earlier check in this process built it
