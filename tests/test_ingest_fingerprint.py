"""A pool survives its inputs being copied again (new times, same bytes) and is refused after an edit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mixlab.pool.ingest import content_fingerprint, ingest
from mixlab.pool.pool import PoolError

GPT2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "tokenizers" / "gpt2" / "tokenizer.json"
pytestmark = pytest.mark.skipif(not GPT2.exists(), reason="../shared/data (GPT-2 tokenizer) is not available")


def _write(path: Path, texts: list[str]) -> None:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")


def test_recopied_inputs_keep_the_pool_and_edits_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    _write(src, [f"document number {i} about things" for i in range(30)])
    pool = ingest([src], tmp_path / "pool", tokenizer=str(GPT2), shard_docs=10)
    folder = os.stat(pool.root).st_ino  # a rebuild swaps in a new folder
    st = src.stat()
    os.utime(src, (st.st_atime + 3600, st.st_mtime + 3600))  # copied again: new time, same bytes
    again = ingest([src], tmp_path / "pool", tokenizer=str(GPT2), shard_docs=10)
    assert again.n_docs() == 30
    assert os.stat(again.root).st_ino == folder  # kept, not rebuilt
    # same size, other bytes: the content fingerprint differs and the pool is not silently reused
    _write(src, [f"document number {i} about thingz" for i in range(30)])
    with pytest.raises(PoolError, match="other inputs or settings"):
        ingest([src], tmp_path / "pool", tokenizer=str(GPT2), shard_docs=10)


def test_content_fingerprint_samples_large_files(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"a" * (9 << 20))
    before = content_fingerprint(big)
    with big.open("r+b") as f:  # an edit at the start is inside the first sample
        f.write(b"b")
    assert content_fingerprint(big) != before
