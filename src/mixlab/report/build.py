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
from mixlab.swarm import read_metrics


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


def trust_table(objectives: dict[str, Any]) -> pd.DataFrame:
    """One row per objective: the metric it was fitted on and its trust verdict."""
    return pd.DataFrame(
        {
            name: {
                "metric": obj.get("metric", ""),
                "trusted": "yes" if obj.get("trusted") else "NO",
                "out-of-fold Spearman": obj.get("oof_spearman", np.nan),
                "signal-to-noise": obj.get("snr", np.nan),
                "reason": obj.get("reason", ""),
            }
            for name, obj in objectives.items()
        }
    ).T


def trust_line(objectives: dict[str, Any]) -> str:
    """E.g. "Trusted optima: roleplay, rag. Untrusted: total, reasoning."."""
    good = [n for n, o in objectives.items() if o.get("trusted")]
    bad = [n for n, o in objectives.items() if not o.get("trusted")]
    parts = []
    if good:
        parts.append("Trusted optima: " + ", ".join(good) + ".")
    if bad:
        parts.append("UNTRUSTED (the swarm cannot rank mixtures for these): " + ", ".join(bad) + ".")
    return " ".join(parts)


def confirm_means(confirm: dict[str, Any], metric: str) -> pd.DataFrame:
    """Mean over seeds per arm (rows) and task + total (columns) on one metric."""
    return pd.DataFrame(
        {arm: {k: v["mean"] for k, v in entry[metric].items()} for arm, entry in confirm["arms"].items()}
    ).T


def comparison_table(confirm: dict[str, Any], arm: str, metric: str) -> pd.DataFrame:
    """``arm`` minus each baseline on ``metric``: diff and 95% interval per task and total."""
    rows = {}
    for base, by_metric in confirm["comparisons"].get(arm, {}).items():
        for key, iv in by_metric.get(metric, {}).items():
            rows[(f"vs {base}", key)] = {"diff": iv["diff"], "low": iv["low"], "high": iv["high"]}
    return pd.DataFrame(rows).T


def _confirm_section(confirm: dict[str, Any], pdir: Path) -> list[tuple[str, pd.DataFrame]]:
    tables = []
    total_metric = confirm["objective_metrics"].get("total", "acc")
    for metric in dict.fromkeys([total_metric, "acc", "acc_norm"]):
        tables.append(
            (f"mean over {confirm['seeds']} seeds of {metric} per arm", confirm_means(confirm, metric))
        )
    for metric in dict.fromkeys([total_metric, "acc"]):
        tables.append(
            (
                f"optimal minus each baseline on {metric} (95% paired bootstrap over items and seeds)",
                comparison_table(confirm, "optimal", metric),
            )
        )
    per_task = {}
    for task in confirm["tasks"]:
        arm = f"optimal_{task}"
        if arm in confirm["comparisons"] and "optimal" in confirm["comparisons"][arm]:
            m = confirm["objective_metrics"].get(task, "acc")
            for metric in dict.fromkeys([m, "acc"]):
                iv = confirm["comparisons"][arm]["optimal"][metric][task]
                per_task[(arm, metric)] = {
                    "diff vs optimal": iv["diff"],
                    "low": iv["low"],
                    "high": iv["high"],
                }
    if per_task:
        tables.append(
            ("each task's own optimum against the total optimum, on its own task", pd.DataFrame(per_task).T)
        )
    score = confirm.get("challenge_score", {}).get("optimal", {})
    for metric, by_task in score.items():
        tables.append(
            (
                f"challenge score S = after - before (base model), {metric}, optimal arm",
                pd.DataFrame(by_task).T.rename(columns={"diff": "S"}),
            )
        )
    return tables


def _forest(confirm: dict[str, Any], pdir: Path) -> Path:
    from mixlab.regression.signal import DIRECTIONS

    metric = confirm["objective_metrics"].get("total", "acc")
    rows = []
    for m in dict.fromkeys([metric, "acc"]):
        up = DIRECTIONS.get(m, "max") == "max"
        for base, by_metric in confirm["comparisons"].get("optimal", {}).items():
            iv = by_metric[m]["total"]
            rows.append((f"optimal - {base} ({m})", iv["diff"], iv["low"], iv["high"], up))
    for task in confirm["tasks"]:
        arm = f"optimal_{task}"
        if "optimal" in confirm["comparisons"].get(arm, {}):
            m = confirm["objective_metrics"].get(task, "acc")
            iv = confirm["comparisons"][arm]["optimal"][m][task]
            up = DIRECTIONS.get(m, "max") == "max"
            rows.append((f"{arm} - optimal ({task} {m})", iv["diff"], iv["low"], iv["high"], up))
    return plots.interval_forest(
        rows,
        pdir / "confirm_intervals.png",
        "confirmed differences, 95% intervals\n(green: arm better, red: worse, grey: cannot tell)",
        "difference (arm - baseline); gold_bpb: lower is better",
    )


