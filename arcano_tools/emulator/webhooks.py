"""Webhook delivery the way RunningHub does it: POST, and retry a failed delivery.

Why retries matter to the product: RunningHub re-sends a webhook the receiver did not accept,
so the receiver sees duplicates and late copies; the emulator must produce them too. The
backoff is short (0.5 s, 1 s, 2 s instead of RunningHub's minutes) so tests stay fast.
A 401 is final: the receiver refused the token, re-sending will not help.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from arcano_tools.emulator.control import WebhookStats
from arcano_tools.tls import client_tls

log = logging.getLogger("arcano_tools.emulator")

TIMEOUT_S = 10.0
BACKOFF_S: tuple[float, ...] = (0.5, 1.0, 2.0)


def redact_url(url: str) -> str:
    """The URL without its query: webhook URLs carry a secret token that logs must not show."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?…" if parts.query else "")


def webhook_body(task_id: str, envelope: dict[str, Any], *, malformed: bool = False) -> bytes:
    """RunningHub's documented body: ``eventData`` is the /outputs envelope as a JSON *string*.

    ``malformed`` cuts the body short so it is not valid JSON (a receiver must survive it).
    """
    body = json.dumps(
        {"event": "TASK_END", "taskId": task_id, "eventData": json.dumps(envelope)},
        ensure_ascii=False,
    ).encode()
    return body[: max(1, len(body) // 2)] if malformed else body


async def post_once(url: str, body: bytes, stats: WebhookStats) -> str:
    """One POST. Returns "ok" (2xx), "final" (401, never retried) or "retry"."""
    stats.attempts += 1
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S, verify=client_tls()) as client:
            resp = await client.post(
                url,
                content=body,
                headers={"Content-Type": "application/json", "User-Agent": "RunningHub-Emulator"},
            )
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as exc:
        log.info("webhook URL %s is unusable: %s", redact_url(url), type(exc).__name__)
        return "final"  # re-sending to a URL that cannot work is pointless
    except httpx.HTTPError as exc:
        log.info("webhook to %s failed: %s", redact_url(url), type(exc).__name__)
        return "retry"
    if 200 <= resp.status_code < 300:
        stats.sent += 1
        return "ok"
    log.info("webhook to %s answered HTTP %s", redact_url(url), resp.status_code)
    return "final" if resp.status_code == 401 else "retry"


async def deliver(
    url: str,
    body: bytes,
    stats: WebhookStats,
    *,
    first_result: str | None = None,
    backoff: Sequence[float] = BACKOFF_S,
) -> bool:
    """Deliver with up to ``len(backoff)`` retries; True once a POST is answered 2xx.

    ``first_result`` is the outcome of a first attempt the caller already made (the "early"
    mode sends it inline before the create call answers, and leaves the retries to this).
    ``stats`` is the counters object current when the delivery started, so a reset of the
    emulator's stats mid-delivery does not mix old deliveries into the new counters.
    """
    result = first_result or await post_once(url, body, stats)
    for delay in backoff:
        if result != "retry":
            break
        stats.retries += 1
        await asyncio.sleep(delay)
        result = await post_once(url, body, stats)
    if result == "ok":
        return True
    stats.failed += 1
    return False
