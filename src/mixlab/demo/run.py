"""``mixlab demo``: the whole loop on the embedded demo world, with no downloads.

1. generate the world (six domains with planted noise, four ELMB tasks from held-out draws);
2. hold out a validation slice of every domain (for per-domain loss), train a BPE tokenizer;
3. pretrain a tiny Llama base model on the general-prose domain only;
4. write a pipeline YAML and run it: annotate, sample mixtures, DoRA proxies on the base model, evaluate,
   fit, search, build the dataset, confirm against the natural and uniform mixtures, report.

Every generated artifact (world files, the train/validation split, ``seeds.jsonl``, the tokenizer, the base
model, ``pipeline.yaml``) is written atomically, and each step's files are recorded with their SHA-256 in
``OUT/.demo-state`` (:mod:`mixlab.demo.artifacts`). A rerun reuses a step only when its record still matches
the files, so an interrupted demo resumes where it stopped and a damaged file is regenerated, never reused.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mixlab.config import PipelineConfig
from mixlab.demo.artifacts import (
    DemoStateError,
    StepState,
    atomic_folder,
    atomic_write_lines,
    atomic_write_text,
    remove_temp_files,
)
from mixlab.demo.tokenizer import train_tokenizer
from mixlab.demo.world import WORLD_VERSION, WorldPaths, generate_world, world_paths
from mixlab.pipeline import RunSummary, run_pipeline

log = logging.getLogger("mixlab.demo")

DOMAINS = ("roleplay", "reasoning", "function_calling", "rag", "code", "general")
#: Labelled documents per domain in ``seeds.jsonl`` (the classifier's training set).
SEEDS_PER_DOMAIN = 150


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
    confirm_seeds: int = 3
    """Seeds per confirmed mixture."""
    confirm_per_task: bool = True
    """Also confirm each task's own optimum."""
    repeats: int = 3
    """Swarm mixtures repeated with another seed (noise of each metric)."""
    proxy_batch: int = 8
    """Blocks of 128 tokens per proxy step: small batches and many steps teach a proxy more per token."""
    repeat_seeds: int = 1
    """Extra seeds of each repeated swarm mixture (natural and uniform first, see ``add_repeats``)."""
    proxy_dropout: float = 0.1
    """DoRA dropout of the proxies (the challenge's recipe: 0.1)."""
    final_steps: int = 10
    """Steps of the final run (the proxies' recipe: one 128-token block per step, their learning rate)."""


FULL = DemoScale(
    n_docs=12_000,
    n_task_items=200,
    vocab_size=4096,
    base_steps=100,
    preset="demo-base",
    n_mixtures=16,
    proxy_tokens=41_000,
    proxy_steps=320,
    proxy_lr=5e-3,
    build_tokens=1_000_000,
    val_every=50,
    proxy_batch=1,
    repeats=2,
    repeat_seeds=2,
    final_steps=320,
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
    confirm_seeds=2,
    confirm_per_task=False,
    repeats=2,
)


def split_validation(corpus_files: list[Path], train_dir: Path, val_dir: Path, every: int) -> dict[str, Path]:
    """Move every ``every``-th clean document of each domain file into a validation file.

    Both files of a domain are (re)written atomically; the caller decides whether the split is current.
    """
    val_files: dict[str, Path] = {}
    for path in corpus_files:
        train_lines: list[str] = []
        val_lines: list[str] = []
        clean = 0
        with path.open(encoding="utf-8") as src:
            for line in src:
                row = json.loads(line)
                if "noise_kind" not in row:
                    clean += 1
                    if clean % every == 0:
                        val_lines.append(line)
                        continue
                train_lines.append(line)
        atomic_write_lines(train_dir / path.name, train_lines)
        atomic_write_lines(val_dir / path.name, val_lines)
        val_files[path.stem] = val_dir / path.name
    return val_files


def write_seeds(train_dir: Path, out: Path, per_domain: int) -> Path:
    """A few hundred labelled documents per domain: the seed set a user would label by hand."""
    lines: list[str] = []
    for path in sorted(train_dir.glob("*.jsonl")):
        n = 0
        with path.open(encoding="utf-8") as src:
            for line in src:
                row = json.loads(line)
                if "noise_kind" in row:
                    continue
                lines.append(json.dumps({"text": row["text"], "domain": path.stem}) + "\n")
                n += 1
                if n >= per_domain:
                    break
    atomic_write_lines(out, lines)
    return out


def _texts(files: list[Path]) -> list[str]:
    out: list[str] = []
    for f in files:
        with f.open(encoding="utf-8") as fh:
            out.extend(json.loads(line)["text"] for line in fh if line.strip())
    return out


def pretrain_base(scale: DemoScale, general_file: Path, tokenizer: Path, out: Path) -> Path:
    """A tiny Llama trained from scratch on general prose only: the demo's stand-in for the base model.

    Trained in a private folder that replaces ``out`` only when training finished.
    """
    from mixlab.proxies.trainer import train_proxy

    with atomic_folder(out) as tmp:
        train_proxy(base_config(scale), general_file, str(tokenizer), tmp)
    return out


def base_config(scale: DemoScale) -> Any:
    """The base model's training recipe."""
    from mixlab.proxies.config import ProxyConfig

    return ProxyConfig(
        mode="scratch",
        preset=scale.preset,
        lr=3e-3,
        max_steps=scale.base_steps,
        batch_size=16,
        block_size=256,
        seed=0,
        warmup_steps=10,
    )


