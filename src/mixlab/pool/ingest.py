"""ingest: read raw inputs into an immutable, sharded Parquet pool with stable ids and exact token counts."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm.auto import tqdm

from mixlab.pool.pool import Pool, PoolError, atomic_write_parquet, write_pool_meta
from mixlab.pool.readers import Quarantined, RawDoc, expand_inputs, read_any
from mixlab.tokenization import count_tokens, load_tokenizer

SHARD_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("n_tokens", pa.int64()),
        ("n_chars", pa.int64()),
        ("meta", pa.string()),
    ]
)


def _ingest_key(inputs: list[Path], tokenizer: str, shard_docs: int, max_chars: int, text_field: str) -> str:
    h = hashlib.sha256()
    for p in inputs:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{int(st.st_mtime)}\n".encode())
    h.update(f"{tokenizer}|{shard_docs}|{max_chars}|{text_field}".encode())
    return h.hexdigest()[:16]


def ingest(
    inputs: list[str | Path],
    out: str | Path,
    tokenizer: str,
    shard_docs: int = 10_000,
    max_chars: int = 1_000_000,
    text_field: str = "text",
    decode_tokenizer: str | None = None,
    force: bool = False,
) -> Pool:
    """Read ``inputs`` into a pool at ``out``.

    Documents get stable ids (the input's own ``id`` when present, else ``<source>-<line>``), exact token
    counts under ``tokenizer``, and land in shards of ``shard_docs`` documents in input order. Records that
    cannot become documents (malformed, wrong encoding, missing/empty text, over ``max_chars``, duplicate
    id) go to ``quarantine.jsonl`` with file, line and reason, and are counted in ``pool.json``.
    Rerunning with the same inputs and settings is a no-op; different settings need ``force``.
    """
    out = Path(out)
    paths = expand_inputs([Path(p) for p in inputs])
    key = _ingest_key(paths, tokenizer, shard_docs, max_chars, text_field)
    if (out / "pool.json").exists():
        existing = Pool.open(out)
        if existing.meta.get("ingest_key") == key and existing.meta.get("complete"):
            return existing
        if not force:
            raise PoolError(f"{out}: a pool with other inputs or settings exists; pass --force to rebuild it")
    if out.exists() and force:
        shutil.rmtree(out)
    (out / "shards").mkdir(parents=True, exist_ok=True)

    tok = load_tokenizer(tokenizer)
    decoder = load_tokenizer(decode_tokenizer) if decode_tokenizer else None
    seen: set[str] = set()
    shards: list[str] = []
    quarantine: list[dict[str, Any]] = []
    reasons: Counter[str] = Counter()
    per_source_docs: Counter[str] = Counter()
    per_source_tokens: Counter[str] = Counter()
    buf: list[RawDoc] = []
    buf_ids: list[str] = []
    total_tokens = 0

    def flush() -> None:
        nonlocal total_tokens
        if not buf:
            return
        texts = [d.text for d in buf]
        n_tok = count_tokens(tok, texts)
        shard = f"{len(shards):05d}"
        table = pa.Table.from_pydict(
            {
                "id": buf_ids,
                "text": texts,
                "source": [d.source for d in buf],
                "n_tokens": n_tok,
                "n_chars": [len(t) for t in texts],
                "meta": [json.dumps(d.meta, sort_keys=True, default=str) for d in buf],
            },
            schema=SHARD_SCHEMA,
        )
        atomic_write_parquet(out / "shards" / f"{shard}.parquet", table)
        shards.append(shard)
        for d, n in zip(buf, n_tok, strict=True):
            per_source_docs[d.source] += 1
            per_source_tokens[d.source] += int(n)
        total_tokens += int(n_tok.sum())
        buf.clear()
        buf_ids.clear()

    def reject(q: Quarantined) -> None:
        quarantine.append({"file": q.file, "line": q.line, "reason": q.reason, "raw": q.raw})
        reasons[q.reason.split(":")[0]] += 1

    for path in tqdm(paths, desc="ingest", unit="file", disable=len(paths) < 2):
        for rec in read_any(path, text_field=text_field, decode_tokenizer=decoder):
            if isinstance(rec, Quarantined):
                reject(rec)
                continue
            if len(rec.text) > max_chars:
                reject(
                    Quarantined(
                        rec.file, rec.line, f"document too large: {len(rec.text)} chars > {max_chars}"
                    )
                )
                continue
            doc_id = rec.orig_id or f"{rec.source}-{rec.line}"
            if doc_id in seen:
                reject(Quarantined(rec.file, rec.line, f"duplicate id: {doc_id}", rec.text[:200]))
                continue
            seen.add(doc_id)
            buf.append(rec)
            buf_ids.append(doc_id)
            if len(buf) >= shard_docs:
                flush()
    flush()

    with (out / "quarantine.jsonl").open("w", encoding="utf-8") as fh:
        for q in quarantine:
            fh.write(json.dumps(q, ensure_ascii=False) + "\n")
    meta = {
        "format": "mixlab-pool/1",
        "tokenizer": tokenizer,
        "inputs": [str(p) for p in paths],
        "shards": shards,
        "n_docs": len(seen),
        "n_tokens": total_tokens,
        "docs_per_source": dict(sorted(per_source_docs.items())),
        "tokens_per_source": dict(sorted(per_source_tokens.items())),
        "quarantined": len(quarantine),
        "quarantine_reasons": dict(sorted(reasons.items())),
        "ingest_key": key,
        "complete": True,
    }
    write_pool_meta(out, meta)
    return Pool.open(out)
