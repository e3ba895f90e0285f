"""Browser-test fixtures: the app with the page watchdog on (``on``) or off (``off``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import pytest_asyncio

from tests.support.app_driver import WATCHDOG_OFF, WATCHDOG_ON, AppDriver, running_app
from tests.support.reflex_app import RunningApp

if TYPE_CHECKING:
    from playwright.async_api import Page


@pytest_asyncio.fixture(loop_scope="session")
async def on(reflex_app_factory: Callable[..., RunningApp], page: Page) -> AsyncIterator[AppDriver]:
    """The app with the watchdog on and the server watchdog off (the page's doing only)."""
    async with running_app(reflex_app_factory, page, WATCHDOG_ON) as driver:
        yield driver


@pytest_asyncio.fixture(loop_scope="session")
async def off(
    reflex_app_factory: Callable[..., RunningApp], page: Page
) -> AsyncIterator[AppDriver]:
    """The app with ``WATCHDOG_ENABLED=false``: the webhook only."""
    async with running_app(reflex_app_factory, page, WATCHDOG_OFF) as driver:
        yield driver
