"""Tests of mixlab.regression: the regressor zoo, CV model selection, targets, persistence and `mixlab fit`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixlab.cli import main
from mixlab.regression import (
    Target,
    cross_validate,
    fit_targets,
    load_fit,
    make_regressor,
    save_fit,
    score_predictions,
    select_model,
)
from mixlab.swarm import read_metrics, read_ratios

REGMIX = Path(__file__).resolve().parents[2] / "shared" / "data" / "regmix"
PILE_CC = "metric/the_pile_pile_cc_val_loss"


def _regmix() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    if not (REGMIX / "train_mixture_1m.csv").exists():
        pytest.skip(f"RegMix runs not found at {REGMIX}")
    return (
        read_ratios(REGMIX / "train_mixture_1m.csv"),
        read_metrics(REGMIX / "train_pile_loss_1m.csv"),
        read_ratios(REGMIX / "test_mixture_1m.csv"),
        read_metrics(REGMIX / "test_pile_loss_1m.csv"),
    )


def _regmix_60m() -> pd.DataFrame:
    """Losses of RegMix's 60M-parameter models on the 256 test mixtures (rows as in the 1M test files)."""
    path = REGMIX / "test_pile_loss_60m.csv"
    if not path.exists():
        pytest.skip(f"RegMix 60M test losses not found at {path}")
    return read_metrics(path)


def _synthetic_swarm(n: int = 60, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.ones(4), size=n)
    ids = pd.Index([f"r{i}" for i in range(n)], name="run")
    ratios = pd.DataFrame(W, columns=["code", "web", "math", "chat"], index=ids)
    metrics = pd.DataFrame(
        {
            "loss/web": 3.0 - 0.3 * np.log(W[:, 1] + 0.01) + rng.normal(0, 0.01, n),
            "a/acc": 0.25 + 0.5 * W[:, 2] + rng.normal(0, 0.005, n),
            "b/acc": 0.3 + 0.4 * W[:, 0] + rng.normal(0, 0.005, n),
        },
        index=ids,
    )
    return ratios, metrics


def _fit_cli(tmp_path: Path, *extra: str, metrics: str = "metrics.csv") -> int:
    """``mixlab fit`` on tmp_path/ratios.csv and tmp_path/<metrics> with ``extra`` arguments."""
    return main(
        ["fit", "--ratios", str(tmp_path / "ratios.csv"), "--metrics", str(tmp_path / metrics), *extra]
    )


def test_cv_selected_model_beats_ridge_on_regmix() -> None:
    """On half of RegMix's train runs, CV picks a nonlinear model, and it beats Ridge on the held-out test runs."""
    ratios, metrics, test_r, test_m = _regmix()
    X, y = ratios.to_numpy()[:256], metrics[PILE_CC].to_numpy()[:256]
    best, table = select_model(X, y, ["ridge", "log_ridge", "lightgbm_tuned"], folds=3)
    assert best != "ridge"
    assert table.loc[best, "spearman"] > table.loc["ridge", "spearman"] + 0.05
    assert table["chosen"].sum() == 1 and table.loc[best, "chosen"]
    test_y = test_m[PILE_CC].to_numpy()
    chosen = score_predictions(test_y, make_regressor(best).fit(X, y).predict(test_r.to_numpy()))
    ridge = score_predictions(test_y, make_regressor("ridge").fit(X, y).predict(test_r.to_numpy()))
    assert chosen["spearman"] > 0.97 > ridge["spearman"]
    assert chosen["mae"] < ridge["mae"]


def test_cross_validate_reports_metrics() -> None:
    ratios, metrics = _synthetic_swarm()
    scores = cross_validate("log_ridge", ratios.to_numpy(), metrics["a/acc"].to_numpy(), folds=4)
    assert set(scores) >= {"spearman", "pearson", "mae"}
    assert scores["spearman"] > 0.9 and scores["pearson"] > 0.9 and scores["mae"] < 0.02


def test_mixing_law_recovers_exponential_law() -> None:
    rng = np.random.default_rng(1)
    X = rng.dirichlet(np.ones(5), size=200)
    t = np.array([-2.0, 0.5, 1.0, -0.5, 0.0])
    y = 2.0 + 1.5 * np.exp(X @ t)
    model = make_regressor("mixing_law").fit(X, y)
    assert np.max(np.abs(model.predict(X) - y)) < 1e-3


@pytest.mark.parametrize("name", ["gp", "bootstrap"])
def test_uncertainty_models_give_std(name: str) -> None:
    ratios, metrics = _synthetic_swarm(n=50)
    X, y = ratios.to_numpy(), metrics["a/acc"].to_numpy()
    model = make_regressor(name).fit(X, y)
    mean, std = model.predict_with_std(X[:5])
    assert mean.shape == std.shape == (5,)
    assert np.all(std > 0)
    assert np.corrcoef(model.predict(X), y)[0, 1] > 0.95


