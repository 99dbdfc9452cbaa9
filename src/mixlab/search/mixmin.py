"""MixMin: choose a mixture from per-domain components' likelihoods alone, with no swarm and no regressor.

MixMin (ICML 2025) approximates the model trained on a mixture by the mixture of the components' predictive
distributions. For a multiple-choice item ``j`` with gold continuation likelihood ``p_ij`` under component
``i``, a model trained on coefficients ``c`` gives ``p_j(c) = sum_i c_i p_ij``. Its gold bits per byte,
``-log2 p_j(c) / bytes_j``, is convex in ``c``, so the mixture that minimises a task's mean gold bits per byte
(or their sum over tasks) is a convex problem on the simplex. The objective here is the pipeline's own
``gold_bpb`` metric: MixMin's log-likelihood with every item weighted by one over its gold continuation's
bytes, which keeps it convex and makes its prediction comparable with what a trained proxy measures.

Components may hold a share of general data: component ``i`` was trained on the data mixture ``M[:, i]``,
the data mixture of coefficients ``c`` is ``M c``, and the availability / epoch caps of the search bound
``M c`` (:func:`mixlab.search.simplex.feasible_bounds`). Items come from the per-item evaluation files
``<run>/eval/<task>.jsonl`` (``loglikelihoods`` per choice, ``answer``, ``gold_bpb``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mixlab.jsonl import read_jsonl_objects

__all__ = ["TaskItems", "mixture_predictions", "read_task_items", "search_mixmin", "solve_mixmin"]

LN2 = math.log(2.0)


@dataclass
class TaskItems:
    """One task's items as the components scored them."""

    name: str
    choice_ll: list[NDArray[np.float64]]
    """Per item: (components x choices) summed log-likelihoods."""
    answer: NDArray[np.int64]
    nbytes: NDArray[np.float64]
    """UTF-8 bytes of each item's gold continuation as scored."""

    @property
    def gold_ll(self) -> NDArray[np.float64]:
        """(components x items) log-likelihood of the gold continuation."""
        return np.stack([ll[:, a] for ll, a in zip(self.choice_ll, self.answer, strict=True)], axis=1)

    @property
    def n_items(self) -> int:
        return len(self.answer)


