"""The task-affinity stage: fit the DSIR models once, score every shard, summarise per domain.

``affinity_pool`` fits :class:`~mixlab.affinity.model.DsirAffinityModel` on the task items and a
hash-sample of the pool (saved in ``attrs/affinity/model/`` with the key it was fitted for, reused while
the key holds), then maps :func:`affinity_shard` over the shards with the local executor: completion
markers carry the fingerprint of the config, the task files' contents and the pool, so a rerun skips
finished shards and a changed task file or setting recomputes them.

Attribute ``affinity``: ``affinity_<task>`` (float32 per task: log importance weight, per n-gram by
default), ``affinity`` (max or mean over the tasks of the calibrated scores: robust z-scores against the
pool sample, so tasks of different scales compare) and ``affinity_task`` (the task with the highest
calibrated score).
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mixlab.affinity.config import AffinityConfig
from mixlab.affinity.model import DsirAffinityModel
from mixlab.domains.anchored import task_item_texts
from mixlab.domains.methods import natural_key
from mixlab.executors import Executor, Resources, resolve_executor
from mixlab.pool.pool import Pool, PoolError, atomic_write_text, fingerprint

ATTR = "affinity"
MODEL_DIR = "model"
KEY_FILE = "key.json"
BACKGROUND_SALT = "mixlab-affinity"
#: Bumped when the scores change for the same config (part of every marker's fingerprint).
VERSION = 2


def affinity_columns(tasks: list[str]) -> list[str]:
    """The per-task columns of the attribute, in task order."""
    return [f"affinity_{t}" for t in tasks]


def _key(pool: Pool, config: AffinityConfig) -> dict[str, Any]:
    """What the fitted model and every shard's table depend on."""
    files: dict[str, str] = {}
    for name, spec in sorted(config.tasks.items()):
        path = Path(spec)
        files[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else spec
    return {
        "stage": "affinity",
        "version": VERSION,
        "config": config.model_dump(mode="json"),
        "task_sha256": files,
        "pool": {"ingest_key": pool.meta.get("ingest_key"), "n_docs": pool.meta.get("n_docs")},
    }


def fit_affinity(pool: Pool, config: AffinityConfig, force: bool = False) -> dict[str, Any]:
    """Fit (or reuse) the affinity model of ``pool`` for ``config``; return fit facts ({} when reused)."""
    from mixlab.domains.partition import sample_pool

    folder = pool.attr_dir(ATTR) / MODEL_DIR
    key = _key(pool, config)
    key_path = folder / KEY_FILE
    fitted = key_path.is_file() and (folder / "state.json").is_file()
    if not force and fitted and json.loads(key_path.read_text(encoding="utf-8")) == key:
        return {}
    items = {name: task_item_texts(name, spec) for name, spec in config.tasks.items()}
    _, background = sample_pool(pool, config.background, salt=BACKGROUND_SALT)
    model = DsirAffinityModel(
        config.n_features,
        config.ngram_max,
        config.max_chars,
        config.tokens,
        config.smoothing,
        config.pool_weight,
        config.drop_template,
        config.length_normalise,
        config.prior_ngrams,
        config.batch_docs,
    ).fit(items, background)
    key_path.unlink(missing_ok=True)  # a crash while saving leaves no key: the next run refits
    model.save(folder)
    atomic_write_text(key_path, json.dumps(key, sort_keys=True))
    return {
        "task_items": {n: len(v) for n, v in items.items()},
        "task_ngrams": dict(zip(model.tasks_, model.task_ngrams_, strict=True)),
        "background_docs": len(background),
        "template_buckets": len(model.template_),
    }


@cache
def _load_model(folder: str, stamp: int) -> DsirAffinityModel:
    return DsirAffinityModel.load(folder)


def affinity_shard(pool_root: str, shard: str, config: AffinityConfig) -> pa.Table:
    """Shard stage: ``affinity_<task>``, ``affinity`` and ``affinity_task`` of every document of ``shard``."""
    pool = Pool.open(pool_root)
    folder = pool.attr_dir(ATTR) / MODEL_DIR
    stamp = (folder / "state.json").stat().st_mtime_ns if (folder / "state.json").exists() else 0
    model = _load_model(str(folder), stamp)
    texts = pool.read_shard(shard, ["text"]).column("text").to_pylist()
    scores = model.score(texts)
    cols: dict[str, Any] = {
        c: pa.array(scores[:, j].astype(np.float32), pa.float32())
        for j, c in enumerate(affinity_columns(model.tasks_))
    }
    if len(texts):
        z = model.calibrate(scores)
        combined = z.max(axis=1) if config.combine == "max" else z.mean(axis=1)
        best = [model.tasks_[j] for j in np.argmax(z, axis=1)]
    else:
        combined, best = np.zeros(0), []
    cols["affinity"] = pa.array(combined.astype(np.float32), pa.float32())
    cols["affinity_task"] = pa.array(best, pa.string())
    return pa.table(cols)


def affinity_pool(
    pool: Pool,
    config: AffinityConfig,
    workers: int = 1,
    force: bool = False,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Write the ``affinity`` attribute of ``pool`` (fit once in the driver, then per shard through
    ``executor``, default a local one of ``workers`` processes); return a summary.

    The summary has ``docs``, ``tasks``, ``computed_shards``, ``fit`` (facts of the fit; empty when the
    saved model was reused) and ``per_task`` (pool mean and quartiles of each task's affinity).
    """
    if not config.tasks:
        raise ValueError("affinity: no tasks given (--tasks NAME=FILE,...)")
    pool.require_documents("score")
    key = _key(pool, config)
    with pool.lock(ATTR):
        fit = fit_affinity(pool, config, force=force)
        computed = resolve_executor(executor, workers).map_shards(
            affinity_shard,
            pool,
            ATTR,
            config,
            resources=Resources(cpus=1.0),
            force=force,
            desc="affinity",
            fp=fingerprint(key),
        )
        frame = pool.read_attr(ATTR)
        per_task = {}
        for task, col in zip(config.tasks, affinity_columns(list(config.tasks)), strict=True):
            q = np.quantile(frame[col].to_numpy(dtype=np.float64), [0.25, 0.5, 0.75])
            per_task[task] = {
                "mean": float(frame[col].mean()),
                "q25": float(q[0]),
                "median": float(q[1]),
                "q75": float(q[2]),
                "best_docs": int((frame["affinity_task"] == task).sum()),
            }
        summary = {
            "docs": len(frame),
            "tasks": list(config.tasks),
            "computed_shards": computed,
            "fit": fit,
            "per_task": per_task,
        }
        pool.write_attr_info(ATTR, {"stage": "affinity", "key": key, "summary": summary})
    return summary


# -- summaries ------------------------------------------------------------------------------------
def _groups(pool: Pool, by: str) -> pd.Series:
    """Group label of every document: its ``source``, or the ``domain``/``cluster`` column of attribute ``by``."""
    if by == "source":
        return pool.read_docs(["source"])["source"].astype(str)
    if by not in pool.attributes():
        raise PoolError(f"{pool.root}: no attribute {by!r} to group by (run its stage, or use by='source')")
    attr = pool.read_attr(by)
    for col in ("domain", "cluster"):
        if col in attr.columns:
            if col == "cluster":
                return attr[col].map(lambda c: f"cluster_{int(c):02d}")
            return attr[col].astype(str)
    raise PoolError(f"{pool.attr_dir(by)}: attribute has neither a 'domain' nor a 'cluster' column")


def affinity_by_domain(pool: Pool, by: str = "domains") -> pd.DataFrame:
    """Mean affinity of each group of documents to each task: one row per domain (or source, cluster).

    ``by``: ``domains`` (the ``domain`` label), ``source`` (the document's source: a ClimbLab pool keeps
    its cluster folder there), ``clusters`` (``mixlab cluster``) or any attribute with a ``domain`` or
    ``cluster`` column. Columns: ``docs``, ``tokens``, one per task (mean ``affinity_<task>`` over the
    group's documents, all documents counted, excluded or not), ``affinity`` (mean of the combined,
    calibrated column) and ``best_task`` (the task whose calibrated mean is highest: the mean minus the
    pool sample's median, over its robust scale). Rows in natural order of their names.
    """
    frame = pool.read_attr(ATTR)
    tasks = [
        c.removeprefix("affinity_")
        for c in frame.columns
        if c.startswith("affinity_") and c != "affinity_task"
    ]
    docs = pool.read_docs(["id", "n_tokens"])
    if not frame["id"].equals(docs["id"]):
        raise PoolError(f"{pool.root}: attribute {ATTR!r} is not aligned with the pool's documents")
    data = pd.DataFrame({"group": _groups(pool, by).to_numpy(), "n_tokens": docs["n_tokens"].to_numpy()})
    for t in tasks:
        data[t] = frame[f"affinity_{t}"].to_numpy(dtype=np.float64)
    data["affinity"] = frame["affinity"].to_numpy(dtype=np.float64)
    grouped = data.groupby("group", sort=False)
    table = grouped[[*tasks, "affinity"]].mean()
    table.insert(0, "tokens", grouped["n_tokens"].sum().astype(np.int64))
    table.insert(0, "docs", grouped.size().astype(np.int64))
    if tasks:
        model = DsirAffinityModel.load(pool.attr_dir(ATTR) / MODEL_DIR)
        z = model.calibrate(table[list(model.tasks_)].to_numpy())
        table["best_task"] = [model.tasks_[j] for j in np.argmax(z, axis=1)]
    else:
        table["best_task"] = ""
    table = table.loc[sorted(table.index, key=lambda g: natural_key(str(g)))]
    table.index.name = "source" if by == "source" else ("cluster" if by == "clusters" else "domain")
    return table


def cluster_task_table(pool: Pool, by: str = "source") -> pd.DataFrame:
    """The cluster-to-task affinity table of a ClimbLab pool (whose clusters are its sources) or of any
    clustering (``by='clusters'``, or ``domains`` after ``partition --method sources``): mean affinity of
    each cluster to each task, plus ``lift_<task>`` (the cluster's mean minus the pool's mean for the task,
    so a cluster that is unusually like one task stands out) and ``best_task``."""
    table = affinity_by_domain(pool, by)
    frame = pool.read_attr(ATTR)
    tasks = [c for c in table.columns if c not in ("docs", "tokens", "affinity", "best_task")]
    for t in tasks:
        table[f"lift_{t}"] = table[t] - float(frame[f"affinity_{t}"].mean())
    table.index.name = "cluster"
    return table


def format_table(table: pd.DataFrame, digits: int = 3) -> str:
    """A plain-text rendering of an affinity table (for the CLI)."""
    return table.to_string(float_format=lambda x: f"{x:.{digits}f}")
