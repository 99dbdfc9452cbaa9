"""Benchmark: domain partitioning on the shared corpus against its source -> domain mapping.

Ingests ``../shared/data/corpus`` (or a hash-sample of it) into a temporary pool, runs
``partition_pool`` with each method and prints per-domain precision / recall / F1 and macro-F1 for:
rules, hashed classifier, rules+classifier (override / blend / product) and the embedding classifier
(on a smaller sample: MiniLM on 2 CPU cores embeds ~15-30 docs/s). Noise documents are partitioned but
left out of the scores. The document source is never a feature; it is only used for the gold labels.

Classifier seeds come from rules (high-confidence matches, no gold labels), so nothing leaks. With
``--heldout`` it also trains the hashed classifier on a gold-labelled half (split by id hash) and scores
the other half.

    .venv/bin/python bench/bench_domains.py [--limit N] [--embed-sample 1500] [--heldout]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

from mixlab.domains.config import DEFAULT_DOMAINS, PartitionConfig
from mixlab.domains.hashed_classifier import HashedNgramClassifier
from mixlab.domains.partition import id_rank, partition_pool
from mixlab.pool.ingest import ingest
from mixlab.pool.pool import Pool

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCE_DOMAIN = {
    "wikitext2": "general", "foldoc": "general", "jargon": "general", "devils_dictionary": "general",
    "python_docs": "code", "cpython_stdlib": "code", "humaneval": "code",
    "gsm8k_train": "reasoning", "bfcl": "function_calling", "xquad": "rag",
    "crd3": "roleplay", "tinyshakespeare": "roleplay",
}  # fmt: skip


def read_corpus(limit: int | None) -> list[dict]:
    rows: list[dict] = []
    for path in sorted((DATA / "corpus").glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            rows.extend(json.loads(line) for line in fh)
    if limit and limit < len(rows):
        rows = sorted(rows, key=lambda r: id_rank(r["id"], "bench"))[:limit]
    return rows


def make_pool(rows: list[dict], folder: Path) -> Pool:
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / "docs.jsonl"
    with src.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps({"id": r["id"], "text": r["text"], "source": r["source"]}) + "\n")
    return ingest(
        [src],
        folder / "pool",
        tokenizer=str(DATA / "tokenizers" / "gpt2" / "tokenizer.json"),
        shard_docs=5000,
    )


def score(name: str, gold: list[str], pred: list[str], seconds: float) -> float:
    labels = list(DEFAULT_DOMAINS)
    p, r, f, s = precision_recall_fscore_support(gold, pred, labels=labels, zero_division=0)
    macro = float(np.mean(f))
    print(f"\n== {name}: macro-F1 {macro:.4f}  ({len(gold)} docs scored, {seconds:.1f}s)")
    print(f"   {'domain':<18}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>9}")
    for i, d in enumerate(labels):
        print(f"   {d:<18}{p[i]:>10.4f}{r[i]:>10.4f}{f[i]:>10.4f}{s[i]:>9d}")
    return macro


def run_method(
    pool: Pool, config: PartitionConfig, gold_by_id: dict[str, str]
) -> tuple[list[str], list[str], float]:
    t0 = time.time()
    partition_pool(pool, config, force=True)
    seconds = time.time() - t0
    attr = pool.read_attr("domains", columns=["domain"])
    keep = [i for i, doc in enumerate(attr["id"]) if doc in gold_by_id]
    gold = [gold_by_id[attr["id"].iloc[i]] for i in keep]
    pred = [attr["domain"].iloc[i] for i in keep]
    return gold, pred, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--limit", type=int, default=None, help="hash-sample this many corpus documents (default all)"
    )
    ap.add_argument(
        "--embed-sample", type=int, default=1500, help="documents for the embedding classifier (0: skip)"
    )
    ap.add_argument(
        "--heldout", action="store_true", help="also: hashed classifier trained on a gold-labelled half"
    )
    args = ap.parse_args(argv)
    if not (DATA / "corpus").is_dir():
        print(f"shared corpus not found at {DATA / 'corpus'}", file=sys.stderr)
        return 1
    rows = read_corpus(args.limit)
    gold_by_id = {r["id"]: SOURCE_DOMAIN[r["source"]] for r in rows if r["source"] in SOURCE_DOMAIN}
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        pool = make_pool(rows, Path(tmp) / "full")
        print(
            f"pool: {pool.n_docs()} documents ({len(gold_by_id)} scored, noise excluded), {pool.n_tokens()} tokens"
        )
        for name, cfg in [
            ("rules", PartitionConfig(method="rules")),
            ("hashed classifier (rule seeds)", PartitionConfig(method="classifier")),
            ("rules+classifier override", PartitionConfig(method="rules+classifier", combine="override")),
            ("rules+classifier blend 0.5", PartitionConfig(method="rules+classifier", combine="blend")),
            ("rules+classifier product", PartitionConfig(method="rules+classifier", combine="product")),
        ]:
            results[name] = score(name, *run_method(pool, cfg, gold_by_id))
        if args.heldout:
            ids = list(gold_by_id)
            train = [i for i in ids if id_rank(i, "split") % 2 == 0]
            test = [i for i in ids if id_rank(i, "split") % 2 == 1]
            text = {r["id"]: r["text"] for r in rows}
            t0 = time.time()
            clf = HashedNgramClassifier().fit([text[i] for i in train], [gold_by_id[i] for i in train])
            pred = list(clf.predict([text[i] for i in test]))
            name = "hashed classifier (gold half -> other half)"
            results[name] = score(name, [gold_by_id[i] for i in test], pred, time.time() - t0)
        if args.embed_sample:
            sample = sorted(rows, key=lambda r: id_rank(r["id"], "embed"))[: args.embed_sample]
            small = make_pool(sample, Path(tmp) / "embed")
            sub_gold = {r["id"]: gold_by_id[r["id"]] for r in sample if r["id"] in gold_by_id}
            for name, cfg in [
                (f"rules (embed sample of {len(sample)})", PartitionConfig(method="rules")),
                (
                    f"embedding classifier (rule seeds, sample of {len(sample)})",
                    PartitionConfig(method="embedding"),
                ),
            ]:
                results[name] = score(name, *run_method(small, cfg, sub_gold))
    print("\nmacro-F1 summary (target >= 0.9 for rules+classifier):")
    for name, value in results.items():
        print(f"  {name:<60} {value:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
