"""Parallel ingest: 2 workers build the same pool, byte for byte, as 1 (files, Parquet row groups, ClimbLab)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mixlab.pool import ingest_units
from mixlab.pool.ingest import IngestError, ingest
from mixlab.pool.pool import Pool
from mixlab.tokenization import count_tokens, count_tokens_backend, fast_backend, load_tokenizer

GPT2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "tokenizers" / "gpt2" / "tokenizer.json"
pytestmark = pytest.mark.skipif(not GPT2.exists(), reason="../shared/data (GPT-2 tokenizer) is not available")

TEXTS = [
    f"Document {i}: {'a short note' if i % 3 else 'a longer paragraph about shards, workers and pools'} "
    f"with words {' '.join(str(i * k) for k in range(i % 7 + 1))}."
    for i in range(400)
]


def _inputs(root: Path) -> Path:
    """Several inputs: JSONL with a bad, a blank, a too-large and a duplicate line; gz; a truncated gz;
    a Parquet file of 6 row groups; a ClimbLab folder of 2 row groups."""
    d = root / "in"
    (d / "climb" / "cluster_3").mkdir(parents=True)
    lines = [json.dumps({"id": f"a-{i}", "text": t, "source": "alpha"}) for i, t in enumerate(TEXTS[:120])]
    lines[7] = "{not json"
    lines[11] = ""
    lines[40] = json.dumps({"id": "big", "text": "x" * 5000})
    (d / "a.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with gzip.open(d / "b.jsonl.gz", "wt", encoding="utf-8") as fh:
        for i, t in enumerate(TEXTS[120:200]):
            fh.write(json.dumps({"text": t, "n": i}) + "\n")
        fh.write(json.dumps({"id": "a-3", "text": "the id of a.jsonl line 4 again"}) + "\n")
    gz = gzip.compress(b"".join(json.dumps({"text": t}).encode() + b"\n" for t in TEXTS[200:260]))
    (d / "c.jsonl.gz").write_bytes(gz[: len(gz) // 2])
    rows = TEXTS[260:380]
    table = pa.table({"id": [f"p-{i}" for i in range(len(rows))], "text": rows, "k": list(range(len(rows)))})
    pq.write_table(table, d / "d.parquet", row_group_size=20)
    tok = load_tokenizer(str(GPT2))
    ids = [tok.encode(t, add_special_tokens=False) for t in TEXTS[380:]]
    climb = pa.table({"tokens": pa.array(ids, pa.list_(pa.int32())), "token_count": [len(x) for x in ids]})
    pq.write_table(climb, d / "climb" / "cluster_3" / "cluster_3_001.tokenized.parquet", row_group_size=12)
    return d


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


ALL = ("a.jsonl", "b.jsonl.gz", "c.jsonl.gz", "d.parquet", "climb")


def _build(d: Path, out: Path, workers: int, names: tuple[str, ...] = ALL, **kw: object) -> Pool:
    return ingest(
        [d / name for name in names],
        out,
        tokenizer=str(GPT2),
        decode_tokenizer=str(GPT2),
        shard_docs=64,
        max_chars=4000,
        workers=workers,
        **kw,  # type: ignore[arg-type]
    )


def test_two_workers_write_the_serial_pool_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest_units, "UNIT_BYTES", 1)  # one unit per row group
    d = _inputs(tmp_path)
    units = ingest_units.plan_units([d / "d.parquet", d / "climb"], decode=True)
    assert [(u.kind, u.first_line) for u in units[:2]] == [("parquet", 1), ("parquet", 21)]
    assert len(units) == 6 + 2

    serial = _build(d, tmp_path / "serial", 1)
    parallel = _build(d, tmp_path / "parallel", 2)
    assert _files(serial.root) == _files(parallel.root)

    meta = serial.meta
    assert meta["documents_in"] == 119 + 81 + 120 + 20  # c.jsonl.gz (truncated) is quarantined whole
    assert meta["n_docs"] == meta["documents_in"] - 3 and meta["quarantined"] == 3
    assert meta["blank_lines"] == 1
    assert meta["quarantined_files"][0]["file"].endswith("c.jsonl.gz")
    assert meta["shards"] == [f"{i:05d}" for i in range(6)]
    lines = [json.loads(x) for x in (serial.root / "quarantine.jsonl").read_text().splitlines()]
    assert [(Path(q["file"]).name, q["line"], q["reason"].split(":")[0]) for q in lines] == [
        ("c.jsonl.gz", None, "truncated compressed file"),
        ("a.jsonl", 8, "malformed JSON"),
        ("a.jsonl", 41, "document too large"),
        ("b.jsonl.gz", 81, "duplicate id"),
    ]
    docs = serial.read_docs(("id", "source", "n_tokens"))
    assert docs["id"].iloc[0] == "a-0" and docs["id"].iloc[-1] == "cluster_3-20"
    assert docs["id"].is_unique
    assert list(docs.loc[docs["id"].str.startswith("p-"), "id"]) == [f"p-{i}" for i in range(120)]


def test_on_error_fail_names_the_first_bad_record_with_workers(tmp_path: Path) -> None:
    d = _inputs(tmp_path)
    with pytest.raises(IngestError, match=r"a\.jsonl:8: malformed JSON.*on_error: fail"):
        _build(d, tmp_path / "fail", 2, ("a.jsonl", "b.jsonl.gz"), on_error="fail")


def test_fast_backend_counts_as_the_tokenizer_does() -> None:
    tok = load_tokenizer(str(GPT2))
    texts = [*TEXTS[:50], "", " ", "  two  spaces ", "<|endoftext|> inside", "emoji 😀\n\ttab", "x" * 3000]
    backend = fast_backend(tok)
    assert backend is not None
    assert count_tokens_backend(backend, texts).tolist() == count_tokens(tok, texts).tolist()
