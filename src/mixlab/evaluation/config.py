"""Typed configuration of the evaluation stage (the ``evaluation`` section of the pipeline YAML)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class EvalConfig(BaseModel):
    """How proxy models are evaluated: multiple-choice tasks and per-domain held-out loss."""

    model_config = ConfigDict(extra="forbid")

    tasks: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "task name -> task spec: an ELMB JSONL/Parquet file, an lm-eval task YAML, or a Hugging Face "
            "dataset id (`owner/name[:config][@split]`, online only)"
        ),
    )
    batch_size: int = Field(
        32, ge=1, description="documents per forward pass (each document packs its context and all choices)"
    )
    device: str | None = Field(
        None, description="torch device (`cpu`, `cuda`, `cuda:1`); default: cuda if present"
    )
    limit: int | None = Field(None, ge=1, description="evaluate only the first N documents of each task")
    domain_data: dict[str, str] = Field(
        default_factory=dict,
        description="domain -> held-out JSONL file (one `text` per line) for validation loss / bits per byte",
    )
    block_size: int = Field(512, ge=2, description="tokens per window when scoring held-out domain text")
    loss_batch_size: int = Field(8, ge=1, description="windows per forward pass for the domain loss")
    max_docs_per_domain: int | None = Field(
        None, ge=1, description="score at most this many held-out documents per domain (the first ones)"
    )

    @field_validator("tasks", "domain_data")
    @classmethod
    def _names_are_clean(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not name or "/" in name or "," in name or "=" in name:
                raise ValueError(f"invalid name {name!r}: must be non-empty without '/', ',' or '='")
        return value
