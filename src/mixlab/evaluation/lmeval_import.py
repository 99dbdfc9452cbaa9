"""Import lm-evaluation-harness ``--log_samples`` output as mixlab evaluation results.

lm-eval writes one ``samples_<task>_<timestamp>.jsonl`` per task; each line is one document with
``doc_id``, ``target``, ``arguments`` (``{"gen_args_i": {"arg_0": context, "arg_1": continuation}}`` per
choice), ``filtered_resps`` (per choice ``[loglikelihood, is_greedy]``, stringified) and the metrics it
computed (``acc``, ``acc_norm``). This module turns those lines into the same :class:`TaskResult` that
``mixlab eval`` produces, so a swarm scored by the challenge's own validation code gets the same
``<task>.jsonl``, ``metrics.json`` and ``metrics.csv`` columns, continuous metrics included.

``acc`` and ``acc_norm`` are taken from lm-eval's own per-document values (so the means equal lm-eval's);
the continuous metrics are computed from the log-likelihoods. The choice texts that ``margin`` divides by
are the continuations without the task's target delimiter (the whitespace prefix they share).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mixlab.evaluation.multiple_choice import TaskResult, aggregate_metrics, doc_record
from mixlab.jsonl import iter_jsonl

__all__ = ["LMEvalImportError", "find_sample_files", "import_samples", "read_sample_file"]

#: ``samples_<task>_<timestamp>.jsonl``; lm-eval's timestamp is ``%Y-%m-%dT%H-%M-%S.%f``.
SAMPLE_FILE = re.compile(r"^samples_(?P<task>.+)_(?P<stamp>\d{4}-\d{2}-\d{2}T[\d.-]+)\.jsonl$")


class LMEvalImportError(ValueError):
    """An lm-eval samples file is missing, malformed or not a multiple-choice log-likelihood task."""


def find_sample_files(path: str | Path) -> dict[str, Path]:
    """Task name -> samples file. ``path`` is one file or a folder searched recursively.

    When a folder holds several runs of one task, the newest timestamp wins (lm-eval appends a new file
    per run).
    """
    p = Path(path)
    if not p.exists():
        raise LMEvalImportError(f"{p}: no such file or folder")
    files = [p] if p.is_file() else sorted(p.rglob("samples_*.jsonl"))
    found: dict[str, tuple[str, Path]] = {}
    for f in files:
        m = SAMPLE_FILE.match(f.name)
        if m is None:
            raise LMEvalImportError(
                f"{f}: not an lm-eval samples file (expected samples_<task>_<timestamp>.jsonl)"
            )
        task, stamp = m.group("task"), m.group("stamp")
        if task not in found or stamp > found[task][0]:
            found[task] = (stamp, f)
    if not found:
        raise LMEvalImportError(f"{p}: no samples_<task>_<timestamp>.jsonl files")
    return {task: f for task, (_, f) in sorted(found.items())}


def _delimiter(continuations: list[str]) -> str:
    """The whitespace prefix every continuation shares (lm-eval's target delimiter, usually one space)."""
    prefix = continuations[0]
    for c in continuations[1:]:
        n = 0
        while n < min(len(prefix), len(c)) and prefix[n] == c[n]:
            n += 1
        prefix = prefix[:n]
    stripped = prefix.lstrip()
    return prefix[: len(prefix) - len(stripped)]


def _gold(target: Any, choices: list[str], where: str) -> int:
    text = str(target)
    if re.fullmatch(r"-?\d+", text.strip()):
        gold = int(text.strip())
        if not 0 <= gold < len(choices):
            raise LMEvalImportError(f"{where}: target {gold} out of range for {len(choices)} choices")
        return gold
    if text in choices:
        return choices.index(text)
    raise LMEvalImportError(f"{where}: target {text[:60]!r} is neither a choice index nor a choice")


def _record(sample: dict[str, Any], where: str) -> dict[str, Any]:
    try:
        args = sample["arguments"]
        resps = sample["filtered_resps"]
        doc_id = int(sample["doc_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise LMEvalImportError(f"{where}: missing or bad field {exc}") from None
    if isinstance(args, dict):  # the file's form: {"gen_args_0": {"arg_0": ctx, "arg_1": cont}, ...}
        keys = sorted(args, key=lambda k: int(k.rsplit("_", 1)[-1]))
        pairs = [(args[k]["arg_0"], args[k]["arg_1"]) for k in keys]
    else:  # the in-memory form of simple_evaluate(log_samples=True): [(ctx, cont), ...]
        pairs = [(a[0], a[1]) for a in args]
    if not pairs or len(pairs) != len(resps):
        raise LMEvalImportError(
            f"{where}: {len(pairs)} requests but {len(resps)} responses; only multiple-choice "
            "log-likelihood tasks can be imported"
        )
    try:
        lls = [float(r[0]) if isinstance(r, list | tuple) else float(r) for r in resps]
    except (TypeError, ValueError) as exc:
        raise LMEvalImportError(f"{where}: responses are not log-likelihoods ({exc})") from None
    continuations = [str(c) for _, c in pairs]
    delim = _delimiter(continuations)
    choices = [c[len(delim) :] for c in continuations]
    gold = _gold(sample.get("target"), choices, where)
    rec = doc_record(doc_id, lls, choices, gold, continuations)
    for key in ("acc", "acc_norm"):  # lm-eval's own per-document values are authoritative
        if key in sample:
            rec[key] = float(sample[key])
    return rec


def read_sample_file(path: str | Path) -> list[dict[str, Any]]:
    """Per-document mixlab records of one samples file, sorted by ``doc_id``; errors name file and line."""
    p = Path(path)
    records = [_record(sample, f"{p}:{lineno}") for lineno, sample in iter_jsonl(p, error=LMEvalImportError)]
    if not records:
        raise LMEvalImportError(f"{p}: no samples")
    records.sort(key=lambda r: r["doc_index"])
    return records


def import_samples(path: str | Path, rename: dict[str, str] | None = None) -> dict[str, TaskResult]:
    """Every task found at ``path`` as a :class:`TaskResult` (keyed by task name, or ``rename[task]``)."""
    out: dict[str, TaskResult] = {}
    for task, f in find_sample_files(path).items():
        name = (rename or {}).get(task, task)
        per_doc = read_sample_file(f)
        out[name] = TaskResult(name=name, per_doc=per_doc, metrics=aggregate_metrics(per_doc))
    return out
