"""Target 4 of issue 9: a thousand open pages on one prod worker.

``python -m bench.followers [--pages N] [--idle-s S]``. Starts the real app (``reflex run
--env prod --single-port``, one worker, SQLite, the built-in RunningHub emulator with tasks
that never end and no webhooks), submits one upscale per user through ``POST /api/jobs``,
then opens one page per job with Reflex's own websocket protocol (python-socketio: the
``hydrate_and_load`` boot event in the CONNECT packet, as ``.web/utils/state.js`` sends it),
each page following its job (the tool page's ``load`` → ``follow``).

1. **Idle**: with every page open and the jobs inside ``WATCHDOG_INITIAL_DELAY_MS``, the SQL
   statements of the server over ``idle_s`` seconds (``ARCANO_COUNT_QUERIES=1``: a cursor
   hook, read from ``/metrics``) → ``followers_idle_qps`` (≤ 50); the worker's CPU meanwhile
   (% of one core) → ``followers_idle_cpu_pct``.
2. **Burst**: RunningHub's TASK_END webhooks for every job at 200 per second, to each job's
   own webhook URL (its token names the claim, read from the database); every page must see
   its job ``completed``; webhook sent → page's delta received, p95 → ``followers_p95_ms``
   (≤ 250 ms). Both clocks are this process's. The worker's CPU time over the burst (from
   ``/proc``: user + system) per job → ``followers_cpu_ms_per_job``.

``--profile DIR`` also records the worker with py-spy during the burst (``--gil``: only the
thread holding the GIL, i.e. where the CPU goes; ``--profile-mode all``: every thread, idle
included; ``--profile-phase idle``: the idle window instead) and writes the collapsed stacks
and a summary there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import socketio

from arcano_tools.tls import client_tls
from bench import profile as bench_profile
from bench.app_jobs import (
    ROUTE,
    SERVICE_KEY,
    Webhook,
    app_env,
    submit_all,
    task_end_webhooks,
    user_token,
)
from bench.servers import start_stub
from tests.support.reflex_app import start_reflex_app

PAGES = 1000
IDLE_S = 60.0
WEBHOOKS_PER_S = 200.0
#: Webhook senders, each with its own connection (RunningHub's webhooks come from many).
SENDERS = 64
P95_BUDGET_MS = 250.0
IDLE_QPS_BUDGET = 50.0
#: Outputs are on the loopback stub (``bench/stub_runninghub.py`` answers ``*.png``): the page
#: asks each result's size (a HEAD), and a host that does not resolve made every one of them a
#: failed DNS lookup — RunningHub's file hosts do resolve.
OUTPUT_HOST = "127.0.0.1"
#: Reflex serves socket.io at this path and namespace (the frontend's ``io(".../_event")``).
NAMESPACE = "/_event"
#: Reflex's names for the boot event and the session token in local storage (0.10.1).
HYDRATE = "reflex___state____state.hydrate_and_load"
TOKEN_VAR = "reflex___state____state.arcano_tools___web___state____session_state.token_rx_state_"
STATUS_VAR = "status_rx_state_"
#: Pages opened at once, and the seconds a wave has to show its jobs running.
WAVE = 50
WAVE_READY_S = 60.0
#: Seconds allowed, after the last webhook, for every page to show its job completed.
ENDS_SEEN_S = 60.0


@dataclass
class Page:
    """One browser tab: a socket.io client following one job."""

    user: str
    token: str
    job_id: str = ""
    status: str = ""
    completed_at: float | None = None
    running: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    sio: socketio.AsyncClient | None = None

    def on_update(self, update: Any) -> None:
        delta = update.get("delta") if isinstance(update, dict) else None
        for values in (delta or {}).values():
            if isinstance(values, dict) and STATUS_VAR in values:
                self.status = str(values[STATUS_VAR])
                if self.status == "running":
                    self.running.set()
                elif self.status == "completed" and self.completed_at is None:
                    self.completed_at = time.time()
                    self.ended.set()


def _progress(message: str) -> None:
    """A minute-long run says where it is (stderr: the figures stay on stdout)."""
    print(f"  followers: {message}", file=sys.stderr, flush=True)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (``reflex run`` → granian → its worker)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cpu_s(pid: int) -> float:
    """The process's CPU time so far (utime + stime, all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_pid(app_pid: int) -> int:
    """The granian worker serving the app: the busiest Python process below ``reflex run``
    (it imported the app and served every page; the others are supervisors or bun)."""
    pids = [p for p in _descendants(app_pid) if "python" in Path(f"/proc/{p}/exe").resolve().name]
    if not pids:
        raise RuntimeError(f"no Python process below {app_pid}")
    return max(pids, key=_cpu_s)


