"""Regression stage: regressors from mixture weights to metrics, cross-validation and model selection.

Works on plain swarm tables (``ratios.csv`` + ``metrics.csv``) from any training stack.
"""

from mixlab.regression.config import FitConfig, Target
from mixlab.regression.fit import FitResult, fit_targets, load_fit, save_fit
from mixlab.regression.models import AUTO_CANDIDATES, MODEL_NAMES, make_regressor, predict_with_std
from mixlab.regression.validation import cross_validate, cv_predictions, score_predictions, select_model

__all__ = [
    "AUTO_CANDIDATES",
    "MODEL_NAMES",
    "FitConfig",
    "FitResult",
    "Target",
    "cross_validate",
    "cv_predictions",
    "fit_targets",
    "load_fit",
    "make_regressor",
    "predict_with_std",
    "save_fit",
    "score_predictions",
    "select_model",
]
