"""The log scanner finds what it is meant to find (so a clean scan means something)."""

from __future__ import annotations

from pathlib import Path

from arcano_tools.services.auth import issue_user_token
from arcano_tools.services.queue_manager import webhook_token
from tests.support.secrets_scan import WEBHOOK_SECRET, leaks
from tests.support.servers import JWT_SECRET, SERVICE_KEY

JOB = "0f8fad5b-d9cb-469f-a165-70867728950e"


def test_a_clean_log_has_no_leaks(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    log.write_text(f"INFO job finished action=finish job_id={JOB} table=upscaler_jobs\n")
    assert leaks([log]) == []


def test_each_kind_of_secret_is_found(tmp_path: Path) -> None:
    token = webhook_token(WEBHOOK_SECRET, "pose_changer_jobs", JOB)
    lines = {
        "key.log": f"Authorization: Bearer {SERVICE_KEY}",
        "jwt.log": f"user token {issue_user_token(JWT_SECRET, 'alice')}",
        "hook.log": f"job_id={JOB} url=/webhooks/runninghub/pose_changer_jobs/{JOB}?token={token}",
    }
    for name, text in lines.items():
        (tmp_path / name).write_text(text)

    found = leaks(sorted(tmp_path.iterdir()))

    assert found == [
        "hook.log: the webhook token of " + JOB,
        "jwt.log: a JWT",
        "key.log: the service key",
    ]
