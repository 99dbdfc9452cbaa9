"""Local executor: map a shard stage over a pool's shards in a process pool, skipping finished shards.

A shard stage is a plain function ``fn(pool_root, shard, config) -> pyarrow.Table`` returning one row
per document of the shard (in shard order). The executor writes the table as the sidecar attribute
``name`` with a completion marker holding the config's fingerprint, so a crashed run can be rerun and
only unfinished shards are redone, and a run with another config redoes every shard (replacing the old
attribute shard by shard); the output of a shard does not depend on which worker computed it.

Worker processes die with their parent: on Linux the kernel kills them (``PR_SET_PDEATHSIG``), and on
every platform a watchdog thread exits a worker whose parent has gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import pyarrow as pa

from mixlab.console import tqdm
from mixlab.pool.pool import Pool, fingerprint

log = logging.getLogger(__name__)

ShardFn = Callable[[str, str, Any], pa.Table]

_PR_SET_PDEATHSIG = 1


def _watch_parent(parent: int, interval: float) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(interval)


def die_with_parent(parent: int, interval: float = 0.5) -> None:
    """Process-pool initializer: end this worker when the process ``parent`` ends (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog remains
            pass
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent, interval), daemon=True).start()


def init_worker(parent: int) -> None:
    """Process-pool initializer of mixlab's workers: die with ``parent``, log to the run's log file."""
    from mixlab.console import worker_setup

    die_with_parent(parent)
    worker_setup()


def config_fingerprint(config: Any) -> str:
    """Fingerprint of a stage config (a pydantic model, a dataclass-like mapping or plain JSON data)."""
    if hasattr(config, "model_dump"):
        return fingerprint(config.model_dump(mode="json"))
    return fingerprint(config)


def _run_one(fn: ShardFn, root: str, shard: str, config: Any, name: str, fp: str) -> str:
    pool = Pool.open(root)
    table = fn(root, shard, config)
    pool.write_attr(name, shard, table, fp)
    return shard


def map_shards(
    fn: ShardFn,
    pool: Pool,
    name: str,
    config: Any,
    workers: int = 1,
    force: bool = False,
    desc: str | None = None,
    fp: str | None = None,
) -> list[str]:
    """Run ``fn`` on every shard not finished with this config and store its output as attribute ``name``.

    ``fp`` is the fingerprint of everything the output depends on (default: of ``config``). It becomes the
    attribute's target; shards whose marker holds another fingerprint are recomputed (config changed
    since the last run: the attribute is replaced shard by shard, with a warning). ``force`` redoes all.
    Returns the shards computed in this call (empty when everything was already done).
    """
    pool.require_documents("annotate")
    fp = fp or config_fingerprint(config)
    with pool.lock(name):  # a second run of the same stage waits, then finds the work done
        return _map_locked(fn, pool, name, config, workers, force, desc, fp)


def _map_locked(
    fn: ShardFn,
    pool: Pool,
    name: str,
    config: Any,
    workers: int,
    force: bool,
    desc: str | None,
    fp: str,
) -> list[str]:
    previous = pool.set_attr_target(name, fp)
    todo = [s for s in pool.shards if force or not pool.attr_done(name, s, fp)]
    if previous is not None and previous != fp and todo:
        log.warning(
            "attribute %r: config changed since the last run; recomputing %d of %d shard(s), "
            "replacing the old attribute shard by shard",
            name,
            len(todo),
            len(pool.shards),
        )
    root = str(pool.root)
    done: list[str] = []
    bar = tqdm(total=len(todo), desc=desc or name, unit="shard", disable=not todo, top=True)
    if workers <= 1 or len(todo) <= 1:
        for shard in todo:
            done.append(_run_one(fn, root, shard, config, name, fp))
            bar.update()
    else:
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=init_worker, initargs=(os.getpid(),)
        ) as ex:
            futures = [ex.submit(_run_one, fn, root, s, config, name, fp) for s in todo]
            for fut in as_completed(futures):
                done.append(fut.result())
                bar.update()
    bar.close()
    return sorted(done)
