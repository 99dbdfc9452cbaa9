"""CLI: ``mixlab signal RATIOS METRICS`` - signal, noise and out-of-fold Spearman of every proxy metric."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from mixlab.evaluation.config import EvalConfig
from mixlab.pool.pool import atomic_write_text
from mixlab.regression.command import FIT_INHERIT
from mixlab.regression.config import FitConfig
from mixlab.regression.models import MODEL_NAMES
from mixlab.regression.signal import DIRECTIONS, SCREENED, choose_metric, signal_table
from mixlab.regression.targets import align_swarm
from mixlab.stage_config import add_config_argument, flag_values, stage_config


def tasks_in(metrics: pd.DataFrame) -> list[str]:
    """Task names of a metrics table: prefixes of ``<task>/<metric>`` columns for known task metrics."""
    tasks: list[str] = []
    for col in metrics.columns:
        if "/" not in str(col):
            continue
        task, metric = str(col).rsplit("/", 1)
        if metric in DIRECTIONS and task not in ("loss", "bpb") and task not in tasks:
            tasks.append(task)
    return tasks


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def format_table(table: pd.DataFrame, chosen: dict[str, str]) -> str:
    """The evidence table as aligned text, the chosen metric of each objective marked with ``*``."""
    lines = [
        (
            f"{'objective':<18} {'metric':<13} {'dir':<4} {'signal':>9} {'noise':>9} {'snr':>7} "
            f"{'oof_rho':>8} {'mix':>4} {'rep':>4}"
        )
    ]
    for _, r in table.iterrows():
        mark = "*" if chosen.get(str(r["objective"])) == r["metric"] else " "
        lines.append(
            f"{r['objective']:<18} {mark}{r['metric']:<12} {r['direction']:<4} {_fmt(r['signal']):>9} "
            f"{_fmt(r['noise']):>9} {_fmt(r['snr']):>7} {_fmt(r['oof_spearman']):>8} "
            f"{int(r['n_mixtures']):>4} {int(r['n_repeated']):>4}"
        )
    return "\n".join(lines)


def _cmd_signal(args: argparse.Namespace) -> int:
    from mixlab.swarm import read_metrics, read_ratios

    ratios, metrics = align_swarm(
        read_ratios(args.ratios), read_metrics(args.metrics), args.ratios, args.metrics
    )
    ev = stage_config(EvalConfig, args.config, "evaluation", {"signal_model": args.model})
    fit = stage_config(
        FitConfig,
        args.config,
        "fit",
        flag_values(args, {"folds": "cv_folds", "seed": "seed"}),
        inherit=FIT_INHERIT,
    )
    tasks = args.tasks.split(",") if args.tasks else (list(ev.tasks) or tasks_in(metrics))
    if not tasks:
        raise ValueError(f"{args.metrics}: no <task>/<metric> columns")
    wanted = args.metrics_to_try.split(",") if args.metrics_to_try else list(SCREENED)
    table = signal_table(
        ratios, metrics, tasks, wanted, model=ev.signal_model, folds=fit.cv_folds, seed=fit.fold_seed
    )
    objectives = list(dict.fromkeys(table["objective"]))
    chosen = {o: choose_metric(table, o, min_snr=args.min_snr) for o in objectives}
    print(format_table(table, chosen))
    print("* = the metric with the best evidence (highest out-of-fold Spearman among those passing the SNR)")
    if args.out:
        out = Path(args.out)
        table = table.assign(
            chosen=[chosen[o] == m for o, m in zip(table["objective"], table["metric"], strict=True)]
        )
        atomic_write_text(out, table.to_csv(index=False))
        print(f"wrote {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``mixlab signal``."""
    p = sub.add_parser(
        "signal",
        help="signal, noise, SNR and out-of-fold Spearman of every proxy metric of a swarm",
        description=(
            "For every task and the total over tasks, and every metric (acc, acc_norm, gold_bpb, "
            "correct_prob, margin, ...): the spread across mixtures (signal), the spread across seeds of "
            "repeated mixtures (noise), their ratio, and the out-of-fold Spearman of a regressor."
        ),
    )
    p.add_argument("ratios", help="ratios.csv (repeated mixtures are identical rows)")
    p.add_argument("metrics", help="metrics.csv with <task>/<metric> columns")
    p.add_argument("--tasks", default=None, help="comma-separated task names (default: every task found)")
    p.add_argument(
        "--metrics-to-try",
        default=None,
        help="comma-separated metric names (default: acc, acc_norm, gold_bpb, correct_prob, margin)",
    )
    add_config_argument(p, "evaluation", "fit")
    p.add_argument(
        "--model",
        default=None,
        choices=MODEL_NAMES,
        help="regressor for the out-of-fold Spearman (default: evaluation.signal_model, gp)",
    )
    p.add_argument(
        "--folds", type=int, default=None, help="cross-validation folds over distinct mixtures (default 5)"
    )
    p.add_argument(
        "--seed", type=int, default=None, help="seed of the fold split and the regressor (default 0)"
    )
    p.add_argument("--min-snr", type=float, default=1.0, help="SNR a metric needs to be chosen")
    p.add_argument("--out", default=None, help="write the table as CSV")
    p.set_defaults(func=_cmd_signal)
