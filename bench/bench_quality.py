"""Heuristic scoring throughput: mixlab's vectorized signals vs datatrove's filters, same documents.

datatrove side: GopherQualityFilter, GopherRepetitionFilter, C4QualityFilter and FineWebQualityFilter,
each one's ``filter()`` called on every document (all signals for all documents, as mixlab computes
them; datatrove's English word tokenizer needs ``spacy``). Prints docs/s of both and the ratio.

    .venv/bin/python bench/bench_quality.py [--docs 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def load_texts(n: int, seed: int) -> list[str]:
    texts = []
    for f in sorted((DATA / "corpus").glob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            texts.extend(json.loads(line)["text"] for line in fh)
    random.Random(seed).shuffle(texts)
    return texts[:n] if n > 0 else texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=2000, help="documents (0 = the whole corpus)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    texts = load_texts(args.docs, args.seed)
    n_chars = sum(map(len, texts))

    from mixlab.quality.heuristics import compute_signals

    t0 = time.perf_counter()
    for start in range(0, len(texts), 4096):
        compute_signals(texts[start : start + 4096])
    t_mixlab = time.perf_counter() - t0

    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    filters = [GopherQualityFilter(), GopherRepetitionFilter(), C4QualityFilter(), FineWebQualityFilter()]
    filters[0].filter(Document(text="warm up the word tokenizer", id="warmup"))  # loads spaCy once
    t0 = time.perf_counter()
    for i, text in enumerate(texts):
        for f in filters:
            f.filter(Document(text=text, id=str(i)))
    t_dt = time.perf_counter() - t0

    print(f"{len(texts)} documents, {n_chars / 1e6:.1f}M characters (shared corpus, seed {args.seed})")
    print(f"mixlab compute_signals : {len(texts) / t_mixlab:10.1f} docs/s ({t_mixlab:.2f}s)")
    print(f"datatrove 4 filters    : {len(texts) / t_dt:10.1f} docs/s ({t_dt:.2f}s)")
    print(f"ratio (mixlab / datatrove docs/s): {t_dt / t_mixlab:.1f}x (target >= 3x)")


if __name__ == "__main__":
    main()
