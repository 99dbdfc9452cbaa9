"""The final run: train, merge, and score before and after, each step resumable.

Layout under ``OUT/final``::

    dataset/        the final dataset (built by the pipeline; data files + manifest.json)
    model/          the base model with the DoRA adapter merged in (a Hugging Face folder; adapter/ inside)
    eval/before/    per-item scores of the base model;  eval/after/: of the merged model
    final.json      recipe, training summary, before / after per task and metric, S = after - before
    skipped.json    why the final run was skipped (no dataset, no base model), when it was
    error.log       the traceback of a failed final run

Each step (``train``, ``before``, ``after``) leaves ``.<step>.json`` with the fingerprint of its inputs: the
recipe, the dataset's manifest, the base model, the evaluation settings, and for ``after`` the fingerprint of
``train``. A rerun skips a step whose fingerprint still matches and redoes it (and what depends on it)
otherwise. The model is trained in a private sibling folder and swapped into place when finished, so a killed
run never leaves a half-written model under ``model/``. ``.final.lock`` is held while the final run works.

The trainer is :func:`mixlab.proxies.trainer.train_proxy` (the proxies' own, with ``merge``); the scorer is
:func:`mixlab.evaluation.runner.evaluate_run`, the one every proxy is scored with.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixlab.executors import Executor, Resources, resolve_executor
from mixlab.final.config import FinalConfig
from mixlab.paths import clean_stale, file_lock, new_temp_dir, replace_dir
from mixlab.pool.pool import atomic_write_text, fingerprint

log = logging.getLogger("mixlab.final")

FINAL_DIR = "final"
FINAL_JSON = "final.json"
SKIPPED_JSON = "skipped.json"
ERROR_LOG = "error.log"
LOCK = ".final.lock"
STEPS = ("train", "before", "after")


@dataclass(frozen=True)
class FinalPaths:
    """Where the final run's files are."""

    root: Path

    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def summary(self) -> Path:
        return self.root / FINAL_JSON

    @property
    def skipped(self) -> Path:
        return self.root / SKIPPED_JSON

    @property
    def error(self) -> Path:
        return self.root / ERROR_LOG

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    def stamp(self, step: str) -> Path:
        return self.root / f".{step}.json"

    def eval_dir(self, step: str) -> Path:
        return self.root / "eval" / step


def final_paths(workdir: str | Path) -> FinalPaths:
    """The final run's folder of a pipeline run directory."""
    return FinalPaths(Path(workdir) / FINAL_DIR)


def read_final(workdir: str | Path) -> dict[str, Any] | None:
    """``final.json`` of a run directory, or None."""
    path = final_paths(workdir).summary
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def skip_final(workdir: str | Path, reason: str) -> None:
    """Record that the final run was skipped, and why (``final/skipped.json``), and say so in the log."""
    paths = final_paths(workdir)
    log.warning("final run skipped: %s", reason)
    atomic_write_text(paths.skipped, json.dumps({"reason": reason}, indent=2) + "\n")


def _digest_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _step(
    paths: FinalPaths, step: str, key: str, ready: bool, make: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """Reuse ``step``'s recorded result when its key matches (and its output is ``ready``), else make it."""
    stamp = paths.stamp(step)
    if ready and stamp.exists():
        record = json.loads(stamp.read_text(encoding="utf-8"))
        if record.get("key") == key:
            log.info("final run: %s already done, reused", step)
            result: dict[str, Any] = record["result"]
            return result
    stamp.unlink(missing_ok=True)
    t0 = time.perf_counter()
    result = make()
    result["seconds"] = round(time.perf_counter() - t0, 2)
    atomic_write_text(stamp, json.dumps({"key": key, "result": result}, indent=2) + "\n")
    return result


def _train(recipe: Any, dataset: Path, tokenizer: str, model_dir: Path) -> dict[str, Any]:
    from mixlab.proxies.trainer import train_proxy

    clean_stale(model_dir)
    tmp = new_temp_dir(model_dir)
    try:
        result = train_proxy(recipe, dataset, tokenizer, tmp)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, model_dir)
    return {
        "steps": result.steps,
        "tokens": result.tokens,
        "train_seconds": round(result.seconds, 2),
        "final_loss": result.final_loss,
    }


def _launch(
    executor: Executor | None, recipe: Any, dataset: Path, tokenizer: str, model_dir: Path
) -> dict[str, Any]:
    """:func:`_train` as one call through ``executor`` (a Ray task on a cluster), its exception re-raised."""
    executor = resolve_executor(executor)
    on_gpu = recipe.device == "cuda" or (recipe.device == "auto" and executor.total_gpus() > 0)
    resources = Resources(cpus=float(recipe.num_threads or 1), gpus=1.0 if on_gpu else 0.0)
    for _, outcome in executor.map_runs(
        _train, [("final", (recipe, dataset, tokenizer, model_dir))], resources
    ):
        if isinstance(outcome, BaseException):
            raise outcome
        result: dict[str, Any] = outcome
        return result
    raise RuntimeError("the executor returned no outcome for the final run")  # pragma: no cover


