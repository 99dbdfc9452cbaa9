"""Embedding-based domain classifier: logistic regression on all-MiniLM-L6-v2 sentence embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from mixlab.domains.embeddings import embed_texts
from mixlab.domains.persist import load_linear, save_linear, softmax_linear


class EmbeddingClassifier(ClassifierMixin, BaseEstimator):
    """Soft domain classifier on sentence embeddings.

    ``model`` is a sentence-transformers folder (default: the packaged all-MiniLM-L6-v2). Learned state:
    ``classes_``, ``coef_``, ``intercept_`` (the embedding model itself is not trained).
    """

    def __init__(
        self, model: str | None = None, max_seq_length: int = 128, batch_size: int = 32, C: float = 4.0
    ) -> None:
        self.model = model
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.C = C

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised embeddings ``[n, dim]`` of ``texts``."""
        return embed_texts(texts, self.model, self.max_seq_length, self.batch_size)

    def fit(
        self, texts: Sequence[str], y: Sequence[str], embeddings: np.ndarray | None = None
    ) -> EmbeddingClassifier:
        """Learn from seed ``texts`` labelled ``y`` (pass precomputed ``embeddings`` to skip encoding)."""
        labels = np.asarray(y)
        if len(set(labels.tolist())) < 2:
            raise ValueError("the classifier needs seed documents of at least two domains")
        X = self.transform(texts) if embeddings is None else embeddings
        model = LogisticRegression(C=self.C, max_iter=1000, class_weight="balanced").fit(X, labels)
        self.classes_ = model.classes_
        self.coef_ = model.coef_.astype(np.float32)
        self.intercept_ = model.intercept_.astype(np.float32)
        return self

    def predict_proba(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        """Probabilities ``[n, n_classes]`` (rows sum to 1), columns in ``classes_`` order."""
        X = self.transform(texts) if embeddings is None else embeddings
        return softmax_linear(X, self.coef_, self.intercept_)

    def predict(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        """Most probable class of each text."""
        return self.classes_[np.argmax(self.predict_proba(texts, embeddings), axis=1)]

    def save(self, path: str | Path) -> None:
        """Write ``PATH.safetensors`` (weights) and ``PATH.json`` (classes, settings)."""
        save_linear(path, self.coef_, self.intercept_, [str(c) for c in self.classes_], self.get_params())

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingClassifier:
        """Read a classifier written by :meth:`save`."""
        coef, intercept, classes, settings = load_linear(path)
        model = cls(**settings)
        model.classes_ = np.asarray(classes, dtype=object)
        model.coef_, model.intercept_ = coef, intercept
        return model
