"""Typed configuration of the quality stage (``quality:`` section of the pipeline YAML)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mixlab.yamlconfig import load_section


class FilterRule(BaseModel):
    """One threshold on one signal; a document failing it is filtered with reason ``name``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="reason written to quality_reason when a document fails this rule")
    signal: str = Field(description="signal column (q_*), or 'perplexity' / 'density' / 'classifier'")
    min: float | None = Field(default=None, description="fail when the signal is below this value")
    max: float | None = Field(default=None, description="fail when the signal is above this value")
    only_if: dict[str, tuple[float | None, float | None]] = Field(
        default_factory=dict,
        description="the rule applies only where each named signal lies in [low, high] (None = open)",
    )
    enabled: bool = Field(default=True, description="switch the rule off without deleting it")

    @model_validator(mode="after")
    def _has_bound(self) -> FilterRule:
        if self.min is None and self.max is None:
            raise ValueError(f"filter rule {self.name!r} needs min or max")
        return self


def default_rules() -> list[FilterRule]:
    """Gopher / C4 / FineWeb-style rules, with thresholds that keep dictionaries, code and dialogue.

    The paper values (Gopher: >= 50 words, 2 stop words, mean word length 3..10, 5-gram dup <= 0.15;
    C4: no '{'; FineWeb: line punctuation >= 0.12) drop most dictionary entries, code and
    function-calling data, which are target domains here; the defaults below keep the same signals but
    move thresholds to where text is clearly broken (measured on ../shared/data/corpus, see
    bench/noise_recall.py). Order matters: a document's reason is the first rule it fails.
    """
    r = FilterRule
    return [
        r(name="short_fragment", signal="q_n_words", min=10, only_if={"q_n_lines": (None, 1)}),
        r(name="gopher_short_doc", signal="q_n_words", min=3),
        r(name="gopher_repetition_10gram", signal="q_dup_10gram_frac", max=0.5),
        r(
            name="gopher_repetition_top_2gram",
            signal="q_top_2gram_frac",
            max=0.3,
            only_if={"q_n_words": (50, None)},
        ),
        r(
            name="gopher_dup_line_chars",
            signal="q_dup_line_char_frac",
            max=0.5,
            only_if={"q_n_lines": (4, None)},
        ),
        r(
            name="boilerplate_lines",
            signal="q_boilerplate_line_frac",
            max=0.4,
            only_if={"q_n_lines": (3, None)},
        ),
        r(name="navigation_lines", signal="q_nav_line_frac", max=0.3, only_if={"q_n_lines": (3, None)}),
        r(name="junk_words", signal="q_junk_word_frac", max=0.2),
        r(name="no_vowel_words", signal="q_no_vowel_word_frac", max=0.25, only_if={"q_n_words": (10, None)}),
        r(name="gopher_stop_words", signal="q_stopwords", min=1, only_if={"q_n_words": (50, None)}),
        r(
            name="chars_per_token",
            signal="q_chars_per_token",
            min=1.9,
            only_if={"q_stopword_frac": (None, 0.05)},
        ),
        r(name="gopher_mean_word_len", signal="q_mean_word_len", max=20),
        r(name="gopher_alpha_words", signal="q_alpha_word_frac", min=0.5),
        r(name="gopher_bullet_lines", signal="q_bullet_line_frac", max=0.9, only_if={"q_n_lines": (3, None)}),
        r(
            name="gopher_ellipsis_lines",
            signal="q_ellipsis_line_frac",
            max=0.3,
            only_if={"q_n_lines": (3, None)},
        ),
        r(name="c4_lorem_ipsum", signal="q_lorem_ipsum", max=0),
        r(name="c4_curly_bracket", signal="q_curly_brackets", max=0, enabled=False),
        r(name="fineweb_line_punct", signal="q_line_punct_frac", min=0.12, enabled=False),
    ]


def default_weights() -> dict[str, float]:
    """Score weights: positive = higher is better, negative = lower is better (on percentile ranks)."""
    return {
        "q_stopword_frac": 1.0,
        "q_line_punct_frac": 0.5,
        "q_alpha_word_frac": 0.5,
        "q_chars_per_token": 0.5,
        "q_dup_5gram_frac": -1.0,
        "q_boilerplate_line_frac": -1.0,
        "q_junk_word_frac": -1.0,
    }


class PerplexityPolicy(BaseModel):
    """How the ``perplexity`` attribute (from ``mixlab perplexity``) filters documents."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=False, description="use the perplexity attribute (must exist) to filter")
    keep: Literal["low", "middle"] = Field(
        default="low", description="'low': drop the high tail; 'middle': drop both tails (the U-shape idea)"
    )
    low_quantile: float = Field(
        default=0.05, ge=0, le=1, description="'middle': drop below this per-domain quantile"
    )
    high_quantile: float = Field(default=0.95, ge=0, le=1, description="drop above this per-domain quantile")


class DensityPolicy(BaseModel):
    """How the ``density`` attribute (from ``mixlab density``) flags outliers."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=False, description="use the density attribute (must exist) to filter")
    max_quantile: float = Field(
        default=0.99, ge=0, le=1, description="drop k-NN distances above this quantile"
    )


class ClassifierSettings(BaseModel):
    """A DCLM/PreSelect-style quality classifier: target-like documents vs random pool documents."""

    model_config = ConfigDict(extra="forbid")

    positive: list[str] = Field(
        default_factory=list,
        description="JSONL files of positive examples (e.g. the target tasks); empty = no classifier",
    )
    text_fields: list[str] = Field(
        default_factory=lambda: ["text", "ctx", "question", "correct_answer_content"],
        description="fields joined (in this order, when present) into a positive example's text",
    )
    n_negative: int = Field(default=5000, ge=1, description="random pool documents used as negatives")
    n_features: int = Field(default=2**18, ge=1024, description="hashed n-gram feature space size")
    ngram_max: int = Field(default=2, ge=1, le=5, description="word n-grams 1..ngram_max")
    C: float = Field(default=1.0, gt=0, description="inverse regularisation of the logistic regression")
    seed: int = Field(default=0, description="seed for the negative sample")


class QualityConfig(BaseModel):
    """Settings of the quality stage."""

    model_config = ConfigDict(extra="forbid")

    filters: list[FilterRule] = Field(default_factory=default_rules, description="threshold rules, in order")
    n_buckets: int = Field(default=5, ge=1, le=100, description="quality buckets per domain (quantiles)")
    score_weights: dict[str, float] = Field(
        default_factory=default_weights,
        description="signal -> weight on its percentile rank (negative: lower is better); may name "
        "'perplexity', 'density' or 'classifier' when those are available",
    )
    perplexity: PerplexityPolicy = Field(default_factory=PerplexityPolicy, description="perplexity filter")
    density: DensityPolicy = Field(default_factory=DensityPolicy, description="embedding-density filter")
    classifier: ClassifierSettings = Field(
        default_factory=ClassifierSettings, description="quality classifier"
    )
    batch_docs: int = Field(default=4096, ge=1, description="documents per vectorized signal batch")
    domain_attr: str = Field(default="domains", description="attribute holding the per-document domain label")

    @classmethod
    def from_yaml(cls, path: str | Path) -> QualityConfig:
        """Load a YAML file holding either the quality section itself or a pipeline with ``quality:``."""
        data = load_section(path, "quality")
        try:
            return cls.model_validate(data)
        except Exception as exc:
            raise ValueError(f"{path}: invalid quality config: {exc}") from exc
