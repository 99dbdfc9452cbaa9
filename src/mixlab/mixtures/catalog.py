"""The pool as mixtures and selection see it: one row per document with its domain and exclusion reason.

Reads the pool's documents (``id``, ``source``, ``n_tokens``, ``n_chars``) and the sidecar attributes
``domains`` (``domain``, ``p_<domain>``), ``quality`` (``quality_bucket``, ``quality_keep``), ``dedup``
(``dup_keep``) and ``decontam`` (``contaminated``) when they exist. Every document is either kept or
excluded with exactly one reason, so kept + excluded add up to the pool (DESIGN principle 8).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mixlab.mixtures.config import PoolViewConfig
from mixlab.pool.pool import Pool, PoolError

#: Exclusion reasons, in the order they are checked (a document gets the first that applies).
EXCLUSION_REASONS: tuple[str, ...] = (
    "unmapped_source",
    "no_domain",
    "contaminated",
    "duplicate",
    "low_quality",
)


@dataclass
class Catalog:
    """Documents of a pool with their domain, optional quality bucket and exclusion reason.

    ``docs`` columns: ``id``, ``shard``, ``row`` (position within the shard), ``n_tokens``, ``n_chars``,
    ``source``, ``domain`` (hard label), ``quality_bucket`` (int, -1 when unknown), ``excluded`` (reason,
    empty string when kept). ``probs`` holds ``p_<domain>`` rows aligned with ``docs`` (None when the
    pool has no probabilities).
    """

    docs: pd.DataFrame
    domains: list[str]
    domain_origin: str
    probs: np.ndarray | None = None
    prob_domains: list[str] = field(default_factory=list)
    attributes_used: list[str] = field(default_factory=list)

    @property
    def kept(self) -> pd.DataFrame:
        """Documents not excluded."""
        return self.docs[self.docs["excluded"] == ""]

    def exclusion_counts(self) -> dict[str, dict[str, int]]:
        """``{reason: {"docs": n, "tokens": t}}`` for every reason that excluded something."""
        ex = self.docs[self.docs["excluded"] != ""]
        grouped = ex.groupby("excluded")["n_tokens"].agg(["size", "sum"])
        return {
            str(reason): {"docs": int(row["size"]), "tokens": int(row["sum"])}
            for reason, row in grouped.sort_index().iterrows()
        }


def _attr_columns(pool: Pool, name: str) -> list[str] | None:
    """Columns of attribute ``name``, None when the pool does not have it (an incomplete one is an error)."""
    if name not in pool.attributes():
        return None
    if not pool.has_attr(name):
        missing = [s for s in pool.shards if not pool.attr_done(name, s)]
        raise PoolError(
            f"{pool.root}: attribute {name!r} is incomplete (missing shard(s) {', '.join(missing[:5])}); "
            "finish its stage before selecting"
        )
    return list(pq.read_schema(pool.attr_path(name, pool.shards[0])).names)


def _read_attr_checked(pool: Pool, name: str, columns: list[str], n_docs: int) -> pd.DataFrame:
    df = pool.read_attr(name, columns=columns)
    if len(df) != n_docs:
        raise PoolError(f"{pool.attr_dir(name)}: {len(df)} rows but the pool holds {n_docs} documents")
    return df.reset_index(drop=True)


def load_catalog(pool: Pool, view: PoolViewConfig | None = None) -> Catalog:
    """Read the documents of ``pool`` as ``view`` sees them (domains, exclusions)."""
    view = view or PoolViewConfig()
    docs = pool.read_docs(("id", "source", "n_tokens", "n_chars")).reset_index(drop=True)
    n = len(docs)
    sizes = [pq.read_metadata(pool.shard_path(s)).num_rows for s in pool.shards]
    docs["shard"] = np.repeat(np.array(pool.shards, dtype=object), sizes)
    docs["row"] = (
        np.concatenate([np.arange(k, dtype=np.int64) for k in sizes]) if sizes else np.zeros(0, np.int64)
    )
    docs["n_tokens"] = docs["n_tokens"].astype(np.int64)
    excluded = np.full(n, "", dtype=object)
    used: list[str] = []

    def mark(mask: np.ndarray, reason: str) -> None:
        excluded[(excluded == "") & mask] = reason

    dom_cols = _attr_columns(pool, view.domain_attr)
    use_attr = view.domain_from == "attr" or (view.domain_from == "auto" and dom_cols is not None)
    probs: np.ndarray | None = None
    prob_domains: list[str] = []
    if use_attr:
        if dom_cols is None:
            raise PoolError(
                f"{pool.root}: no {view.domain_attr!r} attribute; run a domains stage or set domain_from: source"
            )
        p_cols = [c for c in dom_cols if c.startswith("p_")]
        if "domain" not in dom_cols:
            raise PoolError(f"{pool.attr_dir(view.domain_attr)}: attribute has no 'domain' column")
        attr = _read_attr_checked(pool, view.domain_attr, ["domain", *p_cols], n)
        domain = attr["domain"].astype(object).where(attr["domain"].notna(), "").astype(str).to_numpy()
        if p_cols:
            prob_domains = [c[2:] for c in p_cols]
            probs = attr[p_cols].to_numpy(dtype=np.float64)
            probs = np.nan_to_num(probs, nan=0.0)
            probs = np.clip(probs, 0.0, None)
        origin = f"attr:{view.domain_attr}"
        used.append(view.domain_attr)
    else:
        source = docs["source"].astype(str).to_numpy()
        if view.source_map is not None:
            mapped = pd.Series(source).map(view.source_map)
            mark(mapped.isna().to_numpy(), "unmapped_source")
            domain = mapped.fillna("").astype(str).to_numpy()
        else:
            domain = source
        origin = "source"
    if view.soft_labels and probs is None:
        raise PoolError(
            f"{pool.root}: soft_labels needs `p_<domain>` columns in attribute {view.domain_attr!r}"
        )
    if view.soft_labels and probs is not None:
        no_mass = probs.sum(axis=1) <= 0
        mark(no_mass, "no_domain")
    else:
        mark(domain == "", "no_domain")
    docs["domain"] = domain

    bucket = np.full(n, -1, dtype=np.int64)
    decontam_cols = _attr_columns(pool, "decontam")
    if decontam_cols is not None and "contaminated" in decontam_cols:
        used.append("decontam")
        if view.exclude_contaminated:
            c = _read_attr_checked(pool, "decontam", ["contaminated"], n)["contaminated"]
            mark(c.fillna(False).astype(bool).to_numpy(), "contaminated")
    dedup_cols = _attr_columns(pool, "dedup")
    if dedup_cols is not None and "dup_keep" in dedup_cols:
        used.append("dedup")
        if view.exclude_duplicates:
            k = _read_attr_checked(pool, "dedup", ["dup_keep"], n)["dup_keep"]
            mark(~k.fillna(True).astype(bool).to_numpy(), "duplicate")
    quality_cols = _attr_columns(pool, "quality")
    if quality_cols is not None:
        used.append("quality")
        wanted = [c for c in ("quality_bucket", "quality_keep") if c in quality_cols]
        q = _read_attr_checked(pool, "quality", wanted, n)
        if "quality_bucket" in q:
            bucket = q["quality_bucket"].fillna(-1).astype(np.int64).to_numpy()
        if view.exclude_low_quality and "quality_keep" in q:
            mark(~q["quality_keep"].fillna(True).astype(bool).to_numpy(), "low_quality")
    docs["quality_bucket"] = bucket
    docs["excluded"] = excluded

    if view.soft_labels and probs is not None:
        domains = sorted(prob_domains)
    else:
        domains = sorted(set(docs.loc[docs["excluded"] == "", "domain"].tolist()))
    return Catalog(
        docs=docs,
        domains=domains,
        domain_origin=origin,
        probs=probs,
        prob_domains=prob_domains,
        attributes_used=used,
    )
