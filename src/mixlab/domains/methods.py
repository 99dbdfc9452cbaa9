"""Registry of pluggable domain methods: one class per method, looked up by ``PartitionConfig.method``.

A method fits whatever whole-corpus state it needs into ``attrs/domains/`` (:meth:`fit`) and labels the
documents of one shard from their texts and sources (:meth:`apply`), returning domain names,
probabilities ``[n, len(domains)]`` and a per-document ``domain_method`` string.

Whatever the method, ``PartitionConfig.pin_sources`` then gives every document of a pinned source its
pinned domain (:func:`pin_sources`). :func:`mixlab.domains.partition.partition_pool` runs a registered
method exactly like the built-in ones (fit once, then the per-shard apply under the executor).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np
import pyarrow as pa

from mixlab.domains.anchored import OTHER, TaskAnchoredModel, anchored_to_domains, task_item_texts
from mixlab.domains.clusters import summarise_groups
from mixlab.domains.config import PartitionConfig
from mixlab.domains.rules import load_rules
from mixlab.paths import safe_name
from mixlab.pool.pool import Pool, PoolError, atomic_write_text

ANCHORED_STATE = "task_anchored"
SOURCES_STATE = "sources"


class DomainMethod(Protocol):
    """What ``partition_pool`` needs of a method."""

    state_file: str
    """Path, relative to ``attrs/domains/``, that exists once the method is fitted."""

    def fit(self, pool: Pool, config: PartitionConfig) -> dict[str, Any]: ...

    def apply(
        self, pool: Pool, texts: list[str], config: PartitionConfig, sources: list[str]
    ) -> tuple[list[str], np.ndarray, list[str]]: ...


def anchored_domains(config: PartitionConfig, with_rules: bool) -> list[str]:
    """Domains of a task-anchored partition. Alone: the task names plus ``other``. With rules: the rule
    domains (tasks must be named after them); the "other" mass goes evenly to the domains no task names,
    and the rules' probabilities separate those."""
    if with_rules:
        return list(config.domains)
    return [*config.tasks, OTHER]


class TaskAnchoredMethod:
    """Domains defined by target-task items (``config.tasks``), optionally multiplied with the rules."""

    state_file: ClassVar[str] = ANCHORED_STATE + "/state.json"

    def __init__(self, with_rules: bool = False) -> None:
        self.with_rules = with_rules

    def fit(self, pool: Pool, config: PartitionConfig) -> dict[str, Any]:
        from mixlab.domains.partition import ATTR, sample_pool

        if not config.tasks:
            raise ValueError(f"method {config.method!r} needs tasks (--tasks NAME=FILE,...)")
        a = config.anchored
        items = {name: task_item_texts(name, spec) for name, spec in config.tasks.items()}
        _, background = sample_pool(pool, a.background, salt="mixlab-anchored")
        model = TaskAnchoredModel(
            a.features, a.k, a.n_features, a.ngram_max, a.max_chars, a.threshold, a.temperature, a.model
        ).fit(items, background)
        model.save(pool.attr_dir(ATTR) / ANCHORED_STATE)
        return {"task_items": {n: len(v) for n, v in items.items()}, "background_docs": len(background)}

    def apply(
        self, pool: Pool, texts: list[str], config: PartitionConfig, sources: list[str]
    ) -> tuple[list[str], np.ndarray, list[str]]:
        from mixlab.domains.partition import ATTR, combine_probs

        model = TaskAnchoredModel.load(pool.attr_dir(ATTR) / ANCHORED_STATE)
        domains = anchored_domains(config, self.with_rules)
        probs = anchored_to_domains(model.predict_proba(texts), model.classes_, domains)
        if not self.with_rules:
            return domains, probs, ["anchored"] * len(texts)
        rules = load_rules(config.rules_file)
        if list(rules.domains) != domains:
            raise ValueError(
                f"{rules.source}: rules+anchored needs tasks named after the rule domains {rules.domains}, "
                f"got tasks {list(config.tasks)}"
            )
        _, rule_probs, names = rules.apply(texts)
        specific = np.array([n != rules.catch_all.name for n in names])
        out, ruled = combine_probs(
            rule_probs.astype(np.float64),
            rules.confidences(names),
            specific,
            probs,
            config.combine,
            config.override_confidence,
            config.rule_weight,
        )
        if config.combine == "override":
            labels = [f"rule:{n}" if r else "anchored" for n, r in zip(names, ruled, strict=True)]
        else:
            labels = ["rules+anchored"] * len(texts)
        return domains, out, labels


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that puts ``cluster_2`` before ``cluster_10``."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name) if p)


