"""Crashes injected at exact points (in-process): completion markers carry the config, outputs are
replaced whole.

- dedup / quality / decontam / partition rerun with another config and crashed after some shards were
  rewritten: the attribute reads as incomplete (never "complete" and mixed); the next run recomputes
  it, replacing it shard by shard, and says so;
- an export that fails over an existing dataset leaves that dataset exactly as it was, with no temporary
  files; a missing spill part is an error, never a skip.
"""

from __future__ import annotations

import io
import logging
import shutil
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from test_faults_support import (
    attr_snapshot,
    copy_pool,
    dataset_is_consistent,
    leftovers,
    needs_data,
    run_stage,
    shared_world,
    snapshot,
    stage_options,
)

import mixlab.select.export as export_module
from mixlab.cli import main
from mixlab.pool.pool import Pool, PoolError

pytestmark = needs_data


class Crash(RuntimeError):
    """Stands for a kill between two shard writes."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return shared_world(tmp_path_factory)


def _crash_after_writes(monkeypatch: pytest.MonkeyPatch, name: str, n: int) -> None:
    """Make ``Pool.write_attr`` of attribute ``name`` raise after ``n`` successful writes."""
    real = Pool.write_attr
    count = {"n": 0}

    def write_attr(self: Pool, attr: str, shard: str, table: Any, fp: str | None = None) -> None:
        if attr == name:
            if count["n"] >= n:
                raise Crash(f"killed after {n} shard(s) of {name}")
            count["n"] += 1
        real(self, attr, shard, table, fp)

    monkeypatch.setattr(Pool, "write_attr", write_attr)


@pytest.mark.parametrize(
    ("stage", "name", "first", "second"),
    [
        ("dedup", "dedup", {}, {"threshold": 0.2}),
        ("quality", "quality", {}, {"n_buckets": 3}),
    ],
)
def test_config_change_interrupted_mid_write_is_incomplete_then_recomputed(
    world: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    stage: str,
    name: str,
    first: dict[str, Any],
    second: dict[str, Any],
) -> None:
    ref = copy_pool(world["base"], tmp_path / "ref")
    run_stage(stage, str(ref), first)
    expected = attr_snapshot(ref, name)
    pool_dir = copy_pool(ref, tmp_path / "pool")
    with monkeypatch.context() as m:
        _crash_after_writes(m, name, 2)
        with pytest.raises(Crash):
            run_stage(stage, str(pool_dir), second)
    pool = Pool.open(pool_dir)
    assert not pool.has_attr(name)  # two shards of the new config, the rest of the old: not complete
    with pytest.raises(PoolError, match="another config"):
        pool.read_attr(name)
    assert _listed_state(pool_dir, name) == "incomplete"
    with caplog.at_level(logging.WARNING):
        summary = run_stage(stage, str(pool_dir), first)
    assert summary.get("skipped") is not True  # the old code said "(already done)" here
    assert any("changed since the last run" in r.getMessage() for r in caplog.records)
    assert attr_snapshot(pool_dir, name) == expected


def _listed_state(pool_dir: Path, name: str) -> str:
    """What ``mixlab attrs POOL`` says about attribute ``name``."""
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["attrs", str(pool_dir)]) == 0
    states = dict(line.split("\t") for line in buf.getvalue().splitlines())
    return states[name]


@pytest.mark.parametrize(("stage", "name"), [("decontam", "decontam"), ("partition", "domains")])
def test_per_shard_stage_crash_resumes_and_markers_carry_the_config(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str, name: str
) -> None:
    opts = stage_options(world, stage)
    ref = copy_pool(world["base"], tmp_path / "ref")
    run_stage(stage, str(ref), opts)
    pool_dir = copy_pool(world["base"], tmp_path / "pool")
    with monkeypatch.context() as m:
        _crash_after_writes(m, name, 3)
        with pytest.raises(Crash):
            run_stage(stage, str(pool_dir), opts)
    pool = Pool.open(pool_dir)
    assert not pool.has_attr(name)
    assert len(pool.stale_shards(name)) == len(pool.shards) - 3
    markers = {pool.attr_marker(name, s)["config"] for s in pool.shards if pool.attr_marker(name, s)}
    assert markers == {pool.attr_target(name)}
    run_stage(stage, str(pool_dir), opts)
    assert attr_snapshot(pool_dir, name) == attr_snapshot(ref, name)


def test_marker_from_another_config_is_not_complete(world: dict[str, Path], tmp_path: Path) -> None:
    pool_dir = copy_pool(world["base"], tmp_path / "pool")
    opts = stage_options(world, "decontam")
    run_stage("decontam", str(pool_dir), opts)
    pool = Pool.open(pool_dir)
    assert pool.has_attr("decontam")
    marker = pool.marker_path("decontam", pool.shards[0])
    marker.write_text('{"rows": 30, "config": "someotherconfig"}')
    assert not pool.has_attr("decontam")
    marker.write_text('{"rows": 30}')  # a marker of the old format, without a fingerprint
    assert not pool.has_attr("decontam")
    assert run_stage("decontam", str(pool_dir), opts)["shards_computed"] == 1


def test_failed_export_leaves_the_old_dataset_exactly(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "ds"
    old = stage_options(world, "export", budget=15_000, out=str(out))
    run_stage("export", str(world["base"]), old)
    before = snapshot(out)

    def fail(*args: Any, **kwargs: Any) -> str:
        raise Crash("disk full while the manifest was written")

    new = stage_options(world, "export", budget=30_000, out=str(out), formats=["jsonl"])
    with monkeypatch.context() as m:
        m.setattr(export_module, "sha256_file", fail)
        with pytest.raises(Crash):
            run_stage("export", str(world["base"]), new)
    assert snapshot(out) == before  # not the new data.jsonl beside the old data.parquet and manifest
    assert dataset_is_consistent(out)
    assert leftovers(tmp_path) == []
    run_stage("export", str(world["base"]), new)
    assert {p.name for p in out.iterdir()} == {"data.jsonl", "manifest.json"}
    assert dataset_is_consistent(out)


def test_missing_spill_part_is_an_error_not_a_skip(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = export_module._spill_parts

    def spill_then_lose_one(pool: Pool, chosen: Any, tmp: Path, part_rows: int, executor: Any) -> int:
        n = real(pool, chosen, tmp, part_rows, executor)
        shutil.rmtree(tmp / "part-00001")  # what a second export's cleanup did to the first
        return n

    monkeypatch.setattr(export_module, "_spill_parts", spill_then_lose_one)
    out = tmp_path / "ds"
    with pytest.raises(PoolError, match="part"):
        run_stage("export", str(world["base"]), stage_options(world, "export", budget=15_000, out=str(out)))
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_export_refuses_to_replace_a_folder_that_is_not_a_dataset(
    world: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(PoolError, match="not a mixlab dataset"):
        run_stage("export", str(world["base"]), stage_options(world, "export", budget=15_000, out=str(out)))
    assert (out / "notes.txt").read_text() == "keep me"
