"""quality stage: heuristic signals, perplexity, density, classifier score -> score, bucket, keep/reason."""

from mixlab.quality.buckets import per_domain_buckets
from mixlab.quality.config import FilterRule, QualityConfig
from mixlab.quality.heuristics import compute_signals
from mixlab.quality.stage import score_quality

__all__ = ["FilterRule", "QualityConfig", "compute_signals", "per_domain_buckets", "score_quality"]
