"""RegMix-style candidate mixtures: Dirichlet draws around the token prior, with varied concentration.

Each row is a draw from ``Dirichlet(alpha)`` with ``alpha_d = c * D * prior_d`` where ``c`` cycles over
``config.concentrations`` (small ``c``: sparse, extreme mixtures; large ``c``: close to the prior), as
RegMix varies the sampling temperature to cover the simplex. Draws are then made feasible:

- weights below ``min_weight`` become exactly 0 (sparsity, like RegMix's minimum-ratio threshold), so every
  weight is either 0 or at least ``min_weight``;
- a weight never exceeds its cap ``available_d * max_epochs / budget`` (when availability and a budget
  are known): mass above a cap is water-filled onto the other active domains in proportion to their
  weights, and when every active domain is capped the next-most-drawn domain is switched on.

The sampler is seeded (``numpy.random.Generator(PCG64(seed))``): same config => same ``ratios.csv``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from mixlab.mixtures.catalog import Catalog, load_catalog
from mixlab.mixtures.config import MixtureConfig, PoolViewConfig
from mixlab.pool.pool import Pool

#: Caps are shrunk by this relative margin so that weights rounded to 8 decimals in ratios.csv stay feasible.
CAP_MARGIN = 1e-6


class MixtureSamplingError(ValueError):
    """The requested mixtures cannot be sampled (infeasible caps, no domains)."""


def catalog_domain_tokens(catalog: Catalog, soft: bool = False) -> dict[str, int]:
    """Tokens per domain among kept documents; under soft labels the expected ``sum p_d * n_tokens``."""
    kept = catalog.kept
    if soft and catalog.probs is not None:
        mask = (catalog.docs["excluded"] == "").to_numpy()
        p = catalog.probs[mask]
        rows = p.sum(axis=1, keepdims=True)
        p = p / np.where(rows > 0, rows, 1.0)
        tokens = p.T @ kept["n_tokens"].to_numpy(dtype=np.float64)
        return {d: round(t) for d, t in sorted(zip(catalog.prob_domains, tokens, strict=True))}
    sums = kept.groupby("domain")["n_tokens"].sum()
    return {str(d): int(sums.get(d, 0)) for d in catalog.domains}


def available_tokens(
    pool: Pool, domain_attr: str = "domains", view: PoolViewConfig | None = None
) -> dict[str, int]:
    """Tokens each domain holds after exclusions (quality, duplicates, contamination), sorted by domain."""
    view = (view or PoolViewConfig()).model_copy(update={"domain_attr": domain_attr})
    return catalog_domain_tokens(load_catalog(pool, view), soft=view.soft_labels)


def token_prior(
    pool: Pool, domain_attr: str = "domains", view: PoolViewConfig | None = None
) -> dict[str, float]:
    """Each domain's share of the available tokens (after exclusions): the natural mixture of the pool."""
    tokens = available_tokens(pool, domain_attr, view)
    total = sum(tokens.values())
    if total <= 0:
        raise MixtureSamplingError(f"{pool.root}: no tokens left after exclusions; cannot compute a prior")
    return {d: t / total for d, t in tokens.items()}


def weight_caps(
    domains: list[str], available: Mapping[str, int] | None, budget: int | None, max_epochs: float
) -> np.ndarray:
    """Upper bound of each domain's weight: ``available * max_epochs / budget`` (at most 1)."""
    if available is None or budget is None:
        return np.ones(len(domains))
    caps = np.array([available.get(d, 0) * max_epochs / budget for d in domains], dtype=np.float64)
    return np.minimum(caps * (1.0 - CAP_MARGIN), 1.0)


