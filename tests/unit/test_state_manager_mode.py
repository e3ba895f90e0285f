"""Where Reflex keeps the tabs' states (``rxconfig.py``): memory for the one worker that runs
without Redis, Reflex's Redis manager whenever ``REFLEX_REDIS_URL`` is set (several workers)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest
import reflex as rx


def _reloaded(monkeypatch: pytest.MonkeyPatch, redis_url: str | None) -> ModuleType:
    monkeypatch.delenv("REFLEX_STATE_MANAGER_MODE", raising=False)
    if redis_url is None:
        monkeypatch.delenv("REFLEX_REDIS_URL", raising=False)
    else:
        monkeypatch.setenv("REFLEX_REDIS_URL", redis_url)
    sys.modules.pop("rxconfig", None)  # Reflex itself imports (and drops) it as it likes
    return importlib.import_module("rxconfig")


@pytest.fixture(autouse=True)
def _restore(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Whoever imports the module next gets it as the run's environment has it."""
    yield
    sys.modules.pop("rxconfig", None)


def test_without_redis_the_states_stay_in_the_workers_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not Reflex's disk manager, which lists every state file after each batch of writes."""
    config = _reloaded(monkeypatch, None).config
    assert config.state_manager_mode == rx.constants.StateManagerMode.MEMORY


def test_with_redis_reflex_keeps_choosing_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several workers share the states: the mode is left unset, and Reflex picks Redis
    because ``REFLEX_REDIS_URL`` is set (a mode set here would override that choice)."""
    config = _reloaded(monkeypatch, "redis://127.0.0.1:6379").config
    assert "state_manager_mode" not in config._non_default_attributes
    assert config.redis_url == "redis://127.0.0.1:6379"
