"""Constrained mixture optimisation (Olmix-style): bounds, availability x epochs at a budget, KL pull to the prior.

The regressors may be piecewise constant (trees), so the search is derivative-free first: many feasible
mixtures are simulated, the best few seed rounds of local Dirichlet sampling that shrink around the
incumbent, and a final SLSQP polish (finite differences) helps smooth models. Every candidate is projected
onto the feasible set, so the answer always satisfies the constraints.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize

from mixlab.search.config import Constraints
from mixlab.search.simplex import feasible_bounds, kl_divergence, project_bounded_simplex, sample_dirichlet
from mixlab.search.topk import PredictFn, top_k_indices


def constrained_optimize(
    predict_fn: PredictFn,
    prior: ArrayLike,
    domains: Sequence[str] | None = None,
    constraints: Constraints | None = None,
    direction: str = "min",
    n_samples: int = 20_000,
    n_starts: int = 4,
    local_rounds: int = 6,
    local_samples: int = 2_000,
    seed: int = 0,
    polish: bool = True,
) -> NDArray[np.float64]:
    """The feasible mixture with the best ``predict_fn`` value plus ``kl_weight`` x KL(w || prior).

    ``constraints`` gives min/max weights (scalar or per domain), availability (tokens per domain) with the
    budget and epochs cap, and the KL weight; ``domains`` names the vector entries for per-domain settings.
    """
    prior = np.asarray(prior, dtype=np.float64)
    d = len(prior)
    domains = list(domains) if domains is not None else [f"d{i}" for i in range(d)]
    constraints = constraints or Constraints()
    lower, upper = feasible_bounds(domains, constraints)
    sign = 1.0 if direction == "min" else -1.0
    if direction not in ("min", "max"):
        raise ValueError(f"direction must be 'min' or 'max', got {direction!r}")
    kl_w = constraints.kl_weight
    prior_safe = (prior + 1e-6) / (prior + 1e-6).sum()

    def objective(W: NDArray[np.float64]) -> NDArray[np.float64]:
        W = np.atleast_2d(W)
        value = sign * np.asarray(predict_fn(W), dtype=np.float64)
        if kl_w > 0:
            value = value + kl_w * kl_divergence(W, prior_safe)
        return value

    rng = np.random.default_rng(seed)
    start_prior = project_bounded_simplex(prior, lower, upper)
    W = project_bounded_simplex(sample_dirichlet(prior, n_samples, (0.1, 0.3, 1.0, 3.0), rng), lower, upper)
    W = np.vstack([start_prior, W])
    vals = objective(W)
    starts = W[top_k_indices(vals, n_starts, "min")]
    best_w, best_v = W[int(np.nanargmin(vals))], float(np.nanmin(vals))
    for start in starts:
        current, current_v = start, float(objective(start)[0])
        for r in range(local_rounds):
            conc = 50.0 * (2.0**r)  # shrink the neighbourhood each round
            local = project_bounded_simplex(
                rng.dirichlet(np.maximum(current * conc, 0.05), local_samples), lower, upper
            )
            lv = objective(local)
            i = int(np.nanargmin(lv))
            if lv[i] < current_v:
                current, current_v = local[i], float(lv[i])
        if current_v < best_v:
            best_w, best_v = current, current_v
    if polish:
        res = minimize(
            lambda w: float(objective(project_bounded_simplex(w, lower, upper))[0]),
            best_w,
            method="SLSQP",
            bounds=list(zip(lower, upper, strict=True)),
            constraints=[{"type": "eq", "fun": lambda w: float(np.sum(w) - 1.0)}],
            options={"maxiter": 50, "eps": 1e-3},
        )
        cand = project_bounded_simplex(res.x, lower, upper)[0]
        cand_v = float(objective(cand)[0])
        if np.isfinite(cand_v) and cand_v < best_v:
            best_w, best_v = cand, cand_v
    return project_bounded_simplex(best_w, lower, upper)[0]
