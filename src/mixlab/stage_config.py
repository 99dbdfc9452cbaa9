"""One way for every stage subcommand to read its settings: ``--config FILE``, then the flags given.

``mixlab eval --config pipeline.yaml`` reads the ``evaluation:`` section of the same pipeline YAML that
``mixlab run`` reads, validates it with the stage's own config model (the one the pipeline composes), and
applies the flags the user gave on top. Flags default to ``None`` (never to a value), so an argparse
default can never override the file; the model's defaults apply to what neither sets.

The file may be a pipeline YAML (the section is read; a pipeline without the section gives the stage's
defaults) or a YAML holding just the stage's fields. Errors name the file and the dotted field, e.g.
``pipeline.yaml: invalid evaluation config:\\n  evaluation.batch_size: Input should be ...``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mixlab.yamlconfig import load_yaml_mapping

__all__ = [
    "PIPELINE_MARKER",
    "add_config_argument",
    "flag_values",
    "format_validation_error",
    "read_stage_section",
    "stage_config",
]

M = TypeVar("M", bound=BaseModel)

#: A top-level key every pipeline YAML has (``mixlab run`` requires it).
PIPELINE_MARKER = "workdir"

_COMMAND_LINE = "command line"


def add_config_argument(parser: argparse.ArgumentParser, *sections: str) -> None:
    """Add ``--config FILE`` to a stage's parser: its ``sections`` of a pipeline YAML, or the fields alone."""
    names = " and ".join(f"`{s}:`" for s in sections)
    what = "section is" if len(sections) == 1 else "sections are"
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help=f"pipeline YAML (its {names} {what} read) or a YAML of just those fields; flags given override it",
    )


def flag_values(args: argparse.Namespace, fields: Mapping[str, str] | Iterable[str]) -> dict[str, Any]:
    """``{field: value}`` of the flags the user gave (their value is not None).

    ``fields`` maps argparse ``dest`` -> config field, or lists dests named like their fields.
    """
    mapping = dict(fields) if isinstance(fields, Mapping) else {f: f for f in fields}
    out: dict[str, Any] = {}
    for dest, field in mapping.items():
        value = getattr(args, dest, None)
        if value is not None:
            out[field] = value
    return out


def _lookup(data: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def read_stage_section(
    path: str | Path,
    sections: Sequence[str],
    model: type[BaseModel],
    inherit: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], str]:
    """The raw values of a stage in YAML ``path`` and the dotted prefix they came from.

    The first of ``sections`` (dotted for nested ones, e.g. ``partition.clusters``) present in the file
    is the stage's mapping. Without one, a file whose keys are all fields of ``model`` is the stage's
    mapping itself; a pipeline YAML (it has ``workdir``) gives ``{}`` (the stage's defaults); anything
    else is returned whole, so that validation names the unexpected keys. ``inherit`` maps a field to a
    dotted key of a pipeline YAML that fills it when the section leaves it unset (e.g. ``seed`` from the
    pipeline's ``seed``, decontamination's ``tasks`` from ``evaluation.tasks``).
    """
    data = load_yaml_mapping(path)
    values: dict[str, Any] | None = None
    prefix = ""
    for section in sections:
        found, inner = _lookup(data, section)
        if found and not isinstance(inner, dict) and section in model.model_fields:
            continue  # a field named like the section (partition's `domains: [...]`), not the section
        if found:
            if inner is None:
                inner = {}
            if not isinstance(inner, dict):
                raise ValueError(f"{path}: section {section!r} must be a mapping, not {type(inner).__name__}")
            values, prefix = dict(inner), section
            break
    is_pipeline = PIPELINE_MARKER in data
    if values is None:
        if set(data) <= set(model.model_fields) and not is_pipeline:
            values = dict(data)
        elif is_pipeline:
            values, prefix = {}, sections[0] if sections else ""
        else:
            values = dict(data)
    if is_pipeline:
        for field, key in (inherit or {}).items():
            found, value = _lookup(data, key)
            if found and field not in values and value is not None:
                values[field] = value
    return values, prefix


def format_validation_error(
    exc: ValidationError,
    where: str,
    what: str,
    prefix: str = "",
    from_flags: Iterable[str] = (),
    flag_names: Mapping[str, str] | None = None,
) -> str:
    """``WHERE: invalid WHAT config:`` then one ``  prefix.field: message`` line per error.

    ``from_flags``: fields set on the command line (marked so); ``flag_names``: field -> its flag, named
    in the hint of a missing field."""
    flagged = set(from_flags)
    flag_names = flag_names or {}
    lines = [f"{where}: invalid {what} config:"]
    for err in exc.errors():
        parts = [str(x) for x in err["loc"] if x != "[key]"]
        loc = ".".join([prefix, *parts] if prefix else parts)
        msg = str(err["msg"]).removeprefix("Value error, ").replace("\n", "\n  ")
        if err["type"] == "missing":
            flag = flag_names.get(parts[0]) if parts else None
            msg += f" (set it in --config FILE or give {flag})" if flag else " (set it in --config FILE)"
        if parts and parts[0] in flagged:
            loc += " (from the command line)"
        lines.append(f"  {loc}: {msg}" if loc else f"  {msg}")
    return "\n".join(lines)


def stage_config(
    model: type[M],
    path: str | Path | None,
    sections: str | Sequence[str],
    overrides: Mapping[str, Any] | None = None,
    *,
    inherit: Mapping[str, str] | None = None,
    what: str | None = None,
    flag_names: Mapping[str, str] | None = None,
) -> M:
    """The stage's config: its section of ``path`` (if given), then ``overrides`` (None values ignored).

    ``overrides`` are ``{field: value}`` from the flags given (see :func:`flag_values`); ``inherit``: see
    :func:`read_stage_section`; ``flag_names`` (field -> flag) name the flag in the hint of a missing
    field. Raises ``ValueError`` naming the file (or the command line) and each offending field.
    """
    names = [sections] if isinstance(sections, str) else list(sections)
    values: dict[str, Any] = {}
    prefix = names[0] if names else ""
    if path is not None:
        values, prefix = read_stage_section(path, names, model, inherit)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    values.update(given)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        where = str(path) if path is not None else _COMMAND_LINE
        raise ValueError(
            format_validation_error(
                exc, where, what or (names[0] if names else "stage"), prefix, given, flag_names
            )
        ) from None
