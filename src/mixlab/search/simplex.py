"""Mixtures on the (bounded) probability simplex: priors, bounds, Dirichlet sampling and projection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mixlab.search.config import Constraints


def as_vector(
    value: float | Mapping[str, float] | ArrayLike, domains: Sequence[str], name: str, default: float
) -> NDArray[np.float64]:
    """A per-domain vector from a scalar, a {domain: value} mapping (others get ``default``) or an array."""
    if isinstance(value, Mapping):
        unknown = set(value) - set(domains)
        if unknown:
            raise ValueError(f"{name}: unknown domain(s) {sorted(unknown)} (domains: {', '.join(domains)})")
        return np.array([float(value.get(d, default)) for d in domains])
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(len(domains), float(arr))
    if arr.shape != (len(domains),):
        raise ValueError(f"{name}: expected {len(domains)} values, got shape {arr.shape}")
    return arr.copy()


def normalise_prior(prior: Mapping[str, float] | ArrayLike, domains: Sequence[str]) -> NDArray[np.float64]:
    """A prior mixture as a vector summing to 1 (negative or all-zero priors are an error)."""
    vec = as_vector(prior, domains, "prior", 0.0)
    if (vec < 0).any() or not np.isfinite(vec).all() or vec.sum() <= 0:
        raise ValueError("prior: weights must be finite, non-negative and not all zero")
    return vec / vec.sum()


def feasible_bounds(
    domains: Sequence[str], constraints: Constraints
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Lower and upper weight per domain; the upper bound includes availability x max_epochs / budget.

    Raises ``ValueError`` when no mixture satisfies the bounds (sum of lower > 1 or sum of upper < 1).
    """
    lower = np.clip(as_vector(constraints.min_weight, domains, "min_weight", 0.0), 0.0, 1.0)
    upper = np.clip(as_vector(constraints.max_weight, domains, "max_weight", 1.0), 0.0, 1.0)
    if constraints.availability is not None:
        assert constraints.budget is not None
        avail = as_vector(constraints.availability, domains, "availability", 0.0)
        upper = np.minimum(upper, avail * constraints.max_epochs / constraints.budget)
    if (lower > upper + 1e-12).any():
        bad = [d for d, lo, hi in zip(domains, lower, upper, strict=True) if lo > hi + 1e-12]
        raise ValueError(
            f"infeasible bounds: minimum weight above the maximum (or availability cap) for {bad}"
        )
    if lower.sum() > 1 + 1e-9:
        raise ValueError(f"infeasible bounds: minimum weights sum to {lower.sum():.4f} > 1")
    if upper.sum() < 1 - 1e-9:
        raise ValueError(
            f"infeasible bounds: the most every domain may take sums to {upper.sum():.4f} < 1 "
            "(too little data for the budget at this epochs cap?)"
        )
    return lower, upper


def project_bounded_simplex(
    V: ArrayLike, lower: ArrayLike | None = None, upper: ArrayLike | None = None, iters: int = 60
) -> NDArray[np.float64]:
    """Euclidean projection of each row of ``V`` onto {w : lower <= w <= upper, sum w = 1} (bisection on the shift)."""
    V = np.atleast_2d(np.asarray(V, dtype=np.float64))
    d = V.shape[1]
    lo = np.zeros(d) if lower is None else np.asarray(lower, dtype=np.float64)
    hi = np.ones(d) if upper is None else np.asarray(upper, dtype=np.float64)
    a = (V - hi).min(axis=1) - 1.0  # sum(clip(V - a)) >= 1
    b = (V - lo).max(axis=1) + 1.0  # sum(clip(V - b)) <= 1
    for _ in range(iters):
        mid = 0.5 * (a + b)
        total = np.clip(V - mid[:, None], lo, hi).sum(axis=1)
        too_much = total > 1.0
        a = np.where(too_much, mid, a)
        b = np.where(too_much, b, mid)
    W = np.clip(V - (0.5 * (a + b))[:, None], lo, hi)
    # remove the tiny bisection residue on coordinates strictly inside their bounds
    resid = 1.0 - W.sum(axis=1)
    free = (W > lo + 1e-12) & (W < hi - 1e-12)
    n_free = np.maximum(free.sum(axis=1), 1)
    W = np.clip(W + free * (resid / n_free)[:, None], lo, hi)
    return W


def sample_dirichlet(
    center: ArrayLike,
    n: int,
    concentrations: Sequence[float],
    rng: np.random.Generator,
    floor: float = 1e-3,
) -> NDArray[np.float64]:
    """``n`` mixtures from Dirichlet(c * d * center) for each concentration c in turn (RegMix's sampler).

    A small ``floor`` keeps domains with zero prior reachable.
    """
    center = np.asarray(center, dtype=np.float64)
    d = len(center)
    base = (center + floor) / (center + floor).sum()
    parts = np.array_split(np.arange(n), len(concentrations))
    out = [
        rng.dirichlet(np.maximum(base * c * d, 1e-3), size=len(idx))
        for c, idx in zip(concentrations, parts, strict=True)
    ]
    W = np.vstack(out)
    W = np.nan_to_num(W, nan=0.0)
    sums = W.sum(axis=1, keepdims=True)
    bad = sums[:, 0] <= 0
    W[bad] = base
    return W / W.sum(axis=1, keepdims=True)


def kl_divergence(W: ArrayLike, prior: ArrayLike, eps: float = 1e-12) -> NDArray[np.float64]:
    """KL(w || prior) per row (0 log 0 = 0)."""
    W = np.atleast_2d(np.asarray(W, dtype=np.float64))
    p = np.asarray(prior, dtype=np.float64)
    return np.sum(np.where(W > 0, W * (np.log(W + eps) - np.log(p + eps)), 0.0), axis=1)
