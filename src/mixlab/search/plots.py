"""Plots of search results: optimal weights per objective, and the trade-off against the reference objective."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mixlab.figures import plt, save_figure


def plot_weights(results: Mapping[str, Any], path: str | Path) -> Path:
    """Grouped bar chart: each domain's weight in each objective's optimum (and the prior); the PNG path."""
    domains = list(results["domains"])
    names = list(results["objectives"])
    series = [("prior", results["prior"])] + [(n, results["objectives"][n]["weights"]) for n in names]
    x = np.arange(len(domains))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(domains) * len(series) ** 0.5 + 2), 4))
    for i, (label, weights) in enumerate(series):
        ax.bar(
            x + i * width,
            [weights[d] for d in domains],
            width,
            label=label,
            color="lightgray" if label == "prior" else None,
        )
    ax.set_xticks(x + 0.4 - width / 2)
    ax.set_xticklabels(domains, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("weight")
    ax.set_title("optimal mixture per objective")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_tradeoff(results: Mapping[str, Any], path: str | Path) -> Path:
    """Bars per objective: what its optimum loses on the reference objective, and what the reference optimum
    loses on it (both in the objectives' own units, positive = worse); the PNG path."""
    trade = results["tradeoff"]
    rows = trade["rows"]
    names = [n for n in rows if n != trade["reference"]] or list(rows)
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(6, 1 + 0.4 * len(names)))
    ax.barh(
        y - 0.2,
        [rows[n]["reference_loss"] for n in names],
        0.4,
        label=f"loss on {trade['reference']} at this optimum",
    )
    ax.barh(
        y + 0.2,
        [rows[n]["this_loss_at_reference_optimum"] for n in names],
        0.4,
        label=f"loss on this objective at the {trade['reference']} optimum",
    )
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=7)
    ax.axvline(0, color="gray", lw=1)
    ax.set_xlabel("predicted loss vs the objective's own optimum (positive = worse)")
    ax.legend(fontsize=7)
    return save_figure(fig, path)
