"""A quality classifier on hashed word n-grams (the DCLM / PreSelect idea).

Train it on documents that look like what you want (e.g. the target tasks' questions and answers) as
positives and random pool documents as negatives; its probability is a quality score. Features are
stateless (``HashingVectorizer``), so the fitted state is two arrays (``coef_``, ``intercept_``) saved
as ``.npz`` — never a pickle.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression


class QualityClassifier(ClassifierMixin, BaseEstimator):
    """Logistic regression on hashed, l2-normalised word 1..``ngram_max``-gram counts.

    ``fit(pos_texts, neg_texts)`` (or the scikit-learn form ``fit(texts, y)``), then
    ``predict_proba(texts)[:, 1]`` is the probability that a text is positive-like.
    """

    def __init__(self, n_features: int = 2**18, ngram_max: int = 2, C: float = 1.0) -> None:
        self.n_features = n_features
        self.ngram_max = ngram_max
        self.C = C

    def _vectorizer(self) -> HashingVectorizer:
        return HashingVectorizer(
            n_features=self.n_features, ngram_range=(1, self.ngram_max), alternate_sign=False, norm="l2"
        )

    def fit(self, pos_texts: Sequence[str], neg_texts: Sequence[str] | np.ndarray) -> QualityClassifier:
        """Fit on positive and negative texts (or on ``texts, y`` with ``y`` a 0/1 array)."""
        if isinstance(neg_texts, np.ndarray) and neg_texts.dtype != object:
            texts, y = list(pos_texts), np.asarray(neg_texts, dtype=int)
        else:
            texts = list(pos_texts) + list(neg_texts)
            y = np.r_[np.ones(len(pos_texts), dtype=int), np.zeros(len(neg_texts), dtype=int)]
        if len(set(y.tolist())) < 2:
            raise ValueError("QualityClassifier needs both positive and negative examples")
        model = LogisticRegression(C=self.C, max_iter=1000, class_weight="balanced")
        model.fit(self._vectorizer().transform(texts), y)
        self.coef_ = model.coef_.astype(np.float64)
        self.intercept_ = model.intercept_.astype(np.float64)
        self.classes_ = np.array([0, 1])
        return self

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        X = self._vectorizer().transform(list(texts))
        return np.asarray(X @ self.coef_.ravel() + self.intercept_[0]).ravel()

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Columns: P(negative), P(positive)."""
        p = 1.0 / (1.0 + np.exp(-self.decision_function(texts)))
        return np.c_[1 - p, p]

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return (self.decision_function(texts) > 0).astype(int)

    def save(self, path: str | Path) -> None:
        """Save the fitted state and hyper-parameters as ``.npz`` (no pickle)."""
        np.savez(
            path,
            coef=self.coef_,
            intercept=self.intercept_,
            params=np.array([self.n_features, self.ngram_max, self.C], dtype=np.float64),
        )

    @classmethod
    def load(cls, path: str | Path) -> QualityClassifier:
        with np.load(path, allow_pickle=False) as data:
            n_features, ngram_max, c = data["params"].tolist()
            model = cls(n_features=int(n_features), ngram_max=int(ngram_max), C=float(c))
            model.coef_ = data["coef"]
            model.intercept_ = data["intercept"]
        model.classes_ = np.array([0, 1])
        return model
