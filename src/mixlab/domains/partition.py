"""``partition_pool``: write the ``domains`` attribute (label, per-domain probabilities, method) of a pool.

Methods: ``rules`` (ordered YAML rules), ``classifier`` (hashed n-gram model trained on seeds),
``rules+classifier`` (high-confidence rules, else the classifier; or a blend), ``embedding`` (MiniLM
embeddings + logistic regression) and ``clusters`` (k-means clusters as domains). Whole-corpus fits
(classifiers, k-means) run first and save their state in ``attrs/domains/``; the per-shard apply is then
mapped by the executor handed in (:meth:`mixlab.executors.Executor.map_shards`), which skips finished
shards.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mixlab.console import tqdm
from mixlab.domains.clusters import ClusterModel
from mixlab.domains.config import PartitionConfig
from mixlab.domains.embedding_classifier import EmbeddingClassifier
from mixlab.domains.hashed_classifier import HashedNgramClassifier
from mixlab.domains.methods import METHODS, check_pinned_sources, pin_sources
from mixlab.domains.rules import RuleSet, load_rules
from mixlab.executors import Executor, Resources, resolve_executor
from mixlab.jsonl import iter_jsonl
from mixlab.pool.pool import Pool, PoolError, fingerprint

ATTR = "domains"
HASHED_STATE = "hashed_classifier"
EMBEDDING_STATE = "embedding_classifier"
CLUSTER_STATE = "clusters_model"
#: What labelling one shard needs (rules, a hashed classifier, k-means or MiniLM inference on CPU).
SHARD_RESOURCES = Resources(cpus=1)


def id_rank(doc_id: str, salt: str = "mixlab-seeds") -> int:
    """A stable pseudo-random rank of a document id (used to cap seeds and sample fits deterministically)."""
    return int.from_bytes(hashlib.blake2b(f"{salt}\x00{doc_id}".encode(), digest_size=8).digest(), "big")


# -- combining rules and classifier ---------------------------------------------------------------
def align_probs(probs: np.ndarray, classes: Sequence[str], domains: Sequence[str]) -> np.ndarray:
    """Reorder classifier columns ``classes`` to ``domains`` (missing domains get 0), rows renormalised."""
    out = np.zeros((len(probs), len(domains)), dtype=np.float64)
    index = {c: j for j, c in enumerate(classes)}
    for i, d in enumerate(domains):
        if d in index:
            out[:, i] = probs[:, index[d]]
    s = out.sum(axis=1, keepdims=True)
    return out / np.where(s > 0, s, 1.0)


def combine_probs(
    rule_probs: np.ndarray,
    rule_conf: np.ndarray,
    rule_specific: np.ndarray,
    clf_probs: np.ndarray,
    strategy: str = "override",
    override_confidence: float = 0.9,
    rule_weight: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Combine rule and classifier probabilities; returns (probs, mask of rows decided by a rule).

    ``rule_specific`` marks rows matched by a real rule (not the catch-all). ``override``: such a rule with
    confidence >= ``override_confidence`` wins, other rows take the classifier's probabilities. ``blend``:
    ``rule_weight * rules + (1 - rule_weight) * classifier``. ``product``: normalised elementwise product.
    """
    if strategy == "override":
        wins = rule_specific & (rule_conf >= override_confidence)
        out = np.where(wins[:, None], rule_probs, clf_probs)
        return out, wins
    if strategy == "blend":
        out = rule_weight * rule_probs + (1.0 - rule_weight) * clf_probs
    elif strategy == "product":
        out = rule_probs * np.clip(clf_probs, 1e-6, None)
    else:
        raise ValueError(f"unknown combine strategy {strategy!r}")
    return out / out.sum(axis=1, keepdims=True), np.zeros(len(out), dtype=bool)


