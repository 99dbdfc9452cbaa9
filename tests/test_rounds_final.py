"""Rounds of proxies, the final run, and a run killed mid-swarm (issue 15), on the smallest pipeline.

One uninterrupted run (``reference``) of two rounds (3 + 2 mixtures) with a final run serves every test: the
rounds' records and the rerun that trains nothing, the final model and its before/after scores, and the
outputs a killed-and-rerun run must reproduce.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tiny_pipeline import TASKS, make_world, pipeline_config, write_pipeline

from mixlab.cli import main
from mixlab.config import PipelineConfig, load_config
from mixlab.final import FinalConfig, run_final
from mixlab.status import format_status, run_status
from mixlab.swarm import read_ratios

ROUND_RUNS = ["mix-000", "mix-001", "mix-002", "r2-mix-000", "r2-mix-001"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_world(tmp_path_factory.mktemp("tiny-world"))


@pytest.fixture(scope="module")
def pipeline(world: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny-pipeline")
    return write_pipeline(root / "pipeline.yaml", pipeline_config(world, root / "default-run"))


@pytest.fixture(scope="module")
def reference(pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(["run", str(pipeline), "--out", str(out)]) == 0
    return out


def _models(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("model.safetensors")}


def test_rounds_propose_later_rounds_and_a_rerun_trains_nothing(
    reference: Path, pipeline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = pd.read_csv(reference / "swarm" / "metrics.csv", index_col=0)
    assert list(metrics.index) == ROUND_RUNS
    assert (metrics["status"] == "ok").all()
    rounds = json.loads((reference / "rounds.json").read_text())
    assert rounds["sizes"] == [3, 2] and rounds["objective"] == "total"
    assert [r["round"] for r in rounds["rounds"]] == [1, 2]
    assert [r["runs"] for r in rounds["rounds"]] == [ROUND_RUNS[:3], ROUND_RUNS[3:]]
    for rec in rounds["rounds"]:
        lo, hi = rec["interval"]
        assert lo <= rec["predicted"] <= hi
        assert sum(rec["optimum"].values()) == pytest.approx(1.0)
    optimal = json.loads((reference / "optimal_total.json").read_text())
    assert rounds["rounds"][-1]["predicted"] == pytest.approx(optimal["predicted"])
    # round 2's mixtures are new mixtures, away from round 1's
    first = read_ratios(reference / "ratios.csv")
    second = read_ratios(reference / "rounds" / "round-2.csv")
    assert np.allclose(second.sum(axis=1), 1.0)
    gaps = np.abs(second.to_numpy()[:, None, :] - first[second.columns].to_numpy()[None, :, :]).sum(axis=2)
    assert gaps.min() >= 0.05 - 1e-9
    html = (reference / "report.html").read_text(encoding="utf-8")
    assert "predicted optimum after each round" in html and "Final run" in html

    before = _models(reference)
    assert len(before) == len(ROUND_RUNS) + 1  # every proxy and the final model
    assert main(["run", str(pipeline), "--out", str(reference)]) == 0
    assert _models(reference) == before  # nothing trained again, no round refitted into new mixtures
    assert read_ratios(reference / "rounds" / "round-2.csv").equals(second)
    capsys.readouterr()
    assert main(["status", str(reference)]) == 0
    status = capsys.readouterr().out
    lines = {line[:22].strip(): line for line in status.splitlines()}
    assert "done" in lines["round 1"] and "3 ok of 3 runs" in lines["round 1"]
    assert "done" in lines["round 2"] and "predicted total" in lines["round 2"]
    assert "done" in lines["final run"] and "S(acc)" in lines["final run"]


def test_final_run_merges_a_loadable_model_and_scores_before_and_after(reference: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(reference / "final" / "model")
    assert model.num_parameters() > 0
    final = json.loads((reference / "final" / "final.json").read_text())
    assert final["tasks"] == list(TASKS)
    assert {"acc", "acc_norm", "gold_bpb", "correct_prob", "margin"} <= set(final["metrics"])
    for metric in final["metrics"]:
        for task in TASKS:
            diff = final["after"][task][metric] - final["before"][task][metric]
            assert final["S"][metric][task] == pytest.approx(diff)
        assert final["S"][metric]["total"] == pytest.approx(sum(final["S"][metric][t] for t in TASKS))
    assert final["S"]["gold_bpb"]["total"] != 0.0  # the merged model is not the base model
    recipe = final["recipe"]
    assert (recipe["mode"], recipe["r"], recipe["alpha"], recipe["dropout"]) == ("dora", 16, 32.0, 0.1)
    assert final["train"]["steps"] == 3
    html = (reference / "report.html").read_text(encoding="utf-8")
    assert "before (base model)" in html and "S = after - before" in html


def test_final_run_redoes_only_what_a_change_touched(reference: Path, pipeline: Path, tmp_path: Path) -> None:
    from mixlab.pool.pool import Pool

    work = tmp_path / "run"
    shutil.copytree(reference / "final", work / "final")
    cfg = load_config(pipeline)
    tokenizer = Pool.open(reference / "pool").tokenizer_spec
    base = str(cfg.proxy.base_model)
    first = json.loads((reference / "final" / "final.json").read_text())
    model = work / "final" / "model" / "model.safetensors"
    stamp = model.stat().st_mtime_ns
    again = run_final(cfg.final, base, tokenizer, cfg.evaluation, work, seed=cfg.seed)
    assert model.stat().st_mtime_ns == stamp  # same inputs: nothing redone
    assert again["S"] == first["S"]
    lr = cfg.final.model_copy(update={"lr": 2e-5})
    changed = run_final(lr, base, tokenizer, cfg.evaluation, work, seed=cfg.seed)
    assert model.stat().st_mtime_ns != stamp  # the recipe changed: trained again
    assert changed["before"] == first["before"]  # the base model's scores were reused
    assert changed["recipe"]["lr"] == 2e-5


def test_a_late_setting_keeps_the_swarm_and_a_proxy_setting_retrains_it(
    reference: Path, world: dict[str, Path], tmp_path: Path
) -> None:
    """build.budget_tokens is read by the build only, and select.shuffle_bucket_chars changes how export
    writes, not what: no proxy is trained again. proxy.lr changes every proxy.

    (A fit setting such as evaluation.metric is not late here: round 2's mixtures are proposed by the fit.)
    """
    work = tmp_path / "run"
    shutil.copytree(reference, work, symlinks=True)
    proxies = {p: t for p, t in _models(work).items() if "final" not in p.parts}
    raw = pipeline_config(world, work)
    raw["build"]["budget_tokens"] = 4000
    raw["select"]["shuffle_bucket_chars"] = 1000  # how export writes its files, not what they hold
    late = write_pipeline(tmp_path / "late.yaml", raw)
    assert main(["run", str(late), "--out", str(work)]) == 0
    assert {p: t for p, t in _models(work).items() if p in proxies} == proxies
    assert json.loads((work / "final" / "dataset" / "manifest.json").read_text())["budget_tokens"] == 4000
    raw["proxy"]["lr"] = 0.02
    proxy_edit = write_pipeline(tmp_path / "proxy.yaml", raw)
    assert main(["run", str(proxy_edit), "--out", str(work)]) == 0
    retrained = {p for p, t in _models(work).items() if p in proxies and t != proxies[p]}
    assert retrained == set(proxies)
    log = (work / "logs" / "mixlab.log").read_text(encoding="utf-8")
    assert "swarm: the proxy recipe changed (proxy); its 5 finished runs are trained again" in log


def test_final_run_is_skipped_without_a_dataset(
    reference: Path, world: dict[str, Path], tmp_path: Path
) -> None:
    from mixlab.pipeline import final_step
    from mixlab.pool.pool import Pool

    cfg = PipelineConfig.model_validate(pipeline_config(world, tmp_path))
    final, note = final_step(cfg, Pool.open(reference / "pool"), tmp_path, built=False)
    assert final is None and note.startswith("skipped: no final dataset")
    (tmp_path / "timings.json").write_text(json.dumps({"final": 0.0}))
    line = next(s for s in run_status(tmp_path) if s.name == "final run")
    assert line.state == "skipped" and "untrusted" in line.detail


def test_quick_shrinks_a_pipeline_to_smoke_test_scale(world: dict[str, Path], tmp_path: Path) -> None:
    raw = pipeline_config(world, tmp_path, rounds=[64, 32, 16])
    raw["mixtures"]["repeats"] = 3
    raw["proxy"]["max_steps"] = 500
    raw["confirm"] = {"enabled": True, "seeds": 5, "per_task": True}
    raw["final"] = {}
    quick = PipelineConfig.model_validate(raw).quick()
    assert quick.rounds.sizes == [6, 3, 3] and quick.mixtures.n == 6 and quick.mixtures.repeats == 2
    assert quick.proxy.max_steps == 20 and quick.evaluation.limit == 8  # a smaller setting stays
    assert (quick.confirm.seeds, quick.confirm.per_task) == (2, False)
    assert (quick.final.max_steps, quick.final.batch_size, quick.final.block_size) == (10, 4, 256)
    recipe = FinalConfig()  # the challenge's recipe is the default
    assert (recipe.lr, recipe.r, recipe.alpha, recipe.dropout, recipe.epochs) == (1e-5, 16, 32.0, 0.1, 1.0)
    assert (recipe.block_size, recipe.batch_size, len(recipe.target_modules)) == (1024, 24, 9)


def _metrics_text(run: Path) -> pd.DataFrame:
    table = pd.read_csv(run / "swarm" / "metrics.csv", dtype=str, keep_default_na=False)
    timing = [c for c in table.columns if "seconds" in c or c.endswith("/time")]
    return table.drop(columns=timing)


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _dataset(run: Path) -> dict[str, Any]:
    """The final dataset's files, its manifest without the pool's path (which names the run folder)."""
    files: dict[str, Any] = _tree(run / "final" / "dataset")
    manifest = json.loads(files.pop("manifest.json"))
    assert Path(manifest.pop("pool")) == run / "pool"
    return {**files, "manifest.json": manifest}


def _rounds_without_times(run: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run / "rounds.json").read_text())
    for rec in data["rounds"]:
        rec.pop("seconds")
    return data


def test_killed_mid_swarm_rerun_equals_an_uninterrupted_run(
    reference: Path, pipeline: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    log = tmp_path / "killed.log"
    cmd = [sys.executable, "-m", "mixlab.cli", "-q", "run", str(pipeline), "--out", str(out)]
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    runs = out / "swarm" / "runs"
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        folders = list(runs.iterdir()) if runs.is_dir() else []
        done = [d for d in folders if (d / "DONE").exists()]
        if done and len(done) < len(folders):  # one run finished, another in flight
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(60)
    assert proc.returncode == -signal.SIGKILL, log.read_text()
    finished = {d.name: _models(d) for d in runs.iterdir() if (d / "DONE").exists()}
    assert 0 < len(finished) < len(ROUND_RUNS)
    status = format_status(run_status(out))
    assert "interrupted" in status and "final run" in status  # nobody holds the run lock any more

    assert main(["run", str(pipeline), "--out", str(out)]) == 0
    for name, models in finished.items():
        assert _models(runs / name) == models, f"{name} was trained again"
    assert _metrics_text(out).equals(_metrics_text(reference))
    optimal = sorted(p.name for p in reference.glob("optimal*.json"))
    assert sorted(p.name for p in out.glob("optimal*.json")) == optimal
    for name in optimal:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert _dataset(out) == _dataset(reference)
    assert _rounds_without_times(out) == _rounds_without_times(reference)
