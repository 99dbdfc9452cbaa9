"""Global clustering of duplicates: LSH candidate pairs, verification, union-find, representatives."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from datasketch import LeanMinHash, MinHashLSH
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from mixlab.console import tqdm
from mixlab.dedup.minhash import estimate_jaccard


def exact_pairs(hashes: Sequence[str]) -> np.ndarray:
    """Pairs ``(first, other)`` of row indices with equal exact hashes (each joined to its group's first)."""
    first: dict[str, int] = {}
    pairs: list[tuple[int, int]] = []
    for i, h in enumerate(hashes):
        j = first.setdefault(h, i)
        if j != i:
            pairs.append((j, i))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def near_pairs(
    signatures: np.ndarray, rows: np.ndarray, threshold: float, seed: int = 0, progress: bool = True
) -> np.ndarray:
    """Verified near-duplicate pairs among ``rows`` of ``signatures``.

    Candidates come from ``datasketch.MinHashLSH`` (bands and rows tuned to ``threshold``); a candidate
    pair is kept only when its estimated Jaccard similarity is at least ``threshold``. Returns an
    ``(k, 2)`` array of row indices ``(i, j)`` with ``i < j``.
    """
    num_perm = int(signatures.shape[1])
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    sketches = {
        int(i): LeanMinHash(seed=seed, hashvalues=signatures[i].astype(np.uint64), scheme="affine32")
        for i in rows
    }
    with lsh.insertion_session() as session:
        for i, sketch in sketches.items():
            session.insert(i, sketch, check_duplication=False)
    left: list[int] = []
    right: list[int] = []
    for i, sketch in tqdm(sketches.items(), desc="lsh query", unit="doc", disable=not progress):
        for j in lsh.query(sketch):
            if j > i:
                left.append(i)
                right.append(int(j))
    if not left:
        return np.zeros((0, 2), dtype=np.int64)
    a = np.array(left, dtype=np.int64)
    b = np.array(right, dtype=np.int64)
    keep = estimate_jaccard(signatures[a], signatures[b]) >= threshold
    return np.stack([a[keep], b[keep]], axis=1)


def cluster_labels(n_docs: int, pairs: np.ndarray) -> np.ndarray:
    """Connected components (union-find) of the graph whose edges are ``pairs``: a label per document."""
    if pairs.size == 0:
        return np.arange(n_docs, dtype=np.int64)
    graph = coo_matrix(
        (np.ones(pairs.shape[0], dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n_docs, n_docs)
    )
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def representatives(labels: np.ndarray, priority: np.ndarray | None = None) -> np.ndarray:
    """For every document, the row index of its cluster's representative.

    The representative has the highest ``priority`` (e.g. the quality score; NaN counts as lowest);
    ties, and every cluster when ``priority`` is None, go to the smallest row index (pool order).
    """
    n = labels.shape[0]
    order_key = np.arange(n)
    if priority is None:
        prio = np.zeros(n)
    else:
        prio = np.nan_to_num(np.asarray(priority, dtype=np.float64), nan=-np.inf)
    # sort by label, then by descending priority, then by pool order: first of each label is its rep
    order = np.lexsort((order_key, -prio, labels))
    sorted_labels = labels[order]
    is_first = np.ones(n, dtype=bool)
    is_first[1:] = sorted_labels[1:] != sorted_labels[:-1]
    firsts = order[is_first]
    rep_of_label = np.empty(int(labels.max()) + 1 if n else 0, dtype=np.int64)
    rep_of_label[labels[firsts]] = firsts
    return rep_of_label[labels]
