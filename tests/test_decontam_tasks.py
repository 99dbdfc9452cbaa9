"""Decontamination loads tasks through the evaluation's task loader: an lm-eval YAML task that works in
``mixlab eval`` works in decontamination too, and indexes the same items as its ELMB file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mixlab.cli import main
from mixlab.dedup.decontam import TaskIndex, read_task_items, task_digest
from mixlab.evaluation.tasks import load_task

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "lmeval_tasks"
GPT2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "tokenizers" / "gpt2" / "tokenizer.json"

RAG = [
    {
        "id": f"rag-{i}",
        "ctx": f"The lighthouse of harbour number {i} was rebuilt in stone after the great storm of the winter.",
        "question": f"According to the passage, what material was used to rebuild lighthouse number {i} after the storm?",
        "choices": ["stone", "wood", "glass", "iron"],
        "answer": 0,
    }
    for i in range(6)
]
REASONING = [
    {
        "question": f"If a train leaves station {i} at noon travelling at sixty miles an hour, how far has it gone by three?",
        "choices": ["120 miles", "180 miles"],
        "answer": 1,
    }
    for i in range(4)
]


@pytest.fixture
def tasks(tmp_path: Path) -> dict[str, Path]:
    """ELMB files and the lm-eval YAMLs of tests/fixtures/lmeval_tasks pointing at them."""
    data = tmp_path / "tasks"
    data.mkdir()
    for name, items in (("rag", RAG), ("reasoning", REASONING)):
        (data / f"{name}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in items), encoding="utf-8")
    out = tmp_path / "yaml"
    out.mkdir()
    for src in FIXTURES.glob("*.yaml"):
        text = src.read_text(encoding="utf-8").replace("@TASKS_DIR@", data.as_posix())
        (out / src.name).write_text(text, encoding="utf-8")
    return {
        "rag_jsonl": data / "rag.jsonl",
        "rag_yaml": out / "mixlab_rag.yaml",
        "reasoning_jsonl": data / "reasoning.jsonl",
        "reasoning_yaml": out / "mixlab_reasoning.yaml",
    }


def test_yaml_task_gives_the_items_of_its_elmb_file(tasks: dict[str, Path]) -> None:
    assert len(load_task("rag", tasks["rag_yaml"])) == len(RAG)  # what mixlab eval scores
    for name in ("rag", "reasoning"):
        from_yaml = read_task_items(tasks[f"{name}_yaml"], name)
        from_file = read_task_items(tasks[f"{name}_jsonl"], name)
        keys = ("question", "ctx", "choices", "answer")
        assert [{k: x.get(k) for k in keys} for x in from_yaml] == [
            {k: x.get(k) for k in keys} for x in from_file
        ]
    # the fingerprint of a YAML task follows its data file, not only the YAML's bytes
    before = task_digest(tasks["rag_yaml"], "rag")
    tasks["rag_jsonl"].write_text(json.dumps(RAG[0]) + "\n", encoding="utf-8")
    assert task_digest(tasks["rag_yaml"], "rag") != before


def test_yaml_task_flags_the_same_documents_as_its_file(tasks: dict[str, Path]) -> None:
    leaked = f"Notes. {RAG[2]['ctx']} {RAG[2]['question']} stone. End."
    clean = "A recipe for bread: flour, water, salt and time, baked in a hot oven until golden."
    by_yaml = TaskIndex.from_task_files({"rag": tasks["rag_yaml"], "reasoning": tasks["reasoning_yaml"]}, n=8)
    by_file = TaskIndex.from_task_files(
        {"rag": tasks["rag_jsonl"], "reasoning": tasks["reasoning_jsonl"]}, n=8
    )
    for index in (by_yaml, by_file):
        match = index.match([leaked, clean], min_overlap=1, min_coverage=0.8)
        assert match.contaminated.tolist() == [True, False]
        assert match.task[0] == "rag"
    assert by_yaml.stats == by_file.stats


@pytest.mark.skipif(not GPT2.exists(), reason=f"shared tokenizer not found at {GPT2}")
def test_cli_decontam_reads_yaml_tasks_from_the_pipeline(tmp_path: Path, tasks: dict[str, Path]) -> None:
    docs = tmp_path / "docs.jsonl"
    texts = [
        f"Forum post. {RAG[1]['ctx']} {RAG[1]['question']} The answer is stone.",
        "A recipe for bread: flour, water, salt and time, baked in a hot oven until golden.",
        "Minutes of the council meeting about the new bus timetable for the northern districts.",
    ]
    docs.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    assert main(["ingest", str(docs), "--out", str(tmp_path / "pool"), "--tokenizer", str(GPT2)]) == 0
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(
        yaml.safe_dump(
            {
                "workdir": str(tmp_path / "work"),
                "evaluation": {
                    "tasks": {"rag": str(tasks["rag_yaml"]), "reasoning": str(tasks["reasoning_yaml"])}
                },
            }
        ),
        encoding="utf-8",
    )
    assert main(["decontam", str(tmp_path / "pool"), "--config", str(pipeline), "--n", "8"]) == 0
    info = json.loads((tmp_path / "pool" / "attrs" / "decontam" / "attr.json").read_text())
    assert info["summary"]["contaminated"] == 1 and info["summary"]["per_task"] == {"rag": 1, "reasoning": 0}
