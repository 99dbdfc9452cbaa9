"""Tests of mixlab.search: bounded simplex, top-k, constrained search, iterative rounds, objectives, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixlab.cli import main
from mixlab.regression import Target, fit_targets
from mixlab.search import (
    Constraints,
    Objective,
    SearchConfig,
    constrained_optimize,
    feasible_bounds,
    project_bounded_simplex,
    propose_next_round,
    search_all,
    simulate_topk,
    write_optimal,
)

DOMAINS = ["code", "web", "math", "chat"]


def _swarm(n: int = 48, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.ones(4), size=n)
    ids = pd.Index([f"r{i}" for i in range(n)], name="run")
    ratios = pd.DataFrame(W, columns=DOMAINS, index=ids)
    metrics = pd.DataFrame(
        {
            "loss/web": 3.0 - 0.5 * W[:, 1] + rng.normal(0, 0.003, n),  # minimised: wants web
            "math/acc": 0.25 + 0.5 * W[:, 2] + rng.normal(0, 0.003, n),  # maximised: wants math
            "code/acc": 0.25 + 0.4 * W[:, 0] + rng.normal(0, 0.003, n),  # maximised: wants code
        },
        index=ids,
    )
    return ratios, metrics


@pytest.fixture(scope="module")
def fitted():
    ratios, metrics = _swarm()
    targets = [
        Target.column("loss/web"),
        Target.column("math/acc"),
        Target.column("code/acc"),
        Target.sum_of(["math/acc", "code/acc"], name="total"),
    ]
    return fit_targets(ratios, metrics, targets, model="ridge", folds=3)


def test_projection_respects_bounds() -> None:
    rng = np.random.default_rng(0)
    V = rng.normal(0, 1, size=(500, 6))
    lo, hi = np.full(6, 0.05), np.array([0.1, 0.5, 0.5, 0.5, 0.3, 0.2])
    W = project_bounded_simplex(V, lo, hi)
    np.testing.assert_allclose(W.sum(axis=1), 1.0, atol=1e-9)
    assert (W >= lo - 1e-12).all() and (W <= hi + 1e-12).all()
    # points already feasible are left where they are
    inside = project_bounded_simplex(W[:5], lo, hi)
    np.testing.assert_allclose(inside, W[:5], atol=1e-9)


def test_infeasible_bounds_are_an_error() -> None:
    with pytest.raises(ValueError, match="infeasible"):
        feasible_bounds(DOMAINS, Constraints(min_weight=0.3))
    with pytest.raises(ValueError, match="budget"):
        feasible_bounds(
            DOMAINS,
            Constraints(
                availability={"code": 10.0, "web": 10.0, "math": 10.0, "chat": 10.0},
                budget=100.0,
                max_epochs=2.0,
            ),
        )


@pytest.mark.parametrize("direction", ["min", "max"])
def test_simulate_topk_follows_direction(direction: str) -> None:
    prior = np.full(4, 0.25)
    w = simulate_topk(lambda W: W[:, 0], prior, n=20_000, k=32, seed=1, direction=direction)
    assert w.sum() == pytest.approx(1.0)
    assert (w[0] > 0.8) if direction == "max" else (w[0] < 0.02)


def test_constrained_respects_bounds_and_availability() -> None:
    prior = np.full(4, 0.25)
    constraints = Constraints(
        max_weight={"code": 0.3},
        min_weight=0.05,
        availability={"code": 1e9, "web": 40.0, "math": 1e9, "chat": 1e9},
        budget=200.0,
        max_epochs=2.0,  # web can take at most 40 * 2 / 200 = 0.4
    )
    # maximise code + web: both should sit at their caps, the rest at the minimum
    w = constrained_optimize(lambda W: W[:, 0] + 2 * W[:, 1], prior, DOMAINS, constraints, direction="max")
    assert w.sum() == pytest.approx(1.0)
    assert w[0] <= 0.3 + 1e-9 and w[1] <= 0.4 + 1e-9 and (w >= 0.05 - 1e-9).all()
    assert w[1] == pytest.approx(0.4, abs=0.02) and w[0] == pytest.approx(0.3, abs=0.05)


def test_kl_weight_pulls_toward_prior() -> None:
    prior = np.array([0.4, 0.3, 0.2, 0.1])
    free = constrained_optimize(lambda W: W[:, 3], prior, DOMAINS, Constraints(), direction="max", seed=0)
    pulled = constrained_optimize(
        lambda W: W[:, 3], prior, DOMAINS, Constraints(kl_weight=1.0), direction="max", seed=0
    )
    assert free[3] > 0.9
    assert np.abs(pulled - prior).sum() < np.abs(free - prior).sum()
    assert prior[3] < pulled[3] < free[3]


def test_next_round_on_simplex_and_new(fitted) -> None:
    nxt = propose_next_round(fitted, 12, explore_frac=0.25, seed=3, objective="total", min_distance=0.05)
    assert list(nxt.columns) == DOMAINS and len(nxt) == 12 and nxt.index.is_unique
    W = nxt.to_numpy()
    assert (W >= 0).all()
    np.testing.assert_allclose(W.sum(axis=1), 1.0)
    seen = fitted.ratios.to_numpy()
    dists = np.abs(W[:, None, :] - seen[None, :, :]).sum(axis=2)
    assert dists.min() >= 0.05
    # the exploit part lies in the predicted-good region: better predicted total than the swarm's average
    assert fitted.predict(W[:9], "total").mean() > fitted.values["total"].mean()


def test_search_all_directions_tradeoff_and_files(fitted, tmp_path: Path) -> None:
    objectives = [
        Objective(name="loss/web", weights={"loss/web": 1.0}, direction="min"),
        Objective(name="math/acc", weights={"math/acc": 1.0}, direction="max"),
        Objective(name="total", weights={"total": 1.0}, direction="max"),
        Objective(name="mix", weights={"math/acc": 1.0, "loss/web": -1.0}, direction="max"),
    ]
    res = search_all(fitted, objectives, prior="natural", config=SearchConfig(n_samples=5_000, top_k=16))
    objs = res["objectives"]
    web, math = objs["loss/web"]["weights"], objs["math/acc"]["weights"]
    assert web["web"] == max(web.values()) and math["math"] == max(math.values())
    lo, hi = objs["total"]["interval"]
    assert lo < objs["total"]["predicted"] < hi
    assert res["chosen"] == "total"
    rows = res["tradeoff"]["rows"]
    assert rows["total"]["reference_loss"] == pytest.approx(0.0)
    assert rows["loss/web"]["reference_loss"] > 0  # the web optimum costs total accuracy
    written = write_optimal(tmp_path / "optimal.json", res)
    data = json.loads((tmp_path / "optimal.json").read_text())
    assert set(data["objectives"]) == {"loss/web", "math/acc", "total", "mix"}
    one = json.loads((tmp_path / "optimal_total.json").read_text())
    assert {"weights", "predicted", "interval"} <= set(one) and len(written) == 5


def test_search_cli_constrained_with_next_round(tmp_path: Path) -> None:
    ratios, metrics = _swarm()
    ratios.to_csv(tmp_path / "ratios.csv")
    metrics.to_csv(tmp_path / "metrics.csv")
    (tmp_path / "avail.json").write_text(json.dumps({"code": 100, "web": 100, "math": 30, "chat": 100}))
    out = tmp_path / "search"
    code = main(
        [
            "search",
            "--ratios",
            str(tmp_path / "ratios.csv"),
            "--metrics",
            str(tmp_path / "metrics.csv"),
            "--target",
            "math/acc",
            "--model",
            "ridge",
            "--cv",
            "3",
            "--method",
            "constrained",
            "--availability",
            str(tmp_path / "avail.json"),
            "--budget",
            "100",
            "--max-epochs",
            "1",
            "--next-round",
            "6",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    data = json.loads((out / "optimal.json").read_text())
    w = data["objectives"]["math/acc"]["weights"]
    assert w["math"] <= 0.3 + 1e-9 and w["math"] == pytest.approx(0.3, abs=0.03)
    assert (out / "weights.png").exists() and (out / "tradeoff.png").exists()
    nxt = pd.read_csv(out / "next_ratios.csv")
    assert list(nxt.columns) == ["run", *DOMAINS] and len(nxt) == 6


def test_pipeline_entry_point_keywords(fitted, tmp_path: Path) -> None:
    from mixlab.search.run import search_all as run_search_all
    from mixlab.search.run import write_optimal as run_write_optimal

    prior = {"code": 0.4, "web": 0.3, "math": 0.2, "chat": 0.1}
    res = run_search_all(
        fitted, prior=prior, method="topk", n_samples=2_000, top_k=8, seed=1, kl_weight=0.0, chosen="math/acc"
    )
    assert res["chosen"] == "math/acc" and res["prior"]["code"] == pytest.approx(0.4)
    run_write_optimal(tmp_path / "optimal.json", res, out_dir=tmp_path / "per")
    assert (tmp_path / "per" / "optimal_math_acc.json").exists()
    with pytest.raises(ValueError, match="chosen objective"):
        run_search_all(fitted, n_samples=1_000, chosen="nope")
