"""ClimbLab decoding: mixlab's read path against the per-document ``transformers`` loop and ``decode_batch``.

The shared ClimbLab-layout sample (``../shared/data/climblab_sample``: 20 cluster files of GPT-2 ids) is
decoded three ways, each ``--repeats`` times (the best time is shown):

* mixlab: what ``ingest`` runs for a ClimbLab token file, :func:`mixlab.pool.readers.read_climblab_file`
  with the tokenizer's Rust backend (:class:`mixlab.tokenization.BackendDecoder`), Parquet reading and
  the per-document checks included;
* the loop participants run: ``tokenizer.decode(ids)`` of a ``transformers`` GPT-2 tokenizer per document,
  with its default arguments, on ids already read;
* ``tokenizers``: ``Tokenizer.decode_batch(ids, skip_special_tokens=False)`` on ids already read.

Every document must round-trip exactly for mixlab and ``decode_batch``: decoded text == the corpus text
of its id (``row_ids.tsv``). Whether the ``transformers`` loop round-trips is printed too. Prints
documents/s, MB/s and the ratios.

    .venv/bin/python bench/bench_climblab_decode.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLE = DATA / "climblab_sample"
GPT2 = DATA / "tokenizers" / "gpt2" / "tokenizer.json"


def expected_texts(files: list[Path]) -> list[str]:
    """The corpus text of every row of ``files``, in file and row order (from ``row_ids.tsv``)."""
    ids: dict[tuple[str, int], str] = {}
    with (SAMPLE / "row_ids.tsv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            ids[(f"cluster_{row['cluster']}", int(row["row"]))] = row["id"]
    corpus: dict[str, str] = {}
    for f in sorted((DATA / "corpus").glob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            for line in fh:
                doc = json.loads(line)
                corpus[doc["id"]] = doc["text"]
    out: list[str] = []
    for f in files:
        n = pq.read_metadata(f).num_rows
        out.extend(corpus[ids[(f.parent.name, i)]] for i in range(n))
    return out


def best_of(repeats: int, fn: Callable[[], list[str]]) -> tuple[float, list[str]]:
    best, result = float("inf"), []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each way (best shown)")
    args = ap.parse_args()

    from tokenizers import Tokenizer

    from mixlab.pool.readers import RawDoc, climblab_files, read_climblab_file
    from mixlab.tokenization import BackendDecoder, fast_backend, load_tokenizer

    files = climblab_files(SAMPLE)
    want = expected_texts(files)
    t0 = time.perf_counter()
    ids: list[list[int]] = []
    for f in files:
        ids.extend(pq.read_table(f, columns=["tokens"]).column("tokens").to_pylist())
    read_s = time.perf_counter() - t0
    tokens = sum(map(len, ids))
    hf = load_tokenizer(str(GPT2))  # what mixlab loads for --decode-tokenizer
    backend = fast_backend(hf)
    assert backend is not None
    decoder = BackendDecoder(backend)
    rust = Tokenizer.from_file(str(GPT2))

    def mixlab() -> list[str]:
        out: list[str] = []
        for f in files:
            out.extend(r.text for r in read_climblab_file(f, decoder) if isinstance(r, RawDoc))
        return out

    def transformers_loop() -> list[str]:
        return [hf.decode(x) for x in ids]

    def tokenizers_batch() -> list[str]:
        return list(rust.decode_batch(ids, skip_special_tokens=False))

    ways: dict[str, tuple[float, list[str]]] = {
        "mixlab (read_climblab_file, Parquet read included)": best_of(args.repeats, mixlab),
        "transformers: tokenizer.decode per document": best_of(args.repeats, transformers_loop),
        "tokenizers: decode_batch": best_of(args.repeats, tokenizers_batch),
    }
    n = len(want)
    mb = sum(len(t.encode("utf-8")) for t in want) / 1e6
    print(
        f"ClimbLab sample: {len(files)} files, {n:,} documents, {tokens:,} GPT-2 tokens, {mb:.1f} MB of text; "
        f"reading the ids (Parquet -> lists) alone: {read_s:.2f} s; best of {args.repeats}"
    )
    exact: dict[str, Any] = {}
    print("\n| way | seconds | documents/s | MB/s | round-trips exactly |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, (seconds, texts) in ways.items():
        exact[name] = texts == want
        bad = sum(a != b for a, b in zip(texts, want, strict=False)) + abs(len(texts) - n)
        print(
            f"| {name} | {seconds:.2f} | {n / seconds:,.0f} | {mb / seconds:,.1f} | "
            f"{'yes' if exact[name] else f'no ({bad:,} documents differ)'} |"
        )
    m, t, b = (ways[k][0] for k in ways)
    print(f"\nmixlab vs the transformers loop: {t / m:.1f}x the documents/s")
    print(
        f"mixlab vs tokenizers decode_batch: {b / m:.2f}x the documents/s (mixlab also reads the Parquet files)"
    )
    if not all(exact[k] for k in ways if not k.startswith("transformers")):
        raise SystemExit("the ClimbLab sample does not round-trip exactly")


if __name__ == "__main__":
    main()
