"""The quality stage: per-shard signals (expensive, cached) then a cheap global scoring pass.

1. ``quality_signals`` attribute: :func:`signals_shard` computes the ``q_*`` heuristic signals of one
   shard in vectorized batches; the executor handed in maps it over shards and skips finished ones.
2. ``quality`` attribute: :func:`score_quality` reads all signals (plus ``perplexity``, ``density``,
   ``quality_classifier`` and ``domains`` when present), applies the threshold rules (reason = first
   failed rule), computes the score (weighted percentile ranks), per-domain quantile buckets, and writes
   one table per shard. Changing a threshold or a weight reruns only this pass (DESIGN principle 1).

Completion markers carry the fingerprint of what a table depends on (the config and the attributes it
reads), so a rerun with another config replaces ``quality`` shard by shard, and a run killed half-way
leaves it incomplete rather than mixed. The stage holds the ``quality`` lock: a second run waits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mixlab.executors import Executor, Resources, resolve_executor
from mixlab.pool.pool import Pool, PoolError, atomic_write_text, fingerprint
from mixlab.quality.buckets import per_domain_buckets, per_domain_edges
from mixlab.quality.classifier_score import QualityClassifier
from mixlab.quality.config import FilterRule, QualityConfig
from mixlab.quality.heuristics import compute_signals

log = logging.getLogger(__name__)

SIGNALS_ATTR = "quality_signals"
QUALITY_ATTR = "quality"
CLASSIFIER_ATTR = "quality_classifier"
EXTRA_ATTRS = {"perplexity": "perplexity", "density": "density", "classifier": CLASSIFIER_ATTR}
#: What the per-shard signals depend on (only the code: no setting changes a signal).
SIGNALS_KEY = {"stage": "quality_signals", "version": 1}
#: What one shard of signals (Arrow/numpy kernels) or classifier scores needs.
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


def classifier_shard(pool_root: str, shard: str, config: dict[str, Any]) -> pa.Table:
    """Shard stage: probability under the fitted quality classifier saved at ``config['model']``."""
    pool = Pool.open(pool_root)
    model = QualityClassifier.load(config["model"])
    texts = pool.read_shard(shard, ["text"]).column("text").to_pylist()
    return pa.table({"classifier": model.predict_proba(texts)[:, 1]})


def _read_positive_texts(paths: list[str], fields: list[str]) -> list[str]:
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
                    raise ValueError(f"{p}:{line_no}: none of the fields {fields} holds text")
                texts.append(text)
    return texts


def fit_classifier(pool: Pool, config: QualityConfig, force: bool = False) -> Path:
    """Fit the quality classifier (positives from files, negatives sampled from the pool); save it.

    The fitted model is reused while the classifier settings and positive files are unchanged.
    """
    cs = config.classifier
    path = pool.attr_dir(CLASSIFIER_ATTR) / "model.npz"
    key_path = path.with_name("model.key.json")
    key = {
        "classifier": cs.model_dump(mode="json"),
        "positive_sha256": [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in cs.positive],
    }
    fp = fingerprint(key)
    if (
        path.exists()
        and key_path.exists()
        and not force
        and json.loads(key_path.read_text(encoding="utf-8")).get("fingerprint") == fp
    ):
        return path
    pos = _read_positive_texts(cs.positive, cs.text_fields)
    ids = pool.read_docs(["id"])["id"]
    rng = np.random.default_rng(cs.seed)
    pick = set(rng.choice(len(ids), size=min(cs.n_negative, len(ids)), replace=False).tolist())
    neg: list[str] = []
    offset = 0
    for shard in pool.shards:
        texts = pool.read_shard(shard, ["text"]).column("text").to_pylist()
        neg.extend(t for i, t in enumerate(texts) if offset + i in pick)
        offset += len(texts)
    model = QualityClassifier(n_features=cs.n_features, ngram_max=cs.ngram_max, C=cs.C).fit(pos, neg)
    path.parent.mkdir(parents=True, exist_ok=True)
    key_path.unlink(missing_ok=True)
    tmp = path.with_name(f".model.tmp{os.getpid()}.npz")
    model.save(tmp)
    os.replace(tmp, path)
    atomic_write_text(key_path, json.dumps({"fingerprint": fp, "key": key}, sort_keys=True))
    return path


def _input_fingerprint(pool: Pool, name: str) -> str | None:
    """What an attribute read by the global pass is (None when absent): its target or its attr.json."""
    if not pool.has_attr(name):
        return None
    target = pool.attr_target(name)
    if target is not None:
        return target
    info = pool.attr_dir(name) / "attr.json"
    return hashlib.sha256(info.read_bytes()).hexdigest()[:16] if info.exists() else "present"


def apply_rules(frame: pd.DataFrame, rules: list[FilterRule]) -> pd.Series:
    """The reason of every document: the name of the first enabled rule it fails ('' when kept).

    A NaN signal never fails a rule (e.g. ``q_chars_per_token`` without token counts).
    """
    reason = np.full(len(frame), "", dtype=object)
    for rule in rules:
        if not rule.enabled:
            continue
        if rule.signal not in frame.columns:
            raise ValueError(f"filter rule {rule.name!r}: unknown signal {rule.signal!r}")
        v = frame[rule.signal].to_numpy(dtype=np.float64)
        fail = np.zeros(len(frame), dtype=bool)
        if rule.min is not None:
            fail |= v < rule.min
        if rule.max is not None:
            fail |= v > rule.max
        for sig, (lo, hi) in rule.only_if.items():
            if sig not in frame.columns:
                raise ValueError(f"filter rule {rule.name!r}: unknown signal {sig!r} in only_if")
            c = frame[sig].to_numpy(dtype=np.float64)
            if lo is not None:
                fail &= c >= lo
            if hi is not None:
                fail &= c <= hi
        reason[(reason == "") & fail] = rule.name
    return pd.Series(reason, index=frame.index, name="quality_reason")


def weighted_rank_score(frame: pd.DataFrame, weights: dict[str, float]) -> np.ndarray:
    """Score in [0, 1]: weighted mean of percentile ranks (1 - rank for negative weights).

    Columns that are all NaN (e.g. no token counts) are skipped; a NaN value ranks as the median.
    """
    total = np.zeros(len(frame))
    wsum = 0.0
    for col, w in weights.items():
        if w == 0:
            continue
        if col not in frame.columns:
            raise ValueError(f"score weight on unknown signal {col!r}")
        x = frame[col]
        if x.isna().all():
            continue
        r = x.rank(pct=True, method="average").fillna(0.5).to_numpy()
        total += abs(w) * (r if w > 0 else 1.0 - r)
        wsum += abs(w)
    return total / wsum if wsum else np.full(len(frame), 0.5)


def _domains(pool: Pool, config: QualityConfig) -> np.ndarray:
    if pool.has_attr(config.domain_attr):
        return (
            pool.read_attr(config.domain_attr, columns=["domain"])["domain"]
            .astype(str)
            .to_numpy(dtype=object)
        )
    return np.full(pool.n_docs(), "all", dtype=object)


def _quantile_fail(
    values: np.ndarray, domains: np.ndarray, low: float | None, high: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-domain quantile tails: (below ``low``, above ``high``)."""
    lo_fail = np.zeros(len(values), dtype=bool)
    hi_fail = np.zeros(len(values), dtype=bool)
    for d in set(domains.tolist()):
        idx = np.flatnonzero(domains == d)
        v = values[idx]
        if not np.isfinite(v).any():
            continue
        hi_fail[idx] = v > np.nanquantile(v, high)
        if low is not None:
            lo_fail[idx] = v < np.nanquantile(v, low)
    return lo_fail, hi_fail


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
    if config.classifier.positive:
        model_path = fit_classifier(pool, config, force=force)
        key_path = model_path.with_name("model.key.json")
        executor.map_shards(
            classifier_shard,
            pool,
            CLASSIFIER_ATTR,
            {"model": str(model_path)},
            resources=SHARD_RESOURCES,
            force=force,
            fp=fingerprint(json.loads(key_path.read_text(encoding="utf-8"))),
        )
    frame = pool.read_attr(SIGNALS_ATTR)
    shard_sizes = [len(pool.read_shard(s, ["id"])) for s in pool.shards]
    inputs: dict[str, str | None] = {SIGNALS_ATTR: pool.attr_target(SIGNALS_ATTR)}
    for col, attr in EXTRA_ATTRS.items():
        if pool.has_attr(attr):
            inputs[attr] = _input_fingerprint(pool, attr)
            frame[col] = pool.read_attr(attr, columns=[col])[col].to_numpy(dtype=np.float64)
    with pool.lock(config.domain_attr):
        inputs[config.domain_attr] = _input_fingerprint(pool, config.domain_attr)
        domains = _domains(pool, config)
    key = {"config": config.model_dump(mode="json"), "inputs": inputs}
    fp = fingerprint(key)

    reason = apply_rules(frame, config.filters).to_numpy(dtype=object)
    for name, policy_on in (("perplexity", config.perplexity.enabled), ("density", config.density.enabled)):
        if policy_on and name not in frame.columns:
            raise PoolError(
                f"{pool.root}: quality config uses {name!r} but the pool has no {name!r} attribute; run `mixlab {name}` first"
            )
    if config.perplexity.enabled:
        p = config.perplexity
        lo_fail, hi_fail = _quantile_fail(
            frame["perplexity"].to_numpy(dtype=np.float64),
            domains,
            p.low_quantile if p.keep == "middle" else None,
            p.high_quantile,
        )
        reason[(reason == "") & hi_fail] = "perplexity_high"
        reason[(reason == "") & lo_fail] = "perplexity_low"
    if config.density.enabled:
        _, hi_fail = _quantile_fail(
            frame["density"].to_numpy(dtype=np.float64),
            np.full(len(frame), "all", dtype=object),
            None,
            config.density.max_quantile,
        )
        reason[(reason == "") & hi_fail] = "density_outlier"

    score = weighted_rank_score(frame, config.score_weights)
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
        "n_buckets": config.n_buckets,
    }
    pool.write_attr_info(
        QUALITY_ATTR, {"stage": "quality", "config": config.model_dump(), "summary": summary}
    )
    return summary
