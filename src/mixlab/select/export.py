"""Write a selection as JSONL / Parquet / LMFlow text_only JSON with a ``manifest.json``.

Export streams shard by shard: for each pool shard only the chosen rows' text is kept, and occurrences
are spilled to temporary Parquet parts by their position in the (already shuffled) output order. The
shard reads are one executor call per pool shard (:func:`spill_shard`, local processes or Ray tasks), each
writing its own file into every part it touches (``part-K/<shard>.parquet``). The driver then reads the
parts back one at a time, sorted, and appends them to the outputs as one ordered stream, so memory holds
one shard or one part of text, never the whole dataset, and the files are the same bytes for any number
of workers. A repeated document appears once per repeat.

The whole dataset folder (data files and ``manifest.json``, spill parts included) is written in a private
temporary folder next to ``out_dir`` and swapped into place when complete, under a lock: a reader sees
the previous dataset or the new one, never a mix; a second export into the same folder waits for the
first; a killed export leaves the previous dataset as it was, and its temporary folder is removed on
failure or by the next export. Only a mixlab dataset folder (or an empty one) is ever replaced.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mixlab.console import tqdm
from mixlab.executors import Executor, Resources, resolve_executor
from mixlab.paths import clean_stale, dir_lock, new_temp_dir, replace_dir, safe_name
from mixlab.pool.pool import Pool, PoolError, atomic_write_text
from mixlab.select.selection import Selection

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"

#: File written for each export format.
FORMAT_FILES: dict[str, str] = {"jsonl": "data.jsonl", "parquet": "data.parquet", "lmflow": "data.json"}

OUTPUT_SCHEMA = pa.schema(
    [("id", pa.string()), ("text", pa.string()), ("domain", pa.string()), ("repeat", pa.int64())]
)
_PART_SCHEMA = pa.schema([("pos", pa.int64()), *OUTPUT_SCHEMA])

#: Rows per Parquet row group of ``data.parquet`` (fixed, so the file does not depend on the spill parts).
ROW_GROUP_ROWS = 4096
#: Rows of a part turned into Python strings at once for the JSONL and LMFlow files.
TEXT_BATCH_ROWS = 8192


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


#: What one shard read of the spill needs: one CPU.
EXPORT_RESOURCES = Resources(cpus=1)

#: A shard's chosen rows, in output order: ``row`` (in the shard), ``pos`` (in the output), ``id``,
#: ``domain``, ``repeat``; numpy arrays of equal length.
ShardRows = dict[str, np.ndarray]


def _part_dir(tmp: Path, part: int) -> Path:
    return tmp / f"part-{part:05d}"


def spill_shard(pool_root: str, shard: str, rows: ShardRows, tmp: str, part_rows: int) -> dict[str, int]:
    """Worker side of the spill: read one pool shard, check that its chosen rows still hold the chosen ids,
    and write them (with their text) to ``tmp/part-K/<shard>.parquet`` for every part K they fall in.
    Returns the rows and characters written. Files are renamed into place, so a retry rewrites them whole.
    """
    pool = Pool.open(pool_root)
    table = pool.read_shard(shard, ["id", "text"])
    picked = table.take(pa.array(rows["row"], pa.int64()))
    ids = picked.column("id").to_pylist()
    expected = rows["id"].tolist()
    if ids != expected:
        bad = next(i for i, (a, b) in enumerate(zip(ids, expected, strict=True)) if a != b)
        raise PoolError(
            f"{pool.shard_path(shard)}: row {int(rows['row'][bad])} holds {ids[bad]!r}, "
            f"the selection expects {expected[bad]!r}; the pool changed since selection"
        )
    pos = np.asarray(rows["pos"], dtype=np.int64)
    out = pa.table(
        {
            "pos": pa.array(pos),
            "id": picked.column("id"),
            "text": picked.column("text"),
            "domain": pa.array([str(d) for d in rows["domain"]], pa.string()),
            "repeat": pa.array(np.asarray(rows["repeat"], dtype=np.int64)),
        },
        schema=_PART_SCHEMA,
    )
    name = safe_name(shard, "shard name")
    part_of = pos // part_rows
    for part in np.unique(part_of):
        folder = _part_dir(Path(tmp), int(part))
        folder.mkdir(exist_ok=True)
        temp = folder / f".{name}.parquet.tmp"
        pq.write_table(out.filter(pa.array(part_of == part)), temp)
        os.replace(temp, folder / f"{name}.parquet")
    chars = pc.sum(pc.utf8_length(out.column("text"))).as_py() or 0
    return {"rows": out.num_rows, "chars": int(chars)}


def _spill_parts(pool: Pool, chosen: Any, tmp: Path, part_rows: int, executor: Executor) -> int:
    """Spill every occurrence's text into ``tmp/part-K/`` by output position, one executor call per pool
    shard (:func:`spill_shard`); return the part count."""
    n_parts = max(1, math.ceil(len(chosen) / part_rows))
    positions = np.arange(len(chosen), dtype=np.int64)
    by_shard = chosen.assign(pos=positions).groupby("shard", sort=True)
    calls = [
        (
            str(pool.root),
            str(shard),
            {
                "row": rows["row"].to_numpy(dtype=np.int64),
                "pos": rows["pos"].to_numpy(dtype=np.int64),
                "id": rows["id"].to_numpy(dtype=object),
                "domain": rows["domain"].astype(str).to_numpy(dtype=object),
                "repeat": rows["repeat"].to_numpy(dtype=np.int64),
            },
            str(tmp),
            part_rows,
        )
        for shard, rows in by_shard
    ]
    n_rows = n_chars = 0
    for _, stats in executor.map_calls(
        spill_shard, calls, EXPORT_RESOURCES, "export: read shards", "shard", top=False
    ):
        n_rows += stats["rows"]
        n_chars += stats["chars"]
    log.debug("export: spilled %d rows, %d characters from %d shard(s)", n_rows, n_chars, len(calls))
    return n_parts


def _iter_parts(tmp: Path, n_parts: int, n_rows: int) -> Iterable[pa.Table]:
    """The occurrences in output order, one sorted part at a time; a missing or short part is an error."""
    seen = 0
    for part in range(n_parts):
        folder = _part_dir(tmp, part)
        files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
        if not files:
            raise PoolError(
                f"export: spill part {folder} is missing; the export's temporary folder was altered"
            )
        tables = [pq.read_table(f, schema=_PART_SCHEMA) for f in files]
        table = pa.concat_tables(tables).sort_by("pos").drop(["pos"])
        del tables  # the unsorted copy is freed here
        seen += table.num_rows
        yield table
    if seen != n_rows:
        raise PoolError(f"export: spill parts hold {seen} rows, the selection {n_rows}")


class ExportError(PoolError):
    """The output folder may not be replaced by a dataset."""


def describe_dataset_dir(out: Path) -> str | None:
    """What ``out`` holds if an export may replace it (nothing, an empty folder, a dataset), else None."""
    if not out.exists():
        return "nothing"
    if not out.is_dir():
        return None
    entries = {p.name for p in out.iterdir()}
    if not entries:
        return "an empty folder"
    manifest = out / MANIFEST
    if manifest.exists():
        try:
            info = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = None
        if isinstance(info, dict) and str(info.get("format", "")).startswith("mixlab-selection/"):
            return f"a mixlab dataset of {info.get('documents', '?')} documents"
        return None
    known = {*FORMAT_FILES.values(), ".export-parts"}
    if all(e in known or (e.startswith(".data.") and ".tmp" in e) for e in entries):
        return "an incomplete mixlab dataset (no manifest.json)"
    return None


def _write_lmflow_chunk(fh: IO[str], texts: Sequence[str], first: bool) -> None:
    body = ",\n".join(json.dumps({"text": t}, ensure_ascii=False) for t in texts)
    if body:
        fh.write(("" if first else ",\n") + body)


def export_selection(
    pool: Pool,
    selection: Selection,
    out_dir: str | Path,
    formats: Sequence[str] = ("jsonl",),
    part_chars: int = 50_000_000,
    executor: Executor | None = None,
) -> Path:
    """Write ``selection`` to ``out_dir`` in ``formats`` plus ``manifest.json``; return ``out_dir``.

    ``data.jsonl``: objects with ``id``, ``text``, ``domain``, ``repeat``; ``data.parquet``: the same columns;
    ``data.json``: LMFlow ``{"type": "text_only", "instances": [{"text": ...}]}``. The manifest is the
    selection's plus the sha256 and size of each data file.

    The pool shards are read through ``executor`` (default: one after another in this process); the files
    are the same bytes for any executor, number of workers and ``part_chars``.
    """
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMAT_FILES]
    if unknown or not formats:
        raise ValueError(
            f"unknown export format(s) {unknown or formats}; choose from {', '.join(FORMAT_FILES)}"
        )
    out = Path(out_dir)
    with dir_lock(out):
        clean_stale(out)
        if describe_dataset_dir(out) is None:
            raise ExportError(
                f"{out}: exists and is not a mixlab dataset folder (no mixlab manifest.json); refusing to "
                "replace it (choose a new or empty output folder)"
            )
        tmp = new_temp_dir(out)
        try:
            _write_dataset(pool, selection, tmp, formats, part_chars, resolve_executor(executor))
            replace_dir(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out


def _write_dataset(
    pool: Pool, selection: Selection, out: Path, formats: list[str], part_chars: int, executor: Executor
) -> None:
    """Write the data files and the manifest into the (private, empty) folder ``out``."""
    chosen = selection.chosen
    mean_chars = float(chosen["n_chars"].mean()) if len(chosen) else 1.0
    part_rows = max(1, int(part_chars // max(mean_chars, 1.0)))
    tmp = out / ".export-parts"
    tmp.mkdir()
    finals = {f: out / FORMAT_FILES[f] for f in formats}
    n_parts = _spill_parts(pool, chosen, tmp, part_rows, executor) if len(chosen) else 0
    jsonl = finals["jsonl"].open("w", encoding="utf-8") if "jsonl" in finals else None
    lmflow = finals["lmflow"].open("w", encoding="utf-8") if "lmflow" in finals else None
    parquet = (
        pq.ParquetWriter(finals["parquet"], OUTPUT_SCHEMA, compression="zstd")
        if "parquet" in finals
        else None
    )
    written = 0
    try:
        if lmflow:
            lmflow.write('{"type": "text_only", "instances": [\n')
        first = True
        pending: list[pa.Table] = []
        pending_rows = 0
        for table in tqdm(
            _iter_parts(tmp, n_parts, len(chosen)),
            total=n_parts,
            desc="export: write",
            unit="part",
            disable=n_parts < 4,
        ):
            written += table.num_rows
            if parquet:
                pending.append(table)
                pending_rows += table.num_rows
                if pending_rows >= ROW_GROUP_ROWS:
                    buffered = pa.concat_tables(pending)
                    full = (pending_rows // ROW_GROUP_ROWS) * ROW_GROUP_ROWS
                    parquet.write_table(buffered.slice(0, full), row_group_size=ROW_GROUP_ROWS)
                    pending, pending_rows = [buffered.slice(full)], pending_rows - full
            for batch in table.to_batches(max_chunksize=TEXT_BATCH_ROWS):  # Python strings for a batch only
                cols = batch.to_pydict()
                if jsonl:
                    jsonl.writelines(
                        json.dumps({"id": i, "text": t, "domain": d, "repeat": r}, ensure_ascii=False) + "\n"
                        for i, t, d, r in zip(
                            cols["id"], cols["text"], cols["domain"], cols["repeat"], strict=True
                        )
                    )
                if lmflow:
                    _write_lmflow_chunk(lmflow, cols["text"], first)
                first = first and not cols["text"]
        if parquet and pending_rows:
            parquet.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)
        if lmflow:
            lmflow.write("\n]}\n")
    finally:
        for fh in (jsonl, lmflow):
            if fh:
                fh.close()
        if parquet:
            parquet.close()
    shutil.rmtree(tmp)
    if written != len(chosen):  # pragma: no cover - _iter_parts checks every part
        raise PoolError(f"export wrote {written} documents, the selection holds {len(chosen)}")
    manifest = dict(selection.manifest)
    manifest["formats"] = formats
    manifest["files"] = {
        FORMAT_FILES[f]: {"format": f, "sha256": sha256_file(finals[f]), "bytes": finals[f].stat().st_size}
        for f in formats
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
