"""Unsupervised domains for single-source corpora (CLIMB's way).

Documents become vectors (TF-IDF reduced by truncated SVD, or MiniLM sentence embeddings), mini-batch
k-means groups them, clusters whose centroids are close (cosine similarity >= ``merge_threshold``) are
merged by average-linkage agglomeration, and each cluster gets a summary (top terms, example documents,
size, which k-means clusters it merges) so a person can name it.

Fitted state is saved without pickle: centroids as ``.npy``, the TF-IDF vocabulary as JSON, IDF weights
and SVD components as ``.npy``.

``algorithm: lda`` fits a topic model instead (sklearn's ``LatentDirichletAllocation`` on word counts,
online variational Bayes): each document goes to its most probable topic, its "distance" is one minus
that probability, topics whose word distributions are close merge the same way, and a topic's top terms
are its most probable words weighted by how distinctive they are (``p(w|t) log(p(w|t) / p(w))``). Its
state is the topic-word matrix and its Dirichlet expectation (``.npy``) plus the vocabulary (JSON).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.cluster import AgglomerativeClustering, MiniBatchKMeans
from sklearn.decomposition import LatentDirichletAllocation, TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.preprocessing import normalize

from mixlab.domains.config import ClusterConfig
from mixlab.domains.embeddings import embed_texts

_TFIDF_ARGS: dict[str, Any] = {
    "sublinear_tf": True,
    "stop_words": "english",
    "token_pattern": r"(?u)\b[A-Za-z_][A-Za-z0-9_]+\b",
    "dtype": np.float32,
}


def _tfidf(
    vocabulary: dict[str, int] | None = None, max_features: int | None = None, min_df: int = 1
) -> TfidfVectorizer:
    return TfidfVectorizer(vocabulary=vocabulary, max_features=max_features, min_df=min_df, **_TFIDF_ARGS)


def _counter(
    vocabulary: dict[str, int] | None = None, max_features: int | None = None, min_df: int = 1
) -> CountVectorizer:
    """Word counts for LDA: the TF-IDF tokenisation and stop words, without the weighting."""
    args = {k: v for k, v in _TFIDF_ARGS.items() if k != "sublinear_tf"}
    return CountVectorizer(vocabulary=vocabulary, max_features=max_features, min_df=min_df, **args)


def distinctive_terms(
    weights: np.ndarray, background: np.ndarray, terms: Sequence[str], top: int
) -> list[str]:
    """The ``top`` terms of a group whose term weights are ``weights`` (any non-negative scale), ranked by
    ``p log(1 + p / q)`` with ``p``/``q`` the group's and the background's normalised weights: frequent in
    the group and more frequent there than overall."""
    p = weights / max(float(weights.sum()), 1e-12)
    q = background / max(float(background.sum()), 1e-12)
    score = p * np.log1p(p / (q + 1e-9))
    order = np.argsort(-score, kind="stable")[:top]
    return [str(terms[j]) for j in order if score[j] > 0]


def merge_centroids(centroids: np.ndarray, threshold: float) -> np.ndarray:
    """Map each centroid to a merged group: average-linkage on cosine distance, cut at ``1 - threshold``.

    Returns an int array ``[k]`` of group ids (0..m-1, in order of first appearance).
    """
    k = len(centroids)
    if threshold >= 1.0 or k < 2:
        return np.arange(k)
    agg = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=max(1e-9, 1.0 - threshold)
    )
    labels = agg.fit_predict(centroids)
    order: dict[int, int] = {}
    return np.array([order.setdefault(int(lab), len(order)) for lab in labels])


class ClusterModel:
    """Embed, cluster, merge and summarise documents; assign new documents to the fitted clusters.

    Learned state (after :meth:`fit`): ``raw_centroids_`` ``[k, dim]`` (unit rows; for LDA the topics'
    word distributions), ``merge_map_`` ``[k]`` (k-means cluster or topic -> merged cluster),
    ``vocabulary_`` / ``idf_`` (TF-IDF for top terms and for ``embed='tfidf'`` features),
    ``svd_components_`` (``embed='tfidf'``), ``topic_word_`` / ``exp_topic_word_`` /
    ``doc_topic_prior_`` (``algorithm='lda'``), ``summaries_`` (list of dicts).
    """

    def __init__(self, config: ClusterConfig | None = None) -> None:
        self.config = config or ClusterConfig()

    # -- features ---------------------------------------------------------------------------------
    def _vectorizer(self) -> TfidfVectorizer:
        vec = _tfidf(vocabulary=self.vocabulary_)
        vec.idf_ = self.idf_
        return vec

    def _features(self, texts: Sequence[str], tfidf: Any | None = None) -> np.ndarray:
        cfg = self.config
        heads = [t[: cfg.max_chars] for t in texts]
        if cfg.embed == "minilm":
            return embed_texts(heads, cfg.model, cfg.max_seq_length)
        X = tfidf if tfidf is not None else self._vectorizer().transform(heads)
        return normalize(np.asarray(X @ self.svd_components_.T, dtype=np.float32))

    @property
    def is_lda(self) -> bool:
        return self.config.algorithm == "lda"

    def _lda(self) -> LatentDirichletAllocation:
        """An LDA estimator holding the fitted topics (for ``transform``; nothing is unpickled)."""
        lda = LatentDirichletAllocation(n_components=self.topic_word_.shape[0], n_jobs=1)
        lda.components_ = self.topic_word_
        lda.exp_dirichlet_component_ = self.exp_topic_word_
        lda.doc_topic_prior_ = self.doc_topic_prior_
        lda.n_features_in_ = self.topic_word_.shape[1]
        return lda

    def _topic_mix(self, texts: Sequence[str], counts: Any | None = None) -> np.ndarray:
        """``[n, k]`` topic proportions of each text under the fitted LDA model."""
        if counts is None:
            heads = [t[: self.config.max_chars] for t in texts]
            counts = _counter(vocabulary=self.vocabulary_).transform(heads)
        return np.asarray(self._lda().transform(counts), dtype=np.float64)

    def _fit_lda(self, texts: Sequence[str], ids: Sequence[str], heads: list[str]) -> ClusterModel:
        cfg = self.config
        vec = _counter(max_features=cfg.max_features, min_df=2 if len(texts) >= 100 else 1)
        counts = vec.fit_transform(heads)
        self.vocabulary_ = {str(k): int(v) for k, v in vec.vocabulary_.items()}
        lda = LatentDirichletAllocation(
            n_components=cfg.k,
            learning_method="online",
            batch_size=cfg.batch_size,
            max_iter=cfg.lda_max_iter,
            random_state=cfg.seed,
            n_jobs=1,
        ).fit(counts)
        self.topic_word_ = lda.components_.astype(np.float64)
        self.exp_topic_word_ = np.asarray(lda.exp_dirichlet_component_, dtype=np.float64)
        self.doc_topic_prior_ = float(lda.doc_topic_prior_)
        self.raw_centroids_ = normalize(self.topic_word_ / self.topic_word_.sum(axis=1, keepdims=True))
        self.merge_map_ = merge_centroids(self.raw_centroids_, cfg.merge_threshold)
        raw, dist = self._assign_raw(self._topic_mix(texts, counts))
        self.summaries_ = self._summarise(texts, ids, counts, raw, dist)
        return self

    def fit(self, texts: Sequence[str], ids: Sequence[str]) -> ClusterModel:
        """Fit on ``texts`` (a sample of the corpus) with document ``ids`` (for example documents)."""
        cfg = self.config
        n = len(texts)
        if n < cfg.k:
            raise ValueError(f"cannot make {cfg.k} clusters from {n} documents")
        heads = [t[: cfg.max_chars] for t in texts]
        if self.is_lda:
            return self._fit_lda(texts, ids, heads)
        vec = _tfidf(max_features=cfg.max_features, min_df=2 if n >= 100 else 1)
        tfidf = vec.fit_transform(heads)
        self.vocabulary_ = {str(k): int(v) for k, v in vec.vocabulary_.items()}
        self.idf_ = vec.idf_.astype(np.float64)
        if cfg.embed == "tfidf":
            dim = max(2, min(cfg.svd_dim, tfidf.shape[1] - 1, n - 1))
            svd = TruncatedSVD(n_components=dim, random_state=cfg.seed).fit(tfidf)
            self.svd_components_ = svd.components_.astype(np.float32)
        X = self._features(texts, tfidf=tfidf)
        km = MiniBatchKMeans(
            n_clusters=cfg.k,
            batch_size=cfg.batch_size,
            random_state=cfg.seed,
            n_init=3,
            max_no_improvement=20,
        ).fit(X)
        self.raw_centroids_ = normalize(km.cluster_centers_.astype(np.float32))
        self.merge_map_ = merge_centroids(self.raw_centroids_, cfg.merge_threshold)
        raw, dist = self._assign_raw(X)
        self.summaries_ = self._summarise(texts, ids, tfidf, raw, dist)
        return self

    # -- assignment -------------------------------------------------------------------------------
    def _assign_raw(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest centroid and cosine distance; for LDA (``X`` = topic proportions) the most probable
        topic and one minus its probability."""
        sims = X if self.is_lda else X @ self.raw_centroids_.T
        raw = np.argmax(sims, axis=1)
        dist = 1.0 - sims[np.arange(len(X)), raw]
        return raw.astype(np.int32), np.clip(dist, 0.0, 2.0).astype(np.float32)

    def predict(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(merged cluster id, k-means cluster id, cosine distance to its k-means centroid) per text."""
        if not texts:
            empty = np.zeros(0, dtype=np.int32)
            return empty, empty, np.zeros(0, dtype=np.float32)
        X = self._topic_mix(texts) if self.is_lda else self._features(texts)
        raw, dist = self._assign_raw(X)
        return self.merge_map_[raw].astype(np.int32), raw, dist

    @property
    def n_clusters_(self) -> int:
        """Number of clusters after merging."""
        return int(self.merge_map_.max()) + 1

    # -- summaries --------------------------------------------------------------------------------
    def _summarise(
        self, texts: Sequence[str], ids: Sequence[str], tfidf: Any, raw: np.ndarray, dist: np.ndarray
    ) -> list[dict[str, Any]]:
        cfg = self.config
        terms = np.empty(len(self.vocabulary_), dtype=object)
        for term, j in self.vocabulary_.items():
            terms[j] = term
        merged = self.merge_map_[raw]
        overall = np.asarray(tfidf.mean(axis=0)).ravel()  # word counts for LDA
        out: list[dict[str, Any]] = []
        for c in range(self.n_clusters_):
            rows = np.flatnonzero(merged == c)
            summary: dict[str, Any] = {
                "cluster": c,
                "size": len(rows),
                "merged_from": [int(r) for r in np.flatnonzero(self.merge_map_ == c)],
                "top_terms": [],
                "examples": [],
            }
            if self.is_lda:  # from the topic-word distributions, whether or not documents chose the topic
                weights = self.topic_word_[self.merge_map_ == c].sum(axis=0)
                summary["top_terms"] = distinctive_terms(weights, overall, terms, cfg.top_terms)
            if len(rows):
                if not self.is_lda:
                    mean = np.asarray(tfidf[rows].mean(axis=0)).ravel()
                    score = mean * np.log1p(mean / (overall + 1e-9))  # frequent here and distinctive
                    top = np.argsort(-score)[: cfg.top_terms]
                    summary["top_terms"] = [str(terms[j]) for j in top if score[j] > 0]
                nearest = rows[np.argsort(dist[rows], kind="stable")[: cfg.examples]]
                summary["examples"] = [
                    {
                        "id": str(ids[i]),
                        "distance": round(float(dist[i]), 4),
                        "snippet": " ".join(texts[i][:200].split()),
                    }
                    for i in nearest
                ]
            out.append(summary)
        return out

    # -- persistence (no pickle) ------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """Write the fitted state to ``folder`` (npy + JSON)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "centroids.npy", self.raw_centroids_, allow_pickle=False)
        state: dict[str, Any] = {
            "config": self.config.model_dump(mode="json"),
            "merge_map": [int(x) for x in self.merge_map_],
            "vocabulary": self.vocabulary_,
        }
        if self.is_lda:
            np.save(folder / "topic_word.npy", self.topic_word_, allow_pickle=False)
            np.save(folder / "exp_topic_word.npy", self.exp_topic_word_, allow_pickle=False)
            state["doc_topic_prior"] = self.doc_topic_prior_
        else:
            np.save(folder / "idf.npy", self.idf_, allow_pickle=False)
            if self.config.embed == "tfidf":
                np.save(folder / "svd_components.npy", self.svd_components_, allow_pickle=False)
        (folder / "clusters.json").write_text(json.dumps(state, sort_keys=True), encoding="utf-8")
        (folder / "summaries.json").write_text(
            json.dumps(self.summaries_, indent=2, ensure_ascii=False), encoding="utf-8"
        )

    @classmethod
    def load(cls, folder: str | Path) -> ClusterModel:
        """Read a model written by :meth:`save`."""
        folder = Path(folder)
        state_path = folder / "clusters.json"
        if not state_path.is_file():
            raise FileNotFoundError(f"{state_path}: fitted cluster state not found")
        state = json.loads(state_path.read_text(encoding="utf-8"))
        model = cls(ClusterConfig.model_validate(state["config"]))
        model.raw_centroids_ = np.load(folder / "centroids.npy", allow_pickle=False)
        if model.is_lda:
            model.topic_word_ = np.load(folder / "topic_word.npy", allow_pickle=False)
            model.exp_topic_word_ = np.load(folder / "exp_topic_word.npy", allow_pickle=False)
            model.doc_topic_prior_ = float(state["doc_topic_prior"])
        else:
            model.idf_ = np.load(folder / "idf.npy", allow_pickle=False)
            if model.config.embed == "tfidf":
                model.svd_components_ = np.load(folder / "svd_components.npy", allow_pickle=False)
        model.merge_map_ = np.asarray(state["merge_map"], dtype=np.int64)
        model.vocabulary_ = {str(k): int(v) for k, v in state["vocabulary"].items()}
        summaries = folder / "summaries.json"
        model.summaries_ = json.loads(summaries.read_text(encoding="utf-8")) if summaries.is_file() else []
        return model


