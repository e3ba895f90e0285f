"""Smoke test: the real app (prod, single port) in Debian Chromium."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from arcano_tools.tls import client_tls

if TYPE_CHECKING:
    from playwright.async_api import ConsoleMessage, Page

    from tests.support.reflex_app import RunningApp

pytestmark = pytest.mark.e2e


async def test_healthz_answers_from_our_api_app(reflex_app: RunningApp) -> None:
    async with httpx.AsyncClient(
        verify=client_tls(), base_url=reflex_app.backend_url, timeout=5
    ) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


async def test_home_page_renders_without_console_errors(reflex_app: RunningApp, page: Page) -> None:
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # The browser's own favicon probe is not the app's doing (assets/ has no favicon.ico yet).
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            problems.append(f"console.error: {message.text} at {message.location}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"pageerror: {error}"))

    # Reflex hydrates the page over its websocket (/_event) right after load.
    async with page.expect_websocket(lambda ws: "/_event" in ws.url) as ws_info:
        await page.goto(reflex_app.url, wait_until="networkidle")
    websocket = await ws_info.value
    assert not websocket.is_closed()

    # The shell's header and the home page may both carry the name: any visible one will do.
    heading = page.get_by_role("heading", name="Arcano Tools", exact=True).first
    await heading.wait_for(state="visible")
    assert await heading.inner_text() == "Arcano Tools"
    assert await page.get_by_text("Cannot connect to server").count() == 0
    assert problems == []


@pytest.mark.parametrize("path", ["/", "/upscaler", "/meus-trabalhos", "/admin"])
async def test_every_page_says_the_demo_runs_on_the_emulator(
    reflex_app: RunningApp, page: Page, path: str
) -> None:
    """Audit finding 2: the emulator must never run unannounced."""
    await page.goto(reflex_app.url + path, wait_until="networkidle")
    banner = page.get_by_test_id("demo-banner")
    await banner.wait_for(state="visible")
    assert "Modo demonstração" in await banner.inner_text()
