"""The accessibility check the page tests rely on (``blocking_a11y_violations``), on pages
written here: it must judge a page by its settled look, however its animations are timed,
and still report what a person cannot read."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.app_driver import FINISH_FINITE_ANIMATIONS, blocking_a11y_violations

if TYPE_CHECKING:
    from playwright.async_api import Page

pytestmark = pytest.mark.e2e

#: A toast fading in for a minute (unreadable at first, readable at its end) and a progress bar
#: whose one-second transition is restarted every 100 ms, as each estimate tick restarts it
#: (there is never a moment with no finite animation running).
BUSY_PAGE = """<!doctype html><html lang="pt-BR"><head><title>busy</title><style>
@keyframes fade { from { opacity: 0.05 } to { opacity: 1 } }
.toast { animation: fade 60s linear; color: #111; background: #fff }
.bar { height: 8px; width: 300px; background: #ddd }
.fill { height: 8px; background: #333; transition: transform 1s linear; transform-origin: left }
</style></head><body><main>
<p class="toast">Você será avisado quando terminar.</p>
<div class="bar" role="progressbar" aria-label="Progresso estimado"><div class="fill"></div></div>
<script>
let step = 0;
setInterval(() => {
  step = (step + 1) % 10;
  document.querySelector(".fill").style.transform = `scaleX(${step / 10})`;
}, 100);
</script></main></body></html>"""

#: Light grey on white: unreadable however long one waits.
POOR_CONTRAST = """<!doctype html><html lang="pt-BR"><head><title>grey</title></head><body><main>
<p style="color: #ddd; background: #fff">Processando</p></main></body></html>"""


async def test_a_page_that_never_stops_animating_is_judged_as_it_settles(page: Page) -> None:
    """Waiting for a quiet moment timed out on such a page (CI, a loaded machine)."""
    await page.set_content(BUSY_PAGE)
    assert await page.evaluate(FINISH_FINITE_ANIMATIONS) >= 1  # the fade-in at least
    assert await page.evaluate("getComputedStyle(document.querySelector('.toast')).opacity") == "1"
    assert await blocking_a11y_violations(page) == []


async def test_text_nobody_can_read_is_still_reported(page: Page) -> None:
    await page.set_content(POOR_CONTRAST)
    found = await blocking_a11y_violations(page)
    assert any(line.startswith("color-contrast (serious)") for line in found), found