def constrain_weights(raw: np.ndarray, caps: np.ndarray, min_weight: float) -> np.ndarray | None:
    """Make ``raw`` (non-negative) a feasible mixture: sum 1, ``w <= caps``, each ``w`` 0 or ``>= min_weight``.

    Returns None when this draw cannot be repaired (the caller draws again).
    """
    usable = caps >= max(min_weight, 1e-12)
    w = np.where(usable, np.asarray(raw, dtype=np.float64), 0.0)
    if w.sum() <= 0:
        return None
    w = w / w.sum()
    w[w < min_weight] = 0.0
    if w.sum() <= 0:
        return None
    w = w / w.sum()
    active = w > 0
    fixed = np.zeros_like(active)
    order = np.argsort(-np.where(usable, raw, -np.inf), kind="stable")  # activation order
    for _ in range(4 * len(w) + 4):
        over = active & ~fixed & (w > caps)
        w[over] = caps[over]
        fixed |= over
        free = active & ~fixed
        residual = 1.0 - w[fixed].sum()
        if free.any():
            w[free] *= residual / w[free].sum()
            if not (w[free] > caps[free]).any():
                break
            continue
        if residual <= 1e-12:
            break
        candidates = [j for j in order if usable[j] and not active[j]]
        if not candidates:
            return None
        j = candidates[0]
        active[j] = True
        if residual >= min_weight:
            w[j] = residual
        else:  # too little left for a new domain: take what it lacks from the largest capped one
            k = int(np.argmax(np.where(fixed, w, -np.inf)))
            if w[k] - (min_weight - residual) < min_weight:
                return None
            w[k] -= min_weight - residual
            w[j] = min_weight
    w = np.where(w > 0, w, 0.0)
    ok = (
        abs(w.sum() - 1.0) < 1e-9
        and bool(np.all(w <= caps + 1e-12))
        and bool(np.all((w == 0) | (w >= min_weight - 1e-12)))
    )
    return w / w.sum() if ok else None


