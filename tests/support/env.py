"""The environment the settings read, for tests that must start from a clean one."""

from __future__ import annotations

from arcano_tools.config import Settings


def settings_env_names() -> set[str]:
    """Every environment variable Settings reads (aliases and alias choices)."""
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        choices = getattr(field.validation_alias, "choices", None)
        if choices:
            names.update(str(choice) for choice in choices)
        else:
            names.add(field.alias or name)
    return names
