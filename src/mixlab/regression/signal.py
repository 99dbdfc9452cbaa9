"""Signal and noise of every proxy metric, and the choice of the metric each objective is fitted on.

A metric can steer a mixture search only if it varies more between mixtures than between two trainings of
one mixture, and if that variation is predictable from the weights. Following "Signal and Noise"
(Heineman et al., 2025) and DataDecide (2025), each metric of a swarm gets:

* ``noise``: the spread across seeds of one mixture, the pooled within-mixture standard deviation over the
  mixtures that were trained more than once (repeats: identical rows of ``ratios.csv``);
* ``signal``: the spread across mixtures, the standard deviation of the per-mixture means;
* ``snr`` = signal / noise (NaN without repeats);
* ``oof_spearman``: the Spearman correlation of a regressor's out-of-fold predictions with the measured
  per-mixture means (K-fold over distinct mixtures, so repeats never sit on both sides of a split).

An objective (a task, or the total over tasks) then uses the candidate metric with the best evidence: the
highest out-of-fold Spearman among the metrics whose SNR passes the threshold (all of them when no repeats
were run), unless the user names a metric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mixlab.regression.validation import cv_predictions, score_predictions

__all__ = [
    "DIRECTIONS",
    "SCREENED",
    "MetricEvidence",
    "choose_metric",
    "collapse_repeats",
    "mixture_groups",
    "objective_columns",
    "signal_table",
]

#: Direction of each task metric a swarm's ``metrics.csv`` may hold (the evaluation's registry, repeated
#: here because regression must not import later stages; ``tests`` check the two agree).
DIRECTIONS: dict[str, str] = {
    "acc": "max",
    "acc_norm": "max",
    "acc_bytes": "max",
    "gold_bpb": "min",
    "correct_prob": "max",
    "margin": "max",
}


#: Metrics screened by default: acc_bytes is left out (it equals acc_norm on ASCII choices).
SCREENED = ("acc", "acc_norm", "gold_bpb", "correct_prob", "margin")


def mixture_groups(ratios: pd.DataFrame, decimals: int = 9) -> pd.Series:
    """Run id -> the id of the first run with the identical mixture (itself when the mixture is unique)."""
    keys = [tuple(row) for row in np.round(ratios.to_numpy(dtype=np.float64), decimals)]
    first: dict[tuple[float, ...], str] = {}
    out = []
    for run, key in zip(ratios.index, keys, strict=True):
        out.append(first.setdefault(key, str(run)))
    return pd.Series(out, index=ratios.index, name="mixture")


def collapse_repeats(ratios: pd.DataFrame, metrics: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per distinct mixture: its first run's weights and the mean of its runs' numeric metrics.

    ``ratios`` and ``metrics`` must be aligned on the same run ids. Runs with NaN in a column are left out
    of that column's mean.
    """
    groups = mixture_groups(ratios)
    numeric = metrics.select_dtypes(include="number")
    means = numeric.groupby(groups.reindex(numeric.index)).mean()
    unique = ratios.loc[groups.index == groups.to_numpy()]
    return unique, means.reindex(unique.index)


def objective_columns(metrics: pd.DataFrame, tasks: Sequence[str], metric: str) -> list[str]:
    """The ``<task>/<metric>`` columns of ``metrics`` for every task (KeyError naming a missing one)."""
    cols = [f"{t}/{metric}" for t in tasks]
    missing = [c for c in cols if c not in metrics.columns]
    if missing:
        raise KeyError(f"metrics table has no column(s) {missing}")
    return cols


@dataclass(frozen=True)
class MetricEvidence:
    """How well one metric (of one objective) can rank mixtures."""

    objective: str
    metric: str
    direction: str
    signal: float
    noise: float
    snr: float
    oof_spearman: float
    n_mixtures: int
    n_repeated: int

    def as_dict(self) -> dict[str, float | int | str]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _noise(values: pd.Series, groups: pd.Series) -> tuple[float, int]:
    """Pooled within-group standard deviation (ddof 1) and the number of groups with >= 2 runs."""
    ss, dof, n_groups = 0.0, 0, 0
    for _, v in values.groupby(groups.reindex(values.index)):
        v = v.dropna()
        if len(v) < 2:
            continue
        ss += float(((v - v.mean()) ** 2).sum())
        dof += len(v) - 1
        n_groups += 1
    if not dof:
        return math.nan, n_groups
    noise = math.sqrt(ss / dof)
    scale = float(values.abs().max()) if len(values) else 0.0
    return (0.0 if noise <= 1e-9 * max(scale, 1e-12) else noise), n_groups  # float round-off is no noise


