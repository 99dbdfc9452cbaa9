"""Typed configuration of the search stage (``search`` section, ``mixlab search``): objectives, the
search settings and the constraints on the mixture."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, field_validator, model_validator


class Objective(BaseModel):
    """What a search optimises: one fitted target, or a weighted sum of fitted targets."""

    name: str = Field(description="Name of the objective in optimal.json.")
    weights: dict[str, float] = Field(
        min_length=1,
        description="Fitted target name -> weight; one target with weight 1 is that target alone.",
    )
    direction: Literal["min", "max"] = Field(
        description="'min' to minimise the weighted sum, 'max' to maximise it."
    )


class Constraints(BaseModel):
    """Feasible mixtures: weight bounds, data availability at a token budget, and a pull toward the prior."""

    min_weight: float | dict[str, float] = Field(
        default=0.0, description="Lower bound of every domain's weight (or per domain)."
    )
    max_weight: float | dict[str, float] = Field(
        default=1.0, description="Upper bound of every domain's weight (or per domain)."
    )
    availability: dict[str, float] | None = Field(
        default=None, description="Tokens available per domain; with budget and max_epochs caps each weight."
    )
    budget: float | None = Field(default=None, gt=0, description="Target training budget in tokens.")
    max_epochs: float = Field(
        default=1.0, gt=0, description="How many times a domain's data may be repeated at the budget."
    )
    kl_weight: float = Field(
        default=0.0,
        ge=0,
        description="Penalty weight of KL(mixture || prior) (Olmix-style pull toward the prior).",
    )

    @model_validator(mode="after")
    def _check(self) -> Constraints:
        if self.availability is not None and self.budget is None:
            raise ValueError("availability needs a token budget")
        return self


def _bound(value: Any) -> float | dict[str, float]:
    """A weight bound: a number in [0, 1] for every domain, or a mapping domain -> number in [0, 1]."""
    if isinstance(value, Mapping):
        return {str(k): _unit(v, f"bound of {k!r}") for k, v in value.items()}
    return _unit(value, "bound")


def _unit(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{what}: Input should be a number or a mapping of domain -> number")  # noqa: TRY004
    try:
        x = float(value)
    except ValueError:
        raise ValueError(f"{what}: Input should be a number, got {value!r}") from None
    if not 0.0 <= x <= 1.0:
        raise ValueError(
            f"Input should be greater than or equal to 0 and less than or equal to 1 ({what} {x:g})"
        )
    return x


#: A weight bound of the search: one number for every domain, or a mapping domain -> number.
Bound = Annotated[float | dict[str, float], PlainValidator(_bound)]


class SearchConfig(BaseModel):
    """How optima are searched for, and the bounds every optimum respects.

    The ``search`` section of the pipeline YAML and what ``mixlab search`` reads with ``--config``. In a
    pipeline, an unset ``seed`` is the pipeline's ``seed``.
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["topk", "constrained"] = Field(
        default="topk",
        description="topk: RegMix's proposer (simulate mixtures around the prior, average the top k); "
        "constrained: sampling + local refinement + SLSQP under the constraints",
    )
    n_samples: int = Field(default=100_000, ge=1, description="mixtures simulated per objective")
    top_k: int = Field(default=128, ge=1, description="average the k best predicted mixtures (topk)")
    concentrations: list[float] = Field(
        default=[0.1, 0.3, 1.0, 3.0],
        description="Dirichlet concentrations (x number of domains) around the prior; small = sparse mixtures",
    )
    seed: int | None = Field(
        default=None, description="seed of the simulation (default: the pipeline's seed, else 0)"
    )
    objective: str = Field(
        default="total", description="objective whose optimum builds the dataset: total or a task name"
    )
    kl_weight: float = Field(default=0.0, ge=0, description="pull toward the prior (constrained search)")
    min_weight: Bound = Field(
        default=0.0, description="lower bound of every domain's weight (or a mapping domain -> bound)"
    )
    max_weight: Bound = Field(
        default=1.0, description="upper bound of every domain's weight (or a mapping domain -> bound)"
    )
    explore: float = Field(
        default=0.25, ge=0, le=1, description="share of a next round of mixtures spent exploring"
    )

    @field_validator("concentrations")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if not value or any(c <= 0 for c in value):
            raise ValueError("concentrations must be a non-empty list of positive numbers")
        return value

    @field_validator("max_weight")
    @classmethod
    def _positive_max(cls, value: float | dict[str, float]) -> float | dict[str, float]:
        for x in value.values() if isinstance(value, dict) else [value]:
            if x <= 0:
                raise ValueError(f"Input should be greater than 0 (max_weight {x:g})")
        return value

    @model_validator(mode="after")
    def _bounds_in_order(self) -> SearchConfig:
        lo, hi = self.min_weight, self.max_weight
        domains = set(lo if isinstance(lo, dict) else {}) | set(hi if isinstance(hi, dict) else {})
        for d in sorted(domains) or [None]:
            a = lo.get(d, 0.0) if isinstance(lo, dict) else lo
            b = hi.get(d, 1.0) if isinstance(hi, dict) else hi
            if a > b:
                where = f" (domain {d})" if d is not None else ""
                raise ValueError(f"min_weight {a:g} is above max_weight {b:g}{where}")
        return self

    @property
    def sim_seed(self) -> int:
        """The seed actually used: ``seed``, or 0 when unset outside a pipeline."""
        return 0 if self.seed is None else self.seed

    def constraints(
        self,
        availability: dict[str, float] | None = None,
        budget: float | None = None,
        max_epochs: float = 1.0,
    ) -> Constraints:
        """The feasible region of this search: its bounds and pull, plus what the pool holds at a budget."""
        return Constraints(
            min_weight=self.min_weight,
            max_weight=self.max_weight,
            availability=availability,
            budget=budget,
            max_epochs=max_epochs,
            kl_weight=self.kl_weight,
        )
