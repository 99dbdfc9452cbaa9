"""Typed configuration of the regression stage: what to predict (targets) and how to fit it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    """How the regressors are fitted: the model (or 'auto' to pick by cross-validation) and the CV protocol.

    The ``fit`` section of the pipeline YAML and what ``mixlab fit`` / ``mixlab search`` read with
    ``--config``. In a pipeline, an unset ``seed`` is the pipeline's ``seed``.
    """

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        default="auto",
        description=(
            "regressor: auto (chosen by CV) | linear | ridge | log_ridge | lightgbm | lightgbm_tuned | "
            "mixing_law | gp | bootstrap | stack"
        ),
    )
    cv_folds: int = Field(default=5, ge=2, description="cross-validation folds")
    seed: int | None = Field(
        default=None,
        description="seed of the CV fold split and of the models (default: the pipeline's seed, else 0)",
    )
    candidates: list[str] | None = Field(
        default=None,
        description="models 'auto' chooses from (default: mixlab.regression.models.AUTO_CANDIDATES)",
    )
    selection_metric: Literal["spearman", "pearson", "mae"] = Field(
        default="spearman", description="CV metric that 'auto' maximises (mae is minimised)"
    )
    targets: list[Target] = Field(
        default_factory=list,
        description="targets to fit (mixlab fit; empty = every metric column); a pipeline fits total and each task",
    )

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        return _check_model(model)

    @field_validator("candidates")
    @classmethod
    def _known_candidates(cls, names: list[str] | None) -> list[str] | None:
        for name in names or []:
            _check_model(name, allow_auto=False)
        return names

    @property
    def fold_seed(self) -> int:
        """The seed actually used: ``seed``, or 0 when unset outside a pipeline."""
        return 0 if self.seed is None else self.seed


def _check_model(model: str, allow_auto: bool = True) -> str:
    from mixlab.regression.models import MODEL_NAMES

    allowed = [m for m in MODEL_NAMES if allow_auto or m != "auto"]
    parts = [model] if allow_auto else model.split("+")  # a candidate may be an ensemble "a+b"
    for part in parts:
        if part not in allowed:
            raise ValueError(f"unknown model {part!r} (allowed: {', '.join(allowed)})")
    return model