class PySpy:
    """``py-spy record`` on the worker for the burst, collapsed stacks + a summary."""

    def __init__(self, pid: int, out_dir: Path, mode: str, phase: str) -> None:
        self.pid, self.out_dir, self.mode, self.phase = pid, out_dir, mode, phase
        self.raw = out_dir / f"followers-{phase}-{mode}.folded"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        py_spy = shutil.which("py-spy")
        if py_spy is None:
            raise SystemExit("py-spy not found: pip install -e .[bench]")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        which = ["--gil"] if self.mode == "gil" else ["--threads", "--idle"]
        self.process = subprocess.Popen(
            [
                py_spy,
                *("record", "--pid", str(self.pid), "--rate", str(bench_profile.RATE)),
                *which,
                *("--nonblocking", "--format", "raw", "-o", str(self.raw)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        self.process.wait(timeout=60)
        if self.raw.exists():
            summary = self.raw.with_suffix(".txt")
            summary.write_text(bench_profile.summarize(self.raw.read_text()))
            _progress(f"profile: {summary}")


def _env(data_dir: Path) -> dict[str, str]:
    return {
        **app_env(data_dir, jobs=PAGES, output_hosts=OUTPUT_HOST),
        "ARCANO_COUNT_QUERIES": "1",
    }


async def _open(url: str, page: Page) -> None:
    sio = socketio.AsyncClient(reconnection=False)
    sio.on("event", page.on_update, namespace=NAMESPACE)
    boot = {
        "name": HYDRATE,
        "payload": {"vars": {TOKEN_VAR: page.token}},
        "router_data": {"pathname": ROUTE, "asPath": ROUTE},
    }
    await sio.connect(
        f"{url}?token={uuid.uuid4()}",
        socketio_path=NAMESPACE,
        transports=["websocket"],
        namespaces=[NAMESPACE],
        auth={"event": boot},
        wait_timeout=60,
    )
    page.sio = sio


def _pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of sorted ``values`` (inf when empty)."""
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("inf")


def _finished_at(data_dir: Path) -> dict[str, float]:
    """Each ended job's ``completed_at`` (epoch seconds) as the server wrote it."""
    with sqlite3.connect(f"file:{data_dir / 'arcano.db'}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT id, completed_at FROM upscaler_jobs WHERE completed_at IS NOT NULL"
        ).fetchall()
    out = {}
    for job_id, at in rows:
        when = datetime.fromisoformat(str(at))
        out[str(job_id)] = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    return out


def _queries(http: httpx.Client, url: str) -> float:
    r = http.get(url + "/metrics", headers={"Authorization": f"Bearer {SERVICE_KEY}"})
    r.raise_for_status()
    for line in r.text.splitlines():
        if line.startswith("arcano_db_queries_total"):
            return float(line.split()[-1])
    raise RuntimeError("no arcano_db_queries_total on /metrics: is ARCANO_COUNT_QUERIES on?")


async def _burst(
    base: str, pages: list[Page], data_dir: Path, output_url: str, worker: int, spy: PySpy | None
) -> dict[str, float]:
    hooks = task_end_webhooks(base, data_dir, output_url)
    with _measuring_without_collections():
        return await _timed_burst(hooks, pages, data_dir, worker, spy)


@contextlib.contextmanager
def _measuring_without_collections() -> Iterator[None]:
    """No cyclic garbage collection in THIS process while it measures. It holds a thousand
    socket.io clients; its full collections stopped it for up to 213 ms in the middle of a
    burst (measured with ``gc.callbacks``), and each pause was counted as the server's
    latency: webhooks sent late, pushes read late. The server's own collections are what
    is measured (``gc_tuning``); six seconds without them here cost a few megabytes."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def _timed_burst(
    hooks: dict[str, Webhook], pages: list[Page], data_dir: Path, worker: int, spy: PySpy | None
) -> dict[str, float]:
    cpu_before, own_before, burst_start = _cpu_s(worker), _cpu_s(os.getpid()), time.monotonic()
    if spy is not None and spy.phase == "burst":
        spy.start()
    sent: dict[str, float] = {}
    errors: list[str] = []
    due: asyncio.Queue[tuple[Page, float]] = asyncio.Queue()
    start = time.monotonic() + 0.5
    for i, page in enumerate(pages):
        due.put_nowait((page, start + i / WEBHOOKS_PER_S))

    async def sender() -> None:
        """One of RunningHub's senders: its own keep-alive connection, the next webhook due.
        The latency counts from when the webhook was due, so a server that falls behind is
        measured as such. (One client whose pool of 256 connections queued a thousand
        requests spent its CPU in httpcore's scan of that queue, and sent nothing for tens of
        seconds while the server sat idle.)"""
        timeout = httpx.Timeout(60.0)
        async with httpx.AsyncClient(
            verify=client_tls(), timeout=timeout, limits=httpx.Limits(max_connections=1)
        ) as http:
            while not due.empty():
                page, at = due.get_nowait()
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                hook = hooks[page.job_id]
                sent[page.job_id] = time.time() - max(0.0, time.monotonic() - at)
                try:
                    r = await http.post(hook.url, content=hook.body)
                    r.raise_for_status()
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)

    await asyncio.gather(*(sender() for _ in range(SENDERS)))
    try:
        async with asyncio.timeout(ENDS_SEEN_S):
            await asyncio.gather(*(p.ended.wait() for p in pages))
    except TimeoutError:
        pass
    cpu_s = _cpu_s(worker) - cpu_before
    own_cpu_s = _cpu_s(os.getpid()) - own_before
    burst_s = time.monotonic() - burst_start
    if spy is not None and spy.phase == "burst":
        spy.stop()
    finished = _finished_at(data_dir)
    lat = sorted(
        (p.completed_at - sent[p.job_id]) * 1000 for p in pages if p.completed_at is not None
    )
    seen = len(lat)
    p95, p50 = _pct(lat, 0.95), _pct(lat, 0.5)
    # where the time went: webhook sent → job finished in the database (the server's clock,
    # the same machine's) and finished → page saw it
    to_finish = sorted(
        (finished[p.job_id] - sent[p.job_id]) * 1000 for p in pages if p.job_id in finished
    )
    to_page = sorted(
        (p.completed_at - finished[p.job_id]) * 1000
        for p in pages
        if p.completed_at is not None and p.job_id in finished
    )
    return {
        "seen": seen,
        "p50": p50,
        "p95": p95,
        "finish_p95": _pct(to_finish, 0.95),
        "push_p95": _pct(to_page, 0.95),
        "client_cpu_pct": 100 * own_cpu_s / burst_s,
        "worker_cpu_pct": 100 * cpu_s / burst_s,
        "errors": len(errors),
        "cpu_ms_per_job": 1000 * cpu_s / len(pages),
    }


async def _measure(
    url: str,
    data_dir: Path,
    n: int,
    idle_s: float,
    output_url: str,
    worker: int,
    spy: PySpy | None,
) -> dict[str, object]:
    pages = [Page(f"bench{i}", user_token(f"bench{i}")) for i in range(n)]
    _progress(f"submitting {n} jobs")
    job_ids = await asyncio.to_thread(submit_all, url, [p.token for p in pages])
    for page, job_id in zip(pages, job_ids, strict=True):
        page.job_id = job_id
    _progress("opening the pages")
    opened = time.monotonic()
    for first in range(0, n, WAVE):  # tabs open in waves, each wave following before the next
        wave = pages[first : first + WAVE]
        await asyncio.gather(*(_open(url, p) for p in wave))
        try:
            async with asyncio.timeout(WAVE_READY_S):
                await asyncio.gather(*(p.running.wait() for p in wave))
        except TimeoutError:
            pass
    following = sum(p.running.is_set() for p in pages)
    _progress(f"{following}/{n} pages follow a running job; idle for {idle_s:g} s")
    open_s = time.monotonic() - opened
    with httpx.Client(verify=client_tls(), timeout=30) as http:
        await asyncio.sleep(5)  # let the page loads settle
        before, cpu_before = _queries(http, url), _cpu_s(worker)
        if spy is not None and spy.phase == "idle":
            spy.start()
        await asyncio.sleep(idle_s)
        idle_qps = (_queries(http, url) - before) / idle_s
        idle_cpu = 100 * (_cpu_s(worker) - cpu_before) / idle_s
        if spy is not None and spy.phase == "idle":
            spy.stop()
    _progress(f"idle: {idle_qps:.1f} queries/s, worker at {idle_cpu:.0f} % of a core")
    _progress(f"webhooks at {WEBHOOKS_PER_S:g}/s")
    burst = await _burst(url, pages, data_dir, output_url, worker, spy)
    await asyncio.gather(
        *(p.sio.disconnect() for p in pages if p.sio is not None), return_exceptions=True
    )
    return {
        "followers_pages": n,
        "followers_following": following,
        "followers_open_s": round(open_s, 1),
        "followers_idle_qps": round(idle_qps, 2),
        "followers_idle_cpu_pct": round(idle_cpu, 1),
        "followers_seen_end": int(burst["seen"]),
        "followers_webhook_errors": int(burst["errors"]),
        "followers_p50_ms": round(burst["p50"], 1),
        "followers_p95_ms": round(burst["p95"], 1),
        "followers_cpu_ms_per_job": round(burst["cpu_ms_per_job"], 2),
        "followers_finish_p95_ms": round(burst["finish_p95"], 1),
        "followers_push_p95_ms": round(burst["push_p95"], 1),
        "followers_worker_cpu_pct": round(burst["worker_cpu_pct"], 1),
        "followers_client_cpu_pct": round(burst["client_cpu_pct"], 1),
    }


def run(
    pages: int = PAGES,
    idle_s: float = IDLE_S,
    *,
    verbose: bool = True,
    profile_dir: Path | None = None,
    profile_mode: str = "gil",
    profile_phase: str = "burst",
) -> dict[str, object]:
    """Open ``pages`` pages on one worker, measure idle queries and the webhook burst."""
    with tempfile.TemporaryDirectory(prefix="arcano-followers-") as tmp:
        data_dir = Path(tmp) / "data"
        stub = start_stub()
        app = start_reflex_app(_env(data_dir), log_dir=Path(tmp))
        _progress(f"app up in {app.start_seconds:.1f} s")
        try:
            output_url = f"{stub.url}/out.png"
            worker = worker_pid(app.server.process.pid)
            spy = (
                None
                if profile_dir is None
                else PySpy(worker, profile_dir, profile_mode, profile_phase)
            )
            result = asyncio.run(
                _measure(app.url, data_dir, pages, idle_s, output_url, worker, spy)
            )
        finally:
            app.stop()
            stub.stop()
    checks = {
        f"every page saw its end ({result['followers_seen_end']}/{pages})": result[
            "followers_seen_end"
        ]
        == pages,
        f"p95 webhook -> page <= {P95_BUDGET_MS:g} ms": float(str(result["followers_p95_ms"]))
        <= P95_BUDGET_MS,
        f"idle queries/s <= {IDLE_QPS_BUDGET:g}": float(str(result["followers_idle_qps"]))
        <= IDLE_QPS_BUDGET,
    }
    if verbose:
        print(f"followers: {json.dumps(result)}")
        for name, ok in checks.items():
            print(f"  {'PASS' if ok else 'FALLS SHORT':11} {name}")
    result["followers_pass"] = all(checks.values())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=PAGES)
    parser.add_argument("--idle-s", type=float, default=IDLE_S)
    parser.add_argument("--profile", type=Path, help="py-spy the worker during the burst")
    parser.add_argument("--profile-mode", choices=("gil", "all"), default="gil")
    parser.add_argument("--profile-phase", choices=("burst", "idle"), default="burst")
    args = parser.parse_args()
    run(
        args.pages,
        args.idle_s,
        profile_dir=args.profile,
        profile_mode=args.profile_mode,
        profile_phase=args.profile_phase,
    )


if __name__ == "__main__":
    main()
