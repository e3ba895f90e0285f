"""The hot paths' per-process memory (issue 9): a sync that is not due yet answers without
writing — and, once seen, without reading — until the next check or a change of its job;
a retried webhook of an ended job is recognised without reading the job."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from arcano_tools.api.replies import sync_reply
from arcano_tools.domain.errors import JobNotFound
from arcano_tools.domain.records import FinishRequest
from arcano_tools.domain.status import FinishedBy, JobStatus, SyncReason
from arcano_tools.services.auth import Principal
from arcano_tools.services.webhooks import Delivery
from tests.support.core import TIMINGS, Core
from tests.support.stores import CountingStore

USER = Principal(user_id="u1")
STRANGER = Principal(user_id="u2")


async def never_ending(core: Core) -> Any:
    """A job RunningHub keeps running (no webhook, every check answers "still running")."""
    core.control(outcome="never")
    return await core.running()


def count_store_calls(core: Core) -> CountingStore:
    counting = CountingStore(core.store)
    core.sync.store = counting  # type: ignore[assignment]
    core.webhooks.store = counting  # type: ignore[assignment]
    core.webhooks.events.store = counting  # type: ignore[assignment]
    return counting


async def test_a_sync_that_is_not_due_writes_nothing_and_then_reads_nothing(core: Core) -> None:
    job = await never_ending(core)
    first = await core.sync.sync(job.table, job.id, USER)  # due: RunningHub is asked
    assert first.reason is SyncReason.STILL_PROCESSING
    assert not first.cached
    calls = count_store_calls(core)

    again = await core.sync.sync(job.table, job.id, USER)
    core.clock.advance(seconds=TIMINGS.poll_interval.total_seconds() / 2)
    later = await core.sync.sync(job.table, job.id, USER)

    assert (
        sync_reply(again)
        == sync_reply(later)
        == sync_reply(type(first).still_processing(first.rh_code, first.rh_msg, cached=True))
    )
    assert calls.calls == Counter()  # no read, no reservation, no write


async def test_without_the_cache_a_sync_not_due_is_a_read_only(core: Core) -> None:
    job = await never_ending(core)
    await core.sync.sync(job.table, job.id, USER)
    core.sync.not_due = type(core.sync.not_due)(core.bus)  # a fresh process's empty memory
    calls = count_store_calls(core)

    outcome = await core.sync.sync(job.table, job.id, USER)

    assert outcome.cached
    assert outcome.reason is SyncReason.STILL_PROCESSING
    assert calls.calls["reserve_check"] == 0
    assert calls.calls["get_job"] == 1


async def test_the_next_check_is_due_again_when_the_interval_has_passed(core: Core) -> None:
    job = await never_ending(core)
    await core.sync.sync(job.table, job.id, USER)
    asked = core.emulator.stats.calls.get("outputs", 0)
    core.clock.advance(seconds=TIMINGS.poll_interval.total_seconds())

    outcome = await core.sync.sync(job.table, job.id, USER)

    assert not outcome.cached
    assert core.emulator.stats.calls.get("outputs", 0) == asked + 1


async def test_a_change_of_the_job_on_the_bus_ends_the_cached_answer(core: Core) -> None:
    job = await never_ending(core)
    await core.sync.sync(job.table, job.id, USER)
    await core.sync.sync(job.table, job.id, USER)  # answered from memory now
    await core.queue.finish(
        job.table, job.id, FinishRequest(JobStatus.FAILED, FinishedBy.USER, error_message="x")
    )

    outcome = await core.sync.sync(job.table, job.id, USER)

    assert outcome.reason is SyncReason.ALREADY_TERMINAL
    assert outcome.status is JobStatus.FAILED


async def test_an_answer_read_before_a_change_is_not_kept(core: Core) -> None:
    job = await never_ending(core)
    await core.sync.sync(job.table, job.id, USER)
    read_at = core.sync.not_due.mark()
    stale = await core.store.get_job(job.table, job.id)
    await core.fail(job)  # published while the stale read was in flight
    assert stale is not None
    from arcano_tools.services.answer_cache import NotDue

    core.sync.not_due.put(
        job.table,
        job.id,
        NotDue(job.user_id, core.clock() + TIMINGS.poll_interval, 804, "x"),
        read_at=read_at,
    )

    assert core.sync.not_due.get(job.table, job.id, core.clock()) is None


async def test_nothing_is_served_from_memory_while_other_processes_may_be_unheard(
    core: Core,
) -> None:
    job = await never_ending(core)
    await core.sync.sync(job.table, job.id, USER)
    core.bus.complete = False  # the Redis relay is configured but down
    calls = count_store_calls(core)

    await core.sync.sync(job.table, job.id, USER)

    assert calls.calls["get_job"] == 1


async def test_a_cached_answer_is_still_only_for_the_jobs_owner(core: Core) -> None:
    job = await never_ending(core)
    await core.sync.sync(job.table, job.id, USER)
    await core.sync.sync(job.table, job.id, USER)

    try:
        await core.sync.sync(job.table, job.id, STRANGER)
    except JobNotFound:
        pass
    else:
        raise AssertionError("another user was answered about the job")


async def test_a_cached_answer_never_outlives_the_deadline(core: Core) -> None:
    job = await never_ending(core)
    await core.sync.sync(job.table, job.id, USER)
    core.clock.advance(seconds=TIMINGS.max_timeout.total_seconds())

    outcome = await core.sync.sync(job.table, job.id, USER)

    assert outcome.synced
    assert outcome.status is JobStatus.FAILED


async def test_a_first_delivery_is_only_its_finish_and_records_itself_in_bulk(
    core: Core,
) -> None:
    """No read of the job before its finish: the finish's guard names the webhook's task
    (BENCHMARKS.md, item 31). The event's record waits for the next bulk write, once the
    finish has committed: a transaction of its own was a sixth of a first delivery's CPU
    (item 26)."""
    job = await core.running()
    body = await core.webhook_for(job)
    calls = count_store_calls(core)
    core.queue.store = calls  # type: ignore[assignment]

    result = await core.webhooks.receive(job.table, job.id, core.token(job), body)

    assert result.delivery is Delivery.APPLIED
    assert (await core.job(job)).status is JobStatus.COMPLETED
    assert calls.calls == Counter({"finish": 1})
    assert await core.store.webhook_counts() == {}

    await core.webhooks.events.flush()

    assert calls.calls["record_webhooks"] == 1
    assert await core.store.webhook_counts() == {"accepted": 1}


async def test_a_retried_webhook_of_an_ended_job_reads_and_writes_nothing(core: Core) -> None:
    """Its record (webhook health) waits for the next bulk write: a transaction per retried
    delivery was most of a duplicate's cost under load."""
    job = await core.running()
    body = await core.webhook_for(job)
    first = await core.webhooks.receive(job.table, job.id, core.token(job), body)
    assert first.delivery is Delivery.APPLIED
    calls = count_store_calls(core)

    again = await core.webhooks.receive(job.table, job.id, core.token(job), body)

    assert again.delivery is Delivery.DUPLICATE
    assert again.status is JobStatus.COMPLETED
    assert calls.calls == Counter()  # answered without the store
    assert await core.store.webhook_counts() == {}  # both records wait for the bulk write

    await core.webhooks.events.flush()

    assert calls.calls == Counter({"record_webhooks": 1})
    assert await core.store.webhook_counts() == {"accepted": 1, "duplicate": 1}