def objective_series(metrics: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """The objective's value per run: the column itself, or the sum of the columns (NaN if any is NaN)."""
    return metrics[list(columns)].sum(axis=1, min_count=len(columns))


def evidence(
    ratios: pd.DataFrame,
    metrics: pd.DataFrame,
    objective: str,
    metric: str,
    columns: Sequence[str],
    model: str = "gp",
    folds: int = 5,
    seed: int = 0,
) -> MetricEvidence:
    """Signal, noise, SNR and out-of-fold Spearman of one objective measured with one metric."""
    groups = mixture_groups(ratios)
    per_run = objective_series(metrics.loc[ratios.index], columns)
    noise, n_rep = _noise(per_run, groups)
    means = per_run.groupby(groups).mean().dropna()
    signal = float(means.std(ddof=1)) if len(means) > 1 else math.nan
    snr = signal / noise if noise and not math.isnan(noise) and noise > 0 else math.nan
    if noise == 0 and signal > 0:
        snr = math.inf
    oof_rho = math.nan
    n_folds = min(folds, len(means))
    if len(means) >= 3 and np.ptp(means.to_numpy()) > 0:
        X = ratios.loc[means.index].to_numpy(dtype=np.float64)
        pred = cv_predictions(model, X, means.to_numpy(dtype=np.float64), folds=n_folds, seed=seed)
        oof_rho = score_predictions(means.to_numpy(), pred)["spearman"]
    return MetricEvidence(
        objective=objective,
        metric=metric,
        direction=DIRECTIONS.get(metric, "max"),
        signal=signal,
        noise=noise,
        snr=snr,
        oof_spearman=float(oof_rho),
        n_mixtures=len(means),
        n_repeated=n_rep,
    )


def signal_table(
    ratios: pd.DataFrame,
    metrics: pd.DataFrame,
    tasks: Sequence[str],
    metrics_to_try: Sequence[str] = SCREENED,
    model: str = "gp",
    folds: int = 5,
    seed: int = 0,
    total: bool = True,
) -> pd.DataFrame:
    """Evidence of every (objective, metric) pair present in ``metrics``: each task, and ``total`` (the sum).

    ``ratios`` and ``metrics`` are aligned on run ids (failed runs removed beforehand). One row per pair.
    """
    rows = []
    common = [r for r in ratios.index if r in metrics.index]
    ratios, metrics = ratios.loc[common], metrics.loc[common]
    for metric in metrics_to_try:
        present = [t for t in tasks if f"{t}/{metric}" in metrics.columns]
        for task in present:
            rows.append(evidence(ratios, metrics, task, metric, [f"{task}/{metric}"], model, folds, seed))
        if total and len(present) == len(tasks) and len(tasks) > 1:
            cols = objective_columns(metrics, tasks, metric)
            rows.append(evidence(ratios, metrics, "total", metric, cols, model, folds, seed))
    if not rows:
        raise ValueError(
            f"no <task>/<metric> columns for tasks {list(tasks)} and metrics {list(metrics_to_try)}"
        )
    return pd.DataFrame([r.as_dict() for r in rows])


def choose_metric(
    table: pd.DataFrame, objective: str, min_snr: float = 1.0, preferred: str | None = None
) -> str:
    """The metric with the best evidence for ``objective`` (or ``preferred`` when given and measured).

    Best evidence: the highest out-of-fold Spearman among metrics whose SNR is at least ``min_snr``; SNR
    that could not be measured (no repeats) does not exclude a metric. If every metric fails the SNR
    threshold, the highest out-of-fold Spearman overall.
    """
    rows = table[table["objective"] == objective]
    if rows.empty:
        raise KeyError(f"no evidence for objective {objective!r}")
    if preferred is not None:
        if preferred not in set(rows["metric"]):
            raise KeyError(
                f"objective {objective!r} has no metric {preferred!r} (have {sorted(rows['metric'])})"
            )
        return preferred
    snr = rows["snr"].astype(float)
    passing = rows[snr.isna() | (snr >= min_snr)]
    pool = passing if not passing.empty else rows
    rho = pool["oof_spearman"].astype(float).fillna(-np.inf)
    return str(pool.loc[rho.idxmax(), "metric"])
