"""Paired bootstrap over items and seeds, and the confirm.json summary."""

from __future__ import annotations

import numpy as np
import pytest

from mixlab.confirm.stage import arm_runs, confirm_ratios, summarise, verdict_line
from mixlab.confirm.stats import Interval, PairedBootstrap


def test_bootstrap_interval_covers_a_known_difference() -> None:
    rng = np.random.default_rng(0)
    n_items, n_seeds = 400, 3
    item_effect = rng.normal(0, 1, n_items)  # shared by both arms: pairing removes it
    a = item_effect + 0.10 + rng.normal(0, 0.2, (n_seeds, n_items))
    b = item_effect + rng.normal(0, 0.2, (n_seeds, n_items))
    plan = PairedBootstrap({"t": n_items}, n_seeds, n_boot=2000, seed=1)
    iv = plan.diff("t", a, b)
    assert iv.low < 0.10 < iv.high and iv.excludes_zero()
    assert iv.diff == pytest.approx(float((a - b).mean()))
    # an arm against itself plus noise of mean zero cannot be told apart
    same = plan.diff("t", b + rng.normal(0, 0.2, b.shape), b)
    assert not same.excludes_zero()


def test_bootstrap_mean_matches_explicit_resampling() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 7))
    plan = PairedBootstrap({"t": 7}, 3, n_boot=5, seed=2)
    vec = plan.boot_means("t", x)
    for b in range(5):
        seeds = np.repeat(np.arange(3), plan.seed_counts[b].astype(int))
        items = np.repeat(np.arange(7), plan.item_counts["t"][b].astype(int))
        assert vec[b] == pytest.approx(x[np.ix_(seeds, items)].mean())


def test_single_run_arm_broadcasts_over_seeds() -> None:
    plan = PairedBootstrap({"t": 4}, 3, n_boot=200)
    base = np.zeros((1, 4))
    arm = np.ones((3, 4))
    assert plan.diff("t", arm, base).diff == pytest.approx(1.0)
    with pytest.raises(ValueError, match="seeds"):
        plan.diff("t", np.ones((2, 4)), base)


def test_summarise_writes_arms_comparisons_and_verdicts() -> None:
    rng = np.random.default_rng(0)
    tasks, metrics = ["x", "y"], ["acc", "gold_bpb"]
    runs_of = {
        "optimal": arm_runs("optimal", 3),
        "natural": arm_runs("natural", 3),
        "optimal_x": arm_runs("optimal_x", 3),
        "base": ["base"],
    }
    shift = {"optimal": 0.3, "natural": 0.0, "optimal_x": 0.3, "base": -0.2}
    scores = {}
    for arm, runs in runs_of.items():
        for run in runs:
            scores[run] = {
                t: {
                    "acc": (
                        rng.random(200) < 0.4 + shift[arm] * (1 if t == "x" or arm != "optimal_x" else 0)
                    ).astype(float),
                    "gold_bpb": 2.0 - shift[arm] + rng.normal(0, 0.1, 200),
                }
                for t in tasks
            }
    out = summarise(
        runs_of, scores, tasks, metrics, {"total": "gold_bpb", "x": "acc", "y": "acc"}, n_boot=500
    )
    assert out["seeds"] == 3
    opt = out["arms"]["optimal"]["acc"]
    assert len(opt["total"]["values"]) == 3
    assert opt["total"]["mean"] == pytest.approx(opt["x"]["mean"] + opt["y"]["mean"])
    vs = out["comparisons"]["optimal"]["natural"]["gold_bpb"]["total"]
    assert vs["high"] < 0  # lower bits per byte: better
    assert out["headline"].startswith("optimal beats natural by ")
    s = out["challenge_score"]["optimal"]["acc"]["total"]
    assert s["diff"] == pytest.approx(opt["total"]["mean"] - out["arms"]["base"]["acc"]["total"]["mean"])
    assert any(v.startswith("optimal_x cannot be told from optimal") for v in out["verdicts"])


def test_verdict_words_follow_direction() -> None:
    iv = Interval(-0.1, -0.15, -0.05)
    assert verdict_line("a", "b", "gold_bpb", "summed gold_bpb", iv).startswith("a beats b by 0.100 [")
    assert verdict_line("a", "b", "gold_bpb", "summed gold_bpb", iv).endswith("lower summed gold_bpb (95%)")
    assert verdict_line("a", "b", "acc", "summed acc", iv).startswith("a is worse than b")
    assert "cannot be told" in verdict_line("a", "b", "acc", "x", Interval(0.01, -0.02, 0.04))


