"""Migration 7 (results that last) on a live database of the previous version, SQLite and
PostgreSQL: a job running when the upgrade happens gets its copy columns and can be saved."""

from __future__ import annotations

from pathlib import Path

import pytest

from arcano_tools.domain.records import utcnow
from arcano_tools.domain.status import FinishedBy, JobStatus, OutputCopy
from arcano_tools.store import JobStore
from tests.support.old_schema import old_database
from tests.support.postgres import create_database

TABLE = "upscaler_jobs"
#: The last version before results that last.
PREVIOUS = 5


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_a_running_job_survives_the_upgrade_and_can_be_saved(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'v5.db'}"
    else:
        server: str = request.getfixturevalue("pg_server_url")
        url = create_database(server).replace("postgresql://", "postgresql+psycopg://")
    await old_database(
        url,
        PREVIOUS,
        credits=10,
        job={"status": "running", "cost": 5, "task_id": "task-1"},
    )

    store = JobStore.from_url(url)
    try:
        applied = await store.migrate()
        assert 7 in applied
        job = await store.get_job(TABLE, "j1")
        assert job is not None
        assert (job.status, job.output_copy, job.output_copy_tries) == (
            JobStatus.RUNNING,
            None,
            0,
        )
        began = await store.begin_output_copy(
            TABLE,
            "j1",
            upstream_url="https://rh-images.xiaoyaoyou.com/o.png",
            reported_by=FinishedBy.WEBHOOK,
            due_at=utcnow(),
        )
        assert began is not None
        assert began.changed
        assert began.job.output_copy is OutputCopy.SAVING
        account = await store.get_account("acc")
        assert account is not None
        assert account.in_flight == 0
    finally:
        await store.close()
