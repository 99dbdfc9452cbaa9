"""Run a swarm: train (and evaluate) one proxy per mixture of a ratios table, recording ``metrics.csv``.

For each run id of ``ratios`` that is not finished yet: build its data (``make_data``), train a proxy into
``out_dir/runs/<run>``, evaluate it, and upsert its metrics row with ``status`` ``ok``. A run that raises
(a crash, a :class:`~mixlab.proxies.trainer.DivergenceError`) gets ``status`` ``failed`` with the error
message and the swarm goes on. A run is finished when ``metrics.csv`` says ``ok`` *and* its folder holds
the ``DONE`` marker, so a rerun after an interruption only does the rest.

Selection and evaluation are later/parallel stages: they come in as callables and are never imported here.
Runs go through an executor (:meth:`mixlab.executors.Executor.map_runs`): by default the local one, which
with ``workers > 1`` uses a spawn process pool; with Ray each run is a task with the declared resources
(GPUs whole or fractional). The callables must therefore be picklable (module-level functions or
``functools.partial`` of them); only the parent process writes ``metrics.csv``.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mixlab.console import tqdm
from mixlab.executors import Executor, Resources, resolve_executor
from mixlab.paths import safe_name
from mixlab.pool.pool import atomic_write_text
from mixlab.proxies.config import ProxyConfig
from mixlab.swarm import read_metrics, upsert_metrics

log = logging.getLogger(__name__)

DONE_MARKER = "DONE"
ERROR_LOG = "error.log"
MAX_ERROR_CHARS = 500

MakeData = Callable[[str, dict[str, float]], Path]
TrainFn = Callable[[str, Path, Path], Any]
EvaluateFn = Callable[[str, Path], Mapping[str, float]]


def train_with_config(
    cfg: ProxyConfig, tokenizer_spec: str, init_model: str | None, run: str, data: Path, run_dir: Path
) -> Any:
    """The default swarm train step: :func:`mixlab.proxies.trainer.train_proxy` with a fixed config."""
    from mixlab.proxies.trainer import train_proxy

    return train_proxy(cfg, data, tokenizer_spec, run_dir, init_model=init_model)


def make_train_fn(cfg: ProxyConfig, tokenizer_spec: str, init_model: str | None = None) -> TrainFn:
    """A picklable ``train(run, data, run_dir)`` callable training every run with ``cfg``."""
    return functools.partial(train_with_config, cfg, str(tokenizer_spec), init_model)


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\r", " ").replace("\n", " ")
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def _train_metrics(result: Any) -> dict[str, float]:
    """Metrics recorded when no evaluate callable is given: the training loss and throughput."""
    out: dict[str, float] = {}
    for key, attr in (
        ("train/final_loss", "final_loss"),
        ("train/tokens", "tokens"),
        ("train/seconds", "seconds"),
    ):
        value = getattr(result, attr, None)
        if isinstance(value, (int, float)):
            out[key] = float(value)
    return out


def run_one(
    run: str,
    weights: dict[str, float],
    make_data: MakeData,
    train: TrainFn,
    evaluate: EvaluateFn | None,
    run_dir: Path,
) -> dict[str, Any]:
    """Make data, train and evaluate one run; never raises (errors come back as ``status: failed``).

    Returns ``{"run", "status", "error", "metrics"}``; a failure's traceback goes to ``run_dir/error.log``.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / DONE_MARKER).unlink(missing_ok=True)
    (run_dir / ERROR_LOG).unlink(missing_ok=True)
    try:
        data = make_data(run, weights)
        result = train(run, Path(data), run_dir)
        metrics = dict(evaluate(run, run_dir)) if evaluate is not None else _train_metrics(result)
        return {"run": run, "status": "ok", "error": "", "metrics": metrics}
    except Exception as exc:  # noqa: BLE001 - any failure of one run is recorded, the swarm goes on
        atomic_write_text(run_dir / ERROR_LOG, traceback.format_exc())
        return {"run": run, "status": "failed", "error": _one_line(exc), "metrics": {}}


def _order_rows(metrics_csv: Path, runs: Sequence[str]) -> None:
    """Put the rows of ``runs`` in ``metrics_csv`` in ratios order (other rows after them, as they were).

    Rows are written as runs finish, so their order would depend on the executor and on timing; after the
    swarm the table is the same bytes whichever executor ran it. Cells are copied as text, untouched.
    """
    if not metrics_csv.exists():
        return
    raw = pd.read_csv(metrics_csv, dtype=str, keep_default_na=False)
    ids = raw[raw.columns[0]].tolist()
    rank = {r: i for i, r in enumerate(runs)}
    order = sorted(range(len(ids)), key=lambda i: (rank.get(ids[i], len(rank)), i))
    if order != list(range(len(ids))):
        buf = io.StringIO()
        raw.iloc[order].to_csv(buf, index=False)
        atomic_write_text(metrics_csv, buf.getvalue())


