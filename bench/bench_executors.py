"""Ray against the local executor, 1 and 2 workers, on a shard stage (the dedup signatures or quality signals)
and on a small swarm of proxies.

A pool of ``--docs`` documents of the shared corpus in shards of ``--shard-docs`` is ingested once; each
configuration then maps the stage over a fresh copy of it (no attribute yet). Local: ``workers`` 1 runs
in this process, 2 in a spawn process pool started for the map. Ray: a local Ray instance with
``num_cpus=workers``; "cold" is the first map on a fresh instance (its workers still import mixlab), "warm"
the next map on the same instance (what the later stages of a pipeline see); Ray's start is timed apart.
Every configuration's attribute folder must be byte-identical. Prints wall times and ratios: the
overhead Ray adds on one machine and the speed-up of the second worker.

The swarm (``--swarm-runs``, 0 to skip): that many mixtures over the pool's sources, each selected at a
small budget and trained as a tiny scratch proxy (one thread per run), through ``run_swarm`` on each back
end with 1 and 2 workers (Ray: a fresh instance each, its start included in the time, as a pipeline run
would see it). Every configuration's final losses must be equal.

    .venv/bin/python bench/bench_executors.py [--docs 6000] [--shard-docs 250] [--stage dedup|quality]
        [--swarm-runs 4] [--swarm-steps 60]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GPT2 = DATA / "tokenizers" / "gpt2" / "tokenizer.json"


def write_corpus(path: Path, n: int) -> int:
    """The first ``n`` documents of the shared corpus, round-robin over its files (so shards mix sources)."""
    files = []
    for f in sorted((DATA / "corpus").glob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            files.append([json.loads(line) for line in fh])
    written = 0
    with path.open("w", encoding="utf-8") as out:
        for i in range(max(map(len, files))):
            for recs in files:
                if i < len(recs) and written < n:
                    out.write(json.dumps({"id": recs[i]["id"], "text": recs[i]["text"]}) + "\n")
                    written += 1
    return written


def stage_of(name: str) -> tuple[Callable[..., Any], Any, str]:
    """(shard function, config, attribute name) of the benchmarked stage."""
    if name == "dedup":
        from mixlab.dedup.config import DedupConfig
        from mixlab.dedup.stage import SIGNATURE_ATTR, signature_shard

        return signature_shard, DedupConfig(), SIGNATURE_ATTR
    from mixlab.quality.stage import SIGNALS_ATTR, signals_shard

    return signals_shard, {"batch_docs": 4096}, SIGNALS_ATTR


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.glob("*.parquet")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:16]


def run_map(executor: Any, base: Path, work: Path, tag: str, stage: str) -> tuple[float, str]:
    from mixlab.pool.pool import Pool

    fn, config, attr = stage_of(stage)
    dst = work / tag
    shutil.copytree(base, dst, ignore=shutil.ignore_patterns(".locks", "attrs", "stats"))
    pool = Pool.open(dst)
    t0 = time.perf_counter()
    done = executor.map_shards(fn, pool, attr, config)
    seconds = time.perf_counter() - t0
    assert done == pool.shards, (tag, len(done))
    out = digest(pool.attr_dir(attr))
    shutil.rmtree(dst)
    return seconds, out


def swarm_data(pool_root: str, workdir: str, run: str, weights: dict[str, float]) -> Path:
    """Swarm make_data: the pipeline's own selection (domains = sources) at a small budget."""
    from mixlab.pipeline import make_selection
    from mixlab.select.config import SelectConfig

    cfg = SelectConfig(budget_tokens=20_000, domain_from="source", shortfall="redistribute", max_epochs=4)
    return make_selection(pool_root, cfg.model_dump_json(), workdir, run, weights)


