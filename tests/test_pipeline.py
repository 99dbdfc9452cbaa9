"""End to end: the quick demo runs every stage and leaves the report, the optimum and the dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mixlab.cli import main
from mixlab.config import load_config

TASKS = ("roleplay", "reasoning", "function_calling", "rag")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    return out


def test_quick_demo_produces_report_optimum_and_dataset(
    demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = demo_dir / "report.html"
    assert report.exists()
    html = report.read_text(encoding="utf-8")
    for heading in ("Result", "Corpus and domains", "Proxy swarm", "Regression and search", "Final dataset"):
        assert heading in html
    assert html.count("data:image/png;base64,") >= 5  # plots are embedded
    assert "standard error of each accuracy" in html

    optimal = json.loads((demo_dir / "optimal.json").read_text())
    assert set(optimal["objectives"]) == {"total", *TASKS}
    assert optimal["chosen"] == "total"
    for name, obj in optimal["objectives"].items():
        assert sum(obj["weights"].values()) == pytest.approx(1.0, abs=1e-6), name
        lo, hi = obj["interval"]
        assert lo <= obj["predicted"] <= hi
        assert (demo_dir / f"optimal_{name}.json").exists()

    manifest = json.loads((demo_dir / "dataset" / "manifest.json").read_text())
    data = [json.loads(line) for line in (demo_dir / "dataset" / "data.jsonl").read_text().splitlines()]
    assert len(data) > 0
    assert (demo_dir / "dataset" / "data.json").exists()  # LMFlow text_only export
    budget = manifest["budget_tokens"]
    assert abs(manifest["total_tokens"] - budget) <= max(int(m) for m in _doc_tokens(demo_dir, data))

    swarm = pd.read_csv(demo_dir / "swarm" / "metrics.csv", index_col=0)
    assert len(swarm) == 6 and (swarm["status"] == "ok").all()
    for task in TASKS:
        assert swarm[f"{task}/acc"].between(0, 1).all()
    assert swarm.filter(like="loss/").notna().all().all()
    confirm = pd.read_csv(demo_dir / "confirm" / "metrics.csv", index_col=0)
    assert {"optimal", "natural", "uniform", "base"} <= set(confirm.index)


def _doc_tokens(demo_dir: Path, data: list[dict[str, object]]) -> list[int]:
    from mixlab.tokenization import count_tokens, load_tokenizer

    tok = load_tokenizer(str(demo_dir / "tokenizer"))
    return [int(n) for n in count_tokens(tok, [str(d["text"]) for d in data])]


def test_manifest_tokens_match_the_tokenizer(demo_dir: Path) -> None:
    manifest = json.loads((demo_dir / "dataset" / "manifest.json").read_text())
    data = [json.loads(line) for line in (demo_dir / "dataset" / "data.jsonl").read_text().splitlines()]
    assert sum(_doc_tokens(demo_dir, data)) == manifest["total_tokens"]


def test_rerun_resumes_without_retraining(demo_dir: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in (demo_dir / "swarm" / "runs").rglob("model.safetensors")}
    assert len(before) == 6
    assert main(["run", str(demo_dir / "pipeline.yaml")]) == 0
    after = {p: p.stat().st_mtime_ns for p in (demo_dir / "swarm" / "runs").rglob("model.safetensors")}
    assert after == before  # finished proxies were skipped, not retrained


def test_config_errors_name_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("workdir: x\ningest: {inputs: [a], tokenizer: t}\nproxy: {mode: dora}\n")
    with pytest.raises(ValueError) as err:
        load_config(bad)
    text = str(err.value)
    assert str(bad) in text and "mixtures" in text and "proxy" in text
    (tmp_path / "notyaml.yaml").write_text("a: [unclosed\n")
    assert main(["run", str(tmp_path / "notyaml.yaml")]) == 1
