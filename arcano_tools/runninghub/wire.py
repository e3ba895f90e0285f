"""How the RunningHub client's calls reach RunningHub: one POST, its HTTP status and body.

Why a seam below :class:`~arcano_tools.runninghub.client.RunningHubClient` (which keeps the
envelopes, retries, the concurrency cap and the rate limit): the cost of an HTTP exchange.
Measured on this machine against the loopback stub (BENCHMARKS.md, item 24), httpx spent
**1.2–1.4 ms of CPU per call** (its models ≈ 0.45 ms, httpcore's pool and anyio the rest),
aiohttp **0.16–0.26 ms** (its response parser is C). A sweep of the server watchdog is one
``/outputs`` call per job, so that difference was most of a check's cost.

* :class:`AiohttpWire` is what production speaks: one ``aiohttp`` session per event loop
  (a session and its pooled connections belong to the loop that made them), keep-alive,
  HTTP/1.1 over the process's one TLS setting (:func:`arcano_tools.tls.client_tls`), no
  redirect followed.
* :class:`HttpxWire` carries the calls over an injected ``httpx`` transport: the tests' scripted
  RunningHub (``httpx.MockTransport``), the emulator in process (``httpx.ASGITransport``) and
  the simulation's virtual-clock RunningHub, none of which can be a socket.

Both raise :class:`~arcano_tools.runninghub.errors.TransportError` for a network failure or
a timeout, naming which, and :class:`UnsendableRequest` for a request that cannot be sent;
the status and the body are the client's to judge.
"""

from __future__ import annotations

import asyncio
import functools
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
import httpx

from arcano_tools.runninghub.errors import TransportError, UnsendableRequest
from arcano_tools.tls import client_tls

#: Sent with every call (RunningHub's logs name the caller).
USER_AGENT = "arcano-tools/1.0"
#: How long a call may wait for a pooled connection of an injected transport (httpx's pool).
POOL_WAIT_S = 5.0
#: Idle connections are closed after this (httpx's 5 s; aiohttp's default is 15 s).
KEEPALIVE_S = 4.0


@dataclass(frozen=True)
class Timeouts:
    """``connect``: to open a connection; ``read``: for each wait on the socket, and — as the
    whole-exchange bound of :class:`AiohttpWire`, which has no per-write timeout — the sending
    of the body and the reading of the answer together take at most ``connect + 2 × read``."""

    connect: float
    read: float

    @property
    def total(self) -> float:
        return self.connect + 2 * self.read


@dataclass(frozen=True)
class Answer:
    """What came back: the HTTP status and the whole body."""

    status: int
    body: bytes


class Wire(Protocol):
    async def post(
        self, path: str, headers: Mapping[str, str], body: bytes, timeouts: Timeouts
    ) -> Answer:
        """POST ``body`` to ``path`` (below the base URL); raises :class:`TransportError`."""
        ...

    async def aclose(self) -> None: ...


class AiohttpWire:
    """RunningHub over ``aiohttp``: one session for the event loop that uses it, at most
    ``max_connections`` connections in it (the client's concurrency cap, so a capped call
    never waits twice).

    As httpx did: an HTTP(S) proxy named by ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY``
    (and not bypassed by ``NO_PROXY``) carries the calls — read once here, where aiohttp's
    ``trust_env`` would read the environment (and ``~/.netrc``) on every call; idle
    connections are dropped after ``KEEPALIVE_S``, before a server or balancer in front of
    RunningHub closes them under a request (a ``POST`` is not retried on a stale connection,
    and a create is not retried at all).
    """

    def __init__(self, base_url: str, *, max_connections: int) -> None:
        self._base_url = base_url.rstrip("/")
        self._max_connections = max_connections
        self._proxy = proxy_for(self._base_url)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session_of_loop: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session_of_loop
        if session is None or session.closed or self._loop is not loop:
            # another loop's session (a test's, a CLI command's) is that loop's to close
            session = aiohttp.ClientSession(
                connector=keepalive_connector(self._max_connections),
                headers={"User-Agent": USER_AGENT},
            )
            self._loop, self._session_of_loop = loop, session
        return session

    async def post(
        self, path: str, headers: Mapping[str, str], body: bytes, timeouts: Timeouts
    ) -> Answer:
        try:
            async with self._session().post(
                self._base_url + path,
                data=body,
                headers=headers,
                timeout=_client_timeout(timeouts),
                allow_redirects=False,
                proxy=self._proxy,
            ) as response:
                return Answer(response.status, await response.read())
        except TimeoutError as exc:  # aiohttp's timeouts (connect, read, total) are these
            raise TransportError(f"RunningHub timed out ({type(exc).__name__})") from None
        except aiohttp.ClientError as exc:
            raise TransportError(f"RunningHub unreachable ({type(exc).__name__})") from None
        except ValueError:  # a header aiohttp refuses to send (a key with a line break in it)
            raise UnsendableRequest(
                "the request to RunningHub could not be sent: a header value (the API key?) "
                "holds a control character"
            ) from None

    async def aclose(self) -> None:
        """Closes the running loop's connections (a later call opens new ones)."""
        session = self._session_of_loop
        if session is not None and self._loop is asyncio.get_running_loop():
            self._loop = self._session_of_loop = None
            await session.close()


def keepalive_connector(limit: int) -> aiohttp.TCPConnector:
    """An aiohttp connector of at most ``limit`` connections, over the process's one TLS
    setting, idle ones dropped after ``KEEPALIVE_S`` (the result-size ``HEAD``s use it too)."""
    return aiohttp.TCPConnector(limit=limit, ssl=client_tls(), keepalive_timeout=KEEPALIVE_S)


@functools.cache
def _client_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    """aiohttp's form of ``timeouts``, built once for each (a client has two)."""
    return aiohttp.ClientTimeout(
        total=timeouts.total, sock_connect=timeouts.connect, sock_read=timeouts.read
    )


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (httpx's rules: ``<scheme>_proxy`` or
    ``all_proxy``, any case, unless ``no_proxy`` names the host), or None."""
    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(url)
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


class HttpxWire:
    """RunningHub over an injected ``httpx`` transport (tests, the simulation)."""

    def __init__(self, base_url: str, transport: httpx.AsyncBaseTransport) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            transport=transport,
            headers={"User-Agent": USER_AGENT},
        )

    async def post(
        self, path: str, headers: Mapping[str, str], body: bytes, timeouts: Timeouts
    ) -> Answer:
        timeout = httpx.Timeout(
            connect=timeouts.connect, read=timeouts.read, write=timeouts.read, pool=POOL_WAIT_S
        )
        try:
            response = await self._client.post(
                path, content=body, headers=dict(headers), timeout=timeout
            )
        except httpx.TimeoutException as exc:
            raise TransportError(f"RunningHub timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise TransportError(f"RunningHub unreachable ({type(exc).__name__})") from None
        return Answer(response.status_code, response.content)

    async def aclose(self) -> None:
        await self._client.aclose()
