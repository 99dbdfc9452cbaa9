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
    domains: Sequence[str],
    general_share: float = 0.0,
    general: str = "general",
    caps: Sequence[float] | None = None,
) -> pd.DataFrame:
    """The components' ratios table: one row ``component-<domain>`` per domain (columns = ``domains``).

    With ``general_share`` > 0 every component but the general one holds that share of ``general``.
    ``caps`` (per domain, the most weight its data can fill at the proxy budget and the epochs cap) keep a
    component feasible: a domain too small for its share gives the rest to ``general`` (or, for the general
    component or when general is full too, to the other domains in proportion to their spare caps). The
    merged proxies and MixMin use these rows as they are, so the components need not be pure.
    """
    if not 0.0 <= general_share < 1.0:
        raise ValueError(f"general_share must be in [0, 1), got {general_share}")
    if general_share > 0 and general not in domains:
        raise ValueError(f"general_share needs the general domain {general!r} among {list(domains)}")
    cap = (
        {d: 1.0 for d in domains}
        if caps is None
        else {d: float(c) for d, c in zip(domains, caps, strict=True)}
    )
    if sum(cap.values()) < 1.0 - 1e-9:
        raise ValueError(
            f"the domains' caps sum to {sum(cap.values()):.4f} < 1: no component fits the budget"
        )
    rows = {}
    for d in domains:
        row = dict.fromkeys(domains, 0.0)
        if general_share > 0 and d != general:
            row[general] = min(general_share, cap[general])
        row[d] = min(1.0 - sum(row.values()), cap[d])
        rest = 1.0 - sum(row.values())
        if rest > 1e-12 and general in domains and d != general:
            extra = min(rest, cap[general] - row[general])
            row[general] += extra
            rest -= extra
        if rest > 1e-12:
            spare = {k: cap[k] - row[k] for k in domains if cap[k] - row[k] > 0}
            total = sum(spare.values())
            for k, v in spare.items():
                row[k] += rest * v / total
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
