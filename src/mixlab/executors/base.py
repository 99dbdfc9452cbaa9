"""One executor interface for every shard stage and every swarm (datatrove's lesson).

A back end (:class:`~mixlab.executors.local.LocalExecutor`, :class:`~mixlab.executors.ray.RayExecutor`)
only knows how to run calls somewhere and hand back their outcomes as they finish (``_imap``). Everything
else is done here, once, for every stage:

* **completion markers carrying a config fingerprint**, and the one policy for a changed config: the
  fingerprint becomes the attribute's target, and every shard whose marker holds another fingerprint is
  recomputed, replacing the old attribute shard by shard (with a warning), so a run killed half-way reads
  as incomplete, never as complete and mixed;
* **one writer per attribute**: the attribute's lock (``POOL/.locks/NAME.lock``) is held while mapping;
* **retries** of a failed shard (``retries``, default 1), then the shard's own exception is raised; the
  calls of a driver-side step (ingest's reads and shard writes, export's shard reads) get the same
  retries and one progress bar through :meth:`Executor.map_calls`;
* **atomic outputs**: a worker writes its table to a temporary file, renames it into place, then writes
  the marker (:meth:`mixlab.pool.pool.Pool.write_attr`), so a shard is finished or absent, never half;
* **per-shard statistics** (documents, tokens, seconds, attempts, drops by reason when the stage returns
  them as a :class:`ShardOutput`) in ``POOL/stats/NAME.json``. They live outside ``attrs/NAME/`` because
  seconds differ from run to run, while an attribute folder is byte-identical whichever executor made it.

A shard stage is a module-level function ``fn(pool_root, shard, config)`` returning a ``pyarrow.Table``
(one row per document, in shard order) or a :class:`ShardOutput`. It must not depend on which worker or
machine computes it; a stage declares what one shard needs as :class:`Resources`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

import pyarrow as pa
import pyarrow.compute as pc

from mixlab.console import tqdm
from mixlab.paths import safe_name
from mixlab.pool.pool import Pool, atomic_write_text, fingerprint

log = logging.getLogger(__name__)

STATS_DIR = "stats"


@dataclass(frozen=True)
class Resources:
    """What one task (a shard, a proxy run) needs. Ray schedules by it; the local pool pins GPUs only."""

    cpus: float = 1.0
    """CPU cores (Ray ``num_cpus``)."""
    gpus: float = 0.0
    """GPUs, fractional for small models (Ray ``num_gpus``; 0.25 puts four tasks on one GPU)."""
    memory_gb: float | None = None
    """Memory reserved for the task in GiB (Ray ``memory``); None: no reservation."""

    def __post_init__(self) -> None:
        if self.cpus < 0 or self.gpus < 0 or (self.memory_gb is not None and self.memory_gb <= 0):
            raise ValueError(f"invalid resources {self}")


@dataclass
class ShardOutput:
    """What a shard stage may return instead of a bare table: the table and its drops by reason."""

    table: pa.Table
    drops: dict[str, int] = field(default_factory=dict)


ShardFn = Callable[[str, str, Any], "pa.Table | ShardOutput"]
#: What a shard needs when a stage does not say: one CPU.
DEFAULT_RESOURCES = Resources()
Outcome = Any  # a call's return value, or the exception it raised


def config_fingerprint(config: Any) -> str:
    """Fingerprint of a stage config (a pydantic model, a dataclass-like mapping or plain JSON data)."""
    if hasattr(config, "model_dump"):
        return fingerprint(config.model_dump(mode="json"))
    return fingerprint(config)


def run_shard(fn: ShardFn, root: str, shard: str, config: Any, name: str, fp: str) -> dict[str, Any]:
    """Worker side of :meth:`Executor.map_shards`: compute one shard, write it atomically, return its stats."""
    t0 = time.perf_counter()
    pool = Pool.open(root)
    out = fn(root, shard, config)
    table, drops = (out.table, dict(out.drops)) if isinstance(out, ShardOutput) else (out, {})
    pool.write_attr(name, shard, table, fp)
    n_tokens = pool.read_shard(shard, ["n_tokens"]).column("n_tokens")
    return {
        "documents": table.num_rows,
        "tokens": int(pc.sum(n_tokens).as_py() or 0),
        "seconds": round(time.perf_counter() - t0, 4),
        "drops": {str(k): int(v) for k, v in sorted(drops.items())},
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }


class Executor(ABC):
    """Maps shard stages over a pool and swarm runs over mixtures; back ends implement :meth:`_imap`."""

    name: ClassVar[str] = "base"

    def __init__(self, workers: int = 1, retries: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.workers = int(workers)
        self.retries = int(retries)

    # -- what a back end provides ------------------------------------------------------------------
    @abstractmethod
    def _imap(
        self, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], resources: Resources
    ) -> Iterator[tuple[int, Outcome]]:
        """Run ``fn(*calls[i])`` for every i; yield ``(i, result or the exception raised)`` as each ends."""

    def total_gpus(self) -> float:
        """GPUs this executor can hand to tasks (0 when none)."""
        return 0.0

    def close(self) -> None:
        """Release what the executor started (a local Ray instance); a no-op by default."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(workers={self.workers}, retries={self.retries})"

    # -- shard stages --------------------------------------------------------------------------------
    def map_shards(
        self,
        fn: ShardFn,
        pool: Pool,
        name: str,
        config: Any,
        *,
        shards: Sequence[str] | None = None,
        resources: Resources = DEFAULT_RESOURCES,
        force: bool = False,
        desc: str | None = None,
        fp: str | None = None,
    ) -> list[str]:
        """Run ``fn`` on every shard not finished with this config; store its output as attribute ``name``.

        ``fp`` is the fingerprint of everything the output depends on (default: of ``config``). It becomes
        the attribute's target; shards whose marker holds another fingerprint are recomputed (the config
        changed since the last run: the attribute is replaced shard by shard, with a warning). ``shards``
        limits the work to some shards (default: all); ``force`` redoes them even when finished. A shard
        that fails is tried again up to ``retries`` times, then its exception is raised (after the other
        shards finished). Returns the shards computed in this call, sorted (empty when all were done).
        """
        pool.require_documents("annotate")
        fp = fp or config_fingerprint(config)
        with pool.lock(name):  # a second run of the same stage waits, then finds the work done
            return self._map_locked(fn, pool, name, config, shards, resources, force, desc, fp)

    def _map_locked(
        self,
        fn: ShardFn,
        pool: Pool,
        name: str,
        config: Any,
        shards: Sequence[str] | None,
        resources: Resources,
        force: bool,
        desc: str | None,
        fp: str,
    ) -> list[str]:
        previous = pool.set_attr_target(name, fp)
        order = pool.shards
        if shards is not None:
            unknown = sorted(set(shards) - set(order))
            if unknown:
                raise ValueError(f"{pool.root}: no shard(s) {', '.join(unknown[:5])} in the pool")
            wanted = set(shards)
            order = [s for s in order if s in wanted]
        todo = [s for s in order if force or not pool.attr_done(name, s, fp)]
        if previous is not None and previous != fp and todo:
            log.warning(
                "attribute %r: config changed since the last run; recomputing %d of %d shard(s), "
                "replacing the old attribute shard by shard",
                name,
                len(todo),
                len(pool.shards),
            )
        if not todo:
            return []
        root = str(pool.root)
        stats = _read_stats(pool, name, fp)
        attempts = dict.fromkeys(todo, 0)
        errors: dict[str, BaseException] = {}
        done: list[str] = []
        pending = todo
        bar = tqdm(total=len(todo), desc=desc or name, unit="shard", top=True)
        try:
            while pending:
                calls = [(fn, root, s, config, name, fp) for s in pending]
                again: list[str] = []
                for i, outcome in self._imap(run_shard, calls, resources):
                    shard = pending[i]
                    attempts[shard] += 1
                    if isinstance(outcome, BaseException):
                        errors[shard] = outcome
                        if attempts[shard] <= self.retries:
                            log.warning(
                                "attribute %r, shard %s failed (attempt %d of %d), retrying: %s: %s",
                                name,
                                shard,
                                attempts[shard],
                                self.retries + 1,
                                type(outcome).__name__,
                                outcome,
                            )
                            again.append(shard)
                        continue
                    errors.pop(shard, None)
                    stats[shard] = {**outcome, "attempts": attempts[shard]}
                    done.append(shard)
                    bar.update()
                pending = [s for s in order if s in set(again)]
        finally:
            bar.close()
            if done:
                _write_stats(pool, name, fp, self, stats)
        if errors:
            first = next(s for s in order if s in errors)
            exc = errors[first]
            log.error(
                "attribute %r: %d shard(s) failed after %d attempt(s): %s",
                name,
                len(errors),
                self.retries + 1,
                ", ".join(s for s in order if s in errors),
            )
            exc.add_note(f"mixlab: shard {first} of attribute {name!r} failed {attempts[first]} time(s)")
            raise exc
        return sorted(done)

    # -- swarm runs ------------------------------------------------------------------------------------
    def map_runs(
        self,
        fn: Callable[..., Any],
        jobs: Sequence[tuple[str, tuple[Any, ...]]],
        resources: Resources = DEFAULT_RESOURCES,
    ) -> Iterator[tuple[str, Outcome]]:
        """Run ``fn(*args)`` for every ``(key, args)`` job; yield ``(key, result or exception)`` as each ends.

        Runs are not retried here: the swarm records a failure and its next run retries it.
        """
        for i, outcome in self._imap(fn, [args for _, args in jobs], resources):
            yield jobs[i][0], outcome

    # -- calls of a driver-side step (ingest's reads and shard writes, export's shard reads) ----------------
    def map_calls(
        self,
        fn: Callable[..., Any],
        calls: Sequence[tuple[Any, ...]],
        resources: Resources = DEFAULT_RESOURCES,
        desc: str = "calls",
        unit: str = "call",
        top: bool = True,
    ) -> Iterator[tuple[int, Any]]:
        """``(i, fn(*calls[i]))`` for every call, as calls finish, under one progress bar. A call that raises
        is tried again up to ``retries`` times (a worker may die); then the first failed call's exception is
        raised, after the other calls finished. ``fn`` must give the same result on every attempt.
        ``top=False`` marks the bar as a sub-step's, hidden where a pipeline shows one line per step (e.g.
        the export of every proxy's selection inside the swarm)."""
        attempts = [0] * len(calls)
        errors: dict[int, BaseException] = {}
        pending = list(range(len(calls)))
        with tqdm(total=len(calls), desc=desc, unit=unit, top=top, disable=len(calls) < 2) as bar:
            while pending:
                again: list[int] = []
                jobs = [(str(i), calls[i]) for i in pending]
                for name, outcome in self.map_runs(fn, jobs, resources):
                    i = int(name)
                    attempts[i] += 1
                    if isinstance(outcome, BaseException):
                        errors[i] = outcome
                        if attempts[i] <= self.retries:
                            log.warning(
                                "%s: call %d failed (attempt %d), retrying: %s", desc, i, attempts[i], outcome
                            )
                            again.append(i)
                        continue
                    errors.pop(i, None)
                    bar.update()
                    yield i, outcome
                pending = sorted(again)
        if errors:
            first = min(errors)
            raise errors[first]


