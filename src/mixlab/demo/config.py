"""Typed settings of the demo world (the ``demo`` section of a pipeline YAML)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DemoConfig(BaseModel):
    """How to generate the embedded demo world and its tokenizer."""

    model_config = ConfigDict(extra="forbid")

    n_docs: int = Field(12000, ge=60, description="Corpus documents over all six files, noise included.")
    n_task_items: int = Field(200, ge=1, description="Items per task file (four task files).")
    seed: int = Field(0, description="Seed of the world: same seed gives byte-identical files.")
    vocab_size: int = Field(2048, ge=300, description="Vocabulary size of the demo byte-level BPE tokenizer.")
