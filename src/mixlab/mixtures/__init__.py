"""mixtures stage: RegMix-style candidate mixtures around the token prior, written as ``ratios.csv``."""

from mixlab.mixtures.config import MixtureConfig, PoolViewConfig, parse_tokens
from mixlab.mixtures.sampler import available_tokens, sample_mixtures, token_prior

__all__ = [
    "MixtureConfig",
    "PoolViewConfig",
    "available_tokens",
    "parse_tokens",
    "sample_mixtures",
    "token_prior",
]
