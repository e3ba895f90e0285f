"""Driving the real app in the browser tests: its emulator control, its API as the page's own
user, and the shrunk watchdog timings the app is started with.

Timings are shrunk by environment (the plan's 30 s / 15 s / 12 min become seconds) and the
server watchdog is off unless a test turns it on, so what the tests see is the page watchdog's
doing. Screenshots land in ``tests/e2e/artifacts/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from arcano_tools.tls import client_tls
from tests.support.images import png_bytes
from tests.support.reflex_app import RunningApp

if TYPE_CHECKING:
    from playwright.async_api import Page

ARTIFACTS = Path(__file__).resolve().parents[1] / "e2e" / "artifacts"
INITIAL_DELAY_MS = 2500
POLL_MS = 1000
TIMEOUT_MS = 9000
WATCHDOG_ON = {
    "WATCHDOG_INITIAL_DELAY_MS": str(INITIAL_DELAY_MS),
    "WATCHDOG_POLL_INTERVAL_MS": str(POLL_MS),
    "WATCHDOG_MAX_TIMEOUT_MS": str(TIMEOUT_MS),
    "SERVER_WATCHDOG_ENABLED": "false",
    "UPSTREAM_MAX_RPS": "100",
    "ARCANO_PAGE_WATCHDOG_GRACE_MS": "2000",
}
WATCHDOG_OFF = {**WATCHDOG_ON, "WATCHDOG_ENABLED": "false"}
SERVICE_KEY = "svc_e2e_" + "k" * 32
UPLOAD_INPUT = "[data-testid=drop-{}] input[type=file]"
#: The photo the tests upload (the page shows its size as "320×240 px").
PHOTO_SIZE = (320, 240)
#: The two screens the pages are looked at on: a laptop and a phone (CSS pixels).
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
#: axe-core impacts a page must never have.
BLOCKING_IMPACTS = ("critical", "serious")
#: Every animation that ends is brought to its end state now (a spinner or a working bar never
#: ends and is left alone). Waiting for them to end did not always work: the progress bar's
#: transition restarts with each second's estimate, and on a loaded machine the next one began
#: before the last had ended (a CI run waited 5 s for a quiet moment that never came).
FINISH_FINITE_ANIMATIONS = """() => {
    let finished = 0;
    for (const a of document.getAnimations()) {
        const end = a.effect?.getComputedTiming().endTime;
        if (a.playState !== "running" || end === Infinity) continue;
        try { a.finish(); finished += 1; } catch (e) { /* paused at rate 0: left as it is */ }
    }
    return finished;
}"""


async def blocking_a11y_violations(page: Page) -> list[str]:
    """axe-core's critical and serious violations on the page as it is now, one line each
    (rule, impact, the first offending elements) — its finite animations finished first: a
    toast fading in is measured by axe at its passing opacity (a contrast "violation" that
    no one reads; it came up once the job's end and its toast arrived together)."""
    from axe_playwright_python.async_playwright import Axe

    await page.evaluate(FINISH_FINITE_ANIMATIONS)
    results = await Axe().run(page)
    found = []
    for v in results.response["violations"]:
        if v["impact"] in BLOCKING_IMPACTS:
            targets = [n["target"] for n in v["nodes"][:3]]
            found.append(f"{v['id']} ({v['impact']}): {v['help']} — {targets}")
    return found


def photo() -> bytes:
    return png_bytes(PHOTO_SIZE, (30, 120, 200))


class AppDriver:
    """The app under test: its emulator control, its API as the page's own user."""

    def __init__(self, app: RunningApp, page: Page) -> None:
        self.app = app
        self.page = page
        self.http = httpx.AsyncClient(verify=client_tls(), base_url=app.url, timeout=10)
        self.console_errors: list[str] = []
        #: Every user the test acted as (their unfinished jobs are cancelled at the end).
        self.tokens: set[str] = set()
        page.on(
            "console",
            lambda m: self.console_errors.append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.console_errors.append(str(e)))

    async def emulator(self, **settings: Any) -> dict[str, Any]:
        """Set the embedded emulator's behaviour (its controls are the operator's)."""
        r = await self.http.post(
            "/_emulator/runninghub/_control", json=settings, headers=self.service_headers
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def emulator_stats(self) -> dict[str, Any]:
        r = await self.http.get("/_emulator/runninghub/_stats", headers=self.service_headers)
        assert r.status_code == 200, r.text
        return dict(r.json())

    @property
    def service_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.app.env['ARCANO_SERVICE_KEY']}"}

    async def token(self) -> str:
        token = await self.page.evaluate("() => window.localStorage.getItem('arcano_token')")
        assert token
        self.tokens.add(str(token).strip('"'))
        return str(token).strip('"')

    async def cancel_unfinished(self) -> None:
        """Cancel the test users' jobs that are still active. The app's database outlives the
        test (and the app): a job left running by a failed test would hold an account slot
        and queue every later test's jobs behind it."""
        with contextlib.suppress(Exception):  # the page may be closed, or never opened
            if not self.page.is_closed() and self.page.url.startswith(self.app.url):
                await self.token()
        for token in self.tokens:
            headers = {"Authorization": f"Bearer {token}"}
            r = await self.http.get("/api/jobs", headers=headers)
            for job in r.json().get("jobs", []) if r.status_code == 200 else []:
                if job["status"] not in ("completed", "failed", "cancelled"):
                    await self.http.post(
                        f"/api/jobs/{job['table']}/{job['id']}/cancel", headers=headers
                    )

    async def job(
        self, job_id: str, token: str | None = None, table: str = "upscaler_jobs"
    ) -> dict[str, Any]:
        r = await self.http.get(
            f"/api/jobs/{table}/{job_id}",
            headers={"Authorization": f"Bearer {token or await self.token()}"},
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def my_jobs(self) -> list[dict[str, Any]]:
        r = await self.http.get(
            "/api/jobs", headers={"Authorization": f"Bearer {await self.token()}"}
        )
        return list(r.json()["jobs"])

    async def credits(self) -> int:
        r = await self.http.get(
            "/api/me", headers={"Authorization": f"Bearer {await self.token()}"}
        )
        return int(r.json()["credits"])

    async def metric(self, name: str, **labels: str) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        text = (await self.http.get("/metrics", headers=self.service_headers)).text
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return float(s.value)
        return 0.0

    async def fetch(self, url: str) -> bytes:
        """What the app serves at ``url`` (e.g. a result image's ``src``)."""
        r = await self.http.get(url)
        assert r.status_code == 200, (url, r.status_code)
        return r.content

    async def open_tool(self, route: str = "/upscaler", *, credits: int | None = None) -> None:
        """Open a tool page; ``credits``: the balance it must show (default: any above 0)."""
        await self.page.goto(self.app.url + route)
        await self.page.get_by_test_id("submit").wait_for()
        await self.session_ready(credits)

    async def session_ready(self, credits: int | None = None) -> None:
        """The anonymous user exists once its token is in localStorage and credits show."""
        pattern = "[1-9]\\d*" if credits is None else str(credits)
        await self.page.wait_for_function(
            "(p) => !!window.localStorage.getItem('arcano_token')"
            " && new RegExp('^' + p + ' créditos$')"
            ".test(document.querySelector('#credits')?.textContent || '')",
            arg=pattern,
        )

    async def processing_for(self, seconds: int) -> None:
        """Wait until the page's own clock shows the job processing for ``seconds`` s."""
        await self.page.wait_for_function(
            "(s) => parseInt(document.querySelector('[data-testid=elapsed]')?.textContent"
            " || '0', 10) >= s",
            arg=seconds,
            timeout=(seconds + 15) * 1000,
        )

    async def upload(self, field: str, name: str, content: bytes, mime: str = "image/png") -> None:
        await self.page.set_input_files(
            UPLOAD_INPUT.format(field), files=[{"name": name, "mimeType": mime, "buffer": content}]
        )

    async def upload_path(self, field: str, path: Path) -> None:
        """A file on disk: a local browser reads it itself (a buffer of tens of MB is sent over
        Playwright's pipe in base64, which takes seconds)."""
        await self.page.set_input_files(UPLOAD_INPUT.format(field), files=[str(path)])

    async def submit_image(self) -> str:
        await self.upload("image", "foto.png", photo())
        await self.page.get_by_text("{}×{} px".format(*PHOTO_SIZE)).wait_for()
        await self.page.get_by_test_id("submit").click()
        await self.page.get_by_test_id("status-label").wait_for()
        jobs = await self.my_jobs()
        assert jobs, "the click created no job"
        return str(jobs[0]["id"])

    async def submit_via_api(self, token: str) -> str:
        """Submit as the page's user without the page (so no page follows the job)."""
        r = await self.http.post(
            "/api/jobs",
            headers={"Authorization": f"Bearer {token}"},
            data={"tool": "upscaler", "scale": "2"},
            files={"image": ("foto.png", photo(), "image/png")},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["jobId"])

    async def shot(self, name: str, page: Page | None = None) -> None:
        """The page as a person sees it once it has settled: finite animations fast-forwarded
        (a toast caught sliding in made a phone screenshot look broken when it was not)."""
        ARTIFACTS.mkdir(exist_ok=True)
        await (page or self.page).screenshot(
            path=str(ARTIFACTS / f"{name}.png"), full_page=True, animations="disabled"
        )

    async def shots(self, name: str) -> None:
        """``<name>-laptop.png`` and ``<name>-phone.png``; the page is left at laptop width."""
        await self.page.set_viewport_size(PHONE)  # type: ignore[arg-type]
        await self.shot(f"{name}-phone")
        await self.page.set_viewport_size(LAPTOP)  # type: ignore[arg-type]
        await self.shot(f"{name}-laptop")

    async def blocking_a11y_violations(self) -> list[str]:
        """:func:`blocking_a11y_violations` of this page."""
        return await blocking_a11y_violations(self.page)

    async def close(self) -> None:
        await self.http.aclose()


@contextlib.asynccontextmanager
async def running_app(
    factory: Callable[..., RunningApp], page: Page, env: dict[str, str]
) -> AsyncIterator[AppDriver]:
    """The app with ``env`` (restarted only when the env changes), emulator reset and fast."""
    driver = AppDriver(factory({**env, "ARCANO_SERVICE_KEY": SERVICE_KEY}), page)
    await driver.emulator(reset=True)
    await driver.emulator(task_ms=400)
    try:
        yield driver
    finally:
        try:
            await driver.cancel_unfinished()
        finally:
            await driver.close()
