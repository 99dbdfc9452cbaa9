"""The quality stage: per-shard signals (expensive, cached) then a cheap global scoring pass.

1. ``quality_signals`` attribute: :func:`signals_shard` computes the ``q_*`` heuristic signals of one
   shard in vectorized batches; the executor handed in maps it over shards and skips finished ones.
2. The scorers the config turns on (:data:`mixlab.quality.scorers.SCORERS`: perplexity, density, the
   classifier), each one attribute, mapped over the shards by the same executor.
3. ``quality`` attribute: :func:`score_quality` reads all signals (plus every scorer attribute present
   and ``domains``), applies the rules (reason = first failed rule), combines the weighted signals into
   the score (:mod:`mixlab.quality.combine`), per-domain quantile buckets, and writes one table per
   shard. Changing a threshold or a weight reruns only this pass (DESIGN principle 1).

Completion markers carry the fingerprint of what a table depends on (the config and the attributes it
reads), so a rerun with another config replaces ``quality`` shard by shard, and a run killed half-way
leaves it incomplete rather than mixed. The stage holds the ``quality`` lock: a second run waits.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mixlab.executors import Executor, Resources, resolve_executor
from mixlab.pool.pool import Pool, PoolError, fingerprint
from mixlab.quality.buckets import per_domain_buckets, per_domain_edges
from mixlab.quality.classifier_score import CLASSIFIER_ATTR
from mixlab.quality.combine import Term, apply_rules, combined_score, weighted_rank_score
from mixlab.quality.config import QualityConfig
from mixlab.quality.heuristics import compute_signals
from mixlab.quality.scorers import SCORERS, run_scorers, scorer_settings

log = logging.getLogger(__name__)

__all__ = [
    "CLASSIFIER_ATTR",
    "QUALITY_ATTR",
    "SIGNALS_ATTR",
    "apply_rules",
    "score_quality",
    "score_terms",
    "signals_shard",
    "weighted_rank_score",
]

SIGNALS_ATTR = "quality_signals"
QUALITY_ATTR = "quality"
#: What the per-shard signals depend on (only the code: no setting changes a signal).
SIGNALS_KEY = {"stage": "quality_signals", "version": 1}
#: What one shard of signals (Arrow/numpy kernels) needs.
SHARD_RESOURCES = Resources(cpus=1)


def signals_shard(pool_root: str, shard: str, config: dict[str, Any]) -> pa.Table:
    """Shard stage: the ``q_*`` signals of every document of ``shard`` (in shard order)."""
    pool = Pool.open(pool_root)
    table = pool.read_shard(shard, ["text", "n_tokens"])
    texts, n_tok = table.column("text"), table.column("n_tokens").to_numpy()
    step = int(config.get("batch_docs", 4096))
    parts = [
        compute_signals(texts.slice(s, step).combine_chunks(), n_tok[s : s + step])
        for s in range(0, table.num_rows, step)
    ]
    df = pd.concat(parts, ignore_index=True) if parts else compute_signals([])
    return pa.Table.from_pandas(df, preserve_index=False)


def _input_fingerprint(pool: Pool, name: str) -> str | None:
    """What an attribute read by the global pass is (None when absent): its target or its attr.json."""
    if not pool.has_attr(name):
        return None
    target = pool.attr_target(name)
    if target is not None:
        return target
    info = pool.attr_dir(name) / "attr.json"
    return hashlib.sha256(info.read_bytes()).hexdigest()[:16] if info.exists() else "present"


def score_terms(config: QualityConfig) -> list[Term]:
    """The signals in the score: ``score_weights`` (the sign is the direction), then every scorer with a
    ``weight`` (its own direction, or the config's ``direction``)."""
    terms = [Term(col, abs(w), w > 0) for col, w in config.score_weights.items()]
    for scorer in SCORERS.values():
        settings = scorer_settings(config, scorer.name)
        if settings.weight == 0:
            continue
        if scorer.signal in config.score_weights:
            raise ValueError(
                f"quality: signal {scorer.signal!r} is weighted twice (score_weights and {scorer.name}.weight)"
            )
        direction = settings.direction or scorer.direction
        terms.append(Term(scorer.signal, settings.weight, direction == "higher", scorer.log_scale))
    return terms


def _domains(pool: Pool, config: QualityConfig) -> np.ndarray:
    if pool.has_attr(config.domain_attr):
        return (
            pool.read_attr(config.domain_attr, columns=["domain"])["domain"]
            .astype(str)
            .to_numpy(dtype=object)
        )
    return np.full(pool.n_docs(), "all", dtype=object)


def score_quality(
    pool: Pool | str | Path,
    config: QualityConfig | None = None,
    workers: int = 1,
    force: bool = False,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Compute (or reuse) signals, then score, filter and bucket every document; write ``quality``.

    ``force`` recomputes the signals of every shard; otherwise finished shards are reused and only the
    cheap global pass runs. Returns a summary: documents, kept/filtered counts by reason, per-domain
    counts and bucket edges, and the shards whose signals were computed in this call. Per-shard passes
    run on ``executor`` (default: a local pool of ``workers`` processes).
    """
    pool = pool if isinstance(pool, Pool) else Pool.open(pool)
    config = config or QualityConfig()
    with pool.lock(QUALITY_ATTR):
        return _score_locked(pool, config, resolve_executor(executor, workers), force)


def _score_locked(pool: Pool, config: QualityConfig, executor: Executor, force: bool) -> dict[str, Any]:
    computed = executor.map_shards(
        signals_shard,
        pool,
        SIGNALS_ATTR,
        {"batch_docs": config.batch_docs},
        resources=SHARD_RESOURCES,
        force=force,
        desc="quality signals",
        fp=fingerprint(SIGNALS_KEY),
    )
    pool.write_attr_info(SIGNALS_ATTR, {"stage": "quality.signals", "batch_docs": config.batch_docs})
    scored = run_scorers(pool, config, executor, force)
    frame = pool.read_attr(SIGNALS_ATTR)
    shard_sizes = [len(pool.read_shard(s, ["id"])) for s in pool.shards]
    inputs: dict[str, str | None] = {SIGNALS_ATTR: pool.attr_target(SIGNALS_ATTR)}
    hints: dict[str, str] = {}
    for scorer in SCORERS.values():
        hints[scorer.signal] = scorer.hint
        if pool.has_attr(scorer.attr):  # computed now, or earlier (e.g. by `mixlab perplexity`)
            inputs[scorer.attr] = _input_fingerprint(pool, scorer.attr)
            values = pool.read_attr(scorer.attr, columns=list(scorer.columns))
            for col in scorer.columns:
                frame[col] = values[col].to_numpy(dtype=np.float64)
    rules = [*config.filters, *config.extra_filters]
    terms = score_terms(config)
    for signal in [r.signal for r in rules if r.enabled] + [t.column for t in terms if t.weight]:
        if signal not in frame.columns and signal in hints:
            raise PoolError(
                f"{pool.root}: the quality config uses signal {signal!r} but the pool has no complete "
                f"{signal!r} attribute; {hints[signal]}"
            )
    with pool.lock(config.domain_attr):
        inputs[config.domain_attr] = _input_fingerprint(pool, config.domain_attr)
        domains = _domains(pool, config)
    key = {"config": config.model_dump(mode="json"), "inputs": inputs}
    fp = fingerprint(key)

    reason = apply_rules(frame, rules, domains).to_numpy(dtype=object)
    score = combined_score(
        frame, terms, config.combine.normalize, domains if config.combine.per_domain else None
    )
    bucket = per_domain_buckets(score, domains, config.n_buckets)
    keep = reason == ""
    out = frame[[c for c in frame.columns if c.startswith("q_")]].copy()
    out["quality_score"] = score
    out["quality_bucket"] = bucket.astype(np.int64)
    out["quality_keep"] = keep
    out["quality_reason"] = reason.astype(str)
    # from here on the attribute is being rewritten with this config: a kill leaves it incomplete
    previous = pool.set_attr_target(QUALITY_ATTR, fp, key)
    if previous is not None and previous != fp:
        log.warning(
            "quality: config or inputs changed since the last run; replacing attribute %r shard by shard",
            QUALITY_ATTR,
        )
    start = 0
    for shard, n in zip(pool.shards, shard_sizes, strict=True):
        part = out.iloc[start : start + n].reset_index(drop=True)
        start += n
        if not force and pool.attr_done(QUALITY_ATTR, shard, fp):
            continue  # written by an earlier run with this very fingerprint: the same table
        pool.write_attr(QUALITY_ATTR, shard, pa.Table.from_pandas(part, preserve_index=False), fp)

    by_reason = Counter(r for r in reason.tolist() if r)
    per_domain: dict[str, Any] = {}
    edges = per_domain_edges(score, domains, config.n_buckets)
    for d in sorted(set(domains.tolist())):
        m = domains == d
        per_domain[d] = {
            "docs": int(m.sum()),
            "kept": int((keep & m).sum()),
            "filtered": int((~keep & m).sum()),
            "by_reason": dict(Counter(r for r in reason[m].tolist() if r).most_common()),
            "bucket_edges": edges[d],
        }
    summary: dict[str, Any] = {
        "docs": len(out),
        "kept": int(keep.sum()),
        "filtered": int((~keep).sum()),
        "by_reason": dict(by_reason.most_common()),
        "per_domain": per_domain,
        "signals_computed": computed,
        "scorers_computed": scored,
        "n_buckets": config.n_buckets,
    }
    pool.write_attr_info(
        QUALITY_ATTR, {"stage": "quality", "config": config.model_dump(), "summary": summary}
    )
    return summary
