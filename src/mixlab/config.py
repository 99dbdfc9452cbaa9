"""Typed models of the pipeline YAML (``mixlab run CONFIG.yaml``).

Each stage owns its one config model (``<stage>/config.py``); this module composes them into one
pipeline document, adds the sections only the pipeline needs (build, confirmation) and the checks across
sections. Every stage subcommand reads its section of the same file (``--config``, see
:mod:`mixlab.stage_config`). YAML is read with ``yaml.safe_load`` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mixlab.dedup.config import DedupConfig
from mixlab.domains.config import PartitionConfig
from mixlab.evaluation.config import EvalConfig
from mixlab.final.config import FinalConfig
from mixlab.mixtures.config import MixtureConfig
from mixlab.pool.config import IngestConfig
from mixlab.proxies.config import ProxyConfig
from mixlab.quality.config import QualityConfig
from mixlab.regression.config import FitConfig
from mixlab.rounds import RoundsSection, rounds_problems
from mixlab.routes import ProxiesSection
from mixlab.search.config import SearchConfig
from mixlab.search.trust import TrustConfig
from mixlab.select.config import SelectConfig
from mixlab.yamlconfig import load_yaml_mapping


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BuildSection(_Strict):
    budget_tokens: int = Field(gt=0, description="token budget of the final dataset")
    formats: list[Literal["jsonl", "parquet", "lmflow"]] = Field(
        default_factory=lambda: ["jsonl"], min_length=1
    )


class ConfirmSection(_Strict):
    enabled: bool = Field(True, description="train confirmation proxies on the optimum and baselines")
    baselines: list[Literal["natural", "uniform", "best_swarm"]] = Field(
        default_factory=lambda: ["natural", "uniform", "best_swarm"],
        description="mixtures the optimum is compared with; best_swarm = the swarm's best measured mixture",
    )
    seeds: int = Field(3, ge=1, description="seeds per confirmed mixture (selection and training)")
    per_task: bool = Field(True, description="also confirm each task's own optimum (optimal_<task>)")
    bootstrap: int = Field(2000, ge=100, description="paired bootstrap resamples for the 95% intervals")
    scale: float = Field(
        1.0,
        ge=1.0,
        description=(
            "confirmation runs train on this many times the proxies' tokens (selection budget and steps), "
            "to test that the optimum transfers to a bigger run"
        ),
    )


class PipelineConfig(_Strict):
    """The whole loop, one section per stage."""

    workdir: str = Field(description="folder for every artefact of the run")
    seed: int = Field(0, description="seed for sampling, selection and training")
    workers: int = Field(1, ge=1, description="processes for shard stages and proxy runs")
    executor: Literal["local", "ray"] = Field(
        "local", description="where shard stages and proxy runs run: local processes or Ray tasks"
    )
    ray_address: str | None = Field(
        None, description="Ray cluster to join (executor ray); None starts Ray here with `workers` CPUs"
    )
    ingest: IngestConfig
    partition: PartitionConfig = Field(default_factory=PartitionConfig)
    quality: QualityConfig | None = Field(default_factory=QualityConfig)
    dedup: DedupConfig | None = Field(default_factory=DedupConfig)
    decontaminate: bool = Field(True, description="flag and exclude documents overlapping the tasks")
    mixtures: MixtureConfig
    select: SelectConfig
    proxy: ProxyConfig
    proxies: ProxiesSection = Field(default_factory=ProxiesSection)
    evaluation: EvalConfig
    fit: FitConfig = Field(default_factory=FitConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    build: BuildSection
    confirm: ConfirmSection = Field(default_factory=ConfirmSection)
    trust: TrustConfig = Field(default_factory=TrustConfig)
    rounds: RoundsSection = Field(
        default_factory=RoundsSection,
        description=(
            "rounds of proxies, e.g. [64, 32, 16]: the first replaces mixtures.n, each later one is proposed "
            "by the predictor fitted on every run before it (CLIMB); empty: one round"
        ),
    )
    final: FinalConfig = Field(default_factory=FinalConfig)

    @field_validator("evaluation")
    @classmethod
    def _known_metrics(cls, ev: EvalConfig) -> EvalConfig:
        from mixlab.regression.models import MODEL_NAMES
        from mixlab.regression.signal import DIRECTIONS

        allowed = ["auto", *DIRECTIONS]
        for key, value in [("metric", ev.metric), *((f"metrics.{k}", v) for k, v in ev.metrics.items())]:
            if value not in allowed:
                raise ValueError(f"{key}: unknown metric {value!r} (allowed: {', '.join(allowed)})")
        unknown = [k for k in ev.metrics if k != "total" and k not in ev.tasks]
        if unknown:
            raise ValueError(f"metrics: {unknown} are neither tasks ({', '.join(ev.tasks)}) nor total")
        if ev.signal_model not in MODEL_NAMES:
            raise ValueError(
                f"signal_model: unknown model {ev.signal_model!r} (allowed: {', '.join(MODEL_NAMES)})"
            )
        return ev

    @model_validator(mode="after")
    def _pipeline_seed(self) -> PipelineConfig:
        """The pipeline's seed reaches what is random in fit and search (CV folds, models, simulation)
        unless their section sets its own."""
        if self.fit.seed is None:
            self.fit.seed = self.seed
        if self.search.seed is None:
            self.search.seed = self.seed
        return self

    @model_validator(mode="after")
    def _first_round(self) -> PipelineConfig:
        """``rounds.sizes[0]`` is the number of sampled mixtures of round 1 (it replaces ``mixtures.n``)."""
        if self.rounds.sizes and self.mixtures.n != self.rounds.sizes[0]:
            self.mixtures = self.mixtures.model_copy(update={"n": self.rounds.sizes[0]})
        return self

    def quick(self) -> PipelineConfig:
        """The same pipeline at smoke-test scale (``mixlab run --quick``): see :data:`QUICK_SCALE`."""
        return quick_config(self)

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        """Checks across sections, so that nothing fails hours later, after the proxy swarm."""
        problems = pipeline_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self


#: Suffixes that make a task spec a file (anything else with a "/" is a Hugging Face dataset id).
_TASK_FILE_SUFFIXES = (".jsonl", ".json", ".ndjson", ".parquet", ".yaml", ".yml", ".gz", ".zst")


def pipeline_problems(cfg: PipelineConfig) -> list[str]:
    """What is wrong across sections of ``cfg``: one ``dotted.key: message`` line per problem."""
    problems: list[str] = []
    tasks = cfg.evaluation.tasks
    if not tasks:
        problems.append("evaluation.tasks: at least one task is needed (name: FILE)")
    for name, spec in tasks.items():
        path = Path(spec)
        is_file = any(s in "".join(path.suffixes).lower() for s in _TASK_FILE_SUFFIXES) or path.exists()
        if (is_file or cfg.decontaminate or "/" not in spec) and not path.is_file():
            need = " (decontaminate: true needs task files)" if cfg.decontaminate and not is_file else ""
            problems.append(f"evaluation.tasks.{name}: task file {spec} does not exist{need}")
    for domain, spec in cfg.evaluation.validation.items():
        if not Path(spec).is_file():
            problems.append(f"evaluation.validation.{domain}: file {spec} does not exist")
    objectives = ["total", *tasks]
    if cfg.search.objective not in objectives:
        problems.append(
            f"search.objective: unknown objective {cfg.search.objective!r} (allowed: {', '.join(objectives)})"
        )
    if cfg.fit.targets:
        problems.append("fit.targets: a pipeline fits total and every task; targets are for `mixlab fit`")
    if cfg.mixtures.n < 3:
        problems.append(f"mixtures.n: the fit needs at least 3 proxy runs, got {cfg.mixtures.n}")
    problems += rounds_problems(cfg) + final_problems(cfg)
    return problems


def final_problems(cfg: PipelineConfig) -> list[str]:
    """The final run needs a model to adapt: refused only when ``final.enabled`` was set explicitly
    (otherwise a pipeline without a base model skips the final run with a log line)."""
    base = cfg.final.base_model or cfg.proxy.base_model
    if cfg.final.enabled and base is None and "enabled" in cfg.final.model_fields_set:
        return [
            "final.base_model: the final run adapts a base model; set final.base_model (or proxy.base_model)"
        ]
    return []


#: What ``--quick`` does to a pipeline (:func:`quick_config`): caps, never raises.
QUICK_SCALE: dict[str, int] = {
    "mixtures": 6,
    "repeats": 2,
    "later_rounds": 3,
    "proxy_steps": 20,
    "eval_items": 64,
    "search_samples": 20_000,
    "search_top_k": 64,
    "confirm_seeds": 2,
    "build_tokens": 1_000_000,
    "final_steps": 10,
    "final_batch": 4,
    "final_block": 256,
}


def quick_config(cfg: PipelineConfig) -> PipelineConfig:
    """``cfg`` at smoke-test scale, for a first run of a new pipeline file (``mixlab run FILE --quick``).

    Caps (a setting already smaller stays): at most 6 mixtures in round 1 and 3 in each later round,
    2 repeated mixtures, proxies of at most 20 steps, 64 items per task, 20,000 simulated mixtures (top
    64), confirmation with 2 seeds and no per-task arms, a final dataset of at most 1M tokens, and a
    final run of at most 10 steps of 4 blocks of 256 tokens. Everything else, the data and the models
    included, is the file's.
    """
    q = QUICK_SCALE
    raw = cfg.model_dump(mode="json", exclude_unset=False)
    sizes = raw["rounds"]["sizes"]
    if sizes:
        later = [min(n, q["later_rounds"]) for n in sizes[1:]]
        raw["rounds"]["sizes"] = [min(sizes[0], q["mixtures"]), *later]
    raw["mixtures"]["n"] = min(raw["mixtures"]["n"], q["mixtures"])
    raw["mixtures"]["repeats"] = min(raw["mixtures"]["repeats"], q["repeats"])
    proxy = raw["proxy"]
    proxy["max_steps"] = min(proxy["max_steps"] or q["proxy_steps"], q["proxy_steps"])
    ev = raw["evaluation"]
    ev["limit"] = min(ev["limit"] or q["eval_items"], q["eval_items"])
    raw["search"]["n_samples"] = min(raw["search"]["n_samples"], q["search_samples"])
    raw["search"]["top_k"] = min(raw["search"]["top_k"], q["search_top_k"])
    raw["confirm"]["seeds"] = min(raw["confirm"]["seeds"], q["confirm_seeds"])
    raw["confirm"]["per_task"] = False
    raw["build"]["budget_tokens"] = min(raw["build"]["budget_tokens"], q["build_tokens"])
    final = raw["final"]
    if "enabled" not in cfg.final.model_fields_set:  # still a default: no base model skips, not refuses
        final.pop("enabled")
    final["max_steps"] = min(final["max_steps"] or q["final_steps"], q["final_steps"])
    final["batch_size"] = min(final["batch_size"], q["final_batch"])
    final["block_size"] = min(final["block_size"], q["final_block"])
    return PipelineConfig.model_validate(raw)


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline YAML; errors name the file and the offending field."""
    path = Path(path)
    raw = load_yaml_mapping(path)
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: invalid pipeline config:"]
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"] if x != "[key]")
            msg = str(err["msg"]).removeprefix("Value error, ").replace("\n", "\n  ")
            lines.append(f"  {loc}: {msg}" if loc else f"  {msg}")
        raise ValueError("\n".join(lines)) from None
