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
from mixlab.evaluation.config import EvalConfig
from mixlab.executors import Executor, Resources, make_executor
from mixlab.pool.ingest import ingest_config
from mixlab.pool.pool import Pool, atomic_write_text
from mixlab.swarm import read_metrics, read_ratios, write_ratios

log = logging.getLogger("mixlab.pipeline")


@dataclass
class RunSummary:
    """Where the results of a pipeline run are."""

    workdir: Path
    report: Path
    optimal: Path
    dataset: Path | None
    confirm: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    trust: dict[str, str] = field(default_factory=dict)
    """Objective -> its trust verdict in words."""
    rounds: list[dict[str, Any]] = field(default_factory=list)
    """One record per round of proxies (``rounds.json``)."""
    final: dict[str, Any] | None = None
    """``final/final.json`` of the final run, when it ran."""
    final_note: str = ""
    """``done``, ``skipped: <why>`` or ``failed: <error>``."""


# --- per-run callables for the swarm (module level so they pickle into worker processes) --------------


def make_selection(
    pool_root: str, select_json: str, workdir: str, run: str, weights: dict[str, float]
) -> Path:
    """Select and export the training documents of one proxy run (skipped when already exported).

    A repeat ``<run>-seed<k>`` selects with seed + k. The folder is keyed by the mixture and the selection
    config, so a changed optimum or budget never reuses a stale selection.
    """
    import hashlib

    from mixlab.mixtures.sampler import repeat_seed
    from mixlab.select.config import SelectConfig
    from mixlab.select.export import export_selection
    from mixlab.select.selection import select_documents

    cfg = SelectConfig.model_validate_json(select_json)
    cfg = cfg.model_copy(update={"seed": cfg.seed + repeat_seed(run)})
    what = cfg.model_dump(exclude=set(_RECIPE_IGNORED["select"]))  # the files do not depend on those
    key = json.dumps({"w": {d: round(float(v), 10) for d, v in sorted(weights.items())}, "cfg": what})
    out = Path(workdir) / "selections" / f"{run}-{hashlib.blake2b(key.encode(), digest_size=6).hexdigest()}"
    if (out / "manifest.json").exists():
        return out
    pool = Pool.open(pool_root)
    selection = select_documents(pool, weights, cfg)
    export_selection(pool, selection, out, ["jsonl"])
    return out


def train_run(proxy_json: str, tokenizer: str, run: str, data: Path, out_dir: Path) -> Any:
    """Train one proxy with the pipeline's fixed hyper-parameters (a repeat ``<run>-seed<k>``: seed + k)."""
    from mixlab.mixtures.sampler import repeat_seed
    from mixlab.proxies.config import ProxyConfig
    from mixlab.proxies.trainer import train_proxy

    cfg = ProxyConfig.model_validate_json(proxy_json)
    cfg = cfg.model_copy(update={"seed": cfg.seed + repeat_seed(run)})
    return train_proxy(cfg, data, tokenizer, out_dir)


def evaluate_run(eval_json: str, run: str, model_dir: Path, out_dir: Path | None = None) -> dict[str, float]:
    """Score one trained proxy on every task and every domain's validation slice: one metrics row."""
    from mixlab.evaluation.config import EvalConfig
    from mixlab.evaluation.runner import evaluate_run as run_eval

    out = out_dir if out_dir is not None else Path(model_dir) / "eval"
    return run_eval(model_dir, EvalConfig.model_validate_json(eval_json), out_dir=out)


# --- steps ----------------------------------------------------------------------------------------------


def eval_config(cfg: PipelineConfig) -> EvalConfig:
    """The evaluation stage's config: the pipeline's ``evaluation`` section itself (one model per step)."""
    return cfg.evaluation


def pipeline_executor(cfg: PipelineConfig) -> Executor:
    """The executor of the pipeline file (``executor``, ``workers``, ``ray_address``)."""
    return make_executor(cfg.executor, cfg.workers, cfg.ray_address)


