"""ingest: read raw inputs into an immutable, sharded Parquet pool with stable ids and exact token counts.

Nothing is lost: every record read becomes a document or a quarantine line with file, line and reason,
and ``pool.json`` says ``documents_in = documents + quarantined``. A file that cannot be read to its
end (truncated or corrupt ``.gz``/``.zst``, unreadable, not the format its name says) is quarantined as
a whole with its reason, none of its records become documents, and the other files are ingested.
``on_error="fail"`` makes the first bad record or file an error instead.

The pool is built in a private temporary folder next to ``out`` and swapped into place when complete,
under a lock: a killed ingest leaves the previous folder (or none), never half a pool, and its temporary
folder is removed by the next run. ``force`` replaces only a folder that is a mixlab pool (or empty).

Ingestion runs through an executor (``workers`` local processes, or Ray): the inputs are cut into units
(files, Parquet row groups, the files of a dataset folder) that workers read, check and tokenise into
temporary parts (:mod:`mixlab.pool.ingest_units`); the driver then accounts for them in input order
(duplicate ids, quarantine lines, whole bad files) and workers cut the shards from the parts
(:mod:`mixlab.pool.ingest_shards`). The pool is the same bytes for any number of workers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Literal

from mixlab.executors import Executor, Resources, resolve_executor
from mixlab.paths import clean_stale, dir_lock, new_temp_dir, replace_dir
from mixlab.pool.config import IngestConfig
from mixlab.pool.ingest_errors import FILE_ERRORS, IngestError, file_reason
from mixlab.pool.ingest_shards import SHARD_SCHEMA, merge_units, shard_pieces, write_shard
from mixlab.pool.ingest_units import UnitResult, UnitSettings, plan_units, read_unit
from mixlab.pool.pool import POOL_FORMAT, POOL_META, Pool, PoolError, write_pool_meta
from mixlab.pool.readers import Skipped, expand_inputs_report
from mixlab.tokenization import load_tokenizer, save_fast_backend

__all__ = [
    "FILE_ERRORS",
    "ON_ERROR_CHOICES",
    "SHARD_SCHEMA",
    "IngestError",
    "content_fingerprint",
    "file_reason",
    "ingest",
    "ingest_config",
]

log = logging.getLogger(__name__)

OnError = Literal["quarantine", "fail"]
ON_ERROR_CHOICES: tuple[str, ...] = ("quarantine", "fail")

#: What an existing folder may hold to count as an (incomplete) pool that ``force`` may replace.
_POOL_ENTRIES = {POOL_META, "shards", "attrs", "quarantine.jsonl", ".locks"}


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
    if path.is_dir():  # a dataset folder (ClimbLab, HF): every file under it, by relative name
        h = hashlib.sha256(b"folder")
        for f in sorted(q for q in path.rglob("*") if q.is_file()):
            h.update(f"{f.relative_to(path)}|{content_fingerprint(f)}\n".encode())
        return h.hexdigest()[:32]
    try:
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
    except OSError as exc:  # an unreadable input (quarantined as a file) has no content to compare
        return f"unreadable: {type(exc).__name__} {exc.errno}"
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
    workers: int = 1,
    executor: Executor | None = None,
) -> Pool:
    """Read ``inputs`` into a pool at ``out``.

    Documents get stable ids (the input's own ``id`` when present, else ``<source>-<line>``), exact token
    counts under ``tokenizer``, and land in shards of ``shard_docs`` documents in input order. Records that
    cannot become documents (malformed, wrong encoding, missing/empty text, over ``max_chars``, duplicate
    id) go to ``quarantine.jsonl`` with file, line and reason, and are counted in ``pool.json``; so are
    whole files that cannot be read. ``on_error="fail"`` raises :class:`IngestError` at the first instead.
    Rerunning with the same inputs and settings is a no-op; different settings need ``force``, which
    replaces only a folder that is a mixlab pool or empty.

    Input files, Parquet row groups and the files of dataset folders are read in parallel by ``executor``
    (default: a local executor of ``workers`` processes); the pool is the same for any number of workers.
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
                resolve_executor(executor, workers),
            )
            replace_dir(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return Pool.open(out)


#: What one ingest task needs: one CPU.
INGEST_RESOURCES = Resources(cpus=1)


def ingest_config(
    config: IngestConfig, out: str | Path, force: bool = False, executor: Executor | None = None
) -> Pool:
    """:func:`ingest` with the settings of an ``ingest`` section (``mixlab ingest`` and ``mixlab run``)."""
    return ingest(
        config.inputs,
        out,
        tokenizer=config.tokenizer,
        shard_docs=config.shard_docs,
        max_chars=config.max_chars,
        text_field=config.text_field,
        decode_tokenizer=config.decode_tokenizer,
        force=force,
        on_error=config.on_error,
        executor=executor,
    )


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
    executor: Executor,
) -> None:
    shards_dir = root / "shards"
    shards_dir.mkdir(parents=True)
    work = root / ".ingest"
    parts = work / "parts"
    parts.mkdir(parents=True)
    # workers load the tokenizers' Rust backends from JSON (fast) instead of converting or importing them
    counter = save_fast_backend(load_tokenizer(tokenizer), work / "tokenizer.json")
    decoder = None
    if decode_tokenizer:  # a bad spec fails here, before any worker starts
        decoder = save_fast_backend(load_tokenizer(decode_tokenizer), work / "decode-tokenizer.json")
    settings = UnitSettings(
        parts=str(parts),
        tokenizer=tokenizer,
        counter=None if counter is None else str(counter),
        decode_tokenizer=decode_tokenizer,
        decoder=None if decoder is None else str(decoder),
        text_field=text_field,
        max_chars=max_chars,
        threads=_worker_threads(executor),
        driver=os.getpid(),
    )
    units = plan_units(paths, decode=decode_tokenizer is not None)
    results: dict[int, UnitResult] = dict(
        executor.map_calls(
            read_unit, [(u, settings) for u in units], INGEST_RESOURCES, "ingest: read", "unit"
        )
    )
    merged = merge_units(units, results, str(parts), on_error)
    pieces = shard_pieces(merged.kept, shard_docs)
    shards = [f"{i:05d}" for i in range(len(pieces))]
    calls = [(str(shards_dir), name, str(parts), piece) for name, piece in zip(shards, pieces, strict=True)]
    per_source_docs: Counter[str] = Counter()
    per_source_tokens: Counter[str] = Counter()
    for _, counts in executor.map_calls(write_shard, calls, INGEST_RESOURCES, "ingest: write", "shard"):
        for source, (docs, tokens) in counts.items():
            per_source_docs[source] += docs
            per_source_tokens[source] += tokens
    shutil.rmtree(work)

    with (root / "quarantine.jsonl").open("w", encoding="utf-8") as fh:
        for q in [*merged.bad_files, *merged.quarantine]:
            fh.write(json.dumps(q, ensure_ascii=False) + "\n")
    reasons = Counter(q["reason"].split(":")[0] for q in merged.quarantine)
    n_docs = sum(per_source_docs.values())
    if n_docs + len(merged.quarantine) != merged.records_in:  # pragma: no cover - an accounting bug
        raise PoolError(
            f"ingest lost records: {n_docs} + {len(merged.quarantine)} != {merged.records_in} read"
        )
    meta = {
        "format": POOL_FORMAT,
        "tokenizer": tokenizer,
        "inputs": [str(p) for p in paths],
        "shards": shards,
        "documents_in": merged.records_in,
        "blank_lines": merged.blank_lines,
        "n_docs": n_docs,
        "n_tokens": sum(per_source_tokens.values()),
        "docs_per_source": dict(sorted(per_source_docs.items())),
        "tokens_per_source": dict(sorted(per_source_tokens.items())),
        "quarantined": len(merged.quarantine),
        "quarantine_reasons": dict(sorted(reasons.items())),
        "quarantined_files": [{"file": q["file"], "reason": q["reason"]} for q in merged.bad_files],
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


def _worker_threads(executor: Executor) -> int | None:
    """Tokenizer threads per worker: a task's CPUs under Ray, the cores shared by the local processes."""
    if executor.name == "ray":
        return max(1, int(INGEST_RESOURCES.cpus))
    if executor.workers > 1:
        return max(1, (os.cpu_count() or 1) // executor.workers)
    return None
