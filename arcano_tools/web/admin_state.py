"""The operator page's state: who may see it, and the numbers it shows.

Allowed to the service key (pasted once, kept in the operator's browser) or to a user marked
admin (``python -m arcano_tools token --user X --admin``). Everyone else sees a refusal and no
data: every handler re-checks, not only the page.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

import reflex as rx

from arcano_tools.domain.errors import JobNotFound
from arcano_tools.domain.records import utcnow
from arcano_tools.domain.status import FinishedBy, JobStatus, WebhookOutcome
from arcano_tools.services.auth import Principal
from arcano_tools.services.report import failed_copies, finish_times, rescues
from arcano_tools.web import runtime
from arcano_tools.web.state import SessionState
from arcano_tools.web.texts import STATUS_LABELS, duration_text

#: Jobs at risk listed on the page (the oldest first).
AT_RISK_SHOWN = 50
#: Finished jobs read for the rescues list and the time-to-finish chart.
FINISHED_READ = 500
#: Recent failures listed with RunningHub's reason, and how much of it.
FAILURES_SHOWN = 20
FAILURE_CHARS = 300
#: "Sync now" on a job whose result is being copied waits this long for the copy to end
#: (usually a second), polling the job, so the operator sees it completed.
SYNC_NOW_SAVE_WAIT_S = 15.0
SYNC_NOW_SAVE_POLL_S = 0.2


class AdminState(SessionState):
    admin_key: str = rx.LocalStorage("", name="arcano_admin_key", sync=True)
    key_input: str = ""
    authorized: bool = False
    login_error: str = ""

    status_rows: list[dict[str, Any]] = []
    at_risk: list[dict[str, str]] = []
    rescues: list[dict[str, str]] = []
    failures: list[dict[str, str]] = []
    #: Completed jobs whose result could not be copied into our storage (they point at
    #: RunningHub's link, which expires in about a day), and jobs being saved right now.
    failed_copies: list[dict[str, str]] = []
    webhook_health: list[dict[str, Any]] = []
    upstream_errors: list[dict[str, Any]] = []
    finish_times: list[dict[str, Any]] = []
    watchdog_enabled: bool = False
    server_watchdog_enabled: bool = False
    message: str = ""

    def _key_ok(self, key: str) -> bool:
        expected = runtime.services().service_key
        return bool(key) and hmac.compare_digest(key.encode(), expected.encode())

    async def _check(self) -> bool:
        self.authorized = self.is_admin or self._key_ok(self.admin_key)
        return self.authorized

    @rx.event
    def set_key_input(self, value: str) -> None:
        self.key_input = value

    @rx.event
    async def login(self) -> Any:
        if not self._key_ok(self.key_input.strip()):
            self.login_error = "Chave inválida."
            return None
        self.admin_key = self.key_input.strip()
        self.key_input = ""
        self.login_error = ""
        return AdminState.refresh

    @rx.event
    def logout(self) -> None:
        self.admin_key = ""
        self.authorized = self.is_admin

    @rx.event
    async def refresh(self) -> None:
        await self._load()

    async def _load(self) -> None:
        if not await self._check():
            return
        services = runtime.services()
        store = services.store
        settings = services.settings
        self.watchdog_enabled = settings.watchdog_enabled
        self.server_watchdog_enabled = settings.server_watchdog_active

        counts = await store.counts_by_status()
        titles = {t.table: t.title for t in services.tools.tools}
        self.status_rows = [
            {"tool": titles.get(table, table), **{st: by.get(st, 0) for st in STATUS_LABELS}}
            for table, by in counts.items()
        ]
        now = utcnow()
        risky = await store.active_jobs(
            older_than=now - services.timings.initial_delay, limit=AT_RISK_SHOWN
        )
        self.at_risk = [
            {
                "table": j.table,
                "id": j.id,
                "status": STATUS_LABELS.get(j.status.value, j.status.value),
                "age": duration_text(int((now - j.clock_start).total_seconds())),
                "task_id": j.task_id or "—",
            }
            for j in risky
        ]
        finished = await store.finished_jobs(limit=FINISHED_READ)
        self.rescues = [
            {
                "table": j.table,
                "id": j.id[:8],
                "status": STATUS_LABELS.get(j.status.value, j.status.value),
                "by": j.finished_by.value if j.finished_by else "",
                "at": j.completed_at.strftime("%d/%m %H:%M:%S") if j.completed_at else "",
            }
            for j in rescues(finished)
        ]
        # RunningHub's own words: the users' pages show them translated, operators need them
        self.failures = [
            {
                "table": j.table,
                "id": j.id[:8],
                "by": j.finished_by.value if j.finished_by else "",
                "at": j.completed_at.strftime("%d/%m %H:%M:%S") if j.completed_at else "",
                "error": (j.error_message or "")[:FAILURE_CHARS],
            }
            for j in finished
            if j.status is JobStatus.FAILED
        ][:FAILURES_SHOWN]
        self.failed_copies = [
            {
                "table": j.table,
                "id": j.id,
                "at": j.completed_at.strftime("%d/%m %H:%M:%S") if j.completed_at else "",
                "tries": str(j.output_copy_tries),
                "error": (j.output_copy_error or "")[:FAILURE_CHARS],
            }
            for j in failed_copies(finished)
        ]
        self.finish_times = [
            {"path": t.path.value, "median_s": t.median_s, "jobs": t.jobs}
            for t in finish_times(finished)
        ]
        webhooks = await store.webhook_counts()
        self.webhook_health = [
            {"outcome": o.value, "n": webhooks.get(o.value, 0)} for o in WebhookOutcome
        ]
        self.upstream_errors = [
            {"endpoint": e, "code": code, "n": n}
            for e, code, n in await store.upstream_error_counts()
        ]

    @rx.event
    async def sync_now(self, table: str, job_id: str) -> Any:
        """Ask RunningHub about one job right now (skips the schedule) and show the outcome."""
        if not await self._check():
            return None
        try:
            outcome = await runtime.services().sync.sync(
                table,
                job_id,
                Principal(is_service=True),
                finished_by=FinishedBy.WATCHDOG,
                force=True,
            )
        except JobNotFound as exc:
            self.message = f"Job {job_id[:8]}: {exc.message}"
        else:
            if outcome.synced:
                said = outcome.status.value if outcome.status else ""
            elif outcome.saving:  # RunningHub is done: show the job once its result is kept
                said = await _after_saving(table, job_id)
            else:
                said = outcome.reason.value if outcome.reason else ""
            self.message = f"Job {job_id[:8]}: {said}"
        await self._load()
        return rx.toast.info(self.message)


async def _after_saving(table: str, job_id: str) -> str:
    """What "sync now" found when the result is being copied: the job's status once the copy
    ends (usually within a second), or "saving" if it takes longer than the operator waits."""
    store = runtime.services().store
    deadline = asyncio.get_running_loop().time() + SYNC_NOW_SAVE_WAIT_S
    while asyncio.get_running_loop().time() < deadline:
        job = await store.get_job(table, job_id)
        if job is None or not job.saving:
            return job.status.value if job else ""
        await asyncio.sleep(SYNC_NOW_SAVE_POLL_S)
    return "saving"
