"""The group-commit writer's handling of cancelled callers (a stop cancels the watchdog's
tasks): a write not yet taken into a transaction never runs; a write whose transaction is under
way still hands its caller the outcome, so what follows a committed write is not lost."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from arcano_tools.store.group_commit import GroupCommit


class BlockingTransactions:
    """Runs writes like a transaction would (in order, in the worker thread), the first batch
    held until ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.ran: list[str] = []

    def __call__(self, writes: list[Any]) -> list[Any]:
        self.started.set()
        self.release.wait(timeout=10)
        return [write(None) for write in writes]


@asynccontextmanager
async def no_turn() -> AsyncIterator[None]:
    yield


def write_named(log: list[str], name: str) -> Any:
    def write(_conn: Any) -> str:
        log.append(name)
        return name

    return write


async def test_a_cancelled_caller_whose_write_waits_never_writes() -> None:
    tx = BlockingTransactions()
    group = GroupCommit(tx, no_turn)
    first = asyncio.create_task(group.run(write_named(tx.ran, "first")))
    await asyncio.to_thread(tx.started.wait, 10)  # the first batch is under way
    second = asyncio.create_task(group.run(write_named(tx.ran, "second")))
    await asyncio.sleep(0)  # the second write is queued behind it

    second.cancel()
    tx.release.set()

    assert await first == "first"
    assert second.cancelled()
    await group.idle()
    assert tx.ran == ["first"]


async def test_a_caller_cancelled_during_its_transaction_still_gets_the_outcome() -> None:
    tx = BlockingTransactions()
    group = GroupCommit(tx, no_turn)
    caller = asyncio.create_task(group.run(write_named(tx.ran, "finish")))
    await asyncio.to_thread(tx.started.wait, 10)

    caller.cancel()
    await asyncio.sleep(0)
    tx.release.set()

    assert await caller == "finish"  # committed: the caller goes on (logs, publishes)
    assert tx.ran == ["finish"]
