"""Entry points the pipeline calls: search every objective and write ``optimal.json``."""

from mixlab.search.objectives import search_all, write_optimal

__all__ = ["search_all", "write_optimal"]
