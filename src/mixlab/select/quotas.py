"""Quotas: tokens per domain from a mixture and a budget, and per quality bucket within a domain.

All allocation is water-filling: split an amount in proportion to weights, cap each part at its
capacity, and hand what a capped part cannot take to the uncapped parts in proportion to their weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

#: Relative slack when comparing a quota with a capacity (weights are stored with 8 decimals).
CAPACITY_TOLERANCE = 1e-6


class ShortfallError(ValueError):
    """A domain holds fewer tokens than its quota, even repeated up to the epochs cap."""


def water_fill(total: float, weights: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Split ``total`` in proportion to ``weights`` with part ``i`` at most ``caps[i]``.

    Parts with zero weight get nothing. When the weighted parts cannot hold ``total`` they are all filled
    to their caps (the caller checks the sum).
    """
    weights = np.asarray(weights, dtype=np.float64)
    caps = np.asarray(caps, dtype=np.float64)
    out = np.zeros_like(weights)
    free = weights > 0
    remaining = float(total)
    while free.any() and remaining > 0:
        share = remaining * weights[free] / weights[free].sum()
        over = share >= caps[free]
        if not over.any():
            out[free] = share
            break
        idx = np.flatnonzero(free)[over]
        out[idx] = caps[idx]
        remaining -= float(caps[idx].sum())
        free[idx] = False
    return out


@dataclass
class DomainQuotas:
    """Token quota per domain, and what was moved when a domain fell short."""

    quotas: dict[str, float]
    requested: dict[str, float]
    redistributed: dict[str, dict[str, float]] = field(default_factory=dict)


def domain_quotas(
    mixture: Mapping[str, float],
    budget: int,
    capacity: Mapping[str, float],
    available: Mapping[str, int],
    max_epochs: float,
    shortfall: str = "error",
) -> DomainQuotas:
    """``weight * budget`` per domain, checked against ``capacity`` (eligible tokens * max_epochs).

    With ``shortfall="error"`` a domain whose quota exceeds its capacity raises :class:`ShortfallError`
    naming the domain, quota, available tokens and cap; with ``"redistribute"`` the shortfall is water-filled
    onto the other domains in proportion to their weights.
    """
    domains = [d for d, w in mixture.items() if w > 0]
    w = np.array([mixture[d] for d in domains], dtype=np.float64)
    w = w / w.sum()
    requested = {d: float(x * budget) for d, x in zip(domains, w, strict=True)}
    caps = np.array([float(capacity.get(d, 0.0)) for d in domains])
    slack = caps * (1.0 + CAPACITY_TOLERANCE) + 1.0
    short = [d for d, c, s in zip(domains, caps, slack, strict=True) if requested[d] > s]
    if short and shortfall == "error":
        lines = [
            f"domain {d!r}: quota {requested[d]:,.0f} tokens (weight {mixture[d]:.4f} x budget {budget:,}) > "
            f"{int(available.get(d, 0)):,} available tokens x max_epochs {max_epochs:g} = "
            f"{float(capacity.get(d, 0.0)):,.0f}"
            for d in short
        ]
        raise ShortfallError(
            "not enough data for the mixture: "
            + "; ".join(lines)
            + ". Lower the weight or budget, raise max_epochs, or use shortfall='redistribute'."
        )
    if sum(caps) < budget * (1.0 - CAPACITY_TOLERANCE) - 1.0:
        raise ShortfallError(
            f"the domains of the mixture hold {sum(caps):,.0f} tokens at max_epochs {max_epochs:g}, "
            f"fewer than the budget {budget:,}: "
            + ", ".join(f"{d}: {int(available.get(d, 0)):,} available" for d in domains)
        )
    if not short:
        quotas = {d: min(requested[d], float(c)) for d, c in zip(domains, caps, strict=True)}
        return DomainQuotas(quotas=quotas, requested=requested)
    alloc = water_fill(float(budget), w, caps)
    quotas = {d: float(a) for d, a in zip(domains, alloc, strict=True)}
    moved = {
        d: {
            "requested_tokens": requested[d],
            "granted_tokens": quotas[d],
            "delta_tokens": quotas[d] - requested[d],
        }
        for d in domains
        if abs(quotas[d] - requested[d]) > 0.5
    }
    return DomainQuotas(quotas=quotas, requested=requested, redistributed=moved)


def split_quota(
    quota: float, shares: Mapping[int, float], available: Mapping[int, int], max_epochs: float
) -> dict[int, float]:
    """Spread a domain's quota over quality buckets by ``shares``.

    Buckets are first filled without repetition (capacity: their tokens); only when the buckets together
    hold less than the quota may they repeat, up to ``max_epochs`` times their tokens.
    """
    buckets = list(shares)
    weights = np.array([shares[b] for b in buckets], dtype=np.float64)
    avail = np.array([float(available.get(b, 0)) for b in buckets])
    weights = np.where(avail > 0, weights, 0.0)
    if weights.sum() <= 0:
        return {b: 0.0 for b in buckets}
    once = avail[weights > 0].sum()
    caps = avail if quota <= once else avail * max_epochs
    alloc = water_fill(quota, weights, caps)
    return {b: float(a) for b, a in zip(buckets, alloc, strict=True)}
