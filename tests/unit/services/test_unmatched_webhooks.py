"""The old-style webhook route keeps events whose task id is not stored yet — but at most
``MAX_UNMATCHED_WEBHOOKS`` unapplied ones: anyone may post there, and a flood must not fill
the database. Past the bound a delivery is answered as before (202 kept) but not stored,
counted in a metric, and logged once per burst."""

from __future__ import annotations

import logging

import pytest

from arcano_tools import constants as c
from arcano_tools.api.replies import webhook_reply
from arcano_tools.emulator.webhooks import webhook_body
from arcano_tools.services.webhooks import Delivery
from tests.support.core import EMULATOR_BASE, Core

BOUND = 3  # the constant, shrunk for the test


def old_style(task_id: str) -> bytes:
    item = {"fileUrl": f"{EMULATOR_BASE}/files/{task_id}.png", "fileType": "png", "nodeId": "9"}
    return webhook_body(task_id, {"code": 0, "msg": "success", "data": [item]})


def not_kept_total(core: Core) -> float:
    value = core.webhooks.metrics.registry.get_sample_value("arcano_webhooks_not_kept_total")
    return value or 0.0


def not_kept_warnings(caplog: pytest.LogCaptureFixture) -> int:
    return sum(r.getMessage() == "unmatched webhooks not kept" for r in caplog.records)


@pytest.fixture
def bounded(core: Core) -> Core:
    core.webhooks.max_unmatched = BOUND
    return core


def test_the_bound_is_a_named_constant_of_a_thousand() -> None:
    assert c.MAX_UNMATCHED_WEBHOOKS == 1_000


async def test_past_the_bound_a_delivery_is_answered_alike_but_not_stored(
    bounded: Core, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="arcano_tools")
    replies = [
        await bounded.webhooks.receive_by_task(old_style(f"FLOOD-{i}")) for i in range(BOUND + 4)
    ]

    for reply in replies:
        assert webhook_reply(reply, by_job=False) == (202, {"ok": True, "kept": True})
    assert await bounded.store.count_unmatched_webhooks() == BOUND
    assert (await bounded.store.webhook_counts())["unmatched"] == BOUND
    assert not_kept_total(bounded) == 4
    assert not_kept_warnings(caplog) == 1  # one warning for the burst


async def test_a_new_burst_after_a_quiet_spell_is_logged_again(
    bounded: Core, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="arcano_tools")
    for i in range(BOUND + 2):
        await bounded.webhooks.receive_by_task(old_style(f"A-{i}"))
    bounded.clock.advance(seconds=c.UNMATCHED_DROP_LOG_QUIET_S - 1)
    await bounded.webhooks.receive_by_task(old_style("B-0"))  # the same burst, still going
    assert not_kept_warnings(caplog) == 1

    bounded.clock.advance(seconds=c.UNMATCHED_DROP_LOG_QUIET_S)
    await bounded.webhooks.receive_by_task(old_style("C-0"))

    assert not_kept_warnings(caplog) == 2
    assert not_kept_total(bounded) == 4


async def test_a_kept_event_applied_when_its_task_id_is_saved_makes_room_again(
    bounded: Core,
) -> None:
    """The events that matter still work: kept, then applied once the id is saved."""
    job = await bounded.submit()
    await bounded.webhooks.receive_by_task(old_style("REAL-1"))
    for i in range(BOUND + 1):
        await bounded.webhooks.receive_by_task(old_style(f"FLOOD-{i}"))
    assert await bounded.store.count_unmatched_webhooks() == BOUND
    assert not_kept_total(bounded) == 2

    saved = await bounded.store.save_task_id(job.table, job.id, "REAL-1")
    assert saved is not None
    await bounded.webhooks.apply_kept(saved)

    assert await bounded.store.count_unmatched_webhooks() == BOUND - 1
    kept = await bounded.webhooks.receive_by_task(old_style("LATER-1"))
    assert kept.delivery is Delivery.KEPT
    assert await bounded.store.count_unmatched_webhooks() == BOUND
    assert not_kept_total(bounded) == 2  # kept, not refused
