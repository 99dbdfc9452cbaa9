"""ingest: read raw inputs into an immutable, sharded Parquet pool with stable ids and exact token counts.

Nothing is lost: every record read becomes a document or a quarantine line with file, line and reason,
and ``pool.json`` says ``documents_in = documents + quarantined``. A file that cannot be read to its
end (truncated or corrupt ``.gz``/``.zst``, unreadable, not the format its name says) is quarantined as
a whole with its reason, none of its records become documents, and the other files are ingested.
``on_error="fail"`` makes the first bad record or file an error instead.

The pool is built in a private temporary folder next to ``out`` and swapped into place when complete,
under a lock: a killed ingest leaves the previous folder (or none), never half a pool, and its temporary
folder is removed by the next run. ``force`` replaces only a folder that is a mixlab pool (or empty).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from mixlab.console import tqdm
from mixlab.paths import clean_stale, dir_lock, new_temp_dir, replace_dir
from mixlab.pool.pool import POOL_FORMAT, POOL_META, Pool, PoolError, atomic_write_parquet, write_pool_meta
from mixlab.pool.readers import (
    Quarantined,
    ReadStats,
    Skipped,
    expand_inputs_report,
    read_any,
)
from mixlab.tokenization import count_tokens, load_tokenizer

log = logging.getLogger(__name__)

OnError = Literal["quarantine", "fail"]
ON_ERROR_CHOICES: tuple[str, ...] = ("quarantine", "fail")

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

#: Errors that make a whole input file unreadable (quarantined as a file, not a traceback).
FILE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # unreadable, gzip.BadGzipFile
    EOFError,  # truncated .gz
    ValueError,  # InputFormatError, UnicodeDecodeError, pyarrow.ArrowInvalid
    zstandard.ZstdError,
    pa.ArrowException,
)

#: What an existing folder may hold to count as an (incomplete) pool that ``force`` may replace.
_POOL_ENTRIES = {POOL_META, "shards", "attrs", "quarantine.jsonl", ".locks"}


class IngestError(PoolError):
    """A bad record or file under ``on_error="fail"``, or an output folder that may not be replaced."""


def _ingest_key(inputs: list[Path], tokenizer: str, shard_docs: int, max_chars: int, text_field: str) -> str:
    h = hashlib.sha256()
    for p in inputs:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{int(st.st_mtime)}\n".encode())
    h.update(f"{tokenizer}|{shard_docs}|{max_chars}|{text_field}".encode())
    return h.hexdigest()[:16]


#: Bytes read at each of the sampled offsets of an input's content fingerprint.
_SAMPLE_BYTES = 1 << 20
_SAMPLES = 8


def content_fingerprint(path: Path) -> str:
    """sha256 of a file's size and of 1 MiB read at 8 evenly spaced offsets (the whole file when small).

    The ingest key uses modification times, which change when data is copied again (to a new node, from a
    bucket). When only the times differ, equal fingerprints show that the content did not change, so the
    pool is kept instead of rebuilt. An edit inside a file changes its time and is caught by the key; the
    fingerprint is only asked whether a re-copied file is the same one.
    """
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        if size <= _SAMPLE_BYTES * _SAMPLES:
            h.update(f.read())
        else:
            step = (size - _SAMPLE_BYTES) // (_SAMPLES - 1)
            for i in range(_SAMPLES):
                f.seek(i * step)
                h.update(f.read(_SAMPLE_BYTES))
    return h.hexdigest()[:32]


def _settings_key(tokenizer: str, shard_docs: int, max_chars: int, text_field: str) -> str:
    return hashlib.sha256(f"{tokenizer}|{shard_docs}|{max_chars}|{text_field}".encode()).hexdigest()[:16]


def _same_content(meta: dict[str, object], paths: list[Path], settings: str) -> bool:
    """Whether a pool's recorded inputs are ``paths`` with the same content and the same settings."""
    recorded = meta.get("input_fingerprints")
    if meta.get("settings_key") != settings or not isinstance(recorded, dict):
        return False
    if sorted(recorded) != sorted(str(p.resolve()) for p in paths):
        return False
    return all(recorded[str(p.resolve())] == content_fingerprint(p) for p in paths)


def _describe_pool(out: Path) -> str | None:
    """What ``out`` holds if ``force`` may replace it (a pool, an incomplete pool, nothing), else None."""
    if not out.exists():
        return "nothing"
    if not out.is_dir():
        return None
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return "an empty folder"
    meta = out / POOL_META
    if meta.exists():
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = None
        if isinstance(info, dict) and str(info.get("format", "")).startswith("mixlab-pool/"):
            attrs = sorted(p.name for p in (out / "attrs").iterdir()) if (out / "attrs").is_dir() else []
            return (
                f"a mixlab pool of {info.get('n_docs', '?')} documents in {len(info.get('shards', []))} "
                f"shards" + (f" with attributes {', '.join(attrs)}" if attrs else "")
            )
        return None
    if set(entries) <= _POOL_ENTRIES and "shards" in entries:
        return "an incomplete mixlab pool (no pool.json)"
    return None