def summarise_groups(
    texts: Sequence[str], ids: Sequence[str], labels: Sequence[str], config: ClusterConfig | None = None
) -> list[dict[str, Any]]:
    """Summaries of given groups (sources, ClimbLab clusters) like the clusters' own: for each distinct
    label, in order of first appearance, ``domain``, ``size`` (documents given),
    ``top_terms`` (distinctive TF-IDF terms) and ``examples`` (the documents nearest the group's mean
    TF-IDF vector: id, cosine distance, snippet)."""
    cfg = config or ClusterConfig()
    if not texts:
        return []
    heads = [t[: cfg.max_chars] for t in texts]
    vec = _tfidf(max_features=cfg.max_features, min_df=2 if len(texts) >= 100 else 1)
    try:
        tfidf = vec.fit_transform(heads)
    except ValueError:  # no word survives the stop list (e.g. only numbers): no terms to show
        tfidf = None
    terms = vec.get_feature_names_out() if tfidf is not None else np.zeros(0, dtype=object)
    overall = np.asarray(tfidf.mean(axis=0)).ravel() if tfidf is not None else np.zeros(0)
    labels_arr = np.asarray(labels, dtype=object)
    out: list[dict[str, Any]] = []
    for name in dict.fromkeys(labels_arr.tolist()):
        rows = np.flatnonzero(labels_arr == name)
        summary: dict[str, Any] = {"domain": str(name), "size": len(rows), "top_terms": [], "examples": []}
        dist = np.zeros(len(rows))
        if tfidf is not None:
            mean = np.asarray(tfidf[rows].mean(axis=0)).ravel()
            summary["top_terms"] = distinctive_terms(mean, overall, terms, cfg.top_terms)
            centre = mean / max(float(np.linalg.norm(mean)), 1e-12)
            dist = 1.0 - np.asarray(tfidf[rows] @ centre).ravel()
        nearest = np.argsort(dist, kind="stable")[: cfg.examples]
        summary["examples"] = [
            {
                "id": str(ids[rows[i]]),
                "distance": round(float(dist[i]), 4),
                "snippet": " ".join(texts[rows[i]][:200].split()),
            }
            for i in nearest
        ]
        out.append(summary)
    return out
