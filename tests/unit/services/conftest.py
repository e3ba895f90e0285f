"""Every test here gets ``core``: the real services on the in-memory store, a fake clock and
the RunningHub emulator in process (``tests/support/core.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.core import Core, build_core


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[Core]:
    built = await build_core(tmp_path)
    yield built
    await built.background()
    await built.webhooks.events.aclose()  # duplicates' records not written yet
    await built.emulator.shutdown()
    await built.client.aclose()
