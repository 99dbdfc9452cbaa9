"""Typed configuration of the dedup and decontam stages (the ``dedup`` / ``decontam`` YAML sections)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Normalisation = Literal["none", "whitespace", "lower", "words"]
"""How text is normalised before exact hashing: ``none`` (raw text), ``whitespace`` (runs of whitespace
collapsed, ends stripped), ``lower`` (also Unicode NFKC + case-folded) or ``words`` (also punctuation
stripped: only the word sequence counts)."""


class DedupConfig(BaseModel):
    """Exact and near-duplicate detection (MinHash LSH over word shingles)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    normalisation: Normalisation = Field(
        "lower",
        description="Normalisation before the exact hash: none | whitespace | lower (NFKC, case-folded, "
        "whitespace collapsed) | words (also punctuation stripped).",
    )
    near: bool = Field(True, description="Also find near duplicates with MinHash LSH (else exact only).")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations (signature length).")
    threshold: float = Field(
        0.4,
        gt=0.0,
        le=1.0,
        description="Jaccard similarity of word-shingle sets at or above which two documents are near "
        "duplicates (estimated from the signatures; LSH bands are tuned to this threshold). Low on purpose: "
        "a few words replaced in a ~100-word document (the planted near duplicates of the shared corpus) "
        "give 5-gram Jaccard 0.24-1.0, median 0.69; 0.8 (the web-scale usual) finds only 20% of them.",
    )
    shingle_n: int = Field(
        5, ge=1, le=32, description="Words per shingle (documents shorter use one shingle)."
    )
    min_words: int = Field(
        10,
        ge=1,
        description="Documents with fewer words take part in exact dedup only (too short for MinHash).",
    )
    seed: int = Field(0, description="Seed of the MinHash permutations (signatures depend on it).")
    representative: Literal["first", "quality", "longest"] = Field(
        "quality",
        description="Which member of a cluster is kept: first (earliest in pool order), quality (highest "
        "quality_score of the 'quality' attribute, falling back to pool order when the attribute is "
        "missing) or longest (most characters). Ties always go to the earliest in pool order.",
    )
    batch_docs: int = Field(512, ge=1, description="Documents per vectorised MinHash batch.")


class DecontamConfig(BaseModel):
    """Decontamination: word n-gram overlap between documents and evaluation task items."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: dict[str, Path] = Field(
        default_factory=dict,
        description="Task name -> ELMB JSONL/Parquet file or lm-eval task YAML, loaded by the evaluation's task "
        "loader (a pipeline YAML's evaluation.tasks when not given).",
    )
    n: int = Field(13, ge=3, le=64, description="Words per n-gram (GPT-3 used 13).")
    min_overlap: int = Field(
        1,
        ge=1,
        description="A document is contaminated only if it shares at least this many distinct n-grams (or "
        "whole short fields) with one field of one task item.",
    )
    min_coverage: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="... and those n-grams cover at least this fraction of the field's words (Llama 2 "
        "counted an item 'not clean' above 80%). 0 gives the GPT-3 rule: any shared n-gram flags.",
    )
    fields: tuple[str, ...] = Field(
        ("question", "ctx", "answer"),
        description="Task item fields indexed: question, ctx and answer (the correct choice's text, indexed "
        "joined to the end of its question, never alone); 'choices' adds every choice on its own.",
    )
    min_short_words: int = Field(
        8,
        ge=1,
        description="A field shorter than n words is matched as a whole word sequence only when it has at "
        "least this many words; shorter fields (e.g. the choice '2.0') are never matched on their own.",
    )
    max_items_per_ngram: int = Field(
        20,
        ge=1,
        description="N-grams shared by more task items than this are prompt templates ('Given the following "
        "function ...'), not content, and are not indexed.",
    )

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(value) - {"question", "ctx", "answer", "choices"}
        if unknown:
            raise ValueError(f"unknown task fields {sorted(unknown)}; use question, ctx, answer, choices")
        return value
