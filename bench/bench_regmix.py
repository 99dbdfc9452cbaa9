"""Benchmark mixlab's mixture regression against RegMix's own regressors on RegMix's released runs.

Fits on the 512 train runs (1M-parameter models), scores Spearman x100 per Pile loss on the 256 held-out
test mixtures twice: against their 1M losses, and against the losses of 60M-parameter models trained on
the same mixtures (does a ranking learned on small proxies hold for a bigger model?). mixlab's regressor
is chosen per target by 5-fold CV on the 1M train runs only (``select_model``); the test losses at either
scale are used only for the printed scores. Also times one fit of the chosen model + a 100k-mixture
top-k search.

    .venv/bin/python bench/bench_regmix.py            # all 13 losses (a few minutes on 2 cores)
    .venv/bin/python bench/bench_regmix.py --quick    # Pile-CC only
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from mixlab.regression import make_regressor, score_predictions, select_model
from mixlab.search import simulate_topk
from mixlab.swarm import read_metrics, read_ratios

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "regmix"
PILE_CC = "metric/the_pile_pile_cc_val_loss"


SCALES = ("1m", "60m")


def spearman100(
    model_name: str, Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray, tests: dict[str, np.ndarray]
) -> dict[str, float]:
    """Test Spearman x100 of ``model_name`` fitted on the train runs, against each scale's test losses."""
    pred = make_regressor(model_name).fit(Xtr, ytr).predict(Xte)
    return {scale: 100 * score_predictions(yte, pred)["spearman"] for scale, yte in tests.items()}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="Pile-CC only")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2, help="processes over targets")
    args = parser.parse_args()
    if not (DATA / "train_mixture_1m.csv").exists():
        print(f"RegMix data not found at {DATA}")
        return 1
    warnings.filterwarnings("ignore", category=UserWarning)
    train_r, test_r = read_ratios(DATA / "train_mixture_1m.csv"), read_ratios(DATA / "test_mixture_1m.csv")
    train_m = read_metrics(DATA / "train_pile_loss_1m.csv")
    # the 60M runs trained the same 256 test mixtures (test_mixture_60m.csv is the 1M file, byte for byte)
    test_m = {
        s: read_metrics(DATA / f"test_pile_loss_{s}.csv")
        for s in SCALES
        if (DATA / f"test_pile_loss_{s}.csv").exists()
    }
    if "60m" not in test_m:
        print(f"(no test_pile_loss_60m.csv in {DATA}: 1M columns only)")
    Xtr, Xte = train_r.to_numpy(), test_r[train_r.columns].to_numpy()
    targets = [PILE_CC] if args.quick else list(train_m.columns)

    def one_target(col: str) -> dict:
        warnings.filterwarnings("ignore", category=UserWarning)
        ytr = train_m[col].to_numpy()
        tests = {s: m[col].to_numpy() for s, m in test_m.items()}
        t0 = time.perf_counter()
        chosen, table = select_model(Xtr, ytr, folds=args.folds)
        t_select = time.perf_counter() - t0
        return {
            "target": col.removeprefix("metric/the_pile_").removesuffix("_val_loss"),
            "linear": spearman100("linear", Xtr, ytr, Xte, tests),
            "lightgbm": spearman100("lightgbm", Xtr, ytr, Xte, tests),
            "chosen": chosen,
            "cv": 100 * float(table.loc[chosen, "spearman"]),
            "n_candidates": int((~table.index.str.contains("+", regex=False)).sum()),
            "mixlab": spearman100(chosen, Xtr, ytr, Xte, tests),
            "select_s": t_select,
        }

    # targets are independent: spread them over processes (model selection is the slow part)
    t_wall = time.perf_counter()
    rows = Parallel(n_jobs=min(args.jobs, len(targets)))(delayed(one_target)(col) for col in targets)
    t_wall = time.perf_counter() - t_wall
    scales = list(test_m)
    width = 7 * len(scales) - 1
    print("Spearman x100 on the 256 test mixtures of models fitted on the 512 1M train runs")
    print(f"{'':18s} {'linear':>{width}s} {'RegMix LGBM':>{width}s}  {'mixlab':>{width}s}")
    print(
        f"{'target':18s} "
        + "  ".join(" ".join(f"{s.upper():>6s}" for s in scales) for _ in range(3))
        + "  chosen by CV"
    )
    for r in rows:
        print(
            f"{r['target']:18s} "
            + "  ".join(" ".join(f"{r[m][s]:6.2f}" for s in scales) for m in ("linear", "lightgbm", "mixlab"))
            + f"  {r['chosen']} (CV {r['cv']:.2f})",
            flush=True,
        )
    t_select = sum(r["select_s"] for r in rows)
    n_candidates = rows[0]["n_candidates"]
    goals = {"1m": 99.2, "60m": 99.0}

    def summary(label: str, sel: list[dict]) -> None:
        for s in scales:
            lin, lgb, mix = (float(np.mean([r[m][s] for r in sel])) for m in ("linear", "lightgbm", "mixlab"))
            goal = f" (target >= {goals[s]})" if label == "Pile-CC" else ""
            print(
                f"{label} {s.upper():>3s}: Spearman x100  linear {lin:.2f} | RegMix LightGBM {lgb:.2f} | "
                f"mixlab {mix:.2f}{goal}  -> mixlab - LightGBM = {mix - lgb:+.2f}, ratio {mix / lgb:.4f}"
            )

    print()
    summary("Pile-CC", [r for r in rows if r["target"] == "pile_cc"])
    if len(rows) > 1:
        summary(f"mean over {len(rows)} losses", rows)
    print(
        f"model selection ({args.folds}-fold CV of {n_candidates} candidates + window ensemble x {len(rows)} "
        f"target(s)): {t_select:.1f} s summed over targets, {t_wall:.1f} s wall over {args.jobs} process(es)"
    )

    # fit + 100k-mixture search with each model CV chose, on the first target it was chosen for
    prior = Xtr.mean(axis=0)
    for chosen in dict.fromkeys(r["chosen"] for r in rows):
        target = next(r["target"] for r in rows if r["chosen"] == chosen)
        col = next(c for c in targets if target in c)
        t0 = time.perf_counter()
        model = make_regressor(chosen).fit(Xtr, train_m[col].to_numpy())
        t_fit = time.perf_counter() - t0
        w = simulate_topk(model.predict, prior, n=100_000, k=128, seed=0, direction="min")
        t_total = time.perf_counter() - t0
        best = dict(sorted(zip(train_r.columns, w, strict=True), key=lambda kv: -kv[1])[:4])
        print(
            f"{target}: fit ({chosen}) {t_fit:.2f} s + 100k-mixture top-k search {t_total - t_fit:.2f} s = "
            f"{t_total:.2f} s (target < 10 s); predicted loss at optimum {model.predict(w[None])[0]:.4f} "
            f"(best train run {train_m[col].min():.4f}); top weights "
            + ", ".join(f"{k.removeprefix('train_the_pile_')}={v:.3f}" for k, v in best.items())
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
