"""The regressor zoo: mixture weights -> metric, all with scikit-learn conventions.

``make_regressor(name, **params)`` builds one by name. Every model takes an (n_runs, n_domains) array of
mixture weights (rows on the simplex) and predicts one target. Models with an uncertainty estimate also
offer ``predict_with_std(X) -> (mean, std)``.

- ``linear`` / ``ridge``: RegMix's linear baselines on the raw weights.
- ``log_ridge``: ridge on quadratic features of log(weight + eps), eps and alpha chosen by inner CV.
- ``lightgbm``: LightGBM with RegMix's notebook settings (learning rate 0.01, 1000 rounds).
- ``lightgbm_tuned``: shallower, subsampled, faster-learning LightGBM.
- ``mixing_law``: the Data Mixing Laws form L(r) = c + k * exp(sum_j t_j r_j).
- ``gp``: Gaussian process (ARD Matern 5/2 on sqrt weights) with predictive std.
- ``bootstrap``: bootstrap ensemble of a base model with predictive std (spread of the members).
- ``stack``: stacking of lightgbm_tuned + log_ridge with non-negative weights fitted on
  out-of-fold predictions.
- ``auto``: choose one of ``AUTO_CANDIDATES`` by cross-validation on the training runs only, then fit it.
- ``a+b[+c]`` (e.g. ``gp+stack``): the equal-weight mean of those models' predictions
  (:class:`EnsembleRegressor`); ``auto`` builds one from the candidates CV cannot tell apart.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import least_squares, minimize
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import StackingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from sklearn.linear_model import LinearRegression, Ridge, RidgeCV
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, PolynomialFeatures, StandardScaler
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

#: Names accepted by :func:`make_regressor`.
MODEL_NAMES: tuple[str, ...] = (
    "linear",
    "ridge",
    "log_ridge",
    "lightgbm",
    "lightgbm_tuned",
    "mixing_law",
    "gp",
    "bootstrap",
    "stack",
    "auto",
)
#: Models ``auto`` compares by cross-validation.
AUTO_CANDIDATES: tuple[str, ...] = (
    "linear",
    "ridge",
    "log_ridge",
    "mixing_law",
    "lightgbm",
    "lightgbm_tuned",
    "gp",
    "stack",
)

#: RegMix's notebook LightGBM settings (regression_fitting/regression.ipynb).
REGMIX_LGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 1000,
    "learning_rate": 0.01,
    "objective": "regression",
    "random_state": 42,
    "verbose": -1,
    "n_jobs": 1,
}
#: Shallower trees, row and column subsampling, a faster learning rate.
TUNED_LGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 1000,
    "learning_rate": 0.03,
    "num_leaves": 7,
    "min_child_samples": 5,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.7,
    "objective": "regression",
    "random_state": 42,
    "verbose": -1,
    "n_jobs": 1,
}


def single_thread_blas() -> threadpool_limits:
    """Limit BLAS/OpenMP to one thread: the matrices here are small, and oversubscribed threads are far slower."""
    return threadpool_limits(limits=1)


def _as_2d(X: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D array of mixture weights, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("mixture weights contain NaN or infinite values")
    return arr


def _log_features(X: NDArray[np.float64], eps: float = 3e-3) -> NDArray[np.float64]:
    return np.log(np.clip(X, 0.0, None) + eps)


def _sqrt_features(X: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.sqrt(np.clip(X, 0.0, None))


class LogRidgeRegressor(RegressorMixin, BaseEstimator):
    """Ridge on degree-``degree`` polynomial features of log(weight + eps); eps and alpha chosen by LOO-CV.

    Mixture effects are multiplicative and saturating (doubling a tiny share matters more than doubling a
    large one), which log features capture; the quadratic terms model domain interactions.
    """

    def __init__(
        self,
        eps_grid: Sequence[float] = (1e-3, 3e-3, 1e-2),
        alpha_grid: Sequence[float] = (0.1, 1.0, 3.0, 10.0, 30.0, 100.0),
        degree: int = 2,
        random_state: int = 0,
    ) -> None:
        self.eps_grid = eps_grid
        self.alpha_grid = alpha_grid
        self.degree = degree
        self.random_state = random_state

    def _pipeline(self, eps: float, alpha: float) -> Pipeline:
        return Pipeline(
            [
                ("log", FunctionTransformer(_log_features, kw_args={"eps": eps})),
                ("poly", PolynomialFeatures(self.degree, include_bias=False)),
                ("scale", StandardScaler()),
                ("ridge", Ridge(alpha=alpha)),
            ]
        )

    def fit(self, X: ArrayLike, y: ArrayLike) -> LogRidgeRegressor:
        """Choose eps by the efficient leave-one-out error of RidgeCV (which also picks alpha), then refit."""
        X = _as_2d(X)
        y = np.asarray(y, dtype=np.float64)
        best: tuple[float, float, float] | None = None
        with single_thread_blas():
            for eps in self.eps_grid:
                feats = self._pipeline(float(eps), 1.0)[:-1].fit_transform(X)
                ridge = RidgeCV(alphas=[float(a) for a in self.alpha_grid]).fit(feats, y)
                if best is None or ridge.best_score_ > best[0]:
                    best = (float(ridge.best_score_), float(eps), float(ridge.alpha_))
            assert best is not None
            self.best_params_ = {"eps": best[1], "alpha": best[2]}
            self.pipeline_ = self._pipeline(best[1], best[2]).fit(X, y)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        check_is_fitted(self, "pipeline_")
        return np.asarray(self.pipeline_.predict(_as_2d(X)), dtype=np.float64)


class MixingLawRegressor(RegressorMixin, BaseEstimator):
    """Data Mixing Laws (Ye et al. 2024): L(r) = c + k * exp(sum_j t_j r_j), fitted by least squares.

    ``k`` may be negative, so the same form fits accuracy-like (increasing, saturating) targets.
    """

    def __init__(self, n_starts: int = 2, random_state: int = 0) -> None:
        self.n_starts = n_starts
        self.random_state = random_state

    def fit(self, X: ArrayLike, y: ArrayLike) -> MixingLawRegressor:
        """Fit (c, k, t) from several starts (both signs of k) and keep the lowest squared error."""
        X = _as_2d(X)
        y = np.asarray(y, dtype=np.float64)
        rng = np.random.default_rng(self.random_state)
        scale = float(np.std(y)) or 1.0
        best: Any = None
        for start in range(max(self.n_starts, 2)):
            sign = 1.0 if start % 2 == 0 else -1.0
            c0 = float(np.min(y) - 0.5 * scale) if sign > 0 else float(np.max(y) + 0.5 * scale)
            t0 = rng.normal(0.0, 0.1 * (start // 2), X.shape[1])

            def resid(p: NDArray[np.float64], sign: float = sign) -> NDArray[np.float64]:
                return p[0] + sign * np.exp(np.clip(p[1] + X @ p[2:], -50, 50)) - y

            def jac(p: NDArray[np.float64], sign: float = sign) -> NDArray[np.float64]:
                e = sign * np.exp(np.clip(p[1] + X @ p[2:], -50, 50))
                return np.column_stack([np.ones_like(e), e, e[:, None] * X])

            p0 = np.r_[c0, np.log(scale), t0]
            with single_thread_blas():
                res = least_squares(resid, p0, jac=jac, method="trf", max_nfev=500)
            if best is None or res.cost < best[0]:
                best = (res.cost, sign, res.x)
        _, self.sign_, params = best
        self.c_, self.log_k_, self.t_ = float(params[0]), float(params[1]), params[2:].copy()
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        check_is_fitted(self, "t_")
        X = _as_2d(X)
        return self.c_ + self.sign_ * np.exp(np.clip(self.log_k_ + X @ self.t_, -50, 50))


class GPRegressor(RegressorMixin, BaseEstimator):
    """Gaussian process on sqrt(weights): ARD Matern 5/2 + white noise, normalised targets.

    The square root spreads out small shares (like the log) but stays finite at zero. Hyper-parameters
    (one length scale per domain, signal and noise level) maximise the marginal likelihood; on swarms
    larger than ``max_opt_runs`` they are fitted on a random subset of that many runs (each optimiser
    step costs O(n^3)), and the posterior then conditions on every run with those hyper-parameters.
    ``max_iter`` caps the optimiser. Predictions evaluate the kernel in chunks directly: the 100k-mixture
    search on RegMix's 512 runs took 2.1 s this way, about 5 s through sklearn's generic kernel code.
    """

    def __init__(
        self,
        nu: float = 2.5,
        max_iter: int = 100,
        max_opt_runs: int = 256,
        features: str = "sqrt",
        random_state: int = 0,
    ) -> None:
        self.nu = nu
        self.max_iter = max_iter
        self.max_opt_runs = max_opt_runs
        self.features = features
        self.random_state = random_state

    def _features(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.features == "sqrt":
            return _sqrt_features(X)
        if self.features == "log":
            return _log_features(X, 1e-3)
        if self.features == "raw":
            return X
        raise ValueError(f"unknown GP feature map {self.features!r}; choose sqrt, log or raw")

    def _optimizer(
        self, obj_func: Callable[..., Any], initial_theta: NDArray[np.float64], bounds: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], float]:
        res = minimize(
            obj_func,
            initial_theta,
            method="L-BFGS-B",
            jac=True,
            bounds=bounds,
            options={"maxiter": self.max_iter},
        )
        return res.x, float(res.fun)

    def fit(self, X: ArrayLike, y: ArrayLike) -> GPRegressor:
        """Fit kernel hyper-parameters by maximum marginal likelihood, then condition on all runs."""
        X = _as_2d(X)
        y = np.asarray(y, dtype=np.float64)
        d = X.shape[1]
        feats = self._features(X)
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(
            np.ones(d), length_scale_bounds=(1e-2, 1e3), nu=self.nu
        ) + WhiteKernel(1e-2, (1e-6, 1.0))
        with warnings.catch_warnings(), single_thread_blas():
            warnings.simplefilter("ignore", ConvergenceWarning)
            subset = np.arange(len(y))
            if len(y) > self.max_opt_runs:
                rng = np.random.default_rng(self.random_state)
                subset = np.sort(rng.choice(len(y), self.max_opt_runs, replace=False))
            tuned = GaussianProcessRegressor(
                kernel, normalize_y=True, optimizer=self._optimizer, random_state=self.random_state
            ).fit(feats[subset], y[subset])
            self.gp_ = GaussianProcessRegressor(
                tuned.kernel_, normalize_y=True, optimizer=None, random_state=self.random_state
            ).fit(feats, y)
        self.n_features_in_ = d
        return self

    def _fast_mean(self, feats: NDArray[np.float64]) -> NDArray[np.float64] | None:
        """Posterior mean for the fitted Constant * Matern + White kernel, evaluated in chunks."""
        kernel = self.gp_.kernel_  # Constant * Matern + White, as built in fit()
        amp = float(kernel.k1.k1.constant_value)
        scale = np.asarray(kernel.k1.k2.length_scale, dtype=np.float64)
        nu = float(kernel.k1.k2.nu)
        if nu not in (0.5, 1.5, 2.5):  # no closed form here: sklearn's generic path
            return None
        train = self.gp_.X_train_ / scale
        train_sq = np.einsum("ij,ij->i", train, train)
        alpha = np.asarray(self.gp_.alpha_, dtype=np.float64).reshape(len(train), -1)[:, 0]
        out = np.empty(len(feats))
        for start in range(0, len(feats), 8192):
            q = feats[start : start + 8192] / scale
            dist = np.einsum("ij,ij->i", q, q)[:, None] + train_sq[None, :] - 2.0 * (q @ train.T)
            np.sqrt(np.clip(dist, 0.0, None, out=dist), out=dist)
            if nu == 0.5:
                k = np.exp(-dist)
            elif nu == 1.5:
                dist *= np.sqrt(3.0)
                k = (1.0 + dist) * np.exp(-dist)
            else:
                dist *= np.sqrt(5.0)
                k = (1.0 + dist + dist**2 / 3.0) * np.exp(-dist)
            out[start : start + 8192] = amp * (k @ alpha)
        return out * float(np.ravel(self.gp_._y_train_std)[0]) + float(np.ravel(self.gp_._y_train_mean)[0])

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        check_is_fitted(self, "gp_")
        feats = self._features(_as_2d(X))
        with single_thread_blas():
            fast = self._fast_mean(feats)
            if fast is not None:
                return fast
            return np.asarray(self.gp_.predict(feats), dtype=np.float64)

    def predict_with_std(self, X: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Posterior mean and standard deviation (including the fitted noise level)."""
        check_is_fitted(self, "gp_")
        with single_thread_blas():
            mean, std = self.gp_.predict(self._features(_as_2d(X)), return_std=True)
        return np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)