def _check_output(out: Path, inputs: list[Path]) -> None:
    """Refuse an output folder that holds the inputs (replacing it would delete them)."""
    root = out.resolve()
    for p in inputs:
        rp = p.resolve()
        if rp == root or root in rp.parents:
            raise IngestError(
                f"{out}: input {p} is inside the output folder, which ingest replaces; choose another --out"
            )


@dataclass
class _Build:
    """The state of one ingest into a temporary folder."""

    root: Path
    tokenizer: Any
    shard_docs: int
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    shards: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    bad_files: list[dict[str, Any]] = field(default_factory=list)
    records_in: int = 0

    def flush(self) -> None:
        if not self.rows:
            return
        ids, texts, sources, metas = (list(c) for c in zip(*self.rows, strict=True))
        n_tok = count_tokens(self.tokenizer, texts)
        shard = f"{len(self.shards):05d}"
        table = pa.Table.from_pydict(
            {
                "id": ids,
                "text": texts,
                "source": sources,
                "n_tokens": n_tok,
                "n_chars": [len(t) for t in texts],
                "meta": metas,
            },
            schema=SHARD_SCHEMA,
        )
        atomic_write_parquet(self.root / "shards" / f"{shard}.parquet", table)
        self.shards.append(shard)
        self.rows.clear()

    def add(self, doc_id: str, text: str, source: str, meta: str) -> None:
        self.seen.add(doc_id)
        self.rows.append((doc_id, text, source, meta))
        if len(self.rows) >= self.shard_docs:
            self.flush()

    def rollback(self, n_shards: int, n_rows: int, file_ids: list[str], n_quarantined: int) -> None:
        """Forget every document and quarantine line of the file that started at this state."""
        self.seen.difference_update(file_ids)
        del self.quarantine[n_quarantined:]
        if len(self.shards) == n_shards:
            del self.rows[n_rows:]
            return
        first = self.root / "shards" / f"{self.shards[n_shards]}.parquet"
        kept = pq.read_table(first, columns=["id", "text", "source", "meta"]).slice(0, n_rows).to_pydict()
        for shard in self.shards[n_shards:]:
            (self.root / "shards" / f"{shard}.parquet").unlink()
        del self.shards[n_shards:]
        self.rows = list(zip(kept["id"], kept["text"], kept["source"], kept["meta"], strict=True))


