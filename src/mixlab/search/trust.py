"""Trust verdicts: can the swarm rank mixtures for an objective, so that its optimum means something?

An optimum is only as good as the predictor behind it. Two numbers decide:

* the out-of-fold Spearman of the objective's fitted regressor: can it rank mixtures it has not seen?
  Working mixture predictors report 0.81-0.94 (CLIMB, Olmix, DeMix), so the default threshold is 0.8;
* the metric's signal-to-noise ratio (spread across mixtures / spread across seeds of one mixture): below
  1, two trainings of one mixture differ as much as two mixtures do. Not measured without repeats; an
  unmeasured SNR does not fail the verdict, but the verdict says it was not measured.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TrustConfig", "Verdict", "judge"]


class TrustConfig(BaseModel):
    """Thresholds of the trust verdict and what the pipeline may build from an untrusted optimum."""

    model_config = ConfigDict(extra="forbid")

    min_oof_spearman: float = Field(
        0.8,
        ge=-1.0,
        le=1.0,
        description="an objective is trusted only when its regressor's out-of-fold "
        "Spearman reaches this (CLIMB, Olmix and DeMix report 0.81-0.94 for working predictors)",
    )
    min_snr: float = Field(
        1.0, ge=0.0, description="and when its metric's signal-to-noise ratio (when measured) reaches this"
    )
    allow_untrusted: bool = Field(
        False, description="build the final dataset even when the chosen objective is untrusted"
    )


@dataclass(frozen=True)
class Verdict:
    """Whether one objective's optimum can be trusted, with the numbers and the reason in words."""

    objective: str
    metric: str
    trusted: bool
    oof_spearman: float
    snr: float
    reason: str

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        for key in ("oof_spearman", "snr"):
            if not math.isfinite(out[key]):
                out[key] = None
        return out


def _fmt(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2f}"


def judge(objective: str, metric: str, oof_spearman: float, snr: float, config: TrustConfig) -> Verdict:
    """The verdict for ``objective`` fitted on ``metric`` (e.g. ``roleplay``, ``acc``)."""
    label = f"{objective}/{metric}"
    problems = []
    if math.isnan(oof_spearman) or oof_spearman < config.min_oof_spearman:
        problems.append(
            f"out-of-fold Spearman {_fmt(oof_spearman)} < {config.min_oof_spearman:g}; "
            "the swarm cannot rank mixtures for this target"
        )
    if not math.isnan(snr) and snr < config.min_snr:
        problems.append(
            f"signal-to-noise {_fmt(snr)} < {config.min_snr:g}; seeds of one mixture differ about as much "
            "as different mixtures do"
        )
    if problems:
        return Verdict(objective, metric, False, oof_spearman, snr, f"{label}: " + "; ".join(problems))
    snr_note = "not measured (no repeated mixtures)" if math.isnan(snr) else f"{snr:.2f}"
    reason = f"{label}: out-of-fold Spearman {oof_spearman:.2f} >= {config.min_oof_spearman:g}, signal-to-noise {snr_note}"
    return Verdict(objective, metric, True, oof_spearman, snr, reason)
