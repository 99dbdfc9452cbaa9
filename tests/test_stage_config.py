"""One config model per step: every stage subcommand reads its section of the pipeline YAML with
``--config``, flags given override it, errors name the file and the field, and the pipeline's seed
reaches the cross-validation split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from mixlab.cli import main
from mixlab.config import PipelineConfig
from mixlab.evaluation.config import EvalConfig
from mixlab.regression.config import FitConfig
from mixlab.regression.validation import cv_splits
from mixlab.search.config import SearchConfig
from mixlab.stage_config import stage_config

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GPT2 = SHARED / "tokenizers" / "gpt2" / "tokenizer.json"


def _pipeline(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    task = tmp_path / "reasoning.jsonl"
    task.write_text('{"question": "Two plus two?", "choices": ["3", "4"], "answer": 1}\n')
    raw: dict[str, Any] = {
        "workdir": str(tmp_path / "work"),
        "seed": 0,
        "ingest": {"inputs": [str(tmp_path)], "tokenizer": "gpt2"},
        "mixtures": {"n": 4},
        "select": {"budget_tokens": 10_000},
        "proxy": {},
        "evaluation": {"tasks": {"reasoning": str(task)}},
        "build": {"budget_tokens": 20_000},
    }
    for key, value in sections.items():
        raw[key] = {**raw[key], **value} if isinstance(raw.get(key), dict) else value
    return raw


def _write(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def _folds(seed: int) -> list[list[int]]:
    return [sorted(test.tolist()) for _, test in cv_splits(20, 5, seed)]


# -- the seed ----------------------------------------------------------------------------------------------
def test_the_pipeline_seed_reaches_the_cv_split(tmp_path: Path) -> None:
    one = PipelineConfig.model_validate(_pipeline(tmp_path, seed=1))
    again = PipelineConfig.model_validate(_pipeline(tmp_path, seed=1))
    two = PipelineConfig.model_validate(_pipeline(tmp_path, seed=2))
    assert (one.fit.seed, one.search.seed, two.fit.seed) == (1, 1, 2)
    assert _folds(one.fit.fold_seed) == _folds(again.fit.fold_seed)
    assert _folds(one.fit.fold_seed) != _folds(two.fit.fold_seed)
    own = PipelineConfig.model_validate(_pipeline(tmp_path, seed=1, fit={"seed": 5}))
    assert own.fit.seed == 5 and own.search.seed == 1  # a section's own seed wins


def test_fit_and_search_split_with_the_pipeline_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The folds of the metric choice and of the fit, and the search's simulation, use the pipeline's seed."""
    from mixlab.pipeline import fit_and_search
    from mixlab.regression import validation
    from mixlab.search import objectives

    seen: list[int] = []
    real_splits = validation.cv_splits

    def record(n: int, folds: int = 5, seed: int = 0) -> Any:
        seen.append(seed)
        return real_splits(n, folds, seed)

    sim_seeds: list[int] = []
    real_sim = objectives.simulate_candidates

    def record_sim(prior: Any, n: int, seed: int, *rest: Any) -> Any:
        sim_seeds.append(seed)
        return real_sim(prior, n, seed, *rest)

    monkeypatch.setattr(validation, "cv_splits", record)
    monkeypatch.setattr(objectives, "simulate_candidates", record_sim)
    raw = _pipeline(
        tmp_path,
        seed=7,
        fit={"model": "ridge", "cv_folds": 3},
        search={"n_samples": 500, "top_k": 8},
        evaluation={"signal_model": "ridge", "metric": "acc"},
    )
    tasks = raw["evaluation"]["tasks"]
    tasks["rag"] = tasks["reasoning"]
    cfg = PipelineConfig.model_validate(raw)
    ratios, metrics = _swarm(12, ["reasoning/acc", "rag/acc"])
    ratios.index.name = "run"
    metrics["status"] = "ok"
    prior = {d: 1 / 3 for d in ratios.columns}
    fit_and_search(cfg, ratios, metrics, prior, dict.fromkeys(ratios.columns, 10**9))
    assert seen and set(seen) == {7}
    assert sim_seeds == [7]


