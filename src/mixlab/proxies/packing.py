"""Read a selection's documents and pack them once into fixed-length training blocks.

Packing concatenates ``[BOS] doc [EOS]`` for every document (BOS only when asked) into one contiguous
int32 array and cuts it into ``block_size`` rows; the last partial block is dropped (as Hugging Face's
``group_texts`` does), so ``n_blocks == total_tokens // block_size``. Blocks need no padding and no
attention mask: a document boundary is marked by the EOS token, as in RegMix and LMFlow.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mixlab.console import tqdm
from mixlab.pool.readers import Quarantined, read_jsonl, read_lmflow, read_parquet

log = logging.getLogger(__name__)

#: File names looked for, in order, inside a selection folder.
SELECTION_FILES: tuple[str, ...] = (
    "data.jsonl",
    "data.jsonl.gz",
    "data.jsonl.zst",
    "data.parquet",
    "data.json",
)

#: End-of-text tokens recognised when a tokenizer does not declare ``eos_token`` (e.g. a bare tokenizer.json).
KNOWN_EOS_TOKENS: tuple[str, ...] = ("</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "[SEP]")
KNOWN_BOS_TOKENS: tuple[str, ...] = ("<s>", "<|begin_of_text|>", "<bos>", "[CLS]")
KNOWN_PAD_TOKENS: tuple[str, ...] = ("<pad>", "<|pad|>", "[PAD]")


class SelectionFormatError(ValueError):
    """A selection file holds a record that is not a usable document (names the file and line)."""


@dataclass(frozen=True)
class SpecialIds:
    """Special token ids used for packing and recorded in the model config."""

    bos: int | None
    eos: int
    pad: int | None


def _first_known(tokenizer: Any, candidates: Sequence[str]) -> tuple[str, int] | None:
    vocab = tokenizer.get_vocab()
    for token in candidates:
        if token in vocab:
            return token, int(vocab[token])
    return None


def resolve_special_ids(tokenizer: Any, set_missing: bool = True) -> SpecialIds:
    """BOS/EOS/PAD ids of ``tokenizer``, falling back to well-known token strings for tokenizers that do not
    declare them (a bare GPT-2 ``tokenizer.json``). With ``set_missing`` the found tokens are set on the
    tokenizer so that a saved copy declares them (lm-eval relies on ``eos_token``).

    BOS falls back to EOS (GPT-2 uses ``<|endoftext|>`` for both); PAD may stay None.
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        found = _first_known(tokenizer, KNOWN_EOS_TOKENS)
        if found is None:
            raise ValueError(
                "tokenizer has no EOS token and none of "
                + ", ".join(KNOWN_EOS_TOKENS)
                + " is in its vocabulary"
            )
        eos = found[1]
        if set_missing:
            tokenizer.eos_token = found[0]
    bos = tokenizer.bos_token_id
    if bos is None:
        found = _first_known(tokenizer, KNOWN_BOS_TOKENS)
        bos = found[1] if found else eos
        if set_missing:
            tokenizer.bos_token = found[0] if found else tokenizer.convert_ids_to_tokens(eos)
    pad = tokenizer.pad_token_id
    if pad is None:
        found = _first_known(tokenizer, KNOWN_PAD_TOKENS)
        if found is not None:
            pad = found[1]
            if set_missing:
                tokenizer.pad_token = found[0]
    return SpecialIds(bos=int(bos), eos=int(eos), pad=None if pad is None else int(pad))


def pack_documents(
    texts: Sequence[str],
    tokenizer: Any,
    block_size: int,
    add_bos: bool,
    batch_size: int = 1024,
    progress: bool = True,
) -> torch.Tensor:
    """Tokenize ``texts`` and pack them into an int32 tensor of shape ``(n_blocks, block_size)``.

    Each document becomes ``[BOS if add_bos] ids [EOS]``; documents are concatenated in the given order and
    the stream is cut into ``block_size`` rows, dropping the final partial block. Raises ValueError when
    there is not enough text for a single block.
    """
    if block_size < 2:
        raise ValueError(f"block_size must be at least 2, got {block_size}")
    special = resolve_special_ids(tokenizer)
    pieces: list[np.ndarray] = []
    eos = np.array([special.eos], dtype=np.int32)
    bos = np.array([special.bos], dtype=np.int32) if add_bos else None
    for start in tqdm(
        range(0, len(texts), batch_size),
        desc="tokenize",
        unit="batch",
        disable=not progress or len(texts) <= batch_size,
    ):
        batch = list(texts[start : start + batch_size])
        enc = tokenizer(batch, add_special_tokens=False, return_attention_mask=False)["input_ids"]
        for ids in enc:
            if bos is not None:
                pieces.append(bos)
            pieces.append(np.asarray(ids, dtype=np.int32))
            pieces.append(eos)
    stream = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)
    n_blocks = len(stream) // block_size
    if n_blocks == 0:
        raise ValueError(
            f"not enough text to fill one block: {len(stream)} tokens from {len(texts)} documents, "
            f"block_size {block_size}"
        )
    blocks = torch.from_numpy(stream[: n_blocks * block_size].copy()).view(n_blocks, block_size)
    dropped = len(stream) - n_blocks * block_size
    log.debug(
        "packed %d tokens into %d blocks of %d (%d tail tokens dropped)",
        len(stream),
        n_blocks,
        block_size,
        dropped,
    )
    return blocks


def _selection_file(path: Path) -> Path:
    if path.is_file():
        return path
    if path.is_dir():
        for name in SELECTION_FILES:
            if (path / name).exists():
                return path / name
        raise FileNotFoundError(f"{path}: selection folder holds none of {', '.join(SELECTION_FILES)}")
    raise FileNotFoundError(f"{path}: selection does not exist")


def read_selection_texts(path: Path) -> list[str]:
    """Texts of a selection, in file order: a folder with ``data.jsonl`` (field ``text``), ``data.parquet``
    or an LMFlow ``data.json``, or one file in any of those formats (``.jsonl`` may be gz/zst-compressed).

    A record that is not a document (malformed JSON, missing or non-string text) raises
    :class:`SelectionFormatError` naming the file and line. Empty documents are skipped and counted in a
    warning (they contribute no tokens).
    """
    file = _selection_file(Path(path))
    name = file.name
    base = name.removesuffix(".gz").removesuffix(".zst")
    if base.endswith(".parquet"):
        records = read_parquet(file)
    elif base.endswith((".jsonl", ".ndjson")):
        records = read_jsonl(file)
    elif base.endswith(".json"):
        with file.open("rb") as fh:
            head = fh.read(4096).lstrip()
        records = read_lmflow(file) if head.startswith(b"{") and b'"instances"' in head else read_jsonl(file)
    else:
        raise SelectionFormatError(
            f"{file}: unknown selection format (expected .jsonl, .parquet or LMFlow .json)"
        )
    texts: list[str] = []
    empty = 0
    for rec in records:
        if isinstance(rec, Quarantined):
            if rec.reason == "empty document":
                empty += 1
                continue
            raise SelectionFormatError(f"{rec.file}: line {rec.line}: {rec.reason}")
        texts.append(rec.text)
    if empty:
        log.warning("%s: skipped %d empty document(s)", file, empty)
    if not texts:
        raise SelectionFormatError(f"{file}: selection holds no documents")
    return texts
