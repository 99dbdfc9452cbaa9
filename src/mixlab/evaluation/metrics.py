"""Per-document metrics of a multiple-choice item, computed from its per-choice log-likelihoods.

One registry (:data:`DOC_METRICS`) holds every metric; adding one is one function plus one entry. Each
metric knows its direction (``max``: higher is better, ``min``: lower is better), so a regressor's target,
a search objective and a confirmation can all use any of them unchanged.

Discrete metrics reproduce lm-eval: ``acc`` (argmax of summed log-likelihood is the gold), ``acc_norm``
(argmax of log-likelihood per character of the choice), ``acc_bytes`` (per UTF-8 byte).

Continuous metrics, the small-scale predictors of DataDecide (2025) and Olmix's task bits-per-byte. They
move with every change in the gold answer's likelihood, where accuracy moves only when an argmax flips:

* ``gold_bpb``: bits per byte of the gold continuation as scored (the target delimiter included, since
  its tokens are part of the scored log-likelihood): ``-ll_gold / (ln 2 * bytes(continuation_gold))``;
* ``correct_prob``: the gold choice's probability normalised over the choices,
  ``exp(ll_gold) / sum_j exp(ll_j)``;
* ``margin``: the gold choice's log-likelihood per character minus the best wrong choice's, the quantity
  whose sign ``acc_norm`` reads (positive exactly when ``acc_norm`` is 1, ties aside).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CONTINUOUS_METRICS",
    "DOC_METRICS",
    "ChoiceScores",
    "DocMetric",
    "metric_direction",
    "register_metric",
]


@dataclass(frozen=True)
class ChoiceScores:
    """What one scored item gives: per choice the summed log-likelihood, its text, and the gold index."""

    loglikelihoods: NDArray[np.float64]
    choices: Sequence[str]
    """Choice texts as lm-eval measures them for ``acc_norm`` (without the target delimiter)."""
    continuations: Sequence[str]
    """The continuation strings whose tokens were scored (delimiter + choice)."""
    gold: int

    @classmethod
    def of(
        cls, lls: Sequence[float], choices: Sequence[str], continuations: Sequence[str], gold: int
    ) -> ChoiceScores:
        if not (len(lls) == len(choices) == len(continuations)):
            raise ValueError(
                f"{len(lls)} log-likelihoods for {len(choices)} choices / {len(continuations)} continuations"
            )
        if not 0 <= gold < len(lls):
            raise ValueError(f"gold index {gold} out of range for {len(lls)} choices")
        return cls(np.asarray(lls, dtype=np.float64), list(choices), list(continuations), int(gold))


@dataclass(frozen=True)
class DocMetric:
    """A per-document metric: name, direction and the function computing it."""

    name: str
    direction: Literal["max", "min"]
    description: str
    fn: Callable[[ChoiceScores], float]
    continuous: bool = True


def _argmax_is_gold(values: NDArray[np.float64], gold: int) -> float:
    return float(int(np.argmax(values)) == gold)


def _chars(s: ChoiceScores) -> NDArray[np.float64]:
    return np.array([float(len(c)) for c in s.choices])


def _acc(s: ChoiceScores) -> float:
    return _argmax_is_gold(s.loglikelihoods, s.gold)


def _acc_norm(s: ChoiceScores) -> float:
    return _argmax_is_gold(s.loglikelihoods / _chars(s), s.gold)


def _acc_bytes(s: ChoiceScores) -> float:
    nbytes = np.array([float(len(c.encode("utf-8"))) for c in s.choices])
    return _argmax_is_gold(s.loglikelihoods / nbytes, s.gold)


def _gold_bpb(s: ChoiceScores) -> float:
    nbytes = len(s.continuations[s.gold].encode("utf-8"))
    if nbytes == 0:
        return math.nan
    return float(-s.loglikelihoods[s.gold] / (math.log(2.0) * nbytes))


def _correct_prob(s: ChoiceScores) -> float:
    lls = s.loglikelihoods
    top = float(lls.max())
    return float(math.exp(lls[s.gold] - top) / np.exp(lls - top).sum())


def _margin(s: ChoiceScores) -> float:
    if len(s.loglikelihoods) < 2:
        return math.nan
    per_char = s.loglikelihoods / _chars(s)
    wrong = np.delete(per_char, s.gold)
    return float(per_char[s.gold] - wrong.max())


#: Every per-document metric, in the column order of ``metrics.json`` and ``metrics.csv``.
DOC_METRICS: dict[str, DocMetric] = {}


def register_metric(metric: DocMetric) -> DocMetric:
    """Add a metric to :data:`DOC_METRICS` (its name becomes ``<task>/<name>`` in ``metrics.csv``)."""
    if metric.name in DOC_METRICS:
        raise ValueError(f"metric {metric.name!r} is already registered")
    DOC_METRICS[metric.name] = metric
    return metric


register_metric(
    DocMetric("acc", "max", "argmax of summed log-likelihood is the gold (lm-eval acc)", _acc, False)
)
register_metric(
    DocMetric(
        "acc_norm", "max", "argmax of log-likelihood per character is the gold (lm-eval)", _acc_norm, False
    )
)
register_metric(
    DocMetric("acc_bytes", "max", "argmax of log-likelihood per UTF-8 byte is the gold", _acc_bytes, False)
)
register_metric(DocMetric("gold_bpb", "min", "bits per byte of the gold continuation", _gold_bpb))
register_metric(
    DocMetric("correct_prob", "max", "gold probability normalised over the choices", _correct_prob)
)
register_metric(DocMetric("margin", "max", "gold minus best wrong log-likelihood per character", _margin))

#: The continuous metrics (candidates for a proxy objective next to acc and acc_norm).
CONTINUOUS_METRICS = tuple(name for name, m in DOC_METRICS.items() if m.continuous)


def metric_direction(column: str) -> Literal["max", "min"]:
    """Direction of a ``metrics.csv`` column: ``<task>/<metric>`` by its metric, losses and bpb ``min``."""
    name = column.rsplit("/", 1)[-1]
    if column.startswith(("loss/", "bpb/")):
        return "min"
    if name in DOC_METRICS:
        return DOC_METRICS[name].direction
    raise ValueError(f"unknown metric column {column!r} (metrics: {', '.join(DOC_METRICS)})")
