"""``web/runtime.client_connected`` against Reflex's real socket namespace and token manager.

Every following page asks it once a second, so with a thousand pages open it must not copy
Reflex's map of connected tabs on each question (BENCHMARKS.md, item 12)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from reflex.app import EventNamespace
from reflex.utils.token_manager import TokenManager

from arcano_tools.web import runtime


@pytest.fixture
def namespace(monkeypatch: pytest.MonkeyPatch) -> EventNamespace:
    """Reflex's ``/_event`` namespace with two tabs connected, installed as the app's."""
    ns = EventNamespace("/_event", None)
    for token, sid in (("tab-1", "sid-1"), ("tab-2", "sid-2")):
        asyncio.run(ns._token_manager.link_token_to_sid(token, sid))
    monkeypatch.setattr(runtime, "reflex_app", SimpleNamespace(event_namespace=ns))
    return ns


def test_a_connected_tab_is_told_from_one_that_is_not(namespace: EventNamespace) -> None:
    assert runtime.client_connected("tab-1")
    assert runtime.client_connected("tab-2")
    assert not runtime.client_connected("tab-3")
    asyncio.run(namespace._token_manager.disconnect_token("tab-1", "sid-1"))
    assert not runtime.client_connected("tab-1")


def test_the_question_does_not_copy_the_map_of_every_tab(
    namespace: EventNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``token_to_sid`` builds a new mapping of every connected tab on each access: asking it
    once a second per page was quadratic in the pages open."""

    def copied(_self: Any) -> None:
        raise AssertionError("client_connected copied the map of every connected tab")

    monkeypatch.setattr(TokenManager, "token_to_sid", property(copied))
    assert runtime.client_connected("tab-2")
    assert not runtime.client_connected("tab-3")