# -- statistics ---------------------------------------------------------------------------------------
def stats_path(pool: Pool, name: str) -> Path:
    """Where the per-shard statistics of attribute ``name`` are kept: ``POOL/stats/NAME.json``."""
    return pool.root / STATS_DIR / f"{safe_name(name, 'attribute name')}.json"


def read_stats(pool: Pool, name: str) -> dict[str, Any] | None:
    """The statistics file of attribute ``name`` (None when absent or unreadable)."""
    try:
        data = json.loads(stats_path(pool, name).read_text(encoding="utf-8"))
    except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _read_stats(pool: Pool, name: str, fp: str) -> dict[str, dict[str, Any]]:
    """Per-shard statistics already recorded for fingerprint ``fp`` (those of another config are dropped)."""
    data = read_stats(pool, name)
    if not data or data.get("fingerprint") != fp or not isinstance(data.get("shards"), dict):
        return {}
    return {str(k): v for k, v in data["shards"].items() if isinstance(v, dict)}


def _write_stats(
    pool: Pool, name: str, fp: str, executor: Executor, shards: dict[str, dict[str, Any]]
) -> None:
    shards = {s: shards[s] for s in pool.shards if s in shards}  # pool order; gone shards dropped
    drops: dict[str, int] = {}
    for st in shards.values():
        for reason, n in st.get("drops", {}).items():
            drops[reason] = drops.get(reason, 0) + int(n)
    totals = {
        "shards": len(shards),
        "documents": sum(int(st.get("documents", 0)) for st in shards.values()),
        "tokens": sum(int(st.get("tokens", 0)) for st in shards.values()),
        "seconds": round(sum(float(st.get("seconds", 0.0)) for st in shards.values()), 4),
        "drops": dict(sorted(drops.items())),
    }
    data = {
        "attribute": name,
        "fingerprint": fp,
        "executor": executor.name,
        "workers": executor.workers,
        "totals": totals,
        "shards": shards,
    }
    atomic_write_text(stats_path(pool, name), json.dumps(data, indent=2))