def prepare_pool(cfg: PipelineConfig, executor: Executor | None = None) -> Pool:
    """ingest, then annotate: domains, quality, duplicates, contamination (each skipped when done)."""
    from mixlab.dedup.config import DecontamConfig
    from mixlab.dedup.stage import decontaminate_pool, dedup_pool
    from mixlab.domains.partition import partition_pool
    from mixlab.quality.stage import score_quality
    from mixlab.stage_summary import watch_ingest, watch_stage

    work = Path(cfg.workdir)
    executor = executor or pipeline_executor(cfg)
    with watch_ingest(work / "pool", log):  # one line per step: documents, tokens, seconds, drops
        # input files and row groups in parallel; the same pool for any number of workers
        pool = ingest_config(cfg.ingest, work / "pool", executor=executor)
    with watch_stage(pool, "domains", log):
        partition_pool(pool, cfg.partition, executor=executor)
    if cfg.quality is not None:
        with watch_stage(pool, "quality", log) as step:
            step.drops = dict(score_quality(pool, cfg.quality, executor=executor).get("by_reason", {}))
    if cfg.dedup is not None:
        with watch_stage(pool, "dedup", log) as step:
            found = dedup_pool(pool, cfg.dedup, executor=executor).get("duplicates", {})
            step.drops = {f"{kind} duplicate": int(n) for kind, n in found.items()}
    if cfg.decontaminate:
        with watch_stage(pool, "decontam", log) as step:
            summary = decontaminate_pool(
                pool, DecontamConfig(tasks=dict(cfg.evaluation.tasks)), executor=executor
            )
            step.drops = {f"contaminated by {t}": int(n) for t, n in summary.get("per_task", {}).items()}
    return pool


def candidate_mixtures(cfg: PipelineConfig, pool: Pool) -> pd.DataFrame:
    """RegMix-style candidates around the token prior, written once to ratios.csv."""
    from mixlab.mixtures.sampler import available_tokens, sample_mixtures, token_prior

    path = Path(cfg.workdir) / "ratios.csv"
    if path.exists():
        return read_ratios(path)
    ratios = sample_mixtures(
        token_prior(pool, view=cfg.mixtures), mixture_config(cfg), available_tokens(pool, view=cfg.mixtures)
    )
    write_ratios(path, ratios)
    return read_ratios(path)


def mixture_config(cfg: PipelineConfig) -> Any:
    """The mixtures section with the proxies' budget filled in (``mixtures.budget_tokens`` or the selection's)."""
    return cfg.mixtures.model_copy(
        update={"budget_tokens": cfg.mixtures.budget_tokens or cfg.select.budget_tokens}
    )


def baseline_mixtures(cfg: PipelineConfig, pool: Pool, domains: list[str]) -> dict[str, dict[str, float]]:
    """The natural token proportions (after exclusions) and the uniform mixture, as the swarm has them.

    Both are made feasible at the proxy budget exactly as the swarm's first two rows are
    (:func:`mixlab.mixtures.sampler.anchor_mixtures`): a domain too small for its share (under the epochs
    cap) gets all it can hold and the rest is spread over the others; a share under ``min_weight`` is 0.
    So a confirmation run of ``natural`` or ``uniform`` repeats a swarm run and can reuse it.
    """
    from mixlab.mixtures.sampler import anchor_mixtures, available_tokens, token_prior

    view = mixture_config(cfg).model_copy(update={"domains": list(domains)})
    anchors = anchor_mixtures(
        token_prior(pool, view=cfg.mixtures), view, available_tokens(pool, view=cfg.mixtures)
    )
    return {name: {d: float(w) for d, w in zip(domains, row, strict=True)} for name, row in anchors.items()}


