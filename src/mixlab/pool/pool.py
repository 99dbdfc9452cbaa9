"""The pool: immutable Parquet text shards plus sidecar attribute tables aligned row-for-row.

Layout on disk::

    POOL/
      pool.json                      metadata: tokenizer, shard list, counts, inputs, quarantine counts
      shards/00000.parquet           id, text, source, n_tokens, n_chars, meta (JSON string)
      attrs/NAME/00000.parquet       one row per document of shard 00000, same order, column ``id`` first
      attrs/NAME/00000.done          completion marker (written after the table, atomically), holding
                                     the fingerprint of the config the table was computed with
      attrs/NAME/target.json         the fingerprint the attribute is (being) computed with
      attrs/NAME/attr.json           what produced the attribute (stage, config, summary)
      quarantine.jsonl               inputs that could not become documents, with file, line and reason
      .locks/NAME.lock               held (flock) by the stage writing attribute NAME

Text shards are written once (at ingest); every later stage writes attributes (DESIGN principle 1).

An attribute is complete when every shard's marker carries the fingerprint recorded in ``target.json``.
A stage first records its fingerprint there, then (re)writes each shard whose marker differs: a run with
another config replaces the attribute shard by shard, and until it finishes the attribute reads as
incomplete, so a run killed half-way never leaves shards of two configs marked complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mixlab.paths import file_lock, safe_name

POOL_META = "pool.json"
POOL_FORMAT = "mixlab-pool/1"
TARGET_FILE = "target.json"


class PoolError(ValueError):
    """A pool is missing, incomplete or inconsistent."""


def fingerprint(key: Any) -> str:
    """A short, stable digest of a JSON-able config (what a completion marker records)."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


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
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PoolError(f"{meta_path}: not valid JSON: {exc}") from exc
        if not isinstance(meta, dict) or not isinstance(meta.get("shards"), list):
            raise PoolError(f"{meta_path}: not a mixlab pool description (no shard list)")
        for shard in meta["shards"]:
            try:
                safe_name(shard, "shard name")
            except ValueError as exc:
                raise PoolError(f"{meta_path}: {exc}") from None
        return cls(root=root, meta=meta)

    # -- shards -----------------------------------------------------------------------------------
    @property
    def shards(self) -> list[str]:
        return list(self.meta["shards"])

    def require_documents(self, what: str) -> None:
        """Raise a clear error when the pool holds no documents (nothing to annotate or select)."""
        if self.shards and self.n_docs() > 0:
            return
        q = self.quarantine_count()
        files = len(self.meta.get("quarantined_files", []))
        raise PoolError(
            f"{self.root}: the pool holds no documents, so there is nothing to {what} "
            f"({q} record(s) and {files} file(s) quarantined at ingest; see {self.root / 'quarantine.jsonl'})"
        )

    @property
    def tokenizer_spec(self) -> str:
        return str(self.meta["tokenizer"])

    def tokenizer(self) -> Any:
        from mixlab.tokenization import load_tokenizer

        return load_tokenizer(self.tokenizer_spec)

    def shard_path(self, shard: str) -> Path:
        return self.root / "shards" / f"{safe_name(shard, 'shard name')}.parquet"

    def read_shard(self, shard: str, columns: Sequence[str] | None = None) -> pa.Table:
        return pq.read_table(self.shard_path(shard), columns=list(columns) if columns else None)

    def read_docs(self, columns: Sequence[str] = ("id", "source", "n_tokens")) -> pd.DataFrame:
        """All documents' chosen columns, in pool order."""
        tables = [self.read_shard(s, columns) for s in self.shards]
        return pa.concat_tables(tables).to_pandas() if tables else pd.DataFrame(columns=list(columns))

    # -- attributes -------------------------------------------------------------------------------
    def attr_dir(self, name: str) -> Path:
        return self.root / "attrs" / safe_name(name, "attribute name")

    def attr_path(self, name: str, shard: str) -> Path:
        return self.attr_dir(name) / f"{safe_name(shard, 'shard name')}.parquet"

    def marker_path(self, name: str, shard: str) -> Path:
        return self.attr_dir(name) / f"{safe_name(shard, 'shard name')}.done"

    def attr_marker(self, name: str, shard: str) -> dict[str, Any] | None:
        """The completion marker of one shard (``rows``, ``config`` = fingerprint), or None."""
        path = self.marker_path(name, shard)
        try:
            marker = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None  # a marker never written completely counts as absent
        return marker if isinstance(marker, dict) else None

    def attr_target(self, name: str) -> str | None:
        """The fingerprint attribute ``name`` is (being) computed with (None: a stage without one)."""
        path = self.attr_dir(name) / TARGET_FILE
        try:
            return str(json.loads(path.read_text(encoding="utf-8"))["fingerprint"])
        except FileNotFoundError:
            return None
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise PoolError(f"{path}: unreadable attribute target: {exc}") from exc

    def set_attr_target(self, name: str, fp: str, key: Any = None) -> str | None:
        """Record that attribute ``name`` is now computed with fingerprint ``fp``; return the previous one.

        Shards whose marker holds another fingerprint are from then on incomplete.
        """
        previous = self.attr_target(name)
        self.remove_stale_temps(name)
        if previous != fp:
            atomic_write_text(
                self.attr_dir(name) / TARGET_FILE,
                json.dumps({"fingerprint": fp, "key": key}, indent=2, sort_keys=True, default=str),
            )
        return previous

    def remove_stale_temps(self, name: str) -> list[Path]:
        """Remove temporary files (``.FILE.tmpPID``) that killed writers of attribute ``name`` left.

        Call only while holding the attribute's lock (then no live process is writing them).
        """
        folder = self.attr_dir(name)
        stale = [p for p in folder.glob(".*.tmp*")] if folder.is_dir() else []
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def attr_done(self, name: str, shard: str, fp: str | None = None) -> bool:
        """Whether ``shard`` of attribute ``name`` is finished with fingerprint ``fp`` (default: the target)."""
        marker = self.attr_marker(name, shard)
        if marker is None:
            return False
        expected = self.attr_target(name) if fp is None else fp
        return marker.get("config") == expected

    def has_attr(self, name: str, fp: str | None = None) -> bool:
        """Whether every shard of attribute ``name`` is finished with fingerprint ``fp`` (default: target)."""
        if not self.attr_dir(name).is_dir():
            return False
        expected = self.attr_target(name) if fp is None else fp
        return all(self.attr_done(name, s, expected) for s in self.shards)

    def stale_shards(self, name: str, fp: str | None = None) -> list[str]:
        """Shards of attribute ``name`` not finished with fingerprint ``fp`` (default: the target)."""
        expected = self.attr_target(name) if fp is None else fp
        return [s for s in self.shards if not self.attr_done(name, s, expected)]

    def lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Exclusive lock of the stage writing attribute ``name``; a second run waits for the first."""
        return file_lock(
            self.root / ".locks" / f"{safe_name(name, 'attribute name')}.lock",
            f"attribute {name!r} of {self.root}",
        )

    def attributes(self) -> list[str]:
        base = self.root / "attrs"
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.exists() else []

    def write_attr(self, name: str, shard: str, table: pa.Table, fp: str | None = None) -> None:
        """Write one shard's attribute table (must align with the shard) and its completion marker.

        The marker records ``fp``, the fingerprint of the config the table was computed with (default:
        the attribute's current target). The old marker is removed first, so a crash between the table
        and the marker leaves the shard unfinished.
        """
        ids = self.read_shard(shard, ["id"]).column("id")
        if "id" not in table.column_names:
            table = table.add_column(0, "id", ids)
        elif not table.column("id").equals(ids):
            raise PoolError(f"attribute {name!r} for shard {shard} is not aligned with the shard's ids")
        config = self.attr_target(name) if fp is None else fp
        self.marker_path(name, shard).unlink(missing_ok=True)
        atomic_write_parquet(self.attr_path(name, shard), table)
        atomic_write_text(
            self.marker_path(name, shard), json.dumps({"rows": table.num_rows, "config": config})
        )

    def write_attr_info(self, name: str, info: dict[str, Any]) -> None:
        atomic_write_text(
            self.attr_dir(name) / "attr.json", json.dumps(info, indent=2, sort_keys=True, default=str)
        )

    def read_attr(
        self, name: str, shard: str | None = None, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """One shard's attribute table, or all shards concatenated in pool order."""
        shards = [shard] if shard is not None else self.shards
        expected = self.attr_target(name)
        missing = [s for s in shards if not self.attr_done(name, s, expected)]
        if missing:
            raise PoolError(
                f"{self.root}: attribute {name!r} is missing, or was computed with another config, for "
                f"shard(s) {', '.join(missing[:5])}; run its stage (again) first"
            )
        cols = None if columns is None else ["id", *[c for c in columns if c != "id"]]
        tables = [pq.read_table(self.attr_path(name, s), columns=cols) for s in shards]
        if not tables:
            return pd.DataFrame(columns=cols or ["id"])
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