def test_confirm_ratios_one_row_per_seed() -> None:
    table = confirm_ratios({"optimal": {"a": 0.2, "b": 0.8}, "natural": {"a": 1.0}}, ["a", "b"], 2)
    assert list(table.index) == ["optimal", "optimal-seed1", "natural", "natural-seed1"]
    assert table.loc["natural-seed1", "b"] == 0.0


def _finished_swarm(folder, ratios, scores):  # type: ignore[no-untyped-def]
    """A swarm folder as run_swarm leaves it: run folders with eval files, metrics.csv, DONE markers."""
    from mixlab.pool.pool import atomic_write_text
    from mixlab.proxies.swarm import DONE_MARKER
    from mixlab.swarm import upsert_metrics

    for run, score in scores.items():
        (folder / "runs" / run / "eval").mkdir(parents=True)
        (folder / "runs" / run / "eval" / "t.jsonl").write_text(f'{{"acc": {score}}}\n')
        upsert_metrics(folder / "metrics.csv", run, {"t/acc": score, "status": "ok"})
        atomic_write_text(folder / "runs" / run / DONE_MARKER, "{}")


def test_confirmation_reuses_equal_swarm_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An arm run with the swarm's mixture and seed offset is copied, not trained; others are left to train."""
    import pandas as pd

    from mixlab.confirm.reuse import REUSE_NOTE, identical_runs, reuse_identical_runs
    from mixlab.proxies.swarm import finished_runs
    from mixlab.swarm import read_metrics

    cols = ["a", "b"]
    swarm = pd.DataFrame(
        [[0.3, 0.7], [0.5, 0.5], [0.3, 0.7], [0.9, 0.1]],
        index=pd.Index(["mix-000", "mix-001", "mix-000-seed1", "mix-002"], name="run"),
        columns=cols,
    )
    _finished_swarm(tmp_path / "swarm", swarm, {"mix-000": 0.25, "mix-001": 0.5, "mix-000-seed1": 0.75})
    arms = {"natural": {"a": 0.3, "b": 0.7}, "best_swarm": {"a": 0.9, "b": 0.1}, "optimal": {"b": 1.0}}
    table = confirm_ratios(arms, cols, seeds=3)
    # mix-002 never finished, natural-seed2 has no swarm twin, column order does not matter
    assert identical_runs(
        table[["b", "a"]], swarm, finished_runs(tmp_path / "swarm" / "metrics.csv", tmp_path / "swarm")
    ) == {
        "natural": "mix-000",
        "natural-seed1": "mix-000-seed1",
    }
    copied = reuse_identical_runs(table, tmp_path / "confirm", swarm, tmp_path / "swarm")
    assert copied == {"natural": "mix-000", "natural-seed1": "mix-000-seed1"}
    done = finished_runs(tmp_path / "confirm" / "metrics.csv", tmp_path / "confirm")
    assert done == {"natural", "natural-seed1"}
    metrics = read_metrics(tmp_path / "confirm" / "metrics.csv")
    assert metrics.loc["natural-seed1", "t/acc"] == 0.75 and metrics.loc["natural", "status"] == "ok"
    run = tmp_path / "confirm" / "runs" / "natural-seed1"
    assert (run / "eval" / "t.jsonl").read_text() == '{"acc": 0.75}\n'
    assert "mix-000-seed1" in (run / REUSE_NOTE).read_text()
    # a second call finds them finished and copies nothing
    assert reuse_identical_runs(table, tmp_path / "confirm", swarm, tmp_path / "swarm") == {}


def test_repeats_take_the_anchor_mixtures_first() -> None:
    """natural and uniform are repeated first, so their confirmation seeds already exist in the swarm."""
    from mixlab.mixtures.config import MixtureConfig
    from mixlab.mixtures.sampler import anchor_mixtures, sample_mixtures

    prior = {"a": 0.6, "b": 0.3, "c": 0.1}
    cfg = MixtureConfig(n=8, repeats=3, repeat_seeds=2, seed=1)
    ratios = sample_mixtures(prior, cfg)
    anchors = anchor_mixtures(prior, cfg)
    np.testing.assert_allclose(ratios.loc["mix-000"].to_numpy(), anchors["natural"])
    np.testing.assert_allclose(ratios.loc["mix-001"].to_numpy(), anchors["uniform"], atol=1e-12)
    repeated = [r for r in ratios.index if "-seed" in r]
    assert repeated == [
        "mix-000-seed1",
        "mix-000-seed2",
        "mix-001-seed1",
        "mix-001-seed2",
        "mix-005-seed1",
        "mix-005-seed2",
    ]
