"""One call for the pipeline: evaluate a trained proxy as the ``evaluation`` config says, get its metrics row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mixlab.evaluation.config import EvalConfig
from mixlab.evaluation.domain_loss import domain_losses, read_domain_texts
from mixlab.evaluation.multiple_choice import evaluate_task, load_model
from mixlab.evaluation.results import metrics_row, write_domain_losses, write_task_results
from mixlab.evaluation.tasks import Task, load_task

__all__ = ["evaluate_loaded", "evaluate_run", "read_validation_texts"]


def evaluate_run(
    model_path: str | Path,
    config: EvalConfig,
    out_dir: str | Path | None = None,
    tasks: dict[str, Task] | None = None,
) -> dict[str, float]:
    """Score the model at ``model_path`` on ``config.tasks`` and ``config.validation``.

    Returns the flat ``metrics.csv`` row (``<task>/acc`` ... ``bpb/<domain>``). With ``out_dir`` the files
    of ``mixlab eval`` (``<task>.jsonl``, ``metrics.json``) and ``domain_loss.json`` are written there.
    Pass already loaded ``tasks`` to avoid re-reading task files for every proxy of a swarm.
    """
    model, tokenizer = load_model(model_path, config.device)
    return evaluate_loaded(model, tokenizer, config, out_dir=out_dir, tasks=tasks)


def evaluate_loaded(
    model: Any,
    tokenizer: Any,
    config: EvalConfig,
    out_dir: str | Path | None = None,
    tasks: dict[str, Task] | None = None,
    texts: dict[str, list[str]] | None = None,
) -> dict[str, float]:
    """:func:`evaluate_run` for a model already in memory (e.g. a merged proxy); ``texts`` caches the
    validation documents per domain (read from ``config.validation`` when None)."""
    tasks = (
        tasks if tasks is not None else {name: load_task(name, spec) for name, spec in config.tasks.items()}
    )
    results = {
        name: evaluate_task(model, tokenizer, task, batch_size=config.batch_size, limit=config.limit)
        for name, task in tasks.items()
    }
    texts = texts if texts is not None else read_validation_texts(config)
    losses = (
        domain_losses(
            model, tokenizer, texts, block_size=config.block_size, batch_size=config.loss_batch_size
        )
        if texts
        else None
    )
    if out_dir is not None:
        write_task_results(results, out_dir)
        if losses is not None:
            write_domain_losses(losses, Path(out_dir) / "domain_loss.json")
    return metrics_row(results, losses)


def read_validation_texts(config: EvalConfig) -> dict[str, list[str]]:
    """The held-out documents of every domain of ``config.validation`` (at most ``max_docs_per_domain``)."""
    return {
        domain: read_domain_texts(path, max_docs=config.max_docs_per_domain)[0]
        for domain, path in config.validation.items()
    }
