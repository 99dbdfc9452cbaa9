"""The parallel half of ingestion: inputs cut into units, each read into a temporary part by a worker.

A *unit* is what one worker reads: a JSONL or LMFlow file, a range of row groups of a Parquet file, a
range of row groups of one ClimbLab token file, or one ``.arrow`` file of a Hugging Face dataset folder.
:func:`read_unit` reads its records, quarantines what cannot become a document (with file, line and
reason), counts the tokens of the rest and writes them, in input order, to a part
(``parts/NNNNNN.parquet``); it returns what the driver needs to finish the pool (ids, quarantine records,
counts) in a :class:`UnitResult`. A file that cannot be read to its end comes back as the unit's
``error``, never as an exception, so that a bad input is data (quarantined) and not a retried failure.

What depends on the order of all inputs (duplicate ids, shard boundaries, the quarantine file) is the
driver's (:mod:`mixlab.pool.ingest_shards`), so the pool is the same whichever worker read which unit.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mixlab.pool.ingest_errors import FILE_ERRORS, file_reason
from mixlab.pool.readers import (
    Quarantined,
    RawDoc,
    ReadStats,
    climblab_files,
    detect_format,
    hf_arrow_files,
    read_any,
    read_climblab_file,
    read_hf_arrow,
    read_parquet,
)

#: Uncompressed bytes of Parquet row groups gathered into one unit (a row group is never split).
UNIT_BYTES = 64 << 20
#: A part is written in row groups of at most this many documents ...
PART_ROWS = 4096
#: ... or of this many characters of text, whichever comes first (a worker's text in memory).
PART_CHARS = 32_000_000

#: Columns of a part: a pool shard's columns, then where each document came from.
PART_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("n_tokens", pa.int64()),
        ("n_chars", pa.int64()),
        ("meta", pa.string()),
        ("seq", pa.int64()),
        ("file", pa.string()),
        ("line", pa.int64()),
    ]
)


@dataclass(frozen=True)
class Unit:
    """One worker's share of the inputs."""

    index: int
    """Position in ingest order (also the part's name)."""
    path: str
    """The input as listed: when any unit of it cannot be read, the whole input is quarantined."""
    kind: str = "any"
    """``any`` (the input read whole), ``parquet``, ``climblab`` (one token file) or ``hf_arrow``."""
    member: str | None = None
    """The file read inside a dataset folder (a ClimbLab token file, a HF ``.arrow`` file)."""
    row_groups: tuple[int, ...] | None = None
    """Parquet row groups read (None: all)."""
    first_line: int = 1
    """Row number of the unit's first record in its file (1-based)."""
    source: str = ""
    """Source name of a HF dataset folder's rows (the folder's name)."""


@dataclass(frozen=True)
class UnitSettings:
    """What every unit is read with."""

    parts: str
    """Folder of the parts."""
    tokenizer: str
    """The training tokenizer's spec (used when ``counter`` is None)."""
    counter: str | None
    """The tokenizer's saved Rust backend (:func:`mixlab.tokenization.save_fast_backend`), or None."""
    decode_tokenizer: str | None
    """The decode tokenizer's spec (ClimbLab token files; used when ``decoder`` is None)."""
    decoder: str | None
    """The decode tokenizer's saved Rust backend, or None."""
    text_field: str
    max_chars: int
    threads: int | None = None
    """Tokenizer threads in a worker process (None: the tokenizer's default, every core)."""
    driver: int = 0
    """The driver's process id (``threads`` is not applied there)."""


