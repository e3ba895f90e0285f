"""The webhook receiver's decisions: early, duplicate, mismatched, malformed, forged and
old-style deliveries, and the reply ``api/`` sends RunningHub for each."""

from __future__ import annotations

import json

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse

from arcano_tools.api.replies import webhook_reply, webhook_reply_bytes
from arcano_tools.api.routes import _query_value
from arcano_tools.domain.status import FinishedBy, JobStatus
from arcano_tools.services.webhooks import BODY_KEEP_CHARS, Delivery, WebhookResult
from tests.support.core import ACCOUNT, Core


async def outcomes(core: Core) -> dict[str, int]:
    """The webhook health counts, the duplicates' bulk write included."""
    await core.webhooks.events.flush()
    return await core.store.webhook_counts()


async def test_the_webhook_completes_its_job(core: Core) -> None:
    job = await core.running()
    body = await core.webhook_for(job)

    result = await core.webhooks.receive(job.table, job.id, core.token(job), body)

    done = await core.job(job)
    assert (done.status, done.finished_by) == (JobStatus.COMPLETED, FinishedBy.WEBHOOK)
    assert webhook_reply(result) == (200, {"ok": True, "status": "completed", "early": False})
    assert await outcomes(core) == {"accepted": 1}


async def test_an_early_webhook_stores_the_task_id_and_finishes_the_job(core: Core) -> None:
    """The plan's race: the webhook arrives before the create call's answer was saved."""
    running = await core.running()
    body = await core.webhook_for(running)
    job = await core.submit()
    claimed = await core.store.claim_slot(await core.job(job), ACCOUNT)
    assert claimed is not None
    assert claimed.task_id is None
    early_body = body.replace(running.task_id.encode(), b"EARLY-1")  # type: ignore[union-attr]

    result = await core.webhooks.receive(job.table, job.id, core.token(job), early_body)

    done = await core.job(job)
    assert (done.status, done.task_id) == (JobStatus.COMPLETED, "EARLY-1")
    assert result.early
    assert webhook_reply(result) == (200, {"ok": True, "status": "completed", "early": True})
    # then the create call returns: it stores the same id and changes nothing else
    after = await core.store.save_task_id(job.table, job.id, "EARLY-1", claim_id=claimed.claim_id)
    assert after is not None
    assert after.status is JobStatus.COMPLETED


async def test_a_duplicate_changes_nothing_and_is_answered_ok(core: Core) -> None:
    job = await core.running()
    body = await core.webhook_for(job)
    await core.webhooks.receive(job.table, job.id, core.token(job), body)

    again = await core.webhooks.receive(job.table, job.id, core.token(job), body)

    assert again.delivery is Delivery.DUPLICATE
    assert webhook_reply(again) == (200, {"ok": True, "duplicate": True, "status": "completed"})
    assert await core.ledger_kinds() == ["grant", "charge"]
    assert await outcomes(core) == {"accepted": 1, "duplicate": 1}


async def test_a_webhook_for_another_task_is_refused(core: Core) -> None:
    job = await core.running()
    body = (await core.webhook_for(job)).replace(job.task_id.encode(), b"OTHER")  # type: ignore[union-attr]

    result = await core.webhooks.receive(job.table, job.id, core.token(job), body)

    assert webhook_reply(result) == (409, {"error": "taskId does not belong to this job"})
    assert (await core.job(job)).status is JobStatus.RUNNING


async def test_a_forged_token_is_refused_before_anything_changes(core: Core) -> None:
    job = await core.running()
    body = await core.webhook_for(job)

    for token in (None, "", "0" * 32, "ç" * 32):
        result = await core.webhooks.receive(job.table, job.id, token, body)
        assert webhook_reply(result) == (401, {"error": "invalid webhook token"})
    unknown_table = await core.webhooks.receive("users", job.id, core.token(job), body)

    assert unknown_table.delivery is Delivery.BAD_TOKEN
    assert (await core.job(job)).status is JobStatus.RUNNING
    assert await outcomes(core) == {"rejected": 5}


