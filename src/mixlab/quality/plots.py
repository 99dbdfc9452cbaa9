"""Per-domain quality-score histograms for the report (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def score_histograms(
    quality: pd.DataFrame, domains: np.ndarray | None, out: str | Path, bins: int = 40
) -> Path:
    """Write one histogram panel per domain of ``quality_score`` (kept vs filtered); return the PNG path."""
    from mixlab.figures import plt, save_figure

    dom = np.asarray(domains if domains is not None else np.full(len(quality), "all"), dtype=object)
    names = sorted(set(dom.tolist()))
    cols = min(3, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    score = quality["quality_score"].to_numpy(dtype=np.float64)
    keep = quality["quality_keep"].to_numpy(dtype=bool)
    edges = np.linspace(0, 1, bins + 1)
    for ax, name in zip(axes.ravel(), names, strict=False):
        m = dom == name
        ax.hist([score[m & keep], score[m & ~keep]], bins=edges, stacked=True, label=["kept", "filtered"])
        ax.set_title(f"{name} ({int(m.sum())} docs)")
        ax.set_xlabel("quality_score")
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    axes[0, 0].legend()
    return save_figure(fig, out, dpi=80)
