"""Cross-validation of mixture regressors and model selection on the training runs only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.stats import pearsonr, spearmanr
from sklearn.model_selection import KFold
from tqdm.auto import tqdm

from mixlab.regression.models import AUTO_CANDIDATES, make_regressor, single_thread_blas


def cv_predictions(
    model_name: str, X: ArrayLike, y: ArrayLike, folds: int = 5, seed: int = 0, **params: object
) -> NDArray[np.float64]:
    """Out-of-fold predictions of ``model_name`` under shuffled K-fold (each run predicted once, unseen)."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(y) < folds:
        raise ValueError(f"{len(y)} runs are too few for {folds}-fold cross-validation")
    oof = np.empty_like(y)
    with single_thread_blas():
        for train, test in KFold(folds, shuffle=True, random_state=seed).split(X):
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


def select_model(
    X: ArrayLike,
    y: ArrayLike,
    candidates: Sequence[str] = AUTO_CANDIDATES,
    folds: int = 5,
    seed: int = 0,
    metric: str = "spearman",
    return_oof: bool = False,
) -> tuple[str, pd.DataFrame] | tuple[str, pd.DataFrame, dict[str, NDArray[np.float64]]]:
    """Cross-validate each candidate on (X, y) and return the best name and the CV table (one row per model).

    Selection uses only the runs given (the training swarm). Ties in ``metric`` are broken by lower MAE.
    Eligible are models whose out-of-fold MAE is within 3x the best and which do not predict far outside
    the measured range on unseen mixtures (:func:`extrapolates`, checked down the ranking until one passes).
    With ``return_oof`` the out-of-fold predictions of each candidate are returned as a third item.
    """
    if metric not in ("spearman", "pearson", "mae", "rmse"):
        raise ValueError(f"unknown selection metric {metric!r}")
    if not candidates:
        raise ValueError("no candidate models to select from")
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
    best = order[0]
    for name in order:
        if not extrapolates(name, X, y, seed=seed):
            best = name
            break
        table.loc[name, ["eligible", "extrapolates"]] = [False, True]
    table["chosen"] = table.index == best
    if return_oof:
        return best, table, oofs
    return best, table
