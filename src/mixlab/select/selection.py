"""Deterministic, hash-ranked selection of documents for a mixture at an exact token budget.

1. Documents are read through :func:`mixlab.mixtures.catalog.load_catalog` (domain, quality bucket,
   exclusion reason; excluded documents are counted by reason, never silently dropped). Under soft labels
   each document is assigned to one domain by a keyed-hash draw from its ``p_<domain>`` row.
2. Each domain gets ``weight * budget`` tokens (:mod:`mixlab.select.quotas`), spread over quality buckets
   by the quality policy; a (domain, bucket) pair is a *cell*.
3. Within a cell documents are ranked by the keyed hash of (id, seed) or, under the affinity policies,
   by task affinity (ties in hash order), so the documents most like the tasks are taken first. A cell
   whose target exceeds its tokens repeats them in whole epochs, then takes a ranked prefix of a partial
   epoch. The prefix stops at the document that crosses the target: either just before it or just after
   it, whichever keeps the running total (over all cells so far) closer to the running target. So every
   cell and every domain is within one document of its quota and the whole selection within half a
   document of the budget.
4. The chosen rows are ordered by the keyed hash of (id, repeat, seed): training sees a mixed stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mixlab.console import tqdm
from mixlab.mixtures.catalog import Catalog, load_catalog
from mixlab.pool.pool import Pool, PoolError
from mixlab.select.config import SelectConfig
from mixlab.select.hashing import keyed_hash, keyed_uniform, repeat_keys
from mixlab.select.quotas import domain_quotas, split_quota

#: Columns of :attr:`Selection.chosen`, in order.
CHOSEN_COLUMNS = ("id", "domain", "n_tokens", "repeat", "bucket", "shard", "row", "n_chars")
#: Catalog columns a selection keeps for its documents (the rest of the catalog is not copied).
_CELL_COLUMNS = ["id", "domain", "n_tokens", "quality_bucket", "shard", "row", "n_chars"]
#: Documents whose order keys are hashed at once (bounds the temporary key strings).
_ORDER_CHUNK = 1 << 20


@dataclass
class Selection:
    """The documents chosen for a mixture and budget, in output order, plus the manifest.

    ``chosen`` has one row per occurrence (a repeated document appears once per repeat) with columns
    ``id``, ``domain``, ``n_tokens``, ``repeat`` (0 for the first pass), ``bucket`` (quality bucket or -1),
    ``shard``, ``row`` (position in the shard) and ``n_chars``.
    """

    chosen: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return int(self.chosen["n_tokens"].sum())


@dataclass
class _Cell:
    domain: str
    bucket: int
    target: float
    rows: np.ndarray  # positions in the kept documents, ranked
    cumsum: np.ndarray
    max_repeats: int


def assign_soft_domains(catalog: Catalog, seed: int) -> np.ndarray:
    """One domain per document drawn from its ``p_<domain>`` row by a keyed hash of (id, seed)."""
    if catalog.probs is None:
        raise PoolError("soft labels need `p_<domain>` probabilities in the domains attribute")
    p = catalog.probs
    rows = p.sum(axis=1, keepdims=True)
    cum = np.cumsum(p / np.where(rows > 0, rows, 1.0), axis=1)
    u = keyed_uniform(catalog.docs["id"].to_numpy(), seed, "soft")
    idx = (cum <= u[:, None]).sum(axis=1)  # first column whose cumulative probability exceeds u
    last_positive = p.shape[1] - 1 - np.argmax(p[:, ::-1] > 0, axis=1)  # guards float round-off at u ~ 1
    idx = np.minimum(idx, last_positive)
    names = np.array(catalog.prob_domains, dtype=object)
    out = names[idx]
    out[rows[:, 0] <= 0] = ""
    return out


AFFINITY_ATTR = "affinity"


class _RankScores:
    """Scores that order a domain's documents under the affinity policies (highest taken first)."""

    def __init__(self, pool: Pool, catalog: Catalog, config: SelectConfig) -> None:
        policy = config.quality_policy
        self.policy = policy
        if AFFINITY_ATTR not in pool.attributes():
            raise PoolError(
                f"{pool.root}: quality policy {policy.mode!r} needs the {AFFINITY_ATTR!r} attribute; "
                "run `mixlab affinity POOL --tasks NAME=FILE,...` first"
            )
        attr = pool.read_attr(AFFINITY_ATTR)
        if not attr["id"].equals(catalog.docs["id"]):
            raise PoolError(f"{pool.attr_dir(AFFINITY_ATTR)}: not aligned with the pool's documents")
        self.columns = {
            c: attr[c].to_numpy(dtype=np.float64)
            for c in attr.columns
            if c == "affinity" or (c.startswith("affinity_") and c != "affinity_task")
        }
        if policy.affinity_column is not None and policy.affinity_column not in self.columns:
            raise PoolError(
                f"{pool.attr_dir(AFFINITY_ATTR)}: no column {policy.affinity_column!r} "
                f"(columns: {', '.join(sorted(self.columns))})"
            )
        self.quality: np.ndarray | None = None
        if policy.mode == "affinity+quality":
            if "quality" not in pool.attributes():
                raise PoolError(
                    f"{pool.root}: quality policy 'affinity+quality' needs the `quality` attribute "
                    "(quality_score); run `mixlab quality` first"
                )
            q = pool.read_attr("quality", columns=["quality_score"])
            self.quality = q["quality_score"].to_numpy(dtype=np.float64)
        self.used: dict[str, str] = {}

    def column(self, domain: str) -> str:
        """The affinity column a domain is ranked by."""
        if self.policy.affinity_column is not None:
            return self.policy.affinity_column
        own = f"affinity_{domain}"
        return own if own in self.columns else "affinity"

    def __call__(self, domain: str, rows: np.ndarray) -> np.ndarray:
        """Scores of the documents at catalog positions ``rows`` of ``domain``."""
        column = self.column(domain)
        self.used[domain] = column
        aff = self.columns[column][rows]
        if self.quality is None:
            return aff
        w = 0.5 if self.policy.affinity_weight is None else float(self.policy.affinity_weight)
        ra = pd.Series(aff).rank(pct=True, method="average").to_numpy()
        rq = pd.Series(self.quality[rows]).rank(pct=True, method="average").fillna(0.5).to_numpy()
        return w * ra + (1.0 - w) * rq


