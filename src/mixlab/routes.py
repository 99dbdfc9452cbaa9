"""Three routes from candidate mixtures to scored proxies (``proxies.method`` of the pipeline file).

* ``swarm``: one trained proxy per candidate mixture (RegMix; today's default).
* ``merged``: one DoRA component per domain (``OUT/components``), then every candidate mixture simulated by
  merging the components' weight updates (:mod:`mixlab.proxies.merging`) and evaluated in memory; the
  merged proxies' rows go to ``OUT/swarm/metrics.csv``, so fit, search, trust and confirmation run as for
  a swarm. A merged run is finished when its row is ok and its ``MERGED`` marker records the same mixture
  and components; a real run's ``DONE`` marker in that folder is removed when a merged row replaces it.
* ``mixmin``: the same components, then MixMin (:mod:`mixlab.search.mixmin`) picks each optimum from their
  per-item likelihoods, with no swarm and no regressor.

A route is checked against real proxies when ``proxies.check_runs`` > 0: that many distinct candidate
mixtures are trained for real (``OUT/check``) and each objective's verdict also needs the route's scores
of those mixtures to rank like the real ones (Spearman >= ``trust.min_oof_spearman``). MixMin has no other
evidence, so without real proxies its optima are untrusted.

Like :mod:`mixlab.pipeline`, this module knows every stage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mixlab.pool.pool import atomic_write_text

if TYPE_CHECKING:  # config.py composes ProxiesSection, so it is imported only for type checking here
    from mixlab.config import PipelineConfig
    from mixlab.pool.pool import Pool

log = logging.getLogger("mixlab.routes")

__all__ = [
    "ProxiesSection",
    "check_route",
    "distinct_runs",
    "evaluate_merged",
    "mixmin_search",
    "run_proxies",
    "train_components",
]

MERGED_MARKER = "MERGED"


class ProxiesSection(BaseModel):
    """How candidate mixtures become scores: trained proxies, merged components, or MixMin."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["swarm", "merged", "mixmin"] = Field(
        "swarm",
        description=(
            "swarm: train one proxy per candidate mixture; merged: train one DoRA component per domain and "
            "simulate each mixture by merging their weight updates (DeMix); mixmin: the same components, "
            "optimum chosen from their per-item likelihoods (MixMin), no swarm and no regressor"
        ),
    )
    general_share: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="share of general data in every other domain's component (DeMix: 0.5)",
    )
    general_domain: str = Field("general", description="the domain general_share takes its data from")
    merge: Literal["linear", "norm"] = Field(
        "linear",
        description=(
            "merged: linear (DeMix's base + sum w_i x component update; ranked real proxies of the real-data "
            "study at Spearman 0.84) or norm (the same, rescaled per tensor to sum w_i x |component update|; "
            "0.86 on the demo world but -0.04 on the real-data study)"
        ),
    )
    simulate: int = Field(
        0,
        ge=0,
        description=(
            "merged: this many more mixtures (the candidates' sampler, another seed) scored by merged proxies "
            "only, `merged-NNN`; they cost evaluation, no training, and the fit uses them beside the candidates"
        ),
    )
    check_runs: int = Field(
        0,
        ge=0,
        description=(
            "merged/mixmin: train this many distinct candidate mixtures for real (OUT/check) and trust an "
            "optimum only if the route ranks them like the real proxies do"
        ),
    )


# --- components -----------------------------------------------------------------------------------------


def train_components(
    cfg: PipelineConfig, pool: Pool, domains: list[str], name: str = "components"
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Path]]:
    """Train (or reuse) one component per domain with the swarm's recipe: (table, metrics, domain -> folder)."""
    from mixlab.mixtures.sampler import available_tokens, weight_caps
    from mixlab.pipeline import run_swarm_step
    from mixlab.proxies.components import component_dirs, component_table

    sec = cfg.proxies
    available = available_tokens(pool, view=cfg.mixtures)
    caps = weight_caps(domains, available, cfg.select.budget_tokens, cfg.select.max_epochs)
    table = component_table(domains, sec.general_share, sec.general_domain, [float(c) for c in caps])
    metrics = run_swarm_step(cfg, pool, table, name)
    return table, metrics, component_dirs(Path(cfg.workdir) / name, table, metrics)