def build_tokenizer(train_dir: Path, out: Path, vocab_size: int) -> Path:
    """The demo's BPE tokenizer trained on every training file, written as one folder swap."""
    texts = _texts(sorted(train_dir.glob("*.jsonl")))
    with atomic_folder(out) as tmp:
        train_tokenizer(texts, tmp, vocab_size)
    return out


def demo_config(
    root: Path,
    scale: DemoScale,
    world: WorldPaths,
    tokenizer: Path,
    base: Path,
    val: dict[str, Path],
    workers: int,
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
            "repeats": scale.repeats,
            "repeat_seeds": scale.repeat_seeds,
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
            "batch_size": scale.proxy_batch,
            "block_size": 128,
            "dropout": scale.proxy_dropout,
            "warmup_steps": 0,
            "seed": 0,
        },
        "evaluation": {
            "tasks": {name: str(path) for name, path in world.task_files.items()},
            "validation": {d: str(p) for d, p in val.items()},
            "metric": "auto",
            "batch_size": 64,
            "block_size": 256,
        },
        "fit": {"model": "auto", "cv_folds": 5},
        "search": {"method": "topk", "n_samples": 100_000, "top_k": 64, "objective": "total"},
        "build": {"budget_tokens": scale.build_tokens, "formats": ["jsonl", "lmflow"]},
        "final": {  # the proxies' recipe: the challenge's lr 1e-5 and 24 x 1024-token blocks do not fit a CPU demo
            "lr": scale.proxy_lr,
            "max_steps": scale.final_steps,
            "batch_size": scale.proxy_batch,
            "block_size": 128,
            "dropout": scale.proxy_dropout,
            "warmup_steps": 0,
        },
        "confirm": {
            "enabled": True,
            "baselines": ["natural", "uniform", "best_swarm"],
            "seeds": scale.confirm_seeds,
            "per_task": scale.confirm_per_task,
        },
    }


def prepare_demo(out: Path, scale: DemoScale, workers: int = 1) -> dict[str, Any]:
    """Generate (or reuse, when its fingerprint still holds) every input of the demo's pipeline.

    Returns the pipeline config, also written to ``out/pipeline.yaml``. Raises :class:`DemoStateError`
    when ``out`` holds pipeline outputs made from other inputs than those generated now.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = StepState(out)
    world_dir = out / "world"
    train_dir, val_dir = world_dir / "train", world_dir / "validation"
    with state.lock():
        remove_temp_files(
            [out, state.dir, world_dir]
            + [world_dir / sub for sub in ("corpus", "tasks", "train", "validation")]
        )
        world_key = {
            "version": WORLD_VERSION,
            "n_docs": scale.n_docs,
            "n_task_items": scale.n_task_items,
            "seed": 0,
        }
        world_d = state.run(
            "world",
            world_key,
            ["world/corpus", "world/tasks", "world/world.json"],
            lambda: generate_world(world_dir, n_docs=scale.n_docs, n_task_items=scale.n_task_items, seed=0),
        )
        world = world_paths(world_dir)
        split_d = state.run(
            "split",
            {"world": world_d, "every": scale.val_every},
            ["world/train", "world/validation"],
            lambda: split_validation(world.corpus_files, train_dir, val_dir, scale.val_every),
        )
        val = {p.stem: val_dir / p.name for p in world.corpus_files}
        seeds_d = state.run(
            "seeds",
            {"split": split_d, "per_domain": SEEDS_PER_DOMAIN},
            ["seeds.jsonl"],
            lambda: write_seeds(train_dir, out / "seeds.jsonl", per_domain=SEEDS_PER_DOMAIN),
        )
        tokenizer = out / "tokenizer"
        tok_d = state.run(
            "tokenizer",
            {"split": split_d, "vocab_size": scale.vocab_size},
            ["tokenizer"],
            lambda: build_tokenizer(train_dir, tokenizer, scale.vocab_size),
        )
        base = out / "base_model"
        base_d = state.run(
            "base_model",
            {"split": split_d, "tokenizer": tok_d, "recipe": base_config(scale).model_dump(mode="json")},
            ["base_model"],
            lambda: pretrain_base(scale, train_dir / "general.jsonl", tokenizer, base),
        )
        raw = demo_config(out, scale, world, tokenizer, base, val, workers)
        atomic_write_text(out / "pipeline.yaml", yaml.safe_dump(raw, sort_keys=False))
        _check_pipeline_outputs(
            state, {"world": world_d, "split": split_d, "seeds": seeds_d, "tokenizer": tok_d, "base": base_d}
        )
    return raw


def _check_pipeline_outputs(state: StepState, inputs: dict[str, str]) -> None:
    """Refuse to resume pipeline outputs under the demo folder that were made from other inputs."""
    record = state.read("pipeline_inputs")
    made = (state.root / "pool").exists()
    if made and (record is None or record.get("key") != inputs):
        raise DemoStateError(
            f"{state.root} holds pipeline outputs (pool, swarm, ...) made from other demo inputs than those "
            f"generated now (another mixlab version or a changed world); run the demo with a new --out "
            f"folder, or delete {state.root}"
        )
    if record is None or record.get("key") != inputs:
        state.write("pipeline_inputs", inputs, [], {})


def run_demo(out: Path, quick: bool = False, workers: int = 1, proxies: str = "swarm") -> RunSummary:
    """Generate the demo world and run the whole loop on it under ``out`` (``proxies``: proxies.method)."""
    scale = QUICK if quick else FULL
    raw = prepare_demo(Path(out), scale, workers)
    raw["proxies"] = {"method": proxies} | ({} if proxies == "swarm" else {"check_runs": 4, "simulate": 18})
    cfg = PipelineConfig.model_validate(raw)
    return run_pipeline(cfg)
