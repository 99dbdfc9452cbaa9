"""The final run: DoRA continued pretraining of the base model on the built dataset, merged, and scored
before and after on every task (S = after - before). See :mod:`mixlab.final.stage`."""

from mixlab.final.config import FinalConfig
from mixlab.final.stage import FINAL_DIR, final_paths, read_final, run_final, skip_final

__all__ = ["FINAL_DIR", "FinalConfig", "final_paths", "read_final", "run_final", "skip_final"]