def distinct_runs(ratios: pd.DataFrame) -> list[str]:
    """The first run of every distinct mixture (repeats of a mixture left out)."""
    from mixlab.regression.signal import mixture_groups

    groups = mixture_groups(ratios)
    return [str(r) for r in ratios.index if groups[r] == r]


# --- merged proxies -------------------------------------------------------------------------------------


def simulated_mixtures(cfg: PipelineConfig, pool: Pool, n: int) -> pd.DataFrame:
    """``n`` more mixtures from the candidates' sampler (seed + 1, no repeats, no prior rows): ``merged-NNN``."""
    from mixlab.mixtures.sampler import available_tokens, sample_mixtures, token_prior

    mcfg = cfg.mixtures.model_copy(
        update={"n": n, "seed": cfg.mixtures.seed + 1, "repeats": 0, "include_prior": False}
    )
    out = sample_mixtures(
        token_prior(pool, view=cfg.mixtures), mcfg, available_tokens(pool, view=cfg.mixtures)
    )
    out.index = pd.Index([f"merged-{i:03d}" for i in range(len(out))], name="run")
    return out


def _fingerprint(dirs: dict[str, Path]) -> dict[str, str]:
    """Component -> sha256 of its train_log.json (changes whenever the component is trained again)."""
    from mixlab.proxies.trainer import TRAIN_LOG

    return {d: hashlib.sha256((p / TRAIN_LOG).read_bytes()).hexdigest()[:16] for d, p in sorted(dirs.items())}


