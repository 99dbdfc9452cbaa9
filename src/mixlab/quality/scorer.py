"""What a quality scorer is: one shard function, its settings model, its output columns and direction.

A scorer (perplexity, embedding density, the quality classifier, ...) writes one pool attribute, shard by
shard, through the executor's ``map_shards`` (markers, fingerprints, retries, statistics). Before the
shards run, its ``prepare`` step does the driver-side work once (fit a classifier, pick a reference
sample, fingerprint a model folder) and returns what every shard call gets (``payload``) and what the
scores depend on (``key``, whose fingerprint marks the shards). The registry of scorers is
:data:`mixlab.quality.scorers.SCORERS`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mixlab.executors import Executor, Resources, ShardFn
from mixlab.pool.pool import Pool, atomic_write_text, fingerprint
from mixlab.quality.config import ScorerSettings

Direction = Literal["higher", "lower"]


@dataclass(frozen=True)
class Prepared:
    """The driver-side result of a scorer's ``prepare`` step."""

    payload: dict[str, Any]
    """Handed to every shard call (small and picklable: paths, numbers)."""
    key: dict[str, Any]
    """Everything the scores depend on; its fingerprint marks the shards (execution settings left out)."""
    computed: dict[str, list[str]] = field(default_factory=dict)
    """Helper attributes the step computed through the executor: name -> shards."""


PrepareFn = Callable[[Pool, Any, Executor, bool], Prepared]


@dataclass(frozen=True)
class Scorer:
    """One entry of the scorer registry."""

    name: str
    """Its section in the quality config (``quality.NAME``)."""
    attr: str
    """The pool attribute it writes."""
    columns: tuple[str, ...]
    """Output columns; the first is the signal that rules and score weights name."""
    direction: Direction
    """Which way is better for the signal (a config's ``direction`` may override it)."""
    settings: type[ScorerSettings]
    """Its config model."""
    shard_fn: ShardFn
    """``fn(pool_root, shard, payload) -> pyarrow.Table`` with ``columns``, one row per document."""
    prepare: PrepareFn
    """``prepare(pool, settings, executor, force) -> Prepared``, run in the driver under the attribute lock."""
    hint: str
    """How a user turns it on (for error messages)."""
    log_scale: bool = False
    """z-score normalisation works on the log of the signal (heavy right tail, e.g. perplexity)."""
    release: Callable[[], None] | None = None
    """Frees what the shard function cached in this process (a model), after the map."""

    @property
    def signal(self) -> str:
        return self.columns[0]

    def resources(self, settings: ScorerSettings) -> Resources:
        """What one shard needs, from the settings: threads, GPUs (when the scorer has them), memory."""
        return Resources(
            cpus=float(settings.threads),
            gpus=float(getattr(settings, "gpus", 0.0)),
            memory_gb=settings.memory_gb,
        )


#: Fields of :class:`ScorerSettings` that change how a scorer is combined or run, never its values.
EXECUTION_FIELDS = frozenset(ScorerSettings.model_fields)


def score_key(settings: ScorerSettings, *exclude: str) -> dict[str, Any]:
    """The settings that determine a scorer's values (weight, direction and resources left out)."""
    return settings.model_dump(mode="json", exclude=set(EXECUTION_FIELDS) | set(exclude))


def file_identity(path: Path, edge: int = 1 << 20) -> dict[str, Any]:
    """A cheap content identity of a file: size and a digest of its first and last ``edge`` bytes
    (the whole file when smaller), so a retrained or replaced model is noticed without reading gigabytes."""
    size = path.stat().st_size
    h = hashlib.sha256()
    with path.open("rb") as fh:
        h.update(fh.read(edge))
        if size > 2 * edge:
            fh.seek(size - edge)
        h.update(fh.read(edge))
    return {"name": path.name, "size": size, "sha256_edges": h.hexdigest()[:32]}


def cached_artifact(path: Path, key: dict[str, Any], build: Callable[[Path], None], force: bool) -> bool:
    """Build the file ``path`` with ``build(tmp_path)`` unless it exists for this ``key``; return whether it
    was built. The key is kept beside it (``NAME.key.json``); the file is written atomically. Call with the
    owning attribute's lock held."""
    key_path = path.with_name(f"{path.stem}.key.json")
    fp = fingerprint(key)
    if path.exists() and key_path.exists() and not force:
        try:
            if json.loads(key_path.read_text(encoding="utf-8")).get("fingerprint") == fp:
                return False
        except (UnicodeDecodeError, json.JSONDecodeError):
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key_path.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    build(tmp)
    os.replace(tmp, path)
    atomic_write_text(key_path, json.dumps({"fingerprint": fp, "key": key}, sort_keys=True))
    return True
