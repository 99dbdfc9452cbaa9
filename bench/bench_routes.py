"""Which proxy route can be trusted? Real DoRA proxies against merged components and MixMin, on the demo world.

On one demo world (the quick one by default) this trains or reuses:

* the swarm route: one real proxy per candidate mixture (``OUT/swarm``, shared with ``mixlab demo``);
* extra real proxies on ``--extra`` more mixtures (``OUT/bench/real``), so the check has more points;
* one DoRA component per domain (``OUT/components``, what the merged and MixMin routes train);

then evaluates the merged proxy of every one of those mixtures (``OUT/bench/merged``) and asks MixMin for
its predictions. It prints, per task and metric and for the total (sum over tasks), the Spearman of the
merged proxies and of MixMin's predictions against the real proxies (repeats averaged), each route's
training compute (train-loop seconds from ``train_log.json`` and tokens), each route's total optimum and,
with ``--confirm-seeds`` > 0, each optimum trained for real with seeds against the swarm's optimum and natural
proportions (paired bootstrap, 95%).

    .venv/bin/python bench/bench_routes.py --out runs/demo_quick          # reuses a quick demo's folder
    .venv/bin/python bench/bench_routes.py --out runs/demo --full         # the full demo world
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy.stats import spearmanr

from mixlab.config import PipelineConfig
from mixlab.pool.pool import atomic_write_text

METRICS = ("acc", "acc_norm", "gold_bpb", "correct_prob", "margin")


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (user + system)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def rho(a: pd.Series, b: pd.Series) -> tuple[float, int]:
    both = [r for r in a.index if r in b.index and np.isfinite(a[r]) and np.isfinite(b[r])]
    if len(both) < 3 or np.ptp(a[both].to_numpy()) == 0 or np.ptp(b[both].to_numpy()) == 0:
        return math.nan, len(both)
    return float(spearmanr(a[both], b[both])[0]), len(both)


def objective(table: pd.DataFrame, tasks: list[str], name: str, metric: str) -> pd.Series:
    cols = [f"{t}/{metric}" for t in (tasks if name == "total" else [name])]
    if not all(c in table.columns for c in cols):
        return pd.Series(dtype=float)
    return table[cols].sum(axis=1, min_count=len(cols))


def averaged(ratios: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct mixture (named by its first run): the mean of its repeats' metrics."""
    from mixlab.pipeline import ok_runs
    from mixlab.regression.signal import collapse_repeats

    ok = ok_runs(metrics)
    runs = [r for r in ratios.index if r in ok.index]
    return collapse_repeats(ratios.loc[runs], ok.loc[runs])[1]


def extra_mixtures(cfg: PipelineConfig, pool: Any, n: int, prefix: str, seed: int) -> pd.DataFrame:
    """``n`` more candidate mixtures from the pipeline's sampler (another seed, no repeats): ``<prefix>-XXX``."""
    from mixlab.mixtures.sampler import available_tokens, sample_mixtures, token_prior

    mcfg = cfg.mixtures.model_copy(update={"n": n, "seed": seed, "repeats": 0, "include_prior": False})
    ratios = sample_mixtures(
        token_prior(pool, view=cfg.mixtures), mcfg, available_tokens(pool, view=cfg.mixtures)
    )
    ratios.index = [f"{prefix}-{i:03d}" for i in range(len(ratios))]
    ratios.index.name = "run"
    return ratios


def arm_name(route: str) -> str:
    """Confirmation arm of a route's optimum: merged_opt (linear merge), merged_norm_opt, mixmin_opt."""
    return {"merged_linear": "merged_opt"}.get(route, f"{route}_opt")