def evaluate_merged(
    cfg: PipelineConfig,
    table: pd.DataFrame,
    dirs: dict[str, Path],
    ratios: pd.DataFrame,
    out_dir: Path,
    runs: list[str] | None = None,
) -> pd.DataFrame:
    """Score the merged proxy of every mixture of ``ratios`` (``runs``: default each distinct mixture once).

    Writes ``out_dir/metrics.csv`` rows and ``out_dir/runs/<run>/eval``; finished runs are skipped, a
    failure is recorded (status failed, error.log) and the rest go on. Repeats of a mixture are not
    evaluated: a merged proxy is deterministic, so a repeat would claim zero noise.
    """
    from mixlab.evaluation.multiple_choice import load_model
    from mixlab.evaluation.runner import evaluate_loaded, read_validation_texts
    from mixlab.evaluation.tasks import load_task
    from mixlab.pipeline import eval_config
    from mixlab.proxies.merging import ComponentWeights, MergedProxy, merge_coefficients
    from mixlab.proxies.swarm import DONE_MARKER, ERROR_LOG, finished_runs
    from mixlab.swarm import read_metrics, upsert_metrics

    if cfg.proxy.mode != "dora" or not cfg.proxy.base_model:
        raise ValueError("proxies.method merged needs DoRA proxies on a base model (proxy.mode: dora)")
    out_dir = Path(out_dir)
    metrics_csv = out_dir / "metrics.csv"
    names = [c.removeprefix("component-") for c in table.index]
    M = table.to_numpy(dtype=np.float64).T  # domains x components
    domains = list(table.columns)
    fp = _fingerprint(dirs)
    runs = distinct_runs(ratios) if runs is None else runs
    ok_rows = finished_runs(metrics_csv, out_dir) if metrics_csv.exists() else set()
    metrics = read_metrics(metrics_csv) if metrics_csv.exists() else pd.DataFrame()
    ok = set(metrics.index[metrics["status"].astype(str) == "ok"]) if "status" in metrics else set()

    def key(run: str) -> str:
        w = {d: round(float(ratios.loc[run, d]), 10) for d in domains}
        return json.dumps({"weights": w, "components": fp, "merge": cfg.proxies.merge}, sort_keys=True)

    def done(run: str) -> bool:
        marker = out_dir / "runs" / run / MERGED_MARKER
        real = run in ok_rows  # a real proxy's row (DONE marker) is not a merged one
        return run in ok and not real and marker.exists() and marker.read_text(encoding="utf-8") == key(run)

    todo = [r for r in runs if not done(r)]
    if len(todo) < len(runs):
        log.info("merged: %d of %d mixtures already evaluated, skipped", len(runs) - len(todo), len(runs))
    if todo:
        ev = eval_config(cfg)
        weights = ComponentWeights.load(cfg.proxy.base_model, {n: dirs[n] for n in names})
        model, tokenizer = load_model(dirs[names[0]], ev.device)
        proxy = MergedProxy(weights, model)
        tasks = {name: load_task(name, spec) for name, spec in ev.tasks.items()}
        texts = read_validation_texts(ev)
        from mixlab.console import tqdm

        for run in tqdm(todo, desc="merged", unit="mixture", top=True):
            run_dir = out_dir / "runs" / run
            run_dir.mkdir(parents=True, exist_ok=True)
            for stale in (MERGED_MARKER, DONE_MARKER, ERROR_LOG):
                (run_dir / stale).unlink(missing_ok=True)
            try:
                x = ratios.loc[run, domains].to_numpy(dtype=np.float64)
                proxy.set_coefficients(merge_coefficients(x, M), cfg.proxies.merge)
                row = evaluate_loaded(
                    model, tokenizer, ev, out_dir=run_dir / "eval", tasks=tasks, texts=texts
                )
                upsert_metrics(metrics_csv, run, {**row, "status": "ok", "error": ""})
                atomic_write_text(run_dir / MERGED_MARKER, key(run))
            except Exception as exc:  # noqa: BLE001 - one failed mixture is recorded, the rest go on
                atomic_write_text(run_dir / ERROR_LOG, traceback.format_exc())
                upsert_metrics(
                    metrics_csv, run, {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                )
                log.warning("merged proxy %s failed: %s", run, exc)
    atomic_write_text(out_dir / "route.json", json.dumps({"method": "merged", "components": fp}, indent=2))
    return read_metrics(metrics_csv)


# --- MixMin ---------------------------------------------------------------------------------------------


def _constraints(cfg: PipelineConfig, available: dict[str, int]) -> Any:
    return cfg.search.constraints(
        availability={d: float(v) for d, v in available.items()},
        budget=float(cfg.build.budget_tokens),
        max_epochs=cfg.select.max_epochs,
    )


def mixmin_search(
    cfg: PipelineConfig,
    table: pd.DataFrame,
    dirs: dict[str, Path],
    prior: dict[str, float],
    available: dict[str, int],
) -> dict[str, Any]:
    """MixMin's optimum of the total and of every task, from the components' per-item files (no verdicts)."""
    from mixlab.search.mixmin import read_task_items, search_mixmin
    from mixlab.search.simplex import feasible_bounds

    domains = list(table.columns)
    names = [c.removeprefix("component-") for c in table.index]
    lower, upper = feasible_bounds(domains, _constraints(cfg, available))
    items = {t: read_task_items([dirs[n] / "eval" for n in names], t) for t in cfg.evaluation.tasks}
    return search_mixmin(
        items,
        domains,
        list(table.index),
        table.to_numpy(dtype=np.float64).T,
        lower,
        upper,
        {d: float(prior.get(d, 0.0)) for d in domains},
        chosen=cfg.search.objective,
    )


def mixmin_predictions(
    cfg: PipelineConfig, table: pd.DataFrame, dirs: dict[str, Path], mixtures: pd.DataFrame
) -> pd.DataFrame:
    """MixMin's predicted ``<task>/gold_bpb`` (and correct_prob, acc) of each mixture (rows of ``mixtures``)."""
    from mixlab.proxies.merging import merge_coefficients
    from mixlab.search.mixmin import mixture_predictions, read_task_items

    names = [c.removeprefix("component-") for c in table.index]
    M = table.to_numpy(dtype=np.float64).T
    items = {t: read_task_items([dirs[n] / "eval" for n in names], t) for t in cfg.evaluation.tasks}
    rows = {}
    for run in mixtures.index:
        c = merge_coefficients(mixtures.loc[run, list(table.columns)].to_numpy(dtype=np.float64), M)
        row = {}
        for t, it in items.items():
            for k, v in mixture_predictions(it, c).items():
                row[f"{t}/{k}"] = v
        rows[str(run)] = row
    return pd.DataFrame.from_dict(rows, orient="index")


# --- the check against real proxies ---------------------------------------------------------------------


def _objective_values(metrics: pd.DataFrame, tasks: list[str], objective: str, metric: str) -> pd.Series:
    cols = [f"{t}/{metric}" for t in (tasks if objective == "total" else [objective])]
    return metrics[cols].sum(axis=1, min_count=len(cols))


def check_route(
    route: pd.DataFrame, real: pd.DataFrame, tasks: list[str], objective: str, metric: str
) -> tuple[float, int]:
    """Spearman between the route's and the real proxies' values of one objective, on the runs both have."""
    from scipy.stats import spearmanr

    a = _objective_values(route, tasks, objective, metric)
    b = _objective_values(real, tasks, objective, metric)
    both = [r for r in a.index if r in b.index and np.isfinite(a[r]) and np.isfinite(b[r])]
    if len(both) < 3 or np.ptp(a[both].to_numpy()) == 0 or np.ptp(b[both].to_numpy()) == 0:
        return math.nan, len(both)
    return float(spearmanr(a[both], b[both])[0]), len(both)


def _real_runs(cfg: PipelineConfig, pool: Pool, ratios: pd.DataFrame) -> pd.DataFrame:
    """Real proxies of ``proxies.check_runs`` distinct candidate mixtures (OUT/check); ok rows only."""
    from mixlab.pipeline import ok_runs, run_swarm_step

    n = cfg.proxies.check_runs
    if n <= 0:
        return pd.DataFrame()
    runs = distinct_runs(ratios)[:n]
    ok = ok_runs(run_swarm_step(cfg, pool, ratios.loc[runs], "check"))
    return ok.loc[[r for r in runs if r in ok.index]]


def _rejudge(
    found: dict[str, Any],
    name: str,
    trusted: bool,
    reason: str,
    extra: dict[str, Any],
) -> None:
    from mixlab.search.trust import Verdict

    res = found["results"]["objectives"][name]
    old = found["verdicts"].get(name)
    metric = res.get("metric", "gold_bpb")
    rho = old.oof_spearman if old is not None else extra.get("check_spearman", math.nan)
    snr = old.snr if old is not None else math.nan
    rho = math.nan if rho is None else float(rho)
    found["verdicts"][name] = Verdict(name, metric, trusted, rho, snr, reason)
    res.update({"trusted": trusted, "reason": reason, **extra})
    res["oof_spearman"] = None if not math.isfinite(rho) else rho
    res["snr"] = None if not math.isfinite(snr) else snr


def _merged_verdicts(
    found: dict[str, Any], real: pd.DataFrame, merged: pd.DataFrame, cfg: PipelineConfig
) -> None:
    tasks = list(cfg.evaluation.tasks)
    thr = cfg.trust.min_oof_spearman
    for name, res in found["results"]["objectives"].items():
        verdict = found["verdicts"][name]
        metric = res["metric"]
        if real.empty:
            note = "merged proxies not checked against real ones (proxies.check_runs: 0)"
            _rejudge(found, name, verdict.trusted, f"{verdict.reason}; {note}", {"route": "merged"})
            continue
        rho, n = check_route(merged, real, tasks, name, metric)
        ok = math.isfinite(rho) and rho >= thr - 1e-9
        words = (
            f"merged vs {n} real proxies: Spearman {rho:.2f} {'>=' if ok else '<'} {thr:g}"
            if math.isfinite(rho)
            else f"merged vs real proxies: not measurable on {n} mixture(s)"
        )
        _rejudge(
            found,
            name,
            verdict.trusted and ok,
            f"{verdict.reason}; {words}",
            {"route": "merged", "check_spearman": None if not math.isfinite(rho) else rho, "check_runs": n},
        )


def _mixmin_verdicts(
    found: dict[str, Any], real: pd.DataFrame, predicted: pd.DataFrame, cfg: PipelineConfig
) -> None:
    tasks = list(cfg.evaluation.tasks)
    thr = cfg.trust.min_oof_spearman
    for name in found["results"]["objectives"]:
        label = f"{name}/gold_bpb (mixmin)"
        if real.empty:
            _rejudge(
                found,
                name,
                False,
                f"{label}: no real proxies to check against (set proxies.check_runs)",
                {"route": "mixmin", "check_spearman": None, "check_runs": 0},
            )
            continue
        rho, n = check_route(predicted, real, tasks, name, "gold_bpb")
        ok = math.isfinite(rho) and rho >= thr - 1e-9
        if math.isfinite(rho):
            words = (
                f"{label}: Spearman {rho:.2f} {'>=' if ok else '<'} {thr:g} between MixMin's predicted and "
                f"{n} real proxies' measured gold_bpb"
            )
        else:
            words = f"{label}: not measurable on {n} real proxies (need 3 distinct values)"
        _rejudge(
            found,
            name,
            ok,
            words,
            {"route": "mixmin", "check_spearman": None if not math.isfinite(rho) else rho, "check_runs": n},
        )


def _merged_metric_choice(cfg: PipelineConfig) -> PipelineConfig:
    """With ``evaluation.metric: auto``, merged proxies are fitted on ``gold_bpb`` (objectives the user
    named a metric for keep it).

    A merged proxy is deterministic, so repeats measure no noise and the usual choice by signal-to-noise
    and out-of-fold Spearman cannot see which metrics the merge distorts; on the demo world only the gold
    bits per byte of merged proxies ranked mixtures like real proxies (bench/bench_routes.py).
    """
    ev = cfg.evaluation
    if ev.metric != "auto":
        return cfg
    chosen = {o: ev.metrics.get(o, "gold_bpb") for o in ["total", *ev.tasks]}
    return cfg.model_copy(update={"evaluation": ev.model_copy(update={"metrics": chosen})})


# --- the dispatch -------------------------------------------------------------------------------------------


def run_proxies(
    cfg: PipelineConfig, pool: Pool, ratios: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any] | None]:
    """Score the candidate mixtures by ``cfg.proxies.method``: ``(ratios, metrics, found)``.

    ``swarm``: the trained swarm's table and None (the pipeline fits and searches). ``merged``: the merged
    proxies' table and the fit-and-search result, its verdicts checked against real proxies. ``mixmin``:
    the components' ratios and metrics (the only proxies trained; ``best_swarm`` is the best of them) and
    MixMin's result in the shape of ``fit_and_search``'s.
    """
    from mixlab.mixtures.sampler import available_tokens, token_prior
    from mixlab.pipeline import fit_and_search, ok_runs, run_swarm_step
    from mixlab.search.run import write_optimal
    from mixlab.swarm import upsert_metrics

    method = cfg.proxies.method
    if method == "swarm":
        return ratios, run_swarm_step(cfg, pool, ratios, "swarm"), None
    work = Path(cfg.workdir)
    domains = list(ratios.columns)
    table, comp_metrics, dirs = train_components(cfg, pool, domains)
    available = available_tokens(pool, view=cfg.mixtures)
    prior = token_prior(pool, view=cfg.mixtures)
    real = _real_runs(cfg, pool, ratios)
    if method == "merged":
        if cfg.proxies.simulate:
            extra = simulated_mixtures(cfg, pool, cfg.proxies.simulate)
            ratios = pd.concat([ratios, extra.reindex(columns=ratios.columns, fill_value=0.0)])
        metrics = evaluate_merged(cfg, table, dirs, ratios, work / "swarm")
        natural = {d: float(prior.get(d, 0.0)) for d in domains}
        found = fit_and_search(_merged_metric_choice(cfg), ratios, metrics, natural, available)
        _merged_verdicts(found, real, ok_runs(metrics), cfg)
        write_optimal(work / "optimal.json", found["results"], out_dir=work)
        return ratios, metrics, found
    results = mixmin_search(cfg, table, dirs, prior, available)
    found: dict[str, Any] = {
        "fit": None,
        "results": results,
        "signal": pd.DataFrame(),
        "metrics": dict.fromkeys(results["objectives"], "gold_bpb"),
        "verdicts": {},
    }
    for res in results["objectives"].values():
        res["metric"] = "gold_bpb"
    checked = ratios.loc[[r for r in real.index if r in ratios.index]]
    predicted = mixmin_predictions(cfg, table, dirs, checked) if len(checked) else pd.DataFrame()
    _mixmin_verdicts(found, real, predicted, cfg)
    for verdict in found["verdicts"].values():
        log.log(
            logging.INFO if verdict.trusted else logging.WARNING,
            "%s: %s",
            "trusted" if verdict.trusted else "UNTRUSTED",
            verdict.reason,
        )
    write_optimal(work / "optimal.json", results, out_dir=work)
    swarm_csv = work / "swarm" / "metrics.csv"  # the report shows the proxies this route trained
    for run, row in comp_metrics.iterrows():
        upsert_metrics(
            swarm_csv, str(run), {k: (v if isinstance(v, str) else float(v)) for k, v in row.items()}
        )
    return table, comp_metrics, found
