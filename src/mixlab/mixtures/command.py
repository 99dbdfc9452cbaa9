"""CLI: ``mixlab mixtures POOL --n 64 --out ratios.csv``."""

from __future__ import annotations

import argparse
from pathlib import Path

from mixlab.mixtures.catalog import load_catalog
from mixlab.mixtures.config import MixtureConfig, parse_tokens
from mixlab.mixtures.sampler import catalog_domain_tokens, entropy, sample_mixtures
from mixlab.pool.pool import Pool
from mixlab.stage_config import add_config_argument, stage_config
from mixlab.swarm import write_ratios


def _config_from_args(args: argparse.Namespace) -> MixtureConfig:
    overrides = {
        "n": args.n,
        "seed": args.seed,
        "budget_tokens": parse_tokens(args.budget) if args.budget is not None else None,
        "max_epochs": args.max_epochs,
        "min_weight": args.min_weight,
        "repeats": args.repeats,
    }
    return stage_config(MixtureConfig, args.config, "mixtures", overrides)


def _cmd_mixtures(args: argparse.Namespace) -> int:
    config = _config_from_args(args)
    pool = Pool.open(args.pool)
    catalog = load_catalog(pool, config)
    available = catalog_domain_tokens(catalog, soft=config.soft_labels)
    total = sum(available.values())
    if total <= 0:
        raise ValueError(f"{pool.root}: no tokens left after exclusions")
    prior = {d: t / total for d, t in available.items()}
    ratios = sample_mixtures(prior, config, available)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_ratios(out, ratios)
    ent = entropy(ratios)
    n_rep = len(ratios) - config.n
    print(
        f"wrote {config.n} mixtures (+{n_rep} repeated with other seeds) over {len(ratios.columns)} "
        f"domains to {out}"
    )
    print(
        f"  domains from {catalog.domain_origin}; available tokens: "
        + ", ".join(f"{d}={t}" for d, t in available.items())
    )
    excl = catalog.exclusion_counts()
    if excl:
        print(
            "  excluded: " + ", ".join(f"{r}={v['docs']} docs/{v['tokens']} tokens" for r, v in excl.items())
        )
    print(f"  entropy (nats): min {ent.min():.3f}, mean {ent.mean():.3f}, max {ent.max():.3f}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("mixtures", help="sample candidate mixtures (RegMix Dirichlet) into ratios.csv")
    p.add_argument("pool", help="pool folder")
    p.add_argument("--n", type=int, default=None, help="number of mixtures (default 64)")
    add_config_argument(p, "mixtures")
    p.add_argument("--budget", default=None, help="token budget (e.g. 10B, 500M): enables availability caps")
    p.add_argument("--max-epochs", type=float, default=None, help="repetition cap per domain (default 4)")
    p.add_argument(
        "--min-weight", type=float, default=None, help="weights are 0 or at least this (default 0.01)"
    )
    p.add_argument("--seed", type=int, default=None, help="sampler seed (default 0)")
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="mixtures repeated with another seed as <run>-seed1 rows, to measure noise (default 3)",
    )
    p.add_argument("--out", required=True, help="ratios.csv to write")
    p.set_defaults(func=_cmd_mixtures)
