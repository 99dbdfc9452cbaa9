"""Rounds of proxies, CLIMB's way: after each round the predictor proposes the next batch of mixtures.

``rounds: [64, 32, 16]`` in the pipeline file runs 64 sampled mixtures (round 1, ``mixtures`` section,
repeats included), fits the regressors on every finished run, and proposes 32 new mixtures from the
predicted best region (round 2), refits on all 96, proposes 16 more (round 3), and fits the final optimum
on everything. A proposal (:func:`mixlab.search.iterative.propose_next_round`) scores many Dirichlet draws
around the predicted top-k of the search (and around the best measured mixtures) plus broad draws around
the prior; most of the batch is the predicted best, kept apart by a minimum L1 distance, and
``search.explore`` of it explores (where the model is least sure, or at random).

Runs of round k >= 2 are named ``r<k>-mix-000`` ... and go into the same swarm (``OUT/swarm/runs``,
``OUT/swarm/metrics.csv``). Each proposal is kept in ``OUT/rounds/round-<k>.csv`` with the fingerprint of
everything it was made from (the runs and metrics of the rounds before it, the fit, search, evaluation,
trust and rounds settings), so a rerun reuses finished rounds without refitting them and re-proposes a
round only when what it depends on changed. ``OUT/rounds.json`` records, per round, its runs, the
predicted optimum of the headline objective, its predicted score and 95% interval.

Like :mod:`mixlab.pipeline` and :mod:`mixlab.routes`, this module knows every stage of the loop.
"""

from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mixlab.pool.pool import atomic_write_text, fingerprint

if TYPE_CHECKING:  # config.py composes RoundsSection, so it is imported only for type checking here
    from mixlab.config import PipelineConfig
    from mixlab.pool.pool import Pool

log = logging.getLogger("mixlab.rounds")

__all__ = [
    "ROUNDS_DIR",
    "ROUNDS_JSON",
    "RoundsResult",
    "RoundsSection",
    "finish_rounds",
    "read_rounds",
    "round_of",
    "run_rounds",
    "swarm_ratios",
]

ROUNDS_JSON = "rounds.json"
ROUNDS_DIR = "rounds"


class RoundsSection(BaseModel):
    """Rounds of proxies: the size of each round; later rounds are proposed by the fitted predictor.

    Written as a list (``rounds: [64, 32, 16]``) or as a mapping with ``sizes`` and the settings below.
    """

    model_config = ConfigDict(extra="forbid")

    sizes: list[int] = Field(
        default_factory=list,
        description=(
            "mixtures per round, e.g. [64, 32, 16]; the first replaces mixtures.n (repeats are added to it), "
            "each later round is proposed from the fit of all runs before it. Empty: one round of mixtures.n"
        ),
    )
    top_k: int = Field(
        16, ge=1, description="local candidates are drawn around this many predicted best mixtures"
    )
    candidates: int = Field(20_000, ge=100, description="mixtures the predictor scores to propose one round")
    concentration: float = Field(
        30.0, gt=0.0, description="Dirichlet concentration of local candidates (larger: closer to a centre)"
    )
    min_distance: float = Field(
        0.05, ge=0.0, description="a proposed mixture is at least this far (L1) from every other run"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, value: Any) -> Any:
        return {"sizes": value} if isinstance(value, list) else value

    @field_validator("sizes")
    @classmethod
    def _positive(cls, sizes: list[int]) -> list[int]:
        if any(n < 1 for n in sizes):
            raise ValueError(f"every round needs at least one mixture, got {sizes}")
        return sizes

    @property
    def n_rounds(self) -> int:
        """How many rounds the pipeline runs (one when ``sizes`` is empty)."""
        return max(1, len(self.sizes))


def rounds_problems(cfg: PipelineConfig) -> list[str]:
    """What is wrong with the rounds setting of ``cfg`` (one ``key: message`` line each)."""
    problems = []
    if cfg.rounds.n_rounds > 1 and cfg.proxies.method != "swarm":
        problems.append(
            f"rounds: later rounds need trained proxies (proxies.method swarm, got {cfg.proxies.method})"
        )
    if cfg.rounds.sizes and cfg.rounds.sizes[0] < 3:
        problems.append(
            f"rounds: the first round needs at least 3 mixtures to fit, got {cfg.rounds.sizes[0]}"
        )
    return problems


# --- files --------------------------------------------------------------------------------------------


def round_of(run: str) -> int:
    """The round of a run id: ``r<k>-...`` is round k, anything else round 1."""
    head = run.split("-", 1)[0]
    return int(head[1:]) if len(head) > 1 and head[0] == "r" and head[1:].isdigit() else 1


def _proposal_path(work: Path, k: int) -> Path:
    return work / ROUNDS_DIR / f"round-{k}.csv"


