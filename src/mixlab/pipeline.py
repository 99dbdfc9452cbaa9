"""The pipeline runner: chains every stage for ``mixlab run`` (and ``mixlab demo``).

Each step leaves its artefacts under the work dir and is skipped when they already exist, so a crashed
run is resumed by running the same command again. This module and ``cli.py`` are the only places that
know every stage; stages themselves only see what comes before them in the flow.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mixlab.config import PipelineConfig
from mixlab.pool.ingest import ingest
from mixlab.pool.pool import Pool, atomic_write_text
from mixlab.swarm import read_metrics, read_ratios, write_ratios

log = logging.getLogger("mixlab.pipeline")


@dataclass
class RunSummary:
    """Where the results of a pipeline run are."""

    workdir: Path
    report: Path
    optimal: Path
    dataset: Path
    confirm: pd.DataFrame | None = None
    timings: dict[str, float] = field(default_factory=dict)


# --- per-run callables for the swarm (module level so they pickle into worker processes) --------------


def make_selection(
    pool_root: str, select_json: str, workdir: str, run: str, weights: dict[str, float]
) -> Path:
    """Select and export the training documents of one proxy run (skipped when already exported)."""
    from mixlab.select.config import SelectConfig
    from mixlab.select.export import export_selection
    from mixlab.select.selection import select_documents

    out = Path(workdir) / "selections" / run
    if (out / "manifest.json").exists():
        return out
    pool = Pool.open(pool_root)
    cfg = SelectConfig.model_validate_json(select_json)
    selection = select_documents(pool, weights, cfg)
    export_selection(pool, selection, out, ["jsonl"])
    return out


def train_run(proxy_json: str, tokenizer: str, run: str, data: Path, out_dir: Path) -> Any:
    """Train one proxy with the pipeline's fixed hyper-parameters."""
    from mixlab.proxies.config import ProxyConfig
    from mixlab.proxies.trainer import train_proxy

    return train_proxy(ProxyConfig.model_validate_json(proxy_json), data, tokenizer, out_dir)


def evaluate_run(eval_json: str, run: str, model_dir: Path, out_dir: Path | None = None) -> dict[str, float]:
    """Score one trained proxy on every task and every domain's validation slice: one metrics row."""
    from mixlab.evaluation.config import EvalConfig
    from mixlab.evaluation.runner import evaluate_run as run_eval

    out = out_dir if out_dir is not None else Path(model_dir) / "eval"
    return run_eval(model_dir, EvalConfig.model_validate_json(eval_json), out_dir=out)


# --- steps ----------------------------------------------------------------------------------------------


def eval_config(cfg: PipelineConfig) -> Any:
    """The evaluation stage's own config built from the pipeline's evaluation section."""
    from mixlab.evaluation.config import EvalConfig

    ev = cfg.evaluation
    return EvalConfig(
        tasks=dict(ev.tasks),
        domain_data=dict(ev.validation),
        batch_size=ev.batch_size,
        limit=ev.limit,
        block_size=ev.block_size,
        max_docs_per_domain=ev.max_docs_per_domain,
    )


def task_columns(cfg: PipelineConfig) -> dict[str, str]:
    """Objective name -> metrics.csv column, for each task."""
    return {name: f"{name}/{cfg.evaluation.metric}" for name in cfg.evaluation.tasks}


def prepare_pool(cfg: PipelineConfig) -> Pool:
    """ingest, then annotate: domains, quality, duplicates, contamination (each skipped when done)."""
    from mixlab.dedup.config import DecontamConfig
    from mixlab.dedup.stage import decontaminate_pool, dedup_pool
    from mixlab.domains.partition import partition_pool
    from mixlab.quality.stage import score_quality

    work = Path(cfg.workdir)
    ing = cfg.ingest
    pool = ingest(
        ing.inputs,
        work / "pool",
        tokenizer=ing.tokenizer,
        shard_docs=ing.shard_docs,
        max_chars=ing.max_chars,
        text_field=ing.text_field,
        decode_tokenizer=ing.decode_tokenizer,
    )
    partition_pool(pool, cfg.partition, workers=cfg.workers)
    if cfg.quality is not None:
        score_quality(pool, cfg.quality, workers=cfg.workers)
    if cfg.dedup is not None:
        dedup_pool(pool, cfg.dedup, workers=cfg.workers)
    if cfg.decontaminate:
        decontaminate_pool(pool, DecontamConfig(tasks=dict(cfg.evaluation.tasks)), workers=cfg.workers)
    return pool