def run_swarm_step(
    cfg: PipelineConfig,
    pool: Pool,
    ratios: pd.DataFrame,
    name: str = "swarm",
    scale: float = 1.0,
    executor: Executor | None = None,
) -> pd.DataFrame:
    """Train and evaluate one proxy per mixture row; finished runs are skipped, failures recorded.

    ``scale`` multiplies the proxies' training tokens (selection budget and steps). A run whose mixture
    changed since it finished (e.g. a new optimum) is trained again. Runs go to ``executor`` (default:
    the pipeline file's), each asking for the proxy's threads as CPUs and, on CUDA, one GPU.
    """
    from mixlab.proxies.swarm import run_swarm

    work = Path(cfg.workdir)
    evaluate = partial(evaluate_run, eval_config(cfg).model_dump_json())
    proxy = cfg.proxy
    select = cfg.select
    if scale != 1.0:
        proxy = proxy.model_copy(update={"max_steps": max(1, round(proxy.max_steps * scale))})
        select = select.model_copy(update={"budget_tokens": max(1, round(select.budget_tokens * scale))})
    if cfg.workers > 1 and proxy.num_threads is None:  # one process per core, not cores x cores threads
        proxy = proxy.model_copy(update={"num_threads": max(1, (os.cpu_count() or 1) // cfg.workers)})
    out_dir = work / name
    _forget_changed_runs(ratios, out_dir, swarm_recipe(cfg, scale, pool))
    executor = executor or pipeline_executor(cfg)
    on_gpu = proxy.device == "cuda" or (proxy.device == "auto" and executor.total_gpus() > 0)
    return run_swarm(
        ratios,
        make_data=partial(make_selection, str(pool.root), select.model_dump_json(), str(work)),
        train=partial(train_run, proxy.model_dump_json(), pool.tokenizer_spec),
        evaluate=evaluate,
        out_dir=out_dir,
        metrics_csv=out_dir / "metrics.csv",
        executor=executor,
        resources=Resources(cpus=float(proxy.num_threads or 1), gpus=1.0 if on_gpu else 0.0),
    )


#: Settings that change how a proxy is computed but not what it computes, or that only later stages read.
_RECIPE_IGNORED = {
    "proxy": ("num_threads", "check_every"),
    "evaluation": ("batch_size", "loss_batch_size", "device", "metric", "metrics", "signal_model"),
    "select": ("shuffle_bucket_chars", "formats"),  # how the export is written, not what it holds
}


def swarm_recipe(cfg: PipelineConfig, scale: float, pool: Pool) -> dict[str, Any]:
    """Everything besides its mixture that decides a proxy run's result: proxy, selection and evaluation.

    A run trained under another recipe is stale: :func:`_forget_changed_runs` trains it again.
    """
    proxy = cfg.proxy.model_dump(mode="json")
    select = cfg.select.model_dump(mode="json")
    evaluation = eval_config(cfg).model_dump(mode="json")
    for section, fields in (("proxy", proxy), ("evaluation", evaluation), ("select", select)):
        for key in _RECIPE_IGNORED[section]:
            fields.pop(key, None)
    return {
        "proxy": proxy,
        "select": select,
        "evaluation": evaluation,
        "scale": scale,
        "tokenizer": pool.tokenizer_spec,
    }


def _forget_changed_runs(ratios: pd.DataFrame, out_dir: Path, recipe: dict[str, Any] | None = None) -> None:
    """Drop the finished marker of every run whose mixture or recipe differs from what it was trained on.

    ``out_dir/ratios.csv`` records the mixture of every run the folder holds: the rows of ``ratios``, then
    rows of earlier calls that ``ratios`` does not name (a later round's runs, while an earlier round is
    being finished), so that those keep their markers. ``out_dir/recipe.json`` records ``recipe``
    (:func:`swarm_recipe`); when it changed, every run of the folder is trained again, and the log says
    which sections changed.
    """
    from mixlab.proxies.swarm import DONE_MARKER

    recipe_path = out_dir / "recipe.json"
    if recipe is not None:
        old_recipe = json.loads(recipe_path.read_text(encoding="utf-8")) if recipe_path.exists() else None
        if old_recipe is not None and old_recipe != recipe:
            changed = sorted(k for k in set(old_recipe) | set(recipe) if old_recipe.get(k) != recipe.get(k))
            markers = list((out_dir / "runs").glob(f"*/{DONE_MARKER}"))
            log.info(
                "%s: the proxy recipe changed (%s); its %d finished runs are trained again",
                out_dir.name,
                ", ".join(changed),
                len(markers),
            )
            for marker in markers:
                marker.unlink()
        if old_recipe != recipe:
            out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(recipe_path, json.dumps(recipe, indent=2, sort_keys=True) + "\n")
    path = out_dir / "ratios.csv"
    record = ratios
    if path.exists():
        old = read_ratios(path)
        others = old.loc[[r for r in old.index if r not in ratios.index]]
        if len(others) and set(old.columns) == set(ratios.columns):
            record = pd.concat([ratios, others[list(ratios.columns)]])
        for run in ratios.index:
            if run in old.index and set(old.columns) == set(ratios.columns):
                same = np.allclose(
                    old.loc[run, list(ratios.columns)].to_numpy(float), ratios.loc[run].to_numpy(float)
                )
                if same:
                    continue
            marker = out_dir / "runs" / str(run) / DONE_MARKER
            if marker.exists():
                log.info("%s: mixture of run %s changed; it is trained again", out_dir.name, run)
                marker.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_ratios(path, record)


def ok_runs(metrics: pd.DataFrame) -> pd.DataFrame:
    """The rows of a metrics table whose status is ok."""
    status = metrics.get("status", pd.Series("ok", index=metrics.index)).fillna("ok").astype(str)
    return metrics[status == "ok"]


def choose_metrics(
    cfg: PipelineConfig, ratios: pd.DataFrame, metrics: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The signal table of every (objective, metric) and the metric each objective is fitted on."""
    from mixlab.regression.signal import choose_metric, signal_table

    ev = cfg.evaluation
    tasks = list(ev.tasks)
    runs = [r for r in ratios.index if r in metrics.index]
    table = signal_table(
        ratios.loc[runs],
        metrics.loc[runs],
        tasks,
        model=ev.signal_model,
        folds=cfg.fit.cv_folds,
        seed=cfg.fit.fold_seed,
    )
    chosen = {}
    for objective in ["total", *tasks]:
        preferred = ev.metrics.get(objective) or (None if ev.metric == "auto" else ev.metric)
        chosen[objective] = choose_metric(table, objective, min_snr=cfg.trust.min_snr, preferred=preferred)
    return table, chosen


def fit_and_search(
    cfg: PipelineConfig,
    ratios: pd.DataFrame,
    metrics: pd.DataFrame,
    prior: dict[str, float],
    available: dict[str, int],
    write: bool = True,
) -> dict[str, Any]:
    """Choose each objective's metric, fit one regressor per objective (total + each task), search each
    optimum, judge whether it can be trusted, and write ``optimal*.json`` and ``signal.csv`` (unless
    ``write`` is False: the fit of a round before the last, :mod:`mixlab.rounds`).

    The search respects what the pool holds: no domain may need more than ``max_epochs`` passes over its
    available tokens at the final build budget.
    """
    from mixlab.regression.fit import Target, fit_targets
    from mixlab.regression.signal import DIRECTIONS
    from mixlab.search.run import search_all, write_optimal
    from mixlab.search.trust import judge

    work = Path(cfg.workdir)
    ok = ok_runs(metrics)
    runs = [r for r in ratios.index if r in ok.index]
    if len(runs) < 3:
        raise ValueError(f"only {len(runs)} proxy runs succeeded; at least 3 are needed to fit a regressor")
    signal, chosen_metric = choose_metrics(cfg, ratios.loc[runs], ok.loc[runs])
    if write:
        atomic_write_text(work / "signal.csv", signal.to_csv(index=False))
    tasks = list(cfg.evaluation.tasks)
    m_total = chosen_metric["total"]
    targets = [
        Target(
            name="total", columns=[f"{t}/{m_total}" for t in tasks], kind="sum", direction=DIRECTIONS[m_total]
        )
    ]
    targets += [
        Target(
            name=t,
            columns=[f"{t}/{chosen_metric[t]}"],
            kind="column",
            direction=DIRECTIONS[chosen_metric[t]],
        )
        for t in tasks
    ]
    n_mixtures = int(signal["n_mixtures"].max())
    folds = min(cfg.fit.cv_folds, n_mixtures)
    fit = fit_targets(
        ratios.loc[runs],
        ok.loc[runs],
        targets,
        model=cfg.fit.model,
        folds=folds,
        seed=cfg.fit.fold_seed,
        candidates=cfg.fit.candidates,
        metric=cfg.fit.selection_metric,
    )
    constraints = cfg.search.constraints(
        availability={d: float(v) for d, v in available.items()},
        budget=float(cfg.build.budget_tokens),
        max_epochs=cfg.select.max_epochs,
    )
    results = search_all(
        fit, prior=prior, constraints=constraints, config=cfg.search, chosen=cfg.search.objective
    )
    summary = fit.summary()
    verdicts = {}
    for name, res in results["objectives"].items():
        metric = chosen_metric[name]
        row = signal[(signal["objective"] == name) & (signal["metric"] == metric)].iloc[0]
        verdict = judge(name, metric, float(summary.loc[name, "spearman"]), float(row["snr"]), cfg.trust)
        verdicts[name] = verdict
        res.update(
            {
                "metric": metric,
                "trusted": verdict.trusted,
                "oof_spearman": verdict.as_dict()["oof_spearman"],
                "snr": verdict.as_dict()["snr"],
                "reason": verdict.reason,
            }
        )
        log.log(
            logging.DEBUG if not write else logging.INFO if verdict.trusted else logging.WARNING,
            "%s: %s",
            "trusted" if verdict.trusted else "UNTRUSTED",
            verdict.reason,
        )
    if write:
        write_optimal(work / "optimal.json", results, out_dir=work)
    return {"fit": fit, "results": results, "signal": signal, "metrics": chosen_metric, "verdicts": verdicts}


def evaluate_base(cfg: PipelineConfig, metrics_csv: Path) -> None:
    """Score the untouched base model once (row ``base``): the "before" of the challenge's after - before."""
    from mixlab.swarm import upsert_metrics

    if metrics_csv.exists() and "base" in read_metrics(metrics_csv).index:
        return
    assert cfg.proxy.base_model is not None
    out = metrics_csv.parent / "runs" / "base" / "eval"
    row = evaluate_run(eval_config(cfg).model_dump_json(), "base", Path(cfg.proxy.base_model), out)
    upsert_metrics(metrics_csv, "base", {**row, "status": "ok", "error": ""})


def build_dataset(cfg: PipelineConfig, pool: Pool, weights: dict[str, float], out: Path) -> Path:
    """The final dataset at the build budget; rebuilt when the mixture or the selection config changed."""
    from mixlab.select.config import SelectConfig
    from mixlab.select.export import export_selection
    from mixlab.select.selection import select_documents

    build_cfg = SelectConfig.model_validate(
        cfg.select.model_copy(update={"budget_tokens": cfg.build.budget_tokens}).model_dump()
    )
    key = json.dumps(
        {
            "weights": {d: round(float(v), 10) for d, v in sorted(weights.items())},
            "select": build_cfg.model_dump(),
            "formats": list(cfg.build.formats),
        },
        sort_keys=True,
    )
    stamp = out.parent / f".{out.name}.build.json"
    if (out / "manifest.json").exists() and stamp.exists() and stamp.read_text(encoding="utf-8") == key:
        return out
    selection = select_documents(pool, weights, build_cfg)
    with pipeline_executor(cfg) as executor:  # the shard reads of the export
        export_selection(pool, selection, out, list(cfg.build.formats), executor=executor)
    atomic_write_text(stamp, key)
    return out


def best_swarm_mixture(
    ratios: pd.DataFrame, metrics: pd.DataFrame, columns: list[str], direction: str
) -> dict[str, float]:
    """The swarm's best measured mixture on the sum of ``columns`` (repeats averaged)."""
    from mixlab.regression.signal import collapse_repeats

    ok = ok_runs(metrics)
    runs = [r for r in ratios.index if r in ok.index]
    unique, means = collapse_repeats(ratios.loc[runs], ok.loc[runs])
    total = means[columns].sum(axis=1, min_count=len(columns)).dropna()
    best = total.idxmin() if direction == "min" else total.idxmax()
    return {d: float(v) for d, v in unique.loc[best].items()}


def confirm_step(
    cfg: PipelineConfig,
    pool: Pool,
    ratios: pd.DataFrame,
    swarm_metrics: pd.DataFrame,
    found: dict[str, Any],
    baselines: dict[str, dict[str, float]],
    domains: list[str],
) -> dict[str, Any]:
    """Train every arm with ``confirm.seeds`` seeds, score the base model, write ``confirm.json``."""
    from mixlab.confirm.stage import arm_runs, confirm_ratios, read_item_scores, summarise
    from mixlab.regression.signal import DIRECTIONS

    work = Path(cfg.workdir)
    objectives = found["results"]["objectives"]
    tasks = list(cfg.evaluation.tasks)
    chosen = found["metrics"]
    arms: dict[str, dict[str, float]] = {"optimal": objectives[cfg.search.objective]["weights"]}
    for b in cfg.confirm.baselines:
        if b == "best_swarm":
            cols = [f"{t}/{chosen['total']}" for t in tasks]
            arms[b] = best_swarm_mixture(ratios, swarm_metrics, cols, DIRECTIONS[chosen["total"]])
        else:
            arms[b] = baselines[b]
    if cfg.confirm.per_task:
        for t in tasks:
            arms[f"optimal_{t}"] = objectives[t]["weights"]
    table = confirm_ratios(arms, domains, cfg.confirm.seeds)
    write_ratios(work / "confirm_ratios.csv", table)
    table = read_ratios(work / "confirm_ratios.csv")
    if cfg.confirm.scale == 1.0 and cfg.proxies.method == "swarm":  # same recipe: equal runs are reused
        from mixlab.confirm.reuse import reuse_identical_runs

        recipe = swarm_recipe(cfg, 1.0, pool)
        _forget_changed_runs(table, work / "confirm", recipe)
        swarm_done = (work / "swarm" / "recipe.json").exists() and json.loads(
            (work / "swarm" / "recipe.json").read_text(encoding="utf-8")
        ) == recipe
        if swarm_done:  # the swarm's runs were trained under this very recipe
            reuse_identical_runs(table, work / "confirm", ratios, work / "swarm")
    metrics = run_swarm_step(cfg, pool, table, "confirm", cfg.confirm.scale)
    runs_of = {arm: arm_runs(arm, cfg.confirm.seeds) for arm in arms}
    if cfg.proxy.mode == "dora" and cfg.proxy.base_model:
        evaluate_base(cfg, work / "confirm" / "metrics.csv")
        metrics = read_metrics(work / "confirm" / "metrics.csv")
        runs_of["base"] = ["base"]
    metric_names = ["acc", "acc_norm", "gold_bpb", "correct_prob", "margin"]
    ok = ok_runs(metrics)
    scores = {
        run: read_item_scores(work / "confirm" / "runs" / run / "eval", tasks, metric_names)
        for runs in runs_of.values()
        for run in runs
        if run in ok.index
    }
    summary = summarise(
        runs_of,
        scores,
        tasks,
        metric_names,
        headline_metrics=chosen,
        weights=arms,
        n_boot=cfg.confirm.bootstrap,
        seed=cfg.seed,
    )
    summary["scale"] = cfg.confirm.scale
    atomic_write_text(work / "confirm.json", json.dumps(summary, indent=2) + "\n")
    log.info("confirmation: %s", summary["headline"])
    return summary


def run_pipeline(cfg: PipelineConfig) -> RunSummary:
    """Run every stage; return where the report, the optimum, the dataset and the final model are.

    The run directory is locked (``DIR/.mixlab-run.lock``) while the run works: a second run of the same
    directory waits, and ``mixlab status`` tells a live run from an interrupted one.
    """
    from mixlab.paths import file_lock
    from mixlab.status import RUN_LOCK

    work = Path(cfg.workdir)
    work.mkdir(parents=True, exist_ok=True)
    with file_lock(work / RUN_LOCK, f"run directory {work}"):
        return _run_locked(cfg, work)


def _run_locked(cfg: PipelineConfig, work: Path) -> RunSummary:
    from mixlab.final import final_paths
    from mixlab.mixtures.sampler import available_tokens
    from mixlab.report.build import build_report
    from mixlab.rounds import finish_rounds, run_rounds
    from mixlab.routes import run_proxies  # proxies.method: swarm | merged | mixmin

    timings: dict[str, float] = {}

    def timed(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 2)
        log.info("%s done in %.1fs", name, timings[name])
        atomic_write_text(work / "timings.json", json.dumps(timings, indent=2))

    t0 = time.perf_counter()
    pool = prepare_pool(cfg, pipeline_executor(cfg))
    timed("annotate", t0)

    t0 = time.perf_counter()
    ratios = candidate_mixtures(cfg, pool)
    domains = list(ratios.columns)
    baselines = baseline_mixtures(cfg, pool, domains)
    available = available_tokens(pool, view=cfg.mixtures)
    rounds = None
    routed = None
    if cfg.proxies.method == "swarm":  # rounds: each round's runs, then the next round's proposal
        rounds = run_rounds(cfg, pool, ratios, baselines["natural"], available)
        ratios, swarm_metrics = rounds.ratios, rounds.metrics
    else:
        ratios, swarm_metrics, routed = run_proxies(cfg, pool, ratios)
    timed("swarm", t0)

    t0 = time.perf_counter()
    found = routed or fit_and_search(cfg, ratios, swarm_metrics, baselines["natural"], available)
    if rounds is not None:
        finish_rounds(cfg, rounds, found)
    optimal_weights: dict[str, float] = found["results"]["objectives"][cfg.search.objective]["weights"]
    timed("fit+search", t0)

    t0 = time.perf_counter()
    objective = found["results"]["objectives"][cfg.search.objective]
    dataset_dir: Path | None = final_paths(work).dataset
    if objective["trusted"] or cfg.trust.allow_untrusted:
        if not objective["trusted"]:
            log.warning(
                "building the final dataset from an UNTRUSTED optimum (trust.allow_untrusted): %s",
                objective["reason"],
            )
        build_dataset(cfg, pool, optimal_weights, final_paths(work).dataset)
    else:
        log.warning(
            "final dataset NOT built: the %s optimum is untrusted (%s). Grow the swarm, use a metric with "
            "more signal, or set trust.allow_untrusted: true to build it anyway",
            cfg.search.objective,
            objective["reason"],
        )
        dataset_dir = None
    timed("build", t0)

    confirm = None
    if cfg.confirm.enabled:
        t0 = time.perf_counter()
        confirm = confirm_step(cfg, pool, ratios, swarm_metrics, found, baselines, domains)
        timed("confirm", t0)

    t0 = time.perf_counter()
    final, final_note = final_step(cfg, pool, work, dataset_dir is not None)
    timed("final", t0)

    t0 = time.perf_counter()
    report = build_report(cfg, pool, found, confirm, timings)
    timed("report", t0)
    return RunSummary(
        workdir=work,
        report=report,
        optimal=work / "optimal.json",
        dataset=dataset_dir,
        confirm=confirm,
        timings=timings,
        trust={
            name: ("trusted: " if v.trusted else "UNTRUSTED: ") + v.reason
            for name, v in found["verdicts"].items()
        },
        rounds=rounds.records if rounds is not None else [],
        final=final,
        final_note=final_note,
    )


def final_step(cfg: PipelineConfig, pool: Pool, work: Path, built: bool) -> tuple[dict[str, Any] | None, str]:
    """The final run (:mod:`mixlab.final`) when enabled and possible: ``(final.json, note)``.

    Skipped, with a log line and ``final/skipped.json``, when disabled, when the final dataset was not
    built (untrusted optimum) or when there is no base model; a failure is logged and recorded in
    ``final/error.log`` and its note says ``failed``, so the report is still written.
    """
    from mixlab.final import final_paths, run_final, skip_final

    base = cfg.final.base_model or cfg.proxy.base_model
    reason = (
        "final.enabled is false"
        if not cfg.final.enabled
        else "no final dataset (the optimum is untrusted; trust.allow_untrusted builds it anyway)"
        if not built
        else "no base model to adapt (set final.base_model; proxy.mode scratch has none)"
        if base is None
        else ""
    )
    if reason:
        skip_final(work, reason)
        return None, f"skipped: {reason}"
    assert base is not None
    try:
        with pipeline_executor(cfg) as executor:
            final = run_final(
                cfg.final, base, pool.tokenizer_spec, eval_config(cfg), work, cfg.seed, executor=executor
            )
    except Exception as exc:  # noqa: BLE001 - the report is still written; the command exits non-zero
        log.error("final run FAILED: %s (traceback: %s)", exc, final_paths(work).error)
        return None, f"failed: {exc}"
    return final, "done"
