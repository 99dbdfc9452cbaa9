"""Report sections of the loop's late steps: the rounds of proxies and the final run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mixlab.report import plots
from mixlab.report.html import Section

__all__ = ["final_line", "final_section", "final_table", "rounds_section", "rounds_table"]


def rounds_table(rounds: dict[str, Any]) -> pd.DataFrame:
    """One row per round: its runs, the predicted optimum's score and interval, and how far it moved."""
    rows = {}
    previous: dict[str, float] | None = None
    for rec in rounds["rounds"]:
        weights = rec["optimum"]
        moved = (
            float(np.abs(np.array([weights[d] - previous.get(d, 0.0) for d in weights])).sum())
            if previous is not None
            else np.nan
        )
        rows[f"round {rec['round']}"] = {
            "runs": rec["n_runs"],
            "metric": rec.get("metric") or "",
            "model": rec.get("model") or "",
            "predicted": rec["predicted"],
            "interval low": rec["interval"][0],
            "interval high": rec["interval"][1],
            "optimum moved (L1)": moved,
            **{f"w[{d}]": w for d, w in weights.items()},
        }
        previous = weights
    return pd.DataFrame(rows).T


def rounds_section(rounds: dict[str, Any], pdir: Path) -> Section | None:
    """How the predicted optimum and its 95% interval moved across the rounds (None with one round)."""
    records = rounds.get("rounds", [])
    if len(rounds.get("sizes", [])) <= 1 or not records:
        return None
    objective = str(rounds.get("objective", "total"))
    return Section(
        "Rounds",
        paragraphs=[
            (
                f"Rounds of {', '.join(str(n) for n in rounds['sizes'])} mixtures: after each round the "
                "regressors fitted on every run so far proposed the next round from the predicted best region, "
                "with some exploration (CLIMB). Each row is the predicted optimum of "
                f"'{objective}' after that round, with its 95% interval."
            )
        ],
        tables=[("predicted optimum after each round", rounds_table(rounds))],
        images=[plots.rounds_progress(records, pdir / "rounds.png", objective)],
    )


def final_table(final: dict[str, Any]) -> pd.DataFrame:
    """Rows (metric, task or total): before (base model), after (final model) and S = after - before."""
    keys = [*final["tasks"], "total"]
    order = sorted(final["metrics"], key=lambda m: (m != "acc", m))
    rows = {
        (m, k): {
            "before (base model)": final["before"][k][m],
            "after (final model)": final["after"][k][m],
            "S = after - before": final["S"][m][k],
        }
        for m in order
        for k in keys
    }
    return pd.DataFrame(rows).T


def final_line(final: dict[str, Any]) -> str:
    """The final run's result in one sentence."""
    if "S" not in final:
        return f"Final run: model trained and merged into {final['model']} (not evaluated)."
    parts = [f"{m} {final['S'][m]['total']:+.4f}" for m in ("acc", "acc_norm", "gold_bpb") if m in final["S"]]
    return (
        f"Final run: S = after - before summed over {len(final['tasks'])} tasks: {', '.join(parts)} "
        f"(merged model in {final['model']})."
    )


def final_section(final: dict[str, Any] | None, note: str) -> Section:
    """The final run: the recipe, then before / after / S per task on acc and the continuous metrics."""
    sec = Section("Final run")
    if final is None:
        sec.paragraphs.append(f"The final run did not run: {note or 'not run'}.")
        return sec
    recipe = final["recipe"]
    train = final["train"]
    sec.paragraphs.append(
        f"DoRA (r={recipe['r']}, alpha {recipe['alpha']:g}, dropout {recipe['dropout']:g}, lr {recipe['lr']:g}, "
        f"block {recipe['block_size']}, batch {recipe['batch_size']}) on {final['base_model']} over "
        f"{final['dataset']}: {train['steps']} steps, {train['tokens']} tokens, final loss "
        f"{train['final_loss']:.4f}; adapter merged into {final['model']}."
    )
    if "S" in final:
        sec.highlight = final_line(final)
        caption = (
            "before, after and S = after - before per task and summed over tasks (gold_bpb: lower is "
            "better, so a negative S is a gain)"
        )
        sec.tables.append((caption, final_table(final)))
    return sec