def candidate_mixtures(cfg: PipelineConfig, pool: Pool) -> pd.DataFrame:
    """RegMix-style candidates around the token prior, written once to ratios.csv."""
    from mixlab.mixtures.sampler import available_tokens, sample_mixtures, token_prior

    path = Path(cfg.workdir) / "ratios.csv"
    if path.exists():
        return read_ratios(path)
    ratios = sample_mixtures(
        token_prior(pool, view=cfg.mixtures), cfg.mixtures, available_tokens(pool, view=cfg.mixtures)
    )
    write_ratios(path, ratios)
    return read_ratios(path)


def baseline_mixtures(cfg: PipelineConfig, pool: Pool, domains: list[str]) -> dict[str, dict[str, float]]:
    """The natural token proportions (after exclusions) and the uniform mixture.

    Uniform is made feasible at the proxy budget: a domain too small for an equal share (under the
    epochs cap) gets all it can hold and the rest is spread over the others.
    """
    from mixlab.mixtures.sampler import available_tokens, constrain_weights, token_prior, weight_caps

    prior = token_prior(pool, view=cfg.mixtures)
    natural = {d: float(prior.get(d, 0.0)) for d in domains}
    total = sum(natural.values())
    caps = weight_caps(
        domains, available_tokens(pool, view=cfg.mixtures), cfg.select.budget_tokens, cfg.select.max_epochs
    )
    uniform = constrain_weights(np.ones(len(domains)), caps, 0.0)
    if uniform is None:
        raise ValueError("the pool cannot hold any mixture at the proxy budget; lower select.budget_tokens")
    return {
        "natural": {d: v / total for d, v in natural.items()},
        "uniform": {d: float(w) for d, w in zip(domains, uniform, strict=True)},
    }


