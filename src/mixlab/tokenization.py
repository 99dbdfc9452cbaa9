"""The training tokenizer: load it by path or name, count tokens exactly as training will.

Token counts in mixlab always come from the tokenizer that will train on the data (DESIGN principle 4).
A tokenizer is given as a folder (``tokenizer.json`` + ``tokenizer_config.json``, what
``PreTrainedTokenizerFast.save_pretrained`` writes), a bare ``tokenizer.json`` file, a SentencePiece
``tokenizer.model``, or a Hugging Face model id (only when a hub is reachable).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np


class TokenizerError(ValueError):
    """The tokenizer specification cannot be loaded."""


@lru_cache(maxsize=8)
def load_tokenizer(spec: str) -> Any:
    """Return a ``transformers`` fast tokenizer for ``spec`` (folder, tokenizer.json, .model, or hub id)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = Path(spec)
    if path.is_file() and path.suffix == ".json":
        tok = PreTrainedTokenizerFast(tokenizer_file=str(path))
    elif path.is_file() and path.suffix == ".model":
        import tempfile

        from transformers import LlamaTokenizerFast

        folder = path.parent
        if path.name != "tokenizer.model":  # from_pretrained looks for this exact file name
            folder = Path(tempfile.mkdtemp(prefix="mixlab-spm-"))
            (folder / "tokenizer.model").symlink_to(path.resolve())
        tok = LlamaTokenizerFast.from_pretrained(str(folder))
    elif path.is_dir() or not path.exists():
        try:
            tok = AutoTokenizer.from_pretrained(str(path) if path.is_dir() else spec)
        except Exception as exc:
            raise TokenizerError(f"cannot load tokenizer {spec!r}: {exc}") from exc
    else:
        raise TokenizerError(f"cannot load tokenizer {spec!r}: unsupported file type")
    return tok


def count_tokens(tokenizer: Any, texts: Sequence[str], batch_size: int = 1024) -> np.ndarray:
    """Exact token counts (no special tokens) of ``texts`` under ``tokenizer``, as int64."""
    counts = np.zeros(len(texts), dtype=np.int64)
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])
        enc = tokenizer(batch, add_special_tokens=False, return_attention_mask=False)["input_ids"]
        counts[start : start + len(batch)] = [len(ids) for ids in enc]
    return counts


def fast_backend(tokenizer: Any) -> Any | None:
    """A copy of a fast tokenizer's Rust backend (``tokenizers.Tokenizer``) that counts and decodes exactly
    as the ``transformers`` tokenizer does, or None when it has none (a slow tokenizer).

    :func:`count_tokens` calls the ``transformers`` tokenizer, which turns truncation and padding off and
    calls its backend's ``encode_batch``; this copy has them off and is called with ``encode_batch_fast``
    (the same ids, without character offsets). ``batch_decode`` is the backend's ``decode`` of each
    sequence (:class:`BackendDecoder`). The copy loads in a fraction of a second from the JSON that
    :func:`save_fast_backend` writes (converting a SentencePiece ``.model`` takes seconds, importing
    ``transformers`` more), so worker processes use it.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_batch_fast"):
        return None
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(backend.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy


def save_fast_backend(tokenizer: Any, path: Path) -> Path | None:
    """Write :func:`fast_backend` of ``tokenizer`` to ``path`` (a ``tokenizer.json``); None if it has none."""
    backend = fast_backend(tokenizer)
    if backend is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    backend.save(str(path))
    return path


def count_tokens_backend(backend: Any, texts: Sequence[str], batch_size: int = 1024) -> np.ndarray:
    """:func:`count_tokens` through a :func:`fast_backend` (the same counts, faster)."""
    counts = np.zeros(len(texts), dtype=np.int64)
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])
        enc = backend.encode_batch_fast(batch, add_special_tokens=False)
        counts[start : start + len(batch)] = [len(e) for e in enc]
    return counts


class BackendDecoder:
    """``batch_decode`` of a ``transformers`` tokenizer (special tokens kept, no clean-up of spaces),
    computed by its :func:`fast_backend` (``decode_batch``, parallel in Rust)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def batch_decode(
        self, sequences: Sequence[Sequence[int]], clean_up_tokenization_spaces: bool = False
    ) -> list[str]:
        if clean_up_tokenization_spaces:
            raise ValueError("BackendDecoder does not clean up tokenization spaces")
        return list(self.backend.decode_batch(list(sequences), skip_special_tokens=False))