# -- seeds ----------------------------------------------------------------------------------------
def read_seed_file(path: str | Path, domains: Sequence[str]) -> tuple[list[str], list[str]]:
    """Read labelled seeds (JSONL with ``text`` and ``domain``); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: seed file not found")
    texts: list[str] = []
    labels: list[str] = []
    for n, obj in iter_jsonl(path):
        if not isinstance(obj.get("text"), str) or not obj["text"].strip():
            raise ValueError(f"{path}:{n}: a seed needs a non-empty string 'text'")
        if obj.get("domain") not in domains:
            raise ValueError(f"{path}:{n}: domain {obj.get('domain')!r} is not one of {list(domains)}")
        texts.append(obj["text"])
        labels.append(obj["domain"])
    if not texts:
        raise ValueError(f"{path}: no seed documents")
    return texts, labels


def rule_seeds(
    pool: Pool, rules: RuleSet, min_confidence: float, per_domain: int, max_chars: int = 20_000
) -> tuple[list[str], list[str]]:
    """Seeds selected by rules: documents matched by a rule (not the catch-all) with confidence >=
    ``min_confidence``, at most ``per_domain`` per domain chosen by a hash of the id (deterministic)."""
    heaps: dict[str, list[tuple[int, str, str]]] = {d: [] for d in rules.domains}
    for shard in tqdm(pool.shards, desc="rule seeds", unit="shard", disable=len(pool.shards) < 2):
        table = pool.read_shard(shard, ["id", "text"])
        ids, texts = table.column("id").to_pylist(), table.column("text").to_pylist()
        labels, _, names = rules.apply(texts)
        conf = rules.confidences(names)
        for doc_id, text, label, name, c in zip(ids, texts, labels, names, conf, strict=True):
            if name == rules.catch_all.name or c < min_confidence:
                continue
            item = (-id_rank(doc_id), doc_id, text[:max_chars])  # max-heap on rank keeps the smallest ranks
            heap = heaps[label]
            if len(heap) < per_domain:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
    texts_out: list[str] = []
    labels_out: list[str] = []
    for domain in rules.domains:
        for _, _, text in sorted(heaps[domain], reverse=True):
            texts_out.append(text)
            labels_out.append(domain)
    return texts_out, labels_out


def sample_pool(pool: Pool, n: int, salt: str = "mixlab-fit") -> tuple[list[str], list[str]]:
    """Up to ``n`` documents (ids, texts) of the pool, chosen by a hash of the id (deterministic)."""
    docs = pool.read_docs(["id"])
    ranks = np.array([id_rank(i, salt) for i in docs["id"]], dtype=np.uint64)
    keep = set(docs["id"].to_numpy()[np.argsort(ranks, kind="stable")[:n]].tolist())
    ids: list[str] = []
    texts: list[str] = []
    for shard in pool.shards:
        t = pool.read_shard(shard, ["id", "text"])
        for doc_id, text in zip(t.column("id").to_pylist(), t.column("text").to_pylist(), strict=True):
            if doc_id in keep:
                ids.append(doc_id)
                texts.append(text)
    return ids, texts


# -- shard stage ----------------------------------------------------------------------------------
def _rules_for(config: PartitionConfig) -> RuleSet:
    rules = load_rules(config.rules_file)
    if config.method != "clusters" and list(rules.domains) != list(config.domains):
        raise ValueError(
            f"{rules.source}: rule domains {rules.domains} differ from the configured domains {config.domains}"
        )
    return rules


def _table(domains: Sequence[str], probs: np.ndarray, methods: Sequence[str]) -> pa.Table:
    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / probs.sum(axis=1, keepdims=True) if len(probs) else probs
    labels = [domains[j] for j in np.argmax(probs, axis=1)] if len(probs) else []
    cols: dict[str, Any] = {"domain": pa.array(labels, pa.string())}
    for j, d in enumerate(domains):
        cols[f"p_{d}"] = pa.array(probs[:, j].astype(np.float32), pa.float32())
    cols["domain_method"] = pa.array(list(methods), pa.string())
    return pa.table(cols)


def partition_shard(pool_root: str, shard: str, config: PartitionConfig) -> pa.Table:
    """The per-shard apply: one row per document with ``domain``, ``p_<domain>``, ``domain_method``;
    documents of a source in ``config.pin_sources`` get the pinned domain."""
    table = _label_shard(pool_root, shard, config)
    if not config.pin_sources:
        return table
    sources = Pool.open(pool_root).read_shard(shard, ["source"]).column("source").to_pylist()
    return pin_sources(table, sources, config.pin_sources)


def _label_shard(pool_root: str, shard: str, config: PartitionConfig) -> pa.Table:
    """The method's labels of one shard (before pinned sources)."""
    pool = Pool.open(pool_root)
    texts = pool.read_shard(shard, ["text"]).column("text").to_pylist()
    state = pool.attr_dir(ATTR)
    if config.method in METHODS:
        sources = pool.read_shard(shard, ["source"]).column("source").to_pylist()
        domains, probs, methods = METHODS[config.method].apply(pool, texts, config, sources)
        return _table(domains, probs, methods)
    if config.method == "clusters":
        model = ClusterModel.load(state / CLUSTER_STATE)
        names = [f"cluster_{c:02d}" for c in range(model.n_clusters_)]
        merged, _, _ = model.predict(texts)
        probs = np.zeros((len(texts), len(names)))
        probs[np.arange(len(texts)), merged] = 1.0
        return _table(names, probs, ["cluster"] * len(texts))
    domains = list(config.domains)
    if config.method == "embedding":
        emb = EmbeddingClassifier.load(state / EMBEDDING_STATE)
        probs = align_probs(emb.predict_proba(texts), list(emb.classes_), domains)
        return _table(domains, probs, ["embedding"] * len(texts))
    rules = _rules_for(config)
    _, rule_probs, rule_names = rules.apply(texts)
    if config.method == "rules":
        return _table(domains, rule_probs, [f"rule:{n}" for n in rule_names])
    clf = HashedNgramClassifier.load(state / HASHED_STATE)
    clf_probs = align_probs(clf.predict_proba(texts), list(clf.classes_), domains)
    if config.method == "classifier":
        return _table(domains, clf_probs, ["classifier"] * len(texts))
    specific = np.array([n != rules.catch_all.name for n in rule_names])
    probs, ruled = combine_probs(
        rule_probs.astype(np.float64),
        rules.confidences(rule_names),
        specific,
        clf_probs,
        config.combine,
        config.override_confidence,
        config.rule_weight,
    )
    if config.combine == "override":
        methods = [f"rule:{n}" if r else "classifier" for n, r in zip(rule_names, ruled, strict=True)]
    else:
        methods = ["rules+classifier"] * len(texts)
    return _table(domains, probs, methods)


