"""Save and load fitted linear models without pickle: weights as safetensors, settings as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file


def save_linear(
    path: str | Path, coef: np.ndarray, intercept: np.ndarray, classes: list[str], settings: dict[str, Any]
) -> None:
    """Write ``PATH.safetensors`` (coef, intercept) and ``PATH.json`` (classes and settings)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        {
            "coef": np.ascontiguousarray(coef, dtype=np.float32),
            "intercept": np.ascontiguousarray(intercept, dtype=np.float32),
        },
        str(path.with_suffix(".safetensors")),
    )
    meta = {"classes": list(classes), "settings": settings}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")


def load_linear(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, Any]]:
    """Read what :func:`save_linear` wrote: (coef, intercept, classes, settings)."""
    path = Path(path)
    weights, meta_path = path.with_suffix(".safetensors"), path.with_suffix(".json")
    for p in (weights, meta_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: fitted model file not found")
    tensors = load_file(str(weights))
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    return tensors["coef"], tensors["intercept"], list(meta["classes"]), dict(meta["settings"])


def softmax_linear(X: Any, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Multinomial logistic probabilities of rows of ``X`` (dense or sparse) under ``coef``/``intercept``."""
    logits = np.asarray(X @ coef.T, dtype=np.float64) + intercept
    if coef.shape[0] == 1:  # binary model: one row of weights for the positive class
        logits = np.hstack([-logits / 2, logits / 2])
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)
