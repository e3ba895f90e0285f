"""Plain job records for tests of pure functions (no store involved)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from arcano_tools.domain.records import Job
from arcano_tools.domain.status import JobStatus


def job_record(started: datetime, *, status: JobStatus = JobStatus.RUNNING, **fields: Any) -> Job:
    """A job of the upscaler started at ``started``; ``fields`` override any other field."""
    values: dict[str, Any] = {
        "id": "j",
        "table": "upscaler_jobs",
        "user_id": "u",
        "status": status,
        "cost": 5,
        "inputs": {},
        "created_at": started,
        "updated_at": started,
        "started_at": started,
    }
    values.update(fields)
    return Job(**values)
