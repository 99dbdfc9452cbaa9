"""CLI: ``mixlab select`` (a mixture at a budget -> dataset folder) and ``mixlab build`` (the chosen optimum)."""

from __future__ import annotations

import argparse

from mixlab.executors import add_executor_arguments, executor_from_args
from mixlab.pool.pool import Pool
from mixlab.select.config import SelectConfig
from mixlab.select.export import FORMAT_FILES, export_selection
from mixlab.select.mixture_files import MixtureFileError, load_mixture_file, load_ratios_run
from mixlab.select.selection import select_documents
from mixlab.stage_config import add_config_argument, stage_config


def _config(args: argparse.Namespace) -> SelectConfig:
    overrides = {
        "budget_tokens": args.budget,
        "seed": args.seed,
        "quality_policy": args.quality_policy,
        "formats": args.format,
        "max_epochs": args.max_epochs,
        "shortfall": args.shortfall,
        "soft_labels": True if args.soft_labels else None,
    }
    return stage_config(
        SelectConfig, args.config, "select", overrides, flag_names={"budget_tokens": "--budget (e.g. 500M)"}
    )


def _run(args: argparse.Namespace, mixture: dict[str, float], label: str) -> int:
    config = _config(args)
    pool = Pool.open(args.pool)
    pool.require_documents("select")
    selection = select_documents(pool, mixture, config)
    selection.manifest["mixture_source"] = label
    with executor_from_args(args) as executor:
        out = export_selection(
            pool,
            selection,
            args.out,
            config.formats,
            part_chars=config.shuffle_bucket_chars,
            executor=executor,
        )
    m = selection.manifest
    print(
        f"selected {m['documents']} documents ({m['unique_documents']} unique), {m['total_tokens']:,} tokens "
        f"for a budget of {m['budget_tokens']:,} ({m['budget_error_tokens']:+,}) from {label}"
    )
    for domain, e in m["domains"].items():
        print(
            f"  {domain:<20} quota {e['quota_tokens']:>14,}  tokens {e['tokens']:>14,}  docs {e['docs']:>9,}  "
            f"epochs {e['epochs']:.2f}"
        )
    for reason, c in m["exclusions"].items():
        print(f"  excluded ({reason}): {c['docs']:,} docs, {c['tokens']:,} tokens")
    if m["redistributed"]:
        print(
            "  shortfall redistributed: "
            + ", ".join(f"{d} {v['delta_tokens']:+,.0f}" for d, v in m["redistributed"].items())
        )
    for f in config.formats:
        print(f"dataset: {out / FORMAT_FILES[f]}")
    print(f"manifest: {out / 'manifest.json'}")
    return 0


def _cmd_select(args: argparse.Namespace) -> int:
    if args.mixture and args.ratios:
        raise ValueError("give either --mixture or --ratios/--run, not both")
    if args.mixture:
        return _run(args, load_mixture_file(args.mixture), str(args.mixture))
    if args.ratios:
        if not args.run:
            raise MixtureFileError("--ratios needs --run RUN_ID")
        return _run(args, load_ratios_run(args.ratios, args.run), f"{args.ratios} run {args.run}")
    raise ValueError("give a mixture: --mixture mixture.json or --ratios ratios.csv --run RUN_ID")


def _cmd_build(args: argparse.Namespace) -> int:
    mixture = load_mixture_file(args.optimal, args.objective)
    label = f"{args.optimal}" + (f" objective {args.objective}" if args.objective else "")
    return _run(args, mixture, label)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("pool", help="pool folder")
    p.add_argument("--budget", default=None, help="token budget, e.g. 10B, 500M, 200k (training tokenizer)")
    add_config_argument(p, "select")
    p.add_argument(
        "--quality-policy",
        default=None,
        help=(
            '"all", \'{"top_k_buckets": 2}\', bucket shares as JSON (e.g. \'{"3": 0.5, "2": 0.3, "1": 0.2}\'), '
            '"affinity[:COLUMN]" (rank inside each domain by task affinity, see mixlab affinity) or '
            '"affinity+quality[:WEIGHT]" (mix the affinity and quality ranks)'
        ),
    )
    p.add_argument(
        "--format", default=None, help="comma-separated exports: jsonl,parquet,lmflow (default jsonl)"
    )
    p.add_argument("--seed", type=int, default=None, help="selection seed (default 0)")
    p.add_argument("--max-epochs", type=float, default=None, help="repetition cap per domain (default 4)")
    p.add_argument(
        "--shortfall", choices=("error", "redistribute"), default=None, help="when a domain is short"
    )
    p.add_argument("--soft-labels", action="store_true", help="assign domains by hash draws from p_<domain>")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument(
        "--workers", type=int, default=1, help="pool shards read at once by the export (default 1)"
    )
    add_executor_arguments(p)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser(
        "select", help="select documents for a mixture at an exact token budget and export them"
    )
    _common(s)
    s.add_argument("--mixture", default=None, help="mixture JSON ({domain: w} or {'weights': {...}})")
    s.add_argument("--ratios", default=None, help="ratios.csv swarm table (with --run)")
    s.add_argument("--run", default=None, help="run id in --ratios, e.g. mix-003")
    s.set_defaults(func=_cmd_select)

    b = sub.add_parser(
        "build", help="build the final dataset from the chosen optimum (optimal.json) at the budget"
    )
    _common(b)
    b.add_argument(
        "--optimal", required=True, help="optimal.json / optimal_<name>.json from the search stage"
    )
    b.add_argument("--objective", default=None, help="objective to build when the file holds several")
    b.set_defaults(func=_cmd_build)
