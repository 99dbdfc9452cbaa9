"""CLI: ``mixlab dedup POOL`` (exact + near duplicates) and ``mixlab decontam POOL --tasks NAME=FILE,...``."""

from __future__ import annotations

import argparse
import json

from mixlab.dedup.config import DecontamConfig, DedupConfig
from mixlab.executors import add_executor_arguments, executor_from_args
from mixlab.pool.pool import Pool
from mixlab.stage_config import add_config_argument, flag_values, stage_config


def _parse_tasks(spec: str) -> dict[str, str]:
    tasks: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, file = part.partition("=")
        if not sep or not name or not file:
            raise ValueError(f"--tasks: expected NAME=FILE[,NAME=FILE...], got {part!r}")
        tasks[name.strip()] = file.strip()
    return tasks


def _cmd_dedup(args: argparse.Namespace) -> int:
    from mixlab.dedup.stage import dedup_pool

    overrides = {"threshold": args.threshold, "near": False if args.exact_only else None}
    config = stage_config(DedupConfig, args.config, "dedup", overrides)
    summary = dedup_pool(
        Pool.open(args.pool),
        config,
        workers=args.workers,
        force=args.force,
        executor=executor_from_args(args),
    )
    state = " (already done)" if summary["skipped"] else ""
    print(
        f"dedup {args.pool}{state}: {summary['docs']} documents, {summary['clusters']} kept "
        f"(one per cluster), {summary['duplicate_clusters']} duplicate clusters, largest {summary['largest_cluster']}"
    )
    print(f"  duplicates: exact {summary['duplicates']['exact']}, near {summary['duplicates']['near']}")
    print(f"  representatives by {summary['representative_basis']}")
    return 0


def _cmd_decontam(args: argparse.Namespace) -> int:
    from mixlab.dedup.stage import decontaminate_pool

    overrides = flag_values(args, ("n", "min_overlap", "min_coverage"))
    if args.tasks:
        overrides["tasks"] = _parse_tasks(args.tasks)
    config = stage_config(
        DecontamConfig, args.config, "decontam", overrides, inherit={"tasks": "evaluation.tasks"}
    )
    summary = decontaminate_pool(
        Pool.open(args.pool),
        config,
        workers=args.workers,
        force=args.force,
        executor=executor_from_args(args),
    )
    state = " (already done)" if summary["skipped"] else ""
    print(
        f"decontam {args.pool}{state}: {summary['docs']} documents, {summary['contaminated']} contaminated "
        f"(excluded by default), {summary['overlapping']} share at least one {config.n}-gram with a task"
    )
    print("  per task: " + json.dumps(summary["per_task"]))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    d = sub.add_parser("dedup", help="find exact and near duplicates (MinHash LSH); attribute 'dedup'")
    d.add_argument("pool", help="pool folder")
    add_config_argument(d, "dedup")
    d.add_argument("--threshold", type=float, default=None, help="Jaccard threshold of near duplicates")
    d.add_argument("--exact-only", action="store_true", help="skip near-duplicate detection")
    d.add_argument("--workers", type=int, default=1, help="worker processes for the per-shard pass")
    d.add_argument("--force", action="store_true", help="recompute even if already done")
    add_executor_arguments(d)
    d.set_defaults(func=_cmd_dedup)

    c = sub.add_parser("decontam", help="flag documents overlapping evaluation tasks; attribute 'decontam'")
    c.add_argument("pool", help="pool folder")
    c.add_argument(
        "--tasks",
        default=None,
        help="NAME=SPEC[,NAME=SPEC...]: ELMB JSONL/Parquet files or lm-eval task YAMLs (default: a pipeline "
        "YAML's evaluation.tasks)",
    )
    add_config_argument(c, "decontam")
    c.add_argument("--n", type=int, default=None, help="words per n-gram (default 13)")
    c.add_argument("--min-overlap", type=int, default=None, help="least shared n-grams to flag (default 1)")
    c.add_argument("--min-coverage", type=float, default=None, help="least covered fraction of a task field")
    c.add_argument("--workers", type=int, default=1, help="worker processes")
    c.add_argument("--force", action="store_true", help="recompute even if already done")
    add_executor_arguments(c)
    c.set_defaults(func=_cmd_decontam)
