"""Embedding density: the distance of each document to its k nearest neighbours flags outliers.

As a scorer of the quality stage (``quality.density.enabled``) it runs in two executor passes, so that no
step needs the whole pool in one process:

1. ``density_embeddings``: each shard's sentence embeddings (float16, L2-normalised), keyed by the model's
   content and ``max_seq_length``;
2. ``density``: each document's mean cosine distance to its ``k`` nearest documents of a *reference
   sample*: ``n_reference`` documents picked by a keyed hash of their ids (the same sample whatever the
   shard order or the machine), gathered once from the embeddings into ``attrs/density/reference.npz``.
   A document never counts itself. When the pool holds no more than ``n_reference`` documents, the
   reference is the whole pool and this is the exact k-NN density.

Changing ``k`` or the reference redoes only pass 2; the embeddings are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mixlab.executors import Executor, Resources
from mixlab.pool.pool import Pool, fingerprint
from mixlab.quality.config import DensitySettings
from mixlab.quality.scorer import Prepared, Scorer, cached_artifact, file_identity

EMBED_ATTR = "density_embeddings"
DENSITY_ATTR = "density"
_BLOCK = 2048  # query rows per distance block: a block x reference matrix stays small


#: Normalised embeddings are rounded to multiples of 2**-GRID_BITS before the dot products: every product
#: is then an exact multiple of 2**-40, and every partial sum of a dot product of (near) unit vectors is at
#: most about 1 in size (Cauchy-Schwarz), so it is exact in float64 too. The distances then do not depend
#: on the BLAS's summation order or threads: local and Ray give the same bytes.
GRID_BITS = 20


def _normalise(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, on the 2**-GRID_BITS grid (float64, exact dot products)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"embeddings must be 2-D, got shape {X.shape}")
    norm = np.sqrt(np.sum(X * X, axis=1, keepdims=True))  # numpy's own sum: no BLAS
    scale = float(2**GRID_BITS)
    return np.round(X / np.where(norm > 0, norm, 1.0) * scale) / scale


def knn_to_reference(
    X: np.ndarray,
    ids: Sequence[Any] | np.ndarray,
    ref: np.ndarray,
    ref_ids: Sequence[Any] | np.ndarray,
    k: int = 10,
) -> np.ndarray:
    """Mean cosine distance of every row of ``X`` to its ``k`` nearest rows of ``ref``, never itself
    (a reference row with the same id); higher = more isolated. Exact duplicates count as neighbours."""
    Xn, Rn = _normalise(X), _normalise(ref)
    ids_arr = np.asarray(ids, dtype=object)
    ref_arr = np.asarray(ref_ids, dtype=object)
    out = np.zeros(len(Xn), dtype=np.float64)
    if len(Xn) == 0 or len(Rn) < 2:
        return out
    k = min(k, len(Rn) - 1)
    pos = {v: i for i, v in enumerate(ref_arr.tolist())}
    for start in range(0, len(Xn), _BLOCK):
        rows = slice(start, start + _BLOCK)
        dist = 1.0 - Xn[rows] @ Rn.T
        for r, doc in enumerate(ids_arr[rows].tolist()):
            j = pos.get(doc)
            if j is not None:
                dist[r, j] = np.inf  # never its own neighbour
        part = np.partition(dist, k - 1, axis=1)[:, :k]
        out[rows] = np.clip(part, 0.0, None).mean(axis=1)
    return out


def knn_density(embeddings: np.ndarray, k: int = 10) -> np.ndarray:
    """Mean cosine distance of every row to its ``k`` nearest other rows (higher = more isolated)."""
    X = np.asarray(embeddings, dtype=np.float32)
    ids = np.arange(len(X)) if X.ndim == 2 else np.arange(0)
    return knn_to_reference(X, ids, X, ids, k)


# -- the quality stage's density scorer ---------------------------------------------------------------
def embed_shard(pool_root: str, shard: str, payload: dict[str, Any]) -> pa.Table:
    """Shard stage: the float16 sentence embedding of every document of ``shard``."""
    import torch

    from mixlab.domains.embeddings import embed_texts

    texts = Pool.open(pool_root).read_shard(shard, ["text"]).column("text").to_pylist()
    previous = torch.get_num_threads()
    torch.set_num_threads(int(payload["threads"]))
    try:
        emb = embed_texts(
            texts,
            payload["model"],
            max_seq_length=int(payload["max_seq_length"]),
            batch_size=int(payload["batch_size"]),
            progress=False,
        ).astype(np.float16)
    finally:
        torch.set_num_threads(previous)
    flat = pa.array(emb.reshape(-1), type=pa.float16())
    return pa.table({"embedding": pa.FixedSizeListArray.from_arrays(flat, emb.shape[1])})


def read_embeddings(pool: Pool, shard: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, float32 embeddings) of one shard from the ``density_embeddings`` attribute."""
    frame = pool.read_attr(EMBED_ATTR, shard, ["embedding"])
    ids = frame["id"].to_numpy(dtype=object)
    if len(frame) == 0:
        return ids, np.zeros((0, 0), dtype=np.float32)
    return ids, np.stack(frame["embedding"].to_numpy()).astype(np.float32)