class SourceMethod:
    """Each source is a domain of its own: the ClimbLab layout's clusters (ingest keeps a document's
    ``cluster_k`` folder as its source), or the datasets a user put together. The fit lists the pool's
    sources (natural order: ``cluster_2`` before ``cluster_10``), so every shard writes the same columns,
    and summarises each one like a cluster (top terms, nearest examples) from a hash-sample of the pool."""

    state_file: ClassVar[str] = SOURCES_STATE + "/state.json"

    def fit(self, pool: Pool, config: PartitionConfig) -> dict[str, Any]:
        from mixlab.domains.partition import ATTR, sample_pool

        docs = pool.read_docs(["id", "source"])
        sources = sorted(set(docs["source"].astype(str)), key=natural_key)
        for s in sources:
            safe_name(s, "source (a domain of method 'sources')")
        ids, texts = sample_pool(pool, config.clusters.fit_sample, salt="mixlab-sources")
        by_id = dict(zip(docs["id"].tolist(), docs["source"].astype(str).tolist(), strict=True))
        labels = [str(by_id[i]) for i in ids]
        order = sorted(range(len(ids)), key=lambda j: natural_key(labels[j]))
        summaries = summarise_groups(
            [texts[j] for j in order], [ids[j] for j in order], [labels[j] for j in order], config.clusters
        )
        folder = pool.attr_dir(ATTR) / SOURCES_STATE
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "summaries.json", json.dumps(summaries, indent=2, ensure_ascii=False))
        atomic_write_text(folder / "state.json", json.dumps({"domains": sources}))
        return {"sources": len(sources), "summarised_docs": len(ids)}

    def apply(
        self, pool: Pool, texts: list[str], config: PartitionConfig, sources: list[str]
    ) -> tuple[list[str], np.ndarray, list[str]]:
        from mixlab.domains.partition import ATTR

        path = pool.attr_dir(ATTR) / self.state_file
        domains = list(json.loads(path.read_text(encoding="utf-8"))["domains"])
        index = {d: j for j, d in enumerate(domains)}
        unknown = sorted(set(sources) - set(index))
        if unknown:
            raise PoolError(
                f"{path}: source(s) {unknown[:5]} are not in the fitted source list; refit (--force)"
            )
        probs = np.zeros((len(sources), len(domains)))
        probs[np.arange(len(sources)), [index[s] for s in sources]] = 1.0
        return domains, probs, ["source"] * len(sources)


def read_source_summaries(pool: Pool) -> list[dict[str, Any]]:
    """The per-source summaries written by method ``sources`` (empty when it has not run)."""
    from mixlab.domains.partition import ATTR

    path = pool.attr_dir(ATTR) / SOURCES_STATE / "summaries.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


# -- pinned sources -------------------------------------------------------------------------------
def check_pinned_sources(pool: Pool, pins: Mapping[str, str]) -> None:
    """Raise naming every pinned source the pool does not hold (a typo would otherwise pin nothing)."""
    if not pins:
        return
    present = set(pool.read_docs(["source"])["source"].astype(str))
    missing = [s for s in pins if s not in present]
    if missing:
        raise ValueError(
            f"pin_sources: source(s) {', '.join(map(repr, missing))} not in pool {pool.root} "
            f"(its sources: {', '.join(sorted(present, key=natural_key)[:20])})"
        )


def pin_sources(table: pa.Table, sources: Sequence[str], pins: Mapping[str, str]) -> pa.Table:
    """Give the rows of pinned sources their pinned domain in a ``domains`` table (``domain``,
    ``p_<domain>``, ``domain_method``): probability 1 for it, 0 elsewhere, method ``pin:<source>``.
    A pinned domain the method does not know becomes a new ``p_`` column (0 for the other rows), added
    in the order of ``pins`` whether or not this shard holds the source, so every shard has the same
    columns."""
    if not pins:
        return table
    p_cols = [c for c in table.column_names if c.startswith("p_")]
    domains = [c[2:] for c in p_cols]
    domains += [d for d in dict.fromkeys(pins.values()) if d not in domains]
    n = table.num_rows
    probs = np.zeros((n, len(domains)), dtype=np.float32)
    for j, c in enumerate(p_cols):
        probs[:, j] = table.column(c).to_numpy(zero_copy_only=False)
    labels = np.asarray(table.column("domain").to_pylist(), dtype=object)
    methods = np.asarray(table.column("domain_method").to_pylist(), dtype=object)
    index = {d: j for j, d in enumerate(domains)}
    for source, domain in pins.items():
        rows = np.flatnonzero(np.asarray(sources, dtype=object) == source)
        if not len(rows):
            continue
        probs[rows] = 0.0
        probs[rows, index[domain]] = 1.0
        labels[rows] = domain
        methods[rows] = f"pin:{source}"
    cols: dict[str, Any] = {"domain": pa.array(labels.tolist(), pa.string())}
    for j, d in enumerate(domains):
        cols[f"p_{d}"] = pa.array(probs[:, j], pa.float32())
    cols["domain_method"] = pa.array(methods.tolist(), pa.string())
    return pa.table(cols)


#: Methods beyond the built-in rules / classifier / embedding / clusters, by ``PartitionConfig.method``.
METHODS: dict[str, DomainMethod] = {
    "anchored": TaskAnchoredMethod(with_rules=False),
    "rules+anchored": TaskAnchoredMethod(with_rules=True),
    "sources": SourceMethod(),
}
