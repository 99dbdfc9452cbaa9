"""Typed configuration of ingestion (the ``ingest`` section of the pipeline YAML, ``mixlab ingest``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class IngestConfig(BaseModel):
    """How input files become the pool's text shards."""

    model_config = ConfigDict(extra="forbid")

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
