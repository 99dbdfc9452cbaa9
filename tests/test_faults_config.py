"""The pipeline validator refuses, before any stage runs, what used to fail hours later (or never):
each error names the file, the dotted key and, where there is a choice, the allowed values."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from mixlab.cli import main
from mixlab.config import load_config
from mixlab.yamlconfig import load_section, load_yaml_mapping

TASKS = Path(__file__).resolve().parents[2] / "shared" / "data" / "tasks"


def _base(tmp_path: Path) -> dict[str, Any]:
    task = tmp_path / "reasoning.jsonl"
    task.write_text('{"question": "Two plus two?", "choices": ["3", "4"], "answer": 1}\n')
    return {
        "workdir": str(tmp_path / "work"),
        "ingest": {"inputs": [str(tmp_path)], "tokenizer": "gpt2"},
        "mixtures": {"n": 4},
        "select": {"budget_tokens": 10_000},
        "proxy": {},
        "evaluation": {"tasks": {"reasoning": str(task)}},
        "build": {"budget_tokens": 20_000},
    }


def _write(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_the_base_config_is_valid(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, _base(tmp_path)))
    assert cfg.search.objective == "total" and cfg.ingest.on_error == "quarantine"


INVALID = [
    ("build.budget_tokens", {"build": {"budget_tokens": -1000}}, "greater than 0"),
    ("search.objective", {"search": {"objective": "no_such_task"}}, "allowed: total, reasoning"),
    ("mixtures.n", {"mixtures": {"n": 2}}, "at least 3 proxy runs"),
    ("fit.model", {"fit": {"model": "bogus"}}, "allowed: linear, ridge"),
    ("fit.cv_folds", {"fit": {"cv_folds": 0}}, "greater than or equal to 2"),
    ("evaluation.limit", {"evaluation": {"limit": 0}}, "greater than or equal to 1"),
    ("search", {"search": {"min_weight": 0.5, "max_weight": 0.2}}, "min_weight 0.5 is above max_weight 0.2"),
    ("search.max_weight", {"search": {"max_weight": 1.5}}, "less than or equal to 1"),
    ("evaluation.tasks.gone", {"evaluation": {"tasks": {"gone": "/nowhere/gone.jsonl"}}}, "does not exist"),
    ("evaluation.tasks.../x", {"evaluation": {"tasks": {"../x": "TASK"}}}, "task name '../x'"),
    (
        "evaluation.validation.general",
        {"evaluation": {"validation": {"general": "/no.jsonl"}}},
        "does not exist",
    ),
    ("ingest.max_chars", {"ingest": {"max_chars": -1}}, "greater than or equal to 1"),
    ("ingest.shard_docs", {"ingest": {"shard_docs": 0}}, "greater than or equal to 1"),
    ("ingest.on_error", {"ingest": {"on_error": "ignore"}}, "'quarantine' or 'fail'"),
    ("workers", {"workers": 0}, "greater than or equal to 1"),
    ("build.formats", {"build": {"formats": []}}, "at least 1 item"),
]


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize(("key", "patch", "message"), INVALID, ids=[k for k, _, _ in INVALID])
def test_invalid_config_is_refused_naming_file_and_key(
    tmp_path: Path, key: str, patch: dict[str, Any], message: str
) -> None:
    raw = _merge(_base(tmp_path), patch)
    if "../x" in raw["evaluation"]["tasks"]:
        raw["evaluation"]["tasks"]["../x"] = raw["evaluation"]["tasks"]["reasoning"]
    path = _write(tmp_path, raw)
    with pytest.raises(ValueError) as err:
        load_config(path)
    text = str(err.value)
    assert str(path) in text
    line = next((ln for ln in text.splitlines() if ln.strip().startswith(key + ":")), None)
    assert line is not None, text
    assert message in line, text


def test_run_refuses_before_the_first_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, _merge(_base(tmp_path), {"build": {"budget_tokens": -1000}}))
    assert main(["run", str(path)]) == 1
    assert "build.budget_tokens" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()  # nothing ran


def test_duplicate_yaml_keys_are_an_error_with_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("workdir: a\nbuild:\n  budget_tokens: 100\n  formats: [jsonl]\n  budget_tokens: 5\n")
    with pytest.raises(
        ValueError, match=r"dup\.yaml:5: .*duplicate key 'budget_tokens' \(first given on line 3\)"
    ):
        load_yaml_mapping(path)
    with pytest.raises(ValueError, match="duplicate key"):
        load_config(path)
    with pytest.raises(ValueError, match="duplicate key"):
        load_section(path, "build")


def test_yaml_merge_keys_may_still_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text("base: &b {x: 1, y: 2}\nsection:\n  <<: *b\n  x: 5\n")
    assert load_yaml_mapping(path)["section"] == {"x": 5, "y": 2}
