"""The smallest whole pipeline: a few hundred demo-world documents, a 300-token BPE tokenizer, an untrained
``demo``-preset Llama as the base model, two tasks of 8 items, DoRA proxies of a few steps. Used by the
tests of rounds, the final run and killing a run (``tests/test_rounds_final.py``); holds no tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

TASKS = ("roleplay", "reasoning")


def make_world(root: Path) -> dict[str, Path]:
    """World files, tokenizer and base model under ``root``; returns their paths."""
    import torch

    from mixlab.demo.tokenizer import train_tokenizer
    from mixlab.demo.world import generate_world
    from mixlab.proxies.presets import build_model
    from mixlab.tokenization import load_tokenizer

    world = generate_world(root / "world", n_docs=240, n_task_items=8, seed=0)
    texts = [json.loads(line)["text"] for f in world.corpus_files for line in f.open(encoding="utf-8")]
    train_tokenizer(texts, root / "tok", 300)
    tok = load_tokenizer(str(root / "tok"))
    torch.manual_seed(0)
    base = build_model("demo", len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    base.save_pretrained(root / "base")
    tok.save_pretrained(root / "base")
    return {
        "corpus": world.corpus_dir,
        "tokenizer": root / "tok",
        "base": root / "base",
        **{f"task_{t}": world.task_files[t] for t in TASKS},
    }


def pipeline_config(world: dict[str, Path], workdir: Path, **sections: Any) -> dict[str, Any]:
    """A pipeline YAML mapping on ``world``: 2 rounds (3 + 2 mixtures), no repeats, no confirmation, a final
    run of 3 steps; ``sections`` replace whole top-level keys."""
    raw: dict[str, Any] = {
        "workdir": str(workdir),
        "seed": 0,
        "workers": 1,
        "ingest": {
            "inputs": [str(world["corpus"])],
            "tokenizer": str(world["tokenizer"]),
            "shard_docs": 1000,
        },
        "partition": {"method": "sources"},
        "quality": None,
        "dedup": None,
        "decontaminate": False,
        "mixtures": {"n": 3, "repeats": 0, "seed": 0},
        "rounds": [3, 2],
        "select": {"budget_tokens": 3000, "seed": 0, "max_epochs": 4.0, "shortfall": "redistribute"},
        "proxy": {
            "mode": "dora",
            "base_model": str(world["base"]),
            "lr": 0.01,
            "max_steps": 4,
            "batch_size": 2,
            "block_size": 32,
            "num_threads": 1,
            "seed": 0,
        },
        "evaluation": {
            "tasks": {t: str(world[f"task_{t}"]) for t in TASKS},
            "metric": "gold_bpb",
            "signal_model": "ridge",
            "batch_size": 16,
            "limit": 8,
        },
        "fit": {"model": "ridge", "cv_folds": 2},
        "search": {"n_samples": 2000, "top_k": 16},
        "build": {"budget_tokens": 5000, "formats": ["jsonl"]},
        "confirm": {"enabled": False},
        "trust": {"allow_untrusted": True},
        "final": {"max_steps": 3, "batch_size": 2, "block_size": 64, "num_threads": 1},
    }
    raw.update(sections)
    return raw


def write_pipeline(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path
