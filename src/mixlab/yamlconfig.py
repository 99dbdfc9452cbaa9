"""Reading config YAML safely: one mapping, or one section of a pipeline YAML, with file:line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file, read with ``yaml.safe_load`` (never a full loader)."""
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"{file}: config file does not exist")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{file}{where}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{file}: expected a mapping at the top level")  # noqa: TRY004 - a user error
    return data


def load_section(path: str | Path, *sections: str) -> dict[str, Any]:
    """The first of ``sections`` present in the YAML file (a pipeline YAML), else the whole mapping."""
    data = load_yaml_mapping(path)
    for section in sections:
        if section in data:
            inner = data[section] or {}
            if not isinstance(inner, dict):
                raise ValueError(f"{path}: section {section!r} must be a mapping")
            return dict(inner)
    return dict(data)