def build_report(
    cfg: Any, pool: Pool, found: dict[str, Any], confirm: dict[str, Any] | None, timings: dict[str, float]
) -> Path:
    """Write ``WORKDIR/report.html`` with tables and plots of every stage's results."""
    from mixlab.final.stage import final_paths, read_final
    from mixlab.report.later import final_line, final_section, rounds_section
    from mixlab.rounds import read_rounds, swarm_ratios

    work = Path(cfg.workdir)
    pdir = work / "plots"
    dataset_dir = final_paths(work).dataset
    final = read_final(work) if final_paths(work).stamp("train").exists() else None
    skipped = final_paths(work).skipped
    final_note = ""
    if skipped.exists():
        final = None  # an earlier final run's results do not belong to this run
        final_note = "skipped: " + str(json.loads(skipped.read_text(encoding="utf-8")).get("reason", ""))
    elif final_paths(work).error.exists():
        final_note = f"failed (see {final_paths(work).error})"
    metric_of = {o: obj.get("metric", "acc") for o, obj in found["results"]["objectives"].items()}
    task_cols = {name: f"{name}/{metric_of.get(name, 'acc')}" for name in cfg.evaluation.tasks}
    sections: list[Section] = []

    # -- the answer first ---------------------------------------------------------------------------------
    optimal = json.loads((work / "optimal.json").read_text())
    chosen = optimal.get("chosen", cfg.search.objective)
    objectives = optimal.get("objectives", {})
    answer = Section("Result")
    headline = [trust_line(objectives)]
    if confirm is not None:
        headline.insert(0, confirm["headline"] + ".")
        answer.tables.extend(_confirm_section(confirm, pdir))
        answer.images.append(_forest(confirm, pdir))
        answer.paragraphs.extend(v for v in confirm["verdicts"] if v.startswith("optimal_"))
    answer.highlight = " ".join(headline)
    answer.tables.insert(0, ("trust verdict of every optimum", trust_table(objectives)))
    has_dataset = (dataset_dir / "manifest.json").exists()
    built = has_dataset and (bool(objectives.get(chosen, {}).get("trusted")) or cfg.trust.allow_untrusted)
    answer.paragraphs.append(
        f"Optimal mixture (objective '{chosen}') written to {work / 'optimal.json'}; "
        + (
            f"final dataset in {dataset_dir} (see its manifest.json)."
            if built
            else "final dataset NOT built: this optimum is untrusted (set trust.allow_untrusted to build it)."
        )
    )
    if final is not None and "S" in final:
        answer.highlight = f"{answer.highlight} {final_line(final)}".strip()
    sections.append(answer)

    signal_path = work / "signal.csv"
    if signal_path.exists():
        sig = pd.read_csv(signal_path)
        sections.append(
            Section(
                "Signal and noise of every metric",
                paragraphs=[
                    (
                        "Signal: spread of the metric across mixtures; noise: spread across seeds of one mixture "
                        "(repeated mixtures); out-of-fold Spearman: how well a regressor ranks unseen mixtures. "
                        "Each objective is fitted on the metric with the best evidence (see the trust table)."
                    )
                ],
                tables=[("evidence per objective and metric", sig.set_index(["objective", "metric"]))],
                images=[plots.signal_scatter(sig, pdir / "signal.png", cfg.trust.min_oof_spearman)],
            )
        )

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
    ratios = swarm_ratios(work)  # every round's runs
    metrics = read_metrics(work / "swarm" / "metrics.csv")
    swarm = Section("Proxy swarm", images=[plots.swarm_mixtures(ratios, pdir / "swarm_mixtures.png")])
    heat_cols = [c for c in task_cols.values() if c in metrics]
    ok = metrics[metrics.get("status", pd.Series("ok", index=metrics.index)).fillna("ok") == "ok"]
    if heat_cols and len(ok):
        runs = [r for r in ratios.index if r in ok.index]
        swarm.images.insert(
            0, plots.swarm_heatmap(ratios.loc[runs], ok.loc[runs, heat_cols], pdir / "swarm_heatmap.png")
        )
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
            for arm, entry in confirm["arms"].items():
                if arm in ("natural", "uniform", "best_swarm") and "weights" in entry:
                    mixes[arm] = entry["weights"]
        reg.images.append(
            plots.mixture_weights(mixes, pdir / "optimal_weights.png", "optimal mixtures vs baselines")
        )
    if confirm is not None and "total" in objectives and "optimal" in confirm["arms"]:
        pred = objectives["total"].get("predicted")
        metric = objectives["total"].get("metric", "acc")
        meas = confirm["arms"]["optimal"].get(metric, {}).get("total", {}).get("mean")
        if pred is not None and meas is not None:
            reg.paragraphs.append(
                f"Total ({metric}) of the optimum: predicted {pred:.3f}, measured {meas:.3f} "
                f"(mean of {confirm['seeds']} seeds at {confirm.get('scale', 1.0):g}x the proxy tokens)."
            )
    sections.append(reg)
    rounds = read_rounds(work)
    rounds_sec = rounds_section(rounds, pdir) if rounds is not None else None
    if rounds_sec is not None:
        sections.append(rounds_sec)

    # -- dataset ------------------------------------------------------------------------------------------
    manifest_path = dataset_dir / "manifest.json"
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

    if cfg.final.enabled or final is not None:
        sections.append(final_section(final, final_note))
    sections.append(Section("Timings (seconds)", tables=[("", pd.DataFrame({"seconds": timings}))]))
    return write_report(work / "report.html", "mixlab report", sections)
