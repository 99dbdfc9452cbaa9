"""The executor interface: the same stage tests under the local and the Ray executor, and their parity.

One small pool of real documents (the shared corpus, GPT-2 tokenizer) with planted exact and near
copies is annotated by each executor (domains, quality, dedup, decontam) and a 2-run swarm of tiny proxies
is trained and evaluated by each; the attribute folders, models and metrics must be byte-identical.
Ray runs on one local cluster started by this module (2 CPUs).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mixlab.executors import (
    EXECUTORS,
    Executor,
    LocalExecutor,
    RayExecutor,
    Resources,
    ShardOutput,
    make_executor,
    read_stats,
)
from mixlab.pool.ingest import ingest
from mixlab.pool.pool import Pool

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GPT2 = DATA / "tokenizers" / "gpt2" / "tokenizer.json"
TASKS = DATA / "tasks"
NAMES = ["local", "ray"]
ATTRS = ["domains", "quality_signals", "quality", "dedup_signatures", "dedup", "decontam"]

pytestmark = pytest.mark.skipif(
    not GPT2.exists() or not (DATA / "corpus").exists(), reason="../shared/data is not available"
)


# -- fixtures -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """One local Ray cluster for the module (2 CPUs); this test module's functions travel by value."""
    ray = pytest.importorskip("ray")
    from mixlab.executors.ray import start_local_ray

    start_local_ray(ray, 2)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        yield
    finally:
        ray.shutdown()


def _executor(name: str, request: pytest.FixtureRequest, workers: int = 1) -> Executor:
    """Ray on the module's cluster, or local (``workers`` 1: in this process, the pipeline's default)."""
    if name == "ray":
        request.getfixturevalue("ray_cluster")
        return RayExecutor(workers=2)
    return LocalExecutor(workers=workers)


@pytest.fixture(params=NAMES)
def executor(request: pytest.FixtureRequest) -> Executor:
    """Each back end with two workers (local: a spawn process pool)."""
    return _executor(request.param, request, workers=2)


