"""Search every objective at once (the total, each task, weighted sums) and write ``optimal.json``.

For each objective the optimum comes with its predicted value and a 95% interval: the models' own
predictive std where they have one (GP, bootstrap), else their out-of-fold CV RMSE. The trade-off table
says what each task optimum costs on the chosen (total) objective, and what the total optimum costs on
each task.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mixlab.pool.pool import atomic_write_text
from mixlab.search.config import Constraints, Objective, SearchConfig
from mixlab.search.constrained import constrained_optimize
from mixlab.search.simplex import feasible_bounds, normalise_prior
from mixlab.search.topk import simulate_candidates, simulate_topk

if TYPE_CHECKING:
    from mixlab.regression.fit import FitResult

Z95 = 1.959964


def default_objectives(fit: FitResult) -> list[Objective]:
    """One objective per fitted target, each in that target's direction."""
    return [
        Objective(name=t.name, weights={t.name: 1.0}, direction=t.direction) for t in fit.targets.values()
    ]


def chosen_objective(fit: FitResult, objectives: list[Objective]) -> str:
    """The headline objective: a sum/weighted target if any, else a multi-target objective, else the first."""
    for obj in objectives:
        if len(obj.weights) == 1 and fit.targets[next(iter(obj.weights))].kind in ("sum", "weighted"):
            return obj.name
    for obj in objectives:
        if len(obj.weights) > 1:
            return obj.name
    return objectives[0].name


def _check_objective(fit: FitResult, obj: Objective) -> None:
    unknown = [t for t in obj.weights if t not in fit.models]
    if unknown:
        raise ValueError(
            f"objective {obj.name!r}: no fitted target(s) {unknown} (fitted: {', '.join(fit.models)})"
        )


def objective_values(
    fit: FitResult,
    obj: Objective,
    W: NDArray[np.float64],
    cache: dict[str, NDArray[np.float64]] | None = None,
) -> NDArray[np.float64]:
    """The objective's weighted sum of target predictions for mixtures ``W`` (``cache`` reuses predictions)."""
    total = np.zeros(len(W))
    for target, weight in obj.weights.items():
        if cache is not None and target in cache:
            pred = cache[target]
        else:
            pred = fit.predict(W, target)
            if cache is not None:
                cache[target] = pred
        total += weight * pred
    return total


def objective_with_std(fit: FitResult, obj: Objective, w: ArrayLike) -> tuple[float, float, dict[str, float]]:
    """Objective value, its std (independent targets) and each target's prediction at one mixture."""
    W = np.atleast_2d(np.asarray(w, dtype=np.float64))
    value, var, per_target = 0.0, 0.0, {}
    for target, weight in obj.weights.items():
        mean, std = fit.predict_with_std(W, target)
        per_target[target] = float(mean[0])
        value += weight * float(mean[0])
        var += (weight * float(std[0])) ** 2
    return value, float(np.sqrt(var)), per_target


def _better(a: float, b: float, direction: str) -> float:
    """How much better ``a`` is than ``b`` (positive = better) in ``direction``."""
    return (b - a) if direction == "min" else (a - b)


