"""Write a selection as JSONL / Parquet / LMFlow text_only JSON with a ``manifest.json``.

Export streams shard by shard: for each pool shard only the chosen rows' text is kept, and occurrences
are spilled to temporary Parquet parts by their position in the (already shuffled) output order. The
parts are then read back one at a time, sorted, and appended to the outputs, so memory holds one shard
or one part of text, never the whole dataset. A repeated document appears once per repeat.

The whole dataset folder (data files and ``manifest.json``, spill parts included) is written in a private
temporary folder next to ``out_dir`` and swapped into place when complete, under a lock: a reader sees
the previous dataset or the new one, never a mix; a second export into the same folder waits for the
first; a killed export leaves the previous dataset as it was, and its temporary folder is removed on
failure or by the next export. Only a mixlab dataset folder (or an empty one) is ever replaced.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mixlab.console import tqdm
from mixlab.paths import clean_stale, dir_lock, new_temp_dir, replace_dir
from mixlab.pool.pool import Pool, PoolError, atomic_write_text
from mixlab.select.selection import Selection

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


def _spill_parts(pool: Pool, chosen: Any, tmp: Path, part_rows: int) -> int:
    """Write every occurrence's text into parts ``tmp/part-K.parquet`` by output position; return part count."""
    n_parts = max(1, math.ceil(len(chosen) / part_rows))
    writers: dict[int, pq.ParquetWriter] = {}
    positions = np.arange(len(chosen), dtype=np.int64)
    by_shard = chosen.assign(pos=positions).groupby("shard", sort=True)
    try:
        for shard, rows in tqdm(
            by_shard, desc="export: read shards", unit="shard", disable=by_shard.ngroups < 4
        ):
            table = pool.read_shard(str(shard), ["id", "text"])
            idx = pa.array(rows["row"].to_numpy(dtype=np.int64))
            picked = table.take(idx)
            ids = picked.column("id").to_pylist()
            expected = rows["id"].tolist()
            if ids != expected:
                bad = next(i for i, (a, b) in enumerate(zip(ids, expected, strict=True)) if a != b)
                raise PoolError(
                    f"{pool.shard_path(str(shard))}: row {int(rows['row'].iloc[bad])} holds {ids[bad]!r}, "
                    f"the selection expects {expected[bad]!r}; the pool changed since selection"
                )
            part_of = rows["pos"].to_numpy() // part_rows
            out = pa.table(
                {
                    "pos": pa.array(rows["pos"].to_numpy(dtype=np.int64)),
                    "id": picked.column("id"),
                    "text": picked.column("text"),
                    "domain": pa.array(rows["domain"].astype(str).tolist(), pa.string()),
                    "repeat": pa.array(rows["repeat"].to_numpy(dtype=np.int64)),
                },
                schema=_PART_SCHEMA,
            )
            for part in np.unique(part_of):
                if part not in writers:
                    writers[int(part)] = pq.ParquetWriter(tmp / f"part-{int(part):05d}.parquet", _PART_SCHEMA)
                writers[int(part)].write_table(out.filter(pa.array(part_of == part)))
    finally:
        for w in writers.values():
            w.close()
    return n_parts


def _iter_parts(tmp: Path, n_parts: int, n_rows: int) -> Iterable[pa.Table]:
    """The occurrences in output order, one sorted part at a time; a missing or short part is an error."""
    seen = 0
    for part in range(n_parts):
        path = tmp / f"part-{part:05d}.parquet"
        if not path.exists():
            raise PoolError(
                f"export: spill part {path} is missing; the export's temporary folder was altered"
            )
        table = pq.read_table(path).sort_by("pos").drop(["pos"])  # the unsorted copy is freed here
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
) -> Path:
    """Write ``selection`` to ``out_dir`` in ``formats`` plus ``manifest.json``; return ``out_dir``.

    ``data.jsonl``: objects with ``id``, ``text``, ``domain``, ``repeat``; ``data.parquet``: the same columns;
    ``data.json``: LMFlow ``{"type": "text_only", "instances": [{"text": ...}]}``. The manifest is the
    selection's plus the sha256 and size of each data file.
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
            _write_dataset(pool, selection, tmp, formats, part_chars)
            replace_dir(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out


def _write_dataset(pool: Pool, selection: Selection, out: Path, formats: list[str], part_chars: int) -> None:
    """Write the data files and the manifest into the (private, empty) folder ``out``."""
    chosen = selection.chosen
    mean_chars = float(chosen["n_chars"].mean()) if len(chosen) else 1.0
    part_rows = max(1, int(part_chars // max(mean_chars, 1.0)))
    tmp = out / ".export-parts"
    tmp.mkdir()
    finals = {f: out / FORMAT_FILES[f] for f in formats}
    n_parts = _spill_parts(pool, chosen, tmp, part_rows) if len(chosen) else 0
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
