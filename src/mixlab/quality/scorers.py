"""The registry of quality scorers and the one function that runs any of them over a pool.

Adding a scorer: write its settings model (a :class:`~mixlab.quality.config.ScorerSettings` field of
``QualityConfig`` named like the scorer), its shard function and ``prepare`` step in its own module with a
``SCORER = Scorer(...)`` entry, and list that entry here. The stage, the CLI, the rules and the score then
know it by name: rules and score weights name its signal, ``quality.NAME.weight`` puts it in the score.
"""

from __future__ import annotations

import logging
from typing import Any

from mixlab.executors import Executor
from mixlab.pool.pool import Pool, fingerprint
from mixlab.quality import classifier_score, density, perplexity
from mixlab.quality.config import QualityConfig, ScorerSettings
from mixlab.quality.scorer import Scorer

log = logging.getLogger(__name__)

#: name -> scorer, in the order the stage runs them.
SCORERS: dict[str, Scorer] = {s.name: s for s in (perplexity.SCORER, density.SCORER, classifier_score.SCORER)}


def scorer_settings(config: QualityConfig, name: str) -> ScorerSettings:
    """The settings of scorer ``name`` in a quality config."""
    settings = getattr(config, name, None)
    if not isinstance(settings, SCORERS[name].settings):
        raise TypeError(f"QualityConfig has no {SCORERS[name].settings.__name__} field named {name!r}")
    return settings


def active_scorers(config: QualityConfig) -> list[Scorer]:
    """The scorers a quality config turns on, in registry order."""
    return [s for s in SCORERS.values() if scorer_settings(config, s.name).active()]


def run_scorer(
    pool: Pool, name: str, settings: ScorerSettings, executor: Executor, force: bool = False
) -> dict[str, list[str]]:
    """Compute scorer ``name`` on every shard not finished with these settings; return the shards
    computed per attribute (its own and any helper attribute, e.g. density's embeddings).

    Holds the attribute's lock; the prepare step runs in this process, the shards on ``executor`` with
    the resources the settings declare. The attribute is keyed by the fingerprint of what its values
    depend on, so weights, directions, batch sizes, devices and threads never recompute it.
    """
    scorer = SCORERS[name]
    if not isinstance(settings, scorer.settings):
        raise TypeError(f"scorer {name!r} takes {scorer.settings.__name__}, got {type(settings).__name__}")
    pool.require_documents(f"score {name}")
    with pool.lock(scorer.attr):
        prepared = scorer.prepare(pool, settings, executor, force)
        key: dict[str, Any] = {"scorer": name, "columns": list(scorer.columns), **prepared.key}
        fp = fingerprint(key)
        pool.set_attr_target(scorer.attr, fp, key)
        try:
            done = executor.map_shards(
                scorer.shard_fn,
                pool,
                scorer.attr,
                prepared.payload,
                resources=scorer.resources(settings),
                force=force,
                desc=f"quality {name}",
                fp=fp,
            )
        finally:
            if scorer.release is not None:
                scorer.release()
        pool.write_attr_info(
            scorer.attr,
            {
                "stage": f"quality.{name}",
                "key": key,
                "columns": list(scorer.columns),
                "direction": scorer.direction,
            },
        )
    if done:
        log.info("quality %s: computed %d of %d shard(s)", name, len(done), len(pool.shards))
    return {**prepared.computed, scorer.attr: done}


def run_scorers(
    pool: Pool, config: QualityConfig, executor: Executor, force: bool = False
) -> dict[str, list[str]]:
    """Every scorer the config turns on (:func:`run_scorer`); shards computed per attribute."""
    computed: dict[str, list[str]] = {}
    for scorer in active_scorers(config):
        computed.update(run_scorer(pool, scorer.name, scorer_settings(config, scorer.name), executor, force))
    return computed
