"""Fit every target of a swarm with a chosen or CV-selected regressor; save and reload without pickle.

A saved fit is ``fit.json`` (the input files with their sha256, the targets, the model chosen for each
target, the CV table) plus ``cv.csv``. Loading refits each target's chosen model from the recorded CSVs:
every model here is deterministic given its seed, so the reloaded predictor is the one that was saved.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.base import BaseEstimator

from mixlab.console import tqdm
from mixlab.pool.pool import atomic_write_text
from mixlab.regression.config import Target
from mixlab.regression.models import AUTO_CANDIDATES, make_regressor, predict_with_std
from mixlab.regression.signal import collapse_repeats
from mixlab.regression.targets import align_swarm, default_targets, target_values
from mixlab.regression.validation import cv_predictions, score_predictions, select_model

FIT_FILE = "fit.json"


@dataclass
class FitResult:
    """Fitted predictors of a swarm: one model per target, with its cross-validation record."""

    domains: list[str]
    targets: dict[str, Target]
    models: dict[str, BaseEstimator]
    chosen: dict[str, str]
    cv_table: pd.DataFrame
    oof: dict[str, pd.DataFrame]
    ratios: pd.DataFrame
    values: dict[str, pd.Series]
    folds: int = 5
    seed: int = 0
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def cv_rmse(self) -> dict[str, float]:
        """Out-of-fold RMSE of each target's chosen model (the fallback predictive std)."""
        out = {}
        for name, df in self.oof.items():
            out[name] = float(np.sqrt(np.mean((df["measured"] - df["predicted"]) ** 2)))
        return out

    def align(self, ratios: pd.DataFrame, source: str = "mixtures") -> NDArray[np.float64]:
        """Mixture rows as an array in this fit's domain order; missing or unknown domains are an error."""
        missing = [d for d in self.domains if d not in ratios.columns]
        extra = [c for c in ratios.columns if c not in self.domains]
        if missing or extra:
            raise ValueError(
                f"{source}: domain columns differ from the fitted swarm (missing {missing}, unknown {extra})"
            )
        return ratios[self.domains].to_numpy(dtype=np.float64)

    def _target(self, target: str | None) -> str:
        if target is None:
            if len(self.models) != 1:
                raise ValueError(f"several targets fitted ({', '.join(self.models)}); name one")
            return next(iter(self.models))
        if target not in self.models:
            raise ValueError(f"no fitted target {target!r} (fitted: {', '.join(self.models)})")
        return target

    def predict(
        self, X: NDArray[np.float64] | pd.DataFrame, target: str | None = None
    ) -> NDArray[np.float64]:
        """Predicted target values for mixtures ``X`` (array in domain order, or a DataFrame with domain columns)."""
        name = self._target(target)
        arr = self.align(X) if isinstance(X, pd.DataFrame) else np.asarray(X, dtype=np.float64)
        return np.asarray(self.models[name].predict(arr), dtype=np.float64)

    def predict_with_std(
        self, X: NDArray[np.float64] | pd.DataFrame, target: str | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Mean and std; models without their own uncertainty use their out-of-fold RMSE as the std."""
        name = self._target(target)
        arr = self.align(X) if isinstance(X, pd.DataFrame) else np.asarray(X, dtype=np.float64)
        mean, std = predict_with_std(self.models[name], arr, fallback_std=self.cv_rmse[name])
        assert std is not None
        return mean, std

    def cv_pairs(self) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]:
        """Per target, (out-of-fold predicted, measured) arrays of the chosen model (for plots)."""
        return {
            name: (df["predicted"].to_numpy(dtype=np.float64), df["measured"].to_numpy(dtype=np.float64))
            for name, df in self.oof.items()
        }

    def summary(self) -> pd.DataFrame:
        """CV metrics of the chosen model of each target."""
        chosen = self.cv_table[self.cv_table["chosen"]]
        return chosen.set_index("target")[["model", "spearman", "pearson", "mae", "rmse"]]


def fit_targets(
    ratios: pd.DataFrame,
    metrics: pd.DataFrame,
    targets: list[Target] | None = None,
    model: str = "auto",
    folds: int = 5,
    seed: int = 0,
    candidates: list[str] | None = None,
    metric: str = "spearman",
    sources: dict[str, str] | None = None,
) -> FitResult:
    """Fit each target on the swarm: cross-validate (choosing the model by CV when ``model='auto'``), then refit.

    ``ratios``/``metrics`` are the tables of :func:`mixlab.swarm.read_ratios` / ``read_metrics``. Runs whose
    target value is missing (NaN) are left out of that target's fit, with a warning giving the count.
    Runs with identical mixtures (repeats with other seeds) are fitted as one run holding their mean.
    """
    sources = dict(sources or {})
    r_src, m_src = sources.get("ratios", "ratios"), sources.get("metrics", "metrics")
    ratios, metrics = align_swarm(ratios, metrics, r_src, m_src)
    # Repeats (identical mixtures trained with other seeds) become one run with their mean, so that no
    # mixture sits on both sides of a cross-validation split.
    ratios, metrics = collapse_repeats(ratios, metrics)
    targets = targets or default_targets(metrics)
    if not targets:
        raise ValueError(f"{m_src}: no numeric metric columns to fit")
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate target names: {names}")
    models, chosen, oof, values, tables = {}, {}, {}, {}, []
    for target in tqdm(targets, desc="fitting targets", disable=len(targets) < 2):
        y_all = target_values(metrics, target, m_src)
        ok = y_all.notna()
        if not ok.all():
            warnings.warn(
                f"{m_src}: target {target.name!r} is missing for {int((~ok).sum())} run(s); they are not fitted",
                stacklevel=2,
            )
        X = ratios.loc[ok].to_numpy(dtype=np.float64)
        y = y_all[ok].to_numpy(dtype=np.float64)
        if len(y) < max(folds, 3):
            raise ValueError(
                f"{m_src}: target {target.name!r} has only {len(y)} runs with values; need >= {folds}"
            )
        if model == "auto":
            best, table, oofs = select_model(
                X,
                y,
                candidates or list(AUTO_CANDIDATES),
                folds=folds,
                seed=seed,
                metric=metric,
                return_oof=True,
            )
            pred = oofs[best]
        else:
            best = model
            pred = cv_predictions(model, X, y, folds=folds, seed=seed)
            table = pd.DataFrame([{"model": model, **score_predictions(y, pred)}]).set_index("model")
            table["chosen"] = True
        table = table.reset_index()
        table.insert(0, "target", target.name)
        tables.append(table)
        chosen[target.name] = best
        models[target.name] = make_regressor(best, random_state=seed).fit(X, y)
        oof[target.name] = pd.DataFrame(
            {"measured": y, "predicted": pred}, index=pd.Index(ratios.index[ok.to_numpy()], name="run")
        )
        values[target.name] = y_all[ok]
    return FitResult(
        domains=list(ratios.columns),
        targets={t.name: t for t in targets},
        models=models,
        chosen=chosen,
        cv_table=pd.concat(tables, ignore_index=True),
        oof=oof,
        ratios=ratios,
        values=values,
        folds=folds,
        seed=seed,
        sources=sources,
    )


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_fit(result: FitResult, out_dir: str | Path) -> Path:
    """Write ``fit.json`` and ``cv.csv`` to ``out_dir``; needs ``result.sources`` to name the input CSVs."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for key in ("ratios", "metrics"):
        if key not in result.sources or not Path(result.sources[key]).exists():
            raise ValueError(f"cannot save a fit whose {key} table is not a file (sources: {result.sources})")
    spec: dict[str, Any] = {
        "version": 1,
        "sources": {k: str(Path(v).resolve()) for k, v in result.sources.items()},
        "sha256": {k: _sha256(v) for k, v in result.sources.items()},
        "domains": result.domains,
        "targets": [t.model_dump() for t in result.targets.values()],
        "chosen": result.chosen,
        "folds": result.folds,
        "seed": result.seed,
        "cv": result.summary().reset_index().to_dict(orient="records"),
    }
    path = out / FIT_FILE
    atomic_write_text(path, json.dumps(spec, indent=2) + "\n")
    result.cv_table.to_csv(out / "cv.csv", index=False)
    return path


def load_fit(path: str | Path) -> FitResult:
    """Rebuild a saved fit by refitting each target's chosen model from the recorded CSVs (no pickle).

    The CSVs' sha256 must match the saved ones, so the reloaded predictors are the saved predictors.
    """
    from mixlab.swarm import read_metrics, read_ratios

    path = Path(path)
    if path.is_dir():
        path = path / FIT_FILE
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable fit file: {exc}") from exc
    for key, digest in spec["sha256"].items():
        src = spec["sources"][key]
        if not Path(src).exists() or _sha256(src) != digest:
            raise ValueError(f"{path}: the {key} table {src} is missing or changed since the fit was saved")
    ratios = read_ratios(spec["sources"]["ratios"])
    metrics = read_metrics(spec["sources"]["metrics"])
    targets = [Target(**t) for t in spec["targets"]]
    results = [
        fit_targets(
            ratios,
            metrics,
            [t],
            model=spec["chosen"][t.name],
            folds=spec["folds"],
            seed=spec["seed"],
            sources=spec["sources"],
        )
        for t in targets
    ]
    merged = results[0]
    for other in results[1:]:
        merged.models.update(other.models)
        merged.chosen.update(other.chosen)
        merged.oof.update(other.oof)
        merged.values.update(other.values)
        merged.targets.update(other.targets)
        merged.cv_table = pd.concat([merged.cv_table, other.cv_table], ignore_index=True)
    return merged
