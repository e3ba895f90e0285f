"""A loopback stand-in for RunningHub that answers at once (well under 1 ms): the hot-path
benchmarks measure our server, not the emulator's task simulation.

It speaks RunningHub's documented envelope (``{code, msg, data}``, HTTP 200): uploads and
creates succeed, ``/outputs`` answers ``ANSWER_OUTPUTS_CODE`` (804, "still running"), cancels
succeed; any path ending in ``.png`` is an output file (a small PNG, as RunningHub's file
hosts serve results). ``python -m bench.stub_runninghub --port N``; ``GET /_stats`` counts the calls.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import Counter
from typing import Any

#: RunningHub's "the task is still running" (what a sweep over live jobs mostly hears).
ANSWER_OUTPUTS_CODE = 804
#: The output file served for any ``*.png`` path: a 1×1 PNG (what a page shows as its result).
OUTPUT_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
    "0000000c4944415478da63f8cfc0000003010100c9fe92ef0000000049454e44ae426082"
)
#: Task ids handed out by the stub's create call (RunningHub's are 19-digit numbers).
FIRST_TASK_ID = 1_950_000_000_000_000_000

_task_ids = itertools.count(FIRST_TASK_ID)
_calls: Counter[str] = Counter()


def _envelope(code: int, msg: str, data: Any = None) -> bytes:
    return json.dumps({"code": code, "msg": msg, "data": data}).encode()


def answer(path: str) -> bytes:
    """The envelope RunningHub would send for ``path`` (every call succeeds at once)."""
    endpoint = path.rsplit("/", 1)[-1]
    _calls[endpoint] += 1
    if endpoint == "outputs":
        return _envelope(ANSWER_OUTPUTS_CODE, "APIKEY_TASK_IS_RUNNING")
    if endpoint == "upload":
        return _envelope(0, "success", {"fileName": "api/bench.png", "fileType": "input"})
    if endpoint == "run":
        task = {
            "taskId": str(next(_task_ids)),
            "clientId": "bench",
            "taskStatus": "QUEUED",
            "netWssUrl": None,
            "promptTips": "{}",
        }
        return _envelope(0, "success", task)
    if endpoint == "accountStatus":
        return _envelope(0, "success", {"remainCoins": "1000", "currentTaskCounts": "0"})
    return _envelope(0, "success", None)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI app: no framework between the socket and the answer."""
    if scope["type"] != "http":
        return
    more = True
    while more:  # drain the body (uploads are multipart)
        message = await receive()
        more = message.get("more_body", False)
    content_type = b"application/json"
    if scope["path"] == "/_stats":
        body = json.dumps(dict(_calls)).encode()
    elif scope["path"].endswith(".png"):
        body, content_type = OUTPUT_PNG, b"image/png"
    else:
        body = answer(scope["path"])
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    """Served by granian (Rust HTTP), one worker: the stub stands in for a RunningHub that runs
    on other machines, so what it costs here is the benchmark's, taken from the 2 cores the
    measured server needs. Under uvicorn (h11, pure Python) it cost 0.29 ms of CPU a call,
    under granian 0.12 ms: at the sweep's 1,000 checks a second, a sixth of a core
    (BENCHMARKS.md, item 24)."""
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    parser = argparse.ArgumentParser(prog="python -m bench.stub_runninghub")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    Granian(
        "bench.stub_runninghub:app",
        address="127.0.0.1",
        port=args.port,
        interface=Interfaces.ASGI,
        workers=1,
        log_level=LogLevels.warning,
    ).serve()


if __name__ == "__main__":
    main()
