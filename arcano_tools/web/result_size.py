"""The size of a job's result, for the page's "4096×3072 px · 6,1 MB" line.

RunningHub's answer names a URL, not a size, so the backend asks the file host with a
``HEAD`` request — only a host the sync trusts for outputs (``OutputHosts``): a page must never
make the server call an address someone else chose. Any failure means "size unknown".

The TLS settings are made once per process: httpx builds a new ``SSLContext`` (the whole CA
bundle parsed again) for every client it creates, 20–60 ms on the event loop on this machine —
for every result a page showed, every page and the webhooks waiting behind it (BENCHMARKS.md,
target 6).
"""

from __future__ import annotations

import functools
import ssl

import httpx

from arcano_tools.domain.urls import OutputHosts

#: A HEAD that takes longer than this is given up on (the line then shows the resolution only).
HEAD_TIMEOUT_S = 3.0


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's default verification (certifi's CA bundle), built once and shared (an
    ``SSLContext`` is safe to share between connections)."""
    return httpx.create_ssl_context()


async def output_bytes(url: str, hosts: OutputHosts) -> int | None:
    """``Content-Length`` of ``url``'s ``HEAD`` answer; None when unknown or not allowed."""
    if not hosts.allows(url):
        return None
    try:
        async with httpx.AsyncClient(
            timeout=HEAD_TIMEOUT_S, follow_redirects=False, verify=_tls()
        ) as client:
            response = await client.head(url)
    except httpx.HTTPError:
        return None
    length = response.headers.get("content-length", "")
    if response.status_code != httpx.codes.OK or not length.isdigit():
        return None
    return int(length)