def read_rounds(workdir: str | Path) -> dict[str, Any] | None:
    """``OUT/rounds.json`` (``sizes``, ``objective`` and one record per finished round), or None."""
    path = Path(workdir) / ROUNDS_JSON
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def swarm_ratios(workdir: str | Path) -> pd.DataFrame:
    """Every run's mixture: round 1 (``ratios.csv``) then each proposed round (``rounds/round-<k>.csv``)."""
    from mixlab.swarm import read_ratios

    work = Path(workdir)
    parts = [read_ratios(work / "ratios.csv")] if (work / "ratios.csv").exists() else []
    folder = work / ROUNDS_DIR
    if folder.is_dir():
        found = sorted(
            (int(p.stem.split("-", 1)[1]), p) for p in folder.glob("round-*.csv") if p.stem[6:].isdigit()
        )
        parts += [read_ratios(p) for _, p in found]
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts).reindex(columns=parts[0].columns, fill_value=0.0)


def _write_rounds(work: Path, cfg: PipelineConfig, records: list[dict[str, Any]]) -> None:
    sizes = cfg.rounds.sizes or [cfg.mixtures.n]
    payload = {"objective": cfg.search.objective, "sizes": sizes, "rounds": records}
    atomic_write_text(work / ROUNDS_JSON, json.dumps(payload, indent=2) + "\n")


# --- one round's record and the next round's proposal ------------------------------------------------------


def _round_key(cfg: PipelineConfig, k: int, ratios: pd.DataFrame, metrics: pd.DataFrame) -> str:
    """Fingerprint of everything round ``k``'s fit and round ``k + 1``'s proposal are made from."""
    from mixlab.pipeline import ok_runs

    ok = ok_runs(metrics)
    runs = [r for r in ratios.index if r in ok.index]
    numeric = ok.loc[runs].drop(columns=["status", "error"], errors="ignore")
    buf = io.StringIO()
    ratios.loc[runs].join(numeric, how="left").to_csv(buf, float_format="%.10g")
    settings = {
        "fit": cfg.fit.model_dump(mode="json"),
        "search": cfg.search.model_dump(mode="json"),
        "evaluation": cfg.evaluation.model_dump(mode="json"),
        "trust": cfg.trust.model_dump(mode="json"),
    }
    rounds = cfg.rounds.model_dump(mode="json")
    rounds["sizes"] = (cfg.rounds.sizes or [cfg.mixtures.n])[: k + 1]
    return fingerprint(
        {"round": k, "table": buf.getvalue(), "settings": settings, "rounds": rounds, "seed": cfg.seed}
    )


def round_record(
    k: int, runs: list[str], found: dict[str, Any], objective: str, seconds: float
) -> dict[str, Any]:
    """What rounds.json says of round ``k``: its runs and the predicted optimum after it."""
    res = found["results"]["objectives"][objective]
    fit = found.get("fit")
    return {
        "round": k,
        "runs": runs,
        "n_runs": len(runs),
        "metric": res.get("metric"),
        "model": (getattr(fit, "chosen", {}) or {}).get(objective),
        "optimum": res["weights"],
        "predicted": res["predicted"],
        "interval": res["interval"],
        "direction": res.get("direction"),
        "oof_spearman": res.get("oof_spearman"),
        "trusted": res.get("trusted"),
        "seconds": round(seconds, 2),
    }


def _bounds(cfg: PipelineConfig, domains: list[str], available: dict[str, int]) -> tuple[Any, Any] | None:
    """Weight bounds of proposals: the search's min/max weight and what the pool holds at the proxy budget."""
    from mixlab.search.simplex import feasible_bounds

    constraints = cfg.search.constraints(
        availability={d: float(v) for d, v in available.items()},
        budget=float(cfg.select.budget_tokens),
        max_epochs=cfg.select.max_epochs,
    )
    try:
        return feasible_bounds(domains, constraints)
    except ValueError:  # the proxies' selection redistributes a shortfall; keep only the weight bounds
        return feasible_bounds(domains, constraints.model_copy(update={"availability": None, "budget": None}))


