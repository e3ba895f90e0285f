"""Group commit: many small writes of concurrent requests, one transaction.

Under load the hot paths (a webhook finishing its job and recording the event, a check
reserved and its answer recorded, a lease released) each wrote in their own transaction, and
on SQLite the connection threads then spent most of their time asleep in SQLite's busy handler
waiting for the one write lock, and the event loop spent much of its time handing statements
to those threads (see BENCHMARKS.md). Here one writer task per process and event loop runs
every write queued meanwhile, in order, in one transaction done whole in a worker thread (one
hand-off per batch, not several per statement); each caller awaits the result of its own
write.

Semantics are those of running the writes one after the other: each write is a function of
the connection with its own conditional statements (the guarded finish still changes a row
once — a second finish of the same job in the same batch sees the first one's change), and its
result is handed back only once the transaction has committed. If the batch fails (a write
raised, a deadlock, a lost connection) it is rolled back whole and every write is run again
alone in its own transaction, so a failure reaches only the caller whose write failed.

A caller cancelled (a stop cancels the watchdog's tasks) before its write was taken into a
transaction: the write never runs, as a cancelled transaction used to roll back. Cancelled
while its transaction is under way: that transaction is not interrupted, so the caller waits
for its outcome and, if it committed, goes on (the cancellation is withdrawn) — what follows a
committed write, such as the "job finished" line and the job-bus update, must not be lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import sqlalchemy as sa

log = logging.getLogger(__name__)

T = TypeVar("T")
#: A write: blocking statements on the connection of an open transaction (run in a worker
#: thread); its result is the caller's.
Write = Callable[[sa.Connection], T]
#: Runs writes in order in one transaction (in the calling thread); their results.
Transaction = Callable[[list[Write[Any]]], list[Any]]
#: Runs a blocking function in a worker thread (the store's own threads).
InThread = Callable[..., Awaitable[Any]]
#: Writes run in one transaction at most (bounds how long a batch holds the write lock).
MAX_BATCH = 128


class GroupCommit:
    """The writer of one event loop (futures and tasks belong to a loop)."""

    def __init__(
        self,
        transaction: Transaction,
        turn: Callable[[], AbstractAsyncContextManager[None]],
        in_thread: InThread = asyncio.to_thread,
        *,
        name: str = "group commit",
        outcome_awaited: bool = True,
    ) -> None:
        #: What it batches, for its log lines (the store's one-statement reads take turns the
        #: same way: ``transaction`` then runs them without one).
        self.name = name
        #: A caller cancelled while its call is under way waits for the outcome (a committed
        #: write must be followed up); ``False`` (reads): it is cancelled at once, as if it
        #: had its own thread, and the answer is dropped.
        self._outcome_awaited = outcome_awaited
        self._transaction = transaction
        self._in_thread = in_thread
        #: Waits for this process's turn to write (SQLite's one writer).
        self._turn = turn
        self._loop = asyncio.get_running_loop()
        self._pending: list[tuple[Write[Any], asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None
        #: Futures of the writes whose transaction is under way.
        self._in_flight: set[asyncio.Future[Any]] = set()
        #: Transactions committed (the tests check that concurrent writes shared some).
        self.transactions = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    async def run(self, write: Write[T]) -> T:
        future: asyncio.Future[T] = self._loop.create_future()
        entry: tuple[Write[Any], asyncio.Future[Any]] = (write, future)
        self._pending.append(entry)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if future not in self._in_flight or not self._outcome_awaited:
                if entry in self._pending:
                    self._pending.remove(entry)  # never runs
                future.cancel()
                raise
            task = asyncio.current_task()
            try:
                return await asyncio.shield(future)  # committed or failed as a whole
            finally:
                if task is not None:
                    task.uncancel()

    async def idle(self) -> None:
        """Wait until every queued write has been run (before the engine is closed)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.wait([self._writer])

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            batch = [(w, f) for w, f in batch if not f.done()]  # cancelled meanwhile: dropped
            if not batch:
                continue
            self._in_flight = {f for _, f in batch}
            try:
                results = await self._together(batch)
            except BaseException as exc:
                if not isinstance(exc, Exception):  # cancelled: the callers learn it too
                    for _, future in batch:
                        if not future.done():
                            future.cancel()
                    raise
                await self._one_by_one(batch)
                self._in_flight = set()
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
            self._in_flight = set()

    async def _together(self, batch: list[tuple[Write[Any], asyncio.Future[Any]]]) -> list[Any]:
        async with self._turn():
            results = await self._in_thread(self._transaction, [write for write, _ in batch])
        self.transactions += 1
        return results

    async def _one_by_one(self, batch: list[tuple[Write[Any], asyncio.Future[Any]]]) -> None:
        if len(batch) > 1:
            log.info(
                "group commit fell back to one call per batch",
                extra={"batcher": self.name, "n": len(batch)},
            )
        for write, future in batch:
            try:
                async with self._turn():
                    (result,) = await self._in_thread(self._transaction, [write])
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
                continue
            self.transactions += 1
            if not future.done():
                future.set_result(result)
