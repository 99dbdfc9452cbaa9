"""A fused forward for peft's DoRA layers: the same function, fewer passes over the activations.

peft computes a DoRA linear layer as (``g = m / ||W + s·B·A||`` per output row, the norm detached)::

    out = W·x + (g - 1) ⊙ (W·drop(x)) + g ⊙ s · B·A·drop(x)

as five separate tensor operations over the (tokens × out_features) output, each a full pass over
memory in the forward and again in the backward. For a small proxy model with a large vocabulary the
output head dominates and those passes cost as much as the matrix products. Here the same expression
is evaluated as::

    out = addmm(addcmul(W·x, W·drop(x), g - 1), A·drop(x), (s·g ⊙ B)ᵀ)

one element-wise pass (``addcmul``) plus matrix products, because ``g ⊙ s·B·A·drop(x)`` equals
``A·drop(x)`` times ``B`` with its rows scaled by ``s·g`` (an out_features × r matrix, cheap to scale).
The weight norm is computed under ``no_grad`` (peft detaches it too). Embedding layers get the same
treatment (``g ⊙ (E[x] + s·A[x]·B) = g ⊙ E[x] + A[x]·(s·g ⊙ B)``, no dropout, as in peft).

The parameters stay peft's own (``lora_A``, ``lora_B``, ``lora_magnitude_vector``), so saving the
adapter, ``merge_and_unload`` and loading with peft are untouched. Dropout is drawn by the layer's own
``nn.Dropout`` at the same point as peft draws it, so under the same seed the masks, the outputs and the
gradients equal peft's up to floating-point rounding (tests/test_fused_dora.py checks both). Layers in
any other configuration (merged, several adapters, quantized or biased LoRA, ``fan_in_fan_out``, embedding
scale) keep peft's forward.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_ORIGINAL = "_mixlab_peft_forward"


def _single_dora_adapter(module: Any) -> str | None:
    """The adapter name when ``module`` runs exactly one plain DoRA adapter that the fused path supports."""
    active = list(getattr(module, "active_adapters", []) or [])
    if len(active) != 1:
        return None
    name = active[0]
    if not getattr(module, "use_dora", {}).get(name, False):
        return None
    if getattr(module, "lora_bias", {}).get(name, False):
        return None
    if getattr(module, "fan_in_fan_out", False):
        return None
    if name not in getattr(module, "lora_magnitude_vector", {}):
        return None
    return name


def weight_norm(weight: torch.Tensor, up: torch.Tensor, down: torch.Tensor, scaling: float) -> torch.Tensor:
    """Row norms of ``weight + scaling * up @ down``, outside autograd (DoRA treats the norm as a constant)."""
    with torch.no_grad():
        return torch.linalg.norm(torch.addmm(weight, up, down, alpha=scaling), dim=1)


@dataclass(frozen=True)
class DoraLinearParts:
    """A DoRA linear layer's pieces for the fused expression (see the module docstring)."""

    weight: torch.Tensor
    """The frozen base weight W (out x in), in the adapter's dtype."""
    bias: torch.Tensor | None
    lora_a: torch.Tensor
    """A (r x in)."""
    gain: torch.Tensor
    """g = m / ||W + s·B·A|| per output row (gradient flows to m only)."""
    scaled_b: torch.Tensor
    """s·g ⊙ B (out x r): B with its rows scaled, so that g ⊙ s·B·A·x = (A·x)·scaled_bᵀ."""


def dora_linear_parts(module: Any) -> DoraLinearParts:
    """The fused-expression pieces of a single-adapter peft DoRA ``lora.Linear``."""
    name = module.active_adapters[0]
    base: nn.Linear = module.get_base_layer()
    lora_a: torch.Tensor = module.lora_A[name].weight
    lora_b: torch.Tensor = module.lora_B[name].weight
    scaling = float(module.scaling[name])
    weight = base.weight.to(lora_a.dtype)
    gain = module.lora_magnitude_vector[name].weight / weight_norm(weight, lora_b, lora_a, scaling)
    return DoraLinearParts(weight, base.bias, lora_a, gain, lora_b * (scaling * gain)[:, None])


