"""Join a swarm's ratios and metrics tables and build target vectors (a column, a sum, a weighted sum)."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from mixlab.regression.config import Target, guess_direction

log = logging.getLogger(__name__)

#: Metric columns that are never targets.
NON_METRIC_COLUMNS = ("status", "error")


def default_targets(metrics: pd.DataFrame) -> list[Target]:
    """One column target per numeric metric column (stderr columns and status/error excluded)."""
    out = []
    for col in metrics.columns:
        if (
            col in NON_METRIC_COLUMNS
            or col.endswith("_stderr")
            or not pd.api.types.is_numeric_dtype(metrics[col])
        ):
            continue
        out.append(Target(name=col, columns=[col], direction=guess_direction(col)))
    return out


def target_values(metrics: pd.DataFrame, target: Target, source: str = "metrics") -> pd.Series:
    """The target's value per run (NaN where any needed column is missing for that run)."""
    missing = [c for c in target.columns if c not in metrics.columns]
    if missing:
        available = [c for c in metrics.columns if c not in NON_METRIC_COLUMNS]
        raise ValueError(
            f"{source}: target {target.name!r} needs column(s) {missing} not in the table "
            f"(available: {', '.join(available) or 'none'})"
        )
    values = metrics[target.columns].apply(pd.to_numeric, errors="coerce")
    if target.kind == "column":
        series = values[target.columns[0]]
    elif target.kind == "sum":
        series = values.sum(axis=1, min_count=len(target.columns))
    else:
        weights = pd.Series({c: (target.weights or {}).get(c, 0.0) for c in target.columns})
        series = (values * weights).sum(axis=1, min_count=len(target.columns))
        series[values.isna().any(axis=1)] = np.nan
    return series.rename(target.name).astype(float)


def align_swarm(
    ratios: pd.DataFrame,
    metrics: pd.DataFrame,
    ratios_source: str = "ratios",
    metrics_source: str = "metrics",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of both tables for the runs they share, in the ratios table's order; failed runs dropped (counted).

    Runs present in only one table, and runs whose ``status`` is not ``ok``, are reported in a warning, never
    dropped silently.
    """
    metrics = metrics.copy()
    ratios = ratios.copy()
    ratios.index = ratios.index.astype(str)
    metrics.index = metrics.index.astype(str)
    if "status" in metrics.columns:
        status = metrics["status"].fillna("ok").astype(str).str.strip().str.lower()
        failed = status != "ok"
        if failed.any():
            warnings.warn(
                f"{metrics_source}: {int(failed.sum())} run(s) not 'ok' (e.g. {metrics.index[failed][0]!r}) excluded",
                stacklevel=2,
            )
            metrics = metrics[~failed]
    only_ratios = ratios.index.difference(metrics.index)
    only_metrics = metrics.index.difference(ratios.index)
    if len(only_metrics):
        warnings.warn(
            f"{metrics_source}: {len(only_metrics)} run(s) have metrics but no mixture in {ratios_source} "
            f"(e.g. {only_metrics[0]!r}); excluded",
            stacklevel=2,
        )
    if len(only_ratios):
        log.info("%s: %d run(s) without (ok) metrics are not fitted", ratios_source, len(only_ratios))
    shared = [r for r in ratios.index if r in metrics.index]
    if not shared:
        raise ValueError(f"{ratios_source} and {metrics_source} share no run ids")
    return ratios.loc[shared], metrics.loc[shared]
