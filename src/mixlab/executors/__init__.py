"""Executors: how shard stages and swarm runs are run (one machine's process pool, or Ray).

Stages are handed an :class:`Executor` and never import a back end; they call
``executor.map_shards(fn, pool, name, config, resources=...)`` and ``executor.map_runs(fn, jobs, ...)``.
``make_executor("local" | "ray", workers, ray_address)`` builds one by name (pipeline file ``executor:``,
``--executor`` on the stage commands).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mixlab.executors.base import (
    DEFAULT_RESOURCES,
    Executor,
    Resources,
    ShardFn,
    ShardOutput,
    config_fingerprint,
    read_stats,
    stats_path,
)
from mixlab.executors.local import LocalExecutor
from mixlab.executors.ray import RayExecutor

__all__ = [
    "DEFAULT_RESOURCES",
    "EXECUTORS",
    "Executor",
    "LocalExecutor",
    "RayExecutor",
    "Resources",
    "ShardFn",
    "ShardOutput",
    "add_executor_arguments",
    "config_fingerprint",
    "executor_from_args",
    "make_executor",
    "read_stats",
    "resolve_executor",
    "stats_path",
]

EXECUTORS: dict[str, type[Executor]] = {"local": LocalExecutor, "ray": RayExecutor}


def make_executor(
    name: str = "local", workers: int = 1, ray_address: str | None = None, retries: int = 1
) -> Executor:
    """The executor called ``name`` with ``workers`` (local processes, or CPUs of a Ray started here)."""
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r} (known: {', '.join(EXECUTORS)})")
    if name == "ray":
        return RayExecutor(workers, retries=retries, address=ray_address)
    if ray_address:
        raise ValueError("ray_address is given but the executor is 'local'; use executor 'ray'")
    return LocalExecutor(workers, retries=retries)


def resolve_executor(
    executor: Executor | None, workers: int = 1, gpus: Sequence[int] | None = None
) -> Executor:
    """``executor`` itself, or (None) the default: a :class:`LocalExecutor` of ``workers`` processes."""
    return executor if executor is not None else LocalExecutor(workers, gpus=gpus)


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """``--executor local|ray`` and ``--ray-address`` (stage commands; ``--workers`` is their own)."""
    parser.add_argument(
        "--executor",
        choices=sorted(EXECUTORS),
        default="local",
        help="where shards run: local processes, or Ray tasks (default: local)",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        help="Ray cluster to join (e.g. auto, ray://head:10001); default: start Ray here with --workers CPUs",
    )


def executor_from_args(args: argparse.Namespace) -> Executor:
    """The executor a stage command's ``--executor``, ``--ray-address`` and ``--workers`` describe."""
    return make_executor(
        getattr(args, "executor", "local"), getattr(args, "workers", 1), getattr(args, "ray_address", None)
    )
