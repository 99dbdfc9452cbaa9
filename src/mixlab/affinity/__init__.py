"""Task affinity: DSIR importance weights of every document to each target task (attribute ``affinity``)."""

from mixlab.affinity.config import AffinityConfig
from mixlab.affinity.model import DsirAffinityModel
from mixlab.affinity.stage import affinity_by_domain, affinity_pool, cluster_task_table

__all__ = ["AffinityConfig", "DsirAffinityModel", "affinity_by_domain", "affinity_pool", "cluster_task_table"]
