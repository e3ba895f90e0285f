"""The emulator's state and task engine: one object per app, no module globals.

Why one object: the main app mounts an emulator and tests may create more in the same process;
each must keep its own tasks, settings, randomness and counters. Tasks run as asyncio tasks in
the server's event loop: sleep ``task_ms``, do the Pillow work in a thread, mark the task done,
then send the webhook as the control settings (snapshotted at creation) say.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

from PIL import UnidentifiedImageError

from arcano_tools.emulator import imaging, webhooks
from arcano_tools.emulator.control import (
    ControlError,
    EmulatorControl,
    EmulatorRandom,
    EmulatorStats,
    key_prefix,
)
from arcano_tools.emulator.tasks import (
    AppSpec,
    Task,
    cancelled_failure,
    load_failure,
    oom_failure,
    success_envelope,
)

log = logging.getLogger("arcano_tools.emulator")

#: Names the emulator itself gives to stored uploads and outputs; anything else is refused.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}\.[a-z0-9]{1,5}$")
#: Uploaded files keep the first 32 hex digits of their SHA-256 (128 bits: no collisions).
UPLOAD_HASH_CHARS = 32
#: Start balance of every API key, in RunningHub coins.
START_COINS = 100_000


class EmulatorRuntime:
    """Tasks, settings, randomness and counters of one emulator app."""

    def __init__(self, data_dir: Path, control: EmulatorControl) -> None:
        self.data_dir = Path(data_dir)
        self.uploads_dir = self.data_dir / "uploads"
        self.outputs_dir = self.data_dir / "outputs"
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        self.control = control  # the caller's object: changing it in-process takes effect
        self._initial = control.copy()  # what "reset" restores
        self.rng = EmulatorRandom(control.seed)
        self.stats = EmulatorStats()
        self.tasks: dict[str, Task] = {}
        self.coins: dict[str, int] = {}
        self.generation = 0
        self._background: set[asyncio.Task[Any]] = set()

    # -- control ---------------------------------------------------------------------------
    def apply_control(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a ``/_control`` body; all-or-nothing. Returns the whole current setting."""
        if not isinstance(changes, Mapping):
            raise ControlError("the body must be a JSON object of settings")
        changes = dict(changes)
        reset = changes.pop("reset", False)
        if not isinstance(reset, bool):
            raise ControlError(f"reset must be true or false, got {reset!r}")
        drop = changes.pop("drop_outputs", False)
        if not isinstance(drop, bool):
            raise ControlError(f"drop_outputs must be true or false, got {drop!r}")
        base = self._initial.copy() if reset else self.control.copy()
        base.update(changes)  # validates everything before anything changes
        if reset:
            self.reset()
        self.control.assign(base)
        if reset or "seed" in changes:
            self.rng.reseed(self.control.seed)
        if drop:
            self.drop_outputs()
        return self.control.to_dict()

    def drop_outputs(self) -> int:
        """Delete every output file now, as RunningHub's CDN does after about a day; returns
        how many. Their links then answer 404."""
        dropped = 0
        for path in self.outputs_dir.iterdir():
            if path.is_file():
                path.unlink(missing_ok=True)
                dropped += 1
        return dropped

    def reset(self) -> None:
        """Back to a fresh emulator: settings as at creation, nothing in flight, counters zero.

        Unfinished tasks are stopped silently (no webhook) and forgotten (their ids answer 807),
        so seeded task ids repeat exactly after a reset. Stored files stay on disk.
        """
        self.generation += 1
        for task in self.tasks.values():
            task.ended = True
        for job in list(self._background):
            job.cancel()
        self._background.clear()
        self.tasks.clear()
        self.coins.clear()
        self.stats = EmulatorStats()
        self.control.assign(self._initial)
        self.rng.reseed(self.control.seed)

    async def shutdown(self) -> None:
        """Cancel everything in flight (the standalone server's lifespan calls this)."""
        jobs = list(self._background)
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)

    # -- helpers ---------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` in the background, keeping a reference so it is not garbage collected."""
        job = asyncio.get_running_loop().create_task(coro)
        self._background.add(job)
        job.add_done_callback(self._job_done)
        return job

    def _job_done(self, job: asyncio.Task[Any]) -> None:
        self._background.discard(job)
        if not job.cancelled() and job.exception() is not None:
            log.error("emulator background job failed", exc_info=job.exception())

    def resolve_upload(self, value: str) -> Path | None:
        """The stored file of an ``api/<hash>.<ext>`` fieldValue, or None."""
        if not value.startswith("api/"):
            return None
        name = value[4:]
        if not SAFE_NAME.match(name):
            return None
        path = self.uploads_dir / name
        return path if path.is_file() else None

    def output_path(self, name: str) -> Path | None:
        """The output file served as ``/files/<name>``; None for anything else (no traversal)."""
        if not SAFE_NAME.match(name):
            return None
        path = (self.outputs_dir / name).resolve()
        if path.parent != self.outputs_dir.resolve() or not path.is_file():
            return None
        return path

    def balance(self, api_key: str) -> int:
        return self.coins.get(api_key, START_COINS)

    def unfinished_for(self, api_key: str) -> int:
        return self.stats.running_for(api_key)

    def new_task_id(self) -> str:
        while True:
            task_id = self.rng.task_id()
            if task_id not in self.tasks:
                return task_id

    # -- task lifecycle --------------------------------------------------------------------
    def register(
        self,
        *,
        api_key: str,
        spec: AppSpec,
        inputs: dict[str, Path],
        scale: int,
        webhook_url: str | None,
        base_url: str,
    ) -> Task:
        task = Task(
            task_id=self.new_task_id(),
            client_id=self.rng.client_id(),
            api_key=api_key,
            spec=spec,
            inputs=inputs,
            scale=scale,
            webhook_url=webhook_url,
            base_url=base_url,
            settings=self.control.copy(),
            generation=self.generation,
            created_at=time.monotonic(),
        )
        self.tasks[task.task_id] = task
        self.stats.task_started(api_key)
        log.info(
            "task %s created: app=%s key=%s webhook=%s outcome=%s",
            task.task_id,
            spec.kind,
            key_prefix(api_key),
            task.settings.webhook if webhook_url else "none",
            task.settings.outcome,
        )
        return task

    def end(self, task: Task, status: str, envelope: dict[str, Any]) -> bool:
        """The one terminal transition (SUCCESS, FAILED or CANCELLED); False if already ended."""
        if task.ended:
            return False
        task.ended = True
        task.status = "SUCCESS" if status == "SUCCESS" else "FAILED"
        task.envelope = envelope
        if task.generation == self.generation:
            self.stats.task_ended(task.api_key, status)
            if status == "SUCCESS":
                self.coins[task.api_key] = self.balance(task.api_key) - task.spec.coins
        log.info("task %s ended: %s", task.task_id, status)
        return True

    def cancel(self, task: Task) -> None:
        """Stop a task for good: it never completes later and sends no webhook."""
        if self.end(task, "CANCELLED", cancelled_failure()) and task.runner is not None:
            task.runner.cancel()

    def start(self, task: Task) -> None:
        """Run the task in the background; it is RUNNING from now (no visible queue phase)."""
        task.status = "RUNNING"
        task.started_at = time.monotonic()
        task.runner = self.spawn(self._run(task))

    async def _run(self, task: Task) -> None:
        stats = self.stats
        settings = task.settings
        if settings.task_ms:
            await asyncio.sleep(settings.task_ms / 1000)
        if settings.outcome == "never":
            await asyncio.Event().wait()  # until cancelled
        result = await self.compute(task)
        if task.ended:  # cancelled or reset while the work ran
            return
        self.end(task, "SUCCESS" if result["code"] == 0 else "FAILED", result)
        await self.send_webhook(task, stats)

    async def compute(self, task: Task) -> dict[str, Any]:
        """The task's result envelope: the Pillow work, or the failure the settings ask for."""
        started = task.started_at or time.monotonic()
        if task.settings.outcome == "fail":
            return oom_failure(task.spec)
        stem = self.outputs_dir / f"{task.task_id}_{secrets.token_hex(4)}"
        try:
            out = await asyncio.to_thread(
                imaging.run_app, task.spec.kind, task.inputs, task.scale, stem
            )
        except imaging.OutputTooLargeError:
            return oom_failure(task.spec)
        except (UnidentifiedImageError, OSError, ValueError, KeyError) as exc:
            return load_failure(exc)
        file_url = f"{task.base_url}files/{out.name}"
        return success_envelope(task, file_url, out.suffix.lstrip("."), time.monotonic() - started)

    async def send_webhook(self, task: Task, stats: EmulatorStats) -> None:
        """Send (or not) the task's webhook per its ``webhook`` mode; never for a cancel."""
        settings = task.settings
        if not task.webhook_url or task.envelope is None:
            return
        if settings.webhook == "drop":
            stats.webhooks.dropped += 1
            log.info("task %s: webhook dropped on purpose", task.task_id)
            return
        body = webhooks.webhook_body(
            task.task_id, task.envelope, malformed=settings.malformed_webhook
        )
        if settings.webhook == "delay" and settings.webhook_delay_ms:
            await asyncio.sleep(settings.webhook_delay_ms / 1000)
        copies = 3 if settings.webhook == "duplicate" else 1
        for i in range(copies):
            if i:
                stats.webhooks.duplicates += 1
            await webhooks.deliver(task.webhook_url, body, stats.webhooks)

    async def run_early(self, task: Task) -> None:
        """Mode "early": finish now and POST the webhook before the create call answers.

        This is the plan's race: the receiver gets a webhook for a task id the app has not
        stored yet. The first POST is awaited here; retries, if needed, go on in the background.
        ``task_ms`` does not apply (the work is done inside the create call).
        """
        task.status = "RUNNING"
        task.started_at = time.monotonic()
        stats = self.stats
        result = await self.compute(task)
        if not self.end(task, "SUCCESS" if result["code"] == 0 else "FAILED", result):
            return
        if not task.webhook_url:
            return
        body = webhooks.webhook_body(
            task.task_id, result, malformed=task.settings.malformed_webhook
        )
        stats.webhooks.early += 1
        first = await webhooks.post_once(task.webhook_url, body, stats.webhooks)
        if first == "ok":
            return
        self.spawn(webhooks.deliver(task.webhook_url, body, stats.webhooks, first_result=first))
