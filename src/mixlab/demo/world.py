"""Generate the demo world: a six-domain corpus with planted noise and four held-out ELMB-format tasks.

Layout written under ``out``::

    corpus/<domain>.jsonl   {"id", "text", "source", "true_domain"[, "noise_kind"[, "duplicate_of"]]}
    tasks/<task>.jsonl      {"id", ["ctx",] "question", "choices", "answer", "correct_answer_content"}
    world.json              seed, counts per domain / noise kind / task, and the fixed cast

Each task domain teaches exactly the skill its task tests (see the domain modules); ``general`` prose is the
largest domain (about 35% of tokens) and teaches none of them, so the natural proportions are a poor
mixture. Task items are drawn first from their own random streams; corpus generators redraw anything whose
key (question, request, entity) a task item holds, so no task item is a corpus document.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mixlab.demo import code, function_calling, general, rag, reasoning, roleplay
from mixlab.demo.entities import Entities, build_entities
from mixlab.demo.noise import NOISE_KINDS, make_noise

DocMaker = Callable[[random.Random, Entities, set[str]], str]
ItemMaker = Callable[[random.Random, Entities], tuple[str, dict[str, Any]]]

#: Domain -> document generator, in file order.
DOC_MAKERS: dict[str, DocMaker] = {
    "roleplay": roleplay.make_doc,
    "reasoning": reasoning.make_doc,
    "function_calling": function_calling.make_doc,
    "rag": rag.make_doc,
    "code": code.make_doc,
    "general": general.make_doc,
}
#: Task -> held-out item generator (the task's skill is taught by the domain of the same name).
ITEM_MAKERS: dict[str, ItemMaker] = {
    "roleplay": roleplay.make_item,
    "reasoning": reasoning.make_item,
    "function_calling": function_calling.make_item,
    "rag": rag.make_item,
}
#: Share of documents per domain, tuned with the mean document lengths so that ``general`` is the largest
#: domain (about 35% of the tokens, 43% of the characters) and each other domain holds 9-18% of the tokens.
DOC_SHARES: dict[str, float] = {
    "roleplay": 0.14,
    "reasoning": 0.14,
    "function_calling": 0.11,
    "rag": 0.15,
    "code": 0.12,
    "general": 0.34,
}
NOISE_FRACTION = 0.08


@dataclass
class WorldPaths:
    """Where a generated world lives."""

    root: Path
    corpus_dir: Path
    tasks_dir: Path
    corpus_files: list[Path]
    task_files: dict[str, Path]


def _domain_counts(n_docs: int) -> dict[str, int]:
    counts = {d: int(n_docs * s) for d, s in DOC_SHARES.items()}
    counts["general"] += n_docs - sum(counts.values())
    return counts


def make_tasks(ent: Entities, n_items: int, seed: int) -> dict[str, tuple[list[dict[str, Any]], set[str]]]:
    """Task rows and the exclusion keys they reserve, per task."""
    out: dict[str, tuple[list[dict[str, Any]], set[str]]] = {}
    for task, maker in ITEM_MAKERS.items():
        rng = random.Random(f"mixlab-demo-task:{seed}:{task}")
        rows: list[dict[str, Any]] = []
        keys: set[str] = set()
        attempts = 0
        while len(rows) < n_items:
            attempts += 1
            if attempts > 50 * n_items + 1000:
                raise ValueError(f"cannot draw {n_items} distinct {task} items; ask for fewer")
            key, item = maker(rng, ent)
            if key in keys:
                continue
            keys.add(key)
            answer = rng.randrange(4)
            choices = list(item["distractors"])
            choices.insert(answer, item["correct"])
            row: dict[str, Any] = {"id": f"{task}-task-{len(rows):05d}"}
            if "ctx" in item:
                row["ctx"] = item["ctx"]
            row.update(
                question=item["question"],
                choices=choices,
                answer=answer,
                correct_answer_content=item["correct"],
            )
            rows.append(row)
        out[task] = (rows, keys)
    return out


def make_domain_docs(
    domain: str, n: int, ent: Entities, seed: int, reserved: set[str], progress: tqdm | None = None
) -> list[dict[str, Any]]:
    """``n`` records of one corpus file, ``NOISE_FRACTION`` of them noise at random positions."""
    rng = random.Random(f"mixlab-demo-corpus:{seed}:{domain}")
    n_noise = round(n * NOISE_FRACTION) if n >= 10 else 0
    noise_pos = set(rng.sample(range(n), n_noise))
    maker = DOC_MAKERS[domain]
    records: list[dict[str, Any]] = []
    clean: list[tuple[str, str]] = []
    for pos in range(n):
        if pos in noise_pos:
            records.append({})  # filled below, once the clean documents exist
            continue
        doc_id = f"{domain}-{pos:06d}"
        text = maker(rng, ent, reserved)
        clean.append((doc_id, text))
        records.append({"id": doc_id, "text": text, "source": domain, "true_domain": domain})
        if progress is not None:
            progress.update(1)
    kinds = [NOISE_KINDS[i % len(NOISE_KINDS)] for i in range(n_noise)]
    rng.shuffle(kinds)
    for pos, kind in zip(sorted(noise_pos), kinds, strict=True):
        noise = make_noise(rng, kind, clean)
        rec = {
            "id": f"{domain}-{pos:06d}",
            "text": noise.pop("text"),
            "source": domain,
            "true_domain": domain,
        }
        rec.update(noise)
        records[pos] = rec
        if progress is not None:
            progress.update(1)
    return records


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def generate_world(out: Path, n_docs: int = 30000, n_task_items: int = 200, seed: int = 0) -> WorldPaths:
    """Write the demo corpus, tasks and ``world.json`` under ``out``; same arguments => identical bytes."""
    if n_docs < 60:
        raise ValueError(f"n_docs must be at least 60 (got {n_docs})")
    if n_task_items < 1:
        raise ValueError(f"n_task_items must be positive (got {n_task_items})")
    out = Path(out)
    corpus_dir, tasks_dir = out / "corpus", out / "tasks"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    tasks_dir.mkdir(parents=True, exist_ok=True)
    ent = build_entities(seed)

    tasks = make_tasks(ent, n_task_items, seed)
    task_files: dict[str, Path] = {}
    for task, (rows, _) in tasks.items():
        task_files[task] = tasks_dir / f"{task}.jsonl"
        _write_jsonl(task_files[task], rows)

    counts = _domain_counts(n_docs)
    corpus_files: list[Path] = []
    stats: dict[str, dict[str, int]] = {}
    noise_counts: Counter[str] = Counter()
    with tqdm(total=n_docs, desc="demo corpus", unit="doc", leave=False) as bar:
        for domain, n in counts.items():
            reserved = tasks[domain][1] if domain in tasks else set()
            records = make_domain_docs(domain, n, ent, seed, reserved, bar)
            path = corpus_dir / f"{domain}.jsonl"
            _write_jsonl(path, records)
            corpus_files.append(path)
            kinds = Counter(r["noise_kind"] for r in records if "noise_kind" in r)
            noise_counts.update(kinds)
            stats[domain] = {
                "docs": len(records),
                "noise_docs": sum(kinds.values()),
                "chars": sum(len(r["text"]) for r in records),
            }

    info = {
        "generator": "mixlab.demo.world",
        "seed": seed,
        "n_docs": n_docs,
        "n_task_items": n_task_items,
        "domains": stats,
        "noise_kinds": dict(sorted(noise_counts.items())),
        "tasks": {t: len(rows) for t, (rows, _) in tasks.items()},
        "characters": [
            {"name": c.name, "role": c.role, "home": c.home, "catchphrase": c.catchphrase}
            for c in ent.characters
        ],
        "functions": [{"name": f.name, "parameters": f.schema()} for f in ent.functions],
    }
    (out / "world.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return WorldPaths(
        root=out, corpus_dir=corpus_dir, tasks_dir=tasks_dir, corpus_files=corpus_files, task_files=task_files
    )