async def test_a_webhook_with_another_task_id_is_still_refused_for_an_ended_job(
    core: Core,
) -> None:
    job = await core.running()
    body = await core.webhook_for(job)
    await core.webhooks.receive(job.table, job.id, core.token(job), body)
    assert job.task_id is not None
    other = body.replace(job.task_id.encode(), b"1234567890123456789")

    result = await core.webhooks.receive(job.table, job.id, core.token(job), other)

    assert result.delivery is Delivery.TASK_MISMATCH


async def test_a_byte_identical_retry_is_answered_without_parsing_its_body(
    core: Core, monkeypatch: Any
) -> None:
    """RunningHub retries the same bytes: a digest of the body that named the job's task
    answers them; a body that differs (re-serialized) is parsed once, then remembered."""
    import arcano_tools.services.webhooks as webhooks_module

    parsed: list[bytes] = []
    real_parse = webhooks_module.parse_webhook

    def counting_parse(raw: bytes) -> Any:
        parsed.append(raw)
        return real_parse(raw)

    monkeypatch.setattr(webhooks_module, "parse_webhook", counting_parse)
    job = await core.running()
    body = await core.webhook_for(job)
    token = core.token(job)
    assert (await core.webhooks.receive(job.table, job.id, token, body)).delivery is (
        Delivery.APPLIED
    )
    assert parsed == [body]

    same = await core.webhooks.receive(job.table, job.id, token, body)
    respaced = json.dumps(json.loads(body), indent=2).encode()
    other_bytes = await core.webhooks.receive(job.table, job.id, token, respaced)
    other_again = await core.webhooks.receive(job.table, job.id, token, respaced)

    assert [r.delivery for r in (same, other_bytes, other_again)] == [Delivery.DUPLICATE] * 3
    assert {r.status for r in (same, other_bytes, other_again)} == {JobStatus.COMPLETED}
    assert parsed == [body, respaced]  # the identical retries were not parsed
    await core.webhooks.events.flush()
    assert await core.store.webhook_counts() == {"accepted": 1, "duplicate": 3}


async def test_a_remembered_token_opens_no_door_to_another_token_or_job(core: Core) -> None:
    job = await core.running()
    other = await core.running()
    body = await core.webhook_for(job)
    token = core.token(job)
    await core.webhooks.receive(job.table, job.id, token, body)  # the token is remembered

    forged_token = token[:-1] + ("1" if token.endswith("0") else "0")
    forged = await core.webhooks.receive(job.table, job.id, forged_token, body)
    wrong_job = await core.webhooks.receive(other.table, other.id, token, body)
    no_token = await core.webhooks.receive(job.table, job.id, None, body)

    assert [r.delivery for r in (forged, wrong_job, no_token)] == [Delivery.BAD_TOKEN] * 3
    assert (await core.job(other)).status is JobStatus.RUNNING
