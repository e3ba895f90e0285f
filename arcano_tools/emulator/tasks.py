"""What the emulator knows about its apps and how RunningHub words its answers.

Why one place: the create, outputs and webhook paths must produce byte-for-byte the same
envelopes (the webhook's ``eventData`` *is* the ``/outputs`` envelope), and the codes and
messages must match the team's RunningHub API notes (shared docs, outside this repository) so
the product's client handles them as it will in production.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

from arcano_tools.constants import (
    EMULATOR_APP_POSE_CHANGER,
    EMULATOR_APP_UPSCALER,
    EMULATOR_APP_VESTE_AI,
    EMULATOR_APP_VIDEO_UPSCALER,
    NODE_MAIN_INPUT,
    NODE_SCALE,
    NODE_SECOND_IMAGE,
)
from arcano_tools.emulator.control import EmulatorControl

# --- RunningHub codes (the team's RunningHub API notes) -----------------------------------------
CODE_OK = 0
CODE_PARAMS_INVALID = 301
CODE_QUEUE_MAXED = 421
CODE_UNAUTHORIZED = 802
CODE_INVALID_NODE_INFO = 803
CODE_TASK_RUNNING = 804
CODE_TASK_FAILED = 805
CODE_TASK_NOT_FOUND = 807
CODE_FILE_TOO_LARGE = 809

#: The save node every emulated workflow ends with (RunningHub's doc example uses "9").
SAVE_NODE_ID = "9"


@dataclasses.dataclass(frozen=True)
class AppSpec:
    """One emulated AI app: its inputs (node "1", maybe "2" and "3") and its price."""

    kind: str  # imaging.APP_KINDS
    title: str
    main_field: str  # fieldName of node 1: "image" or "video"
    needs_second: bool  # node 2 "image": pose reference / garment
    takes_scale: bool  # node 3 "value": 2 or 4
    coins: int


CATALOGUE: dict[str, AppSpec] = {
    EMULATOR_APP_UPSCALER: AppSpec("upscaler", "Upscaler", "image", False, True, 10),
    EMULATOR_APP_POSE_CHANGER: AppSpec("pose_changer", "Pose Changer", "image", True, False, 20),
    EMULATOR_APP_VESTE_AI: AppSpec("veste_ai", "Veste AI", "image", True, False, 20),
    EMULATOR_APP_VIDEO_UPSCALER: AppSpec(
        "video_upscaler", "Video Upscaler", "video", False, True, 40
    ),
}


@dataclasses.dataclass
class Task:
    """One emulated task. ``settings`` is the control snapshot taken when it was created."""

    task_id: str
    client_id: str
    api_key: str
    spec: AppSpec
    inputs: dict[str, Path]
    scale: int
    webhook_url: str | None
    base_url: str  # absolute, ends with "/": where /files/... is served for this client
    settings: EmulatorControl
    generation: int  # the runtime's reset generation the task belongs to
    created_at: float
    status: str = "QUEUED"  # then RUNNING, SUCCESS or FAILED (a cancelled task is FAILED)
    ended: bool = False
    started_at: float | None = None
    envelope: dict[str, Any] | None = None
    runner: asyncio.Task[None] | None = None


def envelope(code: int, msg: str, data: Any = None) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": data}


def create_answer(task: Task) -> dict[str, Any]:
    """The create/run response, shaped like the doc's example."""
    tips: dict[str, Any] = {
        "result": True,
        "error": None,
        "outputs_to_execute": [SAVE_NODE_ID],
        "node_errors": {},
    }
    return envelope(
        CODE_OK,
        "success",
        {
            "taskId": task.task_id,
            "clientId": task.client_id,
            "taskStatus": "QUEUED",
            "netWssUrl": None,
            "promptTips": json.dumps(tips),
        },
    )


def success_envelope(task: Task, file_url: str, file_type: str, cost_s: float) -> dict[str, Any]:
    item = {
        "fileUrl": file_url,
        "fileType": file_type,
        "taskCostTime": round(cost_s, 3),
        "nodeId": SAVE_NODE_ID,
        "consumeCoins": task.spec.coins,
        "consumeMoney": None,
    }
    return envelope(CODE_OK, "success", [item])