def _records(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: per-item results are missing")
    rows = read_jsonl_objects(path)
    return sorted(rows, key=lambda r: int(r["doc_index"]))


def read_task_items(eval_dirs: Sequence[str | Path], task: str) -> TaskItems:
    """Read ``<dir>/<task>.jsonl`` of every component (in order) into one :class:`TaskItems`.

    The gold continuation's bytes come back from ``gold_bpb = -ll_gold / (ln 2 * bytes)``; items without a
    gold_bpb (an empty continuation) are left out. The components must have scored the same items.
    """
    per_comp = [_records(Path(d) / f"{task}.jsonl") for d in eval_dirs]
    if not per_comp:
        raise ValueError("no component evaluation folders")
    first = per_comp[0]
    for d, recs in zip(eval_dirs, per_comp, strict=True):
        if [r["doc_index"] for r in recs] != [r["doc_index"] for r in first]:
            raise ValueError(f"{d}: task {task!r} was scored on other items than {eval_dirs[0]}")
    choice_ll, answers, nbytes = [], [], []
    for j, rec in enumerate(first):
        answer = int(rec["answer"])  # type: ignore[call-overload]
        bpb = rec.get("gold_bpb")
        lls = np.array([[float(x) for x in recs[j]["loglikelihoods"]] for recs in per_comp])  # type: ignore[union-attr]
        if bpb is None or not float(bpb) > 0:  # type: ignore[arg-type]
            continue
        answers.append(answer)
        choice_ll.append(lls)
        nbytes.append(round(-lls[0, answer] / (LN2 * float(bpb))))  # type: ignore[arg-type]
    return TaskItems(
        task,
        choice_ll,
        np.array(answers, dtype=np.int64),
        np.maximum(np.array(nbytes, dtype=np.float64), 1.0),
    )


def _stack(
    tasks: Sequence[TaskItems],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Scaled gold likelihoods (components x items), their log scale and each item's weight in the sum."""
    L = np.concatenate([t.gold_ll for t in tasks], axis=1)
    weights = np.concatenate([1.0 / (LN2 * t.nbytes * t.n_items) for t in tasks])
    shift = L.max(axis=0)
    return np.exp(L - shift), shift, weights


def mixture_predictions(task: TaskItems, coefficients: ArrayLike) -> dict[str, float]:
    """What the mixture of components' predictive distributions gives on ``task``: mean ``gold_bpb`` (and
    its standard error over items), ``correct_prob`` and ``acc`` (argmax of the mixed likelihoods). NaN when the
    coefficients give a non-positive likelihood (negative coefficients of an extrapolated mixture)."""
    c = np.asarray(coefficients, dtype=np.float64)
    bpb, prob, acc = [], [], []
    for ll, a, nb in zip(task.choice_ll, task.answer, task.nbytes, strict=True):
        top = ll.max()
        p = c @ np.exp(ll - top)
        if (p <= 0).any():
            nan = math.nan
            return {"gold_bpb": nan, "gold_bpb_se": nan, "correct_prob": nan, "acc": nan}
        bpb.append(-(math.log(p[a]) + top) / (LN2 * nb))
        prob.append(p[a] / p.sum())
        acc.append(float(int(np.argmax(p)) == a))
    arr = np.array(bpb)
    se = float(arr.std(ddof=1) / math.sqrt(len(arr))) if len(arr) > 1 else math.nan
    return {
        "gold_bpb": float(arr.mean()),
        "gold_bpb_se": se,
        "correct_prob": float(np.mean(prob)),
        "acc": float(np.mean(acc)),
    }


def solve_mixmin(
    tasks: Sequence[TaskItems],
    lower: ArrayLike,
    upper: ArrayLike,
    component_mixtures: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Coefficients minimising the summed mean gold bits per byte of ``tasks`` (a convex problem).

    Subject to ``c >= 0``, ``sum c = 1`` and ``lower <= M c <= upper`` (``M``: the components' data
    mixtures as columns, identity by default). Solved by SLSQP with the exact gradient from a feasible
    start; raises ``ValueError`` when no coefficients satisfy the bounds.
    """
    from scipy.optimize import minimize

    P, _, a = _stack(tasks)
    n = P.shape[0]
    M = np.eye(n) if component_mixtures is None else np.asarray(component_mixtures, dtype=np.float64)
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    tiny = 1e-300

    def f(c: NDArray[np.float64]) -> float:
        return float(-(a * np.log(np.maximum(c @ P, tiny))).sum())

    def grad(c: NDArray[np.float64]) -> NDArray[np.float64]:
        return -(P @ (a / np.maximum(c @ P, tiny)))

    identity = np.allclose(M, np.eye(n))
    bounds = list(zip(lo, hi, strict=True)) if identity else [(0.0, 1.0)] * n
    cons: list[dict[str, object]] = [
        {"type": "eq", "fun": lambda c: c.sum() - 1.0, "jac": lambda c: np.ones(n)}
    ]
    if not identity:
        cons += [
            {"type": "ineq", "fun": lambda c: M @ c - lo, "jac": lambda c: M},
            {"type": "ineq", "fun": lambda c: hi - M @ c, "jac": lambda c: -M},
        ]
    start = _feasible_start(M, lo, hi)
    res = minimize(
        f,
        start,
        jac=grad,
        method="SLSQP",
        bounds=bounds,
        constraints=cons,
        options={"ftol": 1e-13, "maxiter": 1000},
    )
    c = np.clip(np.asarray(res.x, dtype=np.float64), 0.0, None)
    c = c / c.sum()
    x = M @ c
    if (x < lo - 1e-6).any() or (x > hi + 1e-6).any():
        raise ValueError(f"MixMin found no feasible mixture ({res.message})")
    if f(start) < f(c) - 1e-12:  # never worse than where it started
        c = start
    return c


def _feasible_start(
    M: NDArray[np.float64], lo: NDArray[np.float64], hi: NDArray[np.float64]
) -> NDArray[np.float64]:
    """A point of the feasible set: the projection of the uniform mixture, mapped to coefficients."""
    from scipy.optimize import linprog

    from mixlab.search.simplex import project_bounded_simplex

    n = M.shape[1]
    if np.allclose(M, np.eye(n)):
        return project_bounded_simplex(np.full(n, 1.0 / n), lo, hi)[0]
    res = linprog(
        np.zeros(n),
        A_ub=np.vstack([M, -M]),
        b_ub=np.concatenate([hi, -lo]),
        A_eq=np.ones((1, n)),
        b_eq=[1.0],
        bounds=[(0.0, 1.0)] * n,
    )
    if not res.success:
        raise ValueError("no coefficients of the components give a mixture within the bounds")
    return np.asarray(res.x, dtype=np.float64)


def _objective_prediction(
    items: dict[str, TaskItems], tasks: Sequence[str], coefficients: ArrayLike
) -> tuple[float, float, dict[str, float]]:
    """Summed predicted gold_bpb over ``tasks``, its standard error over items, and each task's value."""
    per_task = {t: mixture_predictions(items[t], coefficients) for t in tasks}
    value = float(sum(p["gold_bpb"] for p in per_task.values()))
    std = float(math.sqrt(sum(p["gold_bpb_se"] ** 2 for p in per_task.values())))
    return value, std, {f"{t}/gold_bpb": p["gold_bpb"] for t, p in per_task.items()}


def search_mixmin(
    items: dict[str, TaskItems],
    domains: Sequence[str],
    components: Sequence[str],
    component_mixtures: ArrayLike,
    lower: ArrayLike,
    upper: ArrayLike,
    prior: dict[str, float],
    chosen: str = "total",
) -> dict[str, object]:
    """MixMin's optimum for the total (sum over tasks) and for every task, as ``search_all`` reports them.

    ``component_mixtures``: (domains x components) data mixture of each component. Each objective's
    ``predicted`` is MixMin's predicted gold_bpb at its optimum (summed over tasks for the total) and its
    ``interval`` the 95% interval of that mean over items; ``coefficients`` are the components' weights.
    """
    z95 = 1.959964
    M = np.asarray(component_mixtures, dtype=np.float64)
    tasks = list(items)
    objectives = {"total": tasks, **{t: [t] for t in tasks}}
    coefs = {name: solve_mixmin([items[t] for t in ts], lower, upper, M) for name, ts in objectives.items()}
    results: dict[str, dict[str, object]] = {}
    for name, ts in objectives.items():
        c = coefs[name]
        value, std, per_task = _objective_prediction(items, ts, c)
        results[name] = {
            "weights": {d: float(x) for d, x in zip(domains, M @ c, strict=True)},
            "predicted": value,
            "std": std,
            "interval": [value - z95 * std, value + z95 * std],
            "direction": "min",
            "method": "mixmin",
            "objective": {name: 1.0},
            "targets": per_task,
            "models": {name: "mixmin"},
            "coefficients": {k: float(x) for k, x in zip(components, c, strict=True)},
        }
    ref = results[chosen]
    ref_best = float(ref["predicted"])  # type: ignore[arg-type]
    rows = {}
    for name, ts in objectives.items():
        own_best = float(results[name]["predicted"])  # type: ignore[arg-type]
        ref_here = _objective_prediction(items, objectives[chosen], coefs[name])[0]
        own_at_ref = _objective_prediction(items, ts, coefs[chosen])[0]
        w = np.array(list(results[name]["weights"].values()))  # type: ignore[union-attr]
        ref_w = np.array(list(ref["weights"].values()))  # type: ignore[union-attr]
        rows[name] = {
            "reference_at_this_optimum": ref_here,
            "reference_loss": ref_here - ref_best,
            "this_at_reference_optimum": own_at_ref,
            "this_best": own_best,
            "this_loss_at_reference_optimum": own_at_ref - own_best,
            "l1_distance_to_reference": float(np.abs(w - ref_w).sum()),
        }
    return {
        "domains": list(domains),
        "prior": dict(prior),
        "objectives": results,
        "tradeoff": {"reference": chosen, "reference_best": ref_best, "rows": rows},
        "chosen": chosen,
    }
