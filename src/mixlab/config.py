"""Typed models of the pipeline YAML (``mixlab run CONFIG.yaml``).

Each stage owns its own config model (``<stage>/config.py``); this module composes them into one
pipeline document and adds the sections only the pipeline needs (inputs, evaluation, fit, search,
build, confirmation). YAML is read with ``yaml.safe_load`` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mixlab.dedup.config import DedupConfig
from mixlab.domains.config import PartitionConfig
from mixlab.mixtures.config import MixtureConfig
from mixlab.proxies.config import ProxyConfig
from mixlab.quality.config import QualityConfig
from mixlab.select.config import SelectConfig
from mixlab.yamlconfig import load_yaml_mapping


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestSection(_Strict):
    inputs: list[str] = Field(
        description="input files or folders (JSONL[.gz|.zst], Parquet, LMFlow, HF, ClimbLab)"
    )
    tokenizer: str = Field(description="the training tokenizer: folder, tokenizer.json, .model or hub name")
    shard_docs: int = Field(10_000, description="documents per pool shard")
    max_chars: int = Field(1_000_000, description="quarantine documents longer than this")
    text_field: str = Field("text", description="name of the text field")
    decode_tokenizer: str | None = Field(None, description="tokenizer that decodes ClimbLab token ids")


class EvaluationSection(_Strict):
    tasks: dict[str, str] = Field(description="task name -> ELMB JSONL/Parquet file or lm-eval YAML")
    validation: dict[str, str] = Field(
        default_factory=dict, description="domain -> JSONL of held-out documents for per-domain loss"
    )
    metric: Literal["acc", "acc_norm"] = Field("acc", description="task metric the regressors optimise")
    batch_size: int = Field(32, description="multiple-choice scoring batch size")
    limit: int | None = Field(None, description="score only the first N items of each task")
    block_size: int = Field(256, description="context length for per-domain loss")
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
    cv_folds: int = Field(5, description="cross-validation folds")


class SearchSection(_Strict):
    method: Literal["topk", "constrained"] = Field(
        "topk", description="RegMix top-k simulation or constrained"
    )
    n_samples: int = Field(100_000, description="simulated mixtures")
    top_k: int = Field(128, description="average the k best predicted mixtures")
    objective: str = Field(
        "total", description="objective whose optimum builds the dataset: total or a task name"
    )
    kl_weight: float = Field(0.0, description="pull toward the prior (constrained search)")
    min_weight: float = Field(0.0, description="lower bound of every domain's weight")
    max_weight: float = Field(1.0, description="upper bound of every domain's weight")


class BuildSection(_Strict):
    budget_tokens: int = Field(description="token budget of the final dataset")
    formats: list[Literal["jsonl", "parquet", "lmflow"]] = Field(default_factory=lambda: ["jsonl"])


class ConfirmSection(_Strict):
    enabled: bool = Field(True, description="train confirmation proxies on the optimum and baselines")
    baselines: list[Literal["natural", "uniform"]] = Field(default_factory=lambda: ["natural", "uniform"])


class PipelineConfig(_Strict):
    """The whole loop, one section per stage."""

    workdir: str = Field(description="folder for every artefact of the run")
    seed: int = Field(0, description="seed for sampling, selection and training")
    workers: int = Field(1, description="processes for shard stages and proxy runs")
    ingest: IngestSection
    partition: PartitionConfig = Field(default_factory=PartitionConfig)
    quality: QualityConfig | None = Field(default_factory=QualityConfig)
    dedup: DedupConfig | None = Field(default_factory=DedupConfig)
    decontaminate: bool = Field(True, description="flag and exclude documents overlapping the tasks")
    mixtures: MixtureConfig
    select: SelectConfig
    proxy: ProxyConfig
    evaluation: EvaluationSection
    fit: FitSection = Field(default_factory=FitSection)
    search: SearchSection = Field(default_factory=SearchSection)
    build: BuildSection
    confirm: ConfirmSection = Field(default_factory=ConfirmSection)


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
            lines.append(f"  {loc}: {err['msg']}")
        raise ValueError("\n".join(lines)) from None