def failure_envelope(
    *,
    node_id: str,
    node_name: str,
    exception_type: str,
    exception_message: str,
    traceback: str = "",
) -> dict[str, Any]:
    reason = {
        "node_id": node_id,
        "node_name": node_name,
        "exception_type": exception_type,
        "exception_message": exception_message,
        "traceback": traceback,
    }
    return envelope(CODE_TASK_FAILED, "APIKEY_TASK_STATUS_ERROR", {"failedReason": reason})


def oom_failure(spec: AppSpec) -> dict[str, Any]:
    """The failure a GPU workflow most often ends with, as ComfyUI reports it."""
    node = "ImageUpscaleWithModel" if spec.takes_scale else "KSampler"
    return failure_envelope(
        node_id="5",
        node_name=node,
        exception_type="torch.cuda.OutOfMemoryError",
        exception_message=(
            "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
            "23.65 GiB of which 1.12 GiB is free."
        ),
        traceback=(
            'File "/ComfyUI/execution.py", line 323, in execute\n'
            "    output_data, output_ui, has_subgraph = get_output_data(obj, input_data_all)\n"
            "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
        ),
    )


def cancelled_failure() -> dict[str, Any]:
    return failure_envelope(
        node_id="",
        node_name="",
        exception_type="TaskCancelled",
        exception_message="Task cancelled",
    )


def load_failure(exc: BaseException) -> dict[str, Any]:
    """The input could not be read (not an image, truncated file): LoadImage fails."""
    return failure_envelope(
        node_id=NODE_MAIN_INPUT,
        node_name="LoadImage",
        exception_type=f"{type(exc).__module__}.{type(exc).__name__}",
        exception_message=str(exc)[:500] or type(exc).__name__,
    )


def parse_node_info(
    spec: AppSpec, node_info: Any, resolve_upload: Any
) -> tuple[dict[str, Path], int]:
    """Check ``nodeInfoList`` against the app; returns (inputs, scale) or raises ValueError.

    ``resolve_upload(fieldValue) -> Path | None`` maps an uploaded ``api/…`` name to its file.
    Unknown nodes are refused like RunningHub refuses a node id its workflow does not have.
    """
    if not isinstance(node_info, list) or not node_info:
        raise ValueError("nodeInfoList must be a non-empty list")
    allowed = {(NODE_MAIN_INPUT, spec.main_field)}
    if spec.needs_second:
        allowed.add((NODE_SECOND_IMAGE, "image"))
    if spec.takes_scale:
        allowed.add((NODE_SCALE, "value"))
    values: dict[tuple[str, str], Any] = {}
    for item in node_info:
        if not isinstance(item, dict) or "nodeId" not in item or "fieldName" not in item:
            raise ValueError("each nodeInfoList item needs nodeId, fieldName and fieldValue")
        key = (str(item["nodeId"]), str(item["fieldName"]))
        if key not in allowed:
            wanted = ", ".join(f"{n}/{f}" for n, f in sorted(allowed))
            raise ValueError(
                f"node {key[0]!r} field {key[1]!r} is not in app {spec.title!r} "
                f"(its inputs: {wanted})"
            )
        values[key] = item.get("fieldValue")

    inputs: dict[str, Path] = {}
    wanted_files = [("main", NODE_MAIN_INPUT, spec.main_field)]
    if spec.needs_second:
        wanted_files.append(("second", NODE_SECOND_IMAGE, "image"))
    for role, node, field in wanted_files:
        value = values.get((node, field))
        if not isinstance(value, str) or not value:
            raise ValueError(f"node {node!r} field {field!r} is required (an uploaded fileName)")
        path = resolve_upload(value)
        if path is None:
            raise ValueError(
                f"input file {value!r} of node {node!r} was not found: upload it first "
                "with /task/openapi/upload and use the fileName it returns"
            )
        inputs[role] = path

    scale = 2
    if spec.takes_scale and (NODE_SCALE, "value") in values:
        raw = values[(NODE_SCALE, "value")]
        try:
            as_float = float(str(raw).strip())
        except ValueError:
            as_float = 0.0
        if isinstance(raw, bool) or as_float not in (2.0, 4.0):
            raise ValueError(f"node {NODE_SCALE!r} field 'value' must be 2 or 4, got {raw!r}")
        scale = int(as_float)
    return inputs, scale