def finished_runs(metrics_csv: Path, out_dir: Path) -> set[str]:
    """Runs with status ``ok`` in ``metrics_csv`` and a ``DONE`` marker in ``out_dir/runs/<run>``."""
    metrics_csv = Path(metrics_csv)
    if not metrics_csv.exists():
        return set()
    df = read_metrics(metrics_csv)
    if "status" not in df.columns:
        return set()
    ok = df.index[df["status"].astype(str) == "ok"]
    return {str(r) for r in ok if (Path(out_dir) / "runs" / str(r) / DONE_MARKER).exists()}


def run_swarm(
    ratios: pd.DataFrame,
    make_data: MakeData,
    train: TrainFn | ProxyConfig,
    evaluate: EvaluateFn | None,
    out_dir: Path,
    metrics_csv: Path,
    workers: int = 1,
    tokenizer_spec: str | None = None,
    init_model: str | None = None,
    gpus: Sequence[int] | None = None,
    force: bool = False,
    executor: Executor | None = None,
    resources: Resources | None = None,
) -> pd.DataFrame:
    """Train and evaluate every unfinished run of ``ratios`` (index = run id, columns = domain weights).

    ``train`` is a callable ``train(run, data, run_dir) -> TrainResult`` or a :class:`ProxyConfig`, in which
    case :func:`train_proxy` runs with it (``tokenizer_spec`` then required; with several workers and no
    ``num_threads`` in the config, the CPU threads are split between workers). ``evaluate(run, model_dir)``
    returns the metrics row; when None the training loss is recorded (``train/final_loss`` ...).
    ``gpus`` pins each pool worker to one of these CUDA devices. ``force`` retrains finished runs.
    ``executor`` runs the runs (default: a local pool of ``workers`` processes, pinned to ``gpus``; then
    ``workers`` and ``gpus`` are the executor's own); ``resources`` is what one run needs (default: the
    config's ``num_threads`` CPUs, or one, and no GPU; e.g. ``Resources(cpus=4, gpus=0.25)`` puts four
    tiny proxies on one GPU under Ray). Returns the metrics table (``read_metrics(metrics_csv)``).
    """
    out_dir = Path(out_dir)
    metrics_csv = Path(metrics_csv)
    executor = resolve_executor(executor, workers, gpus)
    workers = executor.workers
    if isinstance(train, ProxyConfig):
        if tokenizer_spec is None:
            raise ValueError("run_swarm with a ProxyConfig needs tokenizer_spec")
        cfg = train
        if workers > 1 and cfg.num_threads is None:
            cfg = cfg.model_copy(update={"num_threads": max(1, (os.cpu_count() or 1) // workers)})
        if resources is None:
            resources = Resources(cpus=float(cfg.num_threads or 1))
        train = make_train_fn(cfg, tokenizer_spec, init_model)
    runs = [safe_name(str(r), "run id") for r in ratios.index]  # each becomes out_dir/runs/<run>
    if len(set(runs)) != len(runs):
        raise ValueError("ratios has duplicate run ids")
    done = set() if force else finished_runs(metrics_csv, out_dir)
    todo = [r for r in runs if r not in done]
    if done:
        log.info("swarm: %d of %d runs already finished, skipped", len(runs) - len(todo), len(runs))
    weights_of = {str(idx): {str(k): float(v) for k, v in row.items()} for idx, row in ratios.iterrows()}
    jobs = [(run, weights_of[run], out_dir / "runs" / run) for run in todo]
    counts = {"ok": 0, "failed": 0}
    bar = tqdm(total=len(jobs), desc="swarm", unit="run", disable=not jobs, top=True)

    def record(outcome: dict[str, Any]) -> None:
        run = outcome["run"]
        upsert_metrics(
            metrics_csv, run, {**outcome["metrics"], "status": outcome["status"], "error": outcome["error"]}
        )
        if outcome["status"] == "ok":
            atomic_write_text(
                out_dir / "runs" / run / DONE_MARKER, json.dumps(outcome["metrics"], default=float)
            )
        else:
            log.warning("swarm run %s failed: %s", run, outcome["error"])
        counts[outcome["status"]] += 1
        bar.set_postfix(counts, refresh=False)
        bar.update()

    calls = [(run, (run, weights, make_data, train, evaluate, run_dir)) for run, weights, run_dir in jobs]
    for run, outcome in executor.map_runs(run_one, calls, resources or Resources()):
        if isinstance(outcome, BaseException):  # the worker died, or a callable did not pickle
            outcome = {"run": run, "status": "failed", "error": _one_line(outcome), "metrics": {}}
        record(outcome)
    bar.close()
    _order_rows(metrics_csv, runs)
    if not metrics_csv.exists():
        return pd.DataFrame(index=pd.Index([], name="run"))
    return read_metrics(metrics_csv)
