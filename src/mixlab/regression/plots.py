"""Predicted-vs-measured plots from cross-validation (out-of-fold) predictions."""

from __future__ import annotations

import re
from pathlib import Path

from mixlab.figures import plt, save_figure
from mixlab.regression.fit import FitResult


def safe_name(name: str) -> str:
    """A file-name-safe version of a target or objective name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "target"


def plot_cv_predictions(result: FitResult, target: str, path: str | Path) -> Path:
    """Scatter of out-of-fold predictions against measurements for one target, with the CV scores; PNG path."""
    if target not in result.oof:
        raise ValueError(f"no fitted target {target!r}")
    df = result.oof[target]
    row = result.summary().loc[target]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(df["measured"], df["predicted"], s=10, alpha=0.6)
    lo = float(min(df["measured"].min(), df["predicted"].min()))
    hi = float(max(df["measured"].max(), df["predicted"].max()))
    ax.plot([lo, hi], [lo, hi], color="gray", lw=1, ls="--")
    ax.set_xlabel("measured")
    ax.set_ylabel(f"predicted ({result.folds}-fold CV)")
    ax.set_title(
        f"{target}\n{row['model']}: Spearman {row['spearman']:.3f}, Pearson {row['pearson']:.3f}, MAE {row['mae']:.3g}",
        fontsize=8,
    )
    return save_figure(fig, path)


def plot_all_cv(result: FitResult, out_dir: str | Path) -> list[Path]:
    """One ``cv_<target>.png`` per fitted target in ``out_dir``."""
    out = Path(out_dir)
    return [plot_cv_predictions(result, t, out / f"cv_{safe_name(t)}.png") for t in result.models]
