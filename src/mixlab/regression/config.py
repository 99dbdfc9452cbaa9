"""Typed configuration of the regression stage: what to predict (targets) and how to fit it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

Direction = Literal["min", "max"]


class Target(BaseModel):
    """One quantity to predict from mixture weights, built from one or more metric columns."""

    name: str = Field(
        description="Name of the target in outputs (defaults to the column, or 'total' for a sum)."
    )
    columns: list[str] = Field(
        min_length=1, description="Metric columns of metrics.csv the target is built from."
    )
    kind: Literal["column", "sum", "weighted"] = Field(
        default="column",
        description="'column': the single column as is; 'sum': the sum of the columns (e.g. the total of task "
        "accuracies); 'weighted': sum of weight x column with `weights`.",
    )
    weights: dict[str, float] | None = Field(
        default=None, description="Per-column weights for kind='weighted' (columns missing here weigh 0)."
    )
    direction: Direction = Field(
        default="max",
        description="'min' for loss-like metrics (lower is better), 'max' for accuracy-like ones.",
    )

    @model_validator(mode="after")
    def _check(self) -> Target:
        if self.kind == "column" and len(self.columns) != 1:
            raise ValueError(
                f"target {self.name!r}: kind 'column' takes exactly one column, got {self.columns}"
            )
        if self.kind == "weighted":
            if not self.weights:
                raise ValueError(f"target {self.name!r}: kind 'weighted' needs weights")
            unknown = set(self.weights) - set(self.columns)
            if unknown:
                raise ValueError(
                    f"target {self.name!r}: weights for columns not in the target: {sorted(unknown)}"
                )
        return self

    @classmethod
    def column(cls, column: str, direction: Direction | None = None, name: str | None = None) -> Target:
        """A single-column target; direction guessed from the name ('loss'/'bpb'/'ppl' -> min) when not given."""
        return cls(
            name=name or column,
            columns=[column],
            kind="column",
            direction=direction or guess_direction(column),
        )

    @classmethod
    def sum_of(cls, columns: list[str], name: str = "total", direction: Direction | None = None) -> Target:
        """The sum of several metric columns (e.g. the challenge score: sum of task accuracies)."""
        return cls(
            name=name, columns=list(columns), kind="sum", direction=direction or guess_direction(columns[0])
        )


def guess_direction(column: str) -> Direction:
    """'min' for loss-like column names (loss, bpb, perplexity, error), otherwise 'max'."""
    low = column.lower()
    return "min" if any(k in low for k in ("loss", "bpb", "ppl", "perplexity", "error", "stderr")) else "max"


class FitConfig(BaseModel):
    """How targets are fitted: the model (or 'auto' to pick by cross-validation) and the CV protocol."""

    targets: list[Target] = Field(
        default_factory=list, description="Targets to fit; empty = every metric column."
    )
    model: str = Field(
        default="auto",
        description="Regressor name (linear, ridge, log_ridge, lightgbm, lightgbm_tuned, mixing_law, gp, "
        "bootstrap, stack) or 'auto' to choose per target by cross-validation on the swarm.",
    )
    candidates: list[str] | None = Field(
        default=None,
        description="Models 'auto' chooses from (default: mixlab.regression.models.AUTO_CANDIDATES).",
    )
    folds: int = Field(default=5, ge=2, description="Number of cross-validation folds.")
    seed: int = Field(default=0, description="Seed of the CV fold split and of the models.")
    selection_metric: Literal["spearman", "pearson", "mae"] = Field(
        default="spearman", description="CV metric that 'auto' maximises (mae is minimised)."
    )
