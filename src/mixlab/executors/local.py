"""Local executor: map a shard stage over a pool's shards in a process pool, skipping finished shards.

A shard stage is a plain function ``fn(pool_root, shard, config) -> pyarrow.Table`` returning one row
per document of the shard (in shard order). The executor writes the table as the sidecar attribute
``name`` with a completion marker, so a crashed run can be rerun and only unfinished shards are redone;
the output of a shard does not depend on which worker computed it.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import pyarrow as pa
from tqdm.auto import tqdm

from mixlab.pool.pool import Pool

ShardFn = Callable[[str, str, Any], pa.Table]


def _run_one(fn: ShardFn, root: str, shard: str, config: Any, name: str) -> str:
    pool = Pool.open(root)
    table = fn(root, shard, config)
    pool.write_attr(name, shard, table)
    return shard


def map_shards(
    fn: ShardFn,
    pool: Pool,
    name: str,
    config: Any,
    workers: int = 1,
    force: bool = False,
    desc: str | None = None,
) -> list[str]:
    """Run ``fn`` on every unfinished shard and store its output as attribute ``name``.

    Returns the shards computed in this call (empty when everything was already done).
    """
    todo = [s for s in pool.shards if force or not pool.attr_done(name, s)]
    root = str(pool.root)
    done: list[str] = []
    bar = tqdm(total=len(todo), desc=desc or name, unit="shard", disable=not todo)
    if workers <= 1 or len(todo) <= 1:
        for shard in todo:
            done.append(_run_one(fn, root, shard, config, name))
            bar.update()
    else:
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
            futures = [ex.submit(_run_one, fn, root, s, config, name) for s in todo]
            for fut in as_completed(futures):
                done.append(fut.result())
                bar.update()
    bar.close()
    return sorted(done)
