"""Text normalisation and stable word / n-gram hashing shared by exact dedup, MinHash and decontamination.

Hashes never use Python's per-process salted ``hash()``: words are hashed with BLAKE2b, so signatures
computed in different worker processes (or on different machines) agree.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence

import numpy as np

from mixlab.dedup.config import Normalisation

_WS = re.compile(r"\s+")
_WORD = re.compile(r"\w+")
_NGRAM_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio)


def normalise(text: str, mode: Normalisation = "lower") -> str:
    """Normalise ``text`` for exact hashing (see :data:`mixlab.dedup.config.Normalisation`)."""
    if mode == "none":
        return text
    if mode == "whitespace":
        return _WS.sub(" ", text).strip()
    if mode == "lower":
        return _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
    if mode == "words":
        return " ".join(words(text))
    raise ValueError(f"unknown normalisation {mode!r}")


def words(text: str) -> list[str]:
    """The word sequence of ``text``: NFKC, case-folded, punctuation and whitespace stripped."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


class WordHasher(dict[str, int]):
    """A cache word -> stable 64-bit hash (BLAKE2b); ``hasher.hashes(words)`` gives a ``uint64`` array."""

    def __missing__(self, word: str) -> int:
        value = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")
        self[word] = value
        return value

    def hashes(self, seq: list[str]) -> np.ndarray:
        """Hashes of the words in ``seq``, in order."""
        return np.fromiter(map(self.__getitem__, seq), dtype=np.uint64, count=len(seq))


def _mix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 / murmur3 finaliser: spreads the bits of combined hashes (vectorised, wrapping)."""
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xC4CEB9FE1A85EC53)
    return x ^ (x >> np.uint64(33))


def ngram_hashes(word_hashes: np.ndarray, n: int, short: bool = True) -> np.ndarray:
    """64-bit hashes of every run of ``n`` consecutive words (order-sensitive), as a ``uint64`` array.

    A sequence shorter than ``n`` words yields one hash of the whole sequence when ``short`` is true
    (so short documents still have a shingle), else nothing. The hash of a k-word run is the same
    whether it came from ``ngram_hashes(h, k)`` or as the whole of a k-word sequence.
    """
    length = int(word_hashes.shape[0])
    if length == 0:
        return np.zeros(0, dtype=np.uint64)
    if length < n:
        if not short:
            return np.zeros(0, dtype=np.uint64)
        n = length
    m = length - n + 1
    acc = word_hashes[:m].copy()
    for k in range(1, n):
        acc = acc * _NGRAM_MULT + word_hashes[k : k + m]
    return _mix64(acc ^ np.uint64(n))


def batch_ngram_hashes(
    word_hashes: Sequence[np.ndarray], n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`ngram_hashes` (``short=False``) of many word-hash sequences in one vectorised pass.

    Returns ``(hashes, doc, start)``: each full ``n``-word run's hash, the index of its sequence and its
    first word's position, ordered by sequence then position. Sequences shorter than ``n`` contribute
    nothing.
    """
    sizes = np.array([w.shape[0] for w in word_hashes], dtype=np.int64)
    total = int(sizes.sum())
    empty = (np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    if total < n:
        return empty
    flat = np.concatenate(list(word_hashes)) if len(word_hashes) > 1 else word_hashes[0]
    doc_of = np.repeat(np.arange(len(word_hashes), dtype=np.int64), sizes)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    m = total - n + 1
    acc = flat[:m].copy()
    for k in range(1, n):
        acc = acc * _NGRAM_MULT + flat[k : k + m]
    valid = doc_of[:m] == doc_of[n - 1 : n - 1 + m]
    docs = doc_of[:m][valid]
    starts = np.arange(m, dtype=np.int64)[valid] - offsets[docs]
    return _mix64(acc[valid] ^ np.uint64(n)), docs, starts
