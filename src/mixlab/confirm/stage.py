"""Confirmation: train the optimum and the obvious alternatives with several seeds and compare them.

Arms are mixtures: ``optimal`` (the total objective's optimum), ``natural`` (token proportions),
``uniform``, ``best_swarm`` (the swarm's best measured mixture), ``optimal_<task>`` (each task's own
optimum) and ``base`` (the untrained base model, the challenge's "before"). Each mixture arm is trained
with ``seeds`` seeds as runs ``<arm>``, ``<arm>-seed1``, ... (selection and training seeds both move).

:func:`summarise` turns the per-item evaluation files of those runs into ``confirm.json``:

* ``arms``: per arm, per metric, per task and ``total``: ``mean`` and the per-seed ``values``;
* ``comparisons``: per arm, per baseline (``natural``, ``uniform``, ``best_swarm``, ``base``, ``optimal``),
  per metric, per task and ``total``: ``diff``, ``low``, ``high`` of the 95% paired-bootstrap interval;
* ``challenge_score``: S = after - before (the base model) per task and summed, on ``acc`` and
  ``acc_norm``, as the challenge ranks entries;
* ``verdicts`` and a one-line ``headline``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mixlab.confirm.stats import Interval, PairedBootstrap
from mixlab.jsonl import read_jsonl_objects
from mixlab.regression.signal import DIRECTIONS

__all__ = [
    "BASELINES",
    "arm_runs",
    "confirm_ratios",
    "read_item_scores",
    "summarise",
    "verdict_line",
]

#: Arms every other arm is compared with (when present).
BASELINES = ("natural", "uniform", "best_swarm", "base", "optimal")


def arm_runs(arm: str, seeds: int) -> list[str]:
    """Run ids of an arm: ``<arm>`` then ``<arm>-seed1`` ... (the swarm's repeat naming)."""
    return [arm] + [f"{arm}-seed{k}" for k in range(1, seeds)]


def confirm_ratios(
    arms: Mapping[str, Mapping[str, float]], domains: Sequence[str], seeds: int
) -> pd.DataFrame:
    """The confirmation swarm's ``ratios`` table: every mixture arm once per seed."""
    rows = {
        run: [float(w.get(d, 0.0)) for d in domains]
        for arm, w in arms.items()
        for run in arm_runs(arm, seeds)
    }
    df = pd.DataFrame.from_dict(rows, orient="index", columns=list(domains))
    df.index.name = "run"
    return df


def read_item_scores(
    eval_dir: str | Path, tasks: Sequence[str], metrics: Sequence[str]
) -> dict[str, dict[str, np.ndarray]]:
    """Per task and metric the per-item values of one run (``<eval_dir>/<task>.jsonl``), in item order."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for task in tasks:
        path = Path(eval_dir) / f"{task}.jsonl"
        if not path.exists():
            raise FileNotFoundError(f"{path}: per-item results of task {task!r} are missing")
        records = read_jsonl_objects(path)
        records.sort(key=lambda r: r["doc_index"])
        out[task] = {
            m: np.array([math.nan if r.get(m) is None else float(r[m]) for r in records], dtype=np.float64)
            for m in metrics
        }
    return out


def _direction(metric: str) -> str:
    return DIRECTIONS.get(metric, "max")


def verdict_line(arm: str, baseline: str, metric: str, what: str, iv: Interval) -> str:
    """A verdict in words, with the gain signed so that a positive number is always better.

    E.g. ``optimal beats natural by +0.090 [+0.050, +0.130] higher summed acc_norm (95%)`` or, for a metric
    where lower is better, ``optimal beats natural by 0.342 [0.097, 0.686] lower summed gold_bpb (95%)``.
    An interval that contains zero gives ``cannot be told from``, with the signed difference arm - baseline.
    """
    higher = _direction(metric) == "max"
    if not iv.excludes_zero():
        span = f"{iv.diff:+.3f} [{iv.low:+.3f}, {iv.high:+.3f}] on {what}, arm - baseline (95%)"
        return f"{arm} cannot be told from {baseline}: {span}"
    size, low, high = abs(iv.diff), min(abs(iv.low), abs(iv.high)), max(abs(iv.low), abs(iv.high))
    better = iv.diff > 0 if higher else iv.diff < 0
    side = "higher" if iv.diff > 0 else "lower"
    verb = "beats" if better else "is worse than"
    return f"{arm} {verb} {baseline} by {size:.3f} [{low:.3f}, {high:.3f}] {side} {what} (95%)"


def summarise(
    runs_of: Mapping[str, Sequence[str]],
    scores: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]],
    tasks: Sequence[str],
    metrics: Sequence[str],
    headline_metrics: Mapping[str, str],
    weights: Mapping[str, Mapping[str, float]] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    baselines: Sequence[str] = BASELINES,
) -> dict[str, Any]:
    """Everything of ``confirm.json`` from per-run item scores.

    ``runs_of``: arm -> its run ids (runs that failed are simply absent from ``scores``); ``scores``: run ->
    task -> metric -> per-item values; ``headline_metrics``: objective (``total`` or a task) -> the metric
    its optimum was chosen on; ``baselines``: the arms every other arm is compared with (when present).
    """
    arms = {a: [r for r in runs if r in scores] for a, runs in runs_of.items()}
    missing = [a for a, runs in arms.items() if not runs]
    if missing:
        raise ValueError(f"no finished run for arm(s) {missing}")
    n_seeds = max(len(r) for r in arms.values())
    uneven = [a for a, r in arms.items() if len(r) not in (1, n_seeds)]
    if uneven:  # a failed seed: compare on the seeds every multi-seed arm has
        n_seeds = min(len(r) for r in arms.values() if len(r) > 1)
        arms = {a: (r if len(r) == 1 else r[:n_seeds]) for a, r in arms.items()}

    def matrix(arm: str, task: str, metric: str) -> np.ndarray:
        return np.vstack([scores[r][task][metric] for r in arms[arm]])

    # items with a NaN in any arm (e.g. the margin of a one-choice item) are left out of that metric
    keep = {
        (t, m): ~np.isnan(np.vstack([matrix(a, t, m) for a in arms])).any(axis=0)
        for t in tasks
        for m in metrics
    }

    arm_table: dict[str, Any] = {}
    for arm in arms:
        entry: dict[str, Any] = {"runs": arms[arm]}
        if weights and arm in weights:
            entry["weights"] = dict(weights[arm])
        for m in metrics:
            per_task = {t: matrix(arm, t, m)[:, keep[(t, m)]].mean(axis=1) for t in tasks}
            entry[m] = {
                t: {"mean": float(v.mean()), "values": [float(x) for x in v]} for t, v in per_task.items()
            }
            total = np.sum([v for v in per_task.values()], axis=0)
            entry[m]["total"] = {"mean": float(total.mean()), "values": [float(x) for x in total]}
        arm_table[arm] = entry

    # one plan per metric (items dropped for NaN differ between metrics)
    comparisons: dict[str, Any] = {}
    for m in metrics:
        sub = PairedBootstrap({t: int(keep[(t, m)].sum()) for t in tasks}, n_seeds, n_boot=n_boot, seed=seed)
        for arm in arms:
            for base in baselines:
                if base == arm or base not in arms:
                    continue
                a = {t: matrix(arm, t, m)[:, keep[(t, m)]] for t in tasks}
                b = {t: matrix(base, t, m)[:, keep[(t, m)]] for t in tasks}
                row = {t: sub.diff(t, a[t], b[t]).as_dict() for t in tasks}
                row["total"] = sub.diff_total(a, b).as_dict()
                comparisons.setdefault(arm, {}).setdefault(base, {})[m] = row

    challenge: dict[str, Any] = {}
    if "base" in arms:
        for arm in arms:
            if arm == "base":
                continue
            challenge[arm] = {m: comparisons[arm]["base"][m] for m in ("acc", "acc_norm") if m in metrics}

    verdicts: list[str] = []
    total_metric = headline_metrics.get("total", "acc")
    if "optimal" in arms:
        for base in ("natural", "uniform", "best_swarm"):
            if base not in arms:
                continue
            for m in dict.fromkeys([total_metric, "acc"]):
                if m in metrics:
                    iv = Interval(**comparisons["optimal"][base][m]["total"])
                    verdicts.append(verdict_line("optimal", base, m, f"summed {m}", iv))
    for task in tasks:
        arm = f"optimal_{task}"
        if arm in arms and "optimal" in arms:
            m = headline_metrics.get(task, "acc")
            for metric in dict.fromkeys([m, "acc"]):
                if metric in metrics:
                    iv = Interval(**comparisons[arm]["optimal"][metric][task])
                    verdicts.append(verdict_line(arm, "optimal", metric, f"{task} {metric}", iv))
    headline = _headline(comparisons, arms, total_metric)
    return {
        "seeds": n_seeds,
        "tasks": list(tasks),
        "metrics": list(metrics),
        "objective_metrics": dict(headline_metrics),
        "arms": arm_table,
        "comparisons": comparisons,
        "challenge_score": challenge,
        "verdicts": verdicts,
        "headline": headline,
    }


def _headline(comparisons: Mapping[str, Any], arms: Mapping[str, Any], metric: str) -> str:
    if "optimal" not in arms:
        return "no optimum was confirmed"
    parts = []
    for base in ("natural", "uniform", "best_swarm"):
        if base in arms and metric in comparisons["optimal"].get(base, {}):
            iv = Interval(**comparisons["optimal"][base][metric]["total"])
            parts.append(verdict_line("optimal", base, metric, f"summed {metric}", iv))
    return "; ".join(parts) if parts else "no baseline was confirmed"