def _dirichlet(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """Dirichlet draw in log space (robust for tiny alpha: Gamma(a) = Gamma(a+1) * U**(1/a))."""
    log_g = np.log(rng.gamma(alpha + 1.0)) + np.log(rng.uniform(size=alpha.shape)) / alpha
    log_g -= log_g.max()
    g = np.exp(log_g)
    return g / g.sum()


def run_ids(n: int) -> list[str]:
    """Run ids ``mix-000``, ``mix-001``, ... (wider when n > 1000)."""
    width = max(3, len(str(n - 1)))
    return [f"mix-{i:0{width}d}" for i in range(n)]


def _prior_and_caps(
    prior: Mapping[str, float], config: MixtureConfig, available_tokens: Mapping[str, int] | None
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Domains, the normalised prior, each domain's weight cap (0 where unusable) and the usable mask."""
    domains = list(config.domains) if config.domains else sorted(prior)
    if not domains:
        raise MixtureSamplingError("no domains to mix (empty prior)")
    p = np.array([max(float(prior.get(d, 0.0)), 0.0) for d in domains], dtype=np.float64)
    if p.sum() <= 0:
        raise MixtureSamplingError(f"the prior gives no mass to any of the domains {domains}")
    p = p / p.sum()
    caps = weight_caps(domains, available_tokens, config.budget_tokens, config.max_epochs)
    usable = (caps >= max(config.min_weight, 1e-12)) & (p > 0)
    return domains, p, np.where(usable, caps, 0.0), usable


def anchor_mixtures(
    prior: Mapping[str, float],
    config: MixtureConfig,
    available_tokens: Mapping[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """The natural (token prior) and uniform mixtures, made feasible under the swarm's caps and min_weight.

    These are the swarm's first two rows (with ``include_prior``) and the confirmation's ``natural`` and
    ``uniform`` baselines, computed once here so that both are the same mixture. Columns follow
    ``config.domains`` or, without it, the sorted prior.
    """
    _, p, caps, usable = _prior_and_caps(prior, config, available_tokens)
    out: dict[str, np.ndarray] = {}
    for name, fixed_row in (("natural", p), ("uniform", usable.astype(np.float64))):
        w = constrain_weights(fixed_row, caps, config.min_weight)
        if w is None:
            raise MixtureSamplingError(f"the {name} mixture cannot be made feasible under the caps")
        out[name] = w
    return out


def sample_mixtures(
    prior: Mapping[str, float],
    config: MixtureConfig,
    available_tokens: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """Sample ``config.n`` candidate mixtures (index: run ids, columns: domains, rows sum to 1).

    With ``include_prior`` the first rows are the prior itself and the uniform mixture (both made
    feasible). Caps apply when ``available_tokens`` and ``config.budget_tokens`` are both given.
    """
    domains, p, caps, usable = _prior_and_caps(prior, config, available_tokens)
    if caps.sum() < 1.0 - 1e-9:
        detail = ", ".join(
            f"{d}: {available_tokens.get(d, 0) if available_tokens else 0} tokens (cap {c:.4f})"
            for d, c in zip(domains, caps, strict=True)
        )
        raise MixtureSamplingError(
            f"the pool cannot fill a budget of {config.budget_tokens} tokens even at max_epochs="
            f"{config.max_epochs}: weight caps sum to {caps.sum():.4f} < 1 ({detail}); lower the budget "
            "or raise max_epochs"
        )
    rng = np.random.Generator(np.random.PCG64(config.seed))
    rows: list[np.ndarray] = []
    if config.include_prior:
        rows.extend(list(anchor_mixtures(prior, config, available_tokens).values())[: config.n])
    d_eff = int(usable.sum())
    i = 0
    tries = 0
    max_tries = 1000 * config.n
    while len(rows) < config.n:
        c = config.concentrations[i % len(config.concentrations)]
        alpha = np.where(usable, c * d_eff * p, 1.0)
        tries += 1
        if tries > max_tries:
            raise MixtureSamplingError(
                f"gave up after {max_tries} draws: the caps/min_weight leave too little room "
                f"(caps {dict(zip(domains, np.round(caps, 4).tolist(), strict=True))}, min_weight {config.min_weight})"
            )
        raw = np.where(usable, _dirichlet(rng, alpha), 0.0)
        w = constrain_weights(raw, caps, config.min_weight)
        if w is None:
            continue
        rows.append(w)
        i += 1
    df = pd.DataFrame(np.vstack(rows), index=pd.Index(run_ids(config.n), name="run"), columns=domains)
    return add_repeats(df, config.repeats, config.repeat_seeds, anchors=2 if config.include_prior else 0)


REPEAT_SUFFIX = re.compile(r"^(?P<run>.+)-seed(?P<k>[1-9]\d*)$")


def add_repeats(ratios: pd.DataFrame, repeats: int, seeds: int = 1, anchors: int = 1) -> pd.DataFrame:
    """Append ``seeds`` copies ``<run>-seed<k>`` of ``repeats`` mixtures.

    The first ``anchors`` rows (the natural and uniform mixtures, when the swarm includes them) are
    repeated first, then rows spread evenly over the rest. So the baselines' own noise is measured, and
    the confirmation finds their seeds already trained (:mod:`mixlab.confirm.reuse`). Identical rows are
    what :mod:`mixlab.regression.signal` recognises as repeats.
    """
    if repeats <= 0 or ratios.empty:
        return ratios
    n = len(ratios)
    first = list(range(min(anchors, repeats, n)))
    left = min(repeats, n) - len(first)
    rest = n - len(first)
    spread = [len(first) + int((i + 0.5) * rest / left) for i in range(max(left, 0))]  # midpoints
    picks = sorted(set(first) | set(spread))
    extra = []
    for i in picks:
        run = str(ratios.index[i])
        for k in range(1, seeds + 1):
            extra.append(ratios.iloc[i].rename(f"{run}-seed{k}"))
    out = pd.concat([ratios, pd.DataFrame(extra)])
    out.index.name = ratios.index.name
    return out


def repeat_seed(run: str) -> int:
    """The seed offset of a run id: ``k`` for a repeat ``<run>-seed<k>``, else 0."""
    m = REPEAT_SUFFIX.match(str(run))
    return int(m.group("k")) if m else 0


def entropy(weights: pd.DataFrame) -> pd.Series:
    """Shannon entropy (nats) of each mixture row."""
    w = weights.to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(w > 0, -w * np.log(w), 0.0)
    return pd.Series(terms.sum(axis=1), index=weights.index, name="entropy")
