"""Inside each domain, which documents should fill the quota: those most like the tasks, or the cleanest?

The real-data setting of the study (``examples/real_study.py``): its pool of the shared corpus, its base
model and proxy recipe, its confirmation scale. One mixture and one token budget, three selection
policies, each trained with ``--seeds`` seeds:

- ``random``: every kept document eligible, taken in hash order (``quality: all``, the pipeline default);
- ``quality``: documents taken in order of the heuristic quality score (``affinity+quality:0``: rank by
  ``quality_score`` only);
- ``affinity``: documents taken in order of task affinity (``affinity``: DSIR-style hashed n-gram
  importance weights of the task items against the pool, ``mixlab affinity``).

The affinity model never sees the items the proxies are scored on: it is fitted on the items after the
first ``--limit`` of each task file, and the proxies are evaluated on the first ``--limit``.

Answer: per task and summed, the mean of each metric, and the paired difference affinity - quality (and
each against random) with a 95% bootstrap interval over items and seeds. Run from the repository root
after the study (about 15 minutes on 2 cores)::

    .venv/bin/python examples/affinity_vs_quality.py --study runs/real_study --out runs/affinity_vs_quality

Writes ``OUT/result.json`` and ``OUT/result.md``. The study's pool is copied to ``OUT/pool`` first, so
the study itself is left as it was.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

TASKS = ("roleplay", "reasoning", "function_calling", "rag")
METRICS = ("acc", "acc_norm", "gold_bpb", "correct_prob", "margin")
POLICIES = {"random": "all", "quality": "affinity+quality:0", "affinity": "affinity"}
BASELINES = ("quality", "random")
#: Differences reported: arm - baseline.
COMPARISONS = (("affinity", "quality"), ("affinity", "random"), ("quality", "random"))


def held_out_items(tasks: dict[str, str], skip: int, out: Path) -> dict[str, str]:
    """Each task's items after the first ``skip`` (the ones the proxies are not scored on), as files."""
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, spec in tasks.items():
        lines = [ln for ln in Path(spec).read_text(encoding="utf-8").splitlines() if ln.strip()]
        if len(lines) <= skip:
            raise SystemExit(
                f"{spec}: {len(lines)} items; the affinity model needs items after the first {skip}"
            )
        path = out / f"{name}.jsonl"
        path.write_text("\n".join(lines[skip:]) + "\n", encoding="utf-8")
        files[name] = str(path)
    return files


def table(result: dict[str, Any]) -> str:
    """Markdown: the arms' means, then every difference with its interval (lower gold_bpb is better)."""
    lines = ["| arm | metric | " + " | ".join(TASKS) + " | summed |", "|---" * (len(TASKS) + 3) + "|"]
    for arm, by_metric in result["arms"].items():
        for m in ("gold_bpb", "acc"):
            cells = [f"{by_metric[m][t]['mean']:.4f}" for t in (*TASKS, "total")]
            lines.append(f"| {arm} | {m} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| difference | metric | " + " | ".join(TASKS) + " | summed |",
        "|---" * (len(TASKS) + 3) + "|",
    ]
    for arm, base in COMPARISONS:
        by_metric = result["comparisons"][arm][base]
        for m in METRICS:
            cells = []
            for t in (*TASKS, "total"):
                iv = by_metric[m][t]
                star = "*" if iv["low"] > 0 or iv["high"] < 0 else ""
                cells.append(f"{iv['diff']:+.3f} [{iv['low']:+.3f}, {iv['high']:+.3f}]{star}")
            lines.append(f"| {arm} - {base} | {m} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "`*`: the 95% interval excludes zero. gold_bpb: lower is better; every other metric: higher."
    )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", default="runs/real_study", help="the real-data study's output folder")
    p.add_argument("--out", default="runs/affinity_vs_quality")
    p.add_argument(
        "--mixture", default="natural", help="arm of the study's confirm.json whose weights are used"
    )
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--scale", type=float, default=None, help="tokens / proxy tokens (default: the study's)")
    p.add_argument("--limit", type=int, default=150, help="items per task the proxies are scored on")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--bootstrap", type=int, default=2000)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from mixlab.affinity.config import AffinityConfig
    from mixlab.affinity.stage import affinity_by_domain, affinity_pool
    from mixlab.config import load_config
    from mixlab.confirm.stage import arm_runs, confirm_ratios, read_item_scores, summarise
    from mixlab.pipeline import ok_runs, run_swarm_step
    from mixlab.pool.pool import Pool
    from mixlab.select.config import QualityPolicy
    from mixlab.swarm import read_ratios, write_ratios

    study, out = Path(args.study).resolve(), Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    base_cfg = load_config(study / "pipeline.yaml")
    confirm = json.loads((study / "confirm.json").read_text(encoding="utf-8"))
    weights = confirm["arms"][args.mixture]["weights"]
    scale = args.scale if args.scale is not None else float(confirm.get("scale", 1.0))
    t0 = time.perf_counter()

    pool_dir = out / "pool"
    if not (pool_dir / "pool.json").exists():
        shutil.copytree(study / "pool", pool_dir, dirs_exist_ok=True)
    pool = Pool.open(pool_dir)
    tasks = {t: str(base_cfg.evaluation.tasks[t]) for t in TASKS}
    affinity = AffinityConfig(tasks=held_out_items(tasks, args.limit, out / "affinity_items"))
    summary = affinity_pool(pool, affinity, workers=args.workers)
    by_domain = affinity_by_domain(pool, "domains")
    logging.getLogger("affinity_vs_quality").info(
        "affinity: %d documents; per domain:\n%s", summary["docs"], by_domain.round(3).to_string()
    )

    evaluation = base_cfg.evaluation.model_copy(update={"limit": args.limit})
    runs_of: dict[str, list[str]] = {}
    scores: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    seconds: dict[str, float] = {}
    for arm, policy in POLICIES.items():
        select = base_cfg.select.model_copy(update={"quality_policy": QualityPolicy.model_validate(policy)})
        cfg = base_cfg.model_copy(update={"workdir": out, "select": select, "evaluation": evaluation})
        name = f"arm-{arm}"
        ratios = confirm_ratios({args.mixture: weights}, list(weights), args.seeds)
        write_ratios(out / f"{name}_ratios.csv", ratios)
        t_arm = time.perf_counter()
        metrics = run_swarm_step(cfg, pool, read_ratios(out / f"{name}_ratios.csv"), name, scale)
        seconds[arm] = time.perf_counter() - t_arm
        ok = ok_runs(metrics)
        runs = [r for r in arm_runs(args.mixture, args.seeds) if r in ok.index]
        runs_of[arm] = [f"{arm}/{r}" for r in runs]
        for r in runs:
            scores[f"{arm}/{r}"] = read_item_scores(out / name / "runs" / r / "eval", TASKS, METRICS)
    # every arm against quality and random: paired bootstrap over items and seeds, as the confirmation
    result = summarise(runs_of, scores, TASKS, METRICS, {}, n_boot=args.bootstrap, baselines=BASELINES)
    result.update(
        {
            "mixture": args.mixture,
            "weights": weights,
            "scale": scale,
            "budget_tokens": round(base_cfg.select.budget_tokens * scale),
            "policies": POLICIES,
            "eval_items": args.limit,
            "affinity_items": "each task's items after the first --limit (never scored)",
            "affinity_by_domain": by_domain.round(4).to_dict(),
            "arm_seconds": seconds,
            "wall_seconds": time.perf_counter() - t0,
        }
    )
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    md = table(result)
    (out / "result.md").write_text(md + "\n", encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