def test_unknown_model_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown regressor"):
        make_regressor("xgboost")


def test_sum_target_direction_and_persistence(tmp_path: Path) -> None:
    ratios, metrics = _synthetic_swarm()
    ratios_path, metrics_path = tmp_path / "ratios.csv", tmp_path / "metrics.csv"
    ratios.to_csv(ratios_path)
    metrics.to_csv(metrics_path)
    total = Target.sum_of(["a/acc", "b/acc"], name="total")
    loss = Target.column("loss/web")
    assert total.direction == "max" and loss.direction == "min"
    result = fit_targets(
        read_ratios(ratios_path),
        read_metrics(metrics_path),
        [total, loss],
        model="log_ridge",
        folds=3,
        sources={"ratios": str(ratios_path), "metrics": str(metrics_path)},
    )
    np.testing.assert_allclose(result.values["total"], metrics["a/acc"] + metrics["b/acc"])
    assert set(result.summary().index) == {"total", "loss/web"}
    save_fit(result, tmp_path / "fit")
    again = load_fit(tmp_path / "fit")
    X = ratios.to_numpy()[:7]
    np.testing.assert_allclose(again.predict(X, "total"), result.predict(X, "total"))
    # a changed input table invalidates the saved fit
    metrics.iloc[0, 0] += 1
    metrics.to_csv(metrics_path)
    with pytest.raises(ValueError, match="changed"):
        load_fit(tmp_path / "fit")


def test_fit_cli_predict_writes_id_and_prediction(tmp_path: Path) -> None:
    ratios, metrics, test_r, _ = _regmix()
    ratios.iloc[:80].to_csv(tmp_path / "ratios.csv")  # id column 'index'
    metrics.iloc[:80].to_csv(tmp_path / "metrics.csv")
    other = test_r.iloc[:10].copy()
    other.index = pd.Index([f"cand{i}" for i in range(10)], name="run_id")
    other.to_csv(tmp_path / "other.csv")
    out = tmp_path / "pred.csv"
    code = _fit_cli(
        tmp_path, "--target", PILE_CC, "--model", "log_ridge", "--cv", "3", "--predict", str(tmp_path / "other.csv"),
        "--out", str(out),
    )  # fmt: skip
    assert code == 0
    df = pd.read_csv(out)
    assert list(df.columns) == ["run_id", "prediction"]
    assert list(df["run_id"]) == [f"cand{i}" for i in range(10)]
    assert df["prediction"].between(3.0, 8.0).all()


def test_fit_cli_writes_fit_folder(tmp_path: Path) -> None:
    ratios, metrics = _synthetic_swarm()
    ratios.to_csv(tmp_path / "ratios.csv")
    metrics.to_csv(tmp_path / "metrics.csv")
    code = _fit_cli(
        tmp_path, "--sum-of", "a/acc,b/acc", "--name", "total", "--model", "ridge", "--cv", "3",
        "--out", str(tmp_path / "fit"),
    )  # fmt: skip
    assert code == 0
    assert (tmp_path / "fit" / "fit.json").exists()
    assert (tmp_path / "fit" / "cv_total.png").stat().st_size > 1000
    assert "total" in pd.read_csv(tmp_path / "fit" / "cv.csv")["target"].tolist()


def test_malformed_ratios_error_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ratios, metrics = _synthetic_swarm(n=10)
    ratios = ratios.astype(object)
    ratios.iloc[2, 1] = "lots"
    ratios.to_csv(tmp_path / "ratios.csv")
    metrics.to_csv(tmp_path / "metrics.csv")
    code = _fit_cli(tmp_path)
    err = capsys.readouterr().err
    assert code == 1
    assert "ratios.csv" in err and "line 4" in err and "web" in err


def test_missing_target_column_and_id_column_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ratios, metrics = _synthetic_swarm(n=10)
    ratios.to_csv(tmp_path / "ratios.csv")
    metrics.to_csv(tmp_path / "metrics.csv")
    code = _fit_cli(tmp_path, "--target", "c/acc")
    err = capsys.readouterr().err
    assert code == 1 and "metrics.csv" in err and "c/acc" in err
    metrics.reset_index(drop=True).to_csv(tmp_path / "noid.csv", index=False)
    code = _fit_cli(tmp_path, metrics="noid.csv")
    assert code == 1 and "no run id column" in capsys.readouterr().err


