"""Assemble the pipeline's HTML report from the artefacts in the work dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mixlab.pool.pool import Pool
from mixlab.report import plots
from mixlab.report.html import Section, write_report
from mixlab.swarm import read_metrics, read_ratios


def _domain_table(pool: Pool) -> tuple[pd.DataFrame, dict[str, int], dict[str, int]]:
    docs = pool.read_docs(["id", "n_tokens", "source"])
    if pool.has_attr("domains"):
        docs["domain"] = pool.read_attr("domains", columns=["domain"])["domain"].to_numpy()
    else:
        docs["domain"] = docs["source"]
    grouped = docs.groupby("domain")["n_tokens"].agg(["count", "sum"])
    table = pd.DataFrame(
        {
            "documents": grouped["count"],
            "tokens": grouped["sum"],
            "token share": grouped["sum"] / grouped["sum"].sum(),
        }
    )
    return (
        table,
        {k: int(v) for k, v in grouped["sum"].items()},
        {k: int(v) for k, v in grouped["count"].items()},
    )


def _exclusions(pool: Pool) -> pd.DataFrame:
    rows: dict[str, int] = {
        f"quarantined at ingest: {k}": v for k, v in pool.meta.get("quarantine_reasons", {}).items()
    }
    if pool.has_attr("quality"):
        q = pool.read_attr("quality", columns=["quality_keep", "quality_reason"])
        for reason, n in q.loc[~q["quality_keep"].astype(bool), "quality_reason"].value_counts().items():
            rows[f"quality filter: {reason}"] = int(n)
    if pool.has_attr("dedup"):
        d = pool.read_attr("dedup", columns=["dup_keep"])
        rows["duplicate (not the cluster representative)"] = int((~d["dup_keep"].astype(bool)).sum())
    if pool.has_attr("decontam"):
        c = pool.read_attr("decontam", columns=["contaminated"])
        rows["contaminated (overlaps an evaluation task)"] = int(c["contaminated"].astype(bool).sum())
    return pd.DataFrame({"documents": rows}) if rows else pd.DataFrame({"documents": {"none": 0}})


def confirm_scores(task_cols: dict[str, str], confirm: pd.DataFrame) -> pd.DataFrame:
    """Per-task measured scores (rows = confirmation runs) plus their total."""
    table = pd.DataFrame(
        {name: confirm[col] for name, col in task_cols.items() if col in confirm}, index=confirm.index
    )
    table["total"] = table.sum(axis=1)
    return table


def verdict(scores: pd.DataFrame, baseline_names: list[str], reference: str | None = None) -> str:
    """One sentence: did the optimal mixture beat each baseline on the total, by how much."""
    if "optimal" not in scores.index:
        return "no confirmation run of the optimal mixture"
    opt = float(scores.loc["optimal", "total"])
    parts = []
    for b in baseline_names:
        if b in scores.index:
            base = float(scores.loc[b, "total"])
            word = "beat" if opt > base else ("tied" if opt == base else "did NOT beat")
            parts.append(f"{word} the {b} mixture ({opt:.3f} vs {base:.3f}, {opt - base:+.3f})")
    text = "The chosen mixture " + "; ".join(parts) + " on the summed task accuracy."
    if reference and reference in scores.index:
        ref = float(scores.loc[reference, "total"])
        text += f" Before training, the base model scored {ref:.3f} (change with the optimal mixture: {opt - ref:+.3f})."
    return text


def build_report(
    cfg: Any, pool: Pool, found: dict[str, Any], confirm: pd.DataFrame | None, timings: dict[str, float]
) -> Path:
    """Write ``WORKDIR/report.html`` with tables and plots of every stage's results."""
    work = Path(cfg.workdir)
    pdir = work / "plots"
    task_cols = {name: f"{name}/{cfg.evaluation.metric}" for name in cfg.evaluation.tasks}
    sections: list[Section] = []

    # -- the answer first ---------------------------------------------------------------------------------
    optimal = json.loads((work / "optimal.json").read_text())
    chosen = optimal.get("chosen", cfg.search.objective)
    answer = Section("Result")
    if confirm is not None:
        scores = confirm_scores(task_cols, confirm)
        answer.highlight = verdict(
            scores, list(cfg.confirm.baselines), "base" if "base" in scores.index else None
        )
        answer.tables.append(
            ("measured task accuracy of proxies trained on each mixture (confirmation runs)", scores)
        )
        stderr_cols = {name: f"{col}_stderr" for name, col in task_cols.items() if f"{col}_stderr" in confirm}
        if stderr_cols:
            stderr = pd.DataFrame(
                {name: confirm[col] for name, col in stderr_cols.items()}, index=confirm.index
            )
            stderr["total"] = np.sqrt((stderr**2).sum(axis=1))
            answer.tables.append(
                ("standard error of each accuracy (total: tasks taken as independent)", stderr)
            )
        answer.images.append(
            plots.confirm_scores(scores.drop(columns=["total"]), pdir / "confirm_scores.png")
        )
    answer.paragraphs.append(
        f"Optimal mixture (objective '{chosen}') written to {work / 'optimal.json'}; final dataset in "
        f"{work / 'dataset'} (see its manifest.json)."
    )
    sections.append(answer)

    # -- corpus -------------------------------------------------------------------------------------------
    dom_table, tokens, docs = _domain_table(pool)
    corpus = Section(
        "Corpus and domains",
        paragraphs=[f"{pool.n_docs()} documents, {pool.n_tokens()} tokens under the training tokenizer."],
        tables=[("domains", dom_table), ("excluded documents by reason", _exclusions(pool))],
        images=[plots.domain_sizes(tokens, docs, pdir / "domain_sizes.png")],
    )
    if pool.has_attr("quality") and pool.has_attr("domains"):
        q = pool.read_attr("quality", columns=["quality_score", "quality_keep"])
        q["domain"] = pool.read_attr("domains", columns=["domain"])["domain"].to_numpy()
        corpus.images.append(plots.quality_histograms(q, pdir / "quality_per_domain.png"))
    sections.append(corpus)

    # -- swarm --------------------------------------------------------------------------------------------
    ratios = read_ratios(work / "ratios.csv")
    metrics = read_metrics(work / "swarm" / "metrics.csv")
    swarm = Section("Proxy swarm", images=[plots.swarm_mixtures(ratios, pdir / "swarm_mixtures.png")])
    status = metrics["status"].value_counts().to_dict() if "status" in metrics else {}
    swarm.paragraphs.append(f"{len(ratios)} candidate mixtures; run status: {status}.")
    shown = [c for c in task_cols.values() if c in metrics] + [
        c for c in metrics.columns if c.startswith("loss/")
    ]
    swarm.tables.append(("metrics per run", metrics[shown].join(ratios, how="left")))
    sections.append(swarm)

    # -- regression + search ------------------------------------------------------------------------------
    fit = found.get("fit")
    reg = Section("Regression and search")
    cv = getattr(fit, "cv_table", None)
    if isinstance(cv, pd.DataFrame):
        reg.tables.append(("cross-validation per target (chosen model)", cv))
    pairs = getattr(fit, "cv_pairs", None)
    if callable(pairs):
        pairs = pairs()
    if isinstance(pairs, dict) and pairs:
        reg.images.append(plots.predicted_vs_measured(pairs, pdir / "predicted_vs_measured.png"))
    objectives = optimal.get("objectives", {})
    if objectives:
        table = pd.DataFrame(
            {
                name: {
                    **{f"w[{d}]": w for d, w in obj["weights"].items()},
                    "predicted": obj.get("predicted", np.nan),
                    "interval low": (obj.get("interval") or [np.nan, np.nan])[0],
                    "interval high": (obj.get("interval") or [np.nan, np.nan])[1],
                }
                for name, obj in objectives.items()
            }
        ).T
        reg.tables.append(("optimum per objective (weights, predicted score and interval)", table))
        mixes = {name: obj["weights"] for name, obj in objectives.items()}
        if confirm is not None:
            for b in cfg.confirm.baselines:
                if b in confirm.index:
                    mixes[b] = read_ratios(work / "confirm_ratios.csv").loc[b].to_dict()
        reg.images.append(
            plots.mixture_weights(mixes, pdir / "optimal_weights.png", "optimal mixtures vs baselines")
        )
    if confirm is not None and "total" in objectives:
        pred = objectives["total"].get("predicted")
        if pred is not None and "optimal" in confirm.index:
            meas = float(confirm_scores(task_cols, confirm).loc["optimal", "total"])
            reg.paragraphs.append(f"Total score of the optimum: predicted {pred:.3f}, measured {meas:.3f}.")
    sections.append(reg)

    # -- dataset ------------------------------------------------------------------------------------------
    manifest_path = work / "dataset" / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        per = manifest.get("domains", {})
        ds = Section(
            "Final dataset",
            paragraphs=[
                (
                    f"budget {manifest.get('budget_tokens')} tokens, achieved {manifest.get('total_tokens')} tokens; "
                    f"files: {', '.join(manifest.get('files', {}))}."
                )
            ],
        )
        if isinstance(per, dict) and per:
            ds.tables.append(("tokens per domain", pd.DataFrame(per).T))
        sections.append(ds)

    sections.append(Section("Timings (seconds)", tables=[("", pd.DataFrame({"seconds": timings}))]))
    return write_report(work / "report.html", "mixlab report", sections)
