"""A calm terminal: one line per pool step of a pipeline run (documents, tokens, seconds, drops by reason),
made from pool.json and the executor's per-shard statistics; a rerun says the work was done before."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mixlab.config import PipelineConfig
from mixlab.stage_summary import format_count, format_drops

GPT2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "tokenizers" / "gpt2" / "tokenizer.json"
QUESTION = (
    "Which river flows through the old capital city of the northern kingdom in the story of the two brothers?"
)


def test_counts_and_drops_fit_one_line() -> None:
    assert [format_count(n) for n in (950, 41_234, 3_100_000, 2e9)] == ["950", "41.2k", "3.1M", "2.0B"]
    drops = {"short_fragment": 200, "junk_words": 120, "a": 1, "b": 2, "none": 0}
    assert format_drops(drops) == "dropped 323 (short_fragment 200, junk_words 120, b 2, +1)"
    assert format_drops({}) == ""


@pytest.mark.skipif(not GPT2.exists(), reason=f"shared tokenizer not found at {GPT2}")
def test_prepare_pool_logs_one_line_per_step(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from mixlab.pipeline import prepare_pool

    body = [
        "def add(a, b):\n    return a + b\n\nprint(add(2, 3))  # a small function and its call in a code file",
        "The committee met on Tuesday to discuss the budget for the new library and agreed to meet again soon.",
        "The committee met on Tuesday to discuss the budget for the new library and agreed to meet again soon.",
        f"Trivia night notes. Question: {QUESTION} Answer: the silver river, as everyone at the table knew.",
        "ok",
    ] * 2
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": t}) + "\n" for t in body) + "{broken\n", encoding="utf-8")
    task = tmp_path / "trivia.jsonl"
    task.write_text(
        json.dumps({"question": QUESTION, "choices": ["the silver river", "the sea"], "answer": 0}) + "\n"
    )
    cfg = PipelineConfig.model_validate(
        {
            "workdir": str(tmp_path / "work"),
            "ingest": {"inputs": [str(docs)], "tokenizer": str(GPT2), "shard_docs": 4},
            "partition": {"method": "rules"},
            "mixtures": {"n": 4},
            "select": {"budget_tokens": 1000},
            "proxy": {},
            "evaluation": {"tasks": {"trivia": str(task)}},
            "build": {"budget_tokens": 1000},
        }
    )
    with caplog.at_level(logging.INFO, logger="mixlab.pipeline"):
        prepare_pool(cfg)
    lines = [r.getMessage() for r in caplog.records if r.name == "mixlab.pipeline"]
    assert [ln.split()[0] for ln in lines] == ["ingest", "domains", "quality", "dedup", "decontam"]
    assert all("10 docs" in ln for ln in lines), lines
    assert "3 shards" in lines[0] and "quarantined 1 (malformed JSON 1)" in lines[0]
    assert " s " in lines[1] + " " and "shards" in lines[1]
    assert "dropped" in lines[2] and "short" in lines[2]  # "ok" is too short to keep
    assert "exact duplicate" in lines[3]
    assert "contaminated by trivia 2" in lines[4]

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mixlab.pipeline"):
        prepare_pool(cfg)
    again = [r.getMessage() for r in caplog.records if r.name == "mixlab.pipeline"]
    assert len(again) == 5 and all("done before" in ln for ln in again), again
