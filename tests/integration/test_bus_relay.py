"""Job updates across backend processes through a real Redis server, and the job event stream.

Two ``serve-api`` processes share one PostgreSQL database and one Redis: the webhook of a job
lands in the process that created the task, while a client follows the job's events from the
other process.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fixtures import EmulatorControl
from tests.support.processes import ServerProcess
from tests.support.redis_server import RedisServer
from tests.support.servers import Backend, start_backend, submit_upscale, wait_for, wait_terminal

TABLE = "upscaler_jobs"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


def events(
    client: httpx.Client,
    backend: Backend,
    user: str,
    job_id: str,
    *,
    until: str = "end",
    first_event: threading.Event | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """Read the job's server-sent events until an event named ``until`` (inclusive);
    ``first_event`` is set once the first one has arrived (the follower is subscribed)."""
    seen: list[tuple[str, dict[str, Any]]] = []
    name = ""
    url = f"{backend.url}/api/jobs/{TABLE}/{job_id}/events"
    with client.stream("GET", url, headers=backend.user_headers(user), timeout=60) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                seen.append((name, json.loads(line.removeprefix("data: "))))
                if first_event is not None:
                    first_event.set()
                if name == until:
                    return seen
    return seen


def relay_count(client: httpx.Client, backend: Backend, outcome: str) -> float:
    text = client.get(backend.url + "/metrics", headers=backend.service_headers).text
    prefix = f'arcano_bus_relay_total{{outcome="{outcome}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return 0.0


@pytest.mark.postgres
def test_an_update_made_in_one_process_reaches_a_follower_in_another(
    backends_on_one_postgres: Callable[[Mapping[str, str]], tuple[Backend, Backend]],
    client: httpx.Client,
    emu: EmulatorControl,
    redis_server: RedisServer,
    user: str,
) -> None:
    first, second = backends_on_one_postgres({"REFLEX_REDIS_URL": redis_server.url})
    emu.set(queue_full_next=1000)  # hold the job until both followers are listening
    job_id = submit_upscale(client, first, user).json()["jobId"]
    wait_for(lambda: emu.stats()["queue_full_answers"] >= 1, what="a first attempt")
    listening = [threading.Event(), threading.Event()]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        followers = [
            pool.submit(events, client, backend, user, job_id, first_event=ready)
            for backend, ready in zip((first, second), listening, strict=True)
        ]
        for ready in listening:
            assert ready.wait(timeout=30), "a follower never got the job's first event"
        emu.set(queue_full_next=0)  # one of the processes starts it; its webhook lands there
        seen = [f.result(timeout=60) for f in followers]

    # exactly one process received the webhook; the other heard of the result via Redis
    # (its line written by the logging thread a moment after the end: awaited)
    line = f"job finished action=finish job_id={job_id}"
    wait_for(lambda: any(line in b.api.log() for b in (first, second)), what="the finish line")
    handled = [
        f"job finished action=finish job_id={job_id}" in b.api.log() for b in (first, second)
    ]
    assert sorted(handled) == [False, True], handled
    other = (first, second)[handled.index(False)]
    for stream in seen:
        assert [name for name, _ in stream][-1] == "end"
        # held by the 421s: queued, or caught mid-attempt (a start that will be put back)
        assert stream[0][1]["status"] in ("queued", "starting"), stream
        assert stream[-2][1]["status"] == "completed", stream
    # it did not finish the job, yet its follower saw the result
    assert f"job finished action=finish job_id={job_id}" not in other.api.log()
    assert relay_count(client, other, "received") >= 1
    assert relay_count(client, other, "malformed") == 0


def test_events_of_a_finished_job_are_its_state_then_the_end(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    job_id = submit_upscale(client, backend, user).json()["jobId"]
    assert wait_terminal(client, backend, user, job_id)["status"] == "completed"

    seen = events(client, backend, user, job_id)

    assert [name for name, _ in seen] == ["job", "end"]
    assert seen[0][1]["status"] == "completed"
    assert seen[0][1]["outputUrl"]


def test_events_are_only_for_the_jobs_owner(
    backend: Backend, client: httpx.Client, emu: EmulatorControl, user: str
) -> None:
    job_id = submit_upscale(client, backend, user).json()["jobId"]
    url = f"{backend.url}/api/jobs/{TABLE}/{job_id}/events"

    assert client.get(url).status_code == 401
    assert client.get(url, headers=backend.user_headers("someone-else")).status_code == 404
    missing = f"{backend.url}/api/jobs/{TABLE}/00000000-0000-0000-0000-000000000000/events"
    assert client.get(missing, headers=backend.user_headers(user)).status_code == 404


def test_without_redis_jobs_still_complete_and_the_outage_is_logged_once_without_secrets(
    emulator: ServerProcess, client: httpx.Client, emu: EmulatorControl, tmp_path: Path, user: str
) -> None:
    closed = RedisServer()  # a free port nobody listens on
    url = f"redis://:s3cret-pass@127.0.0.1:{closed.port}/0"
    backend = start_backend(emulator.url, tmp_path, extra_env={"REFLEX_REDIS_URL": url})
    try:
        job_ids = [submit_upscale(client, backend, user).json()["jobId"] for _ in range(3)]
        for job_id in job_ids:
            assert wait_terminal(client, backend, user, job_id)["status"] == "completed"
        wait_for(lambda: relay_count(client, backend, "failed") >= 1, what="a failed publish")
        wait_for(lambda: "redis unavailable" in backend.api.log(), what="the outage's line")
        log = backend.api.log()
        assert "s3cret-pass" not in log
        assert log.count("redis unavailable") <= 2  # once per loop, not once per update
        assert "redis unavailable" in log
    finally:
        backend.api.stop()
        closed.cleanup()


@pytest.mark.postgres
def test_the_relay_reconnects_after_redis_restarts(
    backends_on_one_postgres: Callable[[Mapping[str, str]], tuple[Backend, Backend]],
    client: httpx.Client,
    emu: EmulatorControl,
    user: str,
) -> None:
    redis = RedisServer()
    redis.start()
    try:
        first, second = backends_on_one_postgres({"REFLEX_REDIS_URL": redis.url})
        redis.stop()
        wait_for(lambda: "redis unavailable" in second.api.log(), what="the outage to be seen")
        redis.start()  # same port
        wait_for(lambda: "redis reachable again" in second.api.log(), what="the reconnect")

        before = relay_count(client, second, "received")
        job_id = submit_upscale(client, first, user).json()["jobId"]
        wait_for(
            lambda: relay_count(client, second, "received") > before,
            what=f"job {job_id}'s updates to reach the second process",
        )
    finally:
        redis.cleanup()
