"""The four tools and ``RUNNINGHUB_TOOLS_JSON``: defaults, overrides, and bad values refused."""

from __future__ import annotations

import json

import pytest

from arcano_tools import constants as c
from arcano_tools.domain.tools import DEFAULT_TOOLS, JOB_TABLES, Tool, ToolRegistry

TABLES = {
    "upscaler": "upscaler_jobs",
    "pose_changer": "pose_changer_jobs",
    "veste_ai": "veste_ai_jobs",
    "video_upscaler": "video_upscaler_jobs",
}


def tool(registry: ToolRegistry, name: str) -> Tool:
    found = registry.by_name(name)
    assert found is not None, name
    return found


# --- defaults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("config", ["", "   ", "\n"])
def test_no_configuration_gives_the_four_default_tools(config: str) -> None:
    registry = ToolRegistry.from_config(config)
    assert [t.name for t in registry.tools] == list(TABLES)
    assert registry.tools == DEFAULT_TOOLS


def test_each_tool_has_its_own_table() -> None:
    registry = ToolRegistry.from_config("")
    assert {t.name: t.table for t in registry.tools} == TABLES
    assert registry.tables == (
        "upscaler_jobs",
        "pose_changer_jobs",
        "veste_ai_jobs",
        "video_upscaler_jobs",
    )
    assert registry.tables == JOB_TABLES


def test_tools_are_found_by_name_and_by_table() -> None:
    registry = ToolRegistry.from_config("")
    for name, table in TABLES.items():
        assert tool(registry, name).table == table
        assert registry.by_table(table) is registry.by_name(name)
    assert registry.by_name("nope") is None
    assert registry.by_table("jobs") is None


def test_the_default_tools_point_at_the_emulators_apps_and_nodes() -> None:
    registry = ToolRegistry.from_config("")
    upscaler = tool(registry, "upscaler")
    assert upscaler.app_id == c.EMULATOR_APP_UPSCALER
    assert upscaler.nodes == {
        "image": (c.NODE_MAIN_INPUT, "image"),
        "scale": (c.NODE_SCALE, "value"),
    }
    assert upscaler.scales == (2, 4)
    assert tool(registry, "veste_ai").nodes["garment_image"] == (c.NODE_SECOND_IMAGE, "image")
    assert tool(registry, "video_upscaler").nodes["video"] == (c.NODE_MAIN_INPUT, "video")


def test_every_file_input_and_the_scale_have_a_node_mapping() -> None:
    for t in ToolRegistry.from_config("").tools:
        expected = {f.name for f in t.files} | ({"scale"} if t.scales else set())
        assert set(t.nodes) == expected, t.name


def test_the_output_kind_follows_the_first_input() -> None:
    registry = ToolRegistry.from_config("")
    assert tool(registry, "pose_changer").output_kind == "image"
    assert tool(registry, "video_upscaler").output_kind == "video"


# --- overrides --------------------------------------------------------------------------------


def test_an_override_changes_the_app_id_and_one_node_and_keeps_the_rest() -> None:
    config = json.dumps(
        {"upscaler": {"app_id": "1904163390028185602", "nodes": {"image": ["12", "image"]}}}
    )
    registry = ToolRegistry.from_config(config)

    upscaler = tool(registry, "upscaler")
    assert upscaler.app_id == "1904163390028185602"
    assert upscaler.nodes == {"image": ("12", "image"), "scale": (c.NODE_SCALE, "value")}
    assert (upscaler.table, upscaler.cost, upscaler.scales) == ("upscaler_jobs", 5, (2, 4))
    # the other tools keep their defaults
    assert registry.tools[1:] == DEFAULT_TOOLS[1:]
    # and the defaults themselves are untouched
    assert DEFAULT_TOOLS[0].app_id == c.EMULATOR_APP_UPSCALER
    assert DEFAULT_TOOLS[0].nodes["image"] == (c.NODE_MAIN_INPUT, "image")


def test_numbers_in_an_override_become_strings() -> None:
    config = json.dumps({"veste_ai": {"app_id": 1937084629516193799, "nodes": {"image": [7, 8]}}})
    veste = tool(ToolRegistry.from_config(config), "veste_ai")
    assert veste.app_id == "1937084629516193799"
    assert veste.nodes["image"] == ("7", "8")


def test_an_override_of_only_nodes_keeps_the_app_id() -> None:
    config = json.dumps({"video_upscaler": {"nodes": {"scale": ["44", "scale_by"]}}})
    video = tool(ToolRegistry.from_config(config), "video_upscaler")
    assert video.app_id == c.EMULATOR_APP_VIDEO_UPSCALER
    assert video.nodes["scale"] == ("44", "scale_by")
    assert video.nodes["video"] == (c.NODE_MAIN_INPUT, "video")


def test_the_overridden_registry_is_found_by_table_too() -> None:
    config = json.dumps({"pose_changer": {"app_id": "555"}})
    registry = ToolRegistry.from_config(config)
    assert tool(registry, "pose_changer").app_id == "555"
    pose = registry.by_table("pose_changer_jobs")
    assert pose is not None
    assert pose.app_id == "555"


@pytest.mark.parametrize("entry", [{}, None])
def test_an_empty_override_changes_nothing(entry: object) -> None:
    registry = ToolRegistry.from_config(json.dumps({"upscaler": entry}))
    assert registry.tools == DEFAULT_TOOLS


# --- bad values fail at start-up --------------------------------------------------------------


@pytest.mark.parametrize("config", ["{", "{'upscaler': {}}", "upscaler=1", '{"a": 1,}'])
def test_a_value_that_is_not_json_is_a_value_error(config: str) -> None:
    with pytest.raises(ValueError):
        ToolRegistry.from_config(config)


@pytest.mark.parametrize("config", ["[]", '[{"upscaler": {}}]', '"upscaler"', "42", "null"])
def test_a_value_that_is_not_a_json_object_is_a_value_error(config: str) -> None:
    with pytest.raises(ValueError, match="JSON object"):
        ToolRegistry.from_config(config)


def test_an_unknown_node_key_is_a_value_error_naming_it() -> None:
    config = json.dumps({"upscaler": {"nodes": {"garment_image": ["2", "image"]}}})
    with pytest.raises(ValueError, match="'garment_image' for upscaler"):
        ToolRegistry.from_config(config)


@pytest.mark.parametrize("pair", [["12"], ["12", "image", "extra"], []])
def test_a_node_that_is_not_a_pair_is_a_value_error(pair: list[str]) -> None:
    config = json.dumps({"upscaler": {"nodes": {"image": pair}}})
    with pytest.raises(ValueError, match="bad node 'image'"):
        ToolRegistry.from_config(config)


def test_a_node_given_as_a_string_is_a_value_error() -> None:
    config = json.dumps({"upscaler": {"nodes": {"image": "12"}}})
    with pytest.raises(ValueError, match="bad node 'image'"):
        ToolRegistry.from_config(config)


def test_a_null_app_id_is_refused_or_keeps_the_default() -> None:
    try:
        registry = ToolRegistry.from_config(json.dumps({"upscaler": {"app_id": None}}))
    except ValueError:
        return
    assert tool(registry, "upscaler").app_id == c.EMULATOR_APP_UPSCALER


@pytest.mark.parametrize("entry", [5, ["app_id", "1"], "1937084629516193794", ""])
def test_a_tool_entry_that_is_not_an_object_is_a_value_error(entry: object) -> None:
    with pytest.raises(ValueError):
        ToolRegistry.from_config(json.dumps({"upscaler": entry}))
