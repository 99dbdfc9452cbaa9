"""Shared helpers of the fault-injection suite (``tests/test_faults_*.py``); this module holds no tests.

- a small real corpus (documents of the shared corpus, planted exact and near copies, a contaminated
  document) and a task file;
- stage runners that run in a separate process started from a forkserver that has imported mixlab,
  transformers and torch once, so a child starts in milliseconds and can be SIGKILLed at any moment;
- snapshots of what a stage wrote, to compare reruns byte for byte.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TOKENIZER = DATA / "tokenizers" / "gpt2" / "tokenizer.json"
SOURCES = ("gsm8k_train", "foldoc", "bfcl", "crd3", "wikitext2", "python_docs")

needs_data = pytest.mark.skipif(not TOKENIZER.exists(), reason=f"shared data not found at {DATA}")


# -- inputs ---------------------------------------------------------------------------------------------
def write_corpus(folder: Path, per_source: int = 40) -> tuple[Path, Path]:
    """A JSONL corpus of real documents with planted copies, and a task file one document contaminates."""
    folder.mkdir(parents=True, exist_ok=True)
    docs: list[dict[str, Any]] = []
    for name in SOURCES:
        with gzip.open(DATA / "corpus" / f"{name}.jsonl.gz", "rt", encoding="utf-8") as fh:
            for line in itertools.islice(fh, per_source):
                d = json.loads(line)
                docs.append({"id": d["id"], "text": d["text"], "source": name})
    rng = random.Random(13)
    long_docs = [d for d in docs if len(d["text"].split()) > 80]
    for i, d in enumerate(long_docs[:12]):  # exact copies and near copies (a few words replaced)
        words = d["text"].split(" ")
        if i % 2:
            for j in rng.sample(range(len(words)), 3):
                words[j] = f"zq{rng.randrange(10**6)}"
        docs.append({"id": f"copy-{i}", "text": " ".join(words), "source": d["source"]})
    with (DATA / "tasks" / "reasoning.jsonl").open(encoding="utf-8") as fh:
        task_lines = list(itertools.islice(fh, 30))
    item = json.loads(task_lines[0])
    question = str(item.get("question") or item.get("query") or next(iter(item.values())))
    docs.append(
        {"id": "contaminated", "text": f"Worked example.\n{question}\nThat is all.", "source": "crd3"}
    )
    corpus = folder / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    tasks = folder / "reasoning.jsonl"
    tasks.write_text("".join(task_lines), encoding="utf-8")
    return corpus, tasks


# -- stages run in a child process ----------------------------------------------------------------------
def run_stage(stage: str, root: str, options: dict[str, Any]) -> dict[str, Any]:
    """Run one stage on the pool (or output folder) ``root``; the same call in-process or in a child."""
    from mixlab.pool.pool import Pool

    if stage == "ingest":
        from mixlab.pool.ingest import ingest

        pool = ingest(
            options["inputs"], root, tokenizer=str(TOKENIZER), shard_docs=options.get("shard_docs", 40)
        )
        return {"docs": pool.n_docs()}
    pool = Pool.open(root)
    if stage == "partition":
        from mixlab.domains.config import PartitionConfig
        from mixlab.domains.partition import partition_pool

        return partition_pool(pool, PartitionConfig(method="rules"), workers=options.get("workers", 1))
    if stage == "quality":
        from mixlab.quality.config import QualityConfig
        from mixlab.quality.stage import score_quality

        config = QualityConfig(n_buckets=options.get("n_buckets", 5))
        return score_quality(pool, config, workers=options.get("workers", 1))
    if stage == "dedup":
        from mixlab.dedup.config import DedupConfig
        from mixlab.dedup.stage import dedup_pool

        config = DedupConfig(threshold=options.get("threshold", 0.4))
        return dedup_pool(pool, config, workers=options.get("workers", 1))
    if stage == "decontam":
        from mixlab.dedup.config import DecontamConfig
        from mixlab.dedup.stage import decontaminate_pool

        return decontaminate_pool(pool, DecontamConfig(tasks={"reasoning": Path(options["tasks"])}))
    if stage == "export":
        from mixlab.select.config import SelectConfig
        from mixlab.select.export import export_selection
        from mixlab.select.selection import select_documents

        config = SelectConfig(
            budget_tokens=options["budget"],
            domain_from="source",
            shortfall="redistribute",
            formats=options.get("formats", ["jsonl", "parquet", "lmflow"]),
            shuffle_bucket_chars=options.get("part_chars", 20_000),
        )
        weights = {s: 1.0 / len(SOURCES) for s in SOURCES}
        selection = select_documents(pool, weights, config)
        export_selection(
            pool, selection, options["out"], config.formats, part_chars=config.shuffle_bucket_chars
        )
        return {"documents": selection.manifest["documents"]}
    raise ValueError(f"unknown stage {stage}")


def _child(stage: str, root: str, options: dict[str, Any], log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 2)  # progress bars and tracebacks go to the log
    os.environ["TQDM_DISABLE"] = "1"
    try:
        run_stage(stage, root, options)
    except BaseException:  # noqa: BLE001 - the child reports any failure through its log and exit code
        sys.stderr.write(traceback.format_exc())
        sys.stderr.flush()
        os._exit(3)
    os._exit(0)


_CTX: Any = None


def context() -> Any:
    """The forkserver context whose server has imported the stages once."""
    global _CTX
    if _CTX is None:
        _CTX = mp.get_context("forkserver")
        _CTX.set_forkserver_preload(
            [
                "transformers",
                "mixlab.tokenization",
                "mixlab.pool.ingest",
                "mixlab.domains.partition",
                "mixlab.quality.stage",
                "mixlab.dedup.stage",
                "mixlab.select.selection",
                "mixlab.select.export",
                "test_faults_support",
            ]
        )
    return _CTX


def start(stage: str, root: Path, options: dict[str, Any], log: Path) -> Any:
    """Start ``run_stage`` in a child process; return the process."""
    proc = context().Process(target=_child, args=(stage, str(root), options, str(log)))
    proc.start()
    return proc


def run_child(stage: str, root: Path, options: dict[str, Any], log: Path, timeout: float = 300) -> float:
    """Run a stage to completion in a child; return its wall time; fail with its log if it failed."""
    t0 = time.perf_counter()
    proc = start(stage, root, options, log)
    proc.join(timeout)
    took = time.perf_counter() - t0
    if proc.exitcode != 0:
        proc.kill()
        pytest.fail(f"{stage} child exited with {proc.exitcode}:\n{log.read_text() if log.exists() else ''}")
    return took


def kill_after(stage: str, root: Path, options: dict[str, Any], log: Path, delay: float) -> int | None:
    """Start a stage, SIGKILL it after ``delay`` seconds (if still running); return its exit code."""
    proc = start(stage, root, options, log)
    proc.join(delay)
    if proc.exitcode is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
    return proc.exitcode


def kill_moments(seed: int, duration: float, n: int) -> list[float]:
    """``n`` deterministic "random" moments within a run of ``duration`` seconds."""
    rng = random.Random(seed)
    return [round(rng.uniform(0.1, 0.95) * duration, 3) for _ in range(n)]


# -- snapshots ------------------------------------------------------------------------------------------
def _npz_digest(path: Path) -> str:
    with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as data:
        h = hashlib.sha256()
        for key in sorted(data.files):
            h.update(key.encode())
            h.update(np.ascontiguousarray(data[key]).tobytes())
        return h.hexdigest()


def snapshot(folder: Path, skip: tuple[str, ...] = ("attr.json",)) -> dict[str, str]:
    """sha256 of every file under ``folder`` (``.npz`` by its arrays: zip entries carry a time stamp)."""
    out: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name in skip or path.suffix == ".lock":
            continue
        rel = str(path.relative_to(folder))
        out[rel] = (
            _npz_digest(path) if path.suffix == ".npz" else hashlib.sha256(path.read_bytes()).hexdigest()
        )
    return out


def attr_snapshot(pool_root: Path, *names: str) -> dict[str, str]:
    """Snapshot of the given attribute folders of a pool."""
    return {f"{n}/{k}": v for n in names for k, v in snapshot(pool_root / "attrs" / n).items()}


def copy_pool(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".locks"))
    return dst


def dataset_is_consistent(folder: Path) -> bool:
    """Whether a dataset folder's manifest lists exactly its data files, with matching sha256."""
    manifest = json.loads((folder / "manifest.json").read_text())
    data = {p.name for p in folder.iterdir() if p.name != "manifest.json"}
    if data != set(manifest["files"]):
        return False
    return all(
        hashlib.sha256((folder / name).read_bytes()).hexdigest() == entry["sha256"]
        for name, entry in manifest["files"].items()
    )


def leftovers(parent: Path) -> list[str]:
    """Temporary folders or files mixlab left in ``parent`` (``.NAME.tmp-*``, ``.NAME.old-*``)."""
    return sorted(p.name for p in parent.iterdir() if ".tmp" in p.name or ".old-" in p.name)
