"""CLI of the quality stage: ``mixlab quality``, ``mixlab perplexity``, ``mixlab density``.

``perplexity`` and ``density`` run one scorer of the stage (:func:`mixlab.quality.scorers.run_scorer`, the
code ``mixlab quality`` and ``mixlab run`` run), reading ``quality.NAME`` of ``--config`` with the flags on
top; the attribute they write is the one the stage reuses.
"""

from __future__ import annotations

import argparse
from typing import Any

from mixlab.executors import add_executor_arguments, executor_from_args
from mixlab.pool.pool import Pool
from mixlab.quality.config import QualityConfig
from mixlab.stage_config import add_config_argument, flag_values, stage_config


def _cmd_quality(args: argparse.Namespace) -> int:
    from mixlab.quality.stage import score_quality

    config = QualityConfig.from_yaml(args.config) if args.config else QualityConfig()
    summary = score_quality(
        Pool.open(args.pool),
        config,
        workers=args.workers,
        force=args.force,
        executor=executor_from_args(args),
    )
    print(f"quality: {summary['docs']} documents, {summary['kept']} kept, {summary['filtered']} filtered")
    for reason, n in summary["by_reason"].items():
        print(f"  filtered ({reason}): {n}")
    for dom, d in summary["per_domain"].items():
        edges = ", ".join(f"{e:.3f}" for e in d["bucket_edges"])
        print(
            f"  domain {dom}: {d['docs']} docs, {d['kept']} kept, {d['filtered']} filtered; bucket edges [{edges}]"
        )
    if args.plot:
        from mixlab.quality.plots import score_histograms
        from mixlab.quality.stage import QUALITY_ATTR, _domains

        pool = Pool.open(args.pool)
        path = score_histograms(pool.read_attr(QUALITY_ATTR), _domains(pool, config), args.plot)
        print(f"histograms: {path}")
    return 0


#: ``mixlab perplexity`` / ``mixlab density`` flags (argparse dest = settings field).
PERPLEXITY_FLAGS = (
    "model",
    "gguf_file",
    "tokenizer",
    "max_length",
    "batch_size",
    "dtype",
    "device",
    "threads",
    "gpus",
)
DENSITY_FLAGS = ("model", "k", "max_seq_length", "batch_size", "n_reference", "seed", "threads")


def _run_scorer_command(args: argparse.Namespace, name: str, overrides: dict[str, Any]) -> int:
    """One scorer of the quality stage (its section of ``--config``, then the flags) through the executor."""
    from mixlab.quality.scorers import SCORERS, run_scorer

    scorer = SCORERS[name]
    settings = stage_config(
        scorer.settings, args.config, [f"quality.{name}", name], overrides, what=f"quality.{name}"
    )
    if not settings.active():
        raise ValueError(f"{name}: nothing to compute; {scorer.hint}")
    pool = Pool.open(args.pool)
    with executor_from_args(args) as executor:
        computed = run_scorer(pool, name, settings, executor, force=args.force)
    values = pool.read_attr(scorer.attr, columns=[scorer.signal])[scorer.signal]
    print(f"{name}: {len(computed[scorer.attr])} of {len(pool.shards)} shard(s) computed")
    print(
        f"{name}: {len(values)} documents, median {values.median():.4g}, "
        f"5%..95% {values.quantile(0.05):.4g}..{values.quantile(0.95):.4g}"
    )
    return 0


def _cmd_perplexity(args: argparse.Namespace) -> int:
    return _run_scorer_command(args, "perplexity", flag_values(args, PERPLEXITY_FLAGS))


def _cmd_density(args: argparse.Namespace) -> int:
    return _run_scorer_command(args, "density", {**flag_values(args, DENSITY_FLAGS), "enabled": True})


def _scorer_common(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("pool", help="pool folder")
    add_config_argument(parser, f"quality.{name}")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per shard (default 1)")
    parser.add_argument("--workers", type=int, default=1, help="shards at once (processes or Ray tasks)")
    parser.add_argument("--force", action="store_true", help="recompute finished shards")
    add_executor_arguments(parser)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    q = sub.add_parser(
        "quality", help="heuristic quality signals, score, per-domain buckets -> attribute 'quality'"
    )
    q.add_argument("pool", help="pool folder")
    q.add_argument("--config", default=None, help="YAML with the quality section (or a pipeline YAML)")
    q.add_argument("--workers", type=int, default=1, help="processes for the per-shard signals")
    q.add_argument("--force", action="store_true", help="recompute signals of finished shards")
    add_executor_arguments(q)
    q.add_argument("--plot", default=None, help="also write per-domain score histograms to this PNG")
    q.set_defaults(func=_cmd_quality)

    p = sub.add_parser("perplexity", help="perplexity under a causal LM -> attribute 'perplexity'")
    _scorer_common(p, "perplexity")
    p.add_argument(
        "--model",
        default=None,
        help="model folder or name (with --gguf-file: the folder holding it); 'smollm2': the packaged GGUF",
    )
    p.add_argument(
        "--gguf-file",
        default=None,
        help="GGUF file name inside --model (e.g. SmolLM2-135M-Instruct.Q4_1.gguf)",
    )
    p.add_argument("--tokenizer", default=None, help="tokenizer path (default: the model's own)")
    p.add_argument("--max-length", type=int, default=None, help="tokens scored per document (default 512)")
    p.add_argument("--batch-size", type=int, default=None, help="documents per forward pass (default 8)")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default=None, help="model dtype")
    p.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default=None, help="default: cuda when visible"
    )
    p.add_argument(
        "--gpus", type=float, default=None, help="GPUs per shard task (Ray; fractional shares one)"
    )
    p.set_defaults(func=_cmd_perplexity)

    d = sub.add_parser("density", help="embedding k-NN distance (outlier score) -> attribute 'density'")
    _scorer_common(d, "density")
    d.add_argument("--k", type=int, default=None, help="neighbours (default 10)")
    d.add_argument(
        "--model", default=None, help="sentence-transformers folder (default: packaged all-MiniLM-L6-v2)"
    )
    d.add_argument("--max-seq-length", type=int, default=None, help="tokens of each document embedded (128)")
    d.add_argument("--batch-size", type=int, default=None, help="texts per embedding batch (default 32)")
    d.add_argument("--n-reference", type=int, default=None, help="reference sample size (default 10000)")
    d.add_argument("--seed", type=int, default=None, help="key of the reference sample")
    d.set_defaults(func=_cmd_density)
