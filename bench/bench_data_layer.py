"""The data layer at corpus scale: mixlab against datatrove, ingest + exact Llama token counts, selection, export.

The input is ``../shared/data/corpus`` replicated until it holds ``--scale-gb`` GB of JSON Lines (one folder
per replica, one ``.jsonl`` per source, ids made distinct with a ``~rK`` suffix), written to a scratch
folder under /tmp and deleted at the end. Both sides count tokens with the same Llama-2 tokenizer (the
shared SentencePiece model converted once to a ``tokenizer.json``; the conversion is not timed) and use
``--workers`` processes:

* mixlab: ``ingest`` (read, check, exact token counts, shards), ``select_documents`` at a budget of
  ``--rate`` of the pool's tokens in its natural source mixture, ``export_selection`` to JSONL;
* datatrove: ``JsonlReader`` -> ``TokensCounter`` -> ``SamplerFilter(rate)`` -> ``JsonlWriter`` on a
  ``LocalPipelineExecutor``.

Each side runs in its own subprocess; this process polls the RSS of that subprocess and all its children
(summed; also the largest single process and the CPU time of all of them) every 0.2 s.
mixlab also measures the memory its selection holds per document (the catalog and chosen rows, deep
bytes, and the RSS the driver added while selecting) and the driver's RSS growth during ingest, and the
table projects them to a 10B-token pool and to the 1.2T-token starter data.

    nice -n 10 .venv/bin/python bench/bench_data_layer.py [--scale-gb 2] [--workers 2] [--rate 0.5]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Self

import psutil

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LLAMA = DATA / "tokenizers" / "llama2" / "tokenizer.model"
GB = 1e9
GIB = 1 << 30
STARTER_TOKENS = 1.2e12
POOL_TOKENS = 10e9


# -- input ---------------------------------------------------------------------------------------------
def build_replicas(dest: Path, scale_gb: float) -> dict[str, Any]:
    """Replicate the shared corpus into ``dest/rK/<source>.jsonl`` until it holds ``scale_gb`` GB."""
    sources: dict[str, list[dict[str, Any]]] = {}
    for f in sorted((DATA / "corpus").glob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            sources[f.name.removesuffix(".jsonl.gz")] = [json.loads(line) for line in fh]
    one = sum(len(json.dumps(d, ensure_ascii=False)) + 5 for docs in sources.values() for d in docs)
    replicas = max(1, math.ceil(scale_gb * GB / one))
    size = docs_written = 0
    for k in range(replicas):
        folder = dest / f"r{k:03d}"
        folder.mkdir(parents=True)
        for name, docs in sources.items():
            with (folder / f"{name}.jsonl").open("w", encoding="utf-8") as out:
                for d in docs:
                    out.write(json.dumps({**d, "id": f"{d['id']}~r{k}"}, ensure_ascii=False) + "\n")
            size += (folder / f"{name}.jsonl").stat().st_size
            docs_written += len(docs)
    return {"replicas": replicas, "files": replicas * len(sources), "docs": docs_written, "bytes": size}


def llama_tokenizer_json(dest: Path) -> Path:
    """The shared Llama-2 tokenizer as a ``tokenizer.json`` (what datatrove loads; mixlab counts the same)."""
    from mixlab.tokenization import load_tokenizer, save_fast_backend

    path = save_fast_backend(load_tokenizer(str(LLAMA)), dest / "llama2-tokenizer.json")
    assert path is not None
    return path


# -- measuring -----------------------------------------------------------------------------------------
class RssPeak:
    """Polls the RSS of one process, or of a process and all its descendants, in a thread.

    ``peak`` is the largest total seen, ``largest`` the largest single process, and ``cpu_seconds`` the
    user + system time of every process seen (its last reading; a process's final 0.2 s can be missed).
    """

    def __init__(self, pid: int, tree: bool, interval: float = 0.2) -> None:
        self.proc = psutil.Process(pid)
        self.tree = tree
        self.interval = interval
        self.peak = 0
        self.largest = 0
        self._cpu: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    @property
    def cpu_seconds(self) -> float:
        return sum(self._cpu.values())

    def current(self) -> int:
        procs = [self.proc, *self.proc.children(recursive=True)] if self.tree else [self.proc]
        total = 0
        for p in procs:
            try:
                with p.oneshot():
                    rss = p.memory_info().rss
                    times = p.cpu_times()
                    self._cpu[(p.pid, p.create_time())] = times.user + times.system
            except psutil.Error:  # ended between listing and reading
                continue
            total += rss
            self.largest = max(self.largest, rss)
        return total

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.current())
            except psutil.Error:
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- the two sides (each in its own subprocess) --------------------------------------------------------
def run_mixlab(data: Path, work: Path, tokenizer: Path, workers: int, rate: float) -> dict[str, Any]:
    from mixlab.mixtures.catalog import load_catalog
    from mixlab.pool.ingest import ingest
    from mixlab.select.config import SelectConfig
    from mixlab.select.export import export_selection
    from mixlab.select.selection import select_documents
    from mixlab.tokenization import load_tokenizer

    me = os.getpid()
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    load_tokenizer(str(tokenizer))  # timed, but its memory is not per document: the baseline is after it
    base = RssPeak(me, tree=False).current()
    with RssPeak(me, tree=False) as driver:
        pool = ingest([data], work / "pool", tokenizer=str(tokenizer), workers=workers)
    out["ingest_s"] = time.perf_counter() - t0
    out["ingest_driver_growth"] = driver.peak - base
    out["docs"] = pool.n_docs()
    out["tokens"] = pool.n_tokens()
    out["quarantined"] = pool.quarantine_count()
    mixture = {str(k): float(v) for k, v in pool.meta["tokens_per_source"].items()}
    config = SelectConfig(budget_tokens=max(1, int(rate * pool.n_tokens())), seed=0)
    before = RssPeak(me, tree=False).current()
    t1 = time.perf_counter()
    with RssPeak(me, tree=False, interval=0.05) as selecting:
        selection = select_documents(pool, mixture, config)
    out["select_s"] = time.perf_counter() - t1
    out["select_growth"] = max(0, selecting.peak - before)
    t2 = time.perf_counter()
    export_selection(pool, selection, work / "dataset", ["jsonl"])
    out["export_s"] = time.perf_counter() - t2
    out["total_s"] = time.perf_counter() - t0
    out["selected_docs"] = len(selection.chosen)
    out["selected_tokens"] = selection.total_tokens
    out["budget_tokens"] = config.budget_tokens
    out["chosen_bytes"] = int(selection.chosen.memory_usage(deep=True).sum())
    del selection
    out["catalog_bytes"] = int(load_catalog(pool, config).docs.memory_usage(deep=True).sum())
    out["output_bytes"] = (work / "dataset" / "data.jsonl").stat().st_size
    return out


def run_datatrove(data: Path, work: Path, tokenizer: Path, workers: int, rate: float) -> dict[str, Any]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import SamplerFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import TokensCounter
    from datatrove.pipeline.writers import JsonlWriter

    pipeline = [
        JsonlReader(str(data), glob_pattern="*/*.jsonl"),
        TokensCounter(str(tokenizer)),
        SamplerFilter(rate=rate, seed=0),
        JsonlWriter(str(work / "dataset"), compression=None),
    ]
    executor = LocalPipelineExecutor(
        pipeline=pipeline, tasks=workers, workers=workers, logging_dir=str(work / "logs")
    )
    t0 = time.perf_counter()
    stats = executor.run()
    out: dict[str, Any] = {"total_s": time.perf_counter() - t0}
    by_step = {s.name: s.stats for s in stats.stats}
    counter = next(v for k, v in by_step.items() if "Counter" in k)
    reader = next(v for k, v in by_step.items() if "Jsonl" in k and "documents" in v)
    out["tokens"] = int(counter["tokens"].total)
    out["docs"] = int(reader["documents"].total)
    out["output_bytes"] = sum(p.stat().st_size for p in (work / "dataset").glob("*.jsonl"))
    return out


def side_main(args: argparse.Namespace) -> None:
    os.environ.setdefault("MIXLAB_PROGRESS", "none")
    run = run_mixlab if args.side == "mixlab" else run_datatrove
    out = run(Path(args.data), Path(args.work), Path(args.tokenizer_json), args.workers, args.rate)
    Path(args.result).write_text(json.dumps(out), encoding="utf-8")


def measure(
    side: str, data: Path, scratch: Path, tokenizer: Path, workers: int, rate: float
) -> dict[str, Any]:
    """Run one side in its own subprocess; return its results and the peak RSS of its process tree."""
    work = scratch / f"work-{side}"
    work.mkdir()
    result = scratch / f"{side}.json"
    cmd = [
        sys.executable,
        __file__,
        "--side",
        side,
        "--data",
        str(data),
        "--work",
        str(work),
        "--tokenizer-json",
        str(tokenizer),
        "--workers",
        str(workers),
        "--rate",
        str(rate),
        "--result",
        str(result),
    ]
    env = {**os.environ, "MIXLAB_PROGRESS": "none"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    with RssPeak(proc.pid, tree=True) as tree:
        code = proc.wait()
    if code != 0:
        raise SystemExit(f"{side} side failed with exit code {code}")
    out = json.loads(result.read_text(encoding="utf-8"))
    out["wall_s"] = time.perf_counter() - t0
    out["tree_peak_rss"] = tree.peak
    out["largest_process_rss"] = tree.largest
    out["cpu_s"] = tree.cpu_seconds
    shutil.rmtree(work)
    return out


# -- report --------------------------------------------------------------------------------------------
def report(inp: dict[str, Any], m: dict[str, Any], d: dict[str, Any], workers: int, rate: float) -> None:
    docs = inp["docs"]
    m_rate, d_rate = docs / m["total_s"], docs / d["total_s"]
    print(
        f"\ninput: {inp['bytes'] / GB:.2f} GB of JSONL, {inp['files']} files ({inp['replicas']} replicas of "
        f"the shared corpus), {docs:,} documents; {workers} workers; {os.cpu_count()} cores; "
        f"selection of {rate:.0%} of the tokens"
    )
    print(
        f"exact Llama-2 token counts equal on both sides: {m['tokens'] == d['tokens']} ({m['tokens']:,} tokens)"
    )
    print("\n| | mixlab | datatrove | mixlab / datatrove |")
    print("| --- | ---: | ---: | ---: |")
    print(
        f"| wall time, s (whole job) | {m['total_s']:.1f} | {d['total_s']:.1f} | {m['total_s'] / d['total_s']:.2f} |"
    )
    print(f"| documents/s | {m_rate:,.0f} | {d_rate:,.0f} | {m_rate / d_rate:.2f} |")
    m_cpu, d_cpu = docs / m["cpu_s"], docs / d["cpu_s"]
    print(
        f"| CPU seconds (user + system, process tree) | {m['cpu_s']:.0f} | {d['cpu_s']:.0f} | {m['cpu_s'] / d['cpu_s']:.2f} |"
    )
    print(f"| documents per CPU second | {m_cpu:,.0f} | {d_cpu:,.0f} | {m_cpu / d_cpu:.2f} |")
    print(
        f"| peak RSS, process tree summed | {m['tree_peak_rss'] / GIB:.2f} GiB | {d['tree_peak_rss'] / GIB:.2f} GiB "
        f"| {m['tree_peak_rss'] / d['tree_peak_rss']:.2f} |"
    )
    print(
        f"| peak RSS, largest process | {m['largest_process_rss'] / GIB:.2f} GiB | "
        f"{d['largest_process_rss'] / GIB:.2f} GiB | {m['largest_process_rss'] / d['largest_process_rss']:.2f} |"
    )
    print(f"| output JSONL | {m['output_bytes'] / GB:.2f} GB | {d['output_bytes'] / GB:.2f} GB | |")
    print(
        f"\nmixlab steps: ingest + exact token counts {m['ingest_s']:.1f} s ({docs / m['ingest_s']:,.0f} docs/s), "
        f"select {m['select_s']:.1f} s, export {m['export_s']:.1f} s; selected {m['selected_docs']:,} documents, "
        f"{m['selected_tokens']:,} tokens for a budget of {m['budget_tokens']:,}"
    )
    projection(m)


def projection(m: dict[str, Any]) -> None:
    docs = m["docs"]
    tokens_per_doc = m["tokens"] / docs
    held = {
        "selection (catalog, deep bytes)": m["catalog_bytes"] / docs,
        "selection (chosen rows, deep bytes)": m["chosen_bytes"] / max(1, m["selected_docs"]),
        "selection (driver RSS growth while selecting)": m["select_growth"] / docs,
        "ingest (driver RSS growth: ids, unit results)": m["ingest_driver_growth"] / docs,
    }
    print(f"\nmemory per document ({tokens_per_doc:,.0f} Llama tokens per document in this corpus):")
    print("\n| held by | bytes/doc | 10B-token pool | 1.2T-token starter data |")
    print("| --- | ---: | ---: | ---: |")
    for name, per_doc in held.items():
        small = per_doc * POOL_TOKENS / tokens_per_doc
        big = per_doc * STARTER_TOKENS / tokens_per_doc
        print(f"| {name} | {per_doc:,.0f} | {small / GIB:,.1f} GiB | {big / GIB:,.0f} GiB |")
    per_core = m["tokens"] / m["cpu_s"]
    core_hours = STARTER_TOKENS / per_core / 3600
    select_big = held["selection (driver RSS growth while selecting)"] * STARTER_TOKENS / tokens_per_doc
    ingest_big = held["ingest (driver RSS growth: ids, unit results)"] * STARTER_TOKENS / tokens_per_doc
    print(
        f"\nthroughput: the whole job {per_core:,.0f} tokens per CPU second here -> "
        f"{core_hours:,.0f} core-hours for 1.2T tokens: {math.ceil(core_hours / (64 * 24))} node(s) of 64 cores "
        f"for one day, {math.ceil(core_hours / (64 * 24 * 7))} for a week."
    )
    print(
        f"implied: at 10B tokens every step fits one node (the selection holds "
        f"{held['selection (driver RSS growth while selecting)'] * POOL_TOKENS / tokens_per_doc / GIB:,.1f} GiB); "
        f"at 1.2T tokens the per-shard steps (ingest's reading and counting, annotation) need Ray for throughput, "
        f"and the driver-side steps hold {select_big / GIB:,.0f} GiB (selection) and {ingest_big / GIB:,.0f} GiB "
        f"(ingest's id check) in one process: more than a 512 GiB node, so they must be split by domain or by "
        f"shard range before that scale."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale-gb", type=float, default=2.0, help="GB of JSONL to build (default 2)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes on each side (default 2)")
    ap.add_argument("--rate", type=float, default=0.5, help="share of the tokens selected (default 0.5)")
    ap.add_argument(
        "--only",
        choices=["mixlab"],
        default=None,
        help="measure mixlab's side alone (a memory or speed check after a change; no ratio is printed: the "
        "comparison needs both sides in one run)",
    )
    ap.add_argument("--side", choices=["mixlab", "datatrove"], default=None, help=argparse.SUPPRESS)
    for hidden in ("--data", "--work", "--tokenizer-json", "--result"):
        ap.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        side_main(args)
        return
    scratch = Path(tempfile.mkdtemp(prefix="mixlab-bench-data-layer-", dir="/tmp"))
    try:
        t0 = time.perf_counter()
        inp = build_replicas(scratch / "input", args.scale_gb)
        tokenizer = llama_tokenizer_json(scratch)
        print(
            f"built {inp['bytes'] / GB:.2f} GB ({inp['docs']:,} documents) in {time.perf_counter() - t0:.0f} s "
            f"under {scratch}",
            flush=True,
        )
        m = measure("mixlab", scratch / "input", scratch, tokenizer, args.workers, args.rate)
        print(f"mixlab: {m['total_s']:.1f} s", flush=True)
        if args.only:
            print(
                f"mixlab alone: {inp['docs'] / m['total_s']:.0f} documents/s, {m['cpu_s']:.0f} CPU s, peak RSS "
                f"{m['tree_peak_rss'] / GIB:.2f} GiB (process tree), {m['largest_process_rss'] / GIB:.2f} GiB "
                f"(largest process); output {m['output_bytes'] / GB:.2f} GB"
            )
            for key in sorted(k for k in m if k.endswith(("_s", "_growth"))):
                print(f"  {key}: {m[key]:.1f}" if key.endswith("_s") else f"  {key}: {m[key] / GIB:.3f} GiB")
            return
        d = measure("datatrove", scratch / "input", scratch, tokenizer, args.workers, args.rate)
        print(f"datatrove: {d['total_s']:.1f} s", flush=True)
        report(inp, m, d, args.workers, args.rate)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