def test_rows_off_simplex_are_renormalised_with_warning(tmp_path: Path) -> None:
    ratios, _ = _synthetic_swarm(n=10)
    (ratios * 1.5).to_csv(tmp_path / "ratios.csv")
    with pytest.warns(UserWarning, match="renormalised"):
        back = read_ratios(tmp_path / "ratios.csv")
    np.testing.assert_allclose(back.sum(axis=1), 1.0)


def test_failed_runs_are_excluded_with_warning() -> None:
    ratios, metrics = _synthetic_swarm(n=30)
    metrics["status"] = "ok"
    metrics.iloc[0, metrics.columns.get_loc("status")] = "failed"
    with pytest.warns(UserWarning, match="not 'ok'"):
        result = fit_targets(ratios, metrics, [Target.column("a/acc")], model="ridge", folds=3)
    assert len(result.oof["a/acc"]) == 29


def test_model_that_extrapolates_far_out_of_range_is_not_chosen() -> None:
    """A swarm concentrated near the prior: a linear fit is best in CV but explodes at the corners."""
    from mixlab.regression.validation import extrapolates

    rng = np.random.default_rng(0)
    prior = np.array([0.4, 0.3, 0.2, 0.1])
    X = rng.dirichlet(200 * prior, 60)
    y = 2.0 + 10.0 * X[:, 0] + rng.normal(0, 0.01, 60)
    assert extrapolates("linear", X, y)  # 12 at the first corner vs measured ~5.6-6.4
    assert not extrapolates("lightgbm_tuned", X, y)  # trees stay within the measured values
    best, table = select_model(X, y, candidates=("linear", "lightgbm_tuned"), folds=5)
    assert table.loc["linear", "spearman"] > table.loc["lightgbm_tuned", "spearman"]
    assert (
        best == "lightgbm_tuned"
        and bool(table.loc["linear", "extrapolates"])
        and not table.loc["linear", "eligible"]
    )


def test_ensemble_name_builds_mean_of_members_and_its_cv_is_the_mean_of_theirs() -> None:
    """``a+b`` is the equal-weight mean of a and b; with shared folds and seed, so are its out-of-fold predictions."""
    from mixlab.regression import cv_predictions
    from mixlab.regression.models import EnsembleRegressor, has_uncertainty

    ratios, metrics = _synthetic_swarm(n=40)
    X, y = ratios.to_numpy(), metrics["loss/web"].to_numpy()
    ens = make_regressor("ridge+log_ridge", random_state=3).fit(X, y)
    assert isinstance(ens, EnsembleRegressor) and ens.members == ("ridge", "log_ridge")
    parts = [make_regressor(m, random_state=3).fit(X, y).predict(X[:5]) for m in ("ridge", "log_ridge")]
    np.testing.assert_allclose(ens.predict(X[:5]), np.mean(parts, axis=0))
    oof = cv_predictions("ridge+log_ridge", X, y, folds=4, seed=3)
    members = [cv_predictions(m, X, y, folds=4, seed=3) for m in ("ridge", "log_ridge")]
    np.testing.assert_allclose(oof, np.mean(members, axis=0))
    # uncertainty only when every member has its own
    assert not has_uncertainty(ens)
    both = make_regressor("gp+bootstrap").fit(X, y)
    mean, std = both.predict_with_std(X[:5])
    assert has_uncertainty(both) and np.all(std > 0)
    np.testing.assert_allclose(mean, both.predict(X[:5]))
    for bad in ("gp+xgboost", "gp+auto", "gp+"):
        with pytest.raises(ValueError, match="unknown regressor"):
            make_regressor(bad)


def test_bootstrap_se_is_larger_for_an_unstable_model() -> None:
    """Paired bootstrap of out-of-fold predictions: a model right on most runs but wild on a few is unstable."""
    from mixlab.regression.validation import _paired_se, bootstrap_scores

    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    steady = y + rng.normal(0, 0.3, 200)
    also_steady = y + rng.normal(0, 0.3, 200)
    unstable = y + rng.normal(0, 0.05, 200)
    wild = rng.choice(200, 12, replace=False)
    unstable[wild] = rng.normal(0, 3.0, 12)  # same-size full-sample Spearman, far noisier under resampling
    boot = bootstrap_scores(y, {"a": steady, "b": also_steady, "u": unstable}, "spearman", n_boot=300)
    assert boot.shape == (300, 3) and boot.notna().all().all()
    assert _paired_se(boot, "a", "u") > 1.5 * _paired_se(boot, "a", "b")
    mae = bootstrap_scores(y, {"a": steady}, "mae", n_boot=50)
    assert mae["a"].mean() == pytest.approx(0.3 * np.sqrt(2 / np.pi), abs=0.03)  # E|N(0, 0.3)|
    # a constant prediction has no rank correlation: NaN, and too few finite resamples give no SE
    flat = bootstrap_scores(y, {"a": steady, "c": np.zeros(200)}, "spearman", n_boot=20)
    assert flat["c"].isna().all() and np.isnan(_paired_se(flat, "a", "c"))


