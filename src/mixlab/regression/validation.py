"""Cross-validation of mixture regressors and model selection on the training runs only."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.stats import pearsonr, rankdata, spearmanr
from sklearn.model_selection import KFold

from mixlab.console import tqdm
from mixlab.regression.models import AUTO_CANDIDATES, make_regressor, single_thread_blas


def cv_splits(n: int, folds: int = 5, seed: int = 0) -> list[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """The (train, test) index pairs of shuffled K-fold over ``n`` runs: the same ``seed`` gives the same
    folds, another seed other folds (the pipeline's ``seed`` reaches here through ``fit.seed``)."""
    if n < folds:
        raise ValueError(f"{n} runs are too few for {folds}-fold cross-validation")
    return list(KFold(folds, shuffle=True, random_state=seed).split(np.zeros((n, 1))))


def cv_predictions(
    model_name: str, X: ArrayLike, y: ArrayLike, folds: int = 5, seed: int = 0, **params: object
) -> NDArray[np.float64]:
    """Out-of-fold predictions of ``model_name`` under shuffled K-fold (each run predicted once, unseen)."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    splits = cv_splits(len(y), folds, seed)
    oof = np.empty_like(y)
    with single_thread_blas():
        for train, test in splits:
            model = make_regressor(model_name, random_state=seed, **params)
            model.fit(X[train], y[train])
            oof[test] = model.predict(X[test])
    return oof


def score_predictions(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """Spearman and Pearson correlation, MAE and RMSE of predictions against measurements."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    constant = np.ptp(p) == 0 or np.ptp(t) == 0
    return {
        "spearman": float("nan") if constant else float(spearmanr(t, p)[0]),
        "pearson": float("nan") if constant else float(pearsonr(t, p)[0]),
        "mae": float(np.mean(np.abs(t - p))),
        "rmse": float(np.sqrt(np.mean((t - p) ** 2))),
    }


def cross_validate(
    model_name: str, X: ArrayLike, y: ArrayLike, folds: int = 5, seed: int = 0
) -> dict[str, float]:
    """K-fold CV of one model: ``{"spearman", "pearson", "mae", "rmse"}`` over the out-of-fold predictions."""
    return score_predictions(y, cv_predictions(model_name, X, y, folds=folds, seed=seed))


def _rank_key(row: pd.Series, metric: str) -> float:
    value = float(row[metric])
    if np.isnan(value):
        return np.inf
    return value if metric in ("mae", "rmse") else -value


def extrapolates(model_name: str, X: ArrayLike, y: ArrayLike, seed: int = 0, n_probe: int = 2048) -> bool:
    """Whether ``model_name`` fitted on (X, y) predicts far outside the measured range on unseen mixtures.

    Probes: uniform draws from the simplex plus every pure-domain mixture (the corners a search can reach).
    "Far" means beyond the measured range widened by the range itself on either side; a model doing that
    (e.g. an exponential law blowing up at a corner) would hand the search an absurd optimum.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    rng = np.random.default_rng(seed)
    d = X.shape[1]
    probe = np.vstack([rng.dirichlet(np.ones(d), n_probe), np.eye(d)])
    with single_thread_blas():
        pred = np.asarray(
            make_regressor(model_name, random_state=seed).fit(X, y).predict(probe), dtype=np.float64
        )
    lo, hi = float(np.min(y)), float(np.max(y))
    span = hi - lo or max(abs(hi), 1e-12)
    return not np.isfinite(pred).all() or pred.min() < lo - span or pred.max() > hi + span


def bootstrap_scores(
    y: ArrayLike,
    preds: dict[str, ArrayLike],
    metric: str = "spearman",
    n_boot: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """``metric`` of each prediction vector on ``n_boot`` bootstrap resamples of the runs (rows: resamples).

    The resamples are shared by all columns, so differences between columns are paired. Used to tell
    whether two models' cross-validation scores differ by more than the swarm's sampling noise. A resample
    on which a score is undefined (constant values) gives NaN. No model is refitted: this is cheap.
    """
    t = np.asarray(y, dtype=np.float64)
    names = list(preds)
    P = np.stack([np.asarray(preds[n], dtype=np.float64) for n in names])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(t), (n_boot, len(t)))
    yt, Q = t[idx], P[:, idx]  # (n_boot, n) and (models, n_boot, n): all resamples at once
    if metric in ("mae", "rmse"):
        err = Q - yt
        out = np.mean(np.abs(err), axis=2) if metric == "mae" else np.sqrt(np.mean(err**2, axis=2))
        return pd.DataFrame(out.T, columns=names)
    if metric == "spearman":
        yt, Q = rankdata(yt, axis=1), rankdata(Q, axis=2)
    yc = yt - yt.mean(axis=1, keepdims=True)
    Qc = Q - Q.mean(axis=2, keepdims=True)
    denom = np.sqrt(np.sum(Qc**2, axis=2) * np.sum(yc**2, axis=1))
    num = np.einsum("mbn,bn->mb", Qc, yc)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(denom > 0, num / np.where(denom > 0, denom, 1.0), np.nan).T
    return pd.DataFrame(out, columns=names)


def _paired_se(boot: pd.DataFrame, reference: str, other: str) -> float:
    """Bootstrap standard error of score(reference) - score(other); NaN when too few resamples are defined."""
    diff = (boot[reference] - boot[other]).to_numpy(dtype=np.float64)
    diff = diff[np.isfinite(diff)]
    return float(np.std(diff, ddof=1)) if len(diff) >= 10 else float("nan")


def _gap(table: pd.DataFrame, better: str, other: str, metric: str) -> float:
    """How much worse ``other`` scores than ``better`` on ``metric`` (positive: worse)."""
    return -(_rank_key(table.loc[better], metric) - _rank_key(table.loc[other], metric))


def select_model(
    X: ArrayLike,
    y: ArrayLike,
    candidates: Sequence[str] = AUTO_CANDIDATES,
    folds: int = 5,
    seed: int = 0,
    metric: str = "spearman",
    return_oof: bool = False,
    ensemble: bool = True,
    window: float = 1.0,
    max_members: int = 3,
    n_boot: int = 200,
) -> tuple[str, pd.DataFrame] | tuple[str, pd.DataFrame, dict[str, NDArray[np.float64]]]:
    """Cross-validate each candidate on (X, y) and return the chosen name and the CV table (one row per model).

    Selection uses only the runs given (the training swarm). Ties in ``metric`` are broken by lower MAE.
    Eligible are models whose out-of-fold MAE is within 3x the best and which do not predict far outside
    the measured range on unseen mixtures (:func:`extrapolates`, checked down the ranking until one passes).

    With ``ensemble`` (the default), the best eligible model is not trusted alone when CV cannot tell it
    apart from others: every eligible model whose CV score is within ``window`` paired-bootstrap standard
    errors of the best (resampling the runs' out-of-fold predictions, ``n_boot`` times; column
    ``se_vs_best``) joins it, up to ``max_members`` by CV rank, and their equal-weight mean
    (:class:`~mixlab.regression.models.EnsembleRegressor`, named like ``gp+stack``) is added to the table,
    scored on the mean of the members' out-of-fold predictions (the same folds, so this is its exact CV).
    The ensemble is chosen unless it scores worse than the best single model by more than ``window``
    standard errors: among models CV cannot separate, averaging families with different inductive
    biases is the choice least exposed to any one family's errors (e.g. when the proxy scale changes).
    Members are checked for extrapolation like any choice. With ``return_oof`` the out-of-fold predictions
    of each row of the table are returned as a third item.
    """
    if metric not in ("spearman", "pearson", "mae", "rmse"):
        raise ValueError(f"unknown selection metric {metric!r}")
    if not candidates:
        raise ValueError("no candidate models to select from")
    y = np.asarray(y, dtype=np.float64)
    rows, oofs = [], {}
    for name in tqdm(
        list(candidates), desc="cross-validating models", leave=False, disable=len(candidates) < 3
    ):
        oof = cv_predictions(name, X, y, folds=folds, seed=seed)
        oofs[name] = oof
        rows.append({"model": name, **score_predictions(y, oof)})
    table = pd.DataFrame(rows).set_index("model")
    # A model whose out-of-fold errors blow up (e.g. an exponential law extrapolating) can still rank
    # well; a rank metric alone would choose it. Only models within 3x the best MAE are eligible.
    mae = table["mae"].astype(float).replace([np.inf, -np.inf], np.nan)
    eligible = mae <= 3.0 * float(np.nanmin(mae)) if mae.notna().any() else mae.isna()
    table["eligible"] = eligible.to_numpy()
    order = sorted(
        table.index,
        key=lambda n: (
            not bool(table.loc[n, "eligible"]),
            _rank_key(table.loc[n], metric),
            float(table.loc[n, "mae"]),
        ),
    )
    # The best-ranked model must also stay in range on mixtures outside the swarm; else the next one
    # (MAE-eligible models come first in ``order``). If every model extrapolates, the top one is kept.
    table["extrapolates"] = False
    checked: dict[str, bool] = {}

    def out_of_range(name: str) -> bool:
        if name not in checked:
            checked[name] = extrapolates(name, X, y, seed=seed)
            if checked[name]:
                table.loc[name, ["eligible", "extrapolates"]] = [False, True]
        return checked[name]

    best = order[0]
    for name in order:
        if not out_of_range(name):
            best = name
            break
    table["se_vs_best"] = np.nan
    if ensemble and max_members >= 2 and bool(table.loc[best, "eligible"]):
        best = _window_ensemble(
            table, oofs, y, best, order, metric, window, max_members, n_boot, seed, out_of_range
        )
    table["chosen"] = table.index == best
    if return_oof:
        return best, table, oofs
    return best, table


def _window_ensemble(
    table: pd.DataFrame,
    oofs: dict[str, NDArray[np.float64]],
    y: NDArray[np.float64],
    best: str,
    order: list[str],
    metric: str,
    window: float,
    max_members: int,
    n_boot: int,
    seed: int,
    out_of_range: Callable[[str], bool],
) -> str:
    """Add the ensemble of the models within ``window`` bootstrap SEs of ``best`` to ``table``; the choice."""
    # -key is the score, higher better; a correlation must also be positive (a model that ranks the runs
    # backwards in CV is no hedge, however noisy a tiny swarm makes the comparison)
    floor = 0.0 if metric in ("spearman", "pearson") else -np.inf

    def usable(n: str) -> bool:
        key = _rank_key(table.loc[n], metric)
        return bool(table.loc[n, "eligible"]) and np.isfinite(key) and -key > floor

    others = [n for n in order if n != best and usable(n)]
    if not others or not usable(best):
        return best
    boot = bootstrap_scores(y, {n: oofs[n] for n in [best, *others]}, metric, n_boot, seed)
    members = [best]
    for name in others:
        se = _paired_se(boot, best, name)
        table.loc[name, "se_vs_best"] = se
        within = np.isfinite(se) and _gap(table, best, name, metric) <= window * se
        if within and len(members) < max_members and not out_of_range(name):
            members.append(name)
    if len(members) < 2:
        return best
    name = "+".join(members)
    oofs[name] = np.mean([oofs[m] for m in members], axis=0)
    # a mean of in-range predictions is in range: the ensemble needs no extrapolation check of its own
    row = {**score_predictions(y, oofs[name]), "eligible": True, "extrapolates": False, "se_vs_best": np.nan}
    table.loc[name] = pd.Series(row)
    se = _paired_se(
        bootstrap_scores(y, {best: oofs[best], name: oofs[name]}, metric, n_boot, seed), best, name
    )
    table.loc[name, "se_vs_best"] = se
    gap = _gap(table, best, name, metric)
    return name if gap <= 0 or (np.isfinite(se) and gap <= window * se) else best
