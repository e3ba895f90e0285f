"""The size of a job's result, for the page's "4096×3072 px · 6,1 MB" line.

A result kept in our storage (``ARCANO_KEEP_RESULTS``, the default) is measured there: its
URL is our own address, which the list of output hosts rightly does not name, so in
production such a result showed no size at all. RunningHub's answer names a URL, not a size,
so for a result still at RunningHub the backend asks the file host with a ``HEAD`` request —
only a host the sync trusts for outputs (``OutputHosts``): a page must never make the server
call an address someone else chose. Any failure means "size unknown".

One session per event loop, its connections kept alive: a client per ``HEAD`` meant a new
connection (and httpx's setup) for every result shown — 11 % of the worker's CPU when a
thousand jobs ended at once (BENCHMARKS.md, item 12). The session is aiohttp's, as for
RunningHub's calls (``runninghub/wire.py``): through httpx these ``HEAD``s were still a third
of the worker's CPU in that burst (httpx's models and pool, BENCHMARKS.md item 26). At most
``HEAD_CONNECTIONS`` are asked at once; the others wait their turn outside the client. The
TLS settings are the process's one (:func:`arcano_tools.tls.client_tls`; BENCHMARKS.md,
target 6); a proxy named by the environment carries them, as httpx did (read once per host).
"""

from __future__ import annotations

import asyncio
import weakref
from http import HTTPStatus
from urllib.parse import urlsplit

import aiohttp

from arcano_tools.domain.records import Job
from arcano_tools.domain.status import JobStatus
from arcano_tools.domain.urls import OutputHosts
from arcano_tools.runninghub.wire import keepalive_connector, proxy_for
from arcano_tools.storage import ObjectStorage, StorageError

#: A HEAD that takes longer than this (its turn included) is given up on (the line then
#: shows the resolution only).
HEAD_TIMEOUT_S = 3.0
#: HEADs in flight at once per process (and connections kept to the file hosts).
HEAD_CONNECTIONS = 16


class _Asker:
    """The session and the turns of one event loop."""

    def __init__(self) -> None:
        # no timeout of its own: ``HEAD_TIMEOUT_S`` bounds each HEAD, its turn included
        self.session = aiohttp.ClientSession(connector=keepalive_connector(HEAD_CONNECTIONS))
        self.turns = asyncio.Semaphore(HEAD_CONNECTIONS)
        #: The environment's proxy for each (scheme, host) asked.
        self.proxies: dict[tuple[str, str], str | None] = {}

    def proxy(self, url: str) -> str | None:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        if key not in self.proxies:
            self.proxies[key] = proxy_for(url)
        return self.proxies[key]


_askers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Asker] = weakref.WeakKeyDictionary()


def _asker() -> _Asker:
    loop = asyncio.get_running_loop()
    asker = _askers.get(loop)
    if asker is None or asker.session.closed:
        asker = _askers[loop] = _Asker()
    return asker


async def aclose() -> None:
    """Close the running loop's connections to the file hosts (at a stop; a later ``HEAD``
    opens new ones)."""
    asker = _askers.pop(asyncio.get_running_loop(), None)
    if asker is not None:
        await asker.session.close()


async def output_bytes(url: str, hosts: OutputHosts) -> int | None:
    """``Content-Length`` of ``url``'s ``HEAD`` answer; None when unknown or not allowed."""
    if not hosts.allows(url):
        return None
    asker = _asker()
    try:
        async with (
            asyncio.timeout(HEAD_TIMEOUT_S),
            asker.turns,
            asker.session.head(url, allow_redirects=False, proxy=asker.proxy(url)) as response,
        ):
            status, length = response.status, response.headers.get("Content-Length", "")
    except (aiohttp.ClientError, TimeoutError, ValueError, RuntimeError):
        # RuntimeError: the session was closed under it (a stop while HEADs wait their turn)
        return None
    if status != HTTPStatus.OK or not length.isdigit():
        return None
    return int(length)


async def result_bytes(job: Job, storage: ObjectStorage, hosts: OutputHosts) -> int | None:
    """The size of a completed job's result: our copy's from the storage, else by a ``HEAD``
    to RunningHub's file host (:func:`output_bytes`); None when unknown."""
    if job.status is not JobStatus.COMPLETED:
        return None
    if job.output_key:
        try:
            return await asyncio.to_thread(storage.size, job.output_key)
        except (StorageError, ValueError):
            return None
    return await output_bytes(job.output_url, hosts) if job.output_url else None
