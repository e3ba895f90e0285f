"""The four tools: their table, cost, inputs and how their inputs map onto a RunningHub app.

The RunningHub side (app id and ``nodeInfoList`` mapping) is configuration: the defaults point
at the emulator's catalogue; production overrides them with ``RUNNINGHUB_TOOLS_JSON``::

    {"upscaler": {"app_id": "19…", "nodes": {"image": ["12", "image"], "scale": ["7", "value"]}}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Literal

from arcano_tools import constants as c

InputKind = Literal["image", "video"]


@dataclass(frozen=True)
class FileInput:
    """One uploaded file a tool needs (a multipart field of ``POST /api/jobs``)."""

    name: str
    kind: InputKind
    label: str


@dataclass(frozen=True)
class Tool:
    name: str
    table: str
    route: str
    title: str
    promise: str
    cost: int
    files: tuple[FileInput, ...]
    #: Allowed values of the ``scale`` parameter; empty when the tool has none.
    scales: tuple[int, ...] = ()
    app_id: str = ""
    #: Our input name (a file input's name, or ``scale``) → (RunningHub nodeId, fieldName).
    nodes: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def output_kind(self) -> InputKind:
        return self.files[0].kind


_MAIN_IMAGE = (c.NODE_MAIN_INPUT, "image")
_SECOND_IMAGE = (c.NODE_SECOND_IMAGE, "image")
_SCALE = (c.NODE_SCALE, "value")

DEFAULT_TOOLS: tuple[Tool, ...] = (
    Tool(
        name="upscaler",
        table="upscaler_jobs",
        route="/upscaler",
        title="Upscaler",
        promise="Aumente a resolução das suas fotos em 2× ou 4× sem perder nitidez.",
        cost=5,
        files=(FileInput("image", "image", "Sua foto"),),
        scales=(2, 4),
        app_id=c.EMULATOR_APP_UPSCALER,
        nodes={"image": _MAIN_IMAGE, "scale": _SCALE},
    ),
    Tool(
        name="pose_changer",
        table="pose_changer_jobs",
        route="/pose-changer",
        title="Pose Changer",
        promise="Coloque a pessoa da foto na pose que você escolher.",
        cost=8,
        files=(
            FileInput("image", "image", "Foto da pessoa"),
            FileInput("pose_image", "image", "Pose de referência"),
        ),
        app_id=c.EMULATOR_APP_POSE_CHANGER,
        nodes={"image": _MAIN_IMAGE, "pose_image": _SECOND_IMAGE},
    ),
    Tool(
        name="veste_ai",
        table="veste_ai_jobs",
        route="/veste-ai",
        title="Veste AI",
        promise="Experimente roupas virtualmente: vista a peça na pessoa da foto.",
        cost=8,
        files=(
            FileInput("image", "image", "Foto da pessoa"),
            FileInput("garment_image", "image", "Foto da roupa"),
        ),
        app_id=c.EMULATOR_APP_VESTE_AI,
        nodes={"image": _MAIN_IMAGE, "garment_image": _SECOND_IMAGE},
    ),
    Tool(
        name="video_upscaler",
        table="video_upscaler_jobs",
        route="/video-upscaler",
        title="Video Upscaler",
        promise="Deixe seus vídeos mais nítidos, quadro a quadro.",
        cost=20,
        files=(FileInput("video", "video", "Seu vídeo"),),
        scales=(2, 4),
        app_id=c.EMULATOR_APP_VIDEO_UPSCALER,
        nodes={"video": (c.NODE_MAIN_INPUT, "video"), "scale": _SCALE},
    ),
)

JOB_TABLES: tuple[str, ...] = tuple(t.table for t in DEFAULT_TOOLS)


def _is_id(value: object) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and bool(str(value).strip())


def _override(tool: Tool, entry: object) -> Tool:
    """One tool's entry of ``RUNNINGHUB_TOOLS_JSON``: ``{"app_id": …, "nodes": {…}}``."""
    where = f"RUNNINGHUB_TOOLS_JSON[{tool.name!r}]"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be an object")
    app_id = entry.get("app_id", tool.app_id)
    if not _is_id(app_id):
        raise ValueError(f"{where}: app_id must be a non-empty string")
    raw_nodes = entry.get("nodes") or {}
    if not isinstance(raw_nodes, dict):
        raise ValueError(f"{where}: nodes must be an object")
    nodes = dict(tool.nodes)
    for key, pair in raw_nodes.items():
        if key not in tool.nodes or not isinstance(pair, list) or len(pair) != 2:
            raise ValueError(f"RUNNINGHUB_TOOLS_JSON: bad node {key!r} for {tool.name}")
        if not all(_is_id(p) for p in pair):
            raise ValueError(f"RUNNINGHUB_TOOLS_JSON: bad node {key!r} for {tool.name}")
        nodes[key] = (str(pair[0]), str(pair[1]))
    return replace(tool, app_id=str(app_id), nodes=nodes)


class ToolRegistry:
    """The tools with their configured RunningHub mapping, looked up by name or table."""

    def __init__(self, tools: tuple[Tool, ...]) -> None:
        self.tools = tools
        self._by_name = {t.name: t for t in tools}
        self._by_table = {t.table: t for t in tools}

    @classmethod
    def from_config(cls, tools_json: str = "") -> ToolRegistry:
        """Apply ``RUNNINGHUB_TOOLS_JSON`` over the defaults; a bad value fails at start-up."""
        tools = list(DEFAULT_TOOLS)
        if tools_json.strip():
            overrides = json.loads(tools_json)
            if not isinstance(overrides, dict):
                raise ValueError("RUNNINGHUB_TOOLS_JSON must be a JSON object keyed by tool name")
            unknown = set(overrides) - {t.name for t in tools}
            if unknown:
                raise ValueError(f"RUNNINGHUB_TOOLS_JSON: unknown tools {sorted(unknown)}")
            for i, tool in enumerate(tools):
                if overrides.get(tool.name) is not None:  # null: keep the defaults
                    tools[i] = _override(tool, overrides[tool.name])
        return cls(tuple(tools))

    def by_name(self, name: str) -> Tool | None:
        return self._by_name.get(name)

    def by_table(self, table: str) -> Tool | None:
        return self._by_table.get(table)

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(self._by_table)
