"""Task-anchored domains: a domain is defined by examples of its target task, not by rules.

Each task (an ELMB JSONL file or an lm-eval YAML, loaded by :func:`mixlab.evaluation.tasks.load_task`)
contributes its items, rendered the way the model sees them: the prompt, then the correct choice. A
document's raw score for a task is the mean cosine similarity to its ``k`` most similar items, in a
space of hashed word/punctuation n-grams (layout tokens such as newlines and colons included) and/or
all-MiniLM-L6-v2 sentence embeddings. Raw scores are calibrated against a background sample of the pool:
``z = (score - median) / (1.4826 * MAD)`` per task, so "how unusual is this similarity for this pool".
``p_<domain>`` is the softmax over ``z / temperature`` of the tasks plus an "other" column with constant
logit ``threshold``; ``z`` itself is the document's calibrated affinity to the task.

Fitted state (no pickle): item vectors as ``.npz`` (sparse) / ``.npy`` (embeddings), settings and
calibration as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from mixlab.domains.hashed_classifier import TOKEN_PATTERN

OTHER = "other"


def hashed_ngrams(
    texts: Sequence[str],
    n_features: int,
    ngram_max: int,
    max_chars: int,
    norm: str | None = "l2",
    token_pattern: str = TOKEN_PATTERN,
) -> sp.csr_matrix:
    """Hashed token n-grams (1..``ngram_max``) of the first ``max_chars`` characters of each text.

    Tokens match ``token_pattern`` (default :data:`~mixlab.domains.hashed_classifier.TOKEN_PATTERN`:
    newlines, words, single punctuation marks), lower-cased; no sign flipping, so ``norm=None`` gives
    plain n-gram counts. The same space serves task-anchored similarity and the task-affinity (DSIR) models.
    """
    vec = HashingVectorizer(
        n_features=n_features,
        token_pattern=token_pattern,
        ngram_range=(1, ngram_max),
        lowercase=True,
        alternate_sign=False,
        norm=norm,
        dtype=np.float32,
    )
    return vec.transform([t[:max_chars] for t in texts]).tocsr()


def template_columns(X: Any, owner: np.ndarray, n_tasks: int, share: float = 0.5) -> np.ndarray:
    """Hashed columns of the prompt template: n-grams found in at least ``share`` of the items of two or
    more tasks (``Question: ... Answer:`` is shared by every task and says nothing about which task a
    document is like). ``X`` holds the item rows, ``owner`` the task index of each row."""
    common = np.zeros(X.shape[1], dtype=np.int64)
    for t in range(n_tasks):
        rows = X[owner == t]
        df = np.asarray((rows > 0).sum(axis=0)).ravel() / max(1, rows.shape[0])
        common += df >= share
    return np.flatnonzero(common >= min(2, n_tasks))


def task_item_texts(name: str, spec: str | Path) -> list[str]:
    """Items of a task rendered as prompt + delimiter + correct choice (what the model is scored on)."""
    from mixlab.evaluation.tasks import load_task

    task = load_task(name, spec)
    texts = []
    for i in range(len(task)):
        choices = task.choices(i)
        texts.append(task.context(i) + task.target_delimiter + choices[task.gold(i)])
    if not texts:
        raise ValueError(f"task {name!r} ({spec}) has no items")
    return texts


class TaskAnchoredModel:
    """Similarity of documents to the items of each task, calibrated on a background sample.

    Parameters: ``features`` (``hashed``, ``minilm`` or ``both``: the mean of the two calibrated scores),
    ``k`` (nearest items averaged), ``n_features``/``ngram_max``/``max_chars`` (hashed space),
    ``threshold`` (logit of the "other" column, in calibrated units), ``temperature``, ``model`` and
    ``max_seq_length`` (MiniLM). Learned state: ``tasks_`` (names), ``items_`` (per feature kind, item
    vectors stacked over tasks), ``owner_`` (task index of each item row), ``median_``/``scale_``
    (``[n_kinds, n_tasks]`` background calibration).
    """

    def __init__(
        self,
        features: str = "hashed",
        k: int = 10,
        n_features: int = 2**18,
        ngram_max: int = 2,
        max_chars: int = 4000,
        threshold: float = 1.0,
        temperature: float = 1.0,
        model: str | None = None,
        max_seq_length: int = 128,
    ) -> None:
        if features not in ("hashed", "minilm", "both"):
            raise ValueError(f"features must be hashed, minilm or both, got {features!r}")
        self.features = features
        self.k = k
        self.n_features = n_features
        self.ngram_max = ngram_max
        self.max_chars = max_chars
        self.threshold = threshold
        self.temperature = temperature
        self.model = model
        self.max_seq_length = max_seq_length

    def get_params(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "k": self.k,
            "n_features": self.n_features,
            "ngram_max": self.ngram_max,
            "max_chars": self.max_chars,
            "threshold": self.threshold,
            "temperature": self.temperature,
            "model": self.model,
            "max_seq_length": self.max_seq_length,
        }

    # -- features ---------------------------------------------------------------------------------
    @property
    def kinds(self) -> list[str]:
        return ["hashed", "minilm"] if self.features == "both" else [self.features]

    def _vectors(self, kind: str, texts: Sequence[str]) -> Any:
        if kind == "hashed":
            return hashed_ngrams(texts, self.n_features, self.ngram_max, self.max_chars, norm="l2")
        from mixlab.domains.embeddings import embed_texts

        heads = [t[: self.max_chars] for t in texts]
        return embed_texts(heads, self.model, self.max_seq_length, progress=False)

    def _masked(self, kind: str, X: Any) -> Any:
        """Hashed vectors weighted by the background IDF, without the template columns (n-grams common
        to the items of several tasks), L2-normalised."""
        if kind != "hashed":
            return X
        keep = self.idf_.astype(np.float32).copy()
        keep[self.template_] = 0.0
        X = (X @ sp.diags(keep)).tocsr()
        X.eliminate_zeros()
        norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
        return sp.diags(1.0 / np.maximum(norms, 1e-12)).astype(np.float32) @ X

    def _raw(self, kind: str, X: Any) -> np.ndarray:
        """Mean of the top-k similarities to each task's items: ``[n_docs, n_tasks]``."""
        X = self._masked(kind, X)
        items = self.items_[kind]
        sims = X @ items.T
        sims = sims.toarray() if sp.issparse(sims) else np.asarray(sims)
        out = np.zeros((sims.shape[0], len(self.tasks_)), dtype=np.float64)
        for t in range(len(self.tasks_)):
            cols = sims[:, self.owner_ == t]
            k = min(self.k, cols.shape[1])
            top = np.partition(cols, cols.shape[1] - k, axis=1)[:, -k:]
            out[:, t] = top.mean(axis=1)
        return out

    # -- fitting ----------------------------------------------------------------------------------
    def fit(self, items: Mapping[str, Sequence[str]], background: Sequence[str]) -> TaskAnchoredModel:
        """Learn from ``{task: item texts}`` and calibrate on ``background`` (a sample of the pool)."""
        if not items:
            raise ValueError("task-anchored domains need at least one task")
        if OTHER in items:
            raise ValueError(f"a task may not be called {OTHER!r}")
        if not background:
            raise ValueError("task-anchored domains need a background sample of the pool")
        self.tasks_ = list(items)
        self.owner_ = np.concatenate([np.full(len(v), i) for i, v in enumerate(items.values())])
        all_items = [t for v in items.values() for t in v]
        self.items_ = {kind: self._vectors(kind, all_items) for kind in self.kinds}
        self.template_ = np.zeros(0, dtype=np.int64)
        self.idf_ = np.ones(self.n_features)
        bg_vectors = {kind: self._vectors(kind, background) for kind in self.kinds}
        if "hashed" in self.items_:
            # frequent n-grams of the pool ("the", "of", newlines) say little: weight by the background IDF
            df = np.asarray((bg_vectors["hashed"] > 0).sum(axis=0)).ravel()
            self.idf_ = np.log((1 + len(background)) / (1 + df)) + 1.0
            # the prompt template (``Question: ... Answer:``) is shared by every task: n-grams in at least
            # half the items of two or more tasks say nothing about which task a document is like
            X = self.items_["hashed"]
            self.template_ = template_columns(X, self.owner_, len(self.tasks_))
            self.items_["hashed"] = self._masked("hashed", X)
        med, scale = [], []
        for kind in self.kinds:
            raw = self._raw(kind, bg_vectors[kind])
            m = np.median(raw, axis=0)
            mad = np.median(np.abs(raw - m), axis=0) * 1.4826
            med.append(m)
            scale.append(np.maximum(mad, 1e-3))
        self.median_, self.scale_ = np.array(med), np.array(scale)
        return self

    # -- scoring ----------------------------------------------------------------------------------
    def affinity(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated similarity ``z`` ``[n, n_tasks]`` (background median 0, robust standard deviation 1)."""
        if not texts:
            return np.zeros((0, len(self.tasks_)))
        zs = [
            (self._raw(kind, self._vectors(kind, texts)) - self.median_[i]) / self.scale_[i]
            for i, kind in enumerate(self.kinds)
        ]
        return np.mean(zs, axis=0)

    def proba_from_affinity(self, z: np.ndarray) -> np.ndarray:
        """``[n, n_tasks + 1]`` probabilities: softmax of ``z / temperature`` and the "other" logit."""
        logits = np.hstack([z, np.full((len(z), 1), self.threshold)]) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities over ``classes_`` (the tasks, then ``other``)."""
        return self.proba_from_affinity(self.affinity(texts))

    @property
    def classes_(self) -> list[str]:
        return [*self.tasks_, OTHER]

    # -- persistence (no pickle) ------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """Write ``state.json`` plus item vectors (``items_hashed.npz``, ``items_minilm.npy``) to ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for kind, items in self.items_.items():
            if kind == "hashed":
                sp.save_npz(folder / "items_hashed.npz", items, compressed=True)
                np.save(folder / "idf.npy", self.idf_, allow_pickle=False)
            else:
                np.save(folder / "items_minilm.npy", items, allow_pickle=False)
        state = {
            "settings": self.get_params(),
            "tasks": self.tasks_,
            "owner": self.owner_.tolist(),
            "template": self.template_.tolist(),
            "median": self.median_.tolist(),
            "scale": self.scale_.tolist(),
        }
        (folder / "state.json").write_text(json.dumps(state), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> TaskAnchoredModel:
        """Read a model written by :meth:`save`."""
        folder = Path(folder)
        path = folder / "state.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: fitted task-anchored state not found")
        state = json.loads(path.read_text(encoding="utf-8"))
        model = cls(**state["settings"])
        model.tasks_ = list(state["tasks"])
        model.owner_ = np.asarray(state["owner"], dtype=np.int64)
        model.template_ = np.asarray(state.get("template", []), dtype=np.int64)
        model.median_ = np.asarray(state["median"], dtype=np.float64)
        model.scale_ = np.asarray(state["scale"], dtype=np.float64)
        model.items_ = {}
        for kind in model.kinds:
            if kind == "hashed":
                model.items_[kind] = sp.load_npz(folder / "items_hashed.npz").tocsr()
                model.idf_ = np.load(folder / "idf.npy", allow_pickle=False)
            else:
                model.items_[kind] = np.load(folder / "items_minilm.npy", allow_pickle=False)
        return model


def anchored_to_domains(probs: np.ndarray, classes: Sequence[str], domains: Sequence[str]) -> np.ndarray:
    """Map task-anchored probabilities onto ``domains``: a task's column goes to the domain of the same
    name; the "other" mass is spread evenly over the domains that no task names (rows sum to 1)."""
    index = {c: j for j, c in enumerate(classes)}
    free = [i for i, d in enumerate(domains) if d not in index]
    out = np.zeros((len(probs), len(domains)), dtype=np.float64)
    for i, d in enumerate(domains):
        if d in index:
            out[:, i] = probs[:, index[d]]
    if free and OTHER in index:
        out[:, free] += probs[:, [index[OTHER]]] / len(free)
    s = out.sum(axis=1, keepdims=True)
    return out / np.where(s > 0, s, 1.0)