def _eligible_cells(
    kept: pd.DataFrame, config: SelectConfig, has_buckets: bool
) -> tuple[dict[str, dict[int, np.ndarray]], dict[int, float] | None]:
    """Positions (in ``kept``, in row order) of each domain's documents, grouped into the cells the quality
    policy uses (only positions are held, never copies of the documents)."""
    policy = config.quality_policy
    if policy.mode not in ("all", "affinity", "affinity+quality") and not has_buckets:
        raise PoolError(
            f"quality policy {policy.mode!r} needs the `quality` attribute with `quality_bucket`; "
            "run the quality stage or use quality_policy: all"
        )
    shares: dict[int, float] | None = None
    bucket = kept["quality_bucket"].to_numpy()
    if policy.mode == "all" or policy.ranked:
        rows = np.arange(len(kept))
        cell = np.full(len(rows), -1, dtype=np.int64)
    elif policy.mode == "top_k_buckets":
        present = sorted({int(b) for b in np.unique(bucket) if b >= 0}, reverse=True)
        rows = np.flatnonzero(np.isin(bucket, present[: policy.k]))
        cell = np.full(len(rows), -1, dtype=np.int64)
    else:
        shares = policy.normalised_shares()
        rows = np.flatnonzero(np.isin(bucket, list(shares)))
        cell = bucket[rows].astype(np.int64)
    keys = pd.DataFrame({"domain": kept["domain"].to_numpy()[rows], "cell": cell})
    cells: dict[str, dict[int, np.ndarray]] = {}
    for (domain, c), positions in sorted(keys.groupby(["domain", "cell"], sort=True).indices.items()):
        cells.setdefault(str(domain), {})[int(c)] = rows[positions]
    return cells, shares


