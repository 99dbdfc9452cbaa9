"""Benchmark: mixlab's multiple-choice scorer vs lm-evaluation-harness (``hf`` model) on the four dev tasks.

Both score the same tiny Llama (random init, fixed seed, real Llama-2 tokenizer with BOS) on
shared/data/tasks through the same lm-eval task YAMLs (tests/fixtures/lmeval_tasks). The script asserts
identical per-document predictions and metrics (log-likelihoods within 1e-4) and prints both timings and
the speed ratio, end to end (model load + tasks + scoring) and for the scoring alone, in wall-clock
and in process CPU seconds (the CPU ratio is the stable one on a shared machine).

    .venv/bin/python bench/bench_eval.py                 # --limit 40 documents per task
    .venv/bin/python bench/bench_eval.py --full          # every document (1,957)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
FIXTURES = REPO / "tests" / "fixtures" / "lmeval_tasks"
TASKS = ("roleplay", "reasoning", "function_calling", "rag")


def build_model(out: Path, hidden: int, layers: int) -> None:
    """Save a random-init Llama (seed 0) and the Llama-2 tokenizer (adds BOS) to ``out``."""
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer

    sp_dir = out.parent / "sp"
    sp_dir.mkdir(exist_ok=True)
    shutil.copy(DATA / "tokenizers" / "llama2" / "tokenizer.model", sp_dir / "tokenizer.model")
    LlamaTokenizer.from_pretrained(str(sp_dir), add_bos_token=True).save_pretrained(out)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=32000,
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=max(hidden // 32, 1),
        max_position_embeddings=1024,
        initializer_range=0.1,
        bos_token_id=1,
        eos_token_id=2,
    )
    LlamaForCausalLM(cfg).save_pretrained(out)


def write_yamls(out: Path) -> None:
    out.mkdir(parents=True)
    for src in FIXTURES.glob("*.yaml"):
        text = src.read_text(encoding="utf-8").replace("@TASKS_DIR@", (DATA / "tasks").as_posix())
        (out / src.name).write_text(text, encoding="utf-8")


def run_lm_eval(
    model_dir: Path, yaml_dir: Path, limit: int | None, batch_size: int, device: str, dtype: str
) -> tuple[Any, tuple[float, float], tuple[float, float]]:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    scoring = [0.0, 0.0]
    original = HFLM.loglikelihood

    def timed(self: Any, requests: Any, disable_tqdm: bool = False) -> Any:
        start, cpu = time.perf_counter(), time.process_time()
        try:
            return original(self, requests, disable_tqdm=disable_tqdm)
        finally:
            scoring[0] += time.perf_counter() - start
            scoring[1] += time.process_time() - cpu

    HFLM.loglikelihood = timed  # type: ignore[method-assign]
    start, cpu = time.perf_counter(), time.process_time()
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_dir},dtype={dtype}",
        tasks=[f"mixlab_{t}" for t in TASKS],
        task_manager=TaskManager(include_path=str(yaml_dir)),
        limit=limit,
        batch_size=batch_size,
        device=device,
        log_samples=True,
    )
    total = (time.perf_counter() - start, time.process_time() - cpu)
    HFLM.loglikelihood = original  # type: ignore[method-assign]
    return out, total, (scoring[0], scoring[1])


def run_mixlab(
    model_dir: Path, yaml_dir: Path, limit: int | None, batch_size: int, device: str, dtype: str
) -> tuple[dict[str, Any], dict[str, Any], tuple[float, float], tuple[float, float]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mixlab.evaluation.multiple_choice import evaluate_task
    from mixlab.evaluation.tasks import load_task

    start, cpu = time.perf_counter(), time.process_time()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = (
        AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=getattr(torch, dtype)).to(device).eval()
    )
    tasks = {f"mixlab_{t}": load_task(f"mixlab_{t}", yaml_dir / f"mixlab_{t}.yaml") for t in TASKS}
    scoring_start, scoring_cpu = time.perf_counter(), time.process_time()
    results = {
        name: evaluate_task(model, tok, task, batch_size=batch_size, limit=limit)
        for name, task in tasks.items()
    }
    end, end_cpu = time.perf_counter(), time.process_time()
    return results, tasks, (end - start, end_cpu - cpu), (end - scoring_start, end_cpu - scoring_cpu)


def compare(
    lm_out: Any, results: dict[str, Any], tasks: dict[str, Any], abs_tol: float, rel_tol: float
) -> None:
    """Assert identical predictions and metrics, log-likelihoods within ``abs_tol + rel_tol * |ll|``."""
    for name, result in results.items():
        samples = sorted(lm_out["samples"][name], key=lambda s: s["doc_id"])
        assert len(samples) == len(result.per_doc), name
        worst = worst_rel = 0.0
        for sample, rec in zip(samples, result.per_doc, strict=True):
            ref = np.array([float(r[0]) for r in sample["filtered_resps"]])
            chars = np.array([len(c) for c in tasks[name].choices(rec["doc_index"])], dtype=float)
            diff = np.abs(ref - np.array(rec["loglikelihoods"]))
            worst = max(worst, float(diff.max()))
            worst_rel = max(worst_rel, float((diff / np.maximum(np.abs(ref), 1e-12)).max()))
            assert np.all(diff <= abs_tol + rel_tol * np.abs(ref)), (name, rec["doc_index"], diff)
            assert rec["pred"] == int(np.argmax(ref)) and rec["pred_norm"] == int(np.argmax(ref / chars)), (
                name,
                rec,
            )
            assert (rec["acc"], rec["acc_norm"]) == (sample["acc"], sample["acc_norm"]), (
                name,
                rec["doc_index"],
            )
        ref_m = lm_out["results"][name]
        assert (
            result.metrics["acc"] == ref_m["acc,none"]
            and result.metrics["acc_norm"] == ref_m["acc_norm,none"]
        )
        print(
            f"  {name:26s} n={int(result.metrics['n']):4d}  acc={result.metrics['acc']:.4f}  "
            f"acc_norm={result.metrics['acc_norm']:.4f}  (lm-eval: {ref_m['acc,none']:.4f} / "
            f"{ref_m['acc_norm,none']:.4f})  max |Δ loglik|={worst:.1e} (rel {worst_rel:.1e})"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=40, help="documents per task (default 40)")
    p.add_argument("--full", action="store_true", help="every document of every task")
    p.add_argument(
        "--batch-size",
        type=int,
        default=16,
        help="batch size for both (mixlab: documents; lm-eval: requests)",
    )
    p.add_argument("--hidden", type=int, default=128, help="hidden size of the tiny Llama")
    p.add_argument("--layers", type=int, default=4, help="layers of the tiny Llama")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--dtype", default="float32", help="model dtype for both (float32 keeps the comparison exact)"
    )
    args = p.parse_args(argv)
    if not (DATA / "tasks").is_dir():
        print(f"shared data not found at {DATA}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    limit = None if args.full else args.limit
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["HF_DATASETS_CACHE"] = str(root / "hf_cache")
        build_model(root / "model", args.hidden, args.layers)
        write_yamls(root / "yaml")
        print(f"model: Llama hidden={args.hidden} layers={args.layers} vocab=32000; device={args.device}; "
              f"threads={args.threads}; limit={limit or 'full'} per task; batch={args.batch_size}")  # fmt: skip
        lm_out, lm_total, lm_scoring = run_lm_eval(
            root / "model", root / "yaml", limit, args.batch_size, args.device, args.dtype
        )
        results, tasks, mx_total, mx_scoring = run_mixlab(
            root / "model", root / "yaml", limit, args.batch_size, args.device, args.dtype
        )
    for label, (lm, mx) in (("end to end", (lm_total, mx_total)), ("scoring", (lm_scoring, mx_scoring))):
        print(f"{label:10s} wall: lm-eval {lm[0]:8.2f} s  mixlab {mx[0]:8.2f} s  ratio {lm[0] / mx[0]:5.2f}x   "
              f"cpu: lm-eval {lm[1]:8.2f} s  mixlab {mx[1]:8.2f} s  ratio {lm[1] / mx[1]:5.2f}x")  # fmt: skip
    print(f"speed ratio (lm-eval / mixlab, end-to-end wall): {lm_total[0] / mx_total[0]:.2f}x")
    exact = args.dtype == "float32"
    compare(lm_out, results, tasks, abs_tol=1e-4 if exact else 1e-1, rel_tol=1e-6 if exact else 1e-2)
    print("identical predictions, acc and acc_norm on every task")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
