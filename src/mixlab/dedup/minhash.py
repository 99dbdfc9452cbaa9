"""Vectorised MinHash signatures over word shingles (numpy), for LSH near-duplicate detection.

Each shingle (a run of ``n`` words, see :func:`mixlab.dedup.normalize.ngram_hashes`) is a 64-bit hash;
permutation ``i`` is the multiply-add-shift hash ``(a_i * x + b_i) mod 2**64 >> 32`` (``a_i`` odd), and a
signature holds the minimum over a document's shingles for each permutation. All documents of a batch
are hashed in one numpy pass (``np.minimum.reduceat`` over document offsets), which is what makes this
faster than feeding ``datasketch.MinHash.update_batch`` one document at a time (see bench/dedup_recall.py);
the resulting signatures are used with ``datasketch.MinHashLSH`` for the banding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mixlab.dedup.normalize import WordHasher, batch_ngram_hashes, ngram_hashes, words

EMPTY = np.uint32(0xFFFFFFFF)
"""Signature value of a document without words (no shingles)."""

_MAX_BLOCK_ELEMS = 4_000_000


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(a, b)`` multipliers (odd) and offsets of ``num_perm`` hash permutations for ``seed``."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False) | np.uint64(1)
    b = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False)
    return a, b


def shingle_hashes(text: str, n: int, hasher: WordHasher | None = None) -> np.ndarray:
    """The ``uint64`` hashes of the word ``n``-gram shingles of ``text`` (one shingle if shorter)."""
    hasher = hasher if hasher is not None else WordHasher()
    return ngram_hashes(hasher.hashes(words(text)), n)


def signatures_from_shingles(shingles: Sequence[np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MinHash signatures (``uint32``, one row per shingle array) for the permutations ``(a, b)``."""
    num_perm = int(a.shape[0])
    out = np.full((len(shingles), num_perm), EMPTY, dtype=np.uint32)
    sizes = np.array([s.shape[0] for s in shingles], dtype=np.int64)
    rows = np.flatnonzero(sizes > 0)
    if rows.size == 0:
        return out
    flat = np.concatenate([shingles[i] for i in rows])
    starts = np.concatenate([[0], np.cumsum(sizes[rows])[:-1]])
    block = max(1, min(num_perm, _MAX_BLOCK_ELEMS // max(1, flat.shape[0])))
    shift = np.uint64(32)
    for lo in range(0, num_perm, block):
        hi = min(num_perm, lo + block)
        hv = (flat[:, None] * a[None, lo:hi] + b[None, lo:hi]) >> shift
        out[rows, lo:hi] = np.minimum.reduceat(hv, starts, axis=0).astype(np.uint32)
    return out


def signatures_from_word_hashes(
    word_hashes: Sequence[np.ndarray], a: np.ndarray, b: np.ndarray, n: int
) -> np.ndarray:
    """MinHash signatures over the ``n``-word shingles of word-hash sequences (one batch, vectorised).

    A sequence shorter than ``n`` words (but not empty) has a single shingle: the whole sequence."""
    hashes, doc, _ = batch_ngram_hashes(word_hashes, n)
    counts = np.bincount(doc, minlength=len(word_hashes))
    shingles = np.split(hashes, np.cumsum(counts)[:-1]) if len(word_hashes) else []
    for i, wh in enumerate(word_hashes):
        if 0 < wh.shape[0] < n:
            shingles[i] = ngram_hashes(wh, n)
    return signatures_from_shingles(shingles, a, b)


def minhash_signatures(
    texts: Sequence[str], num_perm: int = 128, n: int = 5, seed: int = 0, batch_docs: int = 512
) -> np.ndarray:
    """MinHash signatures of ``texts`` over word ``n``-gram shingles: a ``(len(texts), num_perm)`` ``uint32``
    array. Texts without any word get a row of ``0xFFFFFFFF`` (:data:`EMPTY`); skip those in LSH."""
    a, b = permutations(num_perm, seed)
    hasher = WordHasher()
    parts = []
    for start in range(0, len(texts), batch_docs):
        batch = [hasher.hashes(words(t)) for t in texts[start : start + batch_docs]]
        parts.append(signatures_from_word_hashes(batch, a, b, n))
    if not parts:
        return np.zeros((0, num_perm), dtype=np.uint32)
    return np.concatenate(parts)


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity: the fraction of equal signature values (row-wise for 2-D inputs)."""
    return np.mean(np.asarray(sig_a) == np.asarray(sig_b), axis=-1)
