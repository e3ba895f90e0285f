"""One TLS setting for every outgoing HTTP client of a process.

httpx builds a new ``ssl.SSLContext`` for each client it creates — certifi's whole CA bundle
parsed again — about 60 ms of CPU on this machine, spent on the event loop that creates the
client. Where a client is made per call (a webhook the emulator delivers, a sign-in through
Supabase Auth, a fetch of the signing keys) that was the call's main cost: the emulator's
three copies of a webhook held its loop for 0.2 s and its tasks, creates and answers waited
(a CI run timed out two jobs of the "webhook x3" scenario). An ``SSLContext`` is safe to share
between clients and connections, so it is built once, on first use.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_tls() -> ssl.SSLContext:
    """httpx's default verification (certifi's CA bundle, ``SSL_CERT_FILE`` honoured), built
    once per process; pass it as ``verify=`` to every ``httpx`` client."""
    return httpx.create_ssl_context()
