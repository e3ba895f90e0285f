"""The relay's wire format and log redaction (pure functions; the relay itself runs against a
real Redis in tests/integration/test_bus_relay.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from arcano_tools.domain.status import JobStatus
from arcano_tools.services.bus import JobUpdate
from arcano_tools.services.bus_relay import decode, encode, redacted
from tests.support.records import job_record

UPDATE = JobUpdate(
    table="upscaler_jobs",
    job_id="j1",
    user_id="u1",
    status="completed",
    output_url="https://x/y.png",
    finished_by="webhook",
)


def test_an_update_survives_the_round_trip_with_its_origin() -> None:
    assert decode(encode(UPDATE, "proc-a")) == ("proc-a", UPDATE)


def test_the_job_an_update_carries_stays_in_its_process() -> None:
    """Other processes re-read the job from the database; its row (datetimes and all) is
    not part of the message."""
    carrying = JobUpdate.of(job_record(datetime.now(UTC), id="j1", status=JobStatus.COMPLETED))
    assert carrying.job is not None
    message = json.loads(encode(carrying, "proc-a"))
    assert "job" not in message
    decoded = decode(json.dumps(message))
    assert decoded is not None
    assert decoded[1].job is None
    assert decoded[1] == carrying  # the same update otherwise


def test_bytes_from_redis_decode_too() -> None:
    assert decode(encode(UPDATE, "proc-a").encode()) == ("proc-a", UPDATE)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        None,
        json.dumps([1, 2]),
        json.dumps({"table": "upscaler_jobs", "job_id": "j", "user_id": "u", "status": "x"}),
        json.dumps({"origin": "a", "table": "upscaler_jobs", "job_id": "j", "user_id": "u"}),
        json.dumps(
            {"origin": "a", "table": "t", "job_id": 5, "user_id": "u", "status": "completed"}
        ),
        json.dumps({"origin": 1, "table": "t", "job_id": "j", "user_id": "u", "status": "s"}),
    ],
    ids=["garbage", "none", "list", "no-origin", "no-status", "int-id", "int-origin"],
)
def test_anything_else_on_the_channel_is_refused(raw: object) -> None:
    assert decode(raw) is None


def test_unknown_keys_are_ignored_for_forward_compatibility() -> None:
    data = json.loads(encode(UPDATE, "a"))
    data["added_later"] = "x"
    assert decode(json.dumps(data)) == ("a", UPDATE)


def test_logs_never_show_the_redis_password() -> None:
    shown = redacted("redis://user:s3cret@cache.internal:6380/2")
    assert shown == "redis://cache.internal:6380/2"
    assert "s3cret" not in redacted("rediss://:s3cret@h/0")
