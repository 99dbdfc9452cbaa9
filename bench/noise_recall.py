"""Noise recall of the quality stage on the shared corpus (planted noise: ``noise_kind``).

Ingests ../shared/data/corpus into a pool (GPT-2 tokenizer), runs ``score_quality`` with the default
config, and prints per noise kind the share filtered, plus the false-positive rate on real documents.
Duplicates (exact/near) are the dedup stage's job: with ``--dedup-thresholds`` the dedup stage is run at
each near-duplicate Jaccard threshold (representative = highest quality score) and the combined recall
(quality filtered OR not kept by dedup) and false-positive rate are printed. The false positives are
split by cause: the quality filters, real documents that are near duplicates of another *real* document
(the cluster's kept document is real: e.g. bfcl prompts sharing one function specification, FOLDOC
entries copied from the Jargon File), and real documents that lost their cluster to a planted copy.

    .venv/bin/python bench/noise_recall.py [--pool /tmp/mixlab_noise_pool] [--workers 1] \
        [--dedup-thresholds 0.4,0.6,0.7,0.8]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mixlab.pool.ingest import ingest
from mixlab.pool.pool import Pool
from mixlab.quality.config import QualityConfig
from mixlab.quality.stage import score_quality

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
QUALITY_KINDS = ("boilerplate", "gibberish", "short_fragment", "repeated_ngram")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", default="/tmp/mixlab_noise_pool")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument(
        "--rebuild", action="store_true", help="re-ingest even if a pool with other settings exists"
    )
    ap.add_argument(
        "--dedup-thresholds", default="", help="comma-separated Jaccard thresholds to run dedup at"
    )
    args = ap.parse_args()
    pool = ingest(
        [DATA / "corpus"],
        args.pool,
        tokenizer=str(DATA / "tokenizers/gpt2/tokenizer.json"),
        force=args.rebuild,
    )
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
    print(
        f"quality stage on {len(docs)} docs in {dt:.1f}s (signals computed for {len(summary['signals_computed'])} shards)"
    )
    print(
        f"{'noise_kind':18s} {'docs':>6s} {'quality':>8s}" + ("  quality+dedup" if dedup is not None else "")
    )
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
    print(
        f"false-positive rate on real docs (quality): {filtered[real].mean():.4f} ({int(filtered[real].sum())} of {int(real.sum())})"
    )
    reasons = q["quality_reason"].to_numpy(dtype=object)
    fp = {}
    for r, s in zip(reasons[real & filtered], docs["source"].to_numpy()[real & filtered], strict=True):
        fp[f"{r}/{s}"] = fp.get(f"{r}/{s}", 0) + 1
    print("false positives by reason/source:", dict(sorted(fp.items(), key=lambda kv: -kv[1])))
    for threshold in [float(t) for t in args.dedup_thresholds.split(",") if t.strip()]:
        combined(pool, kind, filtered, docs["id"].to_list(), docs["source"].to_numpy(dtype=object), threshold)


def combined(
    pool: Pool, kind: np.ndarray, filtered: np.ndarray, ids: list[str], source: np.ndarray, threshold: float
) -> None:
    """Quality + dedup at one near-duplicate threshold: recall, strict FPR and its causes."""
    from mixlab.dedup.config import DedupConfig
    from mixlab.dedup.stage import dedup_pool

    dedup_pool(pool, DedupConfig(threshold=threshold), force=True)
    attr = pool.read_attr("dedup", columns=["dup_keep", "dup_cluster"])
    dropped = ~attr["dup_keep"].to_numpy(dtype=bool)
    row = {doc_id: i for i, doc_id in enumerate(ids)}
    rep_is_noise = np.array([kind[row[c]] != "" for c in attr["dup_cluster"].to_list()], dtype=bool)
    real = kind == ""
    flagged = filtered | dropped
    n_real = int(real.sum())
    by_quality = int((real & filtered).sum())
    real_dups = real & dropped & ~filtered & ~rep_is_noise
    lost_to_copy = int((real & dropped & ~filtered & rep_is_noise).sum())
    per_kind = {k: round(float(flagged[kind == k].mean()), 3) for k in sorted(set(kind.tolist()) - {""})}
    sources: dict[str, int] = {}
    for s in source[real_dups]:
        sources[s] = sources.get(s, 0) + 1
    print(
        f"\nquality + dedup at Jaccard {threshold}: recall {flagged[~real].mean():.4f}, "
        f"false positives {flagged[real].mean():.4f} ({int(flagged[real].sum())} of {n_real})\n"
        f"  per noise kind {per_kind}\n"
        f"  false positives by cause: quality filters {by_quality / n_real:.4f}; near duplicate of another "
        f"real document {int(real_dups.sum()) / n_real:.4f}; cluster kept a planted copy {lost_to_copy / n_real:.4f}\n"
        f"  real-real duplicates by source {dict(sorted(sources.items(), key=lambda kv: -kv[1])[:6])}\n"
        f"  excluding real-real duplicates: false positives {(by_quality + lost_to_copy) / n_real:.4f}"
    )


if __name__ == "__main__":
    main()
