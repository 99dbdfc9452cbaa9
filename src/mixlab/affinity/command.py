"""CLI: ``mixlab affinity POOL --tasks NAME=FILE,...`` (attribute ``affinity`` + per-domain table)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mixlab.affinity.config import AffinityConfig
from mixlab.affinity.stage import affinity_by_domain, affinity_pool, cluster_task_table, format_table
from mixlab.evaluation.tasks import parse_task_specs
from mixlab.executors import add_executor_arguments, executor_from_args
from mixlab.pool.pool import Pool
from mixlab.stage_config import add_config_argument, flag_values, read_stage_section, stage_config


def _config(args: argparse.Namespace) -> AffinityConfig:
    overrides = flag_values(args, ("background", "smoothing", "n_features", "combine"))
    if args.tasks:
        overrides["tasks"] = parse_task_specs(args.tasks)
    elif args.config:  # task files of an affinity section are relative to the config file
        values, _ = read_stage_section(args.config, ["affinity"], AffinityConfig)
        if isinstance(values.get("tasks"), dict):
            base = Path(args.config).parent
            overrides["tasks"] = {
                k: str(v if Path(str(v)).is_absolute() else base / str(v)) for k, v in values["tasks"].items()
            }
    # a pipeline YAML without an affinity section: its evaluation tasks (paths as `mixlab run` reads them)
    return stage_config(
        AffinityConfig, args.config, "affinity", overrides, inherit={"tasks": "evaluation.tasks"}
    )


def _cmd_affinity(args: argparse.Namespace) -> int:
    config = _config(args)
    pool = Pool.open(args.pool)
    with executor_from_args(args) as executor:
        summary = affinity_pool(pool, config, force=args.force, executor=executor)
    state = "" if summary["computed_shards"] else " (all shards already done; --force to redo)"
    print(f"affinity of {pool.root}: {summary['docs']} documents, tasks {', '.join(summary['tasks'])}{state}")
    for task, s in summary["per_task"].items():
        print(
            f"  {task:<20} mean {s['mean']:+.3f}  median {s['median']:+.3f}  "
            f"q75 {s['q75']:+.3f}  highest for {s['best_docs']} docs"
        )
    by = args.by or ("domains" if "domains" in pool.attributes() else "source")
    table = cluster_task_table(pool, by) if args.clusters else affinity_by_domain(pool, by)
    what = "cluster-to-task" if args.clusters else "per-" + table.index.name
    print(f"\nmean affinity to each task, {what} (nats per n-gram, log p_task - log p_pool):")
    print(format_table(table))
    if args.table_out:
        out = Path(args.table_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out)
        print(f"table: {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "affinity", help="task affinity of every document (DSIR importance weights); attribute 'affinity'"
    )
    p.add_argument("pool", help="pool folder")
    p.add_argument("--tasks", default=None, help="NAME=FILE,... (ELMB JSONL or lm-eval YAML)")
    add_config_argument(p, "affinity")
    p.add_argument(
        "--by",
        default=None,
        help="group the table by: domains (default when partitioned), source, clusters, or an attribute",
    )
    p.add_argument(
        "--clusters",
        action="store_true",
        help="cluster-to-task table (adds lift over the pool mean per task); e.g. --by source on ClimbLab",
    )
    p.add_argument("--table-out", default=None, help="write the table as CSV")
    p.add_argument("--background", type=int, default=None, help="pool documents fitting the pool model")
    p.add_argument("--smoothing", type=float, default=None, help="additive pseudo-count per bucket")
    p.add_argument("--n-features", type=int, default=None, help="hashed n-gram buckets")
    p.add_argument("--combine", choices=("max", "mean"), default=None, help="the 'affinity' column")
    p.add_argument(
        "--workers", type=int, default=1, help="processes (or local Ray CPUs) for the per-shard pass"
    )
    add_executor_arguments(p)
    p.add_argument("--force", action="store_true", help="refit and redo all shards")
    p.set_defaults(func=_cmd_affinity)
