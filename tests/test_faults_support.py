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
    executor = None
    if options.get("ray_address"):  # join a Ray cluster that outlives this (killable) driver
        from mixlab.executors.ray import RayExecutor

        os.environ.update(options.get("ray_env", {}))  # e.g. RAY_AUTH_MODE=token, as its head set it

        executor = RayExecutor(workers=2, address=options["ray_address"])
    if stage == "partition":
        from mixlab.domains.config import PartitionConfig
        from mixlab.domains.partition import partition_pool

        return partition_pool(
            pool, PartitionConfig(method="rules"), workers=options.get("workers", 1), executor=executor
        )
    if stage == "quality":
        from mixlab.quality.config import QualityConfig
        from mixlab.quality.stage import score_quality

        config = QualityConfig(n_buckets=options.get("n_buckets", 5))
        return score_quality(pool, config, workers=options.get("workers", 1), executor=executor)
    if stage == "dedup":
        from mixlab.dedup.config import DedupConfig
        from mixlab.dedup.stage import dedup_pool

        config = DedupConfig(threshold=options.get("threshold", 0.4))
        return dedup_pool(pool, config, workers=options.get("workers", 1), executor=executor)
    if stage == "decontam":
        from mixlab.dedup.config import DecontamConfig
        from mixlab.dedup.stage import decontaminate_pool

        return decontaminate_pool(pool, DecontamConfig(tasks={"reasoning": Path(options["tasks"])}))
    if stage == "sleepy":
        run_sleepy(root, options["flags"], options["seconds"])
        return {}
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
                "transformers.models.auto.tokenization_auto",  # what load_tokenizer imports lazily
                "transformers.tokenization_utils_fast",
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
        warm = _CTX.Process(target=time.sleep, args=(0,))  # start the server now, not in a timed run
        warm.start()
        warm.join()
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


def _newest_write(folder: Path, since: float, suffix: str = "") -> bool:
    """Whether a file under ``folder`` (ending with ``suffix``) was written after ``since`` (a time.time())."""
    stack = [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(Path(e.path))
                elif (
                    e.name.endswith(suffix)
                    and not e.name.endswith((".lock", ".log"))
                    and e.stat(follow_symlinks=False).st_mtime > since
                ):
                    return True
            except OSError:
                continue
    return False


def kill_after_write(
    stage: str,
    root: Path,
    options: dict[str, Any],
    log: Path,
    watch: Path,
    delay: float,
    suffix: str = "",
    timeout: float = 120,
) -> int | None:
    """Start a stage, wait until it writes a file under ``watch`` (ending with ``suffix``), then SIGKILL
    it ``delay`` seconds later."""
    since = time.time() - 0.01
    proc = start(stage, root, options, log)
    deadline = time.monotonic() + timeout
    while proc.exitcode is None and time.monotonic() < deadline and not _newest_write(watch, since, suffix):
        time.sleep(0.002)
    proc.join(delay)
    if proc.exitcode is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
    return proc.exitcode


def kill_moments(
    seed: int, duration: float, n: int, kinds: tuple[str, ...] = ("write", "time"), after_write: float = 0.05
) -> list[tuple[str, float]]:
    """``n`` deterministic "random" moments, cycling through ``kinds``: ``("time", t)`` anywhere within a
    run of ``duration`` seconds, ``("write", t)`` ``t`` (up to ``after_write``) seconds after its first
    write."""
    rng = random.Random(seed)
    out: list[tuple[str, float]] = []
    for i in range(n):
        if kinds[i % len(kinds)] == "time":
            out.append(("time", round(rng.uniform(0.1, 0.95) * duration, 3)))
        else:
            out.append(("write", round(rng.uniform(0.0, after_write), 4)))
    return out


def kill_at(
    moment: tuple[str, float],
    stage: str,
    root: Path,
    options: dict[str, Any],
    log: Path,
    watch: Path,
    suffix: str = "",
) -> int | None:
    """Kill a run of ``stage`` at one of :func:`kill_moments`; return its exit code (-9 when killed)."""
    kind, t = moment
    if kind == "time":
        return kill_after(stage, root, options, log, t)
    return kill_after_write(stage, root, options, log, watch, t, suffix)


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


def sleepy_shard(pool_root: str, shard: str, config: dict[str, Any]) -> Any:
    """A shard stage that records its process id, then sleeps (to kill its parent meanwhile)."""
    import pyarrow as pa

    (Path(config["flags"]) / f"{shard}.{os.getpid()}").write_text("started")
    time.sleep(config["seconds"])
    return pa.table({"x": pa.array([], pa.int64())})


def run_sleepy(root: str, flags: str, seconds: float) -> None:
    """Map :func:`sleepy_shard` over a pool with two worker processes."""
    from mixlab.executors.local import map_shards
    from mixlab.pool.pool import Pool

    map_shards(sleepy_shard, Pool.open(root), "sleepy", {"flags": flags, "seconds": seconds}, workers=2)


# -- one world and one reference run per process, shared by the test files -------------------------------
_WORLD: dict[str, Path] = {}
_REFS: dict[str, tuple[Path, float]] = {}


def shared_world(factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The corpus, the task file and an ingested pool without attributes (built once per process)."""
    if not _WORLD:
        from mixlab.pool.ingest import ingest

        root = factory.mktemp("faults-world")
        corpus, tasks = write_corpus(root / "in", per_source=30)
        ingest([corpus], root / "base", tokenizer=str(TOKENIZER), shard_docs=30)
        _WORLD.update(root=root, corpus=corpus, tasks=tasks, base=root / "base")
    return _WORLD


def reference(world: dict[str, Path], stage: str, options: dict[str, Any]) -> tuple[Path, float]:
    """An uninterrupted run of ``stage`` (on a copy of the base pool; for ``export`` into its own folder
    and for ``ingest`` into a new pool): where its output is and how long it took (cached)."""
    key = json.dumps([stage, options], sort_keys=True)
    if key not in _REFS:
        out = world["root"] / f"ref-{len(_REFS)}"
        if stage == "ingest":
            took = run_child(stage, out, options, world["root"] / "child.log")
        elif stage == "export":
            took = run_child(stage, world["base"], options | {"out": str(out)}, world["root"] / "child.log")
        else:
            copy_pool(world["base"], out)
            took = run_child(stage, out, options, world["root"] / "child.log")
        _REFS[key] = (out, took)
    return _REFS[key]


def stage_options(world: dict[str, Path], stage: str, **extra: Any) -> dict[str, Any]:
    """The options every fault test runs ``stage`` with (plus ``extra``)."""
    base: dict[str, Any] = {
        "decontam": {"tasks": str(world["tasks"])},
        "ingest": {"inputs": [str(world["corpus"])], "shard_docs": 20},
        "export": {"part_chars": 5_000},
    }.get(stage, {})
    return base | extra


# -- processes (Linux /proc, no extra dependency) -------------------------------------------------------
def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def descendants(pid: int) -> set[int]:
    """Every living descendant of ``pid``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = st[1]
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not)."""
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")