@dataclass
class UnitResult:
    """What a worker hands back about its unit (its documents are in the part)."""

    index: int
    records: int = 0
    """Records read (documents + quarantined), blank lines not included."""
    blank_lines: int = 0
    ids: list[str] = field(default_factory=list)
    """Document ids, in part order."""
    seqs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Each document's position among the unit's records (to interleave quarantine lines in order)."""
    quarantine: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """``(record position, quarantine record)`` of the records that did not become documents."""
    error: str | None = None
    """Why the input cannot be read to its end (then the whole input is quarantined)."""
    tokens: int = 0
    seconds: float = 0.0
    worker: str = ""

    @property
    def docs(self) -> int:
        return len(self.ids)


def part_path(parts: str | Path, index: int) -> Path:
    """The part file of unit ``index``."""
    return Path(parts) / f"{index:06d}.parquet"


# -- planning (driver) ----------------------------------------------------------------------------------
def plan_units(paths: list[Path], decode: bool, unit_bytes: int | None = None) -> list[Unit]:
    """Cut the inputs into units, in ingest order (Parquet row groups gathered up to ``unit_bytes``,
    default :data:`UNIT_BYTES`). An input whose layout cannot be read is one unit, so that reading it
    reports the same error a serial read would."""
    unit_bytes = UNIT_BYTES if unit_bytes is None else unit_bytes
    specs: list[tuple[str, dict[str, Any]]] = []
    for p in paths:
        try:
            found = _plan_input(p, decode, unit_bytes)
        except FILE_ERRORS:
            found = [{}]
        specs.extend((str(p), s) for s in found)
    return [Unit(index=i, path=path, **spec) for i, (path, spec) in enumerate(specs)]


def _plan_input(path: Path, decode: bool, unit_bytes: int) -> list[dict[str, Any]]:
    fmt = detect_format(path)
    if fmt == "parquet":
        return [{"kind": "parquet", **r} for r in _row_group_ranges(path, unit_bytes)] or [{}]
    if fmt == "climblab" and decode:
        out: list[dict[str, Any]] = []
        for f in climblab_files(path):
            ranges = _row_group_ranges(f, unit_bytes) or [{}]
            out.extend({"kind": "climblab", "member": str(f), **r} for r in ranges)
        return out or [{}]
    if fmt == "hf_disk":
        arrows = hf_arrow_files(path)
        return [{"kind": "hf_arrow", "member": str(a), "source": path.name} for a in arrows] or [{}]
    return [{}]


def _row_group_ranges(path: Path, unit_bytes: int) -> list[dict[str, Any]]:
    """Consecutive row groups of a Parquet file gathered up to ``unit_bytes`` (uncompressed) each."""
    meta = pq.ParquetFile(path).metadata
    ranges: list[dict[str, Any]] = []
    groups: list[int] = []
    size = 0
    first = row = 1
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        if groups and size + rg.total_byte_size > unit_bytes:
            ranges.append({"row_groups": tuple(groups), "first_line": first})
            groups, size, first = [], 0, row
        groups.append(g)
        size += rg.total_byte_size
        row += rg.num_rows
    if groups:
        ranges.append({"row_groups": tuple(groups), "first_line": first})
    return ranges


# -- reading (worker) -----------------------------------------------------------------------------------
_BACKENDS: dict[str, Any] = {}


def _limit_threads(settings: UnitSettings) -> None:
    """In a worker process, give the tokenizer ``settings.threads`` threads (before its thread pool starts):
    ``workers`` processes with a pool of every core each would run workers x cores threads."""
    if settings.threads and os.getpid() != settings.driver and "RAYON_NUM_THREADS" not in os.environ:
        os.environ["RAYON_NUM_THREADS"] = str(settings.threads)


def _backend(path: str) -> Any:
    """A saved Rust tokenizer, loaded once per process."""
    if path not in _BACKENDS:
        from tokenizers import Tokenizer

        _BACKENDS[path] = Tokenizer.from_file(path)
    return _BACKENDS[path]


def _count(settings: UnitSettings, texts: list[str]) -> np.ndarray:
    """Exact token counts of ``texts`` under the training tokenizer."""
    from mixlab.tokenization import count_tokens, count_tokens_backend, load_tokenizer

    if settings.counter is not None:
        return count_tokens_backend(_backend(settings.counter), texts)
    return count_tokens(load_tokenizer(settings.tokenizer), texts)


def _decoder(unit: Unit, settings: UnitSettings) -> Any:
    """The ClimbLab decoder when ``unit`` holds token files (else None: ``transformers`` is not loaded)."""
    if not settings.decode_tokenizer or unit.kind in ("parquet", "hf_arrow"):
        return None
    if unit.kind == "any":
        try:
            if detect_format(Path(unit.path)) != "climblab":
                return None
        except FILE_ERRORS:
            return None
    from mixlab.tokenization import BackendDecoder, load_tokenizer

    if settings.decoder is not None:
        return BackendDecoder(_backend(settings.decoder))
    return load_tokenizer(settings.decode_tokenizer)


def _records(unit: Unit, settings: UnitSettings, stats: ReadStats) -> Iterator[RawDoc | Quarantined]:
    decoder = _decoder(unit, settings)
    if unit.kind == "parquet":
        return read_parquet(Path(unit.path), settings.text_field, unit.row_groups, unit.first_line)
    if unit.kind == "climblab" and unit.member is not None:
        return read_climblab_file(Path(unit.member), decoder, unit.row_groups, unit.first_line)
    if unit.kind == "hf_arrow" and unit.member is not None:
        return read_hf_arrow(Path(unit.member), unit.source, settings.text_field)
    return read_any(Path(unit.path), settings.text_field, decoder, stats)


class _PartWriter:
    """Documents of a unit, tokenised and written to its part in row groups (a bounded batch in memory)."""

    def __init__(self, path: Path, settings: UnitSettings) -> None:
        self.path = path
        self.settings = settings
        self.rows: dict[str, list[Any]] = {name: [] for name in PART_SCHEMA.names if name != "n_tokens"}
        self.chars = 0
        self.tokens = 0
        self.writer: pq.ParquetWriter | None = None

    def add(self, doc_id: str, doc: RawDoc, seq: int) -> None:
        values = {
            "id": doc_id,
            "text": doc.text,
            "source": doc.source,
            "n_chars": len(doc.text),
            "meta": json.dumps(doc.meta, sort_keys=True, default=str),
            "seq": seq,
            "file": doc.file,
            "line": doc.line,
        }
        for name, value in values.items():
            self.rows[name].append(value)
        self.chars += len(doc.text)
        if len(self.rows["id"]) >= PART_ROWS or self.chars >= PART_CHARS:
            self.flush()

    def flush(self) -> None:
        if not self.rows["id"]:
            return
        n_tokens = _count(self.settings, self.rows["text"])
        self.tokens += int(n_tokens.sum())
        table = pa.Table.from_pydict({**self.rows, "n_tokens": n_tokens}, schema=PART_SCHEMA)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, PART_SCHEMA, compression="lz4")
        self.writer.write_table(table)
        for values in self.rows.values():
            values.clear()
        self.chars = 0

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self.writer is not None:
                self.writer.close()


def read_unit(unit: Unit, settings: UnitSettings) -> UnitResult:
    """Read ``unit`` into its part; return its ids, quarantine records and counts (never raises for bad
    data: an input that cannot be read to its end is the result's ``error``)."""
    t0 = time.perf_counter()
    _limit_threads(settings)
    result = UnitResult(index=unit.index, worker=f"{socket.gethostname()}:{os.getpid()}")
    stats = ReadStats()
    part = _PartWriter(part_path(settings.parts, unit.index), settings)
    seqs: list[int] = []
    n = 0
    try:
        for seq, rec in enumerate(_records(unit, settings, stats)):
            n = seq + 1
            if isinstance(rec, Quarantined):
                result.quarantine.append((seq, _quarantine_record(rec)))
                continue
            if len(rec.text) > settings.max_chars:
                reason = f"document too large: {len(rec.text)} chars > {settings.max_chars}"
                result.quarantine.append((seq, _quarantine_record(Quarantined(rec.file, rec.line, reason))))
                continue
            doc_id = rec.orig_id or f"{rec.source}-{rec.line}"
            result.ids.append(doc_id)
            seqs.append(seq)
            part.add(doc_id, rec, seq)
    except FILE_ERRORS as exc:
        result.error = file_reason(exc, Path(unit.path))
    finally:
        part.close()
    result.records = n
    result.blank_lines = stats.blank_lines
    result.seqs = np.asarray(seqs, dtype=np.int64)
    result.tokens = part.tokens
    result.seconds = round(time.perf_counter() - t0, 4)
    return result


def _quarantine_record(q: Quarantined) -> dict[str, Any]:
    return {"file": q.file, "line": q.line, "reason": q.reason, "raw": q.raw}
