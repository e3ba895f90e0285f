"""Waiting on conditions, never on a bare timer (docs/testing.md), and reading timestamps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

T = TypeVar("T")


def _give_up_if_late(deadline: float, timeout: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    """Poll ``predicate()`` until it returns a truthy value, and return that value."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        _give_up_if_late(deadline, timeout, what)
        time.sleep(interval)
    return value


async def wait_for_async(
    predicate: Callable[[], Awaitable[T]],
    *,
    timeout: float = 15.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """:func:`wait_for` for a coroutine predicate (browser tests on the event loop)."""
    deadline = time.monotonic() + timeout
    while not (value := await predicate()):
        _give_up_if_late(deadline, timeout, what)
        await asyncio.sleep(interval)
    return value


def seconds_between(a: str, b: str) -> float:
    """Seconds from ISO timestamp ``a`` to ``b`` (the API's ``startedAt``/``completedAt``)."""
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()
