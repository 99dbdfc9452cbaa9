"""CLI: ``mixlab fit`` - fit regressors from a swarm's mixtures to its metrics, cross-validate, predict."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pandas as pd

from mixlab.pool.pool import atomic_write_text
from mixlab.regression.config import FitConfig, Target
from mixlab.regression.models import MODEL_NAMES
from mixlab.regression.targets import default_targets
from mixlab.stage_config import add_config_argument, flag_values, stage_config

#: Flags of ``fit`` and ``search`` (argparse dest) -> FitConfig fields.
FIT_FLAGS = {"model": "model", "cv": "cv_folds", "seed": "seed"}
#: Keys of a pipeline YAML that fill FitConfig fields its ``fit`` section leaves unset.
FIT_INHERIT = {"seed": "seed"}


def fit_config_from_args(args: argparse.Namespace) -> FitConfig:
    """The ``fit`` section of ``--config`` (a pipeline's seed included) with the flags given on top."""
    return stage_config(FitConfig, args.config, "fit", flag_values(args, FIT_FLAGS), inherit=FIT_INHERIT)


def targets_from_args(
    args: argparse.Namespace, metrics: pd.DataFrame, configured: list[Target] | None = None
) -> list[Target]:
    """Targets named by ``--target`` / ``--sum-of`` (``--name``), with ``--direction``; else the config's
    ``targets``; else every metric."""
    targets = [Target.column(col, direction=args.direction) for col in (args.target or [])]
    for i, spec in enumerate(args.sum_of or []):
        cols = [c.strip() for c in spec.split(",") if c.strip()]
        if not cols:
            raise ValueError(f"--sum-of {spec!r}: no columns")
        names = args.name or []
        name = names[i] if i < len(names) else ("total" if i == 0 else f"total{i + 1}")
        targets.append(Target.sum_of(cols, name=name, direction=args.direction))
    if not targets and configured:
        targets = list(configured)
    if not targets:
        targets = default_targets(metrics)
        if args.direction:
            targets = [t.model_copy(update={"direction": args.direction}) for t in targets]
    return targets


def add_swarm_args(p: argparse.ArgumentParser, *sections: str) -> None:
    """Arguments shared by ``fit`` and ``search``: the swarm tables, targets, model choice and ``--config``."""
    p.add_argument("--ratios", required=True, help="ratios.csv: run id column + one weight column per domain")
    p.add_argument("--metrics", required=True, help="metrics.csv: run id column + metric columns")
    add_config_argument(p, *(sections or ("fit",)))
    p.add_argument(
        "--target", action="append", help="metric column to fit (repeatable; default: every metric)"
    )
    p.add_argument("--sum-of", action="append", metavar="COL1,COL2", help="fit the sum of these columns")
    p.add_argument("--name", action="append", help="name of the --sum-of target (default 'total')")
    p.add_argument(
        "--direction", choices=["min", "max"], help="min for losses, max for accuracies (default: guessed)"
    )
    p.add_argument(
        "--model", default=None, choices=MODEL_NAMES, help="regressor, or auto = choose by CV (default auto)"
    )
    p.add_argument("--cv", type=int, default=None, help="cross-validation folds (default 5)")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of CV folds and models (default: the pipeline's seed, else 0)",
    )


def fit_from_args(args: argparse.Namespace):
    """Read the swarm named by the arguments and fit its targets (settings: ``fit`` of ``--config``, flags)."""
    from mixlab.regression.fit import fit_targets
    from mixlab.swarm import read_metrics, read_ratios

    cfg = fit_config_from_args(args)
    ratios = read_ratios(args.ratios)
    metrics = read_metrics(args.metrics)
    targets = targets_from_args(args, metrics, cfg.targets)
    return fit_targets(
        ratios,
        metrics,
        targets,
        model=cfg.model,
        folds=cfg.cv_folds,
        seed=cfg.fold_seed,
        candidates=cfg.candidates,
        metric=cfg.selection_metric,
        sources={"ratios": str(args.ratios), "metrics": str(args.metrics)},
    )


def write_predictions(result, mixtures_path: str | Path, out: str | Path) -> pd.DataFrame:
    """Score the mixtures of ``mixtures_path`` with every fitted target; write a CSV keyed by its id column.

    With one target the columns are ``<id column>, prediction``; with several, ``prediction/<target>`` each.
    """
    from mixlab.swarm import read_ratios

    mixtures = read_ratios(mixtures_path)
    X = result.align(mixtures, source=str(mixtures_path))
    df = pd.DataFrame(index=mixtures.index)
    if len(result.models) == 1:
        df["prediction"] = result.predict(X)
    else:
        for name in result.models:
            df[f"prediction/{name}"] = result.predict(X, name)
    buf = io.StringIO()
    df.to_csv(buf, float_format="%.8g")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(out), buf.getvalue())
    return df


def _cmd_fit(args: argparse.Namespace) -> int:
    from mixlab.regression.fit import save_fit
    from mixlab.regression.plots import plot_all_cv

    result = fit_from_args(args)
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(result.summary().round(4).to_string())
    if args.predict:
        if not args.out:
            raise ValueError("--predict needs --out predictions.csv")
        df = write_predictions(result, args.predict, args.out)
        print(f"wrote {len(df)} predictions to {args.out}")
        return 0
    if args.out:
        path = save_fit(result, args.out)
        plots = plot_all_cv(result, args.out)
        print(f"wrote {path}, {Path(args.out) / 'cv.csv'} and {len(plots)} CV plot(s)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``mixlab fit``."""
    p = sub.add_parser(
        "fit",
        help="fit regressors from mixture weights to metrics (cross-validated)",
        description="Fit mixture -> metric regressors on a swarm (ratios.csv + metrics.csv), report CV Spearman, "
        "Pearson and MAE per target, and optionally score other mixtures (--predict).",
    )
    add_swarm_args(p)
    p.add_argument(
        "--predict", metavar="MIXTURES.csv", help="score these mixtures; --out is then the CSV written"
    )
    p.add_argument(
        "--out", help="output folder (fit.json, cv.csv, plots), or the predictions CSV with --predict"
    )
    p.set_defaults(func=_cmd_fit)
