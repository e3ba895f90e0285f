"""Counting the SQL statements a process sends, for benchmarks (``ARCANO_COUNT_QUERIES=1``).

A SQLAlchemy cursor hook: every statement, reads and writes alike, counted where it is sent,
so ``/metrics`` shows what a thousand idle pages cost the database (issue 9, target 4). Off by
default: an event hook on every statement is not free.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

#: The variable that switches the count on.
COUNT_QUERIES_ENV = "ARCANO_COUNT_QUERIES"


def counting_enabled() -> bool:
    return os.environ.get(COUNT_QUERIES_ENV, "") == "1"


def count_queries(engines: list[sa.Engine], count: Callable[[], None]) -> None:
    """Call ``count`` once for every statement any of ``engines`` sends (a store has two: its
    async engine's and the blocking one its hot paths use in a worker thread)."""

    def _counted(*_args: Any) -> None:
        count()

    for engine in engines:
        event.listen(engine, "before_cursor_execute", _counted)
