"""mixlab's multiple-choice scorer against the real lm-evaluation-harness (``hf`` model), document by document.

A tiny random Llama (fixed seed) with the real Llama-2 SentencePiece tokenizer (BOS added, like the
challenge's base model) is saved to disk; lm-eval runs the four dev tasks of shared/data/tasks through the
task YAMLs in tests/fixtures/lmeval_tasks (a --limit slice), and mixlab scores the same documents loaded
both from those YAMLs and from the ELMB files directly. Per-document predictions, acc and acc_norm must be
identical and the log-likelihoods equal within 1e-4.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mixlab.evaluation.multiple_choice import evaluate_task, load_model
from mixlab.evaluation.tasks import load_task

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FIXTURES = REPO / "tests" / "fixtures" / "lmeval_tasks"
TASKS = ("roleplay", "reasoning", "function_calling", "rag")
LIMIT = 4

pytestmark = pytest.mark.skipif(
    not (DATA / "tasks").is_dir() or not (DATA / "tokenizers" / "llama2" / "tokenizer.model").exists(),
    reason="shared data (tasks, Llama-2 tokenizer) not found at ../shared/data",
)


def _build_model(out: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer

    sp_dir = out.parent / "sp"
    sp_dir.mkdir(exist_ok=True)
    shutil.copy(DATA / "tokenizers" / "llama2" / "tokenizer.model", sp_dir / "tokenizer.model")
    tok = LlamaTokenizer.from_pretrained(str(sp_dir), add_bos_token=True)
    assert tok.encode("Hi")[0] == tok.bos_token_id == 1
    tok.save_pretrained(out)
    torch.manual_seed(1234)
    cfg = LlamaConfig(
        vocab_size=32000,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        initializer_range=0.1,
        bos_token_id=1,
        eos_token_id=2,
    )
    LlamaForCausalLM(cfg).save_pretrained(out)


def _write_yamls(out: Path) -> Path:
    out.mkdir()
    for src in FIXTURES.glob("*.yaml"):
        text = src.read_text(encoding="utf-8").replace("@TASKS_DIR@", (DATA / "tasks").as_posix())
        (out / src.name).write_text(text, encoding="utf-8")
    return out


def test_mixlab_matches_lm_eval_per_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("lm_eval")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    torch.set_num_threads(1)
    model_dir = tmp_path / "model"
    _build_model(model_dir)
    yaml_dir = _write_yamls(tmp_path / "yaml")

    import lm_eval
    from lm_eval.tasks import TaskManager

    names = [f"mixlab_{t}" for t in TASKS]
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_dir},dtype=float32",
        tasks=names,
        task_manager=TaskManager(include_path=str(yaml_dir)),
        limit=LIMIT,
        batch_size=8,
        device="cpu",
        log_samples=True,
    )
    assert out is not None
    model, tok = load_model(model_dir, device="cpu")
    for short, name in zip(TASKS, names, strict=True):
        samples = sorted(out["samples"][name], key=lambda s: s["doc_id"])
        assert len(samples) == LIMIT
        for task in (
            load_task(name, yaml_dir / f"{name}.yaml"),
            load_task(short, DATA / "tasks" / f"{short}.jsonl"),
        ):
            result = evaluate_task(model, tok, task, batch_size=3, limit=LIMIT)
            for sample, rec in zip(samples, result.per_doc, strict=True):
                ref = [float(r[0]) for r in sample["filtered_resps"]]
                assert rec["loglikelihoods"] == pytest.approx(ref, abs=1e-4, rel=1e-6), (
                    name,
                    sample["doc_id"],
                )
                assert (rec["acc"], rec["acc_norm"]) == (sample["acc"], sample["acc_norm"]), (
                    name,
                    sample["doc_id"],
                )
                assert rec["answer"] == sample["target"]
                chars = np.array([len(c) for c in task.choices(rec["doc_index"])], dtype=float)
                assert rec["pred"] == int(np.argmax(ref))
                assert rec["pred_norm"] == int(np.argmax(np.array(ref) / chars))
            ref_metrics = out["results"][name]
            assert result.metrics["acc"] == pytest.approx(ref_metrics["acc,none"], abs=1e-12)
            assert result.metrics["acc_norm"] == pytest.approx(ref_metrics["acc_norm,none"], abs=1e-12)
            assert result.metrics["acc_stderr"] == pytest.approx(ref_metrics["acc_stderr,none"], abs=1e-9)
            assert result.metrics["acc_norm_stderr"] == pytest.approx(
                ref_metrics["acc_norm_stderr,none"], abs=1e-9
            )

    # The same run, written by lm-eval's own EvaluationTracker (the --log_samples files), imported back.
    import copy

    from lm_eval.loggers import EvaluationTracker

    from mixlab.cli import main as mixlab_main
    from mixlab.evaluation.results import read_json_metrics

    tracker = EvaluationTracker(output_path=str(tmp_path / "lmeval_out"))
    tracker.general_config_tracker.model_name_sanitized = "tiny"
    tracker.date_id = "2026-11-28T12-00-00.000001"  # set by save_results_aggregated in lm-eval's CLI
    for name in names:
        tracker.save_results_samples(task_name=name, samples=copy.deepcopy(out["samples"][name]))
    sample_files = sorted((tmp_path / "lmeval_out").rglob("samples_*.jsonl"))
    assert len(sample_files) == len(names)
    imported = tmp_path / "imported"
    assert (
        mixlab_main(["eval", "--lmeval-samples", str(tmp_path / "lmeval_out"), "--out", str(imported)]) == 0
    )
    metrics = read_json_metrics(imported / "metrics.json")
    for short, name in zip(TASKS, names, strict=True):
        ref_metrics = out["results"][name]
        assert metrics[name]["acc"] == pytest.approx(ref_metrics["acc,none"], abs=1e-12)
        assert metrics[name]["acc_norm"] == pytest.approx(ref_metrics["acc_norm,none"], abs=1e-12)
        own = evaluate_task(model, tok, load_task(short, DATA / "tasks" / f"{short}.jsonl"), limit=LIMIT)
        for metric in ("gold_bpb", "correct_prob", "margin"):
            assert metrics[name][metric] == pytest.approx(own.metrics[metric], abs=1e-4), (name, metric)
        assert (imported / f"{name}.jsonl").exists()
