"""select stage: deterministic hash-ranked selection at an exact token budget, exports and manifest."""

from mixlab.select.config import QualityPolicy, SelectConfig
from mixlab.select.export import export_selection
from mixlab.select.mixture_files import load_mixture_file, load_ratios_run
from mixlab.select.selection import Selection, select_documents

__all__ = [
    "QualityPolicy",
    "SelectConfig",
    "Selection",
    "export_selection",
    "load_mixture_file",
    "load_ratios_run",
    "select_documents",
]
