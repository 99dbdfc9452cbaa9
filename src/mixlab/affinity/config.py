"""Typed configuration of the task-affinity stage (``mixlab affinity``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mixlab.paths import safe_name


class AffinityConfig(BaseModel):
    """Task affinity of every document: DSIR importance weights of hashed n-gram models.

    For each task, a bag of hashed word n-grams is fitted on its items (prompt + correct
    choice) and one on a hash-sample of the pool (additive smoothing; the task model is interpolated with
    the pool model); a document's affinity to the task is ``log p_task(doc) - log p_pool(doc)`` (per
    n-gram when ``length_normalise``). See :mod:`mixlab.affinity.model`.
    """

    model_config = ConfigDict(extra="forbid")

    tasks: dict[str, str] = Field(
        default_factory=dict, description="task name -> ELMB JSONL or lm-eval YAML (the target distributions)"
    )
    n_features: int = Field(2**16, ge=2**8, le=2**24, description="hashed n-gram buckets of both models")
    ngram_max: int = Field(2, ge=1, le=3, description="longest token n-gram (2 = unigrams and bigrams)")
    max_chars: int = Field(20_000, ge=100, description="characters of a document read")
    tokens: Literal["words", "layout"] = Field(
        "words", description="hashed tokens: words only, or words plus newlines and punctuation marks"
    )
    smoothing: float = Field(0.1, gt=0, description="additive pseudo-count per bucket of the pool model")
    pool_weight: float = Field(
        0.5, gt=0, lt=1, description="share of the pool model interpolated into each task model"
    )
    background: int = Field(
        20_000, ge=10, description="pool documents (hash-sampled by id) that fit the pool model"
    )
    drop_template: bool = Field(
        True,
        description="weight 0 for n-grams of the prompt template (in half the items of two or more tasks)",
    )
    length_normalise: bool = Field(
        True,
        description=(
            "affinity per n-gram (mean log ratio) instead of DSIR's sum over the document, so long "
            "documents are not ranked first for their length"
        ),
    )
    prior_ngrams: float = Field(
        30.0,
        ge=0,
        description=(
            "length_normalise: shrink a document's mean toward the unseen-n-gram weight as if it had this many "
            "more n-grams (short fragments are not ranked first on a few lucky n-grams)"
        ),
    )
    combine: Literal["max", "mean"] = Field(
        "max",
        description="the `affinity` column: max or mean over tasks of the calibrated (robust z) affinities",
    )
    batch_docs: int = Field(2000, ge=1, description="documents hashed at a time")

    @field_validator("tasks")
    @classmethod
    def _check_tasks(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            safe_name(name, "task name")
            if name == "task":  # its column would be affinity_task, the best-task column
                raise ValueError("a task may not be called 'task'")
        return v
