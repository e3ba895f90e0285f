"""The size of a job's result, for the page's "4096×3072 px · 6,1 MB" line.

A result kept in our storage (``ARCANO_KEEP_RESULTS``, the default) is measured there: its
URL is our own address, which the list of output hosts rightly does not name, so in
production such a result showed no size at all. RunningHub's answer names a URL, not a size,
so for a result still at RunningHub the backend asks the file host with a ``HEAD`` request —
only a host the sync trusts for outputs (``OutputHosts``): a page must never make the server
call an address someone else chose. Any failure means "size unknown".

One client per event loop, its connections kept alive: a client per ``HEAD`` meant a new
connection (and httpx's setup) for every result shown — 11 % of the worker's CPU when a
thousand jobs ended at once (BENCHMARKS.md, item 12). At most ``HEAD_CONNECTIONS`` are asked
at once; the others wait their turn outside the client, because httpcore scans its whole
queue of waiting requests against every connection at each step, and a thousand queued
``HEAD``s to a slow host made that scan the worker's main work (the same scan starved the
benchmark's own webhook sender). The TLS settings are the process's one
(:func:`arcano_tools.tls.client_tls`; BENCHMARKS.md, target 6).
"""

from __future__ import annotations

import asyncio
import weakref

import httpx

from arcano_tools.domain.records import Job
from arcano_tools.domain.status import JobStatus
from arcano_tools.domain.urls import OutputHosts
from arcano_tools.storage import ObjectStorage, StorageError
from arcano_tools.tls import client_tls

#: A HEAD that takes longer than this (its turn included) is given up on (the line then
#: shows the resolution only).
HEAD_TIMEOUT_S = 3.0
#: HEADs in flight at once per process (and connections kept to the file hosts).
HEAD_CONNECTIONS = 16


class _Asker:
    """The client and the turns of one event loop."""

    def __init__(self) -> None:
        self.client = httpx.AsyncClient(
            timeout=HEAD_TIMEOUT_S,
            follow_redirects=False,
            verify=client_tls(),
            limits=httpx.Limits(
                max_connections=HEAD_CONNECTIONS, max_keepalive_connections=HEAD_CONNECTIONS
            ),
        )
        self.turns = asyncio.Semaphore(HEAD_CONNECTIONS)


_askers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Asker] = weakref.WeakKeyDictionary()


def _asker() -> _Asker:
    loop = asyncio.get_running_loop()
    asker = _askers.get(loop)
    if asker is None:
        asker = _askers[loop] = _Asker()
    return asker


async def output_bytes(url: str, hosts: OutputHosts) -> int | None:
    """``Content-Length`` of ``url``'s ``HEAD`` answer; None when unknown or not allowed."""
    if not hosts.allows(url):
        return None
    asker = _asker()
    try:
        async with asyncio.timeout(HEAD_TIMEOUT_S), asker.turns:
            response = await asker.client.head(url)
    except (httpx.HTTPError, TimeoutError):
        return None
    length = response.headers.get("content-length", "")
    if response.status_code != httpx.codes.OK or not length.isdigit():
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
