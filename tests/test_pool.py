"""Pool: readers, ingest with quarantine, sidecar attributes, executor resume, attrs CLI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from mixlab.cli import main
from mixlab.executors.local import map_shards
from mixlab.pool.ingest import ingest
from mixlab.pool.pool import Pool, PoolError
from mixlab.pool.readers import read_any
from mixlab.tokenization import count_tokens, load_tokenizer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GPT2 = SHARED / "tokenizers" / "gpt2" / "tokenizer.json"

pytestmark = pytest.mark.skipif(not GPT2.exists(), reason="../shared/data (GPT-2 tokenizer) is not available")


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def test_ingest_quarantines_bad_lines_and_counts_tokens(tmp_path: Path) -> None:
    src = tmp_path / "mixed.jsonl"
    _write_jsonl(
        src,
        [
            {"id": "a", "text": "Hello world, this is a document."},
            "{not json",
            {"id": "b"},
            {"id": "c", "text": "   "},
            {"id": "d", "text": 42},
            {"id": "a", "text": "same id again"},
            {"text": "no id here, the line number names it"},
            {"id": "huge", "text": "x" * 5000},
        ],
    )
    with src.open("ab") as fh:
        fh.write(b'{"id": "latin", "text": "caf\xe9"}\n')
    pool = ingest([src], tmp_path / "pool", tokenizer=str(GPT2), max_chars=1000)
    docs = pool.read_docs(["id", "text", "n_tokens"])
    assert list(docs["id"]) == ["a", "mixed-7"]
    tok = load_tokenizer(str(GPT2))
    assert list(docs["n_tokens"]) == list(count_tokens(tok, list(docs["text"])))
    assert pool.quarantine_count() == 7
    lines = [json.loads(x) for x in (pool.root / "quarantine.jsonl").read_text().splitlines()]
    by_line = {q["line"]: q["reason"] for q in lines}
    assert by_line[2].startswith("malformed JSON")
    assert by_line[3] == "missing text field"
    assert by_line[4] == "empty document"
    assert "not a string" in by_line[5]
    assert by_line[6].startswith("duplicate id")
    assert by_line[8].startswith("document too large")
    assert by_line[9].startswith("invalid UTF-8")
    assert all(q["file"] == str(src) for q in lines)
    # documents + quarantined == lines read: nothing dropped silently
    assert pool.n_docs() + pool.quarantine_count() == 9


def test_ingest_rerun_is_noop_and_refuses_other_settings(tmp_path: Path) -> None:
    src = _write_jsonl(tmp_path / "a.jsonl", [{"text": f"document number {i}"} for i in range(25)])
    pool = ingest([src], tmp_path / "pool", tokenizer=str(GPT2), shard_docs=10)
    assert pool.shards == ["00000", "00001", "00002"]
    before = pool.shard_path("00001").read_bytes()
    again = ingest([src], tmp_path / "pool", tokenizer=str(GPT2), shard_docs=10)
    assert again.shard_path("00001").read_bytes() == before
    with pytest.raises(PoolError, match="--force"):
        ingest([src], tmp_path / "pool", tokenizer=str(GPT2), shard_docs=5)
    rebuilt = ingest([src], tmp_path / "pool", tokenizer=str(GPT2), shard_docs=5, force=True)
    assert len(rebuilt.shards) == 5


def test_readers_all_formats(tmp_path: Path) -> None:
    rows = [{"id": f"d{i}", "text": f"text number {i}"} for i in range(4)]
    gz = tmp_path / "x.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    zst = tmp_path / "y.jsonl.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    parquet = tmp_path / "z.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    lmflow = tmp_path / "w.json"
    lmflow.write_text(json.dumps({"type": "text_only", "instances": [{"text": r["text"]} for r in rows]}))
    for path in (gz, zst, parquet, lmflow):
        texts = [d.text for d in read_any(path)]
        assert texts == [r["text"] for r in rows], path


def test_hf_datasets_on_disk(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": ["alpha doc", "beta doc"], "id": ["x1", "x2"]})
    ds.save_to_disk(str(tmp_path / "hf"))
    pool = ingest([tmp_path / "hf"], tmp_path / "pool", tokenizer=str(GPT2))
    assert list(pool.read_docs(["id"])["id"]) == ["x1", "x2"]


def test_climblab_layout_decodes_to_corpus_text(tmp_path: Path) -> None:
    sample = SHARED / "climblab_sample"
    if not sample.exists():
        pytest.skip("climblab_sample missing")
    one = sample / "cluster_1" / "cluster_1_001.tokenized.parquet"
    tok = load_tokenizer(str(GPT2))
    docs = list(read_any(one, decode_tokenizer=tok))
    table = pq.read_table(one)
    assert len(docs) == table.num_rows
    first_ids = table.column("tokens")[0].as_py()
    assert tok(docs[0].text, add_special_tokens=False)["input_ids"] == first_ids
    assert docs[0].source == "cluster_1"


def _length_stage(root: str, shard: str, config: dict[str, int]) -> pa.Table:
    pool = Pool.open(root)
    t = pool.read_shard(shard, ["n_chars"])
    return pa.table({"long": pa.compute.greater(t.column("n_chars"), config["min"])})


def test_attributes_executor_resume_and_attrs_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write_jsonl(tmp_path / "a.jsonl", [{"id": f"d{i}", "text": "w " * (i + 1)} for i in range(30)])
    pool = ingest([src], tmp_path / "pool", tokenizer=str(GPT2), shard_docs=10)
    assert map_shards(_length_stage, pool, "long", {"min": 20}) == ["00000", "00001", "00002"]
    assert map_shards(_length_stage, pool, "long", {"min": 20}) == []  # all finished: skipped
    (pool.attr_dir("long") / "00001.done").unlink()  # simulate a crash on one shard
    assert map_shards(_length_stage, pool, "long", {"min": 20}, workers=2) == ["00001"]
    df = pool.read_attr("long")
    assert list(df["id"]) == [f"d{i}" for i in range(30)]
    assert int(df["long"].sum()) == 20
    out = tmp_path / "long.jsonl"
    assert main(["attrs", str(pool.root), "long", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0] == {"id": "d0", "long": False} and len(rows) == 30
    with pytest.raises(PoolError, match="not aligned"):
        pool.write_attr("bad", "00000", pa.table({"id": ["x"] * 10}))


def test_ingest_cli_on_shared_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = SHARED / "corpus" / "humaneval.jsonl.gz"
    if not src.exists():
        pytest.skip("shared corpus missing")
    assert main(["ingest", str(src), "--out", str(tmp_path / "pool"), "--tokenizer", str(GPT2)]) == 0
    out = capsys.readouterr().out
    pool = Pool.open(tmp_path / "pool")
    assert f"{pool.n_docs()} documents" in out and pool.n_docs() > 100
    assert (
        main(
            ["ingest", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "p2"), "--tokenizer", str(GPT2)]
        )
        == 1
    )
    assert "does not exist" in capsys.readouterr().err
