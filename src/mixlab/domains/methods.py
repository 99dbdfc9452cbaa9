"""Registry of pluggable domain methods: one class per method, looked up by ``PartitionConfig.method``.

A method fits whatever whole-corpus state it needs into ``attrs/domains/`` (:meth:`fit`) and labels the
texts of one shard (:meth:`apply`), returning domain names, probabilities ``[n, len(domains)]`` and a
per-document ``domain_method`` string. :func:`mixlab.domains.partition.partition_pool` runs a registered
method exactly like the built-in ones (fit once, then the per-shard apply under the executor).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import numpy as np

from mixlab.domains.anchored import OTHER, TaskAnchoredModel, anchored_to_domains, task_item_texts
from mixlab.domains.config import PartitionConfig
from mixlab.domains.rules import load_rules
from mixlab.pool.pool import Pool

ANCHORED_STATE = "task_anchored"


class DomainMethod(Protocol):
    """What ``partition_pool`` needs of a method."""

    state_file: str
    """Path, relative to ``attrs/domains/``, that exists once the method is fitted."""

    def fit(self, pool: Pool, config: PartitionConfig) -> dict[str, Any]: ...

    def apply(
        self, pool: Pool, texts: list[str], config: PartitionConfig
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
        self, pool: Pool, texts: list[str], config: PartitionConfig
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


#: Methods beyond the built-in rules / classifier / embedding / clusters, by ``PartitionConfig.method``.
METHODS: dict[str, DomainMethod] = {
    "anchored": TaskAnchoredMethod(with_rules=False),
    "rules+anchored": TaskAnchoredMethod(with_rules=True),
}
