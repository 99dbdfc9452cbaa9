"""A quality classifier on hashed word n-grams (the DCLM / PreSelect idea).

Train it on documents that look like what you want (e.g. the target tasks' questions and answers) as
positives and random pool documents as negatives; its probability is a quality score. Features are
stateless (``HashingVectorizer``), so the fitted state is two arrays (``coef_``, ``intercept_``) saved
as ``.npz`` — never a pickle.

As a scorer of the quality stage (``quality.classifier.positive`` set), the model is fitted once in the
driver (positives from the files, negatives a seeded sample of the pool), kept in
``attrs/quality_classifier/model.npz`` while the settings and the positive files are unchanged, and
applied to every shard through the executor (column ``classifier``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression

from mixlab.executors import Executor
from mixlab.pool.pool import Pool, fingerprint
from mixlab.quality.config import ClassifierSettings
from mixlab.quality.scorer import Prepared, Scorer, cached_artifact, score_key

CLASSIFIER_ATTR = "quality_classifier"


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


# -- the quality stage's classifier scorer ------------------------------------------------------------
def read_positive_texts(paths: Sequence[str], fields: Sequence[str]) -> list[str]:
    """One text per JSONL record: the named fields that hold text, joined by newlines (file:line errors)."""
    texts: list[str] = []
    for p in paths:
        with Path(p).open(encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{p}:{line_no}: invalid JSON: {exc.msg}") from exc
                parts = [rec[f] if isinstance(rec.get(f), str) else "" for f in fields]
                text = "\n".join(x for x in parts if x)
                if not text:
                    raise ValueError(f"{p}:{line_no}: none of the fields {list(fields)} holds text")
                texts.append(text)
    return texts


def _fit(pool: Pool, cs: ClassifierSettings, out: Path) -> None:
    pos = read_positive_texts(cs.positive, cs.text_fields)
    n_docs = pool.n_docs()
    rng = np.random.default_rng(cs.seed)
    pick = set(rng.choice(n_docs, size=min(cs.n_negative, n_docs), replace=False).tolist())
    neg: list[str] = []
    offset = 0
    for shard in pool.shards:
        texts = pool.read_shard(shard, ["text"]).column("text").to_pylist()
        neg.extend(t for i, t in enumerate(texts) if offset + i in pick)
        offset += len(texts)
    QualityClassifier(n_features=cs.n_features, ngram_max=cs.ngram_max, C=cs.C).fit(pos, neg).save(out)


def fit_classifier(pool: Pool, cs: ClassifierSettings, force: bool = False) -> tuple[Path, dict[str, Any]]:
    """Fit the quality classifier (or reuse the one fitted with these settings and positive files);
    return its path and its key."""
    key = {
        "classifier": score_key(cs),
        "positive_sha256": [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in cs.positive],
    }
    path = pool.attr_dir(CLASSIFIER_ATTR) / "model.npz"
    cached_artifact(path, key, lambda tmp: _fit(pool, cs, tmp), force)
    return path, key


def prepare_classifier(pool: Pool, settings: ClassifierSettings, executor: Executor, force: bool) -> Prepared:
    path, key = fit_classifier(pool, settings, force)
    # the fingerprint names the fitted model, so a long-lived worker never scores with an older fit
    return Prepared(payload={"model": str(path), "fit": fingerprint(key)}, key=key)


_MODELS: dict[str, QualityClassifier] = {}


def classifier_shard(pool_root: str, shard: str, payload: dict[str, Any]) -> pa.Table:
    """Shard stage: probability under the fitted quality classifier saved at ``payload['model']``."""
    cache_key = f"{payload['model']}#{payload.get('fit', '')}"
    if cache_key not in _MODELS:
        _MODELS.clear()
        _MODELS[cache_key] = QualityClassifier.load(payload["model"])
    texts = Pool.open(pool_root).read_shard(shard, ["text"]).column("text").to_pylist()
    proba = _MODELS[cache_key].predict_proba(texts)[:, 1]
    return pa.table({"classifier": pa.array(proba, type=pa.float64())})


SCORER = Scorer(
    name="classifier",
    attr=CLASSIFIER_ATTR,
    columns=("classifier",),
    direction="higher",
    settings=ClassifierSettings,
    shard_fn=classifier_shard,
    prepare=prepare_classifier,
    hint="set quality.classifier.positive (JSONL files of target-like examples)",
    release=_MODELS.clear,
)
