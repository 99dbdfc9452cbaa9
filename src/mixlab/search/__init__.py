"""Search stage: optimal mixtures from fitted regressors (top-k simulation, constrained, iterative rounds)."""

from mixlab.search.config import Constraints, Objective, SearchConfig
from mixlab.search.constrained import constrained_optimize
from mixlab.search.iterative import propose_next_round
from mixlab.search.objectives import default_objectives, search_all, write_optimal
from mixlab.search.simplex import feasible_bounds, project_bounded_simplex, sample_dirichlet
from mixlab.search.topk import simulate_candidates, simulate_topk

__all__ = [
    "Constraints",
    "Objective",
    "SearchConfig",
    "constrained_optimize",
    "default_objectives",
    "feasible_bounds",
    "project_bounded_simplex",
    "propose_next_round",
    "sample_dirichlet",
    "search_all",
    "simulate_candidates",
    "simulate_topk",
    "write_optimal",
]
