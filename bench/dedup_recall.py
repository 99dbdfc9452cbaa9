"""Benchmark: recall of the planted duplicates of the shared corpus, false positives, throughput, and
the speed of our vectorised MinHash against datasketch's ``MinHash.update_batch`` (the competitor).

    .venv/bin/python bench/dedup_recall.py [--pool /tmp/mixlab_bench_pool] [--threshold 0.4] [--sample 3000]

Ingests the whole shared corpus (originals first, ``noise.jsonl.gz`` last: the copies come after the
documents they copy, as in a crawl) unless the pool exists, runs ``dedup_pool`` and
``decontaminate_pool``, and prints:
- recall of ``exact_duplicate`` / ``near_duplicate`` noise docs: found = in the same cluster as the
  original (``duplicate_of``) and not the representative; also the cluster-only recall;
- real documents (not noise) marked as non-representative, by source: these are not planted, so they
  are either genuine duplicates of the corpus or false positives (inspect them);
- docs/s of the signature pass (CPU seconds) and of the whole dedup; datasketch docs/s on a sample and the
  ratio ours / datasketch;
- contamination of the real corpus against the shared tasks (default rule and the plain GPT-3 rule).
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", default="/tmp/mixlab_bench_dedup_pool", help="pool folder (created if missing)")
    ap.add_argument("--threshold", type=float, default=None, help="near-duplicate Jaccard threshold")
    ap.add_argument("--shingle-n", type=int, default=None, help="words per shingle")
    ap.add_argument("--sample", type=int, default=3000, help="documents for the datasketch comparison")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()

    from datasketch import MinHash

    from mixlab.dedup.config import DecontamConfig, DedupConfig
    from mixlab.dedup.minhash import minhash_signatures
    from mixlab.dedup.normalize import words
    from mixlab.dedup.stage import decontaminate_pool, dedup_pool
    from mixlab.pool.ingest import ingest

    files = sorted(glob.glob(str(DATA / "corpus" / "*.jsonl.gz")))
    files = [f for f in files if "noise" not in f] + [f for f in files if "noise" in f]
    pool = ingest(
        files, args.pool, tokenizer=str(DATA / "tokenizers" / "gpt2" / "tokenizer.json"), shard_docs=5000
    )
    overrides = {
        k: v for k, v in (("threshold", args.threshold), ("shingle_n", args.shingle_n)) if v is not None
    }
    config = DedupConfig(**overrides)

    wall = time.time()
    cpu = time.process_time()
    summary = dedup_pool(pool, config, workers=args.workers, force=True)
    dedup_cpu, dedup_wall = time.process_time() - cpu, time.time() - wall
    print("dedup summary:", json.dumps(summary))

    docs = pool.read_docs(["id", "source", "meta", "n_chars"])
    attr = pool.read_attr("dedup")
    meta = [json.loads(m) for m in docs["meta"]]
    kind = np.array([m.get("noise_kind", "") for m in meta])
    dup_of = [m.get("duplicate_of", "") for m in meta]
    cluster = dict(zip(attr["id"], attr["dup_cluster"], strict=True))
    keep = attr["dup_keep"].to_numpy()
    ids = attr["id"].tolist()
    for k in ("exact_duplicate", "near_duplicate"):
        rows = np.flatnonzero(kind == k)
        same = np.array([cluster[ids[i]] == cluster[dup_of[i]] for i in rows])
        strict = same & ~keep[rows]
        print(f"recall {k}: {strict.mean():.4f} (same cluster: {same.mean():.4f}; n={rows.size})")
    planted = np.isin(kind, ["exact_duplicate", "near_duplicate"])
    real = (docs["source"] != "noise").to_numpy()
    fp = real & ~keep
    print(
        f"real docs marked duplicate (not planted): {fp.sum()} / {real.sum()} = {fp.sum() / real.sum():.4f}"
    )
    print("  by source:", dict(Counter(docs["source"][fp]).most_common()))
    print("  by kind:", dict(Counter(attr["dup_kind"][fp]).most_common()))
    jac = attr["dup_jaccard"].to_numpy()[fp & (attr["dup_kind"] == "near").to_numpy()]
    if jac.size:
        print(
            "  near: est. Jaccard to representative quantiles 0/10/50%:",
            np.quantile(jac, [0, 0.1, 0.5]).round(3),
        )
    other_noise = ~real & ~planted & ~keep
    print(
        f"other noise docs marked duplicate: {other_noise.sum()}",
        dict(Counter(kind[other_noise]).most_common()),
    )

    n_docs = len(docs)
    sig_cpu = time.process_time()
    sig_wall = time.time()
    texts = [str(t) for t in pool.read_docs(["text"])["text"]]
    ours_sig = minhash_signatures(texts, config.num_perm, config.shingle_n, config.seed)
    sig_cpu, sig_wall = time.process_time() - sig_cpu, time.time() - sig_wall
    print(
        f"throughput: dedup_pool (signatures + LSH + write) {n_docs / dedup_wall:.0f} docs/s wall, "
        f"{n_docs / dedup_cpu:.0f} docs/s CPU of the main process; minhash_signatures alone "
        f"{n_docs / sig_cpu:.0f} docs/s CPU ({sig_wall:.1f} s wall for {n_docs} docs)"
    )
    del ours_sig

    rng = np.random.default_rng(0)
    sample = [texts[i] for i in rng.choice(n_docs, size=min(args.sample, n_docs), replace=False)]
    t0 = time.process_time()
    minhash_signatures(sample, config.num_perm, config.shingle_n, config.seed)
    ours = len(sample) / (time.process_time() - t0)
    t0 = time.process_time()
    n = config.shingle_n
    for text in sample:
        w = words(text)
        shingles = [" ".join(w[i : i + n]).encode() for i in range(max(1, len(w) - n + 1))]
        m = MinHash(num_perm=config.num_perm, seed=config.seed)
        m.update_batch(shingles)
    theirs = len(sample) / (time.process_time() - t0)
    print(
        f"minhash on {len(sample)} docs: ours {ours:.0f} docs/s, datasketch {theirs:.0f} docs/s, "
        f"ratio ours/datasketch = {ours / theirs:.2f}"
    )

    tasks = {Path(p).stem: Path(p) for p in sorted(glob.glob(str(DATA / "tasks" / "*.jsonl")))}
    for label, extra in (
        ("default (coverage >= 0.8)", {}),
        ("GPT-3 rule (any 13-gram)", {"min_coverage": 0.0}),
    ):
        t0 = time.time()
        s = decontaminate_pool(pool, DecontamConfig(tasks=tasks, **extra), workers=args.workers)
        print(
            f"decontam {label}: {s['contaminated']} / {s['docs']} contaminated {s['per_task']}, "
            f"{s['overlapping']} share >= 1 13-gram ({s['docs'] / (time.time() - t0):.0f} docs/s wall)"
        )


if __name__ == "__main__":
    main()