# -- whole-pool driver ----------------------------------------------------------------------------
def _fingerprint(config: PartitionConfig) -> dict[str, Any]:
    info: dict[str, Any] = {"stage": "domains", "config": config.model_dump(mode="json")}
    if config.method != "clusters":
        rules = load_rules(config.rules_file)
        info["rules_file"] = rules.source
        info["rules_sha256"] = hashlib.sha256(Path(rules.source).read_bytes()).hexdigest()
    if isinstance(config.seeds, Path):
        info["seeds_sha256"] = hashlib.sha256(config.seeds.read_bytes()).hexdigest()
    return info


def _fit(pool: Pool, config: PartitionConfig) -> dict[str, Any]:
    """Fit the whole-corpus model the method needs and save it under ``attrs/domains/``."""
    state = pool.attr_dir(ATTR)
    state.mkdir(parents=True, exist_ok=True)
    if config.method in METHODS:
        return METHODS[config.method].fit(pool, config)
    if config.method == "clusters":
        ids, texts = sample_pool(pool, config.clusters.fit_sample)
        model = ClusterModel(config.clusters).fit(texts, ids)
        model.save(state / CLUSTER_STATE)
        return {"clusters": model.n_clusters_, "fit_docs": len(texts)}
    if config.seeds == "rules":
        texts, labels = rule_seeds(
            pool, _rules_for(config), config.seed_min_confidence, config.seeds_per_domain
        )
    else:
        texts, labels = read_seed_file(config.seeds, config.domains)
    if not texts:
        raise ValueError(f"{pool.root}: no seed documents for the classifier (no rule matched confidently)")
    if config.method == "embedding":
        e = config.embedding
        EmbeddingClassifier(e.model, e.max_seq_length, e.batch_size, e.C).fit(texts, labels).save(
            state / EMBEDDING_STATE
        )
    else:
        c = config.classifier
        HashedNgramClassifier(c.n_features, c.ngram_max, c.max_chars, c.C, c.max_iter).fit(
            texts, labels
        ).save(state / HASHED_STATE)
    return {"seeds": dict(sorted(Counter(labels).items()))}