def propose_round(
    cfg: PipelineConfig,
    found: dict[str, Any],
    k: int,
    n: int,
    prior: dict[str, float],
    available: dict[str, int],
) -> pd.DataFrame:
    """Round ``k``'s ``n`` mixtures (ids ``r<k>-mix-000`` ...) from the fit of the rounds before it.

    Candidates are Dirichlet draws around the predicted top-``rounds.top_k`` of RegMix's simulation
    (and the best measured mixtures) plus broad draws around the prior; see
    :func:`mixlab.search.iterative.propose_next_round`.
    """
    from mixlab.mixtures.sampler import run_ids
    from mixlab.search.iterative import propose_next_round
    from mixlab.search.topk import simulate_candidates, top_k_indices

    fit = found["fit"]
    objective = cfg.search.objective
    domains = list(fit.domains)
    bounds = _bounds(cfg, domains, available)
    prior_vec = np.array([prior.get(d, 0.0) for d in domains], dtype=np.float64)
    prior_vec = (
        prior_vec / prior_vec.sum() if prior_vec.sum() > 0 else np.full(len(domains), 1 / len(domains))
    )
    seed = cfg.seed + 1000 * k
    simulated = simulate_candidates(prior_vec, cfg.rounds.candidates, seed, bounds=bounds)
    direction = fit.targets[objective].direction
    centres = simulated[top_k_indices(fit.predict(simulated, objective), cfg.rounds.top_k, direction)]
    proposal = propose_next_round(
        fit,
        n,
        explore_frac=cfg.search.explore,
        seed=seed,
        objective=objective,
        prior=prior_vec,
        n_candidates=cfg.rounds.candidates,
        min_distance=cfg.rounds.min_distance,
        bounds=bounds,
        centres=centres,
        local_concentration=cfg.rounds.concentration,
    )
    proposal.index = pd.Index([f"r{k}-{r}" for r in run_ids(len(proposal))], name="run")
    return proposal


# --- the loop ---------------------------------------------------------------------------------------------


@dataclass
class RoundsResult:
    """Every round's runs and results so far (the last round's record is added by :func:`finish_rounds`)."""

    ratios: pd.DataFrame
    """Every run of every round."""
    metrics: pd.DataFrame
    """The swarm's metrics table after the last round."""
    records: list[dict[str, Any]]
    """One record per round before the last."""
    last_runs: list[str]
    """The runs of the last round."""
    last_started: float
    """``time.perf_counter()`` when the last round started."""


def run_rounds(
    cfg: PipelineConfig,
    pool: Pool,
    first: pd.DataFrame,
    prior: dict[str, float],
    available: dict[str, int],
) -> RoundsResult:
    """Run every round of ``cfg.rounds`` (``first``: round 1's mixtures), each later round proposed from the
    fit of all runs before it. The final fit (``optimal*.json``) is the caller's; pass its result to
    :func:`finish_rounds`.
    """
    from mixlab.pipeline import fit_and_search, ok_runs, run_swarm_step
    from mixlab.swarm import read_ratios, write_ratios

    work = Path(cfg.workdir)
    sizes = cfg.rounds.sizes or [cfg.mixtures.n]
    objective = cfg.search.objective
    ratios = first
    members: list[list[str]] = [[str(r) for r in first.index]]
    records: list[dict[str, Any]] = []
    _write_rounds(work, cfg, records)
    for k in range(1, len(sizes) + 1):
        t0 = time.perf_counter()
        if len(sizes) > 1:
            log.info("round %d of %d: %d runs", k, len(sizes), len(members[-1]))
        metrics = run_swarm_step(cfg, pool, ratios, "swarm")
        if k == len(sizes):
            return RoundsResult(ratios, metrics, records, members[-1], t0)
        if len(ok_runs(metrics).index.intersection(ratios.index)) < 3:
            raise ValueError(f"round {k}: fewer than 3 proxy runs succeeded; cannot propose round {k + 1}")
        key = _round_key(cfg, k, ratios, metrics)
        path = _proposal_path(work, k + 1)
        stamp = path.with_suffix(".json")
        cached = json.loads(stamp.read_text(encoding="utf-8")) if stamp.exists() and path.exists() else None
        if cached is not None and cached.get("key") == key:
            record = cached["record"]
            log.info("round %d: already fitted; round %d's mixtures reused", k, k + 1)
        else:
            found = fit_and_search(cfg, ratios, metrics, prior, available, write=False)
            proposal = propose_round(cfg, found, k + 1, sizes[k], prior, available)
            record = round_record(k, members[-1], found, objective, time.perf_counter() - t0)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_ratios(path, proposal)
            atomic_write_text(stamp, json.dumps({"key": key, "record": record}, indent=2) + "\n")
            log.info(
                "round %d: predicted %s optimum %.4g [%.4g, %.4g]; proposed %d mixtures for round %d",
                k,
                objective,
                record["predicted"],
                *record["interval"],
                len(proposal),
                k + 1,
            )
        records.append(record)
        _write_rounds(work, cfg, records)
        proposal = read_ratios(path).reindex(columns=ratios.columns, fill_value=0.0)
        members.append([str(r) for r in proposal.index])
        ratios = pd.concat([ratios, proposal])
    raise AssertionError("unreachable: the last round returns")


def finish_rounds(cfg: PipelineConfig, result: RoundsResult, found: dict[str, Any]) -> None:
    """Add the last round's record (from the final fit, ``found``) and write ``rounds.json``."""
    k = len(result.records) + 1
    seconds = time.perf_counter() - result.last_started
    result.records.append(round_record(k, result.last_runs, found, cfg.search.objective, seconds))
    _write_rounds(Path(cfg.workdir), cfg, result.records)