def _hash_rank(ids: np.ndarray, seed: int) -> np.ndarray:
    """A keyed 64-bit hash of each id: the reference sample is the ``n`` smallest (DESIGN principle 3)."""
    import hashlib

    key = hashlib.blake2b(f"mixlab/density/{int(seed)}".encode(), digest_size=8).hexdigest()
    if ids.size == 0:
        return np.zeros(0, dtype=np.uint64)
    return pd.util.hash_array(ids.astype(object), encoding="utf8", hash_key=key, categorize=False)


def build_reference(pool: Pool, n_reference: int, seed: int, out: Path) -> None:
    """Save the reference sample (ids and float16 embeddings, in hash order) to ``out`` (.npz)."""
    best_h = np.zeros(0, dtype=np.uint64)
    best_ids = np.zeros(0, dtype=object)
    best_emb: np.ndarray | None = None
    for shard in pool.shards:
        ids, emb = read_embeddings(pool, shard)
        if len(ids) == 0:
            continue
        h = np.r_[best_h, _hash_rank(ids, seed)]
        all_ids = np.r_[best_ids, ids]
        all_emb = emb if best_emb is None else np.vstack([best_emb, emb])
        keep = np.lexsort((all_ids.astype(str), h))[:n_reference]  # ties broken by id: a total order
        best_h, best_ids, best_emb = h[keep], all_ids[keep], all_emb[keep]
    ref = best_emb if best_emb is not None else np.zeros((0, 0), dtype=np.float32)
    np.savez(out, ids=best_ids.astype(str), embeddings=ref.astype(np.float16))


def prepare_density(pool: Pool, settings: DensitySettings, executor: Executor, force: bool) -> Prepared:
    """Pass 1 (embeddings, through the executor), then the reference sample (driver, O(n_reference))."""
    from mixlab.domains.embeddings import default_model_path

    model = settings.model or default_model_path()
    folder = Path(model)
    files = sorted(f for f in folder.glob("*") if f.is_file()) if folder.is_dir() else []
    emb_key = {
        "stage": EMBED_ATTR,
        "version": 1,
        "model": {"files": [file_identity(f) for f in files]} if files else {"name": model},
        "max_seq_length": settings.max_seq_length,
    }
    emb_fp = fingerprint(emb_key)
    computed = executor.map_shards(
        embed_shard,
        pool,
        EMBED_ATTR,
        {
            "model": model,
            "max_seq_length": settings.max_seq_length,
            "batch_size": settings.batch_size,
            "threads": settings.threads,
        },
        resources=Resources(cpus=float(settings.threads), memory_gb=settings.memory_gb),
        force=force,
        desc="quality density embeddings",
        fp=emb_fp,
    )
    pool.write_attr_info(EMBED_ATTR, {"stage": "quality.density.embeddings", "key": emb_key})
    ref_key = {"embeddings": emb_fp, "n_reference": settings.n_reference, "seed": settings.seed}
    path = pool.attr_dir(DENSITY_ATTR) / "reference.npz"
    cached_artifact(
        path, ref_key, lambda tmp: build_reference(pool, settings.n_reference, settings.seed, tmp), force
    )
    return Prepared(
        payload={"reference": str(path), "k": settings.k},
        key={"reference": ref_key, "k": settings.k},
        computed={EMBED_ATTR: computed},
    )


def density_shard(pool_root: str, shard: str, payload: dict[str, Any]) -> pa.Table:
    """Shard stage: mean cosine distance of each document to its k nearest reference documents."""
    pool = Pool.open(pool_root)
    ids, emb = read_embeddings(pool, shard)
    with np.load(payload["reference"], allow_pickle=False) as ref:
        ref_ids, ref_emb = ref["ids"].astype(object), ref["embeddings"].astype(np.float32)
    values = knn_to_reference(emb, ids, ref_emb, ref_ids, int(payload["k"])) if len(ids) else np.zeros(0)
    return pa.table({"density": pa.array(values, type=pa.float64())})


SCORER = Scorer(
    name="density",
    attr=DENSITY_ATTR,
    columns=("density",),
    direction="lower",
    settings=DensitySettings,
    shard_fn=density_shard,
    prepare=prepare_density,
    hint="set quality.density.enabled: true, or run `mixlab density`",
)
