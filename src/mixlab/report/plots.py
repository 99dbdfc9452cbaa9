"""Plots for the report (matplotlib, Agg backend): each function saves one PNG and returns its path."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mixlab.figures import plt, save_figure


def _save(fig: plt.Figure, path: Path) -> Path:
    return save_figure(fig, path, dpi=110)


def domain_sizes(tokens: Mapping[str, int], docs: Mapping[str, int], path: Path) -> Path:
    """Tokens and documents per domain, side by side."""
    names = list(tokens)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].bar(names, [tokens[n] for n in names], color="#4C72B0")
    axes[0].set_title("tokens per domain")
    axes[1].bar(names, [docs.get(n, 0) for n in names], color="#55A868")
    axes[1].set_title("documents per domain")
    for ax in axes:
        ax.tick_params(axis="x", rotation=30)
    return _save(fig, path)


def quality_histograms(scores: pd.DataFrame, path: Path, bins: int = 40) -> Path:
    """Distribution of ``quality_score`` per domain (columns ``domain``, ``quality_score``, ``quality_keep``)."""
    domains = sorted(scores["domain"].unique())
    cols = min(3, len(domains))
    rows = int(np.ceil(len(domains) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, dom in zip(axes.flat, domains, strict=False):
        sub = scores[scores["domain"] == dom]
        keep = sub["quality_keep"].astype(bool) if "quality_keep" in sub else pd.Series(True, index=sub.index)
        lo, hi = float(scores["quality_score"].min()), float(scores["quality_score"].max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1, bins)
        ax.hist(sub.loc[keep, "quality_score"], bins=edges, color="#4C72B0", alpha=0.8, label="kept")
        ax.hist(sub.loc[~keep, "quality_score"], bins=edges, color="#C44E52", alpha=0.8, label="filtered")
        ax.set_title(f"{dom} (n={len(sub)})")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(domains) :]:
        ax.axis("off")
    fig.suptitle("quality score per domain")
    return _save(fig, path)


def mixture_weights(
    mixtures: Mapping[str, Mapping[str, float]], path: Path, title: str = "mixture weights"
) -> Path:
    """Grouped bars: one group per domain, one bar per named mixture."""
    names = list(mixtures)
    domains = list(next(iter(mixtures.values())))
    x = np.arange(len(domains))
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(domains)), 3.8))
    for i, name in enumerate(names):
        ax.bar(x + i * width, [mixtures[name].get(d, 0.0) for d in domains], width, label=name)
    ax.set_xticks(x + width * (len(names) - 1) / 2, domains, rotation=30)
    ax.set_ylabel("weight")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def swarm_mixtures(ratios: pd.DataFrame, path: Path) -> Path:
    """Stacked bars of every proxy run's mixture."""
    fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(ratios)), 3.6))
    bottom = np.zeros(len(ratios))
    for dom in ratios.columns:
        ax.bar(range(len(ratios)), ratios[dom].to_numpy(), bottom=bottom, label=dom)
        bottom += ratios[dom].to_numpy()
    ax.set_xlabel("proxy run")
    ax.set_ylabel("weight")
    ax.set_title("candidate mixtures (swarm)")
    ax.legend(fontsize=7, ncol=3)
    return _save(fig, path)


