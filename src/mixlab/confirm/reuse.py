"""Reuse finished proxy runs that a confirmation would repeat exactly.

A confirmation run at ``confirm.scale: 1`` with the same mixture and the same seed offset as a finished
swarm run is the same job: the selection seed, the training seed and every hyper-parameter are derived
from the pipeline file in the same way, so retraining it would reproduce the swarm run bit for bit (the
demo's logs show equal final losses). Typical hits are the natural and uniform arms, which are the
swarm's first two rows and, with their repeats, already trained with several seeds.

A reused run is copied (hard links where the filesystem allows) into the confirmation's folder, its
metrics row is written to the confirmation's ``metrics.csv`` and its ``DONE`` marker comes last, so an
interrupted reuse is redone, never half-kept. ``reused_from.json`` in the run folder names the source.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from mixlab.mixtures.sampler import repeat_seed
from mixlab.pool.pool import atomic_write_text
from mixlab.proxies.swarm import DONE_MARKER, finished_runs
from mixlab.swarm import read_metrics, upsert_metrics

log = logging.getLogger(__name__)

__all__ = ["REUSE_NOTE", "identical_runs", "reuse_identical_runs"]

#: File in a reused run's folder naming the run it was copied from.
REUSE_NOTE = "reused_from.json"


def identical_runs(target: pd.DataFrame, source: pd.DataFrame, done: set[str]) -> dict[str, str]:
    """For each row of ``target``, a finished row of ``source`` with the same mixture and seed offset.

    Mixtures match when every weight agrees to 1e-8 (``ratios.csv`` keeps 8 decimals); columns are
    aligned by name, and a domain missing on one side counts as weight 0.
    """
    domains = sorted(set(target.columns) | set(source.columns))
    t = target.reindex(columns=domains, fill_value=0.0).to_numpy(dtype=np.float64)
    candidates = [r for r in source.index if str(r) in done]
    s = source.loc[candidates].reindex(columns=domains, fill_value=0.0).to_numpy(dtype=np.float64)
    seeds = [repeat_seed(str(r)) for r in candidates]
    found: dict[str, str] = {}
    for i, run in enumerate(target.index):
        k = repeat_seed(str(run))
        for j, src in enumerate(candidates):
            if seeds[j] == k and np.allclose(t[i], s[j], rtol=0.0, atol=1e-8):
                found[str(run)] = str(src)
                break
    return found


def _copy_run(src: Path, dst: Path) -> None:
    """Copy a run folder, hard-linking files where possible (runs are never modified after DONE)."""

    def link_or_copy(a: str, b: str) -> str:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)
        return b

    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, copy_function=link_or_copy, ignore=shutil.ignore_patterns(DONE_MARKER))


def reuse_identical_runs(
    target: pd.DataFrame, target_dir: Path, source: pd.DataFrame, source_dir: Path
) -> dict[str, str]:
    """Fill ``target_dir`` with copies of ``source_dir``'s finished runs that ``target`` would repeat.

    Both folders are swarm folders (``runs/<run>/`` and ``metrics.csv``). Runs of ``target`` that are
    already finished are left alone. Returns ``{target run: source run}`` for the runs copied now.
    """
    target_dir, source_dir = Path(target_dir), Path(source_dir)
    source_csv, target_csv = source_dir / "metrics.csv", target_dir / "metrics.csv"
    already = finished_runs(target_csv, target_dir)
    todo = target.loc[[r for r in target.index if str(r) not in already]]
    matches = identical_runs(todo, source, finished_runs(source_csv, source_dir))
    if not matches:
        return {}
    rows = read_metrics(source_csv)
    for run, src in matches.items():
        dst = target_dir / "runs" / run
        _copy_run(source_dir / "runs" / src, dst)
        atomic_write_text(dst / REUSE_NOTE, json.dumps({"run": src, "folder": str(source_dir)}) + "\n")
        row = {k: v for k, v in rows.loc[src].items() if not (isinstance(v, float) and np.isnan(v))}
        upsert_metrics(target_csv, run, row)
        done = (source_dir / "runs" / src / DONE_MARKER).read_text(encoding="utf-8")
        atomic_write_text(dst / DONE_MARKER, done)
    log.info(
        "%s: %d runs equal finished %s runs and are reused (%s)",
        target_dir.name,
        len(matches),
        source_dir.name,
        ", ".join(f"{t} = {s}" for t, s in matches.items()),
    )
    return matches
