"""Names that become paths never escape their folder: run ids (ratios.csv, run_swarm), task names
(``mixlab eval --tasks``, the pipeline's evaluation.tasks), shard names in pool.json, attribute names."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mixlab.cli import main
from mixlab.pool.pool import Pool, PoolError
from mixlab.proxies.swarm import run_swarm
from mixlab.swarm import SwarmTableError, read_ratios

BAD_NAMES = [
    "../../x",
    "/abs/path",
    "a/b",
    "..",
    ".",
    "",
    ".hidden",
    "a\\b",
    "nul\x00byte",
    " padded",
    "x" * 201,
]
GOOD_NAMES = ["mix-003", "elmb_roleplay", "00000", "run.7", "Ünïcode-ok"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_safe_name_rejects_every_escape(name: str) -> None:
    from mixlab.paths import UnsafeNameError, safe_name

    with pytest.raises(UnsafeNameError, match="becomes a file name"):
        safe_name(name, "run id")


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_safe_name_accepts_plain_names(name: str) -> None:
    from mixlab.paths import safe_name

    assert safe_name(name) == name


@pytest.mark.parametrize("run", ["../../x", "/abs/path", "sub/run"])
def test_ratios_csv_run_id_cannot_escape(tmp_path: Path, run: str) -> None:
    path = tmp_path / "ratios.csv"
    path.write_text(f"run,a,b\nmix-000,0.5,0.5\n{run},0.2,0.8\n")
    with pytest.raises(SwarmTableError, match=r"ratios\.csv: line 3: run id"):
        read_ratios(path)


def test_run_swarm_refuses_an_escaping_run_id_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "work" / "swarm"
    ratios = pd.DataFrame({"a": [1.0]}, index=pd.Index(["../../escaped"], name="run"))
    calls: list[str] = []

    def make_data(run: str, weights: dict[str, float]) -> Path:
        calls.append(run)
        return tmp_path

    with pytest.raises(ValueError, match="run id '../../escaped'"):
        run_swarm(ratios, make_data, lambda *a: None, None, out, out / "metrics.csv")
    assert calls == []
    assert not (tmp_path / "escaped").exists() and not out.exists()


def test_eval_task_name_cannot_escape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    task = tmp_path / "t.jsonl"
    task.write_text(json.dumps({"question": "q?", "choices": ["a", "b"], "answer": 0}) + "\n")
    out = tmp_path / "deep" / "out"
    argv = ["eval", "--model", str(tmp_path / "no-model"), "--tasks", f"../../x={task}", "--out", str(out)]
    assert main(argv) == 1
    assert "task name '../../x'" in capsys.readouterr().err  # refused before any model is loaded
    assert not (tmp_path / "x.jsonl").exists()


def test_pool_json_shard_name_cannot_escape(tmp_path: Path) -> None:
    root = tmp_path / "pool"
    root.mkdir()
    meta = {"format": "mixlab-pool/1", "tokenizer": "t", "shards": ["00000", "../../evil"], "n_docs": 1}
    (root / "pool.json").write_text(json.dumps(meta))
    with pytest.raises(PoolError, match=r"pool\.json: shard name '\.\./\.\./evil'"):
        Pool.open(root)


def test_attribute_name_cannot_escape(tmp_path: Path) -> None:
    root = tmp_path / "pool"
    root.mkdir()
    (root / "pool.json").write_text(json.dumps({"format": "mixlab-pool/1", "shards": [], "n_docs": 0}))
    pool = Pool.open(root)
    for name in ("../x", "/etc", "a/b"):
        with pytest.raises(ValueError, match="attribute name"):
            pool.attr_dir(name)