def test_selection_averages_models_within_noise_and_keeps_a_clear_winner() -> None:
    """GP and log-ridge, which CV cannot separate, are averaged; trees (two SEs behind) and ridge (MAE) are not."""
    rng = np.random.default_rng(4)
    X = rng.dirichlet(np.ones(4), 80)
    y = 3.0 - 0.3 * np.log(X[:, 1] + 0.01) + 0.2 * X[:, 0] * X[:, 2] + rng.normal(0, 0.02, 80)
    cands = ["ridge", "log_ridge", "gp", "lightgbm_tuned"]
    best, table, oofs = select_model(X, y, cands, folds=5, return_oof=True)
    assert best == "gp+log_ridge"
    assert table.loc[best, "chosen"] and table["chosen"].sum() == 1
    assert not table.loc["ridge", "eligible"]  # MAE > 3x the best: never a member
    for name, inside in (("log_ridge", True), ("lightgbm_tuned", False)):
        gap = table.loc["gp", "spearman"] - table.loc[name, "spearman"]
        assert bool(gap <= table.loc[name, "se_vs_best"]) is inside
    # the ensemble's CV row is the score of the members' mean out-of-fold predictions
    np.testing.assert_allclose(oofs[best], (oofs["log_ridge"] + oofs["gp"]) / 2)
    assert table.loc[best, "spearman"] == pytest.approx(score_predictions(y, oofs[best])["spearman"])
    # a wider window takes the trees in too; without the ensemble the single best model is chosen
    assert select_model(X, y, cands, folds=5, window=5.0)[0] == "gp+log_ridge+lightgbm_tuned"
    single, t2 = select_model(X, y, cands, folds=5, ensemble=False)
    assert single == "gp" and len(t2) == len(cands)


def test_selection_on_a_tiny_swarm_is_quick_and_sane() -> None:
    """A demo-sized swarm (10 runs): every default candidate, bootstrap and ensemble; no crash, no crawl."""
    import time

    from mixlab.regression import AUTO_CANDIDATES

    rng = np.random.default_rng(2)
    X = rng.dirichlet(np.ones(4), 10)
    y = 0.25 + 0.5 * X[:, 2] + rng.normal(0, 0.005, 10)
    t0 = time.perf_counter()
    best, table = select_model(X, y, folds=5)
    assert time.perf_counter() - t0 < 60  # about 2 s on an idle 2-core machine
    assert table["chosen"].sum() == 1 and set(AUTO_CANDIDATES) <= set(table.index)
    assert all(bool(table.loc[m, "eligible"]) for m in best.split("+"))
    pred = make_regressor(best).fit(X, y).predict(rng.dirichlet(np.ones(4), 50))
    assert np.isfinite(pred).all() and y.min() - np.ptp(y) < pred.min() <= pred.max() < y.max() + np.ptp(y)


def test_selection_on_regmix_1m_ranks_the_60m_runs() -> None:
    """Chosen on the 1M train runs only, the ensemble holds its ranking at 60M better than CV's single pick.

    Cheap candidates for speed: on RegMix's 512 runs trees and log-ridge are within CV noise of each other.
    """
    ratios, metrics, test_r, test_m = _regmix()
    m60 = _regmix_60m()
    X, y = ratios.to_numpy(), metrics[PILE_CC].to_numpy()
    Xte = test_r[ratios.columns].to_numpy()
    cands = ["ridge", "log_ridge", "lightgbm_tuned"]
    best, table = select_model(X, y, cands, folds=5)
    singles = table.loc[cands]
    single = str(singles.loc[singles["eligible"].astype(bool), "spearman"].idxmax())  # pick without ensembles
    assert sorted(best.split("+")) == ["lightgbm_tuned", "log_ridge"]
    pred = make_regressor(best).fit(X, y).predict(Xte)
    alone = make_regressor(single).fit(X, y).predict(Xte)
    scores = {
        (name, scale): score_predictions(truth[PILE_CC].to_numpy(), p)["spearman"]
        for name, p in (("ensemble", pred), ("single", alone))
        for scale, truth in (("1m", test_m), ("60m", m60))
    }
    assert scores["ensemble", "1m"] > 0.99 and scores["ensemble", "60m"] > 0.985
    assert scores["ensemble", "60m"] > scores["single", "60m"]
    assert scores["ensemble", "1m"] >= scores["single", "1m"] - 0.001
