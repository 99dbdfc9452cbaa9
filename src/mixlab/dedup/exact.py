"""Exact duplicates: a SHA-1 of the normalised text; equal digests are one exact-duplicate group."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from mixlab.dedup.config import Normalisation
from mixlab.dedup.normalize import normalise


def text_hash(text: str, normalisation: Normalisation = "lower") -> str:
    """Hex SHA-1 of ``text`` after ``normalisation``."""
    return hashlib.sha1(normalise(text, normalisation).encode("utf-8")).hexdigest()


def text_hashes(texts: Iterable[str], normalisation: Normalisation = "lower") -> list[str]:
    """:func:`text_hash` of every text, in order."""
    return [text_hash(t, normalisation) for t in texts]
