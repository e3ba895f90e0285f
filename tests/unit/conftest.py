"""Fixtures shared by the unit tests."""

from __future__ import annotations

import ssl
from typing import Any

import pytest


@pytest.fixture
def ca_bundle_loads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every load of a CA bundle into an ``SSLContext`` from now on (what makes httpx's client
    setup cost 20–60 ms of CPU here), one entry each."""
    loaded: list[object] = []
    original = ssl.SSLContext.load_verify_locations

    def counting(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loaded.append(args or kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)
    return loaded
