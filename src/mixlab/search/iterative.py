"""Iterative rounds, CLIMB's way: after a round is fitted, propose the next batch from the best region.

Round r's predictor scores many simulated mixtures (broad ones around the prior and local ones around the
best measured and predicted mixtures). Most of the new batch exploits: diverse picks (farthest-point) from
the predicted top of that pool. The rest explores: the most uncertain candidates when the model has a
predictive std, otherwise random broad candidates. Mixtures already in the swarm (or too close to one)
are never proposed again, so a user can run 64 -> 32 -> 16 proxies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from mixlab.search.simplex import normalise_prior, project_bounded_simplex, sample_dirichlet
from mixlab.search.topk import top_k_indices

if TYPE_CHECKING:
    from mixlab.regression.fit import FitResult


def _farthest_points(
    W: NDArray[np.float64], m: int, taken: NDArray[np.float64], min_dist: float
) -> list[int]:
    """Greedy picks from ``W`` (in order of preference) that are >= ``min_dist`` (L1) from taken and each other."""
    chosen: list[int] = []
    pool = taken.copy() if len(taken) else np.empty((0, W.shape[1]))
    for i in range(len(W)):
        if len(chosen) >= m:
            break
        if len(pool) and np.abs(pool - W[i]).sum(axis=1).min() < min_dist:
            continue
        chosen.append(i)
        pool = np.vstack([pool, W[i]])
    return chosen


def propose_next_round(
    fitted: FitResult,
    n_new: int,
    explore_frac: float = 0.25,
    seed: int = 0,
    objective: str | None = None,
    prior: Mapping[str, float] | ArrayLike | None = None,
    n_candidates: int = 50_000,
    top_frac: float = 0.02,
    min_distance: float = 0.05,
    bounds: tuple[ArrayLike, ArrayLike] | None = None,
    concentrations: Sequence[float] = (0.1, 0.3, 1.0, 3.0),
    id_prefix: str = "next",
    centres: ArrayLike | None = None,
    local_concentration: float = 30.0,
) -> pd.DataFrame:
    """``n_new`` new mixtures (a ratios table, ids ``<id_prefix>-<i>``) for the next proxy round.

    ``objective`` is a fitted target name (default: the only one, or a 'sum'/'weighted' target if there is
    one); its direction decides what 'best' means. ``min_distance`` is the minimum L1 distance to every
    mixture already in the swarm and to each other new one. Local candidates are Dirichlet draws
    (concentration ``local_concentration`` x the centre) around the best measured mixtures and, when
    given, around ``centres`` (rows in domain order, e.g. the predicted top-k of a search).
    """
    if n_new < 1:
        raise ValueError("n_new must be >= 1")
    if not 0.0 <= explore_frac <= 1.0:
        raise ValueError("explore_frac must be in [0, 1]")
    name = objective or _default_objective(fitted)
    direction = fitted.targets[name].direction
    rng = np.random.default_rng(seed)
    domains = fitted.domains
    prior_vec = (
        normalise_prior(prior, domains) if prior is not None else fitted.ratios.mean(axis=0).to_numpy()
    )
    seen = fitted.ratios.to_numpy(dtype=np.float64)
    measured = fitted.values[name].to_numpy()
    best_measured = seen[top_k_indices(measured, min(8, len(measured)), direction)]
    if centres is not None:
        extra = np.atleast_2d(np.asarray(centres, dtype=np.float64))
        if extra.shape[1] != len(domains):
            raise ValueError(f"centres have {extra.shape[1]} columns, the fit has {len(domains)} domains")
        best_measured = np.vstack([best_measured, extra])

    broad = sample_dirichlet(prior_vec, n_candidates // 2, concentrations, rng)
    per_centre = max(1, n_candidates // (2 * len(best_measured)))
    local = np.vstack(
        [rng.dirichlet(np.maximum(w * local_concentration, 0.05), size=per_centre) for w in best_measured]
    )
    pool = np.vstack([broad, local])
    if bounds is not None:
        pool = project_bounded_simplex(pool, bounds[0], bounds[1])
    mean, std = fitted.predict_with_std(pool, name)

    n_explore = round(n_new * explore_frac)
    n_exploit = n_new - n_explore
    order = top_k_indices(mean, max(n_exploit * 20, int(len(pool) * top_frac)), direction)
    picks = [int(order[i]) for i in _farthest_points(pool[order], n_exploit, seen, min_distance)]
    if len(picks) < n_exploit:  # the predicted top is one tight cluster: go further down the ranking
        ranked = top_k_indices(mean, len(pool), direction)
        rest = ranked[~np.isin(ranked, order)]
        taken_so_far = np.vstack([seen, pool[picks]]) if picks else seen
        more = _farthest_points(pool[rest], n_exploit - len(picks), taken_so_far, min_distance)
        picks += [int(rest[i]) for i in more]
    taken = np.vstack([seen, pool[picks]]) if picks else seen
    if n_explore:
        if np.ptp(std) > 0:  # the model knows where it is unsure: explore there
            explore_order = np.argsort(-std)
        else:
            explore_order = rng.permutation(len(broad))  # broad candidates are the first len(broad) rows
        picked = set(picks)
        explore_order = np.array([i for i in explore_order if i not in picked], dtype=np.int64)
        extra = _farthest_points(pool[explore_order], n_explore, taken, min_distance)
        picks += [int(explore_order[i]) for i in extra]
    if len(picks) < n_new:
        raise ValueError(
            f"only {len(picks)} of {n_new} new mixtures are at least {min_distance} (L1) from the swarm and each "
            "other; lower min_distance or raise n_candidates"
        )
    W = pool[picks]
    W = W / W.sum(axis=1, keepdims=True)
    ids = [f"{id_prefix}-{i:04d}" for i in range(len(W))]
    return pd.DataFrame(W, columns=domains, index=pd.Index(ids, name="run"))


def _default_objective(fitted: FitResult) -> str:
    if len(fitted.targets) == 1:
        return next(iter(fitted.targets))
    combined = [t.name for t in fitted.targets.values() if t.kind in ("sum", "weighted")]
    if combined:
        return combined[0]
    raise ValueError(f"several targets fitted ({', '.join(fitted.targets)}); name the objective")