def run_swarm_step(
    cfg: PipelineConfig, pool: Pool, ratios: pd.DataFrame, name: str = "swarm"
) -> pd.DataFrame:
    """Train and evaluate one proxy per mixture row; finished runs are skipped, failures recorded."""
    from mixlab.proxies.swarm import run_swarm

    work = Path(cfg.workdir)
    evaluate = partial(evaluate_run, eval_config(cfg).model_dump_json())
    proxy = cfg.proxy
    if cfg.workers > 1 and proxy.num_threads is None:  # one process per core, not cores x cores threads
        proxy = proxy.model_copy(update={"num_threads": max(1, (os.cpu_count() or 1) // cfg.workers)})
    return run_swarm(
        ratios,
        make_data=partial(make_selection, str(pool.root), cfg.select.model_dump_json(), str(work)),
        train=partial(train_run, proxy.model_dump_json(), pool.tokenizer_spec),
        evaluate=evaluate,
        out_dir=work / name,
        metrics_csv=work / name / "metrics.csv",
        workers=cfg.workers,
    )


def fit_and_search(
    cfg: PipelineConfig,
    ratios: pd.DataFrame,
    metrics: pd.DataFrame,
    prior: dict[str, float],
    available: dict[str, int],
) -> dict[str, Any]:
    """Fit one regressor per objective (total + each task), search each optimum, write optimal*.json.

    The search respects what the pool holds: no domain may need more than ``max_epochs`` passes over its
    available tokens at the final build budget.
    """
    from mixlab.regression.fit import Target, fit_targets
    from mixlab.search.config import Constraints
    from mixlab.search.run import search_all, write_optimal

    work = Path(cfg.workdir)
    cols = task_columns(cfg)
    ok = metrics[metrics.get("status", pd.Series("ok", index=metrics.index)).fillna("ok") == "ok"]
    runs = [r for r in ratios.index if r in ok.index]
    targets = [Target(name="total", columns=list(cols.values()), kind="sum", direction="max")]
    targets += [Target(name=n, columns=[c], kind="column", direction="max") for n, c in cols.items()]
    if len(runs) < 3:
        raise ValueError(f"only {len(runs)} proxy runs succeeded; at least 3 are needed to fit a regressor")
    folds = min(cfg.fit.cv_folds, len(runs))
    fit = fit_targets(ratios.loc[runs], ok.loc[runs], targets, model=cfg.fit.model, folds=folds)
    constraints = Constraints(
        min_weight=cfg.search.min_weight,
        max_weight=cfg.search.max_weight,
        availability={d: float(v) for d, v in available.items()},
        budget=float(cfg.build.budget_tokens),
        max_epochs=cfg.select.max_epochs,
    )
    results = search_all(
        fit,
        prior=prior,
        constraints=constraints,
        method=cfg.search.method,
        n_samples=cfg.search.n_samples,
        top_k=cfg.search.top_k,
        seed=cfg.seed,
        kl_weight=cfg.search.kl_weight,
        chosen=cfg.search.objective,
    )
    write_optimal(work / "optimal.json", results, out_dir=work)
    return {"fit": fit, "results": results}


def evaluate_base(cfg: PipelineConfig, metrics_csv: Path) -> None:
    """Score the untouched base model once (row ``base``): the "before" of the challenge's after - before."""
    from mixlab.swarm import upsert_metrics

    if metrics_csv.exists() and "base" in read_metrics(metrics_csv).index:
        return
    assert cfg.proxy.base_model is not None
    out = metrics_csv.parent / "runs" / "base" / "eval"
    row = evaluate_run(eval_config(cfg).model_dump_json(), "base", Path(cfg.proxy.base_model), out)
    upsert_metrics(metrics_csv, "base", {**row, "status": "ok", "error": ""})


def run_pipeline(cfg: PipelineConfig) -> RunSummary:
    """Run every stage; return where the report, the optimum and the dataset are."""
    from mixlab.report.build import build_report
    from mixlab.select.config import SelectConfig
    from mixlab.select.export import export_selection
    from mixlab.select.selection import select_documents

    work = Path(cfg.workdir)
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def timed(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 2)
        log.info("%s done in %.1fs", name, timings[name])

    t0 = time.perf_counter()
    pool = prepare_pool(cfg)
    timed("annotate", t0)

    t0 = time.perf_counter()
    ratios = candidate_mixtures(cfg, pool)
    domains = list(ratios.columns)
    swarm_metrics = run_swarm_step(cfg, pool, ratios, "swarm")
    timed("swarm", t0)

    t0 = time.perf_counter()
    baselines = baseline_mixtures(cfg, pool, domains)
    from mixlab.mixtures.sampler import available_tokens

    available = available_tokens(pool, view=cfg.mixtures)
    found = fit_and_search(cfg, ratios, swarm_metrics, baselines["natural"], available)
    optimal_weights: dict[str, float] = found["results"]["objectives"][cfg.search.objective]["weights"]
    timed("fit+search", t0)

    t0 = time.perf_counter()
    dataset_dir = work / "dataset"
    if not (dataset_dir / "manifest.json").exists():
        build_cfg = cfg.select.model_copy(update={"budget_tokens": cfg.build.budget_tokens})
        build_cfg = SelectConfig.model_validate(build_cfg.model_dump())
        selection = select_documents(pool, optimal_weights, build_cfg)
        export_selection(pool, selection, dataset_dir, list(cfg.build.formats))
    timed("build", t0)

    confirm = None
    if cfg.confirm.enabled:
        t0 = time.perf_counter()
        rows = {"optimal": optimal_weights, **{b: baselines[b] for b in cfg.confirm.baselines}}
        confirm_ratios = pd.DataFrame.from_dict(rows, orient="index")[domains]
        write_ratios(work / "confirm_ratios.csv", confirm_ratios)
        run_swarm_step(cfg, pool, read_ratios(work / "confirm_ratios.csv"), "confirm")
        if cfg.proxy.mode == "dora" and cfg.proxy.base_model:
            evaluate_base(cfg, work / "confirm" / "metrics.csv")
        confirm = read_metrics(work / "confirm" / "metrics.csv")
        timed("confirm", t0)

    t0 = time.perf_counter()
    report = build_report(cfg, pool, found, confirm, timings)
    timed("report", t0)
    atomic_write_text(work / "timings.json", json.dumps(timings, indent=2))
    return RunSummary(
        workdir=work,
        report=report,
        optimal=work / "optimal.json",
        dataset=dataset_dir,
        confirm=confirm,
        timings=timings,
    )
