"""Evaluation results on disk and as one flat metrics row of the swarm's ``metrics.csv``.

Files written by ``mixlab eval``: ``DIR/<task>.jsonl`` (one record per document, every metric of
:data:`mixlab.evaluation.metrics.DOC_METRICS`) and ``DIR/metrics.json`` (``{task: {acc, acc_stderr, acc_norm,
..., gold_bpb, correct_prob, margin, <metric>_stderr, n}}``). ``mixlab domain-loss`` writes
``{domain: {loss, bpb, n_tokens, n_bytes, n_docs}}``. NaN (e.g. the stderr of a single document) is stored
as JSON ``null`` and read back as NaN.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mixlab.evaluation.metrics import DOC_METRICS
from mixlab.evaluation.multiple_choice import TaskResult

__all__ = [
    "TASK_METRICS",
    "metrics_row",
    "read_json_metrics",
    "write_domain_losses",
    "write_task_results",
]

#: Task metrics that go into metrics.csv, in column order: every registered metric, then their stderrs.
TASK_METRICS = (*DOC_METRICS, *(f"{m}_stderr" for m in DOC_METRICS))


def metrics_row(
    task_results: dict[str, TaskResult], losses: dict[str, dict[str, float]] | None = None
) -> dict[str, float]:
    """Flat row: ``<task>/<metric>`` for each registered metric (acc, acc_norm, acc_bytes, gold_bpb,
    correct_prob, margin), then ``<task>/<metric>_stderr``, then ``loss/<domain>`` and ``bpb/<domain>``. Task keys are the dict keys of ``task_results``."""
    row: dict[str, float] = {}
    for name, result in task_results.items():
        for metric in TASK_METRICS:
            row[f"{name}/{metric}"] = float(result.metrics.get(metric, math.nan))
    for domain, values in (losses or {}).items():
        row[f"loss/{domain}"] = float(values.get("loss", math.nan))
    for domain, values in (losses or {}).items():
        row[f"bpb/{domain}"] = float(values.get("bpb", math.nan))
    return row


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _write_text(path: Path, text: str) -> None:
    """Write through a temporary file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_task_results(task_results: dict[str, TaskResult], out_dir: str | Path) -> Path:
    """Write ``out_dir/<task>.jsonl`` per task and ``out_dir/metrics.json``; return the metrics path."""
    out = Path(out_dir)
    for name, result in task_results.items():
        lines = (json.dumps(_json_safe(rec), ensure_ascii=False, allow_nan=False) for rec in result.per_doc)
        _write_text(out / f"{name}.jsonl", "".join(f"{line}\n" for line in lines))
    metrics = {name: dict(result.metrics) for name, result in task_results.items()}
    for values in metrics.values():
        values["n"] = int(values.get("n", 0))
    path = out / "metrics.json"
    _write_text(path, json.dumps(_json_safe(metrics), indent=2, allow_nan=False) + "\n")
    return path


def write_domain_losses(losses: dict[str, dict[str, float]], path: str | Path) -> Path:
    """Write the per-domain losses as JSON (NaN as null)."""
    out = Path(path)
    _write_text(out, json.dumps(_json_safe(losses), indent=2, allow_nan=False) + "\n")
    return out


def read_json_metrics(path: str | Path) -> dict[str, dict[str, float]]:
    """Read ``metrics.json`` or a domain-loss JSON back (``null`` -> NaN); errors name the file."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{p}: expected {{name: {{metric: value}}}}")
    return {
        name: {k: (math.nan if v is None else float(v)) for k, v in values.items()}
        for name, values in data.items()
    }
