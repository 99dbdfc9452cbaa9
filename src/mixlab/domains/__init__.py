"""domains stage: ordered YAML rules, hashed-n-gram and embedding classifiers, clusters -> attribute ``domains``."""

from mixlab.domains.config import DEFAULT_DOMAINS, ClusterConfig, PartitionConfig, load_partition_config
from mixlab.domains.partition import cluster_pool, partition_pool
from mixlab.domains.rules import RuleSet, load_rules

__all__ = [
    "DEFAULT_DOMAINS",
    "ClusterConfig",
    "PartitionConfig",
    "RuleSet",
    "cluster_pool",
    "load_partition_config",
    "load_rules",
    "partition_pool",
]
