"""Paired bootstrap over items and seeds: is one confirmed mixture better than another, and by how much?

Each arm (a mixture trained with several seeds) gives, per task and metric, a ``seeds x items`` matrix of
per-item scores. A difference between two arms is the difference of their grand means; its 95% interval
comes from resampling items (the same items for both arms: paired) and seeds (the same seed indices for
both arms, which share selection and training seeds by construction) with replacement. A total over
tasks resamples each task's items independently and the seeds jointly.

Vectorised: a bootstrap mean is ``sum_s sum_i S[b, s] C[b, i] X[s, i] / (n_s n_i)`` with ``S``/``C`` the
multinomial counts of the resampled seeds/items, so ``B`` resamples cost two matrix products.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["Interval", "PairedBootstrap"]


@dataclass(frozen=True)
class Interval:
    """A difference and its percentile interval."""

    diff: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict[str, float]:
        return {"diff": self.diff, "low": self.low, "high": self.high}


class PairedBootstrap:
    """Resampling plan shared by every comparison: the same seed and item draws for every pair of arms.

    ``n_items`` gives each task's number of items; ``n_seeds`` the number of seeds of the arms (an arm with
    one run, such as the untrained base model, is broadcast over the seeds).
    """

    def __init__(
        self, n_items: dict[str, int], n_seeds: int, n_boot: int = 2000, seed: int = 0, level: float = 0.95
    ) -> None:
        rng = np.random.default_rng(seed)
        self.n_seeds = n_seeds
        self.level = level
        self.seed_counts = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_boot).astype(
            np.float64
        )
        self.item_counts = {
            task: rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
            for task, n in n_items.items()
        }

    def _seeds(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        if x.shape[0] == self.n_seeds:
            return x
        if x.shape[0] == 1:
            return np.repeat(x, self.n_seeds, axis=0)
        raise ValueError(f"{x.shape[0]} seeds where the plan has {self.n_seeds}")

    def boot_means(self, task: str, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Bootstrap distribution of the grand mean of a ``seeds x items`` matrix (NaN items count as 0
        weight: pass matrices without NaN)."""
        x = self._seeds(np.asarray(x, dtype=np.float64))
        counts = self.item_counts[task]
        if x.shape[1] != counts.shape[1]:
            raise ValueError(f"task {task!r}: {x.shape[1]} items where the plan has {counts.shape[1]}")
        by_item = self.seed_counts @ x  # (B, items)
        return (by_item * counts).sum(axis=1) / (self.n_seeds * x.shape[1])

    def _interval(self, point: float, dist: NDArray[np.float64]) -> Interval:
        tail = (1.0 - self.level) / 2.0 * 100.0
        low, high = np.percentile(dist, [tail, 100.0 - tail])
        return Interval(float(point), float(low), float(high))

    def diff(self, task: str, a: NDArray[np.float64], b: NDArray[np.float64]) -> Interval:
        """``mean(a) - mean(b)`` on one task, with its paired interval."""
        a, b = self._seeds(np.asarray(a, float)), self._seeds(np.asarray(b, float))
        d = a - b
        return self._interval(float(d.mean()), self.boot_means(task, d))

    def diff_total(self, a: dict[str, NDArray[np.float64]], b: dict[str, NDArray[np.float64]]) -> Interval:
        """Difference of the sums over tasks of the per-task means, with its paired interval."""
        point = 0.0
        dist = np.zeros(self.seed_counts.shape[0])
        for task, values in a.items():
            d = self._seeds(np.asarray(values, float)) - self._seeds(np.asarray(b[task], float))
            point += float(d.mean())
            dist += self.boot_means(task, d)
        return self._interval(point, dist)
