"""Page states. Thin callers of the job core: every decision lives in :mod:`arcano_tools.services`.

* :class:`SessionState` — who the browser is. With Supabase Auth, the signed-in person (their
  access and refresh tokens in localStorage, refreshed before they expire: ``web/session.py``);
  in the demo without Supabase, an anonymous user (with starting credits). Either way a reload
  or a new tab is the same user with the same jobs.
* :class:`ToolPageState` — one implementation for the four tool pages (a state mixin; each
  page gets its own concrete state so two tool pages never share a job): upload with checks,
  submit (at most one job per click), live status, the watchdog as a background event, cancel.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import reflex as rx

from arcano_tools import constants as c
from arcano_tools.domain.errors import JobError
from arcano_tools.domain.records import Job
from arcano_tools.domain.status import ACTIVE_STATUSES, REFUND_STATUSES, JobStatus
from arcano_tools.domain.tools import Tool
from arcano_tools.services.follow import follow_job
from arcano_tools.services.progress import (
    TypicalDurations,
    elapsed_ms_since_submission,
    left_estimate_s,
    timeline_step,
)
from arcano_tools.services.uploads import Upload, check_file
from arcano_tools.web import runtime, session
from arcano_tools.web.downloads import download_href, download_name
from arcano_tools.web.failures import ended_step, failure_reason, refund_text, timeline_marks
from arcano_tools.web.result_size import result_bytes
from arcano_tools.web.samples import sample_files
from arcano_tools.web.texts import (
    MSG_GENERIC,
    MSG_MISSING_FILE,
    MSG_SIGN_IN,
    SAVING_LABEL,
    SIGN_IN_ROUTE,
    STATUS_LABELS,
    duration_text,
    file_summary,
    not_enough_credits,
    rejected_message,
    size_text,
    stored_summary,
    success_toast,
)

logger = logging.getLogger(__name__)

#: Tabs of this process whose Supabase session a ``keep_fresh`` background event refreshes.
_session_keepers: set[str] = set()

#: Status values in which a job may still change (the page's own spelling of the enum).
ACTIVE_STATUS_VALUES = tuple(sorted(st.value for st in ACTIVE_STATUSES))
#: ``/upscaler?job=<id>``: "Meus trabalhos" reopens that job's before/after.
REOPEN_PARAM = "job"
#: Notification.permission's values ("unsupported": the browser has no notifications).
NOTIFY_STATES = ("default", "granted", "denied", "unsupported")
#: The notification permission, read in the page — inline, as is the ask, not through
#: ``assets/arcano.js``: the offer may show before that script has loaded (``ask_notify_state``).
NOTIFY_STATE_JS = "'Notification' in window ? Notification.permission : 'unsupported'"
#: Ask for notifications (only from a click), or say why not.
NOTIFY_ASK_JS = (
    "'Notification' in window && Notification.permission === 'default'"
    f" ? Notification.requestPermission() : ({NOTIFY_STATE_JS})"
)
#: A followed job out of the queue changes only through the bus or a watchdog sync, and the
#: page runs its clock itself: its follower wakes this often just to see whether the tab is
#: still there (well within ``ARCANO_PAGE_WATCHDOG_GRACE_MS``).
FOLLOW_IDLE_TICK = timedelta(seconds=5)
#: The id of the tool page's status card (brought into view when a job starts and ends).
STATUS_CARD_ID = "job-status"


@functools.cache
def reveal_status() -> Any:
    """Scroll the status card into view only if it is not (a phone: it is below the inputs).
    Built once, like :func:`job_ended`'s few forms: ``rx.call_script`` builds its event with
    ``inspect.signature`` and friends, for every job that ends (the event is immutable)."""
    return rx.call_script(f"window.arcano && window.arcano.reveal({STATUS_CARD_ID!r})")


@functools.cache
def job_ended(ok: bool, title: str) -> Any:
    """Tell a tab in the background: its title, its icon and (if allowed) a notification."""
    said = "Pronto" if ok else "Não concluído"
    return rx.call_script(
        f"window.arcano && window.arcano.jobEnded({str(ok).lower()}, {said!r}, {title!r})"
    )


@functools.cache
def _success_toast(output_kind: str) -> Any:
    """The toast of a completed job, built once per kind of result: Reflex builds a toast's
    script with ``inspect.signature`` and friends, about half a millisecond of the worker's
    CPU for every job that ends (BENCHMARKS.md, item 12); the event itself is immutable."""
    return rx.toast.success(success_toast(output_kind))


_TYPICAL: list[TypicalDurations] = []


def _typical_durations() -> TypicalDurations:
    """One per process (a page load reads a tool's history at most once a minute)."""
    if not _TYPICAL:

        async def read(table: str) -> list[float]:
            return await runtime.services().store.recent_durations(
                table, limit=c.TYPICAL_DURATION_WINDOW
            )

        _TYPICAL.append(TypicalDurations(read))
    return _TYPICAL[0]


@dataclass(frozen=True)
class EndDetails:
    """What completes an ended job's picture: its result's size (bytes; None when unknown)
    and the balance of ``user_id`` (None when not read: not signed in, or no refund)."""

    size: int | None
    credits: int | None
    user_id: str = ""


async def _end_details(job: Job, user_id: str) -> EndDetails:
    """The size (our copy's from the storage, else a ``HEAD`` to a trusted file host) and,
    when the end gave credits back (failed, cancelled), the balance — asked at the same time.
    A completion changes no balance: the credits were taken at the submit."""
    services = runtime.services()

    async def size() -> int | None:
        return await result_bytes(job, services.storage, services.settings.output_hosts)

    async def credits() -> int | None:
        if not user_id or job.status not in REFUND_STATUSES:
            return None
        user = await services.store.get_user(user_id)
        return user.credits if user is not None else None

    try:
        found_size, found_credits = await asyncio.gather(size(), credits())
    except Exception:  # the end is shown regardless: these only complete it
        logger.exception("the size or balance of an ended job could not be read")
        return EndDetails(None, None)
    return EndDetails(found_size, found_credits, user_id)


class SessionState(rx.State):
    """The browser's user and credit balance (shown in the shell of every page)."""

    token: str = rx.LocalStorage("", name="arcano_token", sync=True)
    #: Supabase's single-use refresh token (empty without Supabase Auth).
    refresh_token: str = rx.LocalStorage("", name="arcano_refresh", sync=True)
    user_id: str = ""
    credits: int = 0
    is_admin: bool = False
    #: The demo runs (the built-in RunningHub emulator): every page says so.
    demo: bool = False
    #: Supabase Auth is configured: the menu offers "Entrar" / "Sair".
    sign_in_enabled: bool = False

    @rx.event
    async def ensure_user(self) -> Any:
        """Reuse the browser's session (refreshed if it is about to expire), or — in the demo
        without Supabase only — create an anonymous user with starting credits. With a real
        RunningHub a browser without a valid token stays signed out: free anonymous credits
        would be paid for with real GPU time."""
        services = runtime.services()
        settings = services.settings
        self.demo = settings.emulated
        self.sign_in_enabled = services.auth is not None
        browser = await session.resolve(services, self.token, self.refresh_token)
        if (browser.access_token, browser.refresh_token) != (self.token, self.refresh_token):
            self.token, self.refresh_token = browser.access_token, browser.refresh_token
        if browser.user_id is None:
            if not settings.anonymous_users:
                self.user_id, self.credits, self.is_admin = "", 0, False
                return None
            user, self.token = await services.user_token("anon-" + uuid.uuid4().hex, anonymous=True)
        else:
            user = await services.store.ensure_user(
                browser.user_id, credits=settings.starting_credits
            )
        self.user_id = user.id
        self.credits = user.credits
        self.is_admin = user.is_admin
        return SessionState.keep_fresh if self.refresh_token else None

    @rx.event(background=True)
    async def keep_fresh(self) -> None:
        """Refresh the Supabase session shortly before its access token expires, while this
        tab is open (one keeper per tab, however often it is fired)."""
        async with self:
            client_token = self.router.session.client_token
        if client_token in _session_keepers:
            return
        _session_keepers.add(client_token)
        services = runtime.services()
        try:
            while runtime.client_connected(client_token):
                async with self:
                    access, refresh = self.token, self.refresh_token
                if not refresh:
                    return
                due_in = session.refresh_in(access)
                if due_in > 0:
                    await asyncio.sleep(min(due_in, c.SESSION_KEEPER_TICK_S))
                    continue
                browser = await session.resolve(services, access, refresh)
                if browser.refresh_token == refresh:  # Supabase unreachable: try again later
                    await asyncio.sleep(c.SESSION_KEEPER_TICK_S)
                    continue
                async with self:
                    if self.refresh_token != refresh:  # another tab refreshed meanwhile
                        continue
                    self.token, self.refresh_token = browser.access_token, browser.refresh_token
                    if browser.user_id is None:  # refused: signed out elsewhere, revoked
                        self.user_id, self.credits, self.is_admin = "", 0, False
                        return
        finally:
            _session_keepers.discard(client_token)

    @rx.event
    async def sign_out(self) -> Any:
        """Revoke the session on Supabase (best effort) and forget it in this browser."""
        services = runtime.services()
        if services.auth is not None and self.refresh_token:
            # an expired access token cannot revoke anything: refresh it first if need be
            browser = await session.resolve(services, self.token, self.refresh_token)
            if browser.access_token:
                await services.auth.sign_out(browser.access_token)
        self.token, self.refresh_token = "", ""
        self.user_id, self.credits, self.is_admin = "", 0, False
        return rx.redirect(SIGN_IN_ROUTE)

    async def refresh_credits(self) -> None:
        user = await runtime.services().store.get_user(self.user_id) if self.user_id else None
        if user is not None:
            self.credits = user.credits


class ToolPageState(rx.State, mixin=True):
    """Everything a tool page does; concrete states only name their tool (``TOOL``)."""

    TOOL: ClassVar[str] = ""
    if TYPE_CHECKING:  # provided by SessionState, the concrete states' parent
        user_id: str

    job_id: str = ""
    #: The job this tab shows, also kept in the tab's sessionStorage. With several workers the
    #: tab's state lives in Redis, but a worker that crashes leaves its socket records there,
    #: so Reflex takes the tab's reconnect for a duplicated tab and hands it a fresh state:
    #: the browser's copy brings the job back (an id from the browser: checked like any).
    shown_job: str = rx.SessionStorage("")
    status: str = ""
    error_message: str = ""
    output_url: str = ""
    #: RunningHub finished and the result is being kept in our storage ("Salvando resultado").
    saving: bool = False
    #: The "Baixar" button: its address (``downloads.download_href``) and the file's name.
    download_url: str = ""
    download_file: str = ""
    #: "6,1 MB" (our storage's size, or a HEAD to the file host); the browser reads the
    #: resolution itself (``components/result_facts.py``).
    output_size: str = ""
    #: The clock's snapshot, taken when the shown job changes (and on every page load): the
    #: milliseconds since the job was submitted (a queued job's wait included: never restarts).
    #: The browser advances it each second (``assets/job_clock.jsx``): no push per second.
    elapsed_ms: int = 0
    #: Whether the estimate counts down from the snapshot (the job has left the queue).
    left_counts: bool = False
    #: The timeline step a failed or cancelled job had reached (1–3), 0 otherwise.
    end_step: int = 0
    queue_position: int = 0
    typical_s: int = 0
    #: Seconds since the job left the queue (what the tool's history of durations measures).
    run_s: int = 0
    submitting: bool = False
    scale: str = "2"
    #: The browser's notification permission ("default" offers "Avisar quando terminar").
    notify: str = ""
    #: Uploaded inputs (field → path under Reflex's upload dir) and their descriptions.
    previews: dict[str, str] = {}
    infos: dict[str, str] = {}
    errors: dict[str, str] = {}
    form_error: str = ""

    _files: dict[str, str] = {}

    # --- derived ------------------------------------------------------------------------

    @classmethod
    def tool(cls) -> Tool:
        tool = runtime.services().tools.by_name(cls.TOOL)
        assert tool is not None, cls.TOOL
        return tool

    @rx.var
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUS_VALUES

    @rx.var
    def is_done(self) -> bool:
        return self.status == JobStatus.COMPLETED.value

    @rx.var
    def has_job(self) -> bool:
        return self.job_id != ""

    @rx.var
    def status_label(self) -> str:
        label = STATUS_LABELS.get(self.status, "")
        if self.saving and self.status == JobStatus.RUNNING.value:
            return SAVING_LABEL
        if self.status == JobStatus.QUEUED.value and self.queue_position > 0:
            return f"{label} (posição {self.queue_position})"
        return label

    @rx.var
    def step(self) -> int:
        """Position on the status timeline: 1 queued, 2 starting, 3 processing, 4 ended."""
        return timeline_step(self.status)

    @rx.var
    def timeline(self) -> list[str]:
        """How each step of the timeline is drawn (``failures.timeline_marks``)."""
        return timeline_marks(self.status, timeline_step(self.status), self.end_step)

    @rx.var
    def failure_text(self) -> str:
        """What went wrong, in Portuguese (RunningHub's own text stays in ``error_message``)."""
        if self.status != JobStatus.FAILED.value:
            return ""
        tool = self.tool()
        return failure_reason(self.error_message, tool.output_kind, scalable=bool(tool.scales))

    @rx.var
    def refund_note(self) -> str:
        """ "Seus 5 créditos foram devolvidos." once a job failed or was cancelled."""
        if self.status in (JobStatus.FAILED.value, JobStatus.CANCELLED.value):
            return refund_text(self.tool().cost)
        return ""

    @rx.var
    def left_s(self) -> int:
        """Estimated seconds left (the queue included); -1 while the tool has no history."""
        return left_estimate_s(
            self.status, self.run_s, self.typical_s, queue_ahead=self.queue_position
        )

    @rx.var
    def ready(self) -> bool:
        """All inputs present and valid: the submit button can be used."""
        return all(f.name in self.previews for f in self.tool().files) and not self.errors

    # --- page load: resume the user's active job ----------------------------------------------

    @rx.event
    async def load(self) -> Any:
        """On page load or reconnect (after ``ensure_user``): show the job this tab showed (its
        state, else its sessionStorage copy), else the user's active job; follow it if active."""
        services = runtime.services()
        tool = self.tool()
        self.typical_s = await self._typical_duration(tool.table)
        asked = self.router.url.query_parameters.get(REOPEN_PARAM, "")
        remembered = asked or self.job_id or self.shown_job  # ?job=<id>: "Meus trabalhos"
        job = await services.store.get_job(tool.table, remembered) if remembered else None
        if job is None or job.user_id != self.user_id:
            job = await services.store.active_job_of_user(self.user_id, tool.table)
        if job is None:
            return None
        if job.id != self.job_id:
            self.output_size = ""
        # a fresh clock: a reload's restored state holds the snapshot of an earlier push
        self._show(job, await services.store.queue_position(job), clock=True)
        self._take_inputs_of(job)
        if job.status is JobStatus.COMPLETED:
            await self._measure_output(job)
        return type(self).follow if job.status.is_active else None

    @rx.event
    def ask_notify_state(self) -> Any:
        """On load: read (never request) the notification permission — here, not through
        ``arcano.js``: Next loads that script after hydration, and a load event that came
        first got "" (no "Avisar quando terminar" for that tab)."""
        return rx.call_script(NOTIFY_STATE_JS, callback=type(self).set_notify)

    def _take_inputs_of(self, job: Job) -> None:
        """Show the job's own stored inputs (a second tab, a reopened job, a new device): the
        files this tab uploaded may be others or none. Copied into this tab's upload folder,
        the only place the browser can load a preview from."""
        files = runtime.services().files
        described = job.inputs.get("files")
        if not isinstance(described, dict):
            return
        for spec in self.tool().files:
            stored = described.get(spec.name)
            if not isinstance(stored, dict) or not isinstance(stored.get("path"), str):
                continue
            ext = Path(stored["path"]).suffix
            name = f"{type(self).TOOL}-{spec.name}-job-{job.id[:16]}{ext}"
            path = self._upload_dir() / name
            if not path.exists():
                try:
                    path.write_bytes(files.read(stored["path"]))
                except (OSError, ValueError):
                    continue  # the input is gone: the box stays empty, as before
            self._files[spec.name] = str(path)
            self.previews[spec.name] = f"{self._upload_folder()}/{name}"
            self.infos[spec.name] = stored_summary(stored)
            self.errors = {k: v for k, v in self.errors.items() if k != spec.name}

    async def _measure_output(self, job: Job) -> None:
        """The result's size (``result_size.result_bytes``: our copy's from the storage)."""
        services = runtime.services()
        size = await result_bytes(job, services.storage, services.settings.output_hosts)
        self.output_size = size_text(size) if size else ""

    @rx.event
    def set_notify(self, value: str) -> None:
        """What the browser answered about notifications (asked only from a click)."""
        self.notify = value if value in NOTIFY_STATES else ""

    @rx.event
    async def try_sample(self) -> None:
        """ "Experimente com um exemplo": the project's sample files, as if uploaded."""
        if self.is_active:
            return
        for index, (filename, content) in enumerate(sample_files(type(self).TOOL)):
            await self._take_bytes(index, filename, content)

    async def _typical_duration(self, table: str) -> int:
        return await _typical_durations().of(table)

    # --- inputs -------------------------------------------------------------------------------

    def _upload_folder(self) -> str:
        """``inputs/<hash of the client token>``: the token comes from the browser, so it is
        never used as a path itself."""
        token = self.router.session.client_token.encode()
        return "inputs/" + hashlib.sha256(token).hexdigest()[:32]

    def _upload_dir(self) -> Path:
        folder = rx.get_upload_dir() / self._upload_folder()
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    async def _take_upload(self, index: int, files: list[rx.UploadFile]) -> None:
        if not files:
            return
        upload = files[0]
        await self._take_bytes(index, upload.name or "", await upload.read())

    async def _take_bytes(self, index: int, filename: str, content: bytes) -> None:
        tool = self.tool()
        if index >= len(tool.files):
            return
        spec = tool.files[index]
        self.errors = {k: v for k, v in self.errors.items() if k != spec.name}
        self.form_error = ""
        try:
            checked = check_file(spec, Upload(filename or spec.name, content))
        except JobError as exc:
            self.errors[spec.name] = exc.message
            self.previews = {k: v for k, v in self.previews.items() if k != spec.name}
            return
        name = f"{type(self).TOOL}-{spec.name}-{uuid.uuid4().hex[:8]}.{checked.ext}"
        path = self._upload_dir() / name
        path.write_bytes(content)
        old = self._files.get(spec.name)
        if old:
            Path(old).unlink(missing_ok=True)
        self._files[spec.name] = str(path)
        self.previews[spec.name] = f"{self._upload_folder()}/{name}"
        self.infos[spec.name] = file_summary(checked)

    @rx.event
    async def upload_main(self, files: list[rx.UploadFile]) -> None:
        await self._take_upload(0, files)

    @rx.event
    async def upload_second(self, files: list[rx.UploadFile]) -> None:
        await self._take_upload(1, files)

    def _reject(self, index: int, rejected: list[Any]) -> None:
        """The browser refused a file (type or size) before sending it."""
        tool = self.tool()
        if index < len(tool.files):
            name = tool.files[index].name
            self.errors[name] = rejected_message(rejected, tool.files[index].kind)
            self.previews = {k: v for k, v in self.previews.items() if k != name}

    @rx.event
    def reject_main(self, rejected: list[Any]) -> None:
        self._reject(0, rejected)

    @rx.event
    def reject_second(self, rejected: list[Any]) -> None:
        self._reject(1, rejected)

    @rx.event
    def set_scale(self, value: str | list[str]) -> None:
        if isinstance(value, list):
            value = value[0] if value else ""
        if value.isdigit() and int(value) in self.tool().scales:
            self.scale = value

    # --- submit, cancel, reset ---------------------------------------------------------------

    @rx.event
    async def submit(self) -> Any:
        """Create the job. A double click cannot create two: events of one tab run in order
        and the second sees ``submitting`` (or the active job) and does nothing."""
        return await self._submit()

    async def _submit(self) -> Any:
        if self.submitting or self.is_active:
            return None
        if not self.user_id:
            self.form_error = MSG_SIGN_IN
            return None
        tool = self.tool()
        missing = [f.label for f in tool.files if f.name not in self._files]
        if missing:
            self.form_error = MSG_MISSING_FILE.format(", ".join(missing))
            return None
        session = await self.get_state(SessionState)
        if session.credits < tool.cost:
            self.form_error = not_enough_credits(session.credits, tool.cost)
            return None
        self.submitting = True
        self.form_error = ""
        try:
            uploads = {
                name: Upload(Path(path).name, Path(path).read_bytes())
                for name, path in self._files.items()
            }
            job = await runtime.services().queue.submit(
                self.user_id, tool.name, {"scale": self.scale}, uploads
            )
        except JobError as exc:
            self.form_error = exc.message
            return None
        except Exception:
            self.form_error = MSG_GENERIC
            raise
        finally:
            self.submitting = False
        # its place in the queue with it: "Na fila (posição 3)" and the estimate from the start
        self._show(job, await runtime.services().store.queue_position(job))
        self.output_size = ""
        await self._refresh_credits()
        return [type(self).follow, reveal_status()]

    async def _refresh_credits(self) -> None:
        session = await self.get_state(SessionState)
        await session.refresh_credits()

    @rx.event
    async def cancel(self) -> Any:
        if not self.job_id or not self.is_active:
            return None
        try:
            result = await runtime.services().queue.cancel(
                self.tool().table, self.job_id, self.user_id
            )
        except JobError as exc:
            return rx.toast.error(exc.message)
        self._show(result.job)
        await self._refresh_credits()
        return rx.toast.info(f"Trabalho cancelado. {refund_text(self.tool().cost)}")

    @rx.event
    def start_over(self) -> None:
        """ "Processar outra imagem": keep the inputs, forget the finished job."""
        if not self.is_active:
            self._forget_job()

    def _forget_job(self) -> None:
        runtime.tab_shows(self.router.session.client_token, "")
        self.job_id = ""
        self.shown_job = ""
        self.status = ""
        self.error_message = ""
        self.output_url = ""
        self.saving = False
        self.download_url = self.download_file = ""
        self.output_size = ""
        self.elapsed_ms = 0
        self.left_counts = False
        self.run_s = 0
        self.end_step = 0
        self.queue_position = 0

    @rx.event
    async def retry(self) -> Any:
        """ "Tentar de novo" after a failure or a cancel: the same inputs and scale, a new job."""
        if self.is_active or self.submitting:
            return None
        self._forget_job()
        return await self._submit()

    def _show(self, job: Job, queue_position: int = 0, *, clock: bool = False) -> None:
        """Copy the job into the page's vars — only those whose value changed — and, when any
        did (or ``clock``: a page load), a new snapshot of its clock.

        Reflex counts every assignment as a change: it recomputes the computed vars that
        depend on the var and sends it to the browser again (BENCHMARKS.md, item 12). The
        clock itself runs in the browser from the snapshot (``assets/job_clock.jsx``), so a
        job that has not changed sends nothing at all: a thousand followed pages are sent
        nothing between their jobs' changes but the socket's pings (item 20)."""
        shown = {
            "job_id": job.id,
            "shown_job": job.id,
            "status": job.status.value,
            "queue_position": queue_position,
            "error_message": job.error_message or "",
            "output_url": job.output_url or "",
            "saving": job.saving,
            "download_url": download_href(job) if job.output_url else "",
            "download_file": download_name(job) if job.output_url else "",
            "end_step": ended_step(
                job.status.value, started=job.started_at is not None, has_task=bool(job.task_id)
            ),
        }
        changed = [name for name, value in shown.items() if getattr(self, name) != value]
        for name in changed:
            setattr(self, name, shown[name])
        if "job_id" in changed:
            runtime.tab_shows(self.router.session.client_token, job.id)
        if not (changed or clock):
            return
        now = time.time()
        end = job.completed_at.timestamp() if job.completed_at else now
        snapshot = {
            "elapsed_ms": elapsed_ms_since_submission(job, now),
            "run_s": max(0, int(end - job.clock_start.timestamp())) if job.started_at else 0,
            # out of the queue and started: the estimate counts down (``left_estimate_s``)
            "left_counts": job.status.is_active
            and timeline_step(job.status.value) > 1
            and job.started_at is not None,
        }
        for name, value in snapshot.items():
            if getattr(self, name) != value:
                setattr(self, name, value)

    # --- following the job: push updates + the plan's watchdog ----------------------------------

    async def _show_details(self, details: EndDetails) -> None:
        """The result's size and the balance, once the job ended (only what changed)."""
        size = size_text(details.size) if details.size else ""
        if self.output_size != size:
            self.output_size = size
        if details.credits is not None and details.user_id == self.user_id:  # still signed in
            session = await self.get_state(SessionState)
            if session.credits != details.credits:
                session.credits = details.credits

    def _end_events(self, job: Job, tool: Tool) -> list[Any]:
        """What the browser is told when the job ends: the tab's title and notification, and
        a toast (a failure's offers to try again)."""
        events = [job_ended(job.status is JobStatus.COMPLETED, tool.title)]
        if job.status is JobStatus.COMPLETED:
            events.append(_success_toast(tool.output_kind))
        elif job.status is JobStatus.FAILED:
            reason = failure_reason(job.error_message, tool.output_kind, scalable=bool(tool.scales))
            events.append(
                rx.toast.error(
                    c.TOAST_FAILURE_DEFAULT,
                    description=f"{reason} {refund_text(job.cost)}",
                    action={"label": "Tentar de novo", "on_click": TOOL_STATES[self.TOOL].retry},
                    duration=12_000,
                    close_button=True,
                )
            )
        return events

    @rx.event(background=True)
    async def follow(self) -> Any:
        """Follow the job until it ends; one follower per job, however often it is fired."""
        async with self:
            job_id = self.job_id
            user_id = self.user_id
            tool = self.tool()
            table = tool.table
            client_token = self.router.session.client_token
        follower = (client_token, job_id)
        if not job_id or follower in runtime.followers:
            return
        runtime.followers.add(follower)
        runtime.tab_jobs[client_token] = job_id
        services = runtime.services()
        grace_s = services.settings.page_watchdog_grace_ms / 1000
        gone_since: list[float] = []

        def alive() -> bool:
            if runtime.tab_moved_on(client_token, job_id):
                return False
            if runtime.client_connected(client_token):
                gone_since.clear()
                return True
            if not gone_since:
                gone_since.append(time.monotonic())
            return time.monotonic() - gone_since[0] < grace_s

        last_shown: tuple[tuple[object, ...], int] | None = None
        try:
            async for step in follow_job(
                store=services.store,
                bus=services.bus,
                sync=services.sync,
                table=table,
                job_id=job_id,
                watchdog_enabled=services.settings.watchdog_enabled,
                alive=alive,
                idle_tick=FOLLOW_IDLE_TICK,
            ):
                job = step.job
                position = await services.store.queue_position(job)
                seen = (seen_by_the_page(job), position)
                if seen == last_shown:
                    continue  # nothing new: the browser runs the clock on its own
                last_shown = seen
                async with self:  # this block's exit pushes the change
                    if self.job_id != job_id:
                        return
                    self._show(job, position)
                if job.status.is_terminal:
                    # the end's browser events in one message, then what completes the
                    # picture (the size, a refund's balance) in a push of its own: asked only
                    # now, they cannot hold the end back — in production the size is a round
                    # trip away, to our storage or RunningHub's file host (BENCHMARKS.md,
                    # target 6, item 7)
                    yield [reveal_status(), *self._end_events(job, tool)]
                    shown = await _end_details(job, user_id)
                    if shown.size is None and shown.credits is None:
                        return  # nothing to add: the state is not taken again
                    async with self:
                        if self.job_id != job_id:
                            return
                        await self._show_details(shown)
        finally:
            runtime.followers.discard(follower)
            if runtime.tab_jobs.get(client_token) == job_id:
                del runtime.tab_jobs[client_token]


def seen_by_the_page(job: Job) -> tuple[object, ...]:
    """What of a job a tool page shows (``ToolPageState._show`` reads these and nothing else).

    A follower compares these, not whole rows: the check bookkeeping (``next_check_at``, the
    last upstream answer), a lease or ``updated_at`` change a row every poll interval without
    changing the page, and each push takes the page state's lock — with several workers a
    read and a write of the state in Redis — to send nothing."""
    return (
        job.id,
        job.status,
        job.error_message,
        job.output_url,
        job.saving,
        job.created_at,
        job.started_at,
        job.completed_at,
        bool(job.task_id),
    )


class UpscalerState(ToolPageState, SessionState):
    TOOL: ClassVar[str] = "upscaler"


class PoseChangerState(ToolPageState, SessionState):
    TOOL: ClassVar[str] = "pose_changer"


class VesteAIState(ToolPageState, SessionState):
    TOOL: ClassVar[str] = "veste_ai"


class VideoUpscalerState(ToolPageState, SessionState):
    TOOL: ClassVar[str] = "video_upscaler"


TOOL_STATES: dict[str, type[ToolPageState]] = {
    "upscaler": UpscalerState,
    "pose_changer": PoseChangerState,
    "veste_ai": VesteAIState,
    "video_upscaler": VideoUpscalerState,
}


class JobsState(SessionState):
    """ "Meus trabalhos": the user's jobs across the tools, newest first, kept live."""

    jobs: list[dict[str, str]] = []

    @rx.event
    async def load_jobs(self) -> Any:
        await self._read_jobs()
        return JobsState.follow_jobs

    async def _read_jobs(self) -> None:
        services = runtime.services()
        self.jobs = [
            job_row(job, services.tools.by_table(job.table))
            for job in await services.store.list_user_jobs(self.user_id, limit=100)
        ]

    @rx.event(background=True)
    async def follow_jobs(self) -> Any:
        """While the tab shows "Meus trabalhos": re-read the list when the job bus says one of
        this user's jobs changed or was created (and every ``FOLLOW_REREAD_QUIET_S``: the bus
        is a hint), as a tool page follows its job. Ends when the tab left the page or closed."""
        async with self:
            user_id = self.user_id
            client_token = self.router.session.client_token
        follower = (client_token, JOBS_FOLLOWER)
        if not user_id or follower in runtime.followers:
            return
        runtime.followers.add(follower)
        services = runtime.services()
        try:
            async with services.bus.subscribe() as updates:
                while runtime.client_connected(client_token):
                    try:
                        update = await asyncio.wait_for(
                            updates.get(), timeout=c.FOLLOW_REREAD_QUIET_S
                        )
                    except TimeoutError:
                        update = None
                    if update is not None and update.user_id != user_id:
                        continue
                    async with self:
                        on_page = self.router.url.path.rstrip("/") == JOBS_PAGE
                        if self.user_id != user_id or not on_page:
                            return
                        await self._read_jobs()
        finally:
            runtime.followers.discard(follower)


#: The follower key of a "Meus trabalhos" tab (tool pages use the job's id), and its address.
JOBS_FOLLOWER = "meus-trabalhos"
JOBS_PAGE = "/meus-trabalhos"


def job_row(job: Job, tool: Tool | None) -> dict[str, str]:
    """One job as "Meus trabalhos" shows it (strings only: it is a page var)."""
    kind = tool.output_kind if tool else "image"
    took = (
        duration_text(int((job.completed_at - job.created_at).total_seconds()))
        if job.completed_at
        else ""
    )
    route = tool.route if tool else "/"
    return {
        "id": job.id,
        "tool": tool.title if tool else job.table,
        "route": route,
        # reopens the job's before/after (or its status) on its tool page
        "reopen": f"{route}?{REOPEN_PARAM}={job.id}",
        "kind": kind,
        "status": job.status.value,
        "created": job.created_at.strftime("%d/%m %H:%M"),
        "took": took,
        "output_url": job.output_url or "",
        "download_url": download_href(job) if job.output_url else "",
        "download_file": download_name(job) if job.output_url else "",
        # what happened in Portuguese; RunningHub's text stays on /admin and the API
        "error": (
            failure_reason(job.error_message, kind, scalable=bool(tool and tool.scales))
            if job.status is JobStatus.FAILED
            else ""
        ),
        "refund": (
            refund_text(job.cost) if job.status in (JobStatus.FAILED, JobStatus.CANCELLED) else ""
        ),
    }