def _evaluate(model: str | Path, eval_config: Any, out: Path) -> dict[str, Any]:
    from mixlab.evaluation.runner import evaluate_run

    return {"row": evaluate_run(model, eval_config, out_dir=out)}


def challenge_scores(before: dict[str, float], after: dict[str, float], tasks: list[str]) -> dict[str, Any]:
    """Per task and metric the before / after values, and ``S = after - before`` per task and summed.

    ``before`` and ``after`` are metrics rows (``<task>/<metric>``); a metric counts when every task has it
    before and after (standard errors are left out).
    """
    metrics = sorted(
        {
            key.split("/", 1)[1]
            for key in before
            if "/" in key and key.split("/", 1)[0] in tasks and not key.endswith("_stderr")
        }
    )
    metrics = [m for m in metrics if all(f"{t}/{m}" in before and f"{t}/{m}" in after for t in tasks)]
    table = {
        side: {t: {m: float(row[f"{t}/{m}"]) for m in metrics} for t in tasks}
        for side, row in (("before", before), ("after", after))
    }
    score: dict[str, dict[str, float]] = {}
    for m in metrics:
        per_task = {t: table["after"][t][m] - table["before"][t][m] for t in tasks}
        score[m] = {**per_task, "total": sum(per_task.values())}
    for side in ("before", "after"):
        table[side]["total"] = {m: sum(table[side][t][m] for t in tasks) for m in metrics}
    return {"metrics": metrics, "before": table["before"], "after": table["after"], "S": score}


def run_final(
    config: FinalConfig,
    base_model: str,
    tokenizer: str,
    eval_config: Any,
    workdir: str | Path,
    seed: int = 0,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Train the base model on ``OUT/final/dataset`` with ``config``'s recipe, merge, score before and
    after; write and return ``final.json``. Finished steps whose inputs did not change are reused.

    The training is launched as the swarm's proxies are: one call through ``executor`` (default: in this
    process) asking for the recipe's threads as CPUs and, on CUDA, one GPU.
    """
    paths = final_paths(workdir)
    manifest = paths.dataset / "manifest.json"
    if not manifest.exists():
        raise FileNotFoundError(f"{paths.dataset}: no final dataset (manifest.json) to train on")
    recipe = config.proxy_config(base_model, seed)
    tasks = list(eval_config.tasks)
    with file_lock(paths.lock, "the final run"):
        paths.skipped.unlink(missing_ok=True)
        paths.error.unlink(missing_ok=True)
        try:
            train_key = fingerprint(
                {
                    "recipe": recipe.model_dump(mode="json"),
                    "dataset": _digest_file(manifest),
                    "tokenizer": str(tokenizer),
                }
            )
            log.info("final run: DoRA on %s over %s", base_model, paths.dataset)
            train = _step(
                paths,
                "train",
                train_key,
                (paths.model / "config.json").exists(),
                lambda: _launch(executor, recipe, paths.dataset, tokenizer, paths.model),
            )
            summary: dict[str, Any] = {
                "base_model": base_model,
                "dataset": str(paths.dataset),
                "model": str(paths.model),
                "recipe": recipe.model_dump(mode="json"),
                "train": train,
                "tasks": tasks,
            }
            if config.evaluate:
                ev = eval_config.model_dump(mode="json")
                before = _step(
                    paths,
                    "before",
                    fingerprint({"model": base_model, "eval": ev}),
                    paths.eval_dir("before").is_dir(),
                    lambda: _evaluate(base_model, eval_config, paths.eval_dir("before")),
                )
                after = _step(
                    paths,
                    "after",
                    fingerprint({"model": train_key, "eval": ev}),
                    paths.eval_dir("after").is_dir(),
                    lambda: _evaluate(paths.model, eval_config, paths.eval_dir("after")),
                )
                summary.update(challenge_scores(before["row"], after["row"], tasks))
                summary["seconds"] = {
                    "train": train["seconds"],
                    "before": before["seconds"],
                    "after": after["seconds"],
                }
                if "acc" in summary["S"]:
                    log.info(
                        "final run: S(acc) = after - before = %+.4f over %d tasks",
                        summary["S"]["acc"]["total"],
                        len(tasks),
                    )
            else:
                summary["seconds"] = {"train": train["seconds"]}
            atomic_write_text(paths.summary, json.dumps(summary, indent=2) + "\n")
            return summary
        except Exception:
            atomic_write_text(paths.error, traceback.format_exc())
            raise
