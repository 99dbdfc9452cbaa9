"""Typed models of the pipeline YAML (``mixlab run CONFIG.yaml``).

Each stage owns its own config model (``<stage>/config.py``); this module composes them into one
pipeline document and adds the sections only the pipeline needs (inputs, evaluation, fit, search,
build, confirmation). YAML is read with ``yaml.safe_load`` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mixlab.dedup.config import DedupConfig
from mixlab.domains.config import PartitionConfig
from mixlab.mixtures.config import MixtureConfig
from mixlab.proxies.config import ProxyConfig
from mixlab.quality.config import QualityConfig
from mixlab.routes import ProxiesSection
from mixlab.search.trust import TrustConfig
from mixlab.select.config import SelectConfig
from mixlab.yamlconfig import load_yaml_mapping


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestSection(_Strict):
    inputs: list[str] = Field(
        description="input files or folders (JSONL[.gz|.zst], Parquet, LMFlow, HF, ClimbLab)"
    )
    tokenizer: str = Field(description="the training tokenizer: folder, tokenizer.json, .model or hub name")
    shard_docs: int = Field(10_000, ge=1, description="documents per pool shard")
    max_chars: int = Field(1_000_000, ge=1, description="quarantine documents longer than this")
    text_field: str = Field("text", description="name of the text field")
    decode_tokenizer: str | None = Field(None, description="tokenizer that decodes ClimbLab token ids")
    on_error: Literal["quarantine", "fail"] = Field(
        "quarantine", description="a bad record or input file: quarantine it and go on, or fail"
    )


class EvaluationSection(_Strict):
    tasks: dict[str, str] = Field(description="task name -> ELMB JSONL/Parquet file or lm-eval YAML")
    validation: dict[str, str] = Field(
        default_factory=dict, description="domain -> JSONL of held-out documents for per-domain loss"
    )
    metric: str = Field(
        "auto",
        description=(
            "task metric the regressors optimise: auto (per objective, the metric with the best evidence: "
            "out-of-fold Spearman among metrics whose signal-to-noise passes) or one of acc, acc_norm, "
            "acc_bytes, gold_bpb, correct_prob, margin"
        ),
    )
    metrics: dict[str, str] = Field(
        default_factory=dict,
        description="per objective (a task name or total) a metric that overrides `metric`",
    )
    signal_model: str = Field("gp", description="regressor of the out-of-fold Spearman that ranks metrics")
    batch_size: int = Field(32, ge=1, description="multiple-choice scoring batch size")
    limit: int | None = Field(None, ge=1, description="score only the first N items of each task")
    block_size: int = Field(256, ge=1, description="context length for per-domain loss")
    max_docs_per_domain: int | None = Field(
        None, description="score at most this many validation documents per domain"
    )


class FitSection(_Strict):
    model: str = Field(
        "auto",
        description=(
            "regressor: auto (chosen by CV) | linear | ridge | log_ridge | lightgbm | lightgbm_tuned | "
            "mixing_law | gp | bootstrap | stack"
        ),
    )
    cv_folds: int = Field(5, ge=2, description="cross-validation folds")

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        from mixlab.regression.models import MODEL_NAMES

        if model not in MODEL_NAMES:
            raise ValueError(f"unknown model {model!r} (allowed: {', '.join(MODEL_NAMES)})")
        return model


class SearchSection(_Strict):
    method: Literal["topk", "constrained"] = Field(
        "topk", description="RegMix top-k simulation or constrained"
    )
    n_samples: int = Field(100_000, ge=1, description="simulated mixtures")
    top_k: int = Field(128, ge=1, description="average the k best predicted mixtures")
    objective: str = Field(
        "total", description="objective whose optimum builds the dataset: total or a task name"
    )
    kl_weight: float = Field(0.0, ge=0, description="pull toward the prior (constrained search)")
    min_weight: float = Field(0.0, ge=0, le=1, description="lower bound of every domain's weight")
    max_weight: float = Field(1.0, gt=0, le=1, description="upper bound of every domain's weight")

    @model_validator(mode="after")
    def _bounds_in_order(self) -> SearchSection:
        if self.min_weight > self.max_weight:
            raise ValueError(f"min_weight {self.min_weight} is above max_weight {self.max_weight}")
        return self


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
    ingest: IngestSection
    partition: PartitionConfig = Field(default_factory=PartitionConfig)
    quality: QualityConfig | None = Field(default_factory=QualityConfig)
    dedup: DedupConfig | None = Field(default_factory=DedupConfig)
    decontaminate: bool = Field(True, description="flag and exclude documents overlapping the tasks")
    mixtures: MixtureConfig
    select: SelectConfig
    proxy: ProxyConfig
    proxies: ProxiesSection = Field(default_factory=ProxiesSection)
    evaluation: EvaluationSection
    fit: FitSection = Field(default_factory=FitSection)
    search: SearchSection = Field(default_factory=SearchSection)
    build: BuildSection
    confirm: ConfirmSection = Field(default_factory=ConfirmSection)
    trust: TrustConfig = Field(default_factory=TrustConfig)

    @field_validator("evaluation")
    @classmethod
    def _known_metrics(cls, ev: EvaluationSection) -> EvaluationSection:
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
    from mixlab.paths import safe_name

    problems: list[str] = []
    tasks = cfg.evaluation.tasks
    if not tasks:
        problems.append("evaluation.tasks: at least one task is needed (name: FILE)")
    for name, spec in tasks.items():
        try:
            safe_name(name, "task name")
        except ValueError as exc:
            problems.append(f"evaluation.tasks.{name}: {exc}")
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
    if cfg.mixtures.n < 3:
        problems.append(f"mixtures.n: the fit needs at least 3 proxy runs, got {cfg.mixtures.n}")
    return problems


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline YAML; errors name the file and the offending field."""
    path = Path(path)
    raw = load_yaml_mapping(path)
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: invalid pipeline config:"]
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ").replace("\n", "\n  ")
            lines.append(f"  {loc}: {msg}" if loc else f"  {msg}")
        raise ValueError("\n".join(lines)) from None