def run_small_swarm(
    executor: Any, pool: Any, work: Path, tag: str, runs: int, steps: int
) -> tuple[float, str]:
    """(seconds, digest of the final losses) of a swarm of ``runs`` tiny proxies through ``executor``."""
    import functools

    import numpy as np
    import pandas as pd

    from mixlab.executors import Resources
    from mixlab.proxies.config import ProxyConfig
    from mixlab.proxies.swarm import run_swarm

    sources = sorted(pool.meta["docs_per_source"])
    rng = np.random.default_rng(0)
    ratios = pd.DataFrame(
        rng.dirichlet(np.ones(len(sources)), size=runs),
        columns=sources,
        index=pd.Index([f"r{i}" for i in range(runs)], name="run"),
    )
    proxy = ProxyConfig(preset="demo", block_size=64, batch_size=2, max_steps=steps, lr=3e-3, num_threads=1)
    out = work / f"swarm-{tag}"
    t0 = time.perf_counter()
    df = run_swarm(
        ratios,
        make_data=functools.partial(swarm_data, str(pool.root), str(out)),
        train=proxy,
        evaluate=None,
        out_dir=out / "swarm",
        metrics_csv=out / "swarm" / "metrics.csv",
        tokenizer_spec=pool.tokenizer_spec,
        executor=executor,
        resources=Resources(cpus=1),
    )
    seconds = time.perf_counter() - t0
    assert set(df["status"]) == {"ok"}, df["status"].tolist()
    losses = df.filter(like="final_loss").round(6).to_csv()
    shutil.rmtree(out, ignore_errors=True)
    return seconds, hashlib.sha256(losses.encode()).hexdigest()[:16]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=6000, help="documents in the pool")
    ap.add_argument("--shard-docs", type=int, default=250, help="documents per shard")
    ap.add_argument("--stage", choices=["dedup", "quality"], default="dedup")
    ap.add_argument("--repeats", type=int, default=2, help="maps per configuration (the median is shown)")
    ap.add_argument("--swarm-runs", type=int, default=4, help="proxies in the small swarm (0: skip it)")
    ap.add_argument("--swarm-steps", type=int, default=60, help="training steps of each tiny proxy")
    args = ap.parse_args()

    import ray

    from mixlab.executors import LocalExecutor, RayExecutor
    from mixlab.executors.ray import start_local_ray
    from mixlab.pool.ingest import ingest

    os.environ.setdefault("MIXLAB_PROGRESS", "none")
    work = Path(tempfile.mkdtemp(prefix="bench-executors-"))
    try:
        n = write_corpus(work / "docs.jsonl", args.docs)
        t0 = time.perf_counter()
        pool = ingest([work / "docs.jsonl"], work / "base", tokenizer=str(GPT2), shard_docs=args.shard_docs)
        print(
            f"pool: {n} documents, {len(pool.shards)} shards of {args.shard_docs}, "
            f"ingested in {time.perf_counter() - t0:.1f}s; stage: {args.stage}; cores: {os.cpu_count()}"
        )
        times: dict[str, float] = {}
        digests: dict[str, str] = {}

        def measure(tag: str, make: Callable[[], Any]) -> None:
            runs = [
                run_map(make(), work / "base", work, f"{tag}-{i}", args.stage) for i in range(args.repeats)
            ]
            times[tag] = statistics.median(s for s, _ in runs)
            digests.update({f"{tag}-{i}": d for i, (_, d) in enumerate(runs)})
            print(f"  {tag:<14} {times[tag]:7.2f}s  ({', '.join(f'{s:.2f}' for s, _ in runs)})", flush=True)

        for w in (1, 2):
            measure(f"local-{w}", lambda w=w: LocalExecutor(w))
        for w in (1, 2):
            t0 = time.perf_counter()
            start_local_ray(ray, w)
            start = time.perf_counter() - t0
            times[f"ray-{w}-start"] = start
            print(f"  ray-{w} start   {start:7.2f}s")
            cold, d = run_map(RayExecutor(w), work / "base", work, f"ray-{w}-cold", args.stage)
            times[f"ray-{w}-cold"] = cold
            digests[f"ray-{w}-cold"] = d
            print(f"  ray-{w}-cold    {cold:7.2f}s")
            measure(f"ray-{w}-warm", lambda w=w: RayExecutor(w))
            ray.shutdown()

        same = len(set(digests.values())) == 1
        print(f"outputs byte-identical across all {len(digests)} maps: {same}")
        l1, l2, r1, r2 = times["local-1"], times["local-2"], times["ray-1-warm"], times["ray-2-warm"]
        print("ratios (wall time):")
        print(f"  Ray overhead, 1 worker, warm:  ray-1 / local-1 = {r1 / l1:.2f}x")
        print(f"  Ray overhead, 2 workers, warm: ray-2 / local-2 = {r2 / l2:.2f}x")
        print(f"  Ray overhead, 1 worker, cold:  ray-1-cold / local-1 = {times['ray-1-cold'] / l1:.2f}x")
        print(
            "  Ray overhead incl. start, 2 workers: (start + cold) / local-2 = "
            f"{(times['ray-2-start'] + times['ray-2-cold']) / l2:.2f}x"
        )
        print(f"  speed-up of the 2nd worker, local: local-1 / local-2 = {l1 / l2:.2f}x")
        print(f"  speed-up of the 2nd worker, Ray:   ray-1 / ray-2 = {r1 / r2:.2f}x")
        if not same:
            raise SystemExit("outputs differ between executors")
        if args.swarm_runs > 0:
            from mixlab.pool.pool import Pool

            print(f"swarm: {args.swarm_runs} tiny proxies of {args.swarm_steps} steps, one thread each")
            pool_s = Pool.open(work / "base")
            st: dict[str, float] = {}
            losses: dict[str, str] = {}
            for w in (1, 2):
                st[f"local-{w}"], losses[f"local-{w}"] = run_small_swarm(
                    LocalExecutor(w), pool_s, work, f"local-{w}", args.swarm_runs, args.swarm_steps
                )
                print(f"  local-{w}            {st[f'local-{w}']:7.2f}s", flush=True)
            for w in (1, 2):
                t0 = time.perf_counter()
                start_local_ray(ray, w)
                _, losses[f"ray-{w}"] = run_small_swarm(
                    RayExecutor(w), pool_s, work, f"ray-{w}", args.swarm_runs, args.swarm_steps
                )
                st[f"ray-{w}"] = time.perf_counter() - t0
                ray.shutdown()
                print(f"  ray-{w} (incl. start) {st[f'ray-{w}']:7.2f}s", flush=True)
            same_losses = len(set(losses.values())) == 1
            print(f"final losses equal across the 4 swarms: {same_losses}")
            print("ratios (wall time):")
            print(
                f"  Ray overhead incl. start, 1 worker:  ray-1 / local-1 = {st['ray-1'] / st['local-1']:.2f}x"
            )
            print(
                f"  Ray overhead incl. start, 2 workers: ray-2 / local-2 = {st['ray-2'] / st['local-2']:.2f}x"
            )
            print(f"  speed-up of the 2nd worker, local: {st['local-1'] / st['local-2']:.2f}x")
            print(f"  speed-up of the 2nd worker, Ray:   {st['ray-1'] / st['ray-2']:.2f}x")
            if not same_losses:
                raise SystemExit("swarm losses differ between executors")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
