"""Local executor: one machine's process pool (the default back end of :class:`~mixlab.executors.base.Executor`).

With ``workers <= 1`` (or a single call) calls run in this process, one after another; otherwise in a
``spawn`` process pool of ``workers`` processes. Declared :class:`~mixlab.executors.base.Resources` are
not scheduled on one machine (``workers`` is the concurrency), except that ``gpus`` pins each worker
process to one of the given CUDA devices.

Worker processes die with their parent: on Linux the kernel kills them (``PR_SET_PDEATHSIG``), and on
every platform a watchdog thread exits a worker whose parent has gone. They log to the run's log file.

:func:`map_shards` is the module-level form kept for callers written before the executor interface
(``map_shards(fn, pool, name, config, workers)``); stages are handed an executor instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any

from mixlab.executors.base import (
    DEFAULT_RESOURCES,
    Executor,
    Outcome,
    Resources,
    ShardFn,
    config_fingerprint,
)
from mixlab.pool.pool import Pool

__all__ = [
    "LocalExecutor",
    "ShardFn",
    "config_fingerprint",
    "die_with_parent",
    "init_worker",
    "map_shards",
]

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


def init_worker(parent: int, gpu_queue: Any = None) -> None:
    """Process-pool initializer of mixlab's workers: die with ``parent``, log to the run's log file, and
    (with a queue of GPU ids) take one GPU before torch initialises CUDA in this process."""
    from mixlab.console import worker_setup

    die_with_parent(parent)
    worker_setup()
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_queue.get())


class LocalExecutor(Executor):
    """Calls in this process (``workers <= 1``) or in a spawn process pool of ``workers`` processes."""

    name = "local"

    def __init__(self, workers: int = 1, retries: int = 1, gpus: Sequence[int] | None = None) -> None:
        super().__init__(workers, retries)
        self.gpus = list(gpus) if gpus else None

    def total_gpus(self) -> float:
        return float(len(self.gpus or []))

    def _imap(
        self, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], resources: Resources
    ) -> Iterator[tuple[int, Outcome]]:
        if self.workers <= 1 or len(calls) <= 1:
            for i, args in enumerate(calls):
                try:
                    outcome = fn(*args)
                except Exception as exc:  # noqa: BLE001 - handed back; the caller retries or records it
                    outcome = exc
                yield i, outcome
            return
        ctx = mp.get_context("spawn")
        gpu_queue = None
        if self.gpus:
            gpu_queue = ctx.Queue()
            for i in range(self.workers):
                gpu_queue.put(self.gpus[i % len(self.gpus)])
        with ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=ctx,
            initializer=init_worker,
            initargs=(os.getpid(), gpu_queue),
        ) as ex:
            futures: dict[Future[Any], int] = {ex.submit(fn, *args): i for i, args in enumerate(calls)}
            for fut in as_completed(futures):
                try:
                    outcome = fut.result()
                except Exception as exc:  # noqa: BLE001 - a worker died (BrokenProcessPool), unpicklable call
                    outcome = exc
                yield futures[fut], outcome


def map_shards(
    fn: ShardFn,
    pool: Pool,
    name: str,
    config: Any,
    workers: int = 1,
    force: bool = False,
    desc: str | None = None,
    fp: str | None = None,
    resources: Resources = DEFAULT_RESOURCES,
) -> list[str]:
    """:meth:`Executor.map_shards` on a :class:`LocalExecutor` of ``workers`` processes."""
    return LocalExecutor(workers).map_shards(
        fn, pool, name, config, resources=resources, force=force, desc=desc, fp=fp
    )
