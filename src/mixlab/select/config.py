"""Typed configuration of selection at a token budget (quality policy, repetition, exports)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mixlab.mixtures.config import PoolViewConfig, parse_tokens

ExportFormat = Literal["jsonl", "parquet", "lmflow"]


class QualityPolicy(BaseModel):
    """How a domain's quota is spread over quality buckets (``quality_bucket``: 0 = worst ... B-1 = best).

    - ``all``: every kept document of the domain is eligible, buckets ignored (natural proportions);
    - ``shares``: ``shares[b]`` of the domain's quota comes from bucket ``b`` (normalised; a bucket with
      share 0 or no share is never used; a bucket too small for its share passes the rest to the others
      in proportion to their shares, repeating documents only when the domain as a whole is short);
    - ``top_k_buckets``: only the ``k`` best buckets present in the pool, in natural proportions;
    - ``affinity``: every kept document is eligible, but a domain takes its documents in order of task
      affinity (attribute ``affinity``, from ``mixlab affinity``), highest first, instead of in hash order:
      by ``affinity_column``, by default ``affinity_<domain>`` when a task is named after the domain, else
      the combined ``affinity``;
    - ``affinity+quality``: the same, ranked by ``affinity_weight`` x the affinity's percentile rank within
      the domain + (1 - ``affinity_weight``) x the percentile rank of ``quality_score``.

    Shorthands accepted wherever a policy is: ``"all"``, ``{"top_k_buckets": 2}``, ``{"3": 0.5, "2": 0.3}``,
    ``"affinity"``, ``"affinity:affinity_rag"`` (a column), ``"affinity+quality"``, ``"affinity+quality:0.7"``
    (a weight).
    """

    model_config = ConfigDict(extra="forbid")

    mode: Literal["all", "shares", "top_k_buckets", "affinity", "affinity+quality"] = Field(
        "all", description="policy kind (see class doc)"
    )
    shares: dict[int, float] | None = Field(
        None, description="bucket -> share of the domain quota (mode shares)"
    )
    k: int | None = Field(None, ge=1, description="number of best buckets kept (mode top_k_buckets)")
    affinity_column: str | None = Field(
        None,
        description=(
            "affinity modes: column of the `affinity` attribute to rank by (default: affinity_<domain> when "
            "that column exists, else affinity)"
        ),
    )
    affinity_weight: float | None = Field(
        None, ge=0, le=1, description="affinity+quality: weight of the affinity rank (default 0.5)"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text in ("all", "shares", "top_k_buckets", "affinity", "affinity+quality"):
                return {"mode": text}
            if text.startswith("affinity+quality:"):
                return {"mode": "affinity+quality", "affinity_weight": float(text.partition(":")[2])}
            if text.startswith("affinity:"):
                return {"mode": "affinity", "affinity_column": text.partition(":")[2].strip()}
            if text.startswith(("top_k_buckets:", "top")):
                _, _, k = text.partition(":")
                return {"mode": "top_k_buckets", "k": int(k or text.removeprefix("top"))}
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"quality policy {value!r} is neither a name nor JSON: {exc.msg}") from exc
        if isinstance(value, dict) and value and "mode" not in value:
            if "top_k_buckets" in value:
                return {"mode": "top_k_buckets", "k": value["top_k_buckets"]}
            if "shares" in value:
                return {"mode": "shares", "shares": value["shares"]}
            return {"mode": "shares", "shares": value}
        return value

    @model_validator(mode="after")
    def _check(self) -> QualityPolicy:
        if self.mode == "shares":
            if not self.shares:
                raise ValueError("quality policy 'shares' needs a non-empty {bucket: share} mapping")
            if any(v < 0 for v in self.shares.values()):
                raise ValueError(f"quality shares must be non-negative: {self.shares}")
            if sum(self.shares.values()) <= 0:
                raise ValueError(f"quality shares sum to zero: {self.shares}")
        if self.mode == "top_k_buckets" and self.k is None:
            raise ValueError("quality policy 'top_k_buckets' needs k")
        if not self.mode.startswith("affinity") and (
            self.affinity_column is not None or self.affinity_weight is not None
        ):
            raise ValueError(
                f"affinity_column/affinity_weight apply to the affinity modes, not {self.mode!r}"
            )
        if self.mode == "affinity" and self.affinity_weight is not None:
            raise ValueError("affinity_weight applies to mode 'affinity+quality'")
        return self

    @property
    def ranked(self) -> bool:
        """Whether documents are taken in order of a score (the affinity modes) instead of hash order."""
        return self.mode.startswith("affinity")

    def normalised_shares(self) -> dict[int, float]:
        """Positive shares summing to 1, best bucket first (mode shares only)."""
        assert self.shares is not None
        total = sum(self.shares.values())
        return {b: s / total for b, s in sorted(self.shares.items(), reverse=True) if s > 0}


class SelectConfig(PoolViewConfig):
    """Selection of documents for one mixture at an exact token budget."""

    budget_tokens: int = Field(..., gt=0, description="tokens to select (training tokenizer counts)")
    seed: int = Field(0, description="key of the hashes that rank, assign and order documents")
    quality_policy: QualityPolicy = Field(
        default_factory=QualityPolicy, description="spread over quality buckets"
    )
    max_epochs: float = Field(
        4.0, ge=1.0, description="a domain's quota may repeat its eligible tokens at most this many times"
    )
    shortfall: Literal["error", "redistribute"] = Field(
        "error",
        description=(
            "what to do when a domain holds less than its quota even with max_epochs repetition: `error`, or "
            "`redistribute` the shortfall to the other domains in proportion to their weights (in the manifest)"
        ),
    )
    formats: list[ExportFormat] = Field(
        default_factory=lambda: ["jsonl"], description="exports to write: jsonl, parquet, lmflow"
    )
    shuffle_bucket_chars: int = Field(
        50_000_000,
        gt=0,
        description=(
            "export spills the shuffled stream into parts of about this many characters of text (export holds "
            "one part in memory; the files do not depend on it)"
        ),
    )

    @field_validator("budget_tokens", mode="before")
    @classmethod
    def _budget(cls, value: Any) -> Any:
        return parse_tokens(value) if isinstance(value, str) else value

    @field_validator("formats", mode="before")
    @classmethod
    def _formats(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value
