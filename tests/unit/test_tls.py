"""Outgoing HTTP clients share one TLS setting per process (``arcano_tools/tls.py``).

httpx parses certifi's whole CA bundle for every client built without one — 20–60 ms of CPU
on the event loop here. The emulator built a client per webhook it delivered, so its three
copies of each webhook held its loop while tasks, creates and answers waited: a CI run of the
fault matrix's "webhook x3" scenario timed out two jobs. Each test fails without the shared
setting (one load per client).
"""

from __future__ import annotations

import http.server
import json
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from arcano_tools import tls
from arcano_tools.emulator.control import WebhookStats
from arcano_tools.emulator.webhooks import deliver
from arcano_tools.runninghub import wire
from arcano_tools.runninghub.client import RunningHubClient
from arcano_tools.runninghub.errors import MalformedResponse
from arcano_tools.services.signing_keys import SigningKeys
from tests.support.loopback import serving


class _Receiver(http.server.BaseHTTPRequestHandler):
    """Accepts any POST (a webhook receiver) and answers GET with an empty key set."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer({"ok": True})

    def do_GET(self) -> None:
        self._answer({"keys": []})

    def _answer(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: Any) -> None:  # quiet
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    with serving(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)) as url:
        yield url


async def test_the_emulators_webhook_copies_share_one_tls_setting(
    receiver: str, ca_bundle_loads: list[object]
) -> None:
    stats = WebhookStats()
    for _ in range(3):  # mode "duplicate": three copies
        assert await deliver(f"{receiver}/webhooks/x?token=t", b"{}", stats, backoff=())
    assert stats.sent == 3
    assert len(ca_bundle_loads) <= 1  # none when an earlier test in this process built it


async def test_runninghubs_calls_share_one_tls_setting(
    receiver: str, ca_bundle_loads: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[ssl.SSLContext] = []

    def shared() -> ssl.SSLContext:
        asked.append(tls.client_tls())
        return asked[-1]

    monkeypatch.setattr(wire, "client_tls", shared)
    client = RunningHubClient(receiver, max_retries=0)
    try:
        for task in ("1", "2", "3"):  # the receiver's {"ok": true} is no envelope
            with pytest.raises(MalformedResponse):
                await client.outputs("key", task)
    finally:
        await client.aclose()
    assert asked  # the connections are given the process's one setting
    assert all(context is tls.client_tls() for context in asked)
    assert len(ca_bundle_loads) <= 1


async def test_fetching_the_signing_keys_again_loads_no_ca_bundle(
    receiver: str, ca_bundle_loads: list[object]
) -> None:
    keys = SigningKeys.from_supabase(receiver)
    for kid in ("a", "b", "c"):
        keys._last_fetch = None  # each asks the host again (the refetch limit aside)
        assert await keys.key_for(kid) is None
    assert len(ca_bundle_loads) <= 1
