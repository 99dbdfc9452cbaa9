"""Benchmark: domain partitioning on the shared corpus and on the independent yardstick.

The shared corpus is scored against its source -> domain mapping; the yardstick
(``bench/build_yardstick.py``: real documents of ten public sources outside the shared corpus, rendered in
several surface formats) against its own labels. Every method runs on both sets: rules, classifier,
rules+classifier and the task-anchored methods (tasks: the shared ELMB dev tasks). ``anchored`` alone
knows only the four task domains plus "other", so it is scored on five classes (code and general -> other).

Ingests ``../shared/data/corpus`` (or a hash-sample of it) into a temporary pool, runs
``partition_pool`` with each method and prints per-domain precision / recall / F1 and macro-F1 for:
rules, hashed classifier, rules+classifier (override / blend / product) and the embedding classifier
(on a smaller sample: MiniLM on 2 CPU cores embeds ~15-30 docs/s). Noise documents are partitioned but
left out of the scores. The document source is never a feature; it is only used for the gold labels.

Classifier seeds come from rules (high-confidence matches, no gold labels), so nothing leaks. With
``--heldout`` it also trains the hashed classifier on a gold-labelled half (split by id hash) and scores
the other half.

    .venv/bin/python bench/bench_domains.py [--limit N] [--embed-sample 1500] [--heldout]
        [--yardstick DIR] [--no-shared]
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
YARDSTICK_DIRS = [DATA / "yardstick", Path(__file__).resolve().parents[1] / ".mixlab-cache" / "yardstick"]
TASKS = {d: str(DATA / "tasks" / f"{d}.jsonl") for d in ("roleplay", "reasoning", "function_calling", "rag")}
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


def score(
    name: str, gold: list[str], pred: list[str], seconds: float, labels: list[str] | None = None
) -> float:
    labels = labels or list(DEFAULT_DOMAINS)
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


def method_configs(with_tasks: bool) -> list[tuple[str, PartitionConfig]]:
    """The methods compared on both sets (the default first)."""
    configs = [
        ("rules+classifier product (default)", PartitionConfig(method="rules+classifier", combine="product")),
        ("rules", PartitionConfig(method="rules")),
        ("hashed classifier (rule seeds)", PartitionConfig(method="classifier")),
        ("rules+classifier override", PartitionConfig(method="rules+classifier", combine="override")),
        ("rules+classifier blend 0.5", PartitionConfig(method="rules+classifier", combine="blend")),
    ]
    if with_tasks:
        configs += [
            ("anchored (tasks only, 5 classes)", PartitionConfig(method="anchored", tasks=TASKS)),
            ("rules+anchored product", PartitionConfig(method="rules+anchored", tasks=TASKS)),
        ]
    return configs


def run_all(pool: Pool, gold_by_id: dict[str, str], with_tasks: bool) -> dict[str, float]:
    results: dict[str, float] = {}
    for name, cfg in method_configs(with_tasks):
        gold, pred, seconds = run_method(pool, cfg, gold_by_id)
        if cfg.method == "anchored":
            labels = [*TASKS, "other"]
            gold = [g if g in TASKS else "other" for g in gold]
            pred = [p if p in TASKS else "other" for p in pred]
            results[name] = score(name, gold, pred, seconds, labels)
        else:
            results[name] = score(name, gold, pred, seconds)
    return results


def yardstick(folder: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in (folder / "yardstick.jsonl").open(encoding="utf-8")]
    with tempfile.TemporaryDirectory() as tmp:
        pool = make_pool(rows, Path(tmp))
        print(f"\n##### yardstick {folder}: {pool.n_docs()} documents, {pool.n_tokens()} tokens")
        return run_all(pool, {r["id"]: r["domain"] for r in rows}, with_tasks=True)


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
    ap.add_argument("--yardstick", type=Path, default=None, help="yardstick folder (default: first found)")
    ap.add_argument("--no-shared", action="store_true", help="only the yardstick")
    args = ap.parse_args(argv)
    t_start = time.time()
    found = (
        [args.yardstick]
        if args.yardstick
        else [d for d in YARDSTICK_DIRS if (d / "yardstick.jsonl").exists()]
    )
    ys: dict[str, float] = {}
    if found:
        ys = yardstick(found[0])
    else:
        print("yardstick not found: build it with bench/build_yardstick.py", file=sys.stderr)
    if args.no_shared:
        _summary({}, ys, time.time() - t_start)
        return 0
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
        results.update(run_all(pool, gold_by_id, with_tasks=True))
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
    _summary(results, ys, time.time() - t_start)
    return 0


def _summary(shared: dict[str, float], ys: dict[str, float], seconds: float) -> None:
    print(f"\nmacro-F1 summary (targets: yardstick >= 0.9, shared >= 0.99 for the default); {seconds:.0f}s")
    print(f"  {'method':<60} {'shared':>8} {'yardstick':>10}")
    for name in dict.fromkeys([*shared, *ys]):
        a = f"{shared[name]:.4f}" if name in shared else "-"
        b = f"{ys[name]:.4f}" if name in ys else "-"
        print(f"  {name:<60} {a:>8} {b:>10}")


if __name__ == "__main__":
    raise SystemExit(main())