def predicted_vs_measured(
    pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str = "cross-validated predictions"
) -> Path:
    """Scatter of CV-predicted vs measured, one panel per target."""
    names = list(pairs)
    cols = min(3, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 3.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        pred, meas = pairs[name]
        ax.scatter(meas, pred, s=14, alpha=0.8)
        lo = float(np.nanmin([np.nanmin(pred), np.nanmin(meas)]))
        hi = float(np.nanmax([np.nanmax(pred), np.nanmax(meas)]))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel("measured")
        ax.set_ylabel("predicted")
        ax.set_title(name, fontsize=9)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(title)
    return _save(fig, path)


def confirm_scores(scores: pd.DataFrame, path: Path) -> Path:
    """Grouped bars of measured task scores (rows = mixtures, columns = tasks)."""
    x = np.arange(len(scores.columns))
    width = 0.8 / max(1, len(scores))
    fig, ax = plt.subplots(figsize=(max(6, 1.5 * len(scores.columns)), 3.8))
    for i, (name, row) in enumerate(scores.iterrows()):
        ax.bar(x + i * width, row.to_numpy(dtype=float), width, label=str(name))
    ax.set_xticks(x + width * (len(scores) - 1) / 2, list(scores.columns), rotation=20)
    ax.set_ylabel("accuracy")
    ax.set_title("confirmation runs: measured task accuracy")
    ax.legend(fontsize=8)
    return _save(fig, path)


def interval_forest(
    rows: list[tuple[str, float, float, float, bool]], path: Path, title: str, xlabel: str
) -> Path:
    """Differences with their 95% intervals, one line per comparison (label, diff, low, high, higher is
    better): green where the arm is better (for gold_bpb, a negative difference), red where it is worse,
    grey where the interval contains zero."""
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.4))
    y = np.arange(len(rows))[::-1]
    for yi, (_, diff, low, high, higher_better) in zip(y, rows, strict=True):
        above, below = low > 0, high < 0
        better, worse = (above, below) if higher_better else (below, above)
        color = "tab:green" if better else ("tab:red" if worse else "tab:gray")
        ax.plot([low, high], [yi, yi], color=color, lw=2)
        ax.plot([diff], [yi], "o", color=color)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def signal_scatter(table: pd.DataFrame, path: Path, min_spearman: float = 0.8) -> Path:
    """Out-of-fold Spearman against signal-to-noise per (objective, metric): which metrics can rank."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    snr = table["snr"].astype(float).replace([np.inf], np.nan)
    has_snr = snr.notna().any()
    x = snr.fillna(0.0) if has_snr else pd.Series(np.arange(len(table)), index=table.index, dtype=float)
    for metric, sub in table.groupby("metric"):
        ax.scatter(x.loc[sub.index], sub["oof_spearman"].astype(float), label=str(metric), s=30)
        for i in sub.index:
            ax.annotate(
                str(sub.loc[i, "objective"]), (x.loc[i], float(sub.loc[i, "oof_spearman"])), fontsize=6
            )
    ax.axhline(min_spearman, color="gray", ls="--", lw=0.8)
    ax.set_xlabel("signal-to-noise ratio (spread across mixtures / across seeds)" if has_snr else "metric")
    if has_snr:
        ax.set_xscale("symlog", linthresh=1.0)
    ax.set_ylabel("out-of-fold Spearman")
    ax.set_title("which metric can rank mixtures (dashed: trust threshold)", fontsize=10)
    ax.legend(fontsize=7, ncol=3)
    return _save(fig, path)


def swarm_heatmap(ratios: pd.DataFrame, scores: pd.DataFrame, path: Path) -> Path:
    """The swarm as a heat map: each run's mixture (left) beside its measured scores (right, per column
    scaled to its own range, best = darkest)."""
    order = scores.sum(axis=1).sort_values(ascending=False).index if not scores.empty else ratios.index
    r = ratios.loc[[i for i in order if i in ratios.index]]
    sc = scores.loc[r.index]
    height = max(3.0, 0.28 * len(r) + 1.5)
    fig, (ax1, ax2) = plt.subplots(
        1, 2, figsize=(11, height), gridspec_kw={"width_ratios": [len(r.columns), max(1, len(sc.columns))]}
    )
    ax1.imshow(r.to_numpy(dtype=float), aspect="auto", cmap="Blues", vmin=0, vmax=1)
    ax1.set_xticks(range(len(r.columns)), list(r.columns), rotation=35, ha="right", fontsize=8)
    ax1.set_yticks(range(len(r)), list(r.index), fontsize=7)
    ax1.set_title("mixture weights", fontsize=9)
    vals = sc.to_numpy(dtype=float)
    lo, hi = np.nanmin(vals, axis=0), np.nanmax(vals, axis=0)
    scaled = (vals - lo) / np.where(hi > lo, hi - lo, 1.0)
    ax2.imshow(scaled, aspect="auto", cmap="Greens", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(vals):
        ax2.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=6)
    ax2.set_xticks(range(len(sc.columns)), list(sc.columns), rotation=35, ha="right", fontsize=8)
    ax2.set_yticks([])
    ax2.set_title("measured scores (colour: rank within column)", fontsize=9)
    return _save(fig, path)


def rounds_progress(records: list[dict[str, Any]], path: Path, objective: str) -> Path:
    """The predicted optimum after each round with its 95% interval, and the runs behind it."""
    rounds = [int(r["round"]) for r in records]
    pred = np.array([float(r["predicted"]) for r in records])
    lows = np.array([float(r["interval"][0]) for r in records])
    highs = np.array([float(r["interval"][1]) for r in records])
    runs = np.cumsum([int(r["n_runs"]) for r in records])
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.fill_between(rounds, lows, highs, color="tab:blue", alpha=0.2, label="95% interval")
    ax.plot(rounds, pred, "o-", color="tab:blue", label="predicted optimum")
    for x, y, n in zip(rounds, pred, runs, strict=True):
        ax.annotate(f"{n} runs", (x, y), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)
    ax.set_xticks(rounds)
    ax.set_xlabel("round")
    ax.set_ylabel(f"predicted {objective}")
    ax.set_title("predicted optimum across rounds", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)
