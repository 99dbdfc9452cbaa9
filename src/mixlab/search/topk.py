"""RegMix's proposer: simulate many mixtures around the prior, predict them, average the top k."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mixlab.search.simplex import project_bounded_simplex, sample_dirichlet

PredictFn = Callable[[NDArray[np.float64]], NDArray[np.float64]]


def simulate_candidates(
    prior: ArrayLike,
    n: int = 100_000,
    seed: int = 0,
    concentrations: Sequence[float] = (0.1, 0.3, 1.0, 3.0),
    bounds: tuple[ArrayLike, ArrayLike] | None = None,
) -> NDArray[np.float64]:
    """``n`` Dirichlet mixtures around ``prior``, projected into ``bounds`` (lower, upper) when given."""
    W = sample_dirichlet(prior, n, concentrations, np.random.default_rng(seed))
    if bounds is not None:
        W = project_bounded_simplex(W, bounds[0], bounds[1])
    return W


def top_k_indices(values: ArrayLike, k: int, direction: str = "min") -> NDArray[np.int64]:
    """Indices of the ``k`` best values (smallest for 'min', largest for 'max'), best first."""
    v = np.asarray(values, dtype=np.float64)
    if direction not in ("min", "max"):
        raise ValueError(f"direction must be 'min' or 'max', got {direction!r}")
    score = v if direction == "min" else -v
    score = np.where(np.isnan(score), np.inf, score)
    k = min(k, len(v))
    idx = np.argpartition(score, k - 1)[:k]
    return idx[np.argsort(score[idx])]


def simulate_topk(
    predict_fn: PredictFn,
    prior: ArrayLike,
    n: int = 100_000,
    k: int = 128,
    seed: int = 0,
    concentrations: Sequence[float] = (0.1, 0.3, 1.0, 3.0),
    bounds: tuple[ArrayLike, ArrayLike] | None = None,
    direction: str = "min",
    candidates: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """The mean of the ``k`` best of ``n`` simulated mixtures under ``predict_fn`` (RegMix's proposer).

    Averaging the top k rather than taking the single best smooths over the regressor's noise. The
    average of feasible mixtures is feasible (the bounded simplex is convex). ``candidates`` reuses an
    already simulated set.
    """
    W = candidates if candidates is not None else simulate_candidates(prior, n, seed, concentrations, bounds)
    values = np.asarray(predict_fn(W), dtype=np.float64)
    best = W[top_k_indices(values, k, direction)]
    w = best.mean(axis=0)
    return w / w.sum()
