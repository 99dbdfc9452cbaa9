"""``mixlab demo``: the whole loop on the embedded demo world, with no downloads.

1. generate the world (six domains with planted noise, four ELMB tasks from held-out draws);
2. hold out a validation slice of every domain (for per-domain loss), train a BPE tokenizer;
3. pretrain a tiny Llama base model on the general-prose domain only;
4. write a pipeline YAML and run it: annotate, sample mixtures, DoRA proxies on the base model, evaluate,
   fit, search, build the dataset, confirm against the natural and uniform mixtures, report.

Every step is skipped when its output exists, so an interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mixlab.config import PipelineConfig
from mixlab.demo.tokenizer import train_tokenizer
from mixlab.demo.world import generate_world
from mixlab.pipeline import RunSummary, run_pipeline

log = logging.getLogger("mixlab.demo")

DOMAINS = ("roleplay", "reasoning", "function_calling", "rag", "code", "general")


@dataclass(frozen=True)
class DemoScale:
    """Sizes of a demo run."""

    n_docs: int
    n_task_items: int
    vocab_size: int
    base_steps: int
    preset: str
    n_mixtures: int
    proxy_tokens: int
    proxy_steps: int
    proxy_lr: float
    build_tokens: int
    val_every: int


FULL = DemoScale(
    n_docs=30_000,
    n_task_items=200,
    vocab_size=4096,
    base_steps=150,
    preset="demo-base",
    n_mixtures=12,
    proxy_tokens=82_000,
    proxy_steps=80,
    proxy_lr=5e-3,
    build_tokens=2_000_000,
    val_every=50,
)
QUICK = DemoScale(
    n_docs=4_000,
    n_task_items=60,
    vocab_size=1024,
    base_steps=40,
    preset="demo",
    n_mixtures=6,
    proxy_tokens=60_000,
    proxy_steps=10,
    proxy_lr=2e-3,
    build_tokens=200_000,
    val_every=25,
)


def split_validation(corpus_files: list[Path], train_dir: Path, val_dir: Path, every: int) -> dict[str, Path]:
    """Move every ``every``-th clean document of each domain file into a validation file."""
    train_dir.mkdir(parents=True, exist_ok=True)
    val_dir.mkdir(parents=True, exist_ok=True)
    val_files: dict[str, Path] = {}
    for path in corpus_files:
        domain = path.stem
        train_out, val_out = train_dir / path.name, val_dir / path.name
        val_files[domain] = val_out
        if train_out.exists() and val_out.exists():
            continue
        clean = 0
        with (
            path.open(encoding="utf-8") as src,
            train_out.open("w", encoding="utf-8") as tr,
            val_out.open("w", encoding="utf-8") as va,
        ):
            for line in src:
                row = json.loads(line)
                if "noise_kind" not in row:
                    clean += 1
                    if clean % every == 0:
                        va.write(line)
                        continue
                tr.write(line)
    return val_files


def write_seeds(train_dir: Path, out: Path, per_domain: int) -> Path:
    """A few hundred labelled documents per domain: the seed set a user would label by hand."""
    if out.exists():
        return out
    with out.open("w", encoding="utf-8") as fh:
        for path in sorted(train_dir.glob("*.jsonl")):
            n = 0
            with path.open(encoding="utf-8") as src:
                for line in src:
                    row = json.loads(line)
                    if "noise_kind" in row:
                        continue
                    fh.write(json.dumps({"text": row["text"], "domain": path.stem}) + "\n")
                    n += 1
                    if n >= per_domain:
                        break
    return out


def _texts(files: list[Path]) -> list[str]:
    out: list[str] = []
    for f in files:
        with f.open(encoding="utf-8") as fh:
            out.extend(json.loads(line)["text"] for line in fh if line.strip())
    return out


def pretrain_base(scale: DemoScale, general_file: Path, tokenizer: Path, out: Path) -> Path:
    """A tiny Llama trained from scratch on general prose only: the demo's stand-in for the base model."""
    from mixlab.proxies.config import ProxyConfig
    from mixlab.proxies.trainer import train_proxy

    if (out / "config.json").exists():
        return out
    cfg = ProxyConfig(
        mode="scratch",
        preset=scale.preset,
        lr=3e-3,
        max_steps=scale.base_steps,
        batch_size=16,
        block_size=256,
        seed=0,
        warmup_steps=10,
    )
    train_proxy(cfg, general_file, str(tokenizer), out)
    return out


def demo_config(
    root: Path, scale: DemoScale, world: Any, tokenizer: Path, base: Path, val: dict[str, Path], workers: int
) -> dict[str, Any]:
    """The pipeline YAML the demo runs (also written to ``root/pipeline.yaml``)."""
    return {
        "workdir": str(root),
        "seed": 0,
        "workers": workers,
        "ingest": {
            "inputs": [str(root / "world" / "train")],
            "tokenizer": str(tokenizer),
            "shard_docs": 5000,
        },
        "partition": {"method": "classifier", "seeds": str(root / "seeds.jsonl")},
        "mixtures": {
            "n": scale.n_mixtures,
            "seed": 0,
            "budget_tokens": scale.proxy_tokens,
            "max_epochs": 4.0,
        },
        "select": {
            "budget_tokens": scale.proxy_tokens,
            "seed": 0,
            "max_epochs": 4.0,
            "shortfall": "redistribute",
        },
        "proxy": {
            "mode": "dora",
            "base_model": str(base),
            "lr": scale.proxy_lr,
            "max_steps": scale.proxy_steps,
            "batch_size": 8,
            "block_size": 128,
            "warmup_steps": 0,
            "seed": 0,
        },
        "evaluation": {
            "tasks": {name: str(path) for name, path in world.task_files.items()},
            "validation": {d: str(p) for d, p in val.items()},
            "metric": "acc",
            "batch_size": 64,
            "block_size": 256,
        },
        "fit": {"model": "auto", "cv_folds": 5},
        "search": {"method": "topk", "n_samples": 100_000, "top_k": 64, "objective": "total"},
        "build": {"budget_tokens": scale.build_tokens, "formats": ["jsonl", "lmflow"]},
        "confirm": {"enabled": True, "baselines": ["natural", "uniform"]},
    }


def run_demo(out: Path, quick: bool = False, workers: int = 1) -> RunSummary:
    """Generate the demo world and run the whole loop on it under ``out``."""
    scale = QUICK if quick else FULL
    out = Path(out)
    world = generate_world(out / "world", n_docs=scale.n_docs, n_task_items=scale.n_task_items, seed=0)
    val = split_validation(
        world.corpus_files, out / "world" / "train", out / "world" / "validation", scale.val_every
    )
    write_seeds(out / "world" / "train", out / "seeds.jsonl", per_domain=150)
    tokenizer = out / "tokenizer"
    if not (tokenizer / "tokenizer.json").exists():
        train_tokenizer(
            _texts(sorted((out / "world" / "train").glob("*.jsonl"))), tokenizer, scale.vocab_size
        )
    base = pretrain_base(scale, out / "world" / "train" / "general.jsonl", tokenizer, out / "base_model")
    raw = demo_config(out, scale, world, tokenizer, base, val, workers)
    (out / "pipeline.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    cfg = PipelineConfig.model_validate(raw)
    return run_pipeline(cfg)