def dora_dropout(module: Any, x: torch.Tensor) -> torch.Tensor | None:
    """``x`` through the adapter's own dropout module when it is active (training, p > 0), else None."""
    dropout = module.lora_dropout[module.active_adapters[0]]
    return dropout(x) if module.training and not isinstance(dropout, nn.Identity) else None


def _needs_peft_forward(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return bool(
        module.disable_adapters or module.merged or args or kwargs or len(module.active_adapters) != 1
    )


def _add_low_rank(mixed: torch.Tensor, low: torch.Tensor, scaled_b: torch.Tensor) -> torch.Tensor:
    """``mixed + low @ scaled_b.T`` over the last dimension, as one ``addmm`` on flattened rows."""
    out = torch.addmm(mixed.reshape(-1, mixed.shape[-1]), low.reshape(-1, low.shape[-1]), scaled_b.t())
    return out.view(*mixed.shape[:-1], out.shape[-1])


def _linear_forward(self: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    if _needs_peft_forward(self, args, kwargs):
        return getattr(self, _ORIGINAL)(x, *args, **kwargs)
    parts = dora_linear_parts(self)
    x = x.to(parts.lora_a.dtype)
    base_out = F.linear(x, parts.weight)
    dropped = dora_dropout(self, x)
    if dropped is not None:
        x = dropped
        mixed = torch.addcmul(base_out, F.linear(x, parts.weight), parts.gain - 1.0)
    else:
        mixed = base_out * parts.gain
    if parts.bias is not None:
        mixed = mixed + parts.bias
    return _add_low_rank(mixed, F.linear(x, parts.lora_a), parts.scaled_b)


def _embedding_forward(self: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    if _needs_peft_forward(self, args, kwargs):
        return getattr(self, _ORIGINAL)(x, *args, **kwargs)
    name = self.active_adapters[0]
    base: nn.Embedding = self.get_base_layer()
    emb_a: torch.Tensor = self.lora_embedding_A[name]  # (r, vocab)
    emb_b: torch.Tensor = self.lora_embedding_B[name]  # (dim, r)
    scaling = float(self.scaling[name])
    # peft's embedding DoRA normalises each embedding dimension over the vocabulary (a (dim,) magnitude)
    gain = self.lora_magnitude_vector[name].weight / weight_norm(base.weight.t(), emb_b, emb_a, scaling)
    rows = self._embed(x, emb_a.t())  # (..., r)
    return _add_low_rank(base(x) * gain, rows, emb_b * (scaling * gain)[:, None])


def is_fused(module: nn.Module) -> bool:
    """Whether :func:`fuse_dora` gave ``module`` the fused forward."""
    return hasattr(module, _ORIGINAL)


def fuse_dora(model: nn.Module) -> int:
    """Give every supported peft DoRA layer of ``model`` the fused forward; returns how many were fused.

    Idempotent; :func:`unfuse_dora` restores peft's forward.
    """
    from peft.tuners.lora import layer as lora_layer

    fused = 0
    for module in model.modules():
        if hasattr(module, _ORIGINAL):
            fused += 1
            continue
        if type(module) is lora_layer.Linear and isinstance(module.get_base_layer(), nn.Linear):
            forward = _linear_forward
        elif type(module) is lora_layer.Embedding and isinstance(module.get_base_layer(), nn.Embedding):
            if module._get_embed_scale() is not None:
                continue
            forward = _embedding_forward
        else:
            continue
        if _single_dora_adapter(module) is None:
            continue
        setattr(module, _ORIGINAL, module.forward)
        module.forward = types.MethodType(forward, module)
        fused += 1
    return fused


def unfuse_dora(model: nn.Module) -> int:
    """Restore peft's own forward on every layer :func:`fuse_dora` changed; returns how many."""
    restored = 0
    for module in model.modules():
        if hasattr(module, _ORIGINAL):
            module.forward = getattr(module, _ORIGINAL)
            delattr(module, _ORIGINAL)
            restored += 1
    return restored
