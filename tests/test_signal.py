"""Signal and noise per metric, the metric choice, trust verdicts, and repeats in the fit."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixlab.cli import main
from mixlab.evaluation.metrics import DOC_METRICS
from mixlab.regression.fit import fit_targets
from mixlab.regression.signal import (
    DIRECTIONS,
    choose_metric,
    collapse_repeats,
    evidence,
    mixture_groups,
    signal_table,
)
from mixlab.search.trust import TrustConfig, judge
from mixlab.swarm import write_ratios


def _swarm(n: int = 16, repeats: int = 4, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A swarm where ``t/good`` follows the t-domain weight (small seed noise) and ``t/noise`` is pure noise."""
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(3), n)
    ratios = pd.DataFrame(w, columns=["t", "u", "v"], index=[f"mix-{i:03d}" for i in range(n)])
    reps = ratios.iloc[:repeats].copy()
    reps.index = [f"{r}-seed1" for r in reps.index]
    ratios = pd.concat([ratios, reps])
    good = 2.0 * ratios["t"].to_numpy() + rng.normal(0, 0.02, len(ratios))
    noise = rng.normal(0, 1.0, len(ratios))
    metrics = pd.DataFrame({"t/acc": noise, "t/margin": good, "t/gold_bpb": -good}, index=ratios.index)
    return ratios, metrics


def test_registry_and_signal_directions_agree() -> None:
    assert {n: m.direction for n, m in DOC_METRICS.items()} == DIRECTIONS


def test_repeats_are_grouped_and_averaged() -> None:
    ratios, metrics = _swarm()
    groups = mixture_groups(ratios)
    assert groups["mix-002-seed1"] == "mix-002" and groups["mix-010"] == "mix-010"
    unique, means = collapse_repeats(ratios, metrics)
    assert len(unique) == 16 and list(means.index) == list(unique.index)
    expected = metrics.loc[["mix-001", "mix-001-seed1"], "t/margin"].mean()
    assert means.loc["mix-001", "t/margin"] == pytest.approx(expected)


def test_noise_signal_and_snr_by_hand() -> None:
    ratios = pd.DataFrame(
        {"a": [1.0, 1.0, 0.0, 0.0, 0.5], "b": [0.0, 0.0, 1.0, 1.0, 0.5]}, index=list("pqrst")
    )
    metrics = pd.DataFrame({"x/acc": [0.5, 0.7, 0.1, 0.1, 0.4]}, index=list("pqrst"))
    ev = evidence(ratios, metrics, "x", "acc", ["x/acc"], model="linear", folds=3)
    # within mixture p/q: values 0.5, 0.7 -> ss 0.02; r/s: 0.1, 0.1 -> 0; pooled over 2 dof
    assert ev.noise == pytest.approx(math.sqrt(0.02 / 2))
    assert ev.signal == pytest.approx(float(np.std([0.6, 0.1, 0.4], ddof=1)))
    assert ev.snr == pytest.approx(ev.signal / ev.noise)
    assert (ev.n_mixtures, ev.n_repeated) == (3, 2)


def test_metric_with_evidence_is_chosen_and_noise_is_not_trusted() -> None:
    ratios, metrics = _swarm()
    table = signal_table(ratios, metrics, ["t"], ["acc", "margin", "gold_bpb"], model="ridge")
    rows = table.set_index("metric")
    assert rows.loc["margin", "snr"] > 10 and rows.loc["acc", "snr"] < 3
    assert rows.loc["margin", "oof_spearman"] > 0.9
    assert rows.loc["gold_bpb", "direction"] == "min"
    assert choose_metric(table, "t") in ("margin", "gold_bpb")
    assert choose_metric(table, "t", preferred="acc") == "acc"
    cfg = TrustConfig()
    noisy = rows.loc["acc"]
    verdict = judge("t", "acc", float(noisy["oof_spearman"]), float(noisy["snr"]), cfg)
    assert not verdict.trusted
    assert verdict.reason.startswith("t/acc: out-of-fold Spearman")
    assert "the swarm cannot rank mixtures for this target" in verdict.reason
    good = rows.loc["margin"]
    assert judge("t", "margin", float(good["oof_spearman"]), float(good["snr"]), cfg).trusted
    low_snr = judge("t", "margin", 0.95, 0.5, cfg)
    assert not low_snr.trusted and "signal-to-noise 0.50 < 1" in low_snr.reason
    unmeasured = judge("t", "margin", 0.9, float("nan"), cfg)
    assert unmeasured.trusted and "not measured" in unmeasured.reason
    assert unmeasured.as_dict()["snr"] is None


def test_fit_treats_repeats_as_one_mixture() -> None:
    ratios, metrics = _swarm()
    fit = fit_targets(ratios, metrics, model="ridge", folds=4)
    oof = fit.oof["t/margin"]
    assert len(oof) == 16 and not any(r.endswith("-seed1") for r in oof.index)


def test_signal_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ratios, metrics = _swarm()
    write_ratios(tmp_path / "ratios.csv", ratios)
    metrics.rename_axis("run").to_csv(tmp_path / "metrics.csv")
    out = tmp_path / "signal.csv"
    rc = main(["signal", str(tmp_path / "ratios.csv"), str(tmp_path / "metrics.csv"), "--model", "ridge",
               "--out", str(out)])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "*margin" in text or "*gold_bpb" in text
    table = pd.read_csv(out)
    assert table["chosen"].sum() == 1 and set(table["metric"]) == {"acc", "margin", "gold_bpb"}
