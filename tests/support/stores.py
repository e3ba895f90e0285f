"""Helpers that reach under the repository seam, for tests that must stage what no service
would do (drift from a manual edit, a crashed process)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from arcano_tools.domain.repository import Repository
from arcano_tools.store import JobStore
from arcano_tools.store import schema as s
from arcano_tools.store.memory import InMemoryStore


async def force_in_flight(store: Repository, account: str, in_flight: int) -> None:
    """Set an account's ``in_flight`` behind the store's back (an operator's manual edit)."""
    if isinstance(store, InMemoryStore):
        current = store._accounts[account]
        store._accounts[account] = dataclasses.replace(current, in_flight=in_flight)
        return
    assert isinstance(store, JobStore)
    a = s.runninghub_accounts
    async with store.engine.begin() as conn:
        await conn.execute(
            a.update().where(a.c.account_name == account).values(in_flight=in_flight)
        )


class CountingStore:
    """The store, with each call counted by method name (its results unchanged)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted
