"""The dedup and decontam stages over a pool: per-shard passes, a global clustering, attribute tables.

``dedup_pool`` runs in three steps (docs/ARCHITECTURE.md "whole-corpus fit"):

1. per shard (the executor's ``map_shards``, skips finished shards): the exact hash of the normalised text, the word
   count and the MinHash signature -> intermediate attribute ``dedup_signatures``;
2. globally: exact groups + verified MinHash LSH pairs among distinct texts -> union-find clusters ->
   one representative per cluster; the state is saved as ``attrs/dedup/clusters.npz``;
3. per shard: the ``dedup`` attribute (``dup_cluster``, ``dup_keep``, ``dup_kind``, ``dup_size``,
   ``dup_jaccard``).

``decontaminate_pool`` maps :class:`mixlab.dedup.decontam.TaskIndex` matching over the shards
(attribute ``decontam``). Both skip work already done with the same configuration; a run with another
configuration recomputes, replacing the attribute shard by shard (completion markers carry the config's
fingerprint, so a run killed half-way leaves the attribute incomplete, never mixed and marked complete).
Each holds the lock of its attribute, so a second run of the same stage waits for the first.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mixlab.console import tqdm
from mixlab.dedup.clusters import cluster_labels, exact_pairs, near_pairs, representatives
from mixlab.dedup.config import DecontamConfig, DedupConfig
from mixlab.dedup.decontam import TaskIndex, task_digest
from mixlab.dedup.exact import text_hash
from mixlab.dedup.minhash import permutations, signatures_from_word_hashes
from mixlab.dedup.normalize import WordHasher, words
from mixlab.executors import Executor, Resources, resolve_executor
from mixlab.pool.pool import Pool, atomic_write_bytes, fingerprint

log = logging.getLogger(__name__)

DEDUP_ATTR = "dedup"
SIGNATURE_ATTR = "dedup_signatures"
DECONTAM_ATTR = "decontam"
CLUSTERS_FILE = "clusters.npz"
#: What one shard of signatures or of task matching needs.
SHARD_RESOURCES = Resources(cpus=1)


# -- step 1: per-shard signatures ---------------------------------------------------------------------
def _signature_key(config: DedupConfig) -> dict[str, Any]:
    return {
        "normalisation": config.normalisation,
        "near": config.near,
        "num_perm": config.num_perm,
        "shingle_n": config.shingle_n,
        "seed": config.seed,
    }


def signature_shard(pool_root: str, shard: str, config: DedupConfig) -> pa.Table:
    """Shard stage: ``text_hash`` (SHA-1 of the normalised text), ``n_words`` and ``minhash`` (uint32 list)."""
    pool = Pool.open(pool_root)
    texts = pool.read_shard(shard, ["text"]).column("text").to_pylist()
    hashes = [text_hash(t, config.normalisation) for t in texts]
    hasher = WordHasher()
    a, b = permutations(config.num_perm, config.seed)
    n_words = np.zeros(len(texts), dtype=np.int32)
    parts = []
    for start in range(0, len(texts), config.batch_docs):
        batch = [hasher.hashes(words(t)) for t in texts[start : start + config.batch_docs]]
        n_words[start : start + len(batch)] = [w.shape[0] for w in batch]
        if config.near:
            parts.append(signatures_from_word_hashes(batch, a, b, config.shingle_n))
    num_perm = config.num_perm if config.near else 0
    sig = np.concatenate(parts) if parts else np.zeros((len(texts), num_perm), dtype=np.uint32)
    minhash = pa.FixedSizeListArray.from_arrays(pa.array(sig.reshape(-1), type=pa.uint32()), num_perm)
    return pa.table({"text_hash": hashes, "n_words": n_words, "minhash": minhash})


def _read_signatures(pool: Pool, num_perm: int) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    ids: list[str] = []
    hashes: list[str] = []
    n_words: list[np.ndarray] = []
    sigs: list[np.ndarray] = []
    for shard in pool.shards:
        table = pq.read_table(pool.attr_path(SIGNATURE_ATTR, shard))
        ids.extend(table.column("id").to_pylist())
        hashes.extend(table.column("text_hash").to_pylist())
        n_words.append(table.column("n_words").to_numpy())
        flat = table.column("minhash").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        sigs.append(flat.reshape(table.num_rows, num_perm))
    sig = np.concatenate(sigs) if sigs else np.zeros((0, num_perm), dtype=np.uint32)
    nw = np.concatenate(n_words) if n_words else np.zeros(0, dtype=np.int32)
    return ids, hashes, nw, sig


# -- step 2 + 3: global clusters, per-shard attribute -----------------------------------------------------
def _basis(pool: Pool, config: DedupConfig) -> dict[str, Any]:
    """What representatives are chosen by, with a fingerprint of the quality attribute when used."""
    if config.representative == "quality" and pool.has_attr("quality"):
        info = pool.attr_dir("quality") / "attr.json"
        digest = hashlib.sha256(info.read_bytes()).hexdigest()[:16] if info.exists() else ""
        return {"by": "quality_score", "quality_attr": digest}
    return {"by": "n_chars" if config.representative == "longest" else "pool order"}


def _priority(pool: Pool, config: DedupConfig) -> np.ndarray | None:
    """Per document, how much it deserves to represent its cluster (None: pool order decides)."""
    if config.representative == "quality":
        if pool.has_attr("quality"):
            df = pool.read_attr("quality", columns=["quality_score"])
            return df["quality_score"].to_numpy(dtype=np.float64)
        log.info("no complete 'quality' attribute: representatives chosen by pool order")
        return None
    if config.representative == "longest":
        return pool.read_docs(["n_chars"])["n_chars"].to_numpy(dtype=np.float64)
    return None


def dedup_pool(
    pool: Pool,
    config: DedupConfig | None = None,
    workers: int = 1,
    force: bool = False,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Find exact and near duplicates across all shards of ``pool`` and write the ``dedup`` attribute.

    Returns a summary: ``docs``, ``clusters`` (kept documents: one per cluster, singletons included),
    ``duplicate_clusters`` (clusters of two or more), ``duplicates`` (``{"exact": .., "near": ..}``, the
    documents not kept), ``largest_cluster``, ``representative_basis`` and ``skipped`` (true when
    everything was already done with this configuration). The per-shard signatures run on ``executor``
    (default: a local pool of ``workers`` processes).
    """
    config = config or DedupConfig()
    with pool.lock(DEDUP_ATTR):
        return _dedup_locked(pool, config, resolve_executor(executor, workers), force)


def _dedup_locked(pool: Pool, config: DedupConfig, executor: Executor, force: bool) -> dict[str, Any]:
    info_path = pool.attr_dir(DEDUP_ATTR) / "attr.json"
    with pool.lock("quality"):  # the quality attribute may not change while representatives are chosen
        basis = _basis(pool, config)
        priority = _priority(pool, config)
    key = {"config": config.model_dump(mode="json"), "representative_basis": basis}
    fp = fingerprint(key)
    if not force and pool.has_attr(DEDUP_ATTR, fp) and info_path.exists():
        info = json.loads(info_path.read_text())
        if info.get("key") == key and "summary" in info:
            return {**info["summary"], "skipped": True}

    # step 1: signatures (recomputed when their settings changed)
    sig_fp = fingerprint(_signature_key(config))
    executor.map_shards(
        signature_shard,
        pool,
        SIGNATURE_ATTR,
        config,
        resources=SHARD_RESOURCES,
        force=force,
        desc="dedup signatures",
        fp=sig_fp,
    )

    # step 2: global clustering
    num_perm = config.num_perm if config.near else 0
    ids, hashes, n_words, sig = _read_signatures(pool, num_perm)
    n_docs = len(ids)
    e_pairs = exact_pairs(hashes)
    is_first = np.ones(n_docs, dtype=bool)
    is_first[e_pairs[:, 1]] = False
    pairs = e_pairs
    if config.near and n_docs:
        rows = np.flatnonzero(is_first & (n_words >= config.min_words))
        pairs = np.concatenate([e_pairs, near_pairs(sig, rows, config.threshold, config.seed)])
    labels = cluster_labels(n_docs, pairs)
    rep = representatives(labels, priority)
    sizes = np.bincount(labels)[labels]
    keep = rep == np.arange(n_docs)
    same_text = np.array([hashes[i] == hashes[r] for i, r in enumerate(rep.tolist())], dtype=bool)
    kind = np.where(keep, "", np.where(same_text, "exact", "near"))
    if config.near and n_docs:
        jaccard = np.where(same_text, 1.0, np.mean(sig == sig[rep], axis=1)).astype(np.float32)
    else:
        jaccard = np.where(same_text, 1.0, 0.0).astype(np.float32)
    pool.attr_dir(DEDUP_ATTR).mkdir(parents=True, exist_ok=True)

    # from here on the attribute is being rewritten with this config: a kill leaves it incomplete
    previous = pool.set_attr_target(DEDUP_ATTR, fp, key)
    if previous is not None and previous != fp:
        log.warning(
            "dedup: config changed since the last run; recomputing, replacing attribute %r shard by shard",
            DEDUP_ATTR,
        )
    buf = io.BytesIO()
    np.savez_compressed(buf, labels=labels, representative=rep, ids=np.array(ids, dtype=np.str_))
    atomic_write_bytes(pool.attr_dir(DEDUP_ATTR) / CLUSTERS_FILE, buf.getvalue())

    # step 3: per-shard tables (a shard already written with this fingerprint holds the same table)
    offset = 0
    for shard in tqdm(pool.shards, desc="dedup write", unit="shard"):
        rows_in = pq.read_metadata(pool.shard_path(shard)).num_rows
        sl = slice(offset, offset + rows_in)
        offset += rows_in
        if not force and pool.attr_done(DEDUP_ATTR, shard, fp):
            continue
        table = pa.table(
            {
                "dup_cluster": pa.array([ids[r] for r in rep[sl].tolist()], type=pa.string()),
                "dup_keep": pa.array(keep[sl]),
                "dup_kind": pa.array(kind[sl].tolist(), type=pa.string()),
                "dup_size": pa.array(sizes[sl].astype(np.int32)),
                "dup_jaccard": pa.array(jaccard[sl]),
            }
        )
        pool.write_attr(DEDUP_ATTR, shard, table, fp)
    summary = {
        "docs": n_docs,
        "clusters": int(keep.sum()),
        "duplicate_clusters": int((np.bincount(labels) > 1).sum()) if n_docs else 0,
        "duplicates": {"exact": int((kind == "exact").sum()), "near": int((kind == "near").sum())},
        "largest_cluster": int(sizes.max()) if n_docs else 0,
        "representative_basis": key["representative_basis"]["by"],
    }
    pool.write_attr_info(
        DEDUP_ATTR, {"stage": "mixlab.dedup.stage.dedup_pool", "key": key, "summary": summary}
    )
    return {**summary, "skipped": False}


# -- decontamination ------------------------------------------------------------------------------------
_INDEX_CACHE: dict[str, TaskIndex] = {}


def _decontam_key(config: DecontamConfig) -> dict[str, Any]:
    files = {name: task_digest(path, name) for name, path in sorted(config.tasks.items())}
    return {"config": config.model_dump(mode="json"), "task_sha256": files}


def task_index(config: DecontamConfig) -> TaskIndex:
    """The :class:`TaskIndex` of ``config``'s tasks (built once per process)."""
    cache_key = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    if cache_key not in _INDEX_CACHE:
        _INDEX_CACHE[cache_key] = TaskIndex.from_task_files(
            config.tasks, config.n, config.fields, config.min_short_words, config.max_items_per_ngram
        )
    return _INDEX_CACHE[cache_key]


def decontam_shard(pool_root: str, shard: str, config: DecontamConfig) -> pa.Table:
    """Shard stage: ``contaminated``, ``contam_task``, ``contam_overlap``, ``contam_coverage``, ``contam_item``."""
    pool = Pool.open(pool_root)
    texts = pool.read_shard(shard, ["text"]).column("text").to_pylist()
    index = task_index(config)
    hasher = WordHasher()
    cols: dict[str, list[Any]] = {k: [] for k in ("contaminated", "task", "overlap", "coverage", "item")}
    for start in range(0, len(texts), 1000):
        m = index.match(texts[start : start + 1000], config.min_overlap, config.min_coverage, hasher)
        cols["contaminated"].extend(m.contaminated.tolist())
        cols["task"].extend(t if c else "" for t, c in zip(m.task, m.contaminated.tolist(), strict=True))
        cols["item"].extend(t if c else "" for t, c in zip(m.item, m.contaminated.tolist(), strict=True))
        cols["overlap"].extend(m.overlap.tolist())
        cols["coverage"].extend(m.coverage.tolist())
    return pa.table(
        {
            "contaminated": pa.array(cols["contaminated"], type=pa.bool_()),
            "contam_task": pa.array(cols["task"], type=pa.string()),
            "contam_overlap": pa.array(cols["overlap"], type=pa.int64()),
            "contam_coverage": pa.array(cols["coverage"], type=pa.float32()),
            "contam_item": pa.array(cols["item"], type=pa.string()),
        }
    )


def decontaminate_pool(
    pool: Pool,
    config: DecontamConfig,
    workers: int = 1,
    force: bool = False,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Flag documents of ``pool`` that contain evaluation task items; write the ``decontam`` attribute.

    Returns ``docs``, ``contaminated`` (total), ``per_task`` (contaminated documents per task, every task
    listed), ``overlapping`` (documents sharing at least one n-gram with a task, contaminated or not),
    ``shards_computed`` and ``skipped``. Contaminated documents are excluded by selection by default.
    Shards run on ``executor`` (default: a local pool of ``workers`` processes).
    """
    if not config.tasks:
        raise ValueError("decontam: no task files given (tasks: NAME -> FILE)")
    for name, path in config.tasks.items():
        if not path.exists():
            raise FileNotFoundError(f"decontam: task {name!r}: file {path} does not exist")
    key = _decontam_key(config)
    with pool.lock(DECONTAM_ATTR):
        computed = resolve_executor(executor, workers).map_shards(
            decontam_shard,
            pool,
            DECONTAM_ATTR,
            config,
            resources=SHARD_RESOURCES,
            force=force,
            desc="decontam",
            fp=fingerprint(key),
        )
        return _decontam_summary(pool, config, key, computed)


def _decontam_summary(
    pool: Pool, config: DecontamConfig, key: dict[str, Any], computed: list[str]
) -> dict[str, Any]:
    df = pool.read_attr(DECONTAM_ATTR, columns=["contaminated", "contam_task", "contam_overlap"])
    flagged = df[df["contaminated"]]
    per_task = {name: int((flagged["contam_task"] == name).sum()) for name in config.tasks}
    summary = {
        "docs": len(df),
        "contaminated": len(flagged),
        "per_task": per_task,
        "overlapping": int((df["contam_overlap"] > 0).sum()),
        "shards_computed": len(computed),
        "skipped": not computed,
    }
    info = {"stage": "mixlab.dedup.stage.decontaminate_pool", "key": key, "summary": summary}
    pool.write_attr_info(DECONTAM_ATTR, {**info, "index": task_index(config).stats})
    return summary
