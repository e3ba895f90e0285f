"""The benchmark's query probe counts every statement the SQL store sends."""

from __future__ import annotations

from pathlib import Path

from arcano_tools.store import JobStore
from arcano_tools.store.query_count import count_queries


async def test_every_statement_is_counted(tmp_path: Path) -> None:
    store = JobStore.from_url(f"sqlite+aiosqlite:///{tmp_path / 'q.db'}")
    await store.migrate()
    counted: list[int] = []
    count_queries(store.sync_engines, lambda: counted.append(1))
    try:
        assert await store.get_job("upscaler_jobs", "nope") is None
        after_one = len(counted)
        assert await store.get_job("upscaler_jobs", "nope") is None

        assert after_one >= 1
        assert len(counted) == 2 * after_one  # the same read, the same statements again
    finally:
        await store.close()
