"""Merged proxies: simulate a mixture's proxy by merging per-domain components' weight updates (DeMix).

Each component is a DoRA proxy trained on one domain (``mixlab.proxies.components``); its run folder holds
the adapter merged into the base (``model.safetensors``), i.e. the full weights ``W_i = W_0 + Delta_i``. For
merge coefficients ``c`` (one per component) the merged proxy is

    W(c) = W_0 + sum_i c_i (W_i - W_0)  =  (1 - sum_i c_i) W_0 + sum_i c_i W_i

for every tensor, computed in float32 in the second form, so a corner (``c = e_i``) gives component ``i``'s
weights exactly. The rule for DoRA: merge each component's *merged dense update* ``W_i - W_0``, which is
what DoRA's magnitude vector and low-rank direction produce together. Merging the magnitude vectors and
the ``B A`` products separately would re-normalise the merged direction by its own column norm, a
non-linear function of ``c``: the result would not be linear in the mixture, a corner would still equal its
component, but an interior point would be neither a task-vector sum nor anything the components trained.
Linear merging of the dense updates is exact, needs no adapter code, works the same for any training stack
that saves full weights, and is the variant DeMix reports to work best.

Tensors that no component changed (norms; everything DoRA did not target) stay the base's. The model is
loaded once; each mixture is copied into it in place, so hundreds of mixtures cost evaluation only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

__all__ = ["MERGE_RULES", "ComponentWeights", "MergedProxy", "merge_coefficients", "read_weights"]

SINGLE_FILE = "model.safetensors"
#: How component updates combine (see :meth:`ComponentWeights.merged`).
MERGE_RULES = ("linear", "norm")
INDEX_FILE = "model.safetensors.index.json"


def read_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a model folder's safetensors (one file or shards listed in the index)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if (folder / SINGLE_FILE).exists():
        return load_file(str(folder / SINGLE_FILE))
    index = folder / INDEX_FILE
    if not index.exists():
        raise FileNotFoundError(f"{folder}: no {SINGLE_FILE} or {INDEX_FILE} (a merged model folder?)")
    shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    out: dict[str, torch.Tensor] = {}
    for shard in shards:
        out.update(load_file(str(folder / shard)))
    return out


def merge_coefficients(mixture: ArrayLike, component_mixtures: ArrayLike) -> NDArray[np.float64]:
    """Coefficients ``c`` with ``M c = x``: the components' data mixtures (columns of ``M``) combined into
    the data mixture ``x``.

    With pure one-domain components ``M`` is the identity and ``c = x``. With components that hold a share
    ``s`` of general data, ``c`` puts ``x_d / (1 - s)`` on each other domain's component and the rest on the
    general one, which turns negative (an extrapolation) when ``x`` holds less general data than ``s``.
    """
    x = np.asarray(mixture, dtype=np.float64)
    M = np.asarray(component_mixtures, dtype=np.float64)
    if M.shape[0] != x.shape[0]:
        raise ValueError(f"component mixtures have {M.shape[0]} domains, the mixture {x.shape[0]}")
    if M.shape[0] == M.shape[1]:
        return np.linalg.solve(M, x)
    return np.linalg.lstsq(M, x, rcond=None)[0]


@dataclass
class ComponentWeights:
    """The base weights and, for every tensor some component changed, each component's weights."""

    names: list[str]
    base: dict[str, torch.Tensor]
    changed: dict[str, list[torch.Tensor]]
    """Tensor name -> the components' tensors (in ``names`` order), as stored."""

    @classmethod
    def load(cls, base_dir: str | Path, components: Mapping[str, str | Path]) -> ComponentWeights:
        """Read the base folder and every component folder (``name -> folder``)."""
        base = read_weights(base_dir)
        names = list(components)
        if not names:
            raise ValueError("no components to merge")
        changed: dict[str, list[torch.Tensor]] = {}
        states = []
        for name in names:
            state = read_weights(components[name])
            if set(state) != set(base):
                extra = sorted(set(state) ^ set(base))[:5]
                raise ValueError(f"component {name!r}: tensors differ from the base model's ({extra} ...)")
            for key, value in state.items():
                if value.shape != base[key].shape:
                    raise ValueError(f"component {name!r}: {key} has shape {tuple(value.shape)}")
            states.append(state)
        for key in base:
            if any(not torch.equal(s[key], base[key]) for s in states):
                changed[key] = [s[key] for s in states]
        return cls(names=names, base=base, changed=changed)

    def merged(
        self, coefficients: Sequence[float] | ArrayLike, rule: str = "linear"
    ) -> dict[str, torch.Tensor]:
        """The merged weights (float32) of every changed tensor.

        ``linear``: ``(1 - sum c) W_0 + sum_i c_i W_i``. ``norm``: the same update ``sum_i c_i Delta_i``
        rescaled per tensor to the norm ``sum_i c_i |Delta_i|``: a trained proxy's update has about the
        same norm whatever its mixture (Adam's steps are normalised per coordinate), while a linear merge
        of components that point in different directions shrinks toward the base. Corners are exact
        under both rules.
        """
        if rule not in MERGE_RULES:
            raise ValueError(f"unknown merge rule {rule!r} (allowed: {', '.join(MERGE_RULES)})")
        c = [float(v) for v in np.asarray(coefficients, dtype=np.float64)]
        if len(c) != len(self.names):
            raise ValueError(f"{len(c)} coefficients for {len(self.names)} components")
        rest = 1.0 - sum(c)
        out: dict[str, torch.Tensor] = {}
        for key, tensors in self.changed.items():
            base = self.base[key].to(torch.float32)
            acc = base * rest
            for ci, t in zip(c, tensors, strict=True):
                if ci != 0.0:
                    acc.add_(t.to(torch.float32), alpha=ci)
            if rule == "norm" and sum(ci != 0.0 for ci in c) > 1:
                delta = acc - base
                target = sum(
                    ci * float((t.to(torch.float32) - base).norm()) for ci, t in zip(c, tensors, strict=True)
                )
                norm = float(delta.norm())
                if norm > 0 and target > 0:
                    acc = base + delta * (target / norm)
            out[key] = acc
        return out


class MergedProxy:
    """One model in memory whose weights are set to a merge of components, mixture after mixture."""

    def __init__(self, weights: ComponentWeights, model: Any) -> None:
        self.weights = weights
        self.model = model
        state = model.state_dict()
        missing = [k for k in weights.changed if k not in state]
        if missing:
            raise ValueError(f"the model has no tensors {missing[:5]} that the components changed")
        self._targets = {k: state[k] for k in weights.changed}

    @torch.no_grad()
    def set_coefficients(self, coefficients: Sequence[float] | ArrayLike, rule: str = "linear") -> Any:
        """Copy the merge for ``coefficients`` into the model (in place); returns the model."""
        for key, value in self.weights.merged(coefficients, rule).items():
            target = self._targets[key]
            target.copy_(value.to(device=target.device, dtype=target.dtype))
        return self.model
