"""Read a mixture to select for: a mixture/optimal JSON file, or one run of a ``ratios.csv``.

Accepted JSON layouts:

- ``{"weights": {domain: w}, ...}`` (a search stage ``optimal.json`` / ``optimal_<name>.json``);
- ``{"objectives": {NAME: {"weights": {...}}, ...}, "chosen": NAME}`` (several optima, one chosen);
- a plain ``{domain: w}`` mapping.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mixlab.swarm import read_ratios


class MixtureFileError(ValueError):
    """A mixture file is missing, malformed or names no usable weights."""


def _weights(obj: Any, where: str) -> dict[str, float]:
    if not isinstance(obj, dict) or not obj:
        raise MixtureFileError(f"{where}: weights must be a non-empty {{domain: weight}} mapping")
    out: dict[str, float] = {}
    for d, w in obj.items():
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            raise MixtureFileError(
                f"{where}: weight of domain {d!r} must be a non-negative number, got {w!r}"
            )
        out[str(d)] = float(w)
    total = sum(out.values())
    if total <= 0:
        raise MixtureFileError(f"{where}: weights sum to zero")
    return {d: w / total for d, w in out.items()}


def load_mixture_file(path: str | Path, objective: str | None = None) -> dict[str, float]:
    """Weights (normalised to sum 1) from a mixture or optimal JSON file; ``objective`` picks one optimum."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: mixture file does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MixtureFileError(f"{p}: line {exc.lineno}: invalid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise MixtureFileError(f"{p}: expected a JSON object")
    if "objectives" in data:
        objectives = data["objectives"]
        if not isinstance(objectives, dict) or not objectives:
            raise MixtureFileError(f"{p}: 'objectives' must be a non-empty mapping")
        name = objective or data.get("chosen")
        if name is None:
            if len(objectives) != 1:
                raise MixtureFileError(
                    f"{p}: several objectives ({', '.join(objectives)}) and no 'chosen'; pass --objective"
                )
            name = next(iter(objectives))
        if name not in objectives:
            raise MixtureFileError(f"{p}: no objective {name!r} (have: {', '.join(objectives)})")
        entry = objectives[name]
        return _weights(entry.get("weights") if isinstance(entry, dict) else None, f"{p}: objectives.{name}")
    if objective is not None:
        raise MixtureFileError(f"{p}: --objective {objective!r} given but the file has no 'objectives'")
    if "weights" in data:
        return _weights(data["weights"], f"{p}: weights")
    return _weights(data, str(p))


def load_ratios_run(path: str | Path, run: str) -> dict[str, float]:
    """Weights of run ``run`` in a ``ratios.csv`` swarm table."""
    ratios = read_ratios(path)
    if run not in ratios.index:
        shown = ", ".join(list(ratios.index[:8]))
        raise MixtureFileError(f"{path}: no run {run!r} (runs: {shown}{', ...' if len(ratios) > 8 else ''})")
    row = ratios.loc[run]
    return {str(d): float(w) for d, w in row.items() if w > 0}
