"""CLI of the domains stage: ``mixlab partition`` and ``mixlab cluster``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mixlab.domains.config import ClusterConfig, load_partition_config
from mixlab.domains.methods import read_source_summaries
from mixlab.domains.partition import cluster_pool, partition_pool
from mixlab.evaluation.tasks import parse_task_specs
from mixlab.executors import add_executor_arguments, executor_from_args
from mixlab.pool.pool import Pool
from mixlab.stage_config import add_config_argument, flag_values, stage_config


def _parse_pins(text: str) -> dict[str, str]:
    """``"src_a=domain,src_b=domain"`` -> ``{"src_a": "domain", "src_b": "domain"}``."""
    pins: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        source, sep, domain = part.partition("=")
        if not sep or not source.strip() or not domain.strip():
            raise ValueError(f"--pin: expected SOURCE=DOMAIN[,SOURCE=DOMAIN...], got {part!r}")
        pins[source.strip()] = domain.strip()
    return pins


def _cmd_partition(args: argparse.Namespace) -> int:
    tasks = parse_task_specs(args.tasks) if args.tasks else None
    method = args.method or ("anchored" if tasks else None)
    pins = _parse_pins(args.pin) if args.pin else None
    config = load_partition_config(
        args.config, method=method, rules_file=args.rules, seeds=args.seeds, tasks=tasks, pin_sources=pins
    )
    pool = Pool.open(args.pool)
    summary = partition_pool(
        pool, config, workers=args.workers, force=args.force, executor=executor_from_args(args)
    )
    print(
        f"domains of {pool.root} ({summary['method']}): {summary['n_docs']} documents, {summary['n_tokens']} tokens"
    )
    for domain, row in summary["domains"].items():
        share = row["tokens"] / max(1, summary["n_tokens"])
        print(f"  {domain:<20} {row['docs']:>9} docs {row['tokens']:>12} tokens ({share:.1%})")
    if config.pin_sources:
        print("  pinned: " + ", ".join(f"{s} -> {d}" for s, d in config.pin_sources.items()))
    if config.method == "sources":
        print("sources as domains, top terms (from a hash-sample):")
        for s in read_source_summaries(pool):
            print(f"  {s['domain']:<20} {s['size']:>7} sampled  {', '.join(s['top_terms'][:8])}")
    if not summary["computed_shards"]:
        print("  (all shards were already done; pass --force to redo)")
    return 0


def _cmd_cluster(args: argparse.Namespace) -> int:
    flags = ("algorithm", "k", "embed", "merge_threshold", "fit_sample", "seed")
    config = stage_config(
        ClusterConfig,
        args.config,
        ("partition.clusters", "clusters"),
        flag_values(args, flags),
        what="cluster",
    )
    pool = Pool.open(args.pool)
    summaries = cluster_pool(
        pool, config, workers=args.workers, force=args.force, executor=executor_from_args(args)
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summaries, indent=2, ensure_ascii=False), encoding="utf-8")
    kind = "LDA topics" if config.algorithm == "lda" else "clusters"
    print(
        f"{len(summaries)} {kind} (k={config.k}, merged at cosine >= {config.merge_threshold}); summaries in {out}"
    )
    for s in summaries:
        merged = f" merged from {s['merged_from']}" if len(s["merged_from"]) > 1 else ""
        print(f"  {s['cluster']:>3} {s['docs']:>8} docs  {', '.join(s['top_terms'][:6])}{merged}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("partition", help="label documents with domains (attribute 'domains')")
    p.add_argument("pool", help="pool folder")
    add_config_argument(p, "partition")
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
            "sources",
        ],
        help=(
            "override the config's method (default rules+classifier; anchored when --tasks is given; "
            "sources: each source is a domain, e.g. a ClimbLab pool's clusters)"
        ),
    )
    p.add_argument(
        "--pin",
        default=None,
        help="SOURCE=DOMAIN,...: every document of the source gets that domain (config: pin_sources)",
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
    add_executor_arguments(p)
    p.set_defaults(func=_cmd_partition)

    c = sub.add_parser("cluster", help="unsupervised clusters with summaries (attribute 'clusters')")
    c.add_argument("pool", help="pool folder")
    add_config_argument(c, "partition.clusters")
    c.add_argument(
        "--k", type=int, default=None, help="k-means clusters (or LDA topics) before merging (default 20)"
    )
    c.add_argument(
        "--algorithm", choices=["kmeans", "lda"], default=None, help="k-means (default) or an LDA topic model"
    )
    c.add_argument(
        "--embed", choices=["tfidf", "minilm"], default=None, help="document vectors (default tfidf)"
    )
    c.add_argument(
        "--merge-threshold",
        type=float,
        default=None,
        help="merge clusters with centroid cosine >= this (default 0.9)",
    )
    c.add_argument(
        "--fit-sample", type=int, default=None, help="documents used to fit, hash-sampled (default 50000)"
    )
    c.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    c.add_argument("--out", required=True, help="summaries JSON to write")
    c.add_argument("--workers", type=int, default=1, help="processes for the per-shard apply")
    c.add_argument("--force", action="store_true", help="refit and redo all shards")
    add_executor_arguments(c)
    c.set_defaults(func=_cmd_cluster)
