"""Typed configuration of the evaluation stage: the ``evaluation`` section of the pipeline YAML, and what
``mixlab eval`` / ``mixlab domain-loss`` read with ``--config``. One model for both."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from mixlab.paths import safe_name


def _name(what: str) -> AfterValidator:
    def check(name: str) -> str:
        try:
            safe_name(name, what)
        except ValueError as exc:
            raise ValueError(f"invalid name: {exc}") from None
        if "," in name or "=" in name:
            raise ValueError(
                f"invalid name: {what} {name!r} contains ',' or '=' (NAME=SPEC lists split on them)"
            )
        return name

    return AfterValidator(check)


TaskName = Annotated[str, _name("task name")]
DomainName = Annotated[str, _name("domain name")]


class EvalConfig(BaseModel):
    """How proxy models are evaluated: multiple-choice tasks and per-domain held-out loss."""

    model_config = ConfigDict(extra="forbid")

    tasks: dict[TaskName, str] = Field(
        default_factory=dict,
        description=(
            "task name -> task spec: an ELMB JSONL/Parquet file, an lm-eval task YAML, or a Hugging Face "
            "dataset id (`owner/name[:config][@split]`, online only)"
        ),
    )
    validation: dict[DomainName, str] = Field(
        default_factory=dict,
        description="domain -> JSONL of held-out documents (one `text` per line) for per-domain loss",
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
    batch_size: int = Field(
        32, ge=1, description="documents per forward pass (each document packs its context and all choices)"
    )
    limit: int | None = Field(None, ge=1, description="score only the first N documents of each task")
    device: str | None = Field(
        None, description="torch device (`cpu`, `cuda`, `cuda:1`); default: cuda if present"
    )
    block_size: int = Field(256, ge=2, description="tokens per window when scoring held-out domain text")
    loss_batch_size: int = Field(8, ge=1, description="windows per forward pass for the domain loss")
    max_docs_per_domain: int | None = Field(
        None, ge=1, description="score at most this many held-out documents per domain (the first ones)"
    )
