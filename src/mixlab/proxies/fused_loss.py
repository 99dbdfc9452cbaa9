"""Output head and next-token cross-entropy in one chunked pass, without the (tokens x vocabulary) logits.

A causal LM's loss is ``cross_entropy(head(h), next_token)``. Done the usual way, the logits of every
token are written to memory, read back by log-softmax, written again as its gradient, and read by the
head's backward: several passes over a tokens x vocabulary tensor, which for a small proxy with a 32k-50k
vocabulary is both the largest tensor of the step (1.6 GB at 8 x 1024 tokens and 50k ids) and a large
share of its time. Here the head, the loss and the gradient of the loss with respect to the logits are
computed chunk by chunk in the forward (the Liger-kernel idea, in plain PyTorch): each chunk's logits
live only while their gradients into the hidden states and the head's trainable parameters are
accumulated, and the backward just scales those by the incoming gradient.

Heads handled: a plain ``nn.Linear`` (trainable or frozen; from-scratch proxies) and a peft DoRA
``lora.Linear`` given mixlab's fused forward (see :mod:`mixlab.proxies.fused_dora`), for which the
dropout mask is drawn by the layer's own dropout module exactly where peft draws it. Anything else
(logit soft-capping or scaling, other adapters) falls back to materialised logits. The loss equals
``F.cross_entropy`` of the model's logits up to floating-point rounding (tests/test_fused_dora.py).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mixlab.proxies.fused_dora import dora_dropout, dora_linear_parts, is_fused

IGNORE_INDEX = -100
#: Logit elements per chunk (rows x vocabulary): big enough for efficient matrix products, small enough
#: that a chunk's logits and their gradient stay in cache.
CHUNK_ELEMENTS = 1 << 19


def _chunk_rows(n_rows: int, vocab: int) -> int:
    return max(16, min(n_rows, CHUNK_ELEMENTS // max(vocab, 1)))


class _ChunkedHeadCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``h @ W.T`` (plain head) or of the DoRA head's output, gradients precomputed.

    DoRA head: ``logits = h W^T + gm1 * (hd W^T) + (hd A^T) Bs^T`` with ``gm1 = g - 1`` and
    ``Bs = s * g * B`` (rows scaled), ``hd`` the dropped-out hidden states.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        hidden_drop: torch.Tensor | None,
        gm1: torch.Tensor | None,
        lora_a: torch.Tensor | None,
        lora_bs: torch.Tensor | None,
        targets: torch.Tensor,
    ) -> torch.Tensor:
        dora = hidden_drop is not None
        n_rows, vocab = hidden.shape[0], weight.shape[0]
        valid_all = targets != IGNORE_INDEX
        n_valid = int(valid_all.sum())
        scale = 1.0 / max(n_valid, 1)
        want_w = ctx.needs_input_grad[1]
        want_b = bias is not None and ctx.needs_input_grad[2]
        d_hidden = torch.empty_like(hidden)
        d_weight = torch.zeros_like(weight) if want_w else None
        d_bias = torch.zeros_like(bias) if want_b else None
        if dora:
            assert hidden_drop is not None and gm1 is not None and lora_a is not None and lora_bs is not None
            d_hidden_drop = torch.empty_like(hidden_drop)
            d_gm1 = torch.zeros_like(gm1)
            d_lora_a = torch.zeros_like(lora_a)
            d_lora_bs = torch.zeros_like(lora_bs)
        total = hidden.new_zeros((), dtype=torch.float32)
        step = _chunk_rows(n_rows, vocab)
        for start in range(0, n_rows, step):
            end = min(start + step, n_rows)
            h = hidden[start:end]
            logits = F.linear(h, weight, bias)
            if dora:
                hd = hidden_drop[start:end]  # type: ignore[index]
                base_drop = F.linear(hd, weight)
                low = F.linear(hd, lora_a)
                logits = torch.addmm(torch.addcmul(logits, base_drop, gm1), low, lora_bs.t())  # type: ignore[union-attr]
            t = targets[start:end]
            valid = valid_all[start:end]
            safe_t = t.clamp(min=0)
            rows = torch.arange(end - start, device=logits.device)
            picked = logits[rows, safe_t]
            # softmax in place over the logits: shift by the row max, exp, normalise
            row_max = logits.amax(dim=1, keepdim=True)
            grad = logits.sub_(row_max).exp_()
            sums = grad.sum(dim=1, keepdim=True)
            lse = sums.log() + row_max
            total += ((lse.squeeze(1) - picked).float() * valid).sum()
            # d loss / d logits = (softmax - onehot) / n_valid on valid rows
            grad.mul_((valid.to(grad.dtype) * scale)[:, None] / sums)
            grad[rows, safe_t] -= valid.to(grad.dtype) * scale
            d_hidden[start:end] = grad @ weight
            if want_w:
                d_weight.addmm_(grad.t(), h)  # type: ignore[union-attr]
            if want_b:
                d_bias += grad.sum(0)  # type: ignore[operator]
            if dora:
                d_gm1 += (grad * base_drop).sum(0)
                grad_low = grad @ lora_bs  # type: ignore[operator]
                d_lora_bs.addmm_(grad.t(), low)
                d_lora_a.addmm_(grad_low.t(), hd)
                d_hidden_drop[start:end] = torch.addmm(grad_low @ lora_a, grad * gm1, weight)  # type: ignore[operator]
        ctx.grads = (
            d_hidden,
            d_weight,
            d_bias,
            *((d_hidden_drop, d_gm1, d_lora_a, d_lora_bs) if dora else (None, None, None, None)),
        )
        return (total * scale).to(hidden.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        grads = tuple(None if g is None else g * grad_out for g in ctx.grads)
        del ctx.grads
        return (*grads, None)


def _supports_fused_head(hf_model: Any) -> bool:
    config = getattr(hf_model, "config", None)
    if config is None or not hasattr(hf_model, "get_decoder"):
        return False
    for attr in ("final_logit_softcapping", "logit_scale", "output_multiplier_scale", "logits_scaling"):
        if getattr(config, attr, None) not in (None, 1, 1.0):
            return False
    return getattr(config, "pretraining_tp", 1) in (None, 1)


def fused_causal_lm_loss(model: Any, input_ids: torch.Tensor) -> torch.Tensor | None:
    """Mean next-token cross-entropy of ``input_ids`` through the chunked fused head, or None if unsupported.

    ``model`` is a Hugging Face causal LM or a peft model around one. Under autocast (bf16 on GPU) it
    returns None: the chunked head runs in the parameters' dtype and is verified on CPU only. It also returns None
    when all the logits fit in one chunk, where chunking saves no memory and costs time. Targets are the next token; the
    last position of every row is ignored (as in :func:`mixlab.proxies.trainer.causal_lm_loss`).
    """
    hf_model = model.get_base_model() if hasattr(model, "get_base_model") else model
    if torch.is_autocast_enabled() or not _supports_fused_head(hf_model):
        return None
    head = hf_model.get_output_embeddings()
    if input_ids.numel() * int(head.weight.shape[0]) <= CHUNK_ELEMENTS:
        # one chunk would hold all the logits anyway: the plain path is as small and faster
        # (measured once: 150 DoRA steps of 128 tokens, 4,096 vocabulary, dropout 0: 8.3 s fused, 6.8 s plain)
        return None
    plain = type(head) is nn.Linear
    if not plain and (not is_fused(head) or head.merged or head.disable_adapters):
        return None
    targets = F.pad(input_ids[:, 1:], (0, 1), value=IGNORE_INDEX).reshape(-1)
    hidden = hf_model.get_decoder()(input_ids=input_ids, use_cache=False).last_hidden_state
    h = hidden.reshape(-1, hidden.shape[-1])
    if plain:
        return _ChunkedHeadCrossEntropy.apply(h, head.weight, head.bias, None, None, None, None, targets)
    parts = dora_linear_parts(head)
    h = h.to(parts.lora_a.dtype)
    dropped = dora_dropout(head, h)
    # without dropout hd = h, and h W^T + (g - 1) h W^T = g h W^T as peft computes
    h_drop = h if dropped is None else dropped
    return _ChunkedHeadCrossEntropy.apply(
        h, parts.weight, parts.bias, h_drop, parts.gain - 1.0, parts.lora_a, parts.scaled_b, targets
    )
