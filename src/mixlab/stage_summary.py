"""One calm terminal line per pool stage of a pipeline run: documents, tokens, seconds, drops by reason.

The numbers come from what the stages leave in the pool: ``pool.json`` for ingestion, and for shard
stages the per-shard statistics the executor writes to ``POOL/stats/NAME.json``
(:mod:`mixlab.executors.base`): the attributes whose statistics were written during the step, their
shards and shard-seconds, plus the drops by reason a stage reports (its shards' ``drops`` and what the
caller adds, e.g. quality filter reasons). A step that found all its work done says so::

    ingest    12,000 docs   3.1M tokens  2 shards   4.1 s  quarantined 14 (malformed JSON 10, empty document 4)
    quality   12,000 docs   3.1M tokens  2 shards  18.4 s  dropped 420 (short_fragment 200, junk_words 120, +3)
    dedup     12,000 docs   3.1M tokens  done before
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixlab.executors.base import STATS_DIR
from mixlab.pool.pool import POOL_META, Pool

__all__ = [
    "StageWatch",
    "format_count",
    "format_drops",
    "ingest_line",
    "stage_line",
    "watch_ingest",
    "watch_stage",
]

#: Reasons listed by name in a line; the rest are counted as ``+N``.
MAX_REASONS = 3
_LABEL = 9


def format_count(n: float) -> str:
    """``950``, ``41k``, ``3.1M``, ``2.0B``: a count short enough for one terminal line."""
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            value = n / size
            return f"{value:.1f}{unit}" if value < 100 else f"{value:.0f}{unit}"
    return f"{n:.0f}"


def format_drops(drops: Mapping[str, int], verb: str = "dropped") -> str:
    """``dropped 420 (short_fragment 200, junk_words 120, +3)``, largest first; ``""`` when nothing."""
    items = sorted(((r, int(n)) for r, n in drops.items() if int(n) > 0), key=lambda x: (-x[1], x[0]))
    if not items:
        return ""
    shown = ", ".join(f"{r} {n:,}" for r, n in items[:MAX_REASONS])
    more = f", +{len(items) - MAX_REASONS}" if len(items) > MAX_REASONS else ""
    return f"{verb} {sum(n for _, n in items):,} ({shown}{more})"


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_ino  # files are replaced by rename: a rewrite changes both


def _stats_files(pool: Pool) -> dict[str, tuple[int, int] | None]:
    folder = pool.root / STATS_DIR
    return {p.stem: _stamp(p) for p in folder.glob("*.json")} if folder.is_dir() else {}


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def stage_line(
    pool: Pool, label: str, attrs: list[str], seconds: float, drops: Mapping[str, int] | None = None
) -> str:
    """The line of a shard step that wrote the statistics of ``attrs`` (none: its work was done before)."""
    docs, tokens = pool.n_docs(), pool.n_tokens()
    head = f"{label:<{_LABEL}} {docs:>8,} docs {format_count(tokens):>6} tokens"
    if not attrs:
        tail = format_drops(drops or {})
        return f"{head}  done before" + (f"  {tail}" if tail else "")
    shards = 0
    all_drops: dict[str, int] = dict(drops or {})
    for name in attrs:
        totals = _read(pool.root / STATS_DIR / f"{name}.json").get("totals", {})
        shards = max(shards, int(totals.get("shards", 0)))
        for reason, n in (totals.get("drops") or {}).items():
            all_drops[reason] = all_drops.get(reason, 0) + int(n)
    tail = format_drops(all_drops)
    return f"{head}  {shards} shard{'s' if shards != 1 else ''} {seconds:6.1f} s" + (
        f"  {tail}" if tail else ""
    )


def ingest_line(pool: Pool, seconds: float, fresh: bool = True) -> str:
    """The line of ingestion: documents, tokens, shards, quarantined records by reason."""
    meta = pool.meta
    head = f"{'ingest':<{_LABEL}} {pool.n_docs():>8,} docs {format_count(pool.n_tokens()):>6} tokens"
    reasons = dict(meta.get("quarantine_reasons") or {})
    files = len(meta.get("quarantined_files") or [])
    if files:
        reasons["unreadable file"] = reasons.get("unreadable file", 0) + files
    tail = format_drops(reasons, "quarantined")
    when = (
        f"  {len(pool.shards)} shard{'s' if len(pool.shards) != 1 else ''} {seconds:6.1f} s"
        if fresh
        else "  done before"
    )
    return head + when + (f"  {tail}" if tail else "")


@dataclass
class StageWatch:
    """What :func:`watch_stage` measures; set ``drops`` inside the block to add the stage's own reasons."""

    label: str
    drops: dict[str, int] = field(default_factory=dict)
    line: str = ""


@contextmanager
def watch_stage(pool: Pool, label: str, log: logging.Logger | None = None) -> Iterator[StageWatch]:
    """Time a pool step and log its one line at INFO when it succeeds (statistics written meanwhile)."""
    before = _stats_files(pool)
    t0 = time.perf_counter()
    watch = StageWatch(label)
    yield watch
    seconds = time.perf_counter() - t0
    after = _stats_files(pool)
    written = sorted(name for name, stamp in after.items() if before.get(name) != stamp)
    watch.line = stage_line(pool, label, written, seconds, watch.drops)
    (log or logging.getLogger("mixlab.pipeline")).info(watch.line)


@contextmanager
def watch_ingest(root: Path, log: logging.Logger | None = None) -> Iterator[StageWatch]:
    """Time ingestion into ``root`` and log its line (``done before`` when ``pool.json`` did not change)."""
    before = _stamp(root / POOL_META)
    t0 = time.perf_counter()
    watch = StageWatch("ingest")
    yield watch
    pool = Pool.open(root)
    fresh = before is None or _stamp(root / POOL_META) != before
    watch.line = ingest_line(pool, time.perf_counter() - t0, fresh)
    (log or logging.getLogger("mixlab.pipeline")).info(watch.line)
