"""A fast text classifier: multinomial logistic regression on hashed word and punctuation n-grams.

The hashing trick needs no vocabulary, so the fitted state is just the weight matrix (safetensors) and
the hashing settings (JSON); it applies to any shard in any process.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from mixlab.domains.persist import load_linear, save_linear, softmax_linear

#: Tokens: newlines (layout matters), words, and single punctuation marks (``):``, ``{"`` via bigrams).
TOKEN_PATTERN = r"\n|\w+|[^\w\s]"


class HashedNgramClassifier(ClassifierMixin, BaseEstimator):
    """Soft domain classifier on hashed n-grams of the first ``max_chars`` characters of each text.

    Parameters follow :class:`mixlab.domains.config.HashedClassifierConfig`. Learned state: ``classes_``,
    ``coef_`` (``[n_classes or 1, n_features]``) and ``intercept_``.
    """

    def __init__(
        self,
        n_features: int = 2**17,
        ngram_max: int = 2,
        max_chars: int = 4000,
        C: float = 4.0,
        max_iter: int = 300,
    ) -> None:
        self.n_features = n_features
        self.ngram_max = ngram_max
        self.max_chars = max_chars
        self.C = C
        self.max_iter = max_iter

    def _vectorizer(self) -> HashingVectorizer:
        return HashingVectorizer(
            n_features=self.n_features,
            token_pattern=TOKEN_PATTERN,
            ngram_range=(1, self.ngram_max),
            lowercase=False,
            alternate_sign=False,
            norm="l2",
            dtype=np.float32,
        )

    def transform(self, texts: Sequence[str]) -> Any:
        """Sparse hashed features ``[n, n_features]`` of ``texts``."""
        return self._vectorizer().transform([t[: self.max_chars] for t in texts])

    def fit(self, texts: Sequence[str], y: Sequence[str]) -> HashedNgramClassifier:
        """Learn from seed ``texts`` labelled ``y`` (classes are balanced by weight)."""
        labels = np.asarray(y)
        if len(set(labels.tolist())) < 2:
            raise ValueError("the classifier needs seed documents of at least two domains")
        model = LogisticRegression(C=self.C, max_iter=self.max_iter, class_weight="balanced")
        with threadpool_limits(1):  # BLAS threads only slow lbfgs down on this small dense part
            model.fit(self.transform(texts), labels)
        self.classes_ = model.classes_
        self.coef_ = model.coef_.astype(np.float32)
        self.intercept_ = model.intercept_.astype(np.float32)
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities ``[n, n_classes]`` (rows sum to 1), columns in ``classes_`` order."""
        return softmax_linear(self.transform(texts), self.coef_, self.intercept_)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Most probable class of each text."""
        return self.classes_[np.argmax(self.predict_proba(texts), axis=1)]

    # -- persistence (no pickle) ------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write ``PATH.safetensors`` (weights) and ``PATH.json`` (classes, hashing settings)."""
        save_linear(path, self.coef_, self.intercept_, [str(c) for c in self.classes_], self.get_params())

    @classmethod
    def load(cls, path: str | Path) -> HashedNgramClassifier:
        """Read a classifier written by :meth:`save`."""
        coef, intercept, classes, settings = load_linear(path)
        model = cls(**settings)
        if coef.shape[1] != model.n_features:
            raise ValueError(
                f"{path}: weights have {coef.shape[1]} columns but n_features is {model.n_features}"
            )
        model.classes_ = np.asarray(classes, dtype=object)
        model.coef_, model.intercept_ = coef, intercept
        return model
