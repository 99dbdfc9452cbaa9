"""dedup stage: exact / near-duplicate clusters (attribute ``dedup``) and decontamination against
evaluation tasks (attribute ``decontam``).

Public API: :class:`DedupConfig`, :class:`DecontamConfig`, :func:`dedup_pool`, :func:`decontaminate_pool`
(imported lazily so that ``mixlab --help`` does not load numpy/scipy/datasketch).
"""

from __future__ import annotations

from typing import Any

__all__ = ["DecontamConfig", "DedupConfig", "decontaminate_pool", "dedup_pool"]


def __getattr__(name: str) -> Any:
    if name in ("DecontamConfig", "DedupConfig"):
        from mixlab.dedup import config

        return getattr(config, name)
    if name in ("decontaminate_pool", "dedup_pool"):
        from mixlab.dedup import stage

        return getattr(stage, name)
    raise AttributeError(f"module 'mixlab.dedup' has no attribute {name!r}")
