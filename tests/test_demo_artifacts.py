"""The demo's generated artifacts survive kills and damage: atomic writes plus recorded fingerprints."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mixlab.demo import run as demo_run
from mixlab.demo.artifacts import DemoStateError, StepState, atomic_folder
from mixlab.demo.run import QUICK, DemoScale, prepare_demo

#: A demo small enough to prepare in seconds (world, split, seeds, tokenizer, a 3-step base model).
TINY = dataclasses.replace(QUICK, n_docs=600, n_task_items=8, vocab_size=400, base_steps=3, val_every=10)

#: Files whose bytes must not depend on how often the demo was interrupted.
DETERMINISTIC = ("world", "seeds.jsonl", "tokenizer", "pipeline.yaml")


def _files(root: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name in DETERMINISTIC:
        path = root / name
        paths = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for p in paths:
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def _normalised(files: dict[str, bytes], root: Path) -> dict[str, bytes]:
    """pipeline.yaml names its own folder: compare it with the folder name taken out."""
    return {k: v.replace(str(root).encode(), b"ROOT") for k, v in files.items()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    root = tmp_path_factory.mktemp("ref")
    start = time.perf_counter()
    prepare_demo(root, TINY)
    return root, time.perf_counter() - start


def test_truncated_split_file_is_regenerated_by_run_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe of issue 13: a train file cut to 89 lines and an empty validation file were reused."""
    monkeypatch.setattr(demo_run, "QUICK", TINY)
    monkeypatch.setattr(demo_run, "run_pipeline", lambda cfg: None)
    demo_run.run_demo(tmp_path, quick=True)
    train = tmp_path / "world" / "train" / "roleplay.jsonl"
    val = tmp_path / "world" / "validation" / "roleplay.jsonl"
    full_train, full_val = train.read_bytes(), val.read_bytes()
    assert full_train.count(b"\n") > 20 and full_val
    train.write_bytes(b"".join(full_train.splitlines(keepends=True)[:5]))
    val.write_bytes(b"")
    demo_run.run_demo(tmp_path, quick=True)
    assert train.read_bytes() == full_train
    assert val.read_bytes() == full_val


def test_damaged_artifacts_are_detected_and_rebuilt(reference: tuple[Path, float], tmp_path: Path) -> None:
    ref, _ = reference
    prepare_demo(tmp_path, TINY)
    base_weights = next((tmp_path / "base_model").glob("*.safetensors"))
    damage = {
        tmp_path / "world" / "corpus" / "rag.jsonl": b'{"id": "x"',  # cut mid-record
        tmp_path / "world" / "tasks" / "reasoning.jsonl": b"",
        tmp_path / "seeds.jsonl": b"",
        tmp_path / "tokenizer" / "tokenizer.json": b"{}",
        base_weights: base_weights.read_bytes()[:100],
    }
    for path, data in damage.items():
        path.write_bytes(data)
    (tmp_path / "tokenizer" / "stray.txt").write_text("not from the demo")
    prepare_demo(tmp_path, TINY)
    assert _normalised(_files(tmp_path), tmp_path) == _normalised(_files(ref), ref)
    assert base_weights.stat().st_size > 1000

    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(str(tmp_path / "base_model"))  # loads: complete weights


def test_an_intact_folder_is_reused_without_rewriting(reference: tuple[Path, float], tmp_path: Path) -> None:
    prepare_demo(tmp_path, TINY)
    watched = [tmp_path / "world" / "corpus" / "general.jsonl", tmp_path / "tokenizer" / "tokenizer.json"]
    watched += list((tmp_path / "base_model").glob("*.safetensors"))
    before = {p: p.stat().st_mtime_ns for p in watched}
    prepare_demo(tmp_path, TINY)
    assert {p: p.stat().st_mtime_ns for p in watched} == before


def test_sigkill_at_random_moments_then_rerun_gives_identical_files(
    reference: tuple[Path, float], tmp_path: Path
) -> None:
    ref, duration = reference
    out = tmp_path / "killed"
    script = (
        "import dataclasses, json, sys\n"
        "from pathlib import Path\n"
        "from mixlab.demo.run import DemoScale, prepare_demo\n"
        "scale = DemoScale(**json.loads(sys.argv[2]))\n"
        "print('ready', flush=True)\n"
        "prepare_demo(Path(sys.argv[1]), scale)\n"
    )
    rng = random.Random(0)
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(out), json.dumps(dataclasses.asdict(TINY))],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.05, 1.0) * duration)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 1
    prepare_demo(out, TINY)
    assert _normalised(_files(out), out) == _normalised(_files(ref), ref)
    leftovers = [p for p in out.rglob(".*") if p.name not in (".demo-state", "lock")]
    assert not [p for p in leftovers if p.parent.name != ".demo-state"], leftovers


def test_failed_folder_build_leaves_the_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights.bin").write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "weights.bin").write_bytes(b"half")
        raise RuntimeError("killed")
    assert (target / "weights.bin").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_pipeline_outputs_from_other_inputs_are_refused(tmp_path: Path) -> None:
    prepare_demo(tmp_path, TINY)
    (tmp_path / "pool").mkdir()  # the pipeline has started on these inputs
    prepare_demo(tmp_path, TINY)  # same inputs: resuming is fine
    other = dataclasses.replace(TINY, val_every=11)
    with pytest.raises(DemoStateError, match="new --out"):
        prepare_demo(tmp_path, other)


def test_step_records_name_their_files(reference: tuple[Path, float]) -> None:
    ref, _ = reference
    state = StepState(ref)
    for step in ("world", "split", "seeds", "tokenizer", "base_model"):
        record = state.read(step)
        assert record is not None, step
        assert record["files"] and all((ref / rel).is_file() for rel in record["files"])
    assert "world/train/roleplay.jsonl" in state.read("split")["files"]  # type: ignore[index]
    assert isinstance(TINY, DemoScale)