def _cell_options(cell: _Cell) -> list[tuple[int, int, float]]:
    """Candidate (full epochs, partial-prefix length, tokens) endings for a cell: under and over the target."""
    total = float(cell.cumsum[-1]) if len(cell.cumsum) else 0.0
    if total <= 0 or cell.target <= 0:
        return [(0, 0, 0.0)]
    full = min(int(cell.target // total), cell.max_repeats)
    rem = cell.target - full * total
    if full >= cell.max_repeats:
        return [(full, 0, full * total)]
    k = int(np.searchsorted(cell.cumsum, rem, side="right"))
    under = full * total + (float(cell.cumsum[k - 1]) if k else 0.0)
    options = [(full, k, under)]
    if k < len(cell.cumsum) and under < cell.target:
        options.append((full, k + 1, full * total + float(cell.cumsum[k])))
    return options


def select_documents(pool: Pool, mixture: dict[str, float], config: SelectConfig) -> Selection:
    """Choose documents for ``mixture`` at ``config.budget_tokens`` (see the module doc for the method)."""
    weights = {str(d): float(w) for d, w in mixture.items()}
    if any(w < 0 or not math.isfinite(w) for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"a mixture needs non-negative weights with a positive sum, got {weights}")
    total_w = sum(weights.values())
    weights = {d: w / total_w for d, w in sorted(weights.items())}

    catalog = load_catalog(pool, config)
    docs = catalog.docs
    if config.soft_labels:
        docs = docs.assign(domain=assign_soft_domains(catalog, config.seed))
    kept = docs.loc[(docs["excluded"] == "").to_numpy(), _CELL_COLUMNS]
    has_buckets = bool((kept["quality_bucket"] >= 0).any())
    cells_by_domain, shares = _eligible_cells(kept, config, has_buckets)
    scores = _RankScores(pool, catalog, config) if config.quality_policy.ranked else None

    pool_domains = sorted(set(kept["domain"].tolist()))
    budget = int(config.budget_tokens)
    ids = kept["id"].to_numpy()
    tokens = kept["n_tokens"].to_numpy(dtype=np.int64)
    eligible = {
        d: int(sum(int(tokens[g].sum()) for g in cells_by_domain.get(d, {}).values())) for d in weights
    }
    capacity = {d: eligible[d] * config.max_epochs for d in weights}
    unknown = [d for d, w in weights.items() if w > 0 and d not in pool_domains]
    if unknown and config.shortfall == "error":
        raise ValueError(
            f"mixture domain(s) {', '.join(map(repr, unknown))} not found in pool {pool.root} "
            f"(its domains, from {catalog.domain_origin}: {', '.join(pool_domains)})"
        )
    dq = domain_quotas(weights, budget, capacity, eligible, config.max_epochs, config.shortfall)

    max_repeats = math.ceil(config.max_epochs)
    cells: list[_Cell] = []
    bucket_quotas: dict[str, dict[int, float]] = {}
    for domain in sorted(dq.quotas):
        quota = dq.quotas[domain]
        groups = cells_by_domain.get(domain, {})
        if shares is None:
            targets = {-1: quota}
        else:
            avail = {b: int(tokens[groups[b]].sum()) if b in groups else 0 for b in shares}
            targets = split_quota(quota, shares, avail, config.max_epochs)
        bucket_quotas[domain] = targets
        for bucket, target in sorted(targets.items(), reverse=True):
            if bucket not in groups or target <= 0:
                continue
            group = groups.pop(bucket)
            rank = keyed_hash(ids[group], config.seed, "rank")
            if scores is None:
                ranked = group[np.argsort(rank, kind="stable")]
            else:  # highest score first, ties in hash order
                score = scores(domain, kept.index.to_numpy()[group])
                ranked = group[np.lexsort((rank, -np.nan_to_num(score, nan=-np.inf)))]
            cum = np.cumsum(tokens[ranked])
            cap_tokens = float(cum[-1]) * config.max_epochs if len(cum) else 0.0
            cells.append(_Cell(domain, bucket, min(target, cap_tokens), ranked, cum, max_repeats))

    positions: list[np.ndarray] = []
    repeats: list[np.ndarray] = []
    running_error = 0.0  # achieved - target over the cells done so far
    for cell in tqdm(cells, desc="select", unit="cell", disable=len(cells) < 8):
        options = _cell_options(cell)
        full, k, got = min(options, key=lambda o: (abs(running_error + o[2] - cell.target), o[2]))
        running_error += got - cell.target
        for r in range(full):
            positions.append(cell.rows)
            repeats.append(np.full(len(cell.rows), r, dtype=np.int64))
        if k:
            positions.append(cell.rows[:k])
            repeats.append(np.full(k, full, dtype=np.int64))
    if positions:
        chosen = kept.iloc[np.concatenate(positions)].reset_index(drop=True)
        chosen["repeat"] = np.concatenate(repeats)
    else:
        chosen = pd.DataFrame({c: pd.Series(dtype=object) for c in CHOSEN_COLUMNS})
    del positions, repeats, cells
    chosen = chosen.rename(columns={"quality_bucket": "bucket"})
    chosen["domain"] = chosen["domain"].astype(str)
    order_key = _order_keys(chosen["id"].to_numpy(), chosen["repeat"].to_numpy(), config.seed)
    chosen = chosen.iloc[
        np.argsort(order_key, kind="stable"), [chosen.columns.get_loc(c) for c in CHOSEN_COLUMNS]
    ]
    chosen = chosen.reset_index(drop=True)
    for col in ("n_tokens", "repeat", "bucket", "row", "n_chars"):
        chosen[col] = chosen[col].astype(np.int64)

    manifest = _manifest(pool, catalog, config, weights, dq, bucket_quotas, eligible, chosen, pool_domains)
    if scores is not None:
        manifest["attributes_used"].append(AFFINITY_ATTR)
        for domain, column in scores.used.items():
            manifest["domains"][domain]["ranked_by"] = column
    return Selection(chosen=chosen, manifest=manifest)


def _order_keys(ids: np.ndarray, repeats: np.ndarray, seed: int) -> np.ndarray:
    """The keyed hash of ``id\x1frepeat`` of every occurrence, computed in chunks (the same values)."""
    out = np.zeros(len(ids), dtype=np.uint64)
    for start in range(0, len(ids), _ORDER_CHUNK):
        stop = start + _ORDER_CHUNK
        out[start:stop] = keyed_hash(repeat_keys(ids[start:stop], repeats[start:stop]), seed, "order")
    return out


def _manifest(
    pool: Pool,
    catalog: Catalog,
    config: SelectConfig,
    weights: dict[str, float],
    dq: Any,
    bucket_quotas: dict[str, dict[int, float]],
    eligible: dict[str, int],
    chosen: pd.DataFrame,
    pool_domains: list[str],
) -> dict[str, Any]:
    total = int(chosen["n_tokens"].sum())
    per_domain: dict[str, Any] = {}
    for domain in sorted(set(weights) | set(chosen["domain"])):
        rows = chosen[chosen["domain"] == domain]
        tokens = int(rows["n_tokens"].sum())
        unique = int(rows["id"].nunique())
        entry: dict[str, Any] = {
            "weight": weights.get(domain, 0.0),
            "quota_tokens": round(dq.quotas.get(domain, 0.0)),
            "tokens": tokens,
            "docs": len(rows),
            "unique_docs": unique,
            "repeats": len(rows) - unique,
            "max_passes": int(rows["repeat"].max()) + 1 if len(rows) else 0,
            "available_tokens": int(eligible.get(domain, 0)),
            "epochs": tokens / eligible[domain] if eligible.get(domain) else 0.0,
        }
        if config.quality_policy.mode == "shares":
            entry["buckets"] = {
                str(b): {
                    "quota_tokens": round(q),
                    "tokens": int(rows.loc[rows["bucket"] == b, "n_tokens"].sum()),
                    "docs": int((rows["bucket"] == b).sum()),
                }
                for b, q in sorted(bucket_quotas.get(domain, {}).items(), reverse=True)
            }
        per_domain[domain] = entry
    docs = catalog.docs
    return {
        "format": "mixlab-selection/1",
        "pool": str(pool.root),
        "tokenizer": pool.tokenizer_spec,
        "budget_tokens": int(config.budget_tokens),
        "total_tokens": total,
        "budget_error_tokens": total - int(config.budget_tokens),
        "documents": len(chosen),
        "unique_documents": int(chosen["id"].nunique()),
        "seed": int(config.seed),
        "max_epochs": float(config.max_epochs),
        "quality_policy": config.quality_policy.model_dump(mode="json", exclude_none=True),
        "soft_labels": bool(config.soft_labels),
        "domain_origin": catalog.domain_origin,
        "shortfall": config.shortfall,
        "mixture": weights,
        "effective_mixture": {d: (e["tokens"] / total if total else 0.0) for d, e in per_domain.items()},
        "redistributed": dq.redistributed,
        "domains": per_domain,
        "pool_documents": len(docs),
        "pool_tokens": int(docs["n_tokens"].sum()),
        "kept_documents": int((docs["excluded"] == "").sum()),
        "exclusions": catalog.exclusion_counts(),
        "attributes_used": catalog.attributes_used,
        "pool_domains": pool_domains,
    }