# -- the section reader --------------------------------------------------------------------------------------
def test_stage_config_reads_its_section_flags_override_and_errors_name_file_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path / "pipeline.yaml", _pipeline(tmp_path, seed=3, evaluation={"batch_size": 4}))
    ev = stage_config(EvalConfig, path, "evaluation", {"limit": 9})
    assert (ev.batch_size, ev.limit, list(ev.tasks)) == (4, 9, ["reasoning"])
    assert stage_config(EvalConfig, path, "evaluation", {"batch_size": 2}).batch_size == 2
    # a pipeline without the section: the stage's defaults, and the pipeline's seed
    fit = stage_config(FitConfig, path, "fit", {}, inherit={"seed": "seed"})
    assert (fit.model, fit.cv_folds, fit.seed) == ("auto", 5, 3)
    # a file holding only the stage's fields
    alone = _write(tmp_path / "search.yaml", {"n_samples": 321, "method": "constrained"})
    search = stage_config(SearchConfig, alone, "search", {"method": "topk"})
    assert (search.n_samples, search.method) == (321, "topk")

    bad = _write(tmp_path / "bad.yaml", _pipeline(tmp_path, evaluation={"batch_size": 0}))
    with pytest.raises(ValueError) as err:
        stage_config(EvalConfig, bad, "evaluation", {})
    assert str(bad) in str(err.value) and "evaluation.batch_size: Input should be greater" in str(err.value)
    with pytest.raises(ValueError, match=r"evaluation\.limit \(from the command line\)"):
        stage_config(EvalConfig, path, "evaluation", {"limit": 0})
    typo = _write(tmp_path / "typo.yaml", _pipeline(tmp_path, search={"top_kk": 3}))
    with pytest.raises(
        ValueError, match=r"typo\.yaml: invalid search config:\n  search\.top_kk: Extra inputs"
    ):
        stage_config(SearchConfig, typo, "search", {})


# -- the four commands that had no --config -----------------------------------------------------------------
@pytest.mark.skipif(not GPT2.exists(), reason=f"shared tokenizer not found at {GPT2}")
def test_ingest_reads_its_section_and_flags_override(tmp_path: Path) -> None:
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"text": f"document number {i} says hello"}) + "\n" for i in range(5)))
    path = _write(
        tmp_path / "pipeline.yaml",
        _pipeline(tmp_path, ingest={"inputs": [str(src)], "tokenizer": str(GPT2), "shard_docs": 2}),
    )
    assert main(["ingest", "--config", str(path), "--out", str(tmp_path / "a")]) == 0
    assert len(list((tmp_path / "a" / "shards").glob("*.parquet"))) == 3  # 5 documents, 2 per shard
    assert main(["ingest", "--config", str(path), "--out", str(tmp_path / "b"), "--shard-docs", "5"]) == 0
    assert len(list((tmp_path / "b" / "shards").glob("*.parquet"))) == 1


def test_ingest_without_tokenizer_names_the_field_and_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", str(tmp_path), "--out", str(tmp_path / "p")]) == 1
    err = capsys.readouterr().err
    assert "ingest.tokenizer: Field required" in err and "--tokenizer" in err


class _Stop(Exception):
    pass


def test_eval_reads_its_section_and_flags_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mixlab.evaluation import command

    calls: list[dict[str, Any]] = []

    def fake_evaluate(model: Any, tokenizer: Any, task: Any, batch_size: int, limit: int | None) -> Any:
        calls.append({"task": task.name, "batch_size": batch_size, "limit": limit})
        raise _Stop

    devices: list[str | None] = []
    monkeypatch.setattr(command, "load_model", lambda path, device: devices.append(device) or (None, None))
    monkeypatch.setattr(command, "evaluate_task", fake_evaluate)
    path = _write(
        tmp_path / "pipeline.yaml",
        _pipeline(tmp_path, evaluation={"batch_size": 4, "limit": 3, "device": "cpu"}),
    )
    with pytest.raises(_Stop):
        main(["eval", "--model", "m", "--config", str(path), "--out", str(tmp_path / "o")])
    assert calls[-1] == {"task": "reasoning", "batch_size": 4, "limit": 3} and devices[-1] == "cpu"
    with pytest.raises(_Stop):
        main(
            ["eval", "--model", "m", "--config", str(path), "--out", str(tmp_path / "o"), "--batch-size", "2"]
        )
    assert calls[-1] == {"task": "reasoning", "batch_size": 2, "limit": 3}