def _corpus_docs(per_file: int = 18, max_chars: int = 3000) -> list[dict[str, Any]]:
    """The first documents of every shared corpus file, plus planted exact and near copies."""
    picked: list[dict[str, Any]] = []
    for path in sorted((DATA / "corpus").glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            recs = [json.loads(line) for _, line in zip(range(200), fh, strict=False)]
        short = [{"id": r["id"], "text": r["text"]} for r in recs if len(r["text"]) <= max_chars]
        picked.extend(short[:per_file])
    rng = np.random.default_rng(0)
    long = [d for d in picked if len(d["text"].split()) >= 80]
    for i, d in enumerate(long[:5]):  # exact copies
        picked.append({"id": f"copy-{i}", "text": d["text"]})
    for i, d in enumerate(long[5:9]):  # near copies: a few words replaced
        words = d["text"].split(" ")
        for j in rng.choice(len(words), size=3, replace=False):
            words[j] = "zyzzyva"
        picked.append({"id": f"near-{i}", "text": " ".join(words)})
    return picked


@pytest.fixture(scope="module")
def base_pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("executors")
    src = root / "docs.jsonl"
    with src.open("w", encoding="utf-8") as fh:
        for d in _corpus_docs():
            fh.write(json.dumps(d) + "\n")
    ingest([src], root / "base", tokenizer=str(GPT2), shard_docs=50)
    return root / "base"


def _copy_pool(base: Path, dst: Path) -> Pool:
    import shutil

    shutil.copytree(base, dst, ignore=shutil.ignore_patterns(".locks"))
    return Pool.open(dst)


def _annotate(
    pool: Pool, executor: Executor, order: tuple[str, ...] = ("partition", "quality", "dedup", "decontam")
) -> dict[str, Any]:
    from mixlab.dedup.config import DecontamConfig, DedupConfig
    from mixlab.dedup.stage import decontaminate_pool, dedup_pool
    from mixlab.domains.config import PartitionConfig
    from mixlab.domains.partition import partition_pool
    from mixlab.quality.config import QualityConfig
    from mixlab.quality.stage import score_quality

    tasks = {p.stem: str(p) for p in sorted(TASKS.glob("*.jsonl"))}
    stages = {
        "partition": lambda: partition_pool(pool, PartitionConfig(method="rules"), executor=executor),
        "quality": lambda: score_quality(pool, QualityConfig(), executor=executor),
        "dedup": lambda: dedup_pool(pool, DedupConfig(), executor=executor),
        "decontam": lambda: decontaminate_pool(pool, DecontamConfig(tasks=tasks), executor=executor),
    }
    return {name: stages[name]() for name in order}


_ANNOTATED: dict[str, tuple[Pool, dict[str, Any], float]] = {}


@pytest.fixture(scope="module")
def annotated(
    base_pool: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Callable[[str], tuple[Pool, dict[str, Any]]]:
    """``annotated(name)``: a copy of the pool annotated by executor ``name`` (once per module)."""
    import time

    def get(name: str) -> tuple[Pool, dict[str, Any]]:
        if name not in _ANNOTATED:
            ex = _executor(name, request)
            pool = _copy_pool(base_pool, tmp_path_factory.mktemp(f"pool-{name}") / "pool")
            t0 = time.perf_counter()
            summaries = _annotate(pool, ex)
            _ANNOTATED[name] = (pool, summaries, time.perf_counter() - t0)
            logging.getLogger(__name__).info("annotated with %s in %.1fs", name, _ANNOTATED[name][2])
        pool, summaries, _ = _ANNOTATED[name]
        return pool, summaries

    return get


def _snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (``.npz`` by its arrays: zip entries carry a time stamp)."""
    out: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".npz":
            with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as data:
                h = hashlib.sha256()
                for key in sorted(data.files):
                    h.update(key.encode() + np.ascontiguousarray(data[key]).tobytes())
            out[str(path.relative_to(folder))] = h.hexdigest()
        else:
            out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# -- shard stages for the contract tests (module level: they travel to workers) ---------------------------
def length_stage(pool_root: str, shard: str, config: dict[str, Any]) -> ShardOutput:
    """``long`` = more than ``config['min']`` tokens; drops by reason = the short ones."""
    n = Pool.open(pool_root).read_shard(shard, ["n_tokens"]).column("n_tokens").to_numpy()
    long = n > config["min"]
    return ShardOutput(pa.table({"long": long}), {"short": int((~long).sum())})


def flaky_stage(pool_root: str, shard: str, config: dict[str, Any]) -> pa.Table:
    """Fails on the first attempt of shard ``config['shard']`` (or on every attempt with ``always``)."""
    flags = Path(config["flags"])
    n = Pool.open(pool_root).read_shard(shard, ["id"]).num_rows
    if shard == config["shard"]:
        attempt = len(list(flags.glob(f"{shard}.*"))) + 1
        (flags / f"{shard}.{attempt}").write_text("x")
        if config["always"] or attempt == 1:
            raise ValueError(f"flaky shard {shard}, attempt {attempt}")
    return pa.table({"x": pa.array(np.zeros(n, dtype=np.int64))})


def make_run_data(pool_root: str, workdir: str, run: str, weights: dict[str, float]) -> Path:
    """Swarm make_data: the pipeline's own selection of a mixture at a small budget."""
    from mixlab.pipeline import make_selection
    from mixlab.select.config import SelectConfig

    cfg = SelectConfig(budget_tokens=6000, shortfall="redistribute", max_epochs=4)
    return make_selection(pool_root, cfg.model_dump_json(), workdir, run, weights)


def evaluate_tiny(run: str, model_dir: Path) -> dict[str, float]:
    """Swarm evaluate: the pipeline's evaluation on the first items of two shared tasks."""
    from mixlab.evaluation.config import EvalConfig
    from mixlab.pipeline import evaluate_run

    cfg = EvalConfig(
        tasks={t: str(TASKS / f"{t}.jsonl") for t in ("reasoning", "roleplay")}, limit=6, batch_size=8
    )
    return evaluate_run(cfg.model_dump_json(), run, model_dir)


# -- the executor contract, under both back ends ------------------------------------------------------------
def test_registry_and_factory() -> None:
    assert EXECUTORS == {"local": LocalExecutor, "ray": RayExecutor}
    ex = make_executor("ray", 3, "auto")
    assert isinstance(ex, RayExecutor) and ex.workers == 3 and ex.address == "auto" and ex.retries == 1
    assert isinstance(make_executor("local", 2), LocalExecutor)
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("dask")
    with pytest.raises(ValueError, match="ray_address"):
        make_executor("local", 1, "auto")
    with pytest.raises(ValueError):
        Resources(cpus=-1)


def test_map_shards_contract(executor: Executor, base_pool: Path, tmp_path: Path) -> None:
    """Markers + fingerprints, skip of finished shards, the change policy, stats with drops by reason."""
    pool = _copy_pool(base_pool, tmp_path / "pool")
    assert len(pool.shards) >= 4
    first = executor.map_shards(length_stage, pool, "long", {"min": 100})
    assert first == pool.shards
    assert executor.map_shards(length_stage, pool, "long", {"min": 100}) == []  # all finished: skipped
    (pool.attr_dir("long") / f"{pool.shards[1]}.done").unlink()  # a crash on one shard
    assert executor.map_shards(length_stage, pool, "long", {"min": 100}) == [pool.shards[1]]
    n_tok = pool.read_docs(["n_tokens"])["n_tokens"].to_numpy()
    df = pool.read_attr("long")
    assert df["long"].to_numpy().tolist() == (n_tok > 100).tolist()
    stats = read_stats(pool, "long")
    assert stats is not None and stats["executor"] == executor.name
    assert stats["totals"]["documents"] == pool.n_docs() and stats["totals"]["tokens"] == pool.n_tokens()
    assert stats["totals"]["drops"] == {"short": int((n_tok <= 100).sum())}
    assert list(stats["shards"]) == pool.shards and all(s["attempts"] == 1 for s in stats["shards"].values())

    # another config: every shard recomputed (replaced shard by shard), the markers carry the new one
    assert executor.map_shards(length_stage, pool, "long", {"min": 50}) == pool.shards
    assert pool.read_attr("long")["long"].to_numpy().tolist() == (n_tok > 50).tolist()
    # a subset of shards, and unknown shards refused
    assert (
        executor.map_shards(length_stage, pool, "long2", {"min": 1}, shards=pool.shards[:2])
        == pool.shards[:2]
    )
    assert not pool.has_attr("long2")
    with pytest.raises(ValueError, match="no shard"):
        executor.map_shards(length_stage, pool, "long2", {"min": 1}, shards=["nope"])


def test_retry_then_fail(executor: Executor, base_pool: Path, tmp_path: Path) -> None:
    pool = _copy_pool(base_pool, tmp_path / "pool")
    flags = tmp_path / "flags"
    flags.mkdir()
    shard = pool.shards[2]
    cfg = {"flags": str(flags), "shard": shard, "always": False}
    assert executor.map_shards(flaky_stage, pool, "flaky", cfg) == pool.shards  # retried once, then fine
    stats = read_stats(pool, "flaky")
    assert stats is not None and stats["shards"][shard]["attempts"] == 2
    assert pool.has_attr("flaky")

    (flags / "always").mkdir()
    cfg = {"flags": str(flags / "always"), "shard": shard, "always": True}
    with pytest.raises(ValueError, match="flaky shard") as err:  # the stage's own exception, after 2 tries
        executor.map_shards(flaky_stage, pool, "flaky2", cfg)
    assert len(list((flags / "always").glob("*"))) == 2
    assert any("failed 2 time(s)" in note for note in getattr(err.value, "__notes__", []))
    assert not pool.attr_done("flaky2", shard) and pool.attr_done("flaky2", pool.shards[0])
    no_retry = type(executor)(workers=1, retries=0)
    (flags / "none").mkdir()
    cfg = {"flags": str(flags / "none"), "shard": shard, "always": True}
    with pytest.raises(ValueError, match="flaky shard"):
        no_retry.map_shards(flaky_stage, pool, "flaky3", cfg)
    assert len(list((flags / "none").glob("*"))) == 1


@pytest.mark.parametrize("name", NAMES)
def test_stages(
    name: str,
    annotated: Callable[[str], tuple[Pool, dict[str, Any]]],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """Partition, quality, dedup and decontam under one executor: complete attributes, stats, resumable."""
    pool, summaries = annotated(name)
    for attr in ATTRS:
        assert pool.has_attr(attr), attr
    n = pool.n_docs()
    q = summaries["quality"]
    assert q["docs"] == n and q["kept"] + q["filtered"] == n and q["signals_computed"] == pool.shards
    d = summaries["dedup"]
    assert d["docs"] == n and d["duplicates"]["exact"] >= 5 and d["duplicates"]["near"] >= 3
    dedup = pool.read_attr("dedup")
    copies = dedup[dedup["id"].str.startswith("copy-")]
    assert (copies["dup_kind"] == "exact").all() and not copies["dup_keep"].any()
    assert summaries["decontam"]["docs"] == n
    for attr in ("quality_signals", "dedup_signatures", "decontam", "domains"):
        stats = read_stats(pool, attr)
        assert stats is not None and stats["executor"] == name, attr
        assert stats["totals"]["documents"] == n and stats["totals"]["shards"] == len(pool.shards)
    # a rerun (on a copy) finds everything done and recomputes nothing
    again = _copy_pool(pool.root, tmp_path / "again")
    summaries = _annotate(
        again, _executor(name, request), order=("dedup", "decontam", "partition", "quality")
    )
    assert summaries["dedup"]["skipped"] and summaries["decontam"]["skipped"]
    assert summaries["partition"]["computed_shards"] == [] and summaries["quality"]["signals_computed"] == []


def _swarm(name: str, pool: Pool, out: Path, request: pytest.FixtureRequest) -> pd.DataFrame:
    import functools

    from mixlab.domains.partition import summarize_domains
    from mixlab.proxies.config import ProxyConfig
    from mixlab.proxies.swarm import run_swarm

    domains = sorted(d for d, r in summarize_domains(pool)["domains"].items() if r["tokens"] > 2000)
    assert len(domains) >= 2
    uniform = [1.0 / len(domains)] * len(domains)
    skewed = [0.7] + [0.3 / (len(domains) - 1)] * (len(domains) - 1)
    ratios = pd.DataFrame([uniform, skewed], columns=domains, index=pd.Index(["r0", "r1"], name="run"))
    proxy = ProxyConfig(
        preset="demo", block_size=32, batch_size=2, max_steps=3, lr=3e-3, warmup_steps=1, num_threads=1
    )
    return run_swarm(
        ratios,
        make_data=functools.partial(make_run_data, str(pool.root), str(out)),
        train=proxy,
        evaluate=evaluate_tiny,
        out_dir=out / "swarm",
        metrics_csv=out / "swarm" / "metrics.csv",
        tokenizer_spec=pool.tokenizer_spec,
        executor=_executor(name, request),
        resources=Resources(cpus=1),
    )


_SWARMS: dict[str, tuple[Path, pd.DataFrame]] = {}


@pytest.fixture(scope="module")
def swarm(
    annotated: Callable[[str], tuple[Pool, dict[str, Any]]],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Callable[[str], tuple[Path, pd.DataFrame]]:
    def get(name: str) -> tuple[Path, pd.DataFrame]:
        if name not in _SWARMS:
            pool, _ = annotated(name)
            out = tmp_path_factory.mktemp(f"swarm-{name}")
            _SWARMS[name] = (out, _swarm(name, pool, out, request))
        return _SWARMS[name]

    return get


@pytest.mark.parametrize("name", NAMES)
def test_swarm(name: str, swarm: Callable[[str], tuple[Path, pd.DataFrame]]) -> None:
    out, df = swarm(name)
    assert list(df.index) == ["r0", "r1"] and set(df["status"]) == {"ok"}
    assert (df["reasoning/acc"] >= 0).all() and (out / "swarm" / "runs" / "r1" / "DONE").exists()


def _untimed(path: Path) -> Any:
    """A JSON document without the values of keys that measure time."""

    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if not k.endswith(("seconds", "per_second"))}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return strip(json.loads(path.read_text(encoding="utf-8")))


# -- parity: byte-identical outputs ---------------------------------------------------------------------------
def test_parity_local_ray(
    annotated: Callable[[str], tuple[Pool, dict[str, Any]]],
    swarm: Callable[[str], tuple[Path, pd.DataFrame]],
) -> None:
    (local, s_local), (ray_pool, s_ray) = annotated("local"), annotated("ray")
    for attr in ATTRS:
        a, b = _snapshot(local.attr_dir(attr)), _snapshot(ray_pool.attr_dir(attr))
        assert a and a == b, attr
    assert s_local == s_ray
    (out_l, m_l), (out_r, m_r) = swarm("local"), swarm("ray")
    timing = [c for c in m_l.columns if c.endswith("seconds")]
    pd.testing.assert_frame_equal(m_l.drop(columns=timing), m_r.drop(columns=timing))
    assert (out_l / "swarm" / "metrics.csv").read_bytes() == (out_r / "swarm" / "metrics.csv").read_bytes()
    for run in ("r0", "r1"):
        a, b = _snapshot(out_l / "swarm" / "runs" / run), _snapshot(out_r / "swarm" / "runs" / run)
        assert "model.safetensors" in a and "eval/reasoning.jsonl" in a, run
        log_a, log_b = a.pop("train_log.json"), b.pop("train_log.json")  # it holds seconds and tokens/s
        assert a == b, run
        if log_a != log_b:
            untimed = [_untimed(out / "swarm" / "runs" / run / "train_log.json") for out in (out_l, out_r)]
            assert untimed[0] == untimed[1], run
    sel_l, sel_r = _snapshot(out_l / "selections"), _snapshot(out_r / "selections")
    manifests = sorted(k for k in sel_l if k.endswith("manifest.json"))
    assert sel_l.keys() == sel_r.keys() and len(manifests) == 2
    for k in manifests:  # the same selection; a manifest names its pool's folder, which differs here
        ma, mb = (json.loads((out / "selections" / k).read_text()) for out in (out_l, out_r))
        assert ma.pop("pool") != mb.pop("pool") and ma == mb
    assert {k: v for k, v in sel_l.items() if k not in manifests} == {
        k: v for k, v in sel_r.items() if k not in manifests
    }
