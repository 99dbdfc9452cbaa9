"""Token log-probabilities from a causal LM, computing the output head only where a token is scored.

Scoring a multiple-choice continuation or a held-out text needs log p(token | prefix) at a few positions,
not a full ``[batch, sequence, vocab]`` logit tensor. :class:`TokenScorer` runs the decoder body
(``model.base_model``) and applies the output embedding only to the gathered positions, then takes a
float32 log-softmax. Models whose logits are not ``head(hidden)`` (logit soft-capping, scaling, ...) are
detected once by comparing with ``model(...).logits`` on a probe input, and then scored through the full
forward pass instead, so the result never depends on that shortcut.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import torch

log = logging.getLogger(__name__)

__all__ = ["TokenScorer", "model_max_length", "resolve_device", "unwrap_model"]

#: ``tokenizer.model_max_length`` value meaning "unset" (transformers' VERY_LARGE_INTEGER).
TOKENIZER_INFINITY = 1000000000000000019884624838656
DEFAULT_MAX_LENGTH = 2048
#: Scored positions per output-head call (bounds the [rows, vocab] float32 tensor).
HEAD_CHUNK_ROWS = 1024

_HEAD_CHECK: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a torch device; ``None`` means CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def unwrap_model(model: Any) -> Any:
    """The transformers model inside a peft wrapper (adapters stay injected), or the model itself."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def model_max_length(model: Any, tokenizer: Any) -> int:
    """Context length as lm-eval's HFLM resolves it: model config, then tokenizer, then 2048."""
    config = getattr(model, "config", None)
    cfg = getattr(config, "text_config", None) or config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(cfg, attr, None)
        if value is not None:
            return int(value)
    value = getattr(tokenizer, "model_max_length", None)
    if value is not None and value != TOKENIZER_INFINITY:
        return int(value)
    return DEFAULT_MAX_LENGTH


class TokenScorer:
    """Log-probabilities of target tokens at chosen positions of a batch, for one causal LM.

    Args:
        model: a ``transformers`` causal LM (or a peft model wrapping one), already on its device.
    """

    def __init__(self, model: Any) -> None:
        self.model = unwrap_model(model)
        param = next(self.model.parameters())
        self.device = param.device
        self.dtype = param.dtype
        base = getattr(self.model, "base_model", None)
        head = self.model.get_output_embeddings() if hasattr(self.model, "get_output_embeddings") else None
        self._base = base if base is not None and base is not self.model else None
        self._head = head
        self.split_head = self._check_split_head()

    @property
    def attn_implementation(self) -> str:
        """The model's attention implementation (``eager``, ``sdpa``, ``flash_attention_2``, ...)."""
        return str(getattr(self.model.config, "_attn_implementation", None) or "eager")

    def _check_split_head(self) -> bool:
        """True when ``head(base(x).last_hidden_state)`` reproduces ``model(x).logits`` on a probe."""
        if self._base is None or self._head is None:
            return False
        cached = _HEAD_CHECK.get(self.model)
        if cached is not None:
            return cached
        vocab = int(getattr(self.model.config, "vocab_size", 2) or 2)
        probe = (torch.arange(1, 9, device=self.device) * 7919 % max(vocab - 1, 1)).unsqueeze(0)
        try:
            with torch.inference_mode():
                full = self.model(input_ids=probe).logits.float()
                split = self._head(self._base(input_ids=probe).last_hidden_state).float()
            tol = 1e-4 if self.dtype == torch.float32 else 5e-2
            ok = bool(full.shape == split.shape and torch.allclose(full, split, atol=tol, rtol=tol))
        except Exception as exc:  # noqa: BLE001 - any failure means: use the full forward pass
            log.debug("split output head unavailable: %s", exc)
            ok = False
        if not ok:
            log.info("model logits are not head(hidden states): scoring through the full forward pass")
        _HEAD_CHECK[self.model] = ok
        return ok

    def score(
        self,
        input_ids: torch.Tensor,
        rows: torch.Tensor,
        positions: torch.Tensor,
        targets: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """log p(``targets[i]`` | prefix) read at ``(rows[i], positions[i])``, as float32 on the CPU.

        ``attention_mask`` may be 2D (padding) or a 4D additive mask of the model's dtype.
        """
        kwargs: dict[str, Any] = {"input_ids": input_ids.to(self.device)}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask.to(self.device)
        if position_ids is not None:
            kwargs["position_ids"] = position_ids.to(self.device)
        rows = rows.to(self.device)
        positions = positions.to(self.device)
        with torch.inference_mode():
            if self.split_head:
                states = self._base(**kwargs).last_hidden_state[rows, positions]
            else:
                states = self.model(**kwargs).logits[rows, positions]
            targets = targets.to(self.device)
            picked = []
            for start in range(0, states.shape[0], HEAD_CHUNK_ROWS):  # bound the [rows, vocab] tensor
                chunk = states[start : start + HEAD_CHUNK_ROWS]
                logits = self._head(chunk) if self.split_head else chunk
                logprobs = torch.log_softmax(logits.float(), dim=-1)
                picked.append(logprobs.gather(1, targets[start : start + HEAD_CHUNK_ROWS, None]).squeeze(1))
        return torch.cat(picked).cpu() if picked else torch.zeros(0)