async def test_a_malformed_webhook_is_refused_and_the_job_is_synced_instead(
    core: Core,
) -> None:
    job = await core.running()
    await core.upstream_done(job)

    result = await core.webhooks.receive(job.table, job.id, core.token(job), b'{"taskId": ')

    status, body = webhook_reply(result)
    assert status == 400
    assert body["error"].startswith("malformed webhook: ")
    assert (await core.job(job)).status is JobStatus.COMPLETED  # asked /outputs instead
    assert await outcomes(core) == {"malformed": 1}


async def test_an_old_style_webhook_is_only_a_hint_checked_with_runninghub(core: Core) -> None:
    job = await core.running()
    task = await core.upstream_done(job)
    forged = json.dumps(
        {"event": "TASK_END", "taskId": task.task_id, "eventData": json.dumps({"code": 0})}
    ).encode()
    core.clock.advance(seconds=30)  # its first check is due

    result = await core.webhooks.receive_by_task(forged)

    done = await core.job(job)
    assert done.status is JobStatus.COMPLETED
    assert done.output_url is not None
    assert done.output_url.startswith("http://emulator.test/")  # RunningHub's, not the body's
    assert webhook_reply(result, by_job=False) == (200, {"ok": True, "status": "completed"})


async def test_an_old_style_webhook_before_its_task_id_is_kept_then_applied(
    core: Core,
) -> None:
    job = await core.submit()
    claimed = await core.store.claim_slot(await core.job(job), ACCOUNT)
    assert claimed is not None
    body = json.dumps({"event": "TASK_END", "taskId": "T-KEPT", "eventData": "{}"}).encode()

    kept = await core.webhooks.receive_by_task(body)
    assert webhook_reply(kept, by_job=False) == (202, {"ok": True, "kept": True})
    assert await outcomes(core) == {"unmatched": 1}

    saved = await core.store.save_task_id(job.table, job.id, "T-KEPT", claim_id=claimed.claim_id)
    assert saved is not None
    core.clock.advance(seconds=30)
    await core.webhooks.apply_kept(saved)

    assert await core.store.take_unmatched_webhooks("T-KEPT") == []  # taken once, applied
    # the emulator never heard of T-KEPT: the check says so and the job stays active
    assert (await core.job(job)).last_upstream_code is not None


async def test_a_forged_huge_task_id_is_refused_and_stored_only_truncated(core: Core) -> None:
    """Audit finding: a 200,000-character ``taskId`` was kept whole for 7 days."""
    huge = json.dumps({"event": "TASK_END", "taskId": "9" * 200_000, "eventData": "{}"})

    result = await core.webhooks.receive_by_task(huge.encode())

    status, body = webhook_reply(result, by_job=False)
    assert status == 400
    assert "not a RunningHub task id" in body["error"]
    (event,) = core.store._webhooks
    assert event["outcome"] == "malformed"
    assert event["task_id"] is None
    assert len(event["body"]) <= BODY_KEEP_CHARS


@pytest.mark.parametrize(
    ("result", "by_job"),
    [
        (WebhookResult(Delivery.APPLIED, JobStatus.COMPLETED, early=True), True),
        (WebhookResult(Delivery.APPLIED, JobStatus.FAILED), False),
        (WebhookResult(Delivery.DUPLICATE, JobStatus.COMPLETED), True),
        (WebhookResult(Delivery.BAD_TOKEN), True),
        (WebhookResult(Delivery.MALFORMED, detail="taskId missing — “ã”"), True),
    ],
)
def test_a_rendered_reply_is_the_bytes_json_response_would_send(
    result: WebhookResult, by_job: bool
) -> None:
    status, body = webhook_reply(result, by_job=by_job)

    assert webhook_reply_bytes(result, by_job=by_job) == (status, JSONResponse(body).body)


@pytest.mark.parametrize(
    "query",
    [b"token=abc", b"x=1&token=a%2Fb+c", b"token=first&token=last", b"token=", b"other=1", b""],
)
def test_the_token_is_read_from_the_query_as_starlette_reads_it(query: bytes) -> None:
    request = Request({"type": "http", "query_string": query, "headers": []})

    assert _query_value(request, "token") == request.query_params.get("token")
