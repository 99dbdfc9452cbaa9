"""Typed configuration of the search stage: objectives and constraints on the mixture."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator


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


class SearchConfig(BaseModel):
    """How optima are searched for."""

    method: Literal["topk", "constrained"] = Field(
        default="topk",
        description="'topk': RegMix's proposer (simulate mixtures around the prior, average the top k); "
        "'constrained': sampling + local refinement + SLSQP under the constraints.",
    )
    n: int = Field(default=100_000, ge=100, description="Mixtures simulated per objective.")
    top_k: int = Field(default=128, ge=1, description="How many best simulated mixtures are averaged (topk).")
    concentrations: list[float] = Field(
        default=[0.1, 0.3, 1.0, 3.0],
        description="Dirichlet concentrations (x number of domains) around the prior; small = sparse mixtures.",
    )
    seed: int = Field(default=0, description="Random seed of the simulation.")
    constraints: Constraints = Field(default_factory=Constraints, description="Feasible region.")
