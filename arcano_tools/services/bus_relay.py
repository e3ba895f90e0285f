"""Job updates across backend processes, through Redis pub/sub (``REFLEX_REDIS_URL``).

With several workers, the webhook for a job may land in one process while the page following
that job lives in another. Each process publishes its own updates on one Redis channel and
hands the other processes' updates to its local :class:`~arcano_tools.services.bus.JobBus`, so the
page sees the result at once instead of at its next re-read of the database.

Updates stay hints (the database is the truth), which decides every failure mode here:

* publishing never blocks a webhook or a finish — updates wait in a bounded outbox, the
  oldest dropped when Redis is away, and a page re-reads its job anyway;
* losing Redis costs only latency: both loops reconnect with jittered backoff, and the outage
  is logged once (not once per update), without the URL's password;
* a message that is not a well-formed update is counted and ignored, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import uuid
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from arcano_tools.metrics import Metrics
from arcano_tools.services.bus import JobBus, JobUpdate

log = logging.getLogger(__name__)

#: The one channel every process publishes on and listens to.
CHANNEL = "arcano:job-updates"
#: Updates waiting to be published while Redis is slow or away (oldest dropped beyond).
OUTBOX_SIZE = 1000
#: Reconnect backoff bounds, seconds (jittered, doubling).
RECONNECT_MIN_S = 0.2
RECONNECT_MAX_S = 5.0
#: How long a subscriber read waits before checking that it should still run, seconds.
READ_TIMEOUT_S = 1.0
#: Redis connect timeout: a wrong URL must not hang start-up or a publish.
CONNECT_TIMEOUT_S = 2.0

#: What crosses to the other processes: the update's text fields, not the job it carries
#: (they re-read the job from the database, the truth).
_FIELDS = {f.name: f for f in dataclasses.fields(JobUpdate) if f.name != "job"}
_REQUIRED = ("table", "job_id", "user_id", "status")


def redacted(url: str) -> str:
    """``redis://host:port/db`` without user or password, for logs."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def encode(update: JobUpdate, origin: str) -> str:
    return json.dumps({"origin": origin, **{name: getattr(update, name) for name in _FIELDS}})


def decode(raw: Any) -> tuple[str, JobUpdate] | None:
    """``(origin, update)`` from a channel message, or None when it is not one of ours."""
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("origin"), str):
        return None
    values: dict[str, str | None] = {}
    for name in _FIELDS:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            return None
        values[name] = value
    if any(not values[name] for name in _REQUIRED):
        return None
    return data["origin"], JobUpdate(**values)  # type: ignore[arg-type]


class RedisBusRelay:
    """Connects one process's :class:`JobBus` to every other process's, through Redis."""

    def __init__(
        self, bus: JobBus, url: str, *, metrics: Metrics, origin: str | None = None
    ) -> None:
        self.bus = bus
        self.url = url
        self.metrics = metrics
        self.origin = origin or uuid.uuid4().hex
        self._outbox: asyncio.Queue[JobUpdate] = asyncio.Queue(maxsize=OUTBOX_SIZE)
        self._tasks: list[asyncio.Task[None]] = []
        self._redis: aioredis.Redis | None = None
        self._down: set[str] = set()  # which loops are currently logging an outage

    def _count(self, outcome: str) -> None:
        self.metrics.bus_relay.labels(outcome).inc()

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._redis = aioredis.Redis.from_url(
            self.url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_keepalive=True
        )
        self.bus.forward = self._enqueue
        self.bus.complete = False  # until the subscription is up
        self._tasks = [
            asyncio.create_task(self._publish_loop(), name="bus-relay-publish"),
            asyncio.create_task(self._subscribe_loop(), name="bus-relay-subscribe"),
        ]
        log.info(
            "job updates relayed through redis",
            extra={"action": "bus_relay", "redis": redacted(self.url)},
        )

    async def stop(self) -> None:
        self.bus.forward = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.aclose()
            self._redis = None

    # --- outgoing --------------------------------------------------------------------------
    def _enqueue(self, update: JobUpdate) -> None:
        if self._outbox.full():
            self._outbox.get_nowait()
            self._count("dropped")
        self._outbox.put_nowait(update)

    async def _publish_loop(self) -> None:
        assert self._redis is not None
        delay = RECONNECT_MIN_S
        pending: JobUpdate | None = None
        while True:
            if pending is None:
                pending = await self._outbox.get()
            try:
                await self._redis.publish(CHANNEL, encode(pending, self.origin))
            except (RedisError, OSError) as exc:
                self._count("failed")
                self._outage("publish", exc)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(RECONNECT_MAX_S, delay * 2)
                continue
            self._count("sent")
            self._recovered("publish")
            pending, delay = None, RECONNECT_MIN_S

    # --- incoming --------------------------------------------------------------------------
    async def _subscribe_loop(self) -> None:
        assert self._redis is not None
        delay = RECONNECT_MIN_S
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self.bus.complete = True
                self._recovered("subscribe")
                delay = RECONNECT_MIN_S
                while True:
                    message = await pubsub.get_message(timeout=READ_TIMEOUT_S)
                    if message is not None and message.get("type") == "message":
                        self._receive(message.get("data"))
            except (RedisError, OSError) as exc:
                self.bus.complete = False
                self._outage("subscribe", exc)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(RECONNECT_MAX_S, delay * 2)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    # redis 7.4 leaves PubSub.aclose unannotated
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _receive(self, raw: Any) -> None:
        decoded = decode(raw)
        if decoded is None:
            self._count("malformed")
            return
        origin, update = decoded
        if origin == self.origin:
            return  # our own update, already delivered locally
        self._count("received")
        self.bus.deliver(update)

    # --- outage logging: once per outage, not once per update ----------------------------
    def _outage(self, loop: str, exc: BaseException) -> None:
        if loop in self._down:
            return
        self._down.add(loop)
        log.warning(
            "redis unavailable; job updates stay in this process until it is back",
            extra={
                "action": "bus_relay",
                "loop": loop,
                "redis": redacted(self.url),
                "error": type(exc).__name__,
            },
        )

    def _recovered(self, loop: str) -> None:
        if loop in self._down:
            self._down.discard(loop)
            log.info(
                "redis reachable again",
                extra={"action": "bus_relay", "loop": loop, "redis": redacted(self.url)},
            )