def _swarm(
    n: int = 16, columns: tuple[str, ...] | list[str] = ("a/acc",)
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(3), n)
    runs = [f"mix-{i:03d}" for i in range(n)]
    ratios = pd.DataFrame(w, index=pd.Index(runs, name="run"), columns=["code", "math", "web"])
    metrics = pd.DataFrame(
        {c: 0.2 + 0.5 * w[:, 0] + 0.01 * rng.standard_normal(n) for c in columns}, index=ratios.index
    )
    return ratios, metrics


def test_fit_reads_its_section_and_flags_override(tmp_path: Path) -> None:
    ratios, metrics = _swarm()
    ratios.to_csv(tmp_path / "ratios.csv")
    metrics.to_csv(tmp_path / "metrics.csv")
    path = _write(
        tmp_path / "pipeline.yaml", _pipeline(tmp_path, seed=4, fit={"model": "ridge", "cv_folds": 3})
    )
    base = ["fit", "--ratios", str(tmp_path / "ratios.csv"), "--metrics", str(tmp_path / "metrics.csv")]
    assert main([*base, "--config", str(path), "--out", str(tmp_path / "f1")]) == 0
    spec = json.loads((tmp_path / "f1" / "fit.json").read_text())
    assert (spec["folds"], spec["seed"], spec["chosen"]) == (3, 4, {"a/acc": "ridge"})
    assert (
        main([*base, "--config", str(path), "--out", str(tmp_path / "f2"), "--cv", "4", "--seed", "1"]) == 0
    )
    spec = json.loads((tmp_path / "f2" / "fit.json").read_text())
    assert (spec["folds"], spec["seed"], spec["chosen"]) == (4, 1, {"a/acc": "ridge"})


def test_search_reads_its_section_and_flags_override(tmp_path: Path) -> None:
    ratios, metrics = _swarm()
    ratios.to_csv(tmp_path / "ratios.csv")
    metrics.to_csv(tmp_path / "metrics.csv")
    raw = _pipeline(
        tmp_path,
        fit={"model": "ridge", "cv_folds": 3},
        search={"n_samples": 2000, "top_k": 8, "max_weight": 0.6},
    )
    path = _write(tmp_path / "pipeline.yaml", raw)
    base = ["search", "--ratios", str(tmp_path / "ratios.csv"), "--metrics", str(tmp_path / "metrics.csv")]
    assert main([*base, "--config", str(path), "--out", str(tmp_path / "s1")]) == 0
    first = json.loads((tmp_path / "s1" / "optimal.json").read_text())["objectives"]["a/acc"]
    assert max(first["weights"].values()) == pytest.approx(0.6, abs=1e-6)  # code pushed to its bound
    assert main([*base, "--config", str(path), "--out", str(tmp_path / "s2"), "--max-weight", "0.45"]) == 0
    second = json.loads((tmp_path / "s2" / "optimal.json").read_text())["objectives"]["a/acc"]
    assert max(second["weights"].values()) == pytest.approx(0.45, abs=1e-6)


def test_the_commented_starter_pipeline_still_reads_back(tmp_path: Path) -> None:
    """``mixlab init`` writes every key with its field's description; the composed models keep that."""
    from mixlab.init_command import commented_yaml

    raw = _pipeline(
        tmp_path,
        evaluation={"validation": {}, "metric": "auto", "batch_size": 64, "block_size": 256},
        fit={"model": "gp", "cv_folds": 5},
        search={"method": "topk", "n_samples": 100_000, "top_k": 64, "objective": "total"},
    )
    text = "\n".join(commented_yaml(raw)) + "\n"
    assert yaml.safe_load(text) == raw
    PipelineConfig.model_validate(yaml.safe_load(text))
    for comment in (
        "# How input files become the pool's text shards.",
        "# How proxy models are evaluated",
        "# How the regressors are fitted",
        "# How optima are searched for, and the bounds every optimum respects.",
        "  # cross-validation folds",
        "  # mixtures simulated per objective",
        "  # tokens per window when scoring held-out domain text",
    ):
        assert comment in text, comment
