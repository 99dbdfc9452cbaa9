"""Typed configuration of the mixtures stage (and the pool view it shares with selection)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class PoolViewConfig(BaseModel):
    """How documents of a pool are seen by mixture sampling and selection: their domain and exclusions.

    Shared by :class:`MixtureConfig` and ``mixlab.select.SelectConfig`` so that the token prior, the
    availability caps and the final selection all count the same documents.
    """

    model_config = ConfigDict(extra="forbid")

    domain_attr: str = Field("domains", description="attribute holding `domain` and `p_<domain>` columns")
    domain_from: Literal["auto", "attr", "source"] = Field(
        "auto",
        description=(
            "where a document's domain comes from: `attr` (the domain attribute, required), `source` "
            "(the document's source, mapped through `source_map`), `auto` (the attribute when the pool "
            "has it, else the source)"
        ),
    )
    source_map: dict[str, str] | None = Field(
        None,
        description=(
            "source -> domain, used when domains come from sources; sources missing from the map are "
            "excluded and counted as `unmapped_source`. Without a map each source is its own domain"
        ),
    )
    soft_labels: bool = Field(
        False,
        description=(
            "assign each document to one domain by a keyed hash draw from its `p_<domain>` probabilities "
            "(deterministic per (id, seed)) instead of its hard `domain` label"
        ),
    )
    exclude_low_quality: bool = Field(
        True, description="exclude quality_keep == False (when `quality` exists)"
    )
    exclude_duplicates: bool = Field(True, description="exclude dup_keep == False (when `dedup` exists)")
    exclude_contaminated: bool = Field(
        True, description="exclude contaminated == True (when `decontam` exists)"
    )


class MixtureConfig(PoolViewConfig):
    """RegMix-style sampling of candidate mixtures around the token prior."""

    n: int = Field(
        64,
        ge=1,
        description="number of distinct candidate mixtures, prior/uniform included (`repeats` add rows)",
    )
    seed: int = Field(0, description="seed of the Dirichlet sampler (same seed => same ratios.csv)")
    concentrations: list[float] = Field(
        default_factory=lambda: [0.1, 0.3, 1.0, 3.0, 10.0],
        description=(
            "Dirichlet concentration scales, cycled over rows: alpha_d = c * D * prior_d (D domains), so "
            "small c gives sparse, extreme mixtures and large c mixtures close to the prior"
        ),
    )
    min_weight: float = Field(
        0.01, ge=0.0, lt=1.0, description="a domain's weight is either exactly 0 or at least this"
    )
    max_epochs: float = Field(
        4.0, ge=1.0, description="at most this many passes over a domain's available tokens"
    )
    budget_tokens: int | None = Field(
        None, gt=0, description="token budget the mixtures will be built at; enables the availability caps"
    )
    include_prior: bool = Field(
        True, description="make the first rows the (capped) token prior and uniform mixture"
    )
    domains: list[str] | None = Field(
        None, description="domains (columns) to mix, in order; default: every domain of the pool, sorted"
    )
    repeats: int = Field(
        3,
        ge=0,
        description=(
            "how many of the mixtures are trained again with other seeds (selection and training), as "
            "extra rows `<run>-seed<k>` with identical weights: they measure each metric's noise, so "
            "`mixlab signal` and the trust verdicts can compare it with the spread across mixtures"
        ),
    )
    repeat_seeds: int = Field(1, ge=1, description="extra seeds per repeated mixture")

    @field_validator("concentrations")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if not value or any(c <= 0 for c in value):
            raise ValueError("concentrations must be a non-empty list of positive numbers")
        return value


_SUFFIXES = {"k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}


def parse_tokens(text: str | int) -> int:
    """A token count from ``"10B"``, ``"500M"``, ``"200k"``, ``"1e6"`` or ``"12345"`` (positive integer)."""
    if isinstance(text, int):
        value = text
    else:
        s = str(text).strip().replace("_", "").replace(",", "")
        mult = _SUFFIXES.get(s[-1:].lower(), 1) if s else 1
        if mult != 1:
            s = s[:-1]
        try:
            value = round(float(s) * mult)
        except ValueError:
            raise ValueError(f"not a token count: {text!r} (use e.g. 10B, 500M, 200k or 12345)") from None
    if value <= 0:
        raise ValueError(f"a token budget must be positive, got {text!r}")
    return value


def load_section(path: str, section: str) -> dict:
    """Read YAML ``path`` (``yaml.safe_load``) and return its ``section`` mapping, or the whole mapping."""
    from mixlab.yamlconfig import load_section as _load

    return _load(path, section)