def train_log_totals(run_dirs: list[Path]) -> tuple[float, int, int]:
    """Train-loop seconds, tokens and runs summed over the runs' train_log.json."""
    seconds, tokens, n = 0.0, 0, 0
    for d in run_dirs:
        path = d / "train_log.json"
        if path.exists():
            log = json.loads(path.read_text(encoding="utf-8"))
            seconds += float(log.get("seconds", 0.0))
            tokens += int(log.get("tokens", 0))
            n += 1
    return seconds, tokens, n


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/bench_routes", help="demo folder (reused when it exists)")
    parser.add_argument("--full", action="store_true", help="the full demo world (default: the quick one)")
    parser.add_argument("--extra", type=int, default=8, help="more real mixtures for the check")
    parser.add_argument(
        "--simulate", type=int, default=0, help="more merged-only mixtures for the merged fit"
    )
    parser.add_argument("--confirm-seeds", type=int, default=2, help="seeds per confirmed optimum (0: skip)")
    parser.add_argument("--merge", default="linear,norm", help="merge rules to compare (comma-separated)")
    parser.add_argument("--general-share", type=float, default=0.0, help="general data in every component")
    parser.add_argument(
        "--reuse-swarm",
        action="store_true",
        help="use OUT/pool and the mixtures of OUT/swarm/ratios.csv as they are (a finished study, e.g. "
        "runs/real_study, whose pool was made by an older mixlab): no pool step, no new swarm run",
    )
    args = parser.parse_args()

    from mixlab.console import calm
    from mixlab.demo.run import FULL, QUICK, prepare_demo
    from mixlab.pipeline import candidate_mixtures, fit_and_search, prepare_pool, run_swarm_step
    from mixlab.routes import (
        _merged_metric_choice,
        distinct_runs,
        evaluate_merged,
        mixmin_predictions,
        mixmin_search,
        train_components,
    )

    out = Path(args.out)
    rules = [r.strip() for r in args.merge.split(",") if r.strip()]
    t_start = time.perf_counter()
    with calm(str(out), 0):
        if (out / "pipeline.yaml").exists() and (out / "pool").exists():  # a world made before: keep it
            raw = yaml.safe_load((out / "pipeline.yaml").read_text(encoding="utf-8"))
        else:
            raw = prepare_demo(out, FULL if args.full else QUICK, workers=1)
        raw["proxies"] = {"general_share": args.general_share}
        cfg = PipelineConfig.model_validate(raw)
        tasks = list(cfg.evaluation.tasks)
        bench = out / "bench"
        cost: dict[str, float] = {}
        if args.reuse_swarm:
            from mixlab.pool.pool import Pool
            from mixlab.swarm import read_ratios

            pool = Pool.open(out / "pool")
            ratios = read_ratios(out / "swarm" / "ratios.csv")
        else:
            pool = prepare_pool(cfg)
            ratios = candidate_mixtures(cfg, pool)
        domains = list(ratios.columns)

        c0 = cpu_seconds()
        swarm = run_swarm_step(cfg, pool, ratios, "swarm")
        cost["swarm cpu (this run)"] = cpu_seconds() - c0
        extra = extra_mixtures(cfg, pool, args.extra, "chk", 1000) if args.extra else ratios.iloc[:0]
        c0 = cpu_seconds()
        real_extra = run_swarm_step(cfg, pool, extra, "bench/real") if len(extra) else pd.DataFrame()
        cost["extra real cpu (this run)"] = cpu_seconds() - c0

        c0 = cpu_seconds()
        table, _, dirs = train_components(cfg, pool, domains)
        cost["components cpu (this run)"] = cpu_seconds() - c0

        everything = pd.concat([ratios, extra])
        sim = extra_mixtures(cfg, pool, args.simulate, "sim", 2000) if args.simulate else ratios.iloc[:0]
        merged_all = pd.concat([everything, sim])
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        merged = {}
        for rule in rules:
            rcfg = cfg.model_copy(update={"proxies": cfg.proxies.model_copy(update={"merge": rule})})
            folder = bench / ("merged" if rule == "linear" else f"merged_{rule}")
            merged[rule] = evaluate_merged(rcfg, table, dirs, merged_all, folder)
        n_merged = len(distinct_runs(merged_all))
        cost["merged eval cpu (this run)"] = cpu_seconds() - c0
        cost["merged eval wall (this run)"] = time.perf_counter() - t0

        real = pd.concat([averaged(ratios, swarm), averaged(extra, real_extra) if len(extra) else None])
        from mixlab.pipeline import ok_runs

        merged_ok = {rule: ok_runs(m) for rule, m in merged.items()}
        predicted = mixmin_predictions(cfg, table, dirs, everything.loc[[r for r in real.index]])

        # -- Spearman per task and metric ----------------------------------------------------------------
        rows = []
        for name in ["total", *tasks]:
            for m in METRICS:
                r_real = objective(real, tasks, name, m)
                r_m = {}
                for rule, mo in merged_ok.items():
                    r_m[f"merged_{rule}"], n = rho(objective(mo, tasks, name, m), r_real)
                mm = (
                    objective(predicted, tasks, name, m) if m in ("acc", "gold_bpb", "correct_prob") else None
                )
                r_mm = rho(mm, r_real)[0] if mm is not None and len(mm) else math.nan
                rows.append({"objective": name, "metric": m, "n": n, **r_m, "mixmin": r_mm})
        table_rho = pd.DataFrame(rows)

        # -- optima of each route --------------------------------------------------------------------------
        from mixlab.mixtures.sampler import available_tokens, token_prior

        available = available_tokens(pool, view=cfg.mixtures)
        prior = token_prior(pool, view=cfg.mixtures)
        natural = {d: float(prior.get(d, 0.0)) for d in domains}
        fits = {}
        routes = [("swarm", ratios, swarm), *((f"merged_{r}", merged_all, m) for r, m in merged.items())]
        for route, rr, mm in routes:
            base = cfg if route == "swarm" else _merged_metric_choice(cfg)  # as the merged route fits
            sub = base.model_copy(update={"workdir": str(bench / f"fit_{route}")})
            Path(sub.workdir).mkdir(parents=True, exist_ok=True)
            fits[route] = fit_and_search(
                sub, rr.loc[[r for r in rr.index if r in mm.index]], mm, natural, available
            )
        sub = cfg.model_copy(update={"workdir": str(bench / "fit_mixmin")})
        mixmin = mixmin_search(sub, table, dirs, prior, available)
        optima = {route: fit["results"]["objectives"]["total"] for route, fit in fits.items()}
        optima["mixmin"] = mixmin["objectives"]["total"]

        # -- confirmation of each optimum ------------------------------------------------------------------
        confirm = None
        if args.confirm_seeds > 0:
            from mixlab.confirm.stage import arm_runs, confirm_ratios, read_item_scores, summarise

            # the linear merge's arm keeps its first name, merged_opt, so its runs are reused
            arms = {"optimal": optima["swarm"]["weights"]}
            arms.update({arm_name(r): v["weights"] for r, v in optima.items() if r != "swarm"})
            arms["natural"] = natural
            ctable = confirm_ratios(arms, domains, args.confirm_seeds)
            cm = ok_runs(run_swarm_step(cfg, pool, ctable, "bench/confirm"))
            runs_of = {a: arm_runs(a, args.confirm_seeds) for a in arms}
            scores = {
                r: read_item_scores(out / "bench" / "confirm" / "runs" / r / "eval", tasks, list(METRICS))
                for rs in runs_of.values()
                for r in rs
                if r in cm.index
            }
            metric_total = fits["swarm"]["metrics"]["total"]
            confirm = summarise(
                runs_of, scores, tasks, list(METRICS), {"total": metric_total}, arms, n_boot=2000
            )
            atomic_write_text(bench / "confirm.json", json.dumps(confirm, indent=2) + "\n")

    # -- print ------------------------------------------------------------------------------------------------
    swarm_dirs = [out / "swarm" / "runs" / str(r) for r in ratios.index]
    comp_dirs = list(dirs.values())
    s_sec, s_tok, s_n = train_log_totals(swarm_dirs)
    c_sec, c_tok, c_n = train_log_totals(comp_dirs)
    print(f"\nworld: {'full' if args.full else 'quick'} demo in {out}; {len(domains)} domains; tasks {tasks}")
    print(
        f"real proxies: {len(real)} distinct mixtures ({len(ratios)} swarm runs incl. repeats + {len(extra)} extra); "
        f"merged proxies evaluated: {n_merged}"
    )
    print("\nSpearman against real proxies (repeats averaged), per objective and metric")
    print(table_rho.to_string(index=False, float_format=lambda x: f"{x:+.2f}"))
    print("\ntraining compute per route (train-loop seconds from train_log.json, tokens)")
    print(f"  swarm  : {s_n:3d} runs  {s_sec:8.1f} s  {s_tok:>10d} tokens")
    print(
        f"  merged / mixmin components: {c_n:3d} runs  {c_sec:8.1f} s  {c_tok:>10d} tokens  "
        f"= {c_sec / s_sec:.2f} of the swarm's seconds, {c_tok / s_tok:.2f} of its tokens"
    )
    print("  cpu-seconds measured in this run: " + ", ".join(f"{k} {v:.0f}" for k, v in cost.items()))
    print("\ntotal optimum of each route")
    for route, res in optima.items():
        w = ", ".join(f"{d} {v:.2f}" for d, v in res["weights"].items())
        print(
            f"  {route:7s}: {w}   predicted {res['predicted']:.4f} ({res.get('metric', fits['swarm']['metrics']['total'] if route != 'mixmin' else 'gold_bpb')})"
        )
    for route in fits:
        v = fits[route]["verdicts"]["total"]
        print(f"  {route} verdict: {'trusted' if v.trusted else 'UNTRUSTED'}: {v.reason}")
    if confirm is not None:
        print(f"\nconfirmation ({confirm['seeds']} seeds, paired bootstrap 95%), summed over tasks")
        others = [a for a in confirm["arms"] if a not in ("optimal", "natural")]
        for arm in ("optimal", *others, "natural"):
            means = ", ".join(f"{m} {confirm['arms'][arm][m]['total']['mean']:.4f}" for m in METRICS)
            print(f"  {arm:11s}: {means}")
        for arm in others:
            for base in ("optimal", "natural"):
                for m in dict.fromkeys([fits["swarm"]["metrics"]["total"], "gold_bpb", "acc_norm"]):
                    iv = confirm["comparisons"][arm][base][m]["total"]
                    print(
                        f"  {arm} - {base:8s} {m:12s}: {iv['diff']:+.4f} [{iv['low']:+.4f}, {iv['high']:+.4f}]"
                    )
    summary = {
        "spearman": table_rho.to_dict(orient="records"),
        "compute": {"swarm": [s_n, s_sec, s_tok], "components": [c_n, c_sec, c_tok], **cost},
        "optima": {k: {"weights": v["weights"], "predicted": v["predicted"]} for k, v in optima.items()},
        "wall_s": time.perf_counter() - t_start,
    }
    atomic_write_text(out / "bench" / "routes.json", json.dumps(summary, indent=2, default=float) + "\n")
    print(f"\nwall time {time.perf_counter() - t_start:.0f} s; written {out / 'bench' / 'routes.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