def ingest(
    inputs: list[str | Path],
    out: str | Path,
    tokenizer: str,
    shard_docs: int = 10_000,
    max_chars: int = 1_000_000,
    text_field: str = "text",
    decode_tokenizer: str | None = None,
    force: bool = False,
    on_error: OnError = "quarantine",
) -> Pool:
    """Read ``inputs`` into a pool at ``out``.

    Documents get stable ids (the input's own ``id`` when present, else ``<source>-<line>``), exact token
    counts under ``tokenizer``, and land in shards of ``shard_docs`` documents in input order. Records that
    cannot become documents (malformed, wrong encoding, missing/empty text, over ``max_chars``, duplicate
    id) go to ``quarantine.jsonl`` with file, line and reason, and are counted in ``pool.json``; so are
    whole files that cannot be read. ``on_error="fail"`` raises :class:`IngestError` at the first instead.
    Rerunning with the same inputs and settings is a no-op; different settings need ``force``, which
    replaces only a folder that is a mixlab pool or empty.
    """
    if shard_docs < 1:
        raise ValueError(f"shard_docs must be at least 1, got {shard_docs}")
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR_CHOICES)}, got {on_error!r}")
    out = Path(out)
    with dir_lock(out):
        clean_stale(out)
        paths, skipped = expand_inputs_report([Path(p) for p in inputs], exclude=out)
        _check_output(out, paths)
        key = _ingest_key(paths, tokenizer, shard_docs, max_chars, text_field)
        if (out / POOL_META).exists():
            try:
                existing: Pool | None = Pool.open(out)
            except PoolError:
                existing = None
            if existing is not None and existing.meta.get("complete"):
                if existing.meta.get("ingest_key") == key:
                    return existing
                settings = _settings_key(tokenizer, shard_docs, max_chars, text_field)
                if _same_content(existing.meta, paths, settings):
                    log.info("ingest: inputs were touched or copied again, but their content is unchanged")
                    write_pool_meta(out, {**existing.meta, "ingest_key": key})
                    return Pool.open(out)
        what = _describe_pool(out)
        if what is None:
            raise IngestError(
                f"{out}: exists and is not a mixlab pool; refusing to replace it (choose a new or empty --out)"
            )
        if what.startswith("a mixlab pool"):
            if not force:
                raise PoolError(
                    f"{out}: a pool with other inputs or settings exists; pass --force to rebuild it"
                )
            log.warning("ingest --force: replacing %s at %s", what, out)
        tmp = new_temp_dir(out)
        try:
            _build(
                tmp,
                paths,
                skipped,
                key,
                tokenizer,
                shard_docs,
                max_chars,
                text_field,
                decode_tokenizer,
                on_error,
            )
            replace_dir(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return Pool.open(out)


def _build(
    root: Path,
    paths: list[Path],
    skipped: list[Skipped],
    key: str,
    tokenizer: str,
    shard_docs: int,
    max_chars: int,
    text_field: str,
    decode_tokenizer: str | None,
    on_error: OnError,
) -> None:
    (root / "shards").mkdir(parents=True)
    b = _Build(root=root, tokenizer=load_tokenizer(tokenizer), shard_docs=shard_docs)
    decoder = load_tokenizer(decode_tokenizer) if decode_tokenizer else None
    blank_lines = 0

    def reject(q: Quarantined) -> None:
        if on_error == "fail":
            raise IngestError(f"{q.file}:{q.line}: {q.reason} (on_error: fail)")
        b.quarantine.append({"file": q.file, "line": q.line, "reason": q.reason, "raw": q.raw})

    for path in tqdm(paths, desc="ingest", unit="file", disable=len(paths) < 2):
        state = (len(b.shards), len(b.rows), len(b.quarantine))
        file_ids: list[str] = []
        stats = ReadStats()
        n_records = 0
        try:
            for rec in read_any(path, text_field=text_field, decode_tokenizer=decoder, stats=stats):
                n_records += 1
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
                if doc_id in b.seen:
                    reject(Quarantined(rec.file, rec.line, f"duplicate id: {doc_id}", rec.text[:200]))
                    continue
                file_ids.append(doc_id)
                b.add(doc_id, rec.text, rec.source, json.dumps(rec.meta, sort_keys=True, default=str))
        except FILE_ERRORS as exc:
            if isinstance(exc, IngestError):
                raise
            reason = _file_reason(exc, path)
            if on_error == "fail":
                raise IngestError(f"{path}: {reason} (on_error: fail)") from exc
            log.warning("ingest: %s: %s; the whole file is quarantined", path, reason)
            b.rollback(*state[:2], file_ids, state[2])
            b.bad_files.append({"file": str(path), "line": None, "reason": reason, "scope": "file"})
            continue
        b.records_in += n_records
        blank_lines += stats.blank_lines
    b.flush()

    with (root / "quarantine.jsonl").open("w", encoding="utf-8") as fh:
        for q in [*b.bad_files, *b.quarantine]:
            fh.write(json.dumps(q, ensure_ascii=False) + "\n")
    per_source_docs: Counter[str] = Counter()
    per_source_tokens: Counter[str] = Counter()
    for shard in b.shards:
        t = pq.read_table(root / "shards" / f"{shard}.parquet", columns=["source", "n_tokens"]).to_pydict()
        for source, n in zip(t["source"], t["n_tokens"], strict=True):
            per_source_docs[source] += 1
            per_source_tokens[source] += int(n)
    reasons = Counter(q["reason"].split(":")[0] for q in b.quarantine)
    n_docs = sum(per_source_docs.values())
    if n_docs + len(b.quarantine) != b.records_in:  # pragma: no cover - an accounting bug, never data
        raise PoolError(f"ingest lost records: {n_docs} + {len(b.quarantine)} != {b.records_in} read")
    meta = {
        "format": POOL_FORMAT,
        "tokenizer": tokenizer,
        "inputs": [str(p) for p in paths],
        "shards": b.shards,
        "documents_in": b.records_in,
        "blank_lines": blank_lines,
        "n_docs": n_docs,
        "n_tokens": sum(per_source_tokens.values()),
        "docs_per_source": dict(sorted(per_source_docs.items())),
        "tokens_per_source": dict(sorted(per_source_tokens.items())),
        "quarantined": len(b.quarantine),
        "quarantine_reasons": dict(sorted(reasons.items())),
        "quarantined_files": [{"file": q["file"], "reason": q["reason"]} for q in b.bad_files],
        "skipped_files": [{"file": s.file, "reason": s.reason} for s in skipped],
        "on_error": on_error,
        "ingest_key": key,
        "settings_key": _settings_key(tokenizer, shard_docs, max_chars, text_field),
        "input_fingerprints": {str(p.resolve()): content_fingerprint(p) for p in paths},
        "complete": True,
    }
    if n_docs == 0:
        log.warning("ingest: no documents were ingested; the pool's quarantine.jsonl says why")
    write_pool_meta(root, meta)


def _file_reason(exc: BaseException, path: Path) -> str:
    """One line naming what is wrong with a whole file (without repeating its name)."""
    text = str(exc).replace("\n", " ").strip().removeprefix(f"{path}: ") or type(exc).__name__
    if isinstance(exc, EOFError):
        return f"truncated compressed file: {text}"
    if isinstance(exc, zstandard.ZstdError):
        return f"corrupt zstd file: {text}"
    if isinstance(exc, OSError) and "gzip" in type(exc).__name__.lower() + text.lower():
        return f"corrupt gzip file: {text}"
    if isinstance(exc, OSError):
        return f"unreadable file: {text}"
    if isinstance(exc, UnicodeDecodeError):
        return f"invalid UTF-8: {text}"
    if isinstance(exc, pa.ArrowException):
        return f"unreadable Arrow/Parquet data: {text}"
    return f"unreadable input: {text}"
