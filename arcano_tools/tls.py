"""One TLS setting for the outgoing HTTP/1.1 clients of a process's event loop.

httpx builds a new ``ssl.SSLContext`` for each client it creates — certifi's whole CA bundle
parsed again — about 60 ms of CPU on this machine, spent on the event loop that creates the
client. Where a client is made per call (a webhook the emulator delivers, a sign-in through
Supabase Auth, a fetch of the signing keys) that was the call's main cost: the emulator's
three copies of a webhook held its loop for 0.2 s and its tasks, creates and answers waited
(a CI run timed out two jobs of the "webhook x3" scenario). So the context is built once, on
first use, and shared.

Two limits of sharing it. httpcore writes the context's ALPN protocols on every new
connection, so every client given it must speak HTTP/1.1 only (no ``http2=True``: that would
change the protocols offered by all of them). And a connection's handshake copies the
context without the GIL, so a client used from worker threads (the Storage adapter's) keeps
a context of its own. The CA settings (``SSL_CERT_FILE``, ``SSL_CERT_DIR``) are read once:
a change of them needs a restart.
"""

from __future__ import annotations

import functools
import ssl

import httpx

#: What every client given :func:`client_tls` speaks (httpcore offers the same per connection).
ALPN_PROTOCOLS = ["http/1.1"]


@functools.cache
def client_tls() -> ssl.SSLContext:
    """httpx's default verification (certifi's CA bundle, ``SSL_CERT_FILE`` and
    ``SSL_CERT_DIR`` honoured), built once per process; pass it as ``verify=`` to the
    event loop's HTTP/1.1 ``httpx`` clients (and as ``ssl=`` to the RunningHub wire's aiohttp
    connector, HTTP/1.1 too)."""
    context = httpx.create_ssl_context()
    context.set_alpn_protocols(ALPN_PROTOCOLS)
    return context
