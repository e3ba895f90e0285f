"""The tools as the app defines them, for tests that mean "this tool's price"."""

from __future__ import annotations

from arcano_tools.domain.tools import DEFAULT_TOOLS, ToolRegistry

TOOLS = ToolRegistry(DEFAULT_TOOLS)


def tool_cost(name: str) -> int:
    """Credits one job of tool ``name`` costs (``upscaler``, ``veste_ai``, …)."""
    tool = TOOLS.by_name(name)
    assert tool is not None, f"no tool named {name!r}"
    return tool.cost
