"""Rules and the combined score: cheap passes over signal columns, run after every signal is computed.

Rules give each document a reason (the first enabled rule it fails). The score is a weighted mean of
normalised signals, each turned so that higher is better: ``rank`` (percentile rank, robust to scale and
tails) or ``zscore`` (standard score on the log for heavy-tailed scorers, clipped to +-5), over the pool
or within each domain.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mixlab.quality.config import FilterRule

ZSCORE_CLIP = 5.0


@dataclass(frozen=True)
class Term:
    """One signal in the score."""

    column: str
    weight: float
    """Positive."""
    higher_is_better: bool
    log_scale: bool = False


def _groups(n: int, domains: np.ndarray | None) -> list[np.ndarray]:
    if domains is None:
        return [np.arange(n)]
    dom = np.asarray(domains, dtype=object)
    return [np.flatnonzero(dom == d) for d in sorted(set(dom.tolist()), key=str)]


def apply_rules(
    frame: pd.DataFrame, rules: Iterable[FilterRule], domains: np.ndarray | None = None
) -> pd.Series:
    """The reason of every document: the name of the first enabled rule it fails ('' when kept).

    A NaN signal never fails a rule (e.g. ``q_chars_per_token`` without token counts). Quantile bounds
    are taken within each domain of ``domains`` (over all documents when None or ``per_domain`` is off).
    """
    reason = np.full(len(frame), "", dtype=object)
    for rule in rules:
        if not rule.enabled:
            continue
        if rule.signal not in frame.columns:
            raise ValueError(f"filter rule {rule.name!r}: unknown signal {rule.signal!r}")
        v = frame[rule.signal].to_numpy(dtype=np.float64)
        fail = np.zeros(len(frame), dtype=bool)
        if rule.min is not None:
            fail |= v < rule.min
        if rule.max is not None:
            fail |= v > rule.max
        if rule.min_quantile is not None or rule.max_quantile is not None:
            for idx in _groups(len(frame), domains if rule.per_domain else None):
                g = v[idx]
                if not np.isfinite(g).any():
                    continue
                if rule.max_quantile is not None:
                    fail[idx] |= g > np.nanquantile(g, rule.max_quantile)
                if rule.min_quantile is not None:
                    fail[idx] |= g < np.nanquantile(g, rule.min_quantile)
        for sig, (lo, hi) in rule.only_if.items():
            if sig not in frame.columns:
                raise ValueError(f"filter rule {rule.name!r}: unknown signal {sig!r} in only_if")
            c = frame[sig].to_numpy(dtype=np.float64)
            if lo is not None:
                fail &= c >= lo
            if hi is not None:
                fail &= c <= hi
        reason[(reason == "") & fail] = rule.name
    return pd.Series(reason, index=frame.index, name="quality_reason")


def _rank(x: pd.Series, domains: np.ndarray | None) -> np.ndarray:
    if domains is None:
        r = x.rank(pct=True, method="average")
    else:
        r = x.groupby(np.asarray(domains, dtype=object), sort=False).rank(pct=True, method="average")
    return r.fillna(0.5).to_numpy()


def _zscore(x: pd.Series, domains: np.ndarray | None, log_scale: bool) -> np.ndarray:
    v = x.to_numpy(dtype=np.float64)
    if log_scale:
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(v > 0, np.log(v), np.nan)
    z = np.zeros(len(v))
    for idx in _groups(len(v), domains):
        g = v[idx]
        finite = np.isfinite(g)
        if finite.sum() < 2:
            continue
        sd = float(np.std(g[finite]))
        if sd > 0:
            z[idx] = np.where(finite, (g - float(np.mean(g[finite]))) / sd, 0.0)
    return np.clip(z, -ZSCORE_CLIP, ZSCORE_CLIP)


def combined_score(
    frame: pd.DataFrame,
    terms: Iterable[Term],
    normalize: str = "rank",
    domains: np.ndarray | None = None,
) -> np.ndarray:
    """Weighted mean of the normalised terms (each turned so higher is better).

    ``rank``: percentile ranks in [0, 1], a NaN value ranks as the median; ``zscore``: standard scores
    (NaN = 0). Columns that are all NaN (e.g. no token counts) are skipped. ``domains``: normalise within
    each domain. With no term every document scores 0.5.
    """
    total = np.zeros(len(frame))
    wsum = 0.0
    for t in terms:
        if t.weight == 0:
            continue
        if t.column not in frame.columns:
            raise ValueError(f"score weight on unknown signal {t.column!r}")
        x = frame[t.column]
        if x.isna().all():
            continue
        if normalize == "rank":
            r = _rank(x, domains)
            total += t.weight * (r if t.higher_is_better else 1.0 - r)
        elif normalize == "zscore":
            z = _zscore(x, domains, t.log_scale)
            total += t.weight * (z if t.higher_is_better else -z)
        else:
            raise ValueError(f"unknown normalisation {normalize!r} (rank, zscore)")
        wsum += t.weight
    return total / wsum if wsum else np.full(len(frame), 0.5)


def weighted_rank_score(frame: pd.DataFrame, weights: dict[str, float]) -> np.ndarray:
    """Score in [0, 1]: weighted mean of percentile ranks (1 - rank for negative weights)."""
    terms = [Term(c, abs(w), w > 0) for c, w in weights.items()]
    return combined_score(frame, terms, "rank")
