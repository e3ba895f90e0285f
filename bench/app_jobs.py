"""Jobs on the real app, for the benchmarks that drive its pages (targets 4 and 6): the app's
environment, users with tokens, upscales submitted through ``POST /api/jobs``, and RunningHub's
TASK_END webhook for each job, sent to the job's own webhook URL with its token.

The app runs in demo mode (``tests.support.reflex_app.start_reflex_app``) with the built-in
RunningHub emulator told never to end a task and never to send a webhook: a job stays
``running`` until the benchmark sends its webhook.
"""

from __future__ import annotations

import concurrent.futures
import io
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image

from arcano_tools.emulator.tasks import envelope
from arcano_tools.emulator.webhooks import webhook_body
from arcano_tools.services.auth import issue_user_token
from arcano_tools.services.queue_manager import webhook_token
from arcano_tools.tls import client_tls

JWT_SECRET = "bench-jwt-secret-" + "j" * 32
SERVICE_KEY = "bench-service-key-" + "k" * 32
TABLE = "upscaler_jobs"
ROUTE = "/upscaler"
#: Parallel submissions (each a multipart POST; the server's cost, not ours).
SUBMIT_THREADS = 8
SUBMIT_TIMEOUT_S = 60.0


def app_env(data_dir: Path, *, jobs: int, output_hosts: str) -> dict[str, str]:
    """The app's environment: ``jobs`` jobs may run at once and stay inside the watchdog's
    initial delay for the whole run (pages wait on the bus, nobody polls RunningHub);
    outputs are trusted from ``output_hosts`` (RUNNINGHUB_OUTPUT_HOSTS patterns) and not
    copied."""
    return {
        "ARCANO_DATA_DIR": str(data_dir),
        "ARCANO_JWT_SECRET": JWT_SECRET,
        "ARCANO_SERVICE_KEY": SERVICE_KEY,
        "ARCANO_NEW_USER_CREDITS": "1000",
        "RUNNINGHUB_MAX_CONCURRENT": str(jobs * 2),
        "RUNNINGHUB_OUTPUT_HOSTS": output_hosts,
        "UPSTREAM_MAX_RPS": "2000",
        "UPSTREAM_MAX_CONCURRENCY": "64",
        "WATCHDOG_INITIAL_DELAY_MS": str(3_600_000),
        "WATCHDOG_MAX_TIMEOUT_MS": str(7_200_000),
        "EMULATOR_OUTCOME": "never",
        "EMULATOR_WEBHOOK": "drop",
        # a success completes the job at once: with results kept it would first copy the
        # output (the production issue's time, reported apart), and a host the copy cannot
        # reach leaves the job saving — no page would ever see it end
        "ARCANO_KEEP_RESULTS": "false",
    }


def user_token(user: str) -> str:
    """A session token for ``user``, as the app's own sign-in would issue it."""
    return issue_user_token(JWT_SECRET, user)


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (90, 40, 160)).save(buf, format="PNG")
    return buf.getvalue()


def submit_all(url: str, tokens: list[str]) -> list[str]:
    """One upscale per token through ``POST /api/jobs``; the job ids, in the tokens' order."""
    image = png()

    def one(token: str) -> str:
        with httpx.Client(verify=client_tls(), timeout=SUBMIT_TIMEOUT_S) as http:
            r = http.post(
                url + "/api/jobs",
                headers={"Authorization": f"Bearer {token}"},
                data={"tool": "upscaler", "scale": "2"},
                files={"image": ("foto.png", image, "image/png")},
            )
            r.raise_for_status()
            return str(r.json()["jobId"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=SUBMIT_THREADS) as pool:
        return list(pool.map(one, tokens))


@dataclass(frozen=True)
class Webhook:
    """One TASK_END delivery: where to POST it and what."""

    url: str
    body: bytes


def task_end_webhooks(base: str, data_dir: Path, output_url: str) -> dict[str, Webhook]:
    """job id → its successful TASK_END webhook (output at ``output_url``), for every job in
    the server's database. The URL carries the job's token, which names the claim that
    started its task (read from the database, as the server wrote it)."""
    with sqlite3.connect(f"file:{data_dir / 'arcano.db'}?mode=ro", uri=True) as db:
        rows = db.execute(f"SELECT id, task_id, claim_id FROM {TABLE}").fetchall()
    secret = ("webhook:" + SERVICE_KEY).encode()
    result = envelope(
        0,
        "success",
        [{"fileUrl": output_url, "fileType": "png", "taskCostTime": 1.0, "nodeId": "9"}],
    )
    hooks = {}
    for job_id, task_id, claim_id in rows:
        token = webhook_token(secret, TABLE, job_id, claim_id)
        hooks[job_id] = Webhook(
            url=f"{base}/webhooks/runninghub/{TABLE}/{job_id}?token={token}",
            body=webhook_body(task_id, result),
        )
    return hooks
