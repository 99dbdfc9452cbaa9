"""Components: one proxy per domain, the building blocks of merged proxies and of MixMin.

A component is an ordinary swarm run whose mixture is one domain, or, with ``general_share`` s > 0 (DeMix
trains components on 50% general data), ``s * general + (1 - s) * domain``. Components are trained by the
swarm runner (:func:`mixlab.proxies.swarm.run_swarm`) from a ratios table of such rows named
``component-<domain>``, so they get the same recipe, executor, resumability and failure records as a swarm.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mixlab.proxies.trainer import TRAIN_LOG

__all__ = [
    "COMPONENT_PREFIX",
    "component_dirs",
    "component_domain",
    "component_table",
    "train_seconds",
]

COMPONENT_PREFIX = "component-"


def component_table(
    domains: Sequence[str], general_share: float = 0.0, general: str = "general"
) -> pd.DataFrame:
    """The components' ratios table: one row ``component-<domain>`` per domain (columns = ``domains``).

    With ``general_share`` > 0 every component but the general one holds that share of ``general``.
    """
    if not 0.0 <= general_share < 1.0:
        raise ValueError(f"general_share must be in [0, 1), got {general_share}")
    if general_share > 0 and general not in domains:
        raise ValueError(f"general_share needs the general domain {general!r} among {list(domains)}")
    rows = {}
    for d in domains:
        row = dict.fromkeys(domains, 0.0)
        if general_share > 0 and d != general:
            row[general] = general_share
            row[d] = 1.0 - general_share
        else:
            row[d] = 1.0
        rows[f"{COMPONENT_PREFIX}{d}"] = row
    df = pd.DataFrame.from_dict(rows, orient="index", columns=list(domains))
    df.index.name = "run"
    return df


def component_domain(run: str) -> str:
    """``component-<domain>`` -> ``<domain>``."""
    if not run.startswith(COMPONENT_PREFIX):
        raise ValueError(f"{run!r} is not a component run id")
    return run[len(COMPONENT_PREFIX) :]


def component_dirs(out_dir: str | Path, table: pd.DataFrame, metrics: pd.DataFrame) -> dict[str, Path]:
    """Domain -> run folder of every component whose run finished ok; an error names the missing ones."""
    status = metrics.get("status", pd.Series("ok", index=metrics.index)).fillna("ok").astype(str)
    ok = {str(r) for r in metrics.index[status == "ok"]}
    missing = [r for r in table.index if r not in ok]
    if missing:
        raise RuntimeError(
            f"component run(s) {missing} did not finish (see {Path(out_dir) / 'metrics.csv'} and their "
            "error.log); every domain needs its component"
        )
    return {component_domain(str(r)): Path(out_dir) / "runs" / str(r) for r in table.index}


def train_seconds(run_dirs: Sequence[str | Path]) -> float:
    """Sum of the training-loop seconds recorded in the runs' ``train_log.json`` (NaN if one is missing)."""
    total = 0.0
    for run_dir in run_dirs:
        path = Path(run_dir) / TRAIN_LOG
        if not path.exists():
            return math.nan
        total += float(json.loads(path.read_text(encoding="utf-8")).get("seconds", math.nan))
    return total
