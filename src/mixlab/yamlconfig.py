"""Reading config YAML safely: one mapping, or one section of a pipeline YAML, with file:line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping gives the same key twice."""


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with the same key twice (PyYAML keeps the last one)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden
                    continue
                key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: let the base class report it
                    continue
                if first is not None:
                    raise DuplicateKeyError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"duplicate key {key!r} (first given on line {first + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` that rejects duplicate keys."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file, read with a safe loader that rejects duplicate keys."""
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"{file}: config file does not exist")
    try:
        data = safe_load(file.read_text(encoding="utf-8")) or {}
    except DuplicateKeyError as exc:
        where = f":{exc.problem_mark.line + 1}" if exc.problem_mark is not None else ""
        raise ValueError(f"{file}{where}: invalid YAML: {exc.problem}") from None
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
