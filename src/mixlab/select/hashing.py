"""Keyed hashes of document ids: the only source of randomness in selection (DESIGN principle 3).

A hash is SipHash-2-4 (``pandas.util.hash_array``, vectorised) of the id string under a 128-bit key
derived from ``(purpose, seed)``. It depends only on the id, the seed and the purpose, never on file
order, worker or machine, so the same config and seed select, assign and order the same documents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd


def hash_key(seed: int, purpose: str) -> str:
    """The 16-character SipHash key for ``purpose`` (``rank``, ``soft``, ``order``) under ``seed``."""
    return hashlib.blake2b(f"mixlab/{purpose}/{int(seed)}".encode(), digest_size=8).hexdigest()


def keyed_hash(values: Sequence[str] | np.ndarray, seed: int, purpose: str) -> np.ndarray:
    """uint64 keyed hash of each string in ``values``."""
    arr = np.asarray(values, dtype=object)
    if arr.size == 0:
        return np.zeros(0, dtype=np.uint64)
    return pd.util.hash_array(arr, encoding="utf8", hash_key=hash_key(seed, purpose), categorize=False)


def keyed_uniform(values: Sequence[str] | np.ndarray, seed: int, purpose: str) -> np.ndarray:
    """A uniform number in [0, 1) for each string, from the top 53 bits of its keyed hash."""
    return (keyed_hash(values, seed, purpose) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def repeat_keys(ids: Sequence[str] | np.ndarray, repeats: Sequence[int] | np.ndarray) -> np.ndarray:
    """Strings ``id\\x1frepeat`` naming each occurrence of a (possibly repeated) document."""
    ids_arr = np.asarray(ids, dtype=object)
    rep = np.asarray(repeats).astype(str).astype(object)
    return ids_arr + "\x1f" + rep
