"""The RunningHub emulator over real HTTP: a subprocess server, a real webhook receiver.

Why a real server: the product talks to the emulator (and to RunningHub) over the network, so
timing behaviours — the early webhook racing the create answer, retries, delays — are only
honest with real sockets. One emulator serves the module; each test resets it first.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from arcano_tools.constants import (
    EMULATOR_APP_POSE_CHANGER,
    EMULATOR_APP_UPSCALER,
    EMULATOR_APP_VESTE_AI,
    EMULATOR_APP_VIDEO_UPSCALER,
    NODE_MAIN_INPUT,
    NODE_SCALE,
    NODE_SECOND_IMAGE,
)
from arcano_tools.emulator import ControlError, EmulatorControl, create_emulator_app
from arcano_tools.tls import client_tls
from tests.support.images import decode_image, png_bytes
from tests.support.loopback import serving
from tests.support.processes import ServerProcess, free_port, http_ready, start_process

KEY = "k" * 16 + "0123456789abcdef"  # 32 characters, like RunningHub's keys
KEY_B = "b" * 32
TASK_MS = 150  # the server's EMULATOR_TASK_MS: every test starts from it after a reset


# --- webhook receiver -----------------------------------------------------------------------
@dataclass
class Hook:
    at: float  # time.monotonic() when received (same clock as the tests)
    path: str  # path + query
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A stdlib HTTP server in a thread that records every POST and answers scripted codes."""

    port: int = 0
    hooks: list[Hook] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses to answer first
    cond: threading.Condition = field(default_factory=threading.Condition)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def new_path(self) -> str:
        """A fresh path with a secret-looking token, so tests never see each other's hooks."""
        return f"/webhooks/{uuid.uuid4().hex}?token=secret-{uuid.uuid4().hex}"

    def for_path(self, path: str) -> list[Hook]:
        with self.cond:
            return [h for h in self.hooks if h.path == path]

    def wait(self, path: str, count: int, timeout: float = 5.0) -> list[Hook]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [h for h in self.hooks if h.path == path]
                if len(got) >= count or time.monotonic() >= deadline:
                    return got
                self.cond.wait(timeout=max(0.01, deadline - time.monotonic()))


@pytest.fixture(scope="module")
def emulator_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with receiver.cond:
                receiver.hooks.append(Hook(time.monotonic(), self.path, body))
                pending = receiver.script.get(self.path)
                status = pending.pop(0) if pending else 200
                receiver.cond.notify_all()
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    with serving(server):
        yield receiver


