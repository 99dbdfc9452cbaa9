"""Export through the executor: the pool shards are read by executor calls, the files are written by the
driver as one ordered stream, so they are the same bytes for any executor, number of workers and part size.

A small real pool (documents of the shared corpus, GPT-2 token counts, several shards) is selected with
repeats and exported in all three formats.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_executors import ray_cluster  # noqa: F401 - the executor tests' local Ray cluster (2 CPUs)

from mixlab.executors import Executor, LocalExecutor, RayExecutor
from mixlab.pool.ingest import ingest
from mixlab.pool.pool import Pool, PoolError
from mixlab.select import SelectConfig, export_selection, select_documents
from mixlab.select.selection import Selection

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GPT2 = DATA / "tokenizers" / "gpt2" / "tokenizer.json"
SOURCES = ("gsm8k_train", "foldoc", "bfcl", "python_docs", "tinyshakespeare")
FILES = ("data.jsonl", "data.parquet", "data.json")
FORMATS = ["jsonl", "parquet", "lmflow"]

pytestmark = pytest.mark.skipif(
    not GPT2.exists() or not (DATA / "corpus").exists(), reason="../shared/data is not available"
)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Pool:
    """About 150 real documents in 5 shards, with the source as the domain."""
    root = tmp_path_factory.mktemp("export_executor")
    src = root / "docs.jsonl"
    with src.open("w", encoding="utf-8") as out:
        for name in SOURCES:
            with gzip.open(DATA / "corpus" / f"{name}.jsonl.gz", "rt", encoding="utf-8") as fh:
                for line in itertools.islice(fh, 30):
                    d = json.loads(line)
                    out.write(json.dumps({"id": d["id"], "text": d["text"], "source": name}) + "\n")
    return ingest([src], root / "pool", tokenizer=str(GPT2), shard_docs=32)


def _selection(pool: Pool) -> Selection:
    """A selection over every shard with repeated documents (the small source is asked for twice its size)."""
    weights = {s: 1.0 / len(SOURCES) for s in SOURCES}
    natural = pool.read_docs(("source", "n_tokens")).groupby("source")["n_tokens"].sum()
    budget = int(2 * natural.min() * len(SOURCES))  # the smallest source repeats about twice
    config = SelectConfig(
        budget_tokens=budget, domain_from="source", shortfall="redistribute", formats=FORMATS, seed=5
    )
    return select_documents(pool, weights, config)


@pytest.fixture(scope="module")
def selection(pool: Pool) -> Selection:
    sel = _selection(pool)
    assert sel.chosen["shard"].nunique() == len(pool.shards) >= 4
    assert sel.chosen["id"].duplicated().any()  # repeats are exported once per repeat
    return sel


@pytest.fixture(scope="module")
def serial(pool: Pool, selection: Selection, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the default executor (one worker, in this process) and one spill part."""
    out = tmp_path_factory.mktemp("serial") / "ds"
    return export_selection(pool, selection, out, FORMATS)


def _files(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in (*FILES, "manifest.json")}


def _assert_same(out: Path, reference: Path) -> None:
    got, want = _files(out), _files(reference)
    for name in want:
        assert got[name] == want[name], name
    manifest = json.loads(want["manifest.json"])
    for name in FILES:
        assert manifest["files"][name]["sha256"] == hashlib.sha256(got[name]).hexdigest()


def _export(pool: Pool, selection: Selection, out: Path, executor: Executor, part_chars: int) -> Path:
    return export_selection(pool, selection, out, FORMATS, part_chars=part_chars, executor=executor)


def test_workers_and_part_size_do_not_change_the_files(
    pool: Pool, selection: Selection, serial: Path, tmp_path: Path
) -> None:
    rows = [json.loads(line) for line in (serial / "data.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == selection.chosen["id"].tolist()
    assert pq.read_table(serial / "data.parquet").column("id").to_pylist() == [r["id"] for r in rows]

    two = LocalExecutor(workers=2)
    _assert_same(_export(pool, selection, tmp_path / "two", two, 50_000_000), serial)
    # tiny parts: every shard writes into many parts, every part gathers rows of several shards
    mean_chars = float(selection.chosen["n_chars"].mean())
    part_chars = int(mean_chars * 7)
    assert len(selection.chosen) // 7 >= 10
    _assert_same(_export(pool, selection, tmp_path / "tiny", two, part_chars), serial)
    _assert_same(_export(pool, selection, tmp_path / "tiny1", LocalExecutor(1), part_chars), serial)
    assert _leftovers(tmp_path) == []


def _leftovers(parent: Path) -> list[str]:
    """Temporary folders an export left beside its output (``.NAME.tmp-*``, ``.NAME.old-*``)."""
    return sorted(p.name for p in parent.iterdir() if ".tmp" in p.name or ".old-" in p.name)


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_changed_shard_is_an_error_and_the_old_dataset_stays(pool: Pool, tmp_path: Path) -> None:
    copy = Pool.open(shutil.copytree(pool.root, tmp_path / "pool", ignore=shutil.ignore_patterns(".locks")))
    sel = _selection(copy)
    out = tmp_path / "ds"
    export_selection(copy, sel, out, FORMATS)
    before = _snapshot(out)

    shard = sorted(sel.chosen["shard"].unique())[1]
    path = copy.shard_path(shard)
    table = pq.read_table(path)
    ids = [f"other-{i}" for i in table.column("id").to_pylist()]
    pq.write_table(table.set_column(table.schema.get_field_index("id"), "id", pa.array(ids)), path)

    with pytest.raises(PoolError, match="the pool changed since selection") as info:
        _export(copy, sel, out, LocalExecutor(workers=2), 2_000)  # the error comes from a worker process
    assert str(path) in str(info.value)
    assert _snapshot(out) == before
    assert _leftovers(tmp_path) == []


@pytest.mark.usefixtures("ray_cluster")
def test_ray_export_equals_local(pool: Pool, selection: Selection, serial: Path, tmp_path: Path) -> None:
    out = _export(pool, selection, tmp_path / "ray", RayExecutor(workers=2), 3_000)
    _assert_same(out, serial)
