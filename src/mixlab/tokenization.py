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