class BootstrapRegressor(RegressorMixin, BaseEstimator):
    """Bootstrap ensemble of a base model; the spread of its members is the predictive uncertainty.

    The base model's hyper-parameters are chosen once on all runs; members are refits on resampled runs.
    The residual std of the full-data fit is added in quadrature, so intervals cover noise too.
    """

    def __init__(self, base: str = "log_ridge", n_estimators: int = 16, random_state: int = 0) -> None:
        self.base = base
        self.n_estimators = n_estimators
        self.random_state = random_state

    def fit(self, X: ArrayLike, y: ArrayLike) -> BootstrapRegressor:
        """Fit the base on all runs, then ``n_estimators`` refits of it on bootstrap resamples."""
        X = _as_2d(X)
        y = np.asarray(y, dtype=np.float64)
        full = make_regressor(self.base)
        full.fit(X, y)
        template: BaseEstimator = full.pipeline_ if isinstance(full, LogRidgeRegressor) else full
        rng = np.random.default_rng(self.random_state)
        self.estimators_ = []
        with single_thread_blas():
            for _ in range(self.n_estimators):
                idx = rng.integers(0, len(y), len(y))
                self.estimators_.append(clone(template).fit(X[idx], y[idx]))
        self.full_ = full
        self.noise_std_ = float(np.std(y - full.predict(X)))
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        check_is_fitted(self, "full_")
        return np.asarray(self.full_.predict(_as_2d(X)), dtype=np.float64)

    def predict_with_std(self, X: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Full-data prediction and sqrt(member variance + residual variance)."""
        X = _as_2d(X)
        members = np.stack([np.asarray(m.predict(X), dtype=np.float64) for m in self.estimators_])
        std = np.sqrt(members.var(axis=0) + self.noise_std_**2)
        return self.predict(X), std


class StackRegressor(RegressorMixin, BaseEstimator):
    """Stacking: base models' out-of-fold predictions combined with non-negative weights (sklearn stacking)."""

    def __init__(
        self,
        estimators: Sequence[str] = ("lightgbm_tuned", "log_ridge"),
        folds: int = 5,
        random_state: int = 0,
    ) -> None:
        self.estimators = estimators
        self.folds = folds
        self.random_state = random_state

    def fit(self, X: ArrayLike, y: ArrayLike) -> StackRegressor:
        """Fit every base model, and the non-negative combiner on their K-fold out-of-fold predictions."""
        X = _as_2d(X)
        self.stack_ = StackingRegressor(
            [(name, make_regressor(name)) for name in self.estimators],
            final_estimator=LinearRegression(positive=True),
            cv=KFold(max(2, min(self.folds, X.shape[0])), shuffle=True, random_state=self.random_state),
        )
        with single_thread_blas():
            self.stack_.fit(X, np.asarray(y, dtype=np.float64))
        self.weights_ = dict(
            zip(self.estimators, map(float, self.stack_.final_estimator_.coef_), strict=True)
        )
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        check_is_fitted(self, "stack_")
        return np.asarray(self.stack_.predict(_as_2d(X)), dtype=np.float64)


def _members_have_std(ens: EnsembleRegressor) -> bool:
    return all(hasattr(m, "predict_with_std") for m in ens.estimators_)


class EnsembleRegressor(RegressorMixin, BaseEstimator):
    """Equal-weight mean of the predictions of several named models (``make_regressor("gp+stack")``).

    Every member gets the ensemble's ``random_state``, so its out-of-fold predictions under a K-fold split
    are the mean of the members' own out-of-fold predictions under the same split: ``select_model`` scores
    an ensemble without refitting anything. Averaging models of different families (a smooth GP, trees,
    log-feature ridge) cancels part of each one's family-specific error, which is what a ranking must
    survive when the proxy scale changes. ``predict_with_std`` exists when every member has one.
    """

    def __init__(self, members: Sequence[str] = ("gp", "stack"), random_state: int = 0) -> None:
        self.members = members
        self.random_state = random_state

    def fit(self, X: ArrayLike, y: ArrayLike) -> EnsembleRegressor:
        """Fit every member on all runs."""
        X = _as_2d(X)
        y = np.asarray(y, dtype=np.float64)
        if len(self.members) < 1:
            raise ValueError("an ensemble needs at least one member model")
        self.estimators_ = [make_regressor(m, random_state=self.random_state).fit(X, y) for m in self.members]
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        check_is_fitted(self, "estimators_")
        X = _as_2d(X)
        return np.mean([np.asarray(m.predict(X), dtype=np.float64) for m in self.estimators_], axis=0)

    @available_if(_members_have_std)
    def predict_with_std(self, X: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Mean of the members' means; std from the mean member variance plus the spread between members."""
        X = _as_2d(X)
        parts = [m.predict_with_std(X) for m in self.estimators_]
        means = np.stack([np.asarray(p[0], dtype=np.float64) for p in parts])
        var = np.mean([np.asarray(p[1], dtype=np.float64) ** 2 for p in parts], axis=0)
        return means.mean(axis=0), np.sqrt(var + means.var(axis=0))


class AutoRegressor(RegressorMixin, BaseEstimator):
    """Pick the best of ``candidates`` by K-fold CV on the training runs, then fit it on all of them.

    The pick may be an ensemble of the candidates CV cannot separate (see ``select_model``).
    """

    def __init__(
        self,
        candidates: Sequence[str] = AUTO_CANDIDATES,
        folds: int = 5,
        metric: str = "spearman",
        random_state: int = 0,
    ) -> None:
        self.candidates = candidates
        self.folds = folds
        self.metric = metric
        self.random_state = random_state

    def fit(self, X: ArrayLike, y: ArrayLike) -> AutoRegressor:
        """Cross-validate every candidate, keep the best by ``metric``, refit it on all runs."""
        from mixlab.regression.validation import select_model

        X = _as_2d(X)
        y = np.asarray(y, dtype=np.float64)
        self.chosen_, self.cv_table_ = select_model(
            X, y, self.candidates, folds=self.folds, seed=self.random_state, metric=self.metric
        )
        self.estimator_ = make_regressor(self.chosen_, random_state=self.random_state).fit(X, y)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        check_is_fitted(self, "estimator_")
        return np.asarray(self.estimator_.predict(_as_2d(X)), dtype=np.float64)


def _lightgbm(params: dict[str, Any]) -> BaseEstimator:
    import lightgbm as lgb

    return lgb.LGBMRegressor(**params)


def make_regressor(name: str, **params: Any) -> BaseEstimator:
    """Build a regressor by name (see :data:`MODEL_NAMES`); ``params`` override its defaults.

    ``"a+b"`` names an equal-weight ensemble of models ``a`` and ``b`` (any of :data:`MODEL_NAMES` except
    ``auto``). ``random_state`` is accepted by every model (ignored where the model is deterministic).
    """
    seed = params.pop("random_state", None)
    if "+" in name:
        members = tuple(name.split("+"))
        bad = [m for m in members if m not in MODEL_NAMES or m == "auto"]
        if bad or len(members) < 2 or params:
            raise ValueError(
                f"unknown regressor {name!r}: an ensemble joins two or more of "
                f"{', '.join(n for n in MODEL_NAMES if n != 'auto')} with '+', without parameters"
            )
        return EnsembleRegressor(members=members, random_state=0 if seed is None else int(seed))
    if name == "linear":
        return LinearRegression(**params)
    if name == "ridge":
        return Ridge(**{"alpha": 1.0, **params})
    if name in ("lightgbm", "lightgbm_tuned"):
        base = REGMIX_LGBM_PARAMS if name == "lightgbm" else TUNED_LGBM_PARAMS
        merged = {**base, **params}
        if seed is not None and name == "lightgbm_tuned":
            merged["random_state"] = 42 + int(seed)
        return _lightgbm(merged)
    classes: dict[str, type[BaseEstimator]] = {
        "log_ridge": LogRidgeRegressor,
        "mixing_law": MixingLawRegressor,
        "gp": GPRegressor,
        "bootstrap": BootstrapRegressor,
        "stack": StackRegressor,
        "auto": AutoRegressor,
    }
    if name not in classes:
        raise ValueError(f"unknown regressor {name!r}; choose from {', '.join(MODEL_NAMES)}")
    if seed is not None:
        params["random_state"] = int(seed)
    return classes[name](**params)


def has_uncertainty(model: BaseEstimator) -> bool:
    """Whether a fitted model offers ``predict_with_std`` (directly or through ``auto``)."""
    inner = getattr(model, "estimator_", model)
    return hasattr(inner, "predict_with_std")


def predict_with_std(
    model: BaseEstimator, X: ArrayLike, fallback_std: float | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
    """Mean and std from a model; models without uncertainty give ``fallback_std`` (e.g. CV RMSE) or None."""
    inner = getattr(model, "estimator_", model)
    if hasattr(inner, "predict_with_std"):
        return inner.predict_with_std(X)
    mean = np.asarray(model.predict(X), dtype=np.float64)
    if fallback_std is None:
        return mean, None
    return mean, np.full_like(mean, float(fallback_std))
