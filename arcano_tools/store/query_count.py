"""Counting the SQL statements a process sends, for benchmarks (``ARCANO_COUNT_QUERIES=1``).

A SQLAlchemy cursor hook: every statement, reads and writes alike, counted where it is sent,
so ``/metrics`` shows what a thousand idle pages cost the database (issue 9, target 4). Off by
default: an event hook on every statement is not free.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

#: The variable that switches the count on.
COUNT_QUERIES_ENV = "ARCANO_COUNT_QUERIES"


def counting_enabled() -> bool:
    return os.environ.get(COUNT_QUERIES_ENV, "") == "1"


def count_queries(engine: AsyncEngine, count: Callable[[], None]) -> None:
    """Call ``count`` once for every statement ``engine`` sends."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _counted(*_args: Any) -> None:
        count()
