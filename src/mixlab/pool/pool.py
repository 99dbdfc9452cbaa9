"""The pool: immutable Parquet text shards plus sidecar attribute tables aligned row-for-row.

Layout on disk::

    POOL/
      pool.json                      metadata: tokenizer, shard list, counts, inputs, quarantine counts
      shards/00000.parquet           id, text, source, n_tokens, n_chars, meta (JSON string)
      attrs/NAME/00000.parquet       one row per document of shard 00000, same order, column ``id`` first
      attrs/NAME/00000.done          completion marker (written after the table, atomically)
      attrs/NAME/attr.json           what produced the attribute (stage, config)
      quarantine.jsonl               inputs that could not become documents, with file, line and reason

Text shards are written once (at ingest); every later stage writes attributes (DESIGN principle 1).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

POOL_META = "pool.json"


class PoolError(ValueError):
    """A pool is missing, incomplete or inconsistent."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_parquet(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


@dataclass
class Pool:
    """An opened pool folder."""

    root: Path
    meta: dict[str, Any]

    @classmethod
    def open(cls, root: str | Path) -> Pool:
        root = Path(root)
        meta_path = root / POOL_META
        if not meta_path.exists():
            raise PoolError(f"{root}: not a mixlab pool (no {POOL_META}); create one with `mixlab ingest`")
        meta = json.loads(meta_path.read_text())
        return cls(root=root, meta=meta)

    # -- shards -----------------------------------------------------------------------------------
    @property
    def shards(self) -> list[str]:
        return list(self.meta["shards"])

    @property
    def tokenizer_spec(self) -> str:
        return str(self.meta["tokenizer"])

    def tokenizer(self) -> Any:
        from mixlab.tokenization import load_tokenizer

        return load_tokenizer(self.tokenizer_spec)

    def shard_path(self, shard: str) -> Path:
        return self.root / "shards" / f"{shard}.parquet"

    def read_shard(self, shard: str, columns: Sequence[str] | None = None) -> pa.Table:
        return pq.read_table(self.shard_path(shard), columns=list(columns) if columns else None)

    def read_docs(self, columns: Sequence[str] = ("id", "source", "n_tokens")) -> pd.DataFrame:
        """All documents' chosen columns, in pool order."""
        tables = [self.read_shard(s, columns) for s in self.shards]
        return pa.concat_tables(tables).to_pandas() if tables else pd.DataFrame(columns=list(columns))

    # -- attributes -------------------------------------------------------------------------------
    def attr_dir(self, name: str) -> Path:
        return self.root / "attrs" / name

    def attr_path(self, name: str, shard: str) -> Path:
        return self.attr_dir(name) / f"{shard}.parquet"

    def attr_done(self, name: str, shard: str) -> bool:
        return (self.attr_dir(name) / f"{shard}.done").exists()

    def has_attr(self, name: str) -> bool:
        return all(self.attr_done(name, s) for s in self.shards)

    def attributes(self) -> list[str]:
        base = self.root / "attrs"
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.exists() else []

    def write_attr(self, name: str, shard: str, table: pa.Table) -> None:
        """Write one shard's attribute table (must align with the shard) and its completion marker."""
        ids = self.read_shard(shard, ["id"]).column("id")
        if "id" not in table.column_names:
            table = table.add_column(0, "id", ids)
        elif not table.column("id").equals(ids):
            raise PoolError(f"attribute {name!r} for shard {shard} is not aligned with the shard's ids")
        atomic_write_parquet(self.attr_path(name, shard), table)
        atomic_write_text(self.attr_dir(name) / f"{shard}.done", json.dumps({"rows": table.num_rows}))

    def write_attr_info(self, name: str, info: dict[str, Any]) -> None:
        atomic_write_text(
            self.attr_dir(name) / "attr.json", json.dumps(info, indent=2, sort_keys=True, default=str)
        )

    def read_attr(
        self, name: str, shard: str | None = None, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """One shard's attribute table, or all shards concatenated in pool order."""
        shards = [shard] if shard is not None else self.shards
        missing = [s for s in shards if not self.attr_done(name, s)]
        if missing:
            raise PoolError(
                f"{self.root}: attribute {name!r} is missing for shard(s) {', '.join(missing[:5])}; run its stage first"
            )
        cols = None if columns is None else ["id", *[c for c in columns if c != "id"]]
        tables = [pq.read_table(self.attr_path(name, s), columns=cols) for s in shards]
        return pa.concat_tables(tables).to_pandas()

    # -- bookkeeping ------------------------------------------------------------------------------
    def quarantine_count(self) -> int:
        return int(self.meta.get("quarantined", 0))

    def n_docs(self) -> int:
        return int(self.meta["n_docs"])

    def n_tokens(self) -> int:
        return int(self.meta["n_tokens"])


def write_pool_meta(root: Path, meta: dict[str, Any]) -> None:
    atomic_write_text(root / POOL_META, json.dumps(meta, indent=2, sort_keys=True))
