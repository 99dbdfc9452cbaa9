"""CLI of the quality stage: ``mixlab quality``, ``mixlab perplexity``, ``mixlab density``."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import pyarrow as pa

from mixlab.executors import add_executor_arguments, executor_from_args
from mixlab.pool.pool import Pool, fingerprint
from mixlab.quality.config import QualityConfig


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


def _write_column(pool: Pool, name: str, values: np.ndarray, info: dict[str, Any]) -> None:
    fp = fingerprint(info)
    pool.set_attr_target(name, fp, info)
    start = 0
    for shard in pool.shards:
        n = len(pool.read_shard(shard, ["id"]))
        pool.write_attr(name, shard, pa.table({name: values[start : start + n]}), fp)
        start += n
    pool.write_attr_info(name, info)


def _cmd_perplexity(args: argparse.Namespace) -> int:
    from mixlab.console import tqdm
    from mixlab.quality.perplexity import PerplexityScorer

    pool = Pool.open(args.pool)
    scorer = PerplexityScorer(
        args.model,
        tokenizer=args.tokenizer,
        max_length=args.max_length,
        batch_size=args.batch_size,
        device=args.device,
        gguf_file=args.gguf_file,
    )
    info = {
        "stage": "perplexity",
        "model": args.model,
        "gguf_file": args.gguf_file,
        "tokenizer": args.tokenizer,
        "max_length": args.max_length,
    }
    fp = fingerprint(info)
    with pool.lock("perplexity"):
        pool.set_attr_target("perplexity", fp, info)  # another model: shards are replaced one by one
        for shard in tqdm(pool.shards, desc="perplexity", unit="shard"):
            if pool.attr_done("perplexity", shard, fp) and not args.force:
                continue
            texts = pool.read_shard(shard, ["text"]).column("text").to_pylist()
            pool.write_attr("perplexity", shard, pa.table({"perplexity": scorer.score(texts)}), fp)
        pool.write_attr_info("perplexity", info)
    ppl = pool.read_attr("perplexity")["perplexity"]
    print(
        f"perplexity: {len(ppl)} documents, median {ppl.median():.2f}, 5%..95% {ppl.quantile(0.05):.2f}..{ppl.quantile(0.95):.2f}"
    )
    return 0


def _cmd_density(args: argparse.Namespace) -> int:
    from mixlab.quality.density import embed_texts, knn_density, load_embedder

    pool = Pool.open(args.pool)
    info = {
        "stage": "density",
        "k": args.k,
        "model": args.model or "all-MiniLM-L6-v2",
        "max_chars": args.max_chars,
    }
    with pool.lock("density"):
        if pool.has_attr("density", fingerprint(info)) and not args.force:
            print("density: already computed with these settings (use --force to recompute)")
            return 0
        texts = pool.read_docs(["text"])["text"].str.slice(0, args.max_chars).tolist()
        emb = embed_texts(texts, load_embedder(args.model), batch_size=args.batch_size)
        dens = knn_density(emb, args.k)
        _write_column(pool, "density", dens, info)
    print(
        f"density: {len(dens)} documents, k={args.k}, median {np.median(dens):.4f}, 99% {np.quantile(dens, 0.99):.4f}"
    )
    return 0


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
    p.add_argument("pool", help="pool folder")
    p.add_argument(
        "--model", required=True, help="model folder or name (with --gguf-file: the folder holding it)"
    )
    p.add_argument(
        "--gguf-file",
        default=None,
        help="GGUF file name inside --model (e.g. SmolLM2-135M-Instruct.Q4_1.gguf)",
    )
    p.add_argument("--tokenizer", default=None, help="tokenizer path (default: the model's own)")
    p.add_argument("--max-length", type=int, default=512, help="tokens scored per document (truncation)")
    p.add_argument("--batch-size", type=int, default=8, help="documents per forward pass")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--force", action="store_true", help="recompute finished shards")
    p.set_defaults(func=_cmd_perplexity)

    d = sub.add_parser("density", help="embedding k-NN distance (outlier score) -> attribute 'density'")
    d.add_argument("pool", help="pool folder")
    d.add_argument("--k", type=int, default=10, help="neighbours")
    d.add_argument(
        "--model", default=None, help="sentence-transformers model (default: packaged all-MiniLM-L6-v2)"
    )
    d.add_argument("--max-chars", type=int, default=2000, help="characters of each document embedded")
    d.add_argument("--batch-size", type=int, default=64, help="texts per embedding batch")
    d.add_argument("--force", action="store_true", help="recompute")
    d.set_defaults(func=_cmd_density)
