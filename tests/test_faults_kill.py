"""SIGKILL at seeded "random" moments of ingest, every annotation stage and select/export.

Each stage runs in a child process (forked from a server that has imported everything once) and is
killed with SIGKILL at moments drawn from a seeded generator: anywhere within its measured run time, or
just after its first write. After every kill what a reader can see is consistent (a complete attribute
is the right one; a dataset folder is the old one or the new one); the rerun's output is byte-identical
to an uninterrupted run, also when the interrupted run had another config. Killing the parent of
``--workers 2`` ends its workers.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from test_faults_support import (
    alive,
    attr_snapshot,
    copy_pool,
    dataset_is_consistent,
    descendants,
    kill_at,
    kill_moments,
    leftovers,
    needs_data,
    reference,
    run_child,
    shared_world,
    snapshot,
    stage_options,
    start,
)

from mixlab.pool.pool import Pool

pytestmark = needs_data

KILLS = 3
INGEST_KILLS = 2
SEEDS = {"partition": 11, "quality": 23, "dedup": 37, "decontam": 41}
ATTRS = {
    "partition": ("domains",),
    "quality": ("quality_signals", "quality"),
    "dedup": ("dedup_signatures", "dedup"),
    "decontam": ("decontam",),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return shared_world(tmp_path_factory)


def test_ingest_killed_at_random_moments_leaves_no_half_pool(world: dict[str, Path], tmp_path: Path) -> None:
    opts = stage_options(world, "ingest")
    ref_dir, took = reference(world, "ingest", opts)
    ref = snapshot(ref_dir)
    out = tmp_path / "pool"
    codes = []
    for moment in kill_moments(101, took, INGEST_KILLS, kinds=("write",)):
        codes.append(kill_at(moment, "ingest", out, opts, tmp_path / "child.log", tmp_path))
        assert not out.exists() or snapshot(out) == ref  # no pool, or the whole pool
    assert -9 in codes
    run_child("ingest", out, opts, tmp_path / "child.log")
    assert snapshot(out) == ref
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("stage", ["partition", "quality", "dedup", "decontam"])
def test_annotation_killed_at_random_moments_reruns_byte_identical(
    world: dict[str, Path], tmp_path: Path, stage: str
) -> None:
    names = ATTRS[stage]
    opts = stage_options(world, stage)
    ref_pool, took = reference(world, stage, opts)
    ref = attr_snapshot(ref_pool, *names)
    pool_dir = copy_pool(world["base"], tmp_path / "pool")
    codes = []
    for moment in kill_moments(SEEDS[stage], took, KILLS):
        codes.append(kill_at(moment, stage, pool_dir, opts, tmp_path / "child.log", pool_dir))
        if Pool.open(pool_dir).has_attr(names[-1]):  # complete means right, never partial or mixed
            assert attr_snapshot(pool_dir, names[-1]) == attr_snapshot(ref_pool, names[-1])
    assert -9 in codes  # at least one run was really killed
    run_child(stage, pool_dir, opts, tmp_path / "child.log")
    assert attr_snapshot(pool_dir, *names) == ref


def test_stage_through_ray_killed_then_rerun_byte_identical(world: dict[str, Path], tmp_path: Path) -> None:
    """The driver of a quality run on a Ray cluster is SIGKILLed mid-stage, twice; the cluster (owned by
    this test, as a real cluster outlives its drivers) stays up. The rerun through Ray writes what an
    uninterrupted local run wrote, byte for byte."""
    ray = pytest.importorskip("ray")
    from mixlab.executors.ray import start_local_ray

    stage, names = "quality", ATTRS["quality"]
    ref_pool, _ = reference(world, stage, stage_options(world, stage))
    ref = attr_snapshot(ref_pool, *names)
    start_local_ray(ray, 2)
    try:
        ray_env = {
            k: v for k, v in os.environ.items() if k.startswith("RAY_")
        }  # the forkserver predates them
        opts = stage_options(world, stage, ray_address=ray.get_runtime_context().gcs_address, ray_env=ray_env)
        ray_ref = tmp_path / "ray-ref"
        copy_pool(world["base"], ray_ref)
        took = run_child(stage, ray_ref, opts, tmp_path / "child.log")  # Ray's own time, joining included
        assert attr_snapshot(ray_ref, *names) == ref  # local and Ray agree before anything is killed
        pool_dir = copy_pool(world["base"], tmp_path / "pool")
        codes = [
            kill_at(moment, stage, pool_dir, opts, tmp_path / "child.log", pool_dir)
            for moment in kill_moments(53, took, 2, kinds=("time",))
        ]
        assert -9 in codes
        run_child(stage, pool_dir, opts, tmp_path / "child.log")
        assert attr_snapshot(pool_dir, *names) == ref
    finally:
        ray.shutdown()


@pytest.mark.parametrize(
    ("stage", "first", "second"),
    [("dedup", {}, {"threshold": 0.2}), ("quality", {}, {"n_buckets": 3})],
)
def test_interrupted_rerun_with_another_config_never_reads_complete_and_mixed(
    world: dict[str, Path], tmp_path: Path, stage: str, first: dict[str, float], second: dict[str, float]
) -> None:
    name = ATTRS[stage][-1]
    refs = [attr_snapshot(reference(world, stage, opts)[0], name) for opts in (first, second)]
    assert refs[0] != refs[1]  # the two configs give different attributes
    pool_dir = copy_pool(reference(world, stage, first)[0], tmp_path / "pool")  # done with `first`
    # kill while the second config's tables replace the first's, one shard after another
    for moment in kill_moments(17, 1.0, KILLS, kinds=("write",), after_write=0.02):
        kill_at(moment, stage, pool_dir, second, tmp_path / "child.log", pool_dir / "attrs" / name, ".done")
        if Pool.open(pool_dir).has_attr(name):
            assert attr_snapshot(pool_dir, name) in refs  # one config's attribute, whole
    run_child(stage, pool_dir, first, tmp_path / "child.log")  # back to the first config
    assert attr_snapshot(pool_dir, name) == refs[0]


def test_export_killed_over_an_existing_dataset_keeps_old_or_new(
    world: dict[str, Path], tmp_path: Path
) -> None:
    old_opts = stage_options(world, "export", budget=15_000)
    new_opts = stage_options(world, "export", budget=30_000, formats=["jsonl"])
    old_dir, _ = reference(world, "export", old_opts)
    new_dir, took = reference(world, "export", new_opts)
    old, new = snapshot(old_dir), snapshot(new_dir)
    out = tmp_path / "ds"
    run_child("export", world["base"], old_opts | {"out": str(out)}, tmp_path / "child.log")
    for moment in kill_moments(5, took, KILLS):
        kill_at(
            moment, "export", world["base"], new_opts | {"out": str(out)}, tmp_path / "child.log", tmp_path
        )
        assert dataset_is_consistent(out)
        assert snapshot(out) in (old, new)
    run_child("export", world["base"], new_opts | {"out": str(out)}, tmp_path / "child.log")
    assert snapshot(out) == new
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_killing_the_parent_ends_its_workers(world: dict[str, Path], tmp_path: Path) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    pool_dir = copy_pool(world["base"], tmp_path / "pool")
    parent = start("sleepy", pool_dir, {"flags": str(flags), "seconds": 120}, tmp_path / "child.log")
    deadline = time.monotonic() + 120
    while len(list(flags.iterdir())) < 2 and time.monotonic() < deadline and parent.is_alive():
        time.sleep(0.2)
    workers = {int(p.name.rsplit(".", 1)[1]) for p in flags.iterdir()}
    assert len(workers) == 2, (tmp_path / "child.log").read_text()
    family = descendants(parent.pid)
    assert workers <= family
    os.kill(parent.pid, 9)
    parent.join(30)
    deadline = time.monotonic() + 15
    while any(alive(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in family if alive(p)], "workers outlived their parent"
