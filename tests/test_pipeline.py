"""End to end: the quick demo runs every stage and leaves the report, the optimum and the dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mixlab.cli import main
from mixlab.config import load_config

TASKS = ("roleplay", "reasoning", "function_calling", "rag")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mixlab init --quick FILE`` writes a commented pipeline on the demo world; ``mixlab run FILE`` runs it."""
    root = tmp_path_factory.mktemp("demo")
    out = root / "run"
    pipeline = root / "pipeline.yaml"
    assert main(["init", str(pipeline), "--quick", "--workdir", str(out)]) == 0
    text = pipeline.read_text(encoding="utf-8")
    assert "# token budget of the final dataset" in text and "# seeds per confirmed mixture" in text
    assert "rounds: [6]" in text and "# DoRA rank (challenge recipe: 16)" in text
    assert main(["run", str(pipeline), "--quick"]) == 0
    assert (out / "pipeline.yaml").exists()
    return out


def test_quick_demo_produces_report_optimum_trust_and_confirmation(
    demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = demo_dir / "report.html"
    assert report.exists()
    html = report.read_text(encoding="utf-8")
    for heading in (
        "Result",
        "Signal and noise of every metric",
        "Corpus and domains",
        "Proxy swarm",
        "Regression and search",
        "trust verdict of every optimum",
    ):
        assert heading in html
    assert html.count("data:image/png;base64,") >= 5  # plots are embedded

    optimal = json.loads((demo_dir / "optimal.json").read_text())
    assert set(optimal["objectives"]) == {"total", *TASKS}
    assert optimal["chosen"] == "total"
    untrusted = []
    for name, obj in optimal["objectives"].items():
        assert sum(obj["weights"].values()) == pytest.approx(1.0, abs=1e-6), name
        lo, hi = obj["interval"]
        assert lo <= obj["predicted"] <= hi
        one = json.loads((demo_dir / f"optimal_{name}.json").read_text())
        assert {"trusted", "oof_spearman", "snr", "metric", "reason"} <= set(one)
        rho, snr = one["oof_spearman"], one["snr"]
        expected = rho is not None and rho >= 0.8 and (snr is None or snr >= 1.0)
        assert one["trusted"] is expected, (name, one)
        assert one["reason"].startswith(f"{name}/{one['metric']}: ")
        if not one["trusted"]:
            untrusted.append(name)
            assert "the swarm cannot rank mixtures" in one["reason"] or "signal-to-noise" in one["reason"]
    # six tiny proxies of ten steps cannot rank every objective: the verdict says so, with its reason
    assert untrusted
    assert "UNTRUSTED" in html

    signal = pd.read_csv(demo_dir / "signal.csv")
    assert {"objective", "metric", "signal", "noise", "snr", "oof_spearman"} <= set(signal.columns)
    assert set(signal["metric"]) >= {"acc", "acc_norm", "gold_bpb", "correct_prob", "margin"}
    assert (signal["n_repeated"] == 2).all() and signal["noise"].notna().all()  # two repeated mixtures

    swarm = pd.read_csv(demo_dir / "swarm" / "metrics.csv", index_col=0)
    assert len(swarm) == 6 + 2 and (swarm["status"] == "ok").all()
    for task in TASKS:
        assert swarm[f"{task}/acc"].between(0, 1).all()
        assert swarm[f"{task}/correct_prob"].between(0, 1).all()
        assert (swarm[f"{task}/gold_bpb"] > 0).all()
    assert swarm.filter(like="loss/").notna().all().all()

    confirm = json.loads((demo_dir / "confirm.json").read_text())
    assert {"optimal", "natural", "uniform", "best_swarm", "base"} <= set(confirm["arms"])
    assert confirm["seeds"] == 2
    for metric in ("acc", "acc_norm", "gold_bpb", "correct_prob", "margin"):
        entry = confirm["arms"]["optimal"][metric]
        assert set(entry) == {*TASKS, "total"}
        assert len(entry["total"]["values"]) == 2
        assert entry["total"]["mean"] == pytest.approx(sum(entry[t]["mean"] for t in TASKS))
        for base in ("natural", "uniform", "best_swarm", "base"):
            iv = confirm["comparisons"]["optimal"][base][metric]["total"]
            assert iv["low"] <= iv["diff"] <= iv["high"]
    s = confirm["challenge_score"]["optimal"]["acc"]
    before = confirm["arms"]["base"]["acc"]
    after = confirm["arms"]["optimal"]["acc"]
    for key in (*TASKS, "total"):
        assert s[key]["diff"] == pytest.approx(after[key]["mean"] - before[key]["mean"])
    assert confirm["headline"] in html
    capsys.readouterr()
    assert main(["status", str(demo_dir)]) == 0
    status = capsys.readouterr().out
    assert "8 ok of 8 runs" in status and "UNTRUSTED" in status and "report" in status
    # an untrusted total optimum builds no dataset unless the config allows it
    assert (
        not optimal["objectives"]["total"]["trusted"]
        or (demo_dir / "final" / "dataset" / "manifest.json").exists()
    )


@pytest.fixture(scope="module")
def built_dir(demo_dir: Path) -> Path:
    """The same run again with trust.allow_untrusted: finished proxies reused, the dataset built."""
    cfg = yaml.safe_load((demo_dir / "pipeline.yaml").read_text())
    cfg["trust"] = {"allow_untrusted": True}
    path = demo_dir / "pipeline_allow.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    before = {p: p.stat().st_mtime_ns for p in (demo_dir / "swarm" / "runs").rglob("model.safetensors")}
    assert len(before) == 8
    assert main(["run", str(path), "--quick"]) == 0
    after = {p: p.stat().st_mtime_ns for p in (demo_dir / "swarm" / "runs").rglob("model.safetensors")}
    assert after == before  # finished proxies were skipped, not retrained
    return demo_dir


def test_dataset_at_the_budget_when_allowed(built_dir: Path) -> None:
    demo_dir = built_dir
    manifest = json.loads((demo_dir / "final" / "dataset" / "manifest.json").read_text())
    data = [
        json.loads(line) for line in (demo_dir / "final" / "dataset" / "data.jsonl").read_text().splitlines()
    ]
    assert len(data) > 0
    assert (demo_dir / "final" / "dataset" / "data.json").exists()  # LMFlow text_only export
    budget = manifest["budget_tokens"]
    assert abs(manifest["total_tokens"] - budget) <= max(int(m) for m in _doc_tokens(demo_dir, data))
    assert "Final dataset" in (demo_dir / "report.html").read_text(encoding="utf-8")
    final = json.loads((demo_dir / "final" / "final.json").read_text())  # the final run, --quick: small
    assert final["train"]["steps"] == 10 and (demo_dir / "final" / "model" / "config.json").exists()
    assert set(final["S"]["acc"]) == {*TASKS, "total"}


def _doc_tokens(demo_dir: Path, data: list[dict[str, object]]) -> list[int]:
    from mixlab.tokenization import count_tokens, load_tokenizer

    tok = load_tokenizer(str(demo_dir / "tokenizer"))
    return [int(n) for n in count_tokens(tok, [str(d["text"]) for d in data])]


def test_manifest_tokens_match_the_tokenizer(built_dir: Path) -> None:
    demo_dir = built_dir
    manifest = json.loads((demo_dir / "final" / "dataset" / "manifest.json").read_text())
    data = [
        json.loads(line) for line in (demo_dir / "final" / "dataset" / "data.jsonl").read_text().splitlines()
    ]
    assert sum(_doc_tokens(demo_dir, data)) == manifest["total_tokens"]


def test_config_errors_name_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("workdir: x\ningest: {inputs: [a], tokenizer: t}\nproxy: {mode: dora}\n")
    with pytest.raises(ValueError) as err:
        load_config(bad)
    text = str(err.value)
    assert str(bad) in text and "mixtures" in text and "proxy" in text
    (tmp_path / "notyaml.yaml").write_text("a: [unclosed\n")
    assert main(["run", str(tmp_path / "notyaml.yaml")]) == 1
