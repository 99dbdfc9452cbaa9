"""Noise recall of the quality stage on the shared corpus (planted noise: ``noise_kind``).

Ingests ../shared/data/corpus into a pool (GPT-2 tokenizer), runs ``score_quality`` with the default
config, and prints per noise kind the share filtered, plus the false-positive rate on real documents.
Duplicates (exact/near) are the dedup stage's job: when the pool has a ``dedup`` attribute, the combined
recall (quality filtered OR dup_keep false) is printed as well.

    .venv/bin/python bench/noise_recall.py [--pool /tmp/mixlab_noise_pool] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mixlab.pool.ingest import ingest
from mixlab.quality.config import QualityConfig
from mixlab.quality.stage import score_quality

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
QUALITY_KINDS = ("boilerplate", "gibberish", "short_fragment", "repeated_ngram")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", default="/tmp/mixlab_noise_pool")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    pool = ingest([DATA / "corpus"], args.pool, tokenizer=str(DATA / "tokenizers/gpt2/tokenizer.json"))
    t0 = time.perf_counter()
    summary = score_quality(pool, QualityConfig(), workers=args.workers)
    dt = time.perf_counter() - t0
    docs = pool.read_docs(["id", "source", "meta"])
    q = pool.read_attr("quality", columns=["quality_keep", "quality_reason"])
    kind = np.array([json.loads(m).get("noise_kind", "") for m in docs["meta"]], dtype=object)
    filtered = ~q["quality_keep"].to_numpy(dtype=bool)
    dedup = None
    if pool.has_attr("dedup"):
        dedup = ~pool.read_attr("dedup", columns=["dup_keep"])["dup_keep"].to_numpy(dtype=bool)
    print(f"quality stage on {len(docs)} docs in {dt:.1f}s (signals computed for {len(summary['signals_computed'])} shards)")
    print(f"{'noise_kind':18s} {'docs':>6s} {'quality':>8s}" + ("  quality+dedup" if dedup is not None else ""))
    for k in sorted(set(kind.tolist()) - {""}):
        m = kind == k
        line = f"{k:18s} {int(m.sum()):6d} {filtered[m].mean():8.3f}"
        if dedup is not None:
            line += f"  {(filtered | dedup)[m].mean():13.3f}"
        print(line)
    qk = np.isin(kind, QUALITY_KINDS)
    real = kind == ""
    print(f"recall, quality kinds ({', '.join(QUALITY_KINDS)}): {filtered[qk].mean():.4f}")
    print(f"recall, all noise (quality alone): {filtered[~real].mean():.4f}")
    if dedup is not None:
        print(f"recall, all noise (quality + dedup): {(filtered | dedup)[~real].mean():.4f}")
        print(f"false-positive rate on real docs (quality + dedup): {(filtered | dedup)[real].mean():.4f}")
    print(f"false-positive rate on real docs (quality): {filtered[real].mean():.4f} ({int(filtered[real].sum())} of {int(real.sum())})")
    reasons = q["quality_reason"].to_numpy(dtype=object)
    fp = {}
    for r, s in zip(reasons[real & filtered], docs["source"].to_numpy()[real & filtered], strict=True):
        fp[f"{r}/{s}"] = fp.get(f"{r}/{s}", 0) + 1
    print("false positives by reason/source:", dict(sorted(fp.items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main()
