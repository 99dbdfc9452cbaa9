"""CLI of the domains stage: ``mixlab partition`` and ``mixlab cluster``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mixlab.domains.config import ClusterConfig, load_partition_config
from mixlab.domains.partition import cluster_pool, partition_pool
from mixlab.evaluation.tasks import parse_task_specs
from mixlab.pool.pool import Pool


def _cmd_partition(args: argparse.Namespace) -> int:
    tasks = parse_task_specs(args.tasks) if args.tasks else None
    method = args.method or ("anchored" if tasks else None)
    config = load_partition_config(
        args.config, method=method, rules_file=args.rules, seeds=args.seeds, tasks=tasks
    )
    pool = Pool.open(args.pool)
    summary = partition_pool(pool, config, workers=args.workers, force=args.force)
    print(
        f"domains of {pool.root} ({summary['method']}): {summary['n_docs']} documents, {summary['n_tokens']} tokens"
    )
    for domain, row in summary["domains"].items():
        share = row["tokens"] / max(1, summary["n_tokens"])
        print(f"  {domain:<20} {row['docs']:>9} docs {row['tokens']:>12} tokens ({share:.1%})")
    if not summary["computed_shards"]:
        print("  (all shards were already done; pass --force to redo)")
    return 0


def _cmd_cluster(args: argparse.Namespace) -> int:
    config = ClusterConfig(
        k=args.k,
        embed=args.embed,
        merge_threshold=args.merge_threshold,
        fit_sample=args.fit_sample,
        seed=args.seed,
    )
    pool = Pool.open(args.pool)
    summaries = cluster_pool(pool, config, workers=args.workers, force=args.force)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summaries, indent=2, ensure_ascii=False), encoding="utf-8")
    print(
        f"{len(summaries)} clusters (k={args.k}, merged at cosine >= {args.merge_threshold}); summaries in {out}"
    )
    for s in summaries:
        merged = f" merged from {s['merged_from']}" if len(s["merged_from"]) > 1 else ""
        print(f"  {s['cluster']:>3} {s['docs']:>8} docs  {', '.join(s['top_terms'][:6])}{merged}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("partition", help="label documents with domains (attribute 'domains')")
    p.add_argument("pool", help="pool folder")
    p.add_argument(
        "--config", default=None, help="partition YAML (or a pipeline YAML with a 'partition' section)"
    )
    p.add_argument(
        "--method",
        default=None,
        choices=[
            "rules",
            "classifier",
            "rules+classifier",
            "embedding",
            "clusters",
            "anchored",
            "rules+anchored",
        ],
        help="override the config's method (default rules+classifier; anchored when --tasks is given)",
    )
    p.add_argument(
        "--tasks",
        default=None,
        help="task-anchored domains: NAME=FILE,... (ELMB JSONL or lm-eval YAML); needs no rules",
    )
    p.add_argument("--rules", default=None, help="rules YAML (default: the packaged default rules)")
    p.add_argument(
        "--seeds", default=None, help="labelled seed JSONL (text, domain) instead of rule-selected seeds"
    )
    p.add_argument("--workers", type=int, default=1, help="processes for the per-shard apply")
    p.add_argument("--force", action="store_true", help="redo all shards (and refit)")
    p.set_defaults(func=_cmd_partition)

    c = sub.add_parser("cluster", help="unsupervised clusters with summaries (attribute 'clusters')")
    c.add_argument("pool", help="pool folder")
    c.add_argument("--k", type=int, default=20, help="k-means clusters before merging")
    c.add_argument("--embed", choices=["tfidf", "minilm"], default="tfidf", help="document vectors")
    c.add_argument(
        "--merge-threshold", type=float, default=0.9, help="merge clusters with centroid cosine >= this"
    )
    c.add_argument("--fit-sample", type=int, default=50_000, help="documents used to fit (hash-sampled)")
    c.add_argument("--seed", type=int, default=0, help="random seed")
    c.add_argument("--out", required=True, help="summaries JSON to write")
    c.add_argument("--workers", type=int, default=1, help="processes for the per-shard apply")
    c.add_argument("--force", action="store_true", help="refit and redo all shards")
    c.set_defaults(func=_cmd_cluster)
