"""The ordered half of ingestion: unit results merged in input order, then pool shards cut from the parts.

:func:`merge_units` walks the units in input order (the order a serial read takes) and decides, in the
driver, everything that depends on more than one unit: which ids are duplicates (the first occurrence in
input order is kept), which inputs are quarantined whole (any unit that could not be read quarantines
its input, and none of the input's records become documents), the quarantine lines in record order,
and the documents kept. :func:`shard_pieces` cuts the kept documents into shards of ``shard_docs`` in
that order, and :func:`write_shard` (a worker) writes one shard from the rows of the parts it spans.
The pool is therefore the same bytes whichever worker read which unit, and whatever the worker count.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mixlab.pool.ingest_errors import IngestError
from mixlab.pool.ingest_units import PART_SCHEMA, Unit, UnitResult, part_path
from mixlab.pool.pool import atomic_write_parquet

log = logging.getLogger(__name__)

#: A shard's columns: a part's, without the bookkeeping a part carries for the driver (seq, file, line).
SHARD_SCHEMA = pa.schema([f for f in PART_SCHEMA if f.name not in ("seq", "file", "line")])

#: A run of kept documents: (unit index, first part row, end part row).
Piece = tuple[int, int, int]


@dataclass
class Merged:
    """The inputs' records accounted for, in input order."""

    quarantine: list[dict[str, Any]] = field(default_factory=list)
    """Records that did not become documents (file, line, reason, raw), in input order."""
    bad_files: list[dict[str, Any]] = field(default_factory=list)
    """Inputs quarantined whole (file, reason)."""
    records_in: int = 0
    blank_lines: int = 0
    kept: list[Piece] = field(default_factory=list)
    """The documents, as runs of part rows, in input order."""


def merge_units(units: Sequence[Unit], results: dict[int, UnitResult], parts: str, on_error: str) -> Merged:
    """Account for every unit's records in input order (see the module doc); under ``on_error="fail"`` the
    first bad record or input raises :class:`IngestError`."""
    merged = Merged()
    seen: set[str] = set()
    for path, group in groupby(units, key=lambda u: u.path):
        unit_results = [results[u.index] for u in group]
        error = next((r.error for r in unit_results if r.error is not None), None)
        if error is not None and on_error != "fail":
            log.warning("ingest: %s: %s; the whole file is quarantined", path, error)
            merged.bad_files.append({"file": path, "line": None, "reason": error, "scope": "file"})
            continue
        for r in unit_results:
            duplicates: list[int] = []
            for row, doc_id in enumerate(r.ids):
                if doc_id in seen:
                    duplicates.append(row)
                else:
                    seen.add(doc_id)
            lines = _in_order(r, _duplicate_records(r, duplicates, parts))
            if on_error == "fail":
                if lines:
                    q = lines[0]
                    raise IngestError(f"{q['file']}:{q['line']}: {q['reason']} (on_error: fail)")
                if r.error is not None:
                    raise IngestError(f"{path}: {r.error} (on_error: fail)")
            merged.quarantine.extend(lines)
            merged.records_in += r.records
            merged.blank_lines += r.blank_lines
            merged.kept.extend(_kept_runs(r.index, r.docs, duplicates))
    return merged


def _duplicate_records(r: UnitResult, rows: list[int], parts: str) -> list[tuple[int, dict[str, Any]]]:
    """Quarantine records of the part rows ``rows`` (duplicate ids), keyed by record position."""
    if not rows:
        return []
    table = pq.read_table(part_path(parts, r.index), columns=["text", "file", "line"]).take(rows)
    cols = table.to_pydict()
    return [
        (
            int(r.seqs[row]),
            {
                "file": cols["file"][i],
                "line": cols["line"][i],
                "reason": f"duplicate id: {r.ids[row]}",
                "raw": cols["text"][i][:200],
            },
        )
        for i, row in enumerate(rows)
    ]


def _in_order(r: UnitResult, duplicates: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The unit's quarantine records and its duplicates, in record order."""
    if not duplicates:
        return [q for _, q in r.quarantine]
    return [q for _, q in sorted([*r.quarantine, *duplicates], key=lambda item: item[0])]


def _kept_runs(index: int, n_docs: int, dropped: list[int]) -> list[Piece]:
    runs: list[Piece] = []
    start = 0
    for row in [*dropped, n_docs]:
        if row > start:
            runs.append((index, start, row))
        start = row + 1
    return runs


def shard_pieces(kept: Sequence[Piece], shard_docs: int) -> list[list[Piece]]:
    """The kept documents cut into shards of ``shard_docs`` (the last one shorter), in order."""
    shards: list[list[Piece]] = []
    current: list[Piece] = []
    n = 0
    for index, start, stop in kept:
        while start < stop:
            take = min(stop - start, shard_docs - n)
            current.append((index, start, start + take))
            n += take
            start += take
            if n == shard_docs:
                shards.append(current)
                current, n = [], 0
    if current:
        shards.append(current)
    return shards


def _read_rows(path: Path, start: int, stop: int) -> pa.Table:
    """Rows ``[start, stop)`` of a part, reading only the row groups that hold them."""
    pf = pq.ParquetFile(path)
    groups: list[int] = []
    first = offset = 0
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if offset < stop and offset + n > start:
            if not groups:
                first = offset
            groups.append(g)
        offset += n
    table = pf.read_row_groups(groups, columns=SHARD_SCHEMA.names)
    return table.slice(start - first, stop - start)


def write_shard(shards_dir: str, name: str, parts: str, pieces: list[Piece]) -> dict[str, list[int]]:
    """Write shard ``name`` from the part rows ``pieces``; return ``{source: [documents, tokens]}``."""
    tables = [_read_rows(part_path(parts, index), start, stop) for index, start, stop in pieces]
    combined = pa.concat_tables(tables).combine_chunks()
    table = pa.Table.from_arrays(combined.columns, schema=SHARD_SCHEMA)
    atomic_write_parquet(Path(shards_dir) / f"{name}.parquet", table)
    counts: dict[str, list[int]] = {}
    for source, tokens in zip(
        table.column("source").to_pylist(), table.column("n_tokens").to_pylist(), strict=True
    ):
        entry = counts.setdefault(source, [0, 0])
        entry[0] += 1
        entry[1] += int(tokens)
    return counts
