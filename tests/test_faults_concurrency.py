"""Two runs at once: of the same stage on one pool, of ingest into one folder, of select/export into one
folder. The second waits for the first (a lock that dies with its process); the result is always one
run's complete output, never a mix, an empty dataset or an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_faults_support import (
    attr_snapshot,
    copy_pool,
    dataset_is_consistent,
    leftovers,
    needs_data,
    reference,
    shared_world,
    snapshot,
    stage_options,
    start,
)

from mixlab.pool.pool import Pool

pytestmark = needs_data


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return shared_world(tmp_path_factory)


def _both(stage: str, roots: tuple[Path, Path], options: tuple[dict[str, Any], ...], log: Path) -> None:
    procs = [start(stage, root, opts, log) for root, opts in zip(roots, options, strict=True)]
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0], log.read_text() if log.exists() else ""


@pytest.mark.parametrize(
    ("stage", "first", "second"),
    [("dedup", {}, {"threshold": 0.2}), ("quality", {}, {"n_buckets": 3})],
)
def test_two_runs_of_one_stage_wait_for_each_other(
    world: dict[str, Path], tmp_path: Path, stage: str, first: dict[str, Any], second: dict[str, Any]
) -> None:
    refs = [attr_snapshot(reference(world, stage, opts)[0], stage) for opts in (first, second)]
    pool_dir = copy_pool(world["base"], tmp_path / "pool")
    _both(stage, (pool_dir, pool_dir), (first, second), tmp_path / "child.log")
    assert Pool.open(pool_dir).has_attr(stage)
    assert attr_snapshot(pool_dir, stage) in refs  # one run's attribute, whole


def test_two_ingests_into_one_folder(world: dict[str, Path], tmp_path: Path) -> None:
    opts = stage_options(world, "ingest")
    ref_dir, _ = reference(world, "ingest", opts)
    out = tmp_path / "pool"
    _both("ingest", (out, out), (opts, opts), tmp_path / "child.log")
    assert snapshot(out) == snapshot(ref_dir)
    assert leftovers(tmp_path) == []


def test_two_exports_into_one_folder(world: dict[str, Path], tmp_path: Path) -> None:
    a = stage_options(world, "export", budget=15_000)
    b = stage_options(world, "export", budget=30_000, formats=["jsonl"])
    refs = [snapshot(reference(world, "export", opts)[0]) for opts in (a, b)]
    out = str(tmp_path / "ds")
    _both(
        "export", (world["base"], world["base"]), (a | {"out": out}, b | {"out": out}), tmp_path / "child.log"
    )
    assert dataset_is_consistent(Path(out))
    assert snapshot(Path(out)) in refs
    assert Path(out, "data.jsonl").stat().st_size > 0
    assert leftovers(tmp_path) == []
