"""Per-domain quantile buckets of a quality score: 0 = worst ... B-1 = best within each domain."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bucket_edges(scores: np.ndarray, n_buckets: int) -> np.ndarray:
    """The B-1 inner quantile edges of ``scores`` (NaN scores ignored)."""
    finite = scores[np.isfinite(scores)]
    if n_buckets <= 1 or len(finite) == 0:
        return np.zeros(0)
    return np.quantile(finite, np.linspace(0, 1, n_buckets + 1)[1:-1])


def per_domain_edges(
    scores: np.ndarray, domains: Sequence[str] | np.ndarray, n_buckets: int
) -> dict[str, list[float]]:
    """Quantile edges of the scores of each domain."""
    scores = np.asarray(scores, dtype=np.float64)
    dom = np.asarray(domains, dtype=object)
    return {str(d): bucket_edges(scores[dom == d], n_buckets).tolist() for d in sorted(set(dom.tolist()))}


def per_domain_buckets(scores: np.ndarray, domains: Sequence[str] | np.ndarray, n_buckets: int) -> np.ndarray:
    """Bucket of every document: the quantile of its score among the documents of its own domain.

    Bucket ``b`` holds scores in ``(edge[b-1], edge[b]]``, so each domain's documents spread evenly
    over ``0 .. n_buckets-1`` (up to ties) whatever the domain's score range. NaN scores get bucket 0.
    """
    scores = np.asarray(scores, dtype=np.float64)
    dom = np.asarray(domains, dtype=object)
    if len(scores) != len(dom):
        raise ValueError(f"scores ({len(scores)}) and domains ({len(dom)}) differ in length")
    out = np.zeros(len(scores), dtype=np.int64)
    for d in set(dom.tolist()):
        idx = np.flatnonzero(dom == d)
        edges = bucket_edges(scores[idx], n_buckets)
        s = scores[idx]
        b = np.searchsorted(edges, s, side="left")
        out[idx] = np.where(np.isfinite(s), b, 0)
    return out