# --- the emulator subprocess --------------------------------------------------------------------
@pytest.fixture(scope="module")
def emulator_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``python -m arcano_tools.emulator`` (its own entry point) on a free port."""
    port = free_port()
    data_dir = tmp_path_factory.mktemp("emulator-data")
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "arcano_tools.emulator", "--port", str(port)]
    server = start_process(
        "emulator",
        [*cmd, "--data-dir", str(data_dir)],
        ready=http_ready(url + "/_control"),
        url=url,
        env={"EMULATOR_TASK_MS": str(TASK_MS)},
        timeout=20,
        log_dir=data_dir.parent,
    )
    yield server
    server.stop()


class Emu:
    """A thin RunningHub client for the tests (an httpx.Client on the emulator)."""

    def __init__(self, base: str, client: httpx.Client) -> None:
        self.base = base
        self.http = client

    def post(self, path: str, **body: Any) -> dict[str, Any]:
        resp = self.http.post(f"{self.base}{path}", json=body)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def control(self, **settings: Any) -> dict[str, Any]:
        resp = self.http.post(f"{self.base}/_control", json=settings)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def stats(self) -> dict[str, Any]:
        return self.http.get(f"{self.base}/_stats").json()

    def webhook_stats(self, **expected: int) -> dict[str, Any]:
        """The webhook counters once they match ``expected`` (or after 3 s, for the assert).

        The receiver records a POST before answering it, and the emulator counts it only
        after the answer: reading the stats right after a hook arrived would race.
        """
        deadline = time.monotonic() + 3.0
        while True:
            hooks = self.stats()["webhooks"]
            if all(hooks[k] == v for k, v in expected.items()) or time.monotonic() > deadline:
                return hooks
            time.sleep(0.02)

    def upload(self, data: bytes | None = None, name: str = "in.png", key: str = KEY) -> str:
        resp = self.http.post(
            f"{self.base}/task/openapi/upload",
            data={"apiKey": key, "fileType": "input"},
            files={"file": (name, data or png_bytes(), "application/octet-stream")},
        )
        body = resp.json()
        assert body["code"] == 0, body
        return body["data"]["fileName"]

    def run(
        self,
        *,
        key: str = KEY,
        webhook: str | None = None,
        app: str = EMULATOR_APP_UPSCALER,
        nodes: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        if nodes is None:
            nodes = [
                {"nodeId": NODE_MAIN_INPUT, "fieldName": "image", "fieldValue": self.upload()},
                {"nodeId": NODE_SCALE, "fieldName": "value", "fieldValue": "2"},
            ]
        body: dict[str, Any] = {"apiKey": key, "webappId": app, "nodeInfoList": nodes}
        if webhook:
            body["webhookUrl"] = webhook
        return self.post("/task/openapi/ai-app/run", **body)

    def outputs(self, task_id: str, key: str = KEY) -> dict[str, Any]:
        return self.post("/task/openapi/outputs", apiKey=key, taskId=task_id)

    def wait_done(self, task_id: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            out = self.outputs(task_id)
            if out["code"] != 804 or time.monotonic() > deadline:
                return out
            time.sleep(0.03)


@pytest.fixture
def emulator(emulator_server: ServerProcess) -> Iterator[Emu]:
    with httpx.Client(verify=client_tls(), timeout=15.0) as client:
        resp = client.post(f"{emulator_server.url}/_control", json={"reset": True})
        assert resp.status_code == 200, resp.text
        yield Emu(emulator_server.url, client)


# --- the happy path ---------------------------------------------------------------------------
def test_run_answers_running_then_an_output_file_twice_the_size(emulator: Emu) -> None:
    fname = emulator.upload(png_bytes((40, 30)))
    assert fname.startswith("api/")
    assert fname.endswith(".png")
    created = emulator.run(
        nodes=[
            {"nodeId": "1", "fieldName": "image", "fieldValue": fname},
            {"nodeId": "3", "fieldName": "value", "fieldValue": "2"},
        ]
    )
    assert created["code"] == 0
    assert created["msg"] == "success"
    data = created["data"]
    assert data["taskId"].isdigit()
    assert data["taskStatus"] == "QUEUED"
    assert data["netWssUrl"] is None
    assert json.loads(data["promptTips"])["result"] is True
    task_id = data["taskId"]

    running = emulator.outputs(task_id)
    assert running["code"] == 804
    assert running["msg"] == "APIKEY_TASK_IS_RUNNING"
    assert emulator.post("/task/openapi/status", apiKey=KEY, taskId=task_id)["data"] == "RUNNING"

    done = emulator.wait_done(task_id)
    assert done["code"] == 0, done
    [item] = done["data"]
    assert set(item) == {
        "fileUrl",
        "fileType",
        "taskCostTime",
        "nodeId",
        "consumeCoins",
        "consumeMoney",
    }
    assert item["fileType"] == "png"
    assert item["fileUrl"].startswith(f"{emulator.base}/files/")
    resp = emulator.http.get(item["fileUrl"])
    assert resp.status_code == 200
    assert decode_image(resp.content).size == (80, 60)
    assert emulator.post("/task/openapi/status", apiKey=KEY, taskId=task_id)["data"] == "SUCCESS"

    account = emulator.post("/uc/openapi/accountStatus", apikey=KEY)
    assert account["code"] == 0
    assert set(account["data"]) == {
        "remainCoins",
        "currentTaskCounts",
        "remainMoney",
        "currency",
        "apiType",
    }
    assert int(account["data"]["remainCoins"]) == 100_000 - item["consumeCoins"]
    assert account["data"]["currentTaskCounts"] == "0"


def test_every_app_produces_its_output(emulator: Emu) -> None:
    emulator.control(task_ms=0, webhook="drop")
    person = emulator.upload(png_bytes((60, 90)))
    other = emulator.upload(png_bytes((30, 30), (0, 0, 255)))
    video = emulator.upload(b"\x00\x00\x00\x18ftypmp42" + os.urandom(64), name="clip.mp4")
    two = [
        {"nodeId": NODE_MAIN_INPUT, "fieldName": "image", "fieldValue": person},
        {"nodeId": NODE_SECOND_IMAGE, "fieldName": "image", "fieldValue": other},
    ]
    cases = {
        EMULATOR_APP_POSE_CHANGER: (two, "png"),
        EMULATOR_APP_VESTE_AI: (two, "png"),
        EMULATOR_APP_VIDEO_UPSCALER: (
            [{"nodeId": NODE_MAIN_INPUT, "fieldName": "video", "fieldValue": video}],
            "mp4",
        ),
    }
    for app, (nodes, ext) in cases.items():
        created = emulator.run(app=app, nodes=nodes)
        assert created["code"] == 0, created
        done = emulator.wait_done(created["data"]["taskId"])
        assert done["code"] == 0, done
        assert done["data"][0]["fileType"] == ext
        assert emulator.http.get(done["data"][0]["fileUrl"]).status_code == 200


def test_workflow_create_is_accepted_like_run(emulator: Emu) -> None:
    nodes = [{"nodeId": "1", "fieldName": "image", "fieldValue": emulator.upload()}]
    created = emulator.post(
        "/task/openapi/create", apiKey=KEY, workflowId=EMULATOR_APP_UPSCALER, nodeInfoList=nodes
    )
    assert created["code"] == 0
    assert emulator.wait_done(created["data"]["taskId"])["code"] == 0


# --- webhook modes ------------------------------------------------------------------------------
def test_webhook_is_delivered_in_the_documented_format(
    emulator: Emu, emulator_receiver: Receiver, emulator_server: ServerProcess
) -> None:
    path = emulator_receiver.new_path()
    task_id = emulator.run(webhook=emulator_receiver.url(path))["data"]["taskId"]
    [hook] = emulator_receiver.wait(path, 1)
    body = hook.json()
    assert set(body) == {"event", "taskId", "eventData"}
    assert body["event"] == "TASK_END"
    assert body["taskId"] == task_id
    assert isinstance(body["eventData"], str)
    assert json.loads(body["eventData"]) == emulator.outputs(task_id)
    stats = emulator.webhook_stats(sent=1)
    assert stats["sent"] == 1
    assert stats["failed"] == 0
    # The token in the webhook URL and the full API key never reach the log.
    log_text = emulator_server.log_path.read_text()
    assert path.split("token=")[1] not in log_text
    assert KEY not in log_text
    assert KEY not in json.dumps(emulator.stats())


def test_drop_never_sends_the_webhook(emulator: Emu, emulator_receiver: Receiver) -> None:
    emulator.control(webhook="drop")
    path = emulator_receiver.new_path()
    task_id = emulator.run(webhook=emulator_receiver.url(path))["data"]["taskId"]
    assert emulator.wait_done(task_id)["code"] == 0
    # "dropped" is counted where the webhook would have been sent: after it, none can come
    assert emulator.webhook_stats(dropped=1)["dropped"] == 1
    assert emulator_receiver.for_path(path) == []


def test_early_webhook_arrives_before_the_create_answer(
    emulator: Emu, emulator_receiver: Receiver
) -> None:
    emulator.control(webhook="early")
    path = emulator_receiver.new_path()
    nodes = [{"nodeId": "1", "fieldName": "image", "fieldValue": emulator.upload()}]
    created = emulator.run(webhook=emulator_receiver.url(path), nodes=nodes)
    answered_at = time.monotonic()
    hooks = emulator_receiver.for_path(path)  # no waiting: it must already be here
    assert len(hooks) == 1
    assert hooks[0].at < answered_at
    assert hooks[0].json()["taskId"] == created["data"]["taskId"]
    assert emulator.outputs(created["data"]["taskId"])["code"] == 0
    assert emulator.stats()["webhooks"]["early"] == 1


def test_duplicate_sends_the_same_webhook_three_times(
    emulator: Emu, emulator_receiver: Receiver
) -> None:
    emulator.control(webhook="duplicate")
    path = emulator_receiver.new_path()
    emulator.run(webhook=emulator_receiver.url(path))
    hooks = emulator_receiver.wait(path, 3)
    assert len(hooks) == 3
    assert hooks[0].body == hooks[1].body == hooks[2].body
    stats = emulator.webhook_stats(sent=3)
    assert stats["sent"] == 3
    assert stats["duplicates"] == 2


def test_delay_sends_the_webhook_after_the_task_ended(
    emulator: Emu, emulator_receiver: Receiver
) -> None:
    emulator.control(webhook="delay", webhook_delay_ms=600, task_ms=50)
    path = emulator_receiver.new_path()
    task_id = emulator.run(webhook=emulator_receiver.url(path))["data"]["taskId"]
    assert emulator.wait_done(task_id)["code"] == 0
    ended_at = time.monotonic()
    assert emulator_receiver.for_path(path) == []
    [hook] = emulator_receiver.wait(path, 1)
    assert hook.at - ended_at > 0.35


def test_failed_deliveries_are_retried_and_401_is_final(
    emulator: Emu, emulator_receiver: Receiver
) -> None:
    emulator.control(task_ms=0)
    retried = emulator_receiver.new_path()
    emulator_receiver.script[retried] = [500, 503]
    refused = emulator_receiver.new_path()
    emulator_receiver.script[refused] = [401]
    emulator.run(webhook=emulator_receiver.url(retried))
    emulator.run(webhook=emulator_receiver.url(refused))
    assert len(emulator_receiver.wait(retried, 3)) == 3  # 500, 503, then 200 after 0.5 + 1 s
    # "failed" is counted once a delivery has given up: nothing more comes for either path
    stats = emulator.webhook_stats(sent=1, failed=1)
    assert len(emulator_receiver.for_path(refused)) == 1
    assert stats == {**stats, "sent": 1, "failed": 1, "retries": 2, "attempts": 4}


def test_malformed_webhook_body_is_not_json(emulator: Emu, emulator_receiver: Receiver) -> None:
    emulator.control(malformed_webhook=True)
    path = emulator_receiver.new_path()
    emulator.run(webhook=emulator_receiver.url(path))
    [hook] = emulator_receiver.wait(path, 1)
    with pytest.raises(ValueError):
        json.loads(hook.body)


# --- outcomes -----------------------------------------------------------------------------------
def test_fail_answers_805_with_a_failed_reason(emulator: Emu, emulator_receiver: Receiver) -> None:
    emulator.control(outcome="fail")
    path = emulator_receiver.new_path()
    task_id = emulator.run(webhook=emulator_receiver.url(path))["data"]["taskId"]
    out = emulator.wait_done(task_id)
    assert out["code"] == 805
    assert out["msg"] == "APIKEY_TASK_STATUS_ERROR"
    reason = out["data"]["failedReason"]
    assert {"node_id", "node_name", "exception_type", "exception_message", "traceback"} <= set(
        reason
    )
    assert reason["exception_type"] == "torch.cuda.OutOfMemoryError"
    assert "CUDA out of memory" in reason["exception_message"]
    assert emulator.post("/task/openapi/status", apiKey=KEY, taskId=task_id)["data"] == "FAILED"
    [hook] = emulator_receiver.wait(path, 1)
    assert json.loads(hook.json()["eventData"])["code"] == 805
    assert emulator.stats()["tasks"]["failed"] == 1


def test_never_runs_until_cancelled_and_sends_no_webhook(
    emulator: Emu, emulator_receiver: Receiver
) -> None:
    emulator.control(outcome="never", task_ms=50)
    path = emulator_receiver.new_path()
    task_id = emulator.run(webhook=emulator_receiver.url(path))["data"]["taskId"]
    time.sleep(0.3)  # time passing is the test: six times task_ms, and the task still runs
    assert emulator.outputs(task_id)["code"] == 804
    assert emulator.stats()["tasks"]["running"] == 1

    cancelled = emulator.post("/task/openapi/cancel", apiKey=KEY, taskId=task_id)
    assert cancelled == {"code": 0, "msg": "success", "data": None}
    out = emulator.outputs(task_id)
    assert out["code"] == 805
    assert out["data"]["failedReason"]["exception_message"] == "Task cancelled"
    assert emulator.post("/task/openapi/status", apiKey=KEY, taskId=task_id)["data"] == "FAILED"
    # no event marks "no webhook will come": a window in which a wrong one would have arrived
    # (a delivery takes milliseconds here)
    time.sleep(0.3)
    assert emulator_receiver.for_path(path) == []
    tasks = emulator.stats()["tasks"]
    assert tasks["cancelled"] == 1
    assert tasks["running"] == 0

    unknown = emulator.post("/task/openapi/cancel", apiKey=KEY, taskId="1234567890123456789")
    assert unknown["code"] == 807


def test_a_cancelled_running_task_never_completes(emulator: Emu) -> None:
    emulator.control(task_ms=300)
    task_id = emulator.run()["data"]["taskId"]
    emulator.post("/task/openapi/cancel", apiKey=KEY, taskId=task_id)
    time.sleep(0.5)  # time passing is the test: past the moment the task would have ended
    assert emulator.outputs(task_id)["code"] == 805
    assert emulator.stats()["tasks"]["succeeded"] == 0


# --- load and errors ----------------------------------------------------------------------------
def test_queue_full_next_answers_421(emulator: Emu) -> None:
    emulator.control(queue_full_next=2)
    assert emulator.run() == {"code": 421, "msg": "TASK_QUEUE_MAXED", "data": None}
    assert emulator.run()["code"] == 421
    assert emulator.run()["code"] == 0
    assert emulator.stats()["queue_full_answers"] == 2
    assert emulator.control()["queue_full_next"] == 0


def test_key_concurrency_caps_unfinished_tasks_per_key(emulator: Emu) -> None:
    emulator.control(key_concurrency=1, outcome="never")
    first = emulator.run(key=KEY)
    assert first["code"] == 0
    assert emulator.run(key=KEY)["code"] == 421
    assert emulator.run(key=KEY_B)["code"] == 0  # another key has its own slots
    account = emulator.post("/uc/openapi/accountStatus", apiKey=KEY)
    assert account["data"]["currentTaskCounts"] == "1"
    emulator.post("/task/openapi/cancel", apiKey=KEY, taskId=first["data"]["taskId"])
    assert emulator.run(key=KEY)["code"] == 0
    stats = emulator.stats()
    assert stats["tasks"]["max_running"] == 2
    assert stats["tasks"]["max_running_by_key"] == {f"{KEY[:4]}…": 1, f"{KEY_B[:4]}…": 1}
    assert stats["queue_full_answers"] == 1


def test_http_error_rate_one_gives_5xx_on_the_api_only(emulator: Emu) -> None:
    emulator.control(http_error_rate=1.0)
    for path in ("/task/openapi/status", "/task/openapi/ai-app/run", "/uc/openapi/accountStatus"):
        resp = emulator.http.post(f"{emulator.base}{path}", json={"apiKey": KEY, "taskId": "1"})
        assert resp.status_code in (500, 502)
        with pytest.raises(ValueError):
            resp.json()
    assert emulator.http.get(f"{emulator.base}/_control").status_code == 200
    assert emulator.stats()["http_errors"] == 3


def test_seed_makes_errors_and_task_ids_reproducible(emulator: Emu) -> None:
    def sample() -> tuple[list[int], list[str]]:
        emulator.control(reset=True, seed=7, http_error_rate=0.5, task_ms=0, webhook="drop")
        codes = [
            emulator.http.post(
                f"{emulator.base}/task/openapi/status", json={"apiKey": KEY, "taskId": "1"}
            ).status_code
            for _ in range(16)
        ]
        emulator.control(http_error_rate=0.0)
        fname = emulator.upload()
        nodes = [{"nodeId": "1", "fieldName": "image", "fieldValue": fname}]
        ids = [emulator.run(nodes=nodes)["data"]["taskId"] for _ in range(3)]
        return codes, ids

    first, second = sample(), sample()
    assert first == second
    assert 200 in first[0]
    assert set(first[0]) - {200}
    assert len(set(first[1])) == 3


def test_bad_api_keys_answer_802(emulator: Emu) -> None:
    for key in ("", "short", "x" * 33):
        for path in ("/task/openapi/ai-app/run", "/task/openapi/outputs", "/task/openapi/status"):
            out = emulator.post(path, apiKey=key, webappId=EMULATOR_APP_UPSCALER, taskId="1")
            assert out["code"] == 802, (path, key, out)
    assert emulator.post("/uc/openapi/accountStatus")["code"] == 802
    resp = emulator.http.post(
        f"{emulator.base}/task/openapi/upload",
        data={"apiKey": "nope"},
        files={"file": ("a.png", png_bytes(), "image/png")},
    )
    assert resp.json()["code"] == 802


def test_bad_requests_get_clear_codes(emulator: Emu) -> None:
    unknown_app = emulator.post(
        "/task/openapi/ai-app/run", apiKey=KEY, webappId="42", nodeInfoList=[]
    )
    assert unknown_app["code"] in (301, 803)
    assert "42" in unknown_app["msg"]
    missing_file = emulator.run(
        nodes=[{"nodeId": "1", "fieldName": "image", "fieldValue": "api/" + "0" * 32 + ".png"}]
    )
    assert missing_file["code"] == 803
    assert "not found" in missing_file["msg"]
    bad_scale = emulator.run(
        nodes=[
            {"nodeId": "1", "fieldName": "image", "fieldValue": emulator.upload()},
            {"nodeId": "3", "fieldName": "value", "fieldValue": "3"},
        ]
    )
    assert bad_scale["code"] == 803
    assert emulator.outputs("999")["code"] == 807
    # A task is invisible to another key, like on RunningHub.
    task_id = emulator.run()["data"]["taskId"]
    assert emulator.outputs(task_id, key=KEY_B)["code"] == 807


def test_upload_over_30_mb_answers_809(emulator: Emu) -> None:
    resp = emulator.http.post(
        f"{emulator.base}/task/openapi/upload",
        data={"apiKey": KEY, "fileType": "input"},
        files={"file": ("big.png", b"\0" * (30 * 1024 * 1024 + 1), "image/png")},
    )
    assert resp.json()["code"] == 809


def test_files_serves_nothing_outside_the_outputs(emulator: Emu) -> None:
    for name in ("..%2F..%2Fetc%2Fpasswd", "..", ".hidden.png", "nope.png", "%2Fetc%2Fpasswd"):
        assert emulator.http.get(f"{emulator.base}/files/{name}").status_code == 404
    assert emulator.http.get(f"{emulator.base}/files/../emulator.log").status_code == 404


# --- the control surface ------------------------------------------------------------------------
def test_control_reads_validates_and_resets(emulator: Emu) -> None:
    current = emulator.http.get(f"{emulator.base}/_control").json()
    assert current["task_ms"] == TASK_MS  # from EMULATOR_TASK_MS at start-up
    assert current["webhook"] == "deliver"
    assert current["outcome"] == "success"
    for bad in (
        {"webhook": "sometimes"},
        {"outcome": "maybe"},
        {"task_ms": -1},
        {"task_ms": "100"},
        {"http_error_rate": 2},
        {"key_concurrency": 0},
        {"malformed_webhook": "yes"},
        {"reset": "yes"},
        {"nope": 1},
        {"task_ms": 50, "outcome": "bad"},  # all-or-nothing: task_ms must not change
        [1, 2],
    ):
        resp = emulator.http.post(f"{emulator.base}/_control", json=bad)
        assert resp.status_code == 400, bad
        assert resp.json()["error"]
    resp = emulator.http.post(f"{emulator.base}/_control", content=b"{not json")
    assert resp.status_code == 400
    assert emulator.http.get(f"{emulator.base}/_control").json() == current

    changed = emulator.control(webhook="drop", key_concurrency=3, seed=1)
    assert changed == {**current, "webhook": "drop", "key_concurrency": 3, "seed": 1}
    emulator.run()
    assert emulator.stats()["tasks"]["created"] == 1
    assert emulator.control(reset=True) == current
    assert emulator.stats()["tasks"]["created"] == 0


def test_stats_count_calls_and_outputs_polls(emulator: Emu) -> None:
    task_id = emulator.run()["data"]["taskId"]
    emulator.wait_done(task_id)
    emulator.post("/task/openapi/status", apiKey=KEY, taskId=task_id)
    stats = emulator.stats()
    polls = stats["outputs_calls_by_task"][task_id]
    assert stats["calls"]["upload"] == 1
    assert stats["calls"]["run"] == 1
    assert stats["calls"]["status"] == 1
    assert stats["calls"]["outputs"] == len(polls) >= 2
    assert polls == sorted(polls)
    assert stats["tasks"] == {
        "created": 1,
        "running": 0,
        "max_running": 1,
        "max_running_by_key": {f"{KEY[:4]}…": 1},
        "succeeded": 1,
        "failed": 0,
        "cancelled": 0,
    }


async def test_stats_show_each_endpoints_calls_held_by_the_latency(tmp_path: Path) -> None:
    """A held call is in flight under its endpoint's name until it is answered: what a test
    that kills a backend mid-create waits on (counted calls may already be answered)."""
    emu = create_emulator_app(tmp_path, EmulatorControl(latency_ms=400, webhook="drop"))
    transport = httpx.ASGITransport(app=emu)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        body = {"apiKey": KEY, "webappId": EMULATOR_APP_UPSCALER, "nodeInfoList": []}
        held = asyncio.create_task(client.post("/task/openapi/ai-app/run", json=body))
        await asyncio.sleep(0.1)
        during = (await client.get("/_stats")).json()
        await held
        after = (await client.get("/_stats")).json()
    assert during["calls"]["run"] == 1
    assert during["calls_in_flight"] == {"run": 1}
    assert after["calls_in_flight"] == {"run": 0}
    assert after["max_requests_in_flight"] == 1


# --- in process: mounted under a prefix, independence, environment ------------------------------
async def test_mounted_app_hands_out_urls_under_its_prefix(tmp_path: Path) -> None:
    emu = create_emulator_app(tmp_path, EmulatorControl(task_ms=0, webhook="drop"))
    other = create_emulator_app(tmp_path / "other", EmulatorControl())
    outer = Starlette(routes=[Mount("/_emulator/runninghub", app=emu)])
    transport = httpx.ASGITransport(app=outer)
    base = "http://testserver/_emulator/runninghub"
    try:
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:
            up = await client.post(
                "/task/openapi/upload",
                data={"apiKey": KEY, "fileType": "input"},
                files={"file": ("a.png", png_bytes((10, 10)), "image/png")},
            )
            fname = up.json()["data"]["fileName"]
            run = await client.post(
                "/task/openapi/ai-app/run",
                json={
                    "apiKey": KEY,
                    "webappId": EMULATOR_APP_UPSCALER,
                    "nodeInfoList": [{"nodeId": "1", "fieldName": "image", "fieldValue": fname}],
                },
            )
            task_id = run.json()["data"]["taskId"]
            for _ in range(200):
                out = (
                    await client.post(
                        "/task/openapi/outputs", json={"apiKey": KEY, "taskId": task_id}
                    )
                ).json()
                if out["code"] != 804:
                    break
                await asyncio.sleep(0.01)
            url = out["data"][0]["fileUrl"]
            assert url.startswith(f"{base}/files/")
            assert (await client.get(url)).status_code == 200
        # Two apps in one process share nothing.
        assert other.state.emulator.stats.tasks.created == 0
        assert other.state.emulator.control.task_ms != 0
    finally:
        await emu.state.emulator.shutdown()
        await other.state.emulator.shutdown()


def test_environment_settings_are_read_and_checked() -> None:
    control = EmulatorControl.from_env(
        {
            "EMULATOR_WEBHOOK": "early",
            "EMULATOR_WEBHOOK_DELAY_MS": "250",
            "EMULATOR_TASK_MS": "10",
            "EMULATOR_OUTCOME": "fail",
            "EMULATOR_QUEUE_FULL_NEXT": "2",
            "EMULATOR_HTTP_ERROR_RATE": "0.25",
            "EMULATOR_SEED": "9",
            "EMULATOR_KEY_CONCURRENCY": "1",
        }
    )
    assert (control.webhook, control.webhook_delay_ms, control.task_ms) == ("early", 250, 10)
    assert (control.outcome, control.queue_full_next, control.http_error_rate) == ("fail", 2, 0.25)
    assert (control.seed, control.key_concurrency) == (9, 1)
    assert EmulatorControl.from_env({}) == EmulatorControl()
    for bad in ({"EMULATOR_WEBHOOK": "loud"}, {"EMULATOR_TASK_MS": "soon"}):
        with pytest.raises(ControlError):
            EmulatorControl.from_env(bad)