def partition_pool(
    pool: Pool,
    config: PartitionConfig,
    workers: int = 1,
    force: bool = False,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Write the ``domains`` attribute of ``pool`` and return a summary.

    The summary has ``method``, ``domains`` (``{domain: {"docs": n, "tokens": t}}``), ``n_docs``,
    ``n_tokens``, ``computed_shards`` and, when a model was fitted, ``fit`` (seed counts or clusters).
    A rerun with the same config skips finished shards; a different config needs ``force``. Shards run
    on ``executor`` (default: a local pool of ``workers`` processes).
    """
    check_pinned_sources(pool, config.pin_sources)
    info = _fingerprint(config)
    info_path = pool.attr_dir(ATTR) / "attr.json"
    if info_path.exists() and not force:
        old = json.loads(info_path.read_text(encoding="utf-8"))
        if {k: old.get(k) for k in info} != info:
            raise PoolError(
                f"{pool.root}: attribute {ATTR!r} was made with another config or rules; pass --force to redo it"
            )
    if force and pool.attr_dir(ATTR).exists():
        shutil.rmtree(pool.attr_dir(ATTR))
    fit_info: dict[str, Any] = {}
    needs_model = config.method != "rules"
    if needs_model and not pool.has_attr(ATTR):
        state_file = (
            METHODS[config.method].state_file
            if config.method in METHODS
            else {
                "clusters": CLUSTER_STATE + "/clusters.json",
                "embedding": EMBEDDING_STATE + ".json",
            }.get(config.method, HASHED_STATE + ".json")
        )
        if not (pool.attr_dir(ATTR) / state_file).exists():
            fit_info = _fit(pool, config)
    pool.write_attr_info(ATTR, {**info, "fit": fit_info} if fit_info else info)
    done = resolve_executor(executor, workers).map_shards(
        partition_shard,
        pool,
        ATTR,
        config,
        resources=SHARD_RESOURCES,
        desc=f"partition ({config.method})",
        fp=fingerprint(info),  # markers carry config + rules + seeds: a mix of two never reads complete
    )
    return summarize_domains(pool) | {"method": config.method, "computed_shards": done, "fit": fit_info}


def summarize_domains(pool: Pool) -> dict[str, Any]:
    """Documents and tokens per domain label of the pool's ``domains`` attribute."""
    attr = pool.read_attr(ATTR, columns=["domain"])
    docs = pool.read_docs(["id", "n_tokens"])
    if not attr["id"].equals(docs["id"]):
        raise PoolError(f"{pool.root}: attribute {ATTR!r} is not aligned with the pool's documents")
    grouped = (
        docs.assign(domain=attr["domain"].to_numpy())
        .groupby("domain", sort=True)["n_tokens"]
        .agg(["count", "sum"])
    )
    per = {str(d): {"docs": int(r["count"]), "tokens": int(r["sum"])} for d, r in grouped.iterrows()}
    return {"domains": per, "n_docs": len(docs), "n_tokens": int(docs["n_tokens"].sum())}


# -- clusters as their own attribute (``mixlab cluster``) -----------------------------------------
CLUSTERS_ATTR = "clusters"


def cluster_shard(pool_root: str, shard: str, config: Any) -> pa.Table:
    """Per-shard apply of the fitted clusters: ``cluster`` (merged id), ``cluster_raw``, ``cluster_distance``."""
    pool = Pool.open(pool_root)
    model = ClusterModel.load(pool.attr_dir(CLUSTERS_ATTR) / CLUSTER_STATE)
    texts = pool.read_shard(shard, ["text"]).column("text").to_pylist()
    merged, raw, dist = model.predict(texts)
    return pa.table(
        {
            "cluster": pa.array(merged, pa.int32()),
            "cluster_raw": pa.array(raw, pa.int32()),
            "cluster_distance": pa.array(dist, pa.float32()),
        }
    )


def cluster_pool(
    pool: Pool, config: Any, workers: int = 1, force: bool = False, executor: Executor | None = None
) -> list[dict[str, Any]]:
    """Fit clusters on a hash-sample of ``pool``, write the ``clusters`` attribute, return cluster summaries.

    ``config`` is a :class:`~mixlab.domains.config.ClusterConfig`. Each summary has ``cluster``,
    ``size`` (fit-sample documents), ``docs`` and ``tokens`` (whole pool), ``merged_from`` (k-means
    clusters), ``top_terms`` and ``examples`` (id, distance, snippet).
    """
    folder = pool.attr_dir(CLUSTERS_ATTR)
    info = {"stage": "clusters", "config": config.model_dump(mode="json")}
    info_path = folder / "attr.json"
    if info_path.exists() and not force and json.loads(info_path.read_text(encoding="utf-8")) != info:
        raise PoolError(
            f"{pool.root}: attribute {CLUSTERS_ATTR!r} was made with another config; pass --force"
        )
    if force and folder.exists():
        shutil.rmtree(folder)
    if not (folder / CLUSTER_STATE / "clusters.json").exists():
        ids, texts = sample_pool(pool, config.fit_sample)
        ClusterModel(config).fit(texts, ids).save(folder / CLUSTER_STATE)
    pool.write_attr_info(CLUSTERS_ATTR, info)
    resolve_executor(executor, workers).map_shards(
        cluster_shard, pool, CLUSTERS_ATTR, config, resources=SHARD_RESOURCES, desc="clusters"
    )
    model = ClusterModel.load(folder / CLUSTER_STATE)
    attr = pool.read_attr(CLUSTERS_ATTR, columns=["cluster"])
    tokens = pool.read_docs(["id", "n_tokens"])["n_tokens"].to_numpy()
    summaries = []
    for s in model.summaries_:
        mask = attr["cluster"].to_numpy() == s["cluster"]
        summaries.append({**s, "docs": int(mask.sum()), "tokens": int(tokens[mask].sum())})
    return summaries
