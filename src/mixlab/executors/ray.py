"""Ray executor: every call is a Ray task with the resources its stage declared.

``address`` joins a running cluster (``"auto"``, ``"ray://head:10001"``, ``"head:6379"``); without one, a
Ray instance is started on this machine with ``workers`` CPUs (and stopped by :meth:`RayExecutor.close`
or at exit). When Ray is already initialised in this process (a test's cluster, a notebook), it is used
as it is.

Tasks run with ``max_retries=0``: the executor's own retry policy (:class:`~mixlab.executors.base.Executor`)
decides, the same on every back end. Shard tasks write their attribute tables themselves, so the pool must
be on storage every node reads and writes at the same path (docs/SCALING.md). Workers get the driver's
``MIXLAB_*`` environment (progress mode, log file) with each task, so they log to the run's log file.
Ray is imported only when an executor first runs something: ``pip install mixlab[ray]``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from mixlab.executors.base import Executor, Outcome, Resources

log = logging.getLogger(__name__)

_REMOTE: Any = None
_WORKER_ENV: dict[str, str] | None = None


def _call(env: dict[str, str], fn: Callable[..., Any], *args: Any) -> Any:
    """Inside a Ray worker: take the driver's ``MIXLAB_*`` environment, then run ``fn(*args)``."""
    global _WORKER_ENV
    if env != _WORKER_ENV:
        from mixlab.console import worker_setup

        os.environ.update(env)
        worker_setup()
        _WORKER_ENV = dict(env)
    return fn(*args)


#: Ray starts its workers at niceness 15 unless told otherwise. On a machine where anything else runs (the
#: driver, another test process, a data stage), such workers starve: importing torch in one took 240 s
#: against 37 s at niceness 0 on this project's 2-core machine. A Ray instance mixlab starts runs its
#: workers at normal priority; a cluster mixlab joins keeps its own setting.
WORKER_NICENESS = "0"


def start_local_ray(ray: Any, num_cpus: int) -> None:
    """``ray.init`` of a local instance with ``num_cpus`` CPUs and workers at normal priority."""
    os.environ.setdefault("RAY_worker_niceness", WORKER_NICENESS)
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


def _remote() -> Any:
    global _REMOTE
    if _REMOTE is None:
        import ray

        _REMOTE = ray.remote(_call)
    return _REMOTE


def _unwrap(exc: BaseException) -> BaseException:
    """The stage's own exception inside a ``RayTaskError`` (other Ray errors, e.g. a dead worker, as is)."""
    from ray.exceptions import RayTaskError

    if isinstance(exc, RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            return cause
    return exc


class RayExecutor(Executor):
    """Ray tasks on a cluster (``address``) or on a Ray instance started here with ``workers`` CPUs."""

    name = "ray"

    def __init__(self, workers: int = 1, retries: int = 1, address: str | None = None) -> None:
        super().__init__(workers, retries)
        self.address = address
        self._started = False

    def __repr__(self) -> str:
        return f"RayExecutor(workers={self.workers}, retries={self.retries}, address={self.address!r})"

    def _ensure(self) -> Any:
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise RuntimeError("the ray executor needs Ray: pip install 'mixlab[ray]'") from exc
        if not ray.is_initialized():
            if self.address:
                log.info("joining the Ray cluster at %s", self.address)
                ray.init(address=self.address, log_to_driver=False)
            else:
                log.info("starting a local Ray instance with %d CPU(s)", self.workers)
                start_local_ray(ray, self.workers)
                self._started = True
        return ray

    def total_gpus(self) -> float:
        return float(self._ensure().cluster_resources().get("GPU", 0.0))

    @staticmethod
    def _feasible(ray: Any, resources: Resources) -> Resources:
        """``resources`` fitted to the largest node: more CPUs than any node has would wait forever, so
        they are cut to that node's (with a warning); a GPU request no node can meet is an error."""
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        if not nodes:
            return resources
        cpus = max(float(n.get("CPU", 0.0)) for n in nodes)
        gpus = max(float(n.get("GPU", 0.0)) for n in nodes)
        if resources.gpus > gpus:
            raise RuntimeError(
                f"a task needs {resources.gpus:g} GPU(s) but the largest Ray node has {gpus:g}"
            )
        if resources.cpus > cpus:
            log.warning(
                "a task asks for %g CPUs but the largest Ray node has %g; asking for %g",
                resources.cpus,
                cpus,
                cpus,
            )
            return Resources(cpus=cpus, gpus=resources.gpus, memory_gb=resources.memory_gb)
        return resources

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def _imap(
        self, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], resources: Resources
    ) -> Iterator[tuple[int, Outcome]]:
        ray = self._ensure()
        resources = self._feasible(ray, resources)
        options: dict[str, Any] = {
            "num_cpus": resources.cpus,
            "num_gpus": resources.gpus,
            "max_retries": 0,
        }
        if resources.memory_gb is not None:
            options["memory"] = int(resources.memory_gb * 1024**3)
        task = _remote().options(**options)
        env = {k: v for k, v in os.environ.items() if k.startswith("MIXLAB_")}
        fn_ref = ray.put(fn)
        index = {task.remote(env, fn_ref, *args): i for i, args in enumerate(calls)}
        pending = list(index)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    try:
                        outcome = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - handed back; the caller retries or records it
                        outcome = _unwrap(exc)
                    yield index[ref], outcome
        finally:
            for ref in pending:  # the caller stopped early (an error, an interrupt): cancel the rest
                ray.cancel(ref, force=True)
