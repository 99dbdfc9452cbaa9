"""CLI: ``mixlab search`` - fit a swarm, find optimal mixtures per objective, propose the next round."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mixlab.regression.command import add_swarm_args, fit_from_args
from mixlab.search.config import Objective, SearchConfig
from mixlab.stage_config import flag_values, stage_config


def _read_json(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ValueError(f"{path}: {what} file does not exist") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from exc


def _mapping_or_float(value: str | None, what: str) -> float | dict[str, float] | None:
    if value is None:
        return None
    if value.endswith(".json"):
        data = _read_json(value, what)
        if not isinstance(data, dict):
            raise ValueError(f"{value}: {what} must be a JSON object of domain -> number")
        return {str(k): float(v) for k, v in data.items()}
    return float(value)


#: ``mixlab search`` flags (argparse dest) -> SearchConfig fields (``--seed`` sets fit's and search's).
SEARCH_FLAGS = {
    "method": "method",
    "n": "n_samples",
    "top_k": "top_k",
    "seed": "seed",
    "objective": "objective",
    "kl_weight": "kl_weight",
    "explore": "explore",
}


def search_config_from_args(args: argparse.Namespace) -> SearchConfig:
    """The ``search`` section of ``--config`` (a pipeline's seed included) with the flags given on top."""
    overrides = flag_values(args, SEARCH_FLAGS)
    for flag in ("min_weight", "max_weight"):
        bound = _mapping_or_float(getattr(args, flag), flag.replace("_", "-"))
        if bound is not None:
            overrides[flag] = bound
    return stage_config(SearchConfig, args.config, "search", overrides, inherit={"seed": "seed"})


def _parse_weighted(spec: str) -> Objective:
    """``NAME=TARGET:W,TARGET:W[@min|@max]`` -> a weighted-sum objective (default direction max)."""
    if "=" not in spec:
        raise ValueError(f"--weighted {spec!r}: expected NAME=TARGET:WEIGHT,...")
    name, rest = spec.split("=", 1)
    direction = "max"
    if "@" in rest:
        rest, direction = rest.rsplit("@", 1)
    weights = {}
    for part in rest.split(","):
        target, _, w = part.rpartition(":")
        if not target:
            raise ValueError(f"--weighted {spec!r}: {part!r} is not TARGET:WEIGHT")
        weights[target] = float(w)
    return Objective(name=name, weights=weights, direction=direction)  # type: ignore[arg-type]


def _cmd_search(args: argparse.Namespace) -> int:
    from mixlab.search.iterative import propose_next_round
    from mixlab.search.objectives import default_objectives, search_all, write_optimal
    from mixlab.search.plots import plot_tradeoff, plot_weights
    from mixlab.swarm import write_ratios

    config = search_config_from_args(args)
    fit = fit_from_args(args)
    print(fit.summary().round(4).to_string())
    prior: Any = "natural" if args.prior in (None, "natural") else _read_json(args.prior, "prior")
    constraints = config.constraints(
        availability=_read_json(args.availability, "availability") if args.availability else None,
        budget=args.budget,
        max_epochs=args.max_epochs,
    )
    objectives = default_objectives(fit) + [_parse_weighted(s) for s in (args.weighted or [])]
    chosen = config.objective if "objective" in config.model_fields_set else None
    if chosen is not None and chosen not in {o.name for o in objectives}:
        print(
            f"note: search.objective {chosen!r} is not one of the objectives "
            f"({', '.join(o.name for o in objectives)}); the default is chosen"
        )
        chosen = None
    results = search_all(fit, objectives, prior=prior, constraints=constraints, config=config, chosen=chosen)
    out = Path(args.out)
    written = write_optimal(out / "optimal.json", results)
    plot_weights(results, out / "weights.png")
    plot_tradeoff(results, out / "tradeoff.png")
    for name, res in results["objectives"].items():
        lo, hi = res["interval"]
        print(f"{name}: predicted {res['predicted']:.4f} [{lo:.4f}, {hi:.4f}] ({res['direction']})")
    print(f"chosen: {results['chosen']}; wrote {len(written)} JSON file(s) and 2 plots to {out}")
    if args.next_round:
        chosen_targets = list(results["objectives"][results["chosen"]]["objective"])
        nxt = propose_next_round(
            fit,
            args.next_round,
            explore_frac=config.explore,
            seed=config.sim_seed,
            objective=chosen_targets[0] if len(chosen_targets) == 1 else None,
        )
        next_out = Path(args.next_out) if args.next_out else out / "next_ratios.csv"
        write_ratios(next_out, nxt)
        print(f"wrote {len(nxt)} next-round mixtures to {next_out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``mixlab search``."""
    p = sub.add_parser(
        "search",
        help="find optimal mixtures (total, per task, weighted) and propose the next round",
        description="Fit the swarm, then search each objective's optimal mixture (RegMix top-k or constrained), "
        "write optimal.json with predictions and 95%% intervals, plots, and optionally next-round mixtures.",
    )
    add_swarm_args(p, "search", "fit")
    p.add_argument("--prior", help="prior.json (domain -> weight) or 'natural' (the swarm's mean mixture)")
    p.add_argument("--n", type=int, default=None, help="mixtures simulated (default 100000)")
    p.add_argument(
        "--top-k", type=int, default=None, help="best simulated mixtures averaged (topk; default 128)"
    )
    p.add_argument("--method", choices=["topk", "constrained"], default=None, help="default topk")
    p.add_argument(
        "--objective",
        default=None,
        help="objective whose optimum is the chosen one (default: the sum target)",
    )
    p.add_argument("--min-weight", help="minimum weight: a number, or a JSON file of domain -> weight")
    p.add_argument("--max-weight", help="maximum weight: a number, or a JSON file of domain -> weight")
    p.add_argument("--availability", help="JSON file: domain -> tokens available")
    p.add_argument("--budget", type=float, help="target token budget (with --availability)")
    p.add_argument("--max-epochs", type=float, default=1.0, help="repetition cap per domain at the budget")
    p.add_argument(
        "--kl-weight", type=float, default=None, help="pull toward the prior (KL penalty weight; default 0)"
    )
    p.add_argument(
        "--weighted", action="append", metavar="NAME=T1:W1,T2:W2[@max]", help="weighted-sum objective"
    )
    p.add_argument("--next-round", type=int, metavar="N", help="propose N mixtures for the next proxy round")
    p.add_argument(
        "--next-out", help="where to write the next-round ratios CSV (default OUT/next_ratios.csv)"
    )
    p.add_argument(
        "--explore", type=float, default=None, help="share of the next round spent exploring (default 0.25)"
    )
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_cmd_search)