def search_all(
    fit_result: FitResult,
    objectives: list[Objective] | None = None,
    prior: Mapping[str, float] | ArrayLike | str | None = None,
    constraints: Constraints | None = None,
    config: SearchConfig | None = None,
    *,
    method: str | None = None,
    n_samples: int | None = None,
    top_k: int | None = None,
    seed: int | None = None,
    kl_weight: float | None = None,
    chosen: str | None = None,
) -> dict[str, Any]:
    """The optimum of every objective, its prediction and interval, and the trade-offs between them.

    ``prior`` is a {domain: weight} mapping, a vector, or ``"natural"``/None for the swarm's mean mixture.
    The keyword-only arguments override the matching ``config`` / ``constraints`` fields; ``chosen`` names
    the headline objective (default: the sum target if any). Returns
    ``{"objectives": {name: {...}}, "tradeoff": {...}, "chosen": name, "domains": [...], "prior": {...}}``.
    """
    config = config or SearchConfig()
    overrides = {
        k: v
        for k, v in {"method": method, "n_samples": n_samples, "top_k": top_k, "seed": seed}.items()
        if v is not None
    }
    if overrides:
        config = config.model_copy(update=overrides)
    constraints = constraints or config.constraints()
    if kl_weight is not None:
        constraints = constraints.model_copy(update={"kl_weight": float(kl_weight)})
    fit = fit_result
    objectives = objectives or default_objectives(fit)
    names = [o.name for o in objectives]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate objective names: {names}")
    for obj in objectives:
        _check_objective(fit, obj)
    domains = fit.domains
    if prior is None or (isinstance(prior, str) and prior == "natural"):
        prior_vec = fit.ratios.mean(axis=0).to_numpy(dtype=np.float64)
        prior_vec = prior_vec / prior_vec.sum()
    elif isinstance(prior, str):
        raise ValueError(f"prior {prior!r}: give 'natural', a mapping or a vector")
    else:
        prior_vec = normalise_prior(prior, domains)
    lower, upper = feasible_bounds(domains, constraints)
    constrained = config.method == "constrained" or constraints.kl_weight > 0
    candidates = None
    cache: dict[str, NDArray[np.float64]] = {}
    if not constrained:
        candidates = simulate_candidates(
            prior_vec, config.n_samples, config.sim_seed, config.concentrations, (lower, upper)
        )
    results: dict[str, dict[str, Any]] = {}
    for obj in objectives:
        if constrained:
            w = constrained_optimize(
                lambda W, obj=obj: objective_values(fit, obj, W),
                prior_vec,
                domains,
                constraints,
                direction=obj.direction,
                seed=config.sim_seed,
            )
            method = "constrained"
        else:
            assert candidates is not None
            w = simulate_topk(
                lambda W, obj=obj: objective_values(fit, obj, W, cache),
                prior_vec,
                k=config.top_k,
                direction=obj.direction,
                candidates=candidates,
            )
            method = "topk"
        value, std, per_target = objective_with_std(fit, obj, w)
        results[obj.name] = {
            "weights": {d: float(x) for d, x in zip(domains, w, strict=True)},
            "predicted": value,
            "std": std,
            "interval": [value - Z95 * std, value + Z95 * std],
            "direction": obj.direction,
            "method": method,
            "objective": obj.weights,
            "targets": per_target,
            "models": {t: fit.chosen[t] for t in obj.weights},
        }
    if chosen is not None and chosen not in results:
        raise ValueError(f"chosen objective {chosen!r} is not one of {', '.join(results)}")
    chosen = chosen or chosen_objective(fit, objectives)
    return {
        "domains": domains,
        "prior": {d: float(x) for d, x in zip(domains, prior_vec, strict=True)},
        "objectives": results,
        "tradeoff": tradeoff_table(fit, objectives, results, chosen),
        "chosen": chosen,
    }


def tradeoff_table(
    fit: FitResult, objectives: list[Objective], results: Mapping[str, Mapping[str, Any]], reference: str
) -> dict[str, Any]:
    """For each objective: the reference objective's value at its optimum (and the loss vs the reference's own
    optimum), and its own value at the reference optimum (and the loss vs its own optimum)."""
    by_name = {o.name: o for o in objectives}
    ref = by_name[reference]
    ref_w = np.array([results[reference]["weights"][d] for d in fit.domains])
    ref_best = float(objective_values(fit, ref, ref_w[None, :])[0])
    rows = {}
    for obj in objectives:
        w = np.array([results[obj.name]["weights"][d] for d in fit.domains])
        own_best = float(objective_values(fit, obj, w[None, :])[0])
        ref_here = float(objective_values(fit, ref, w[None, :])[0])
        own_at_ref = float(objective_values(fit, obj, ref_w[None, :])[0])
        rows[obj.name] = {
            "reference_at_this_optimum": ref_here,
            "reference_loss": -_better(ref_here, ref_best, ref.direction),
            "this_at_reference_optimum": own_at_ref,
            "this_best": own_best,
            "this_loss_at_reference_optimum": -_better(own_at_ref, own_best, obj.direction),
            "l1_distance_to_reference": float(np.abs(w - ref_w).sum()),
        }
    return {"reference": reference, "reference_best": ref_best, "rows": rows}


def write_optimal(
    path: str | Path, results: Mapping[str, Any], out_dir: str | Path | None = None
) -> list[Path]:
    """Write ``optimal.json`` (everything) and one ``optimal_<name>.json`` per objective; the paths written.

    ``path`` is the optimal.json file (or a folder to hold it); per-objective files go to ``out_dir``
    (default: next to ``optimal.json``).
    """
    from mixlab.regression.plots import safe_name

    path = Path(path)
    if path.suffix != ".json":
        path = path / "optimal.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(results, indent=2) + "\n")
    written = [path]
    folder = Path(out_dir) if out_dir is not None else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    for name, res in results["objectives"].items():
        one = {k: res[k] for k in ("weights", "predicted", "interval", "direction", "std", "targets")}
        # the trust verdict, when the caller judged the optimum (mixlab.search.trust)
        one.update({k: res[k] for k in ("metric", "trusted", "oof_spearman", "snr", "reason") if k in res})
        p = folder / f"optimal_{safe_name(name)}.json"
        atomic_write_text(p, json.dumps(one, indent=2) + "\n")
        written.append(p)
    return written
