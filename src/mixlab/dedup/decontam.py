"""Decontamination: word n-gram overlap between documents and evaluation task items (GPT-3 / Llama style).

Task items (ELMB JSONL: ``question``, ``choices``, ``answer``, optional ``ctx``) are turned into word
sequences (NFKC, case-folded, punctuation stripped: see :func:`mixlab.dedup.normalize.words`) per field;
every run of ``n`` words of a field is indexed. A field shorter than ``n`` words is indexed as one whole
sequence when it has at least ``min_short_words`` words, and never otherwise, so a short choice such as
"2.0" cannot flag documents. N-grams shared by many task items are prompt templates and are dropped.
A document's overlap with a task is the number of distinct indexed n-grams (or whole short fields) of
that task it contains.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mixlab.dedup.normalize import WordHasher, ngram_hashes, words

MAX_TASKS = 63


class TaskFileError(ValueError):
    """A task file cannot be read (names the file and line)."""


def read_task_items(path: str | Path) -> list[dict[str, Any]]:
    """The items of an ELMB JSONL task file; a malformed line raises :class:`TaskFileError` naming it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"task file {path} does not exist")
    items: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TaskFileError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
            if not isinstance(item, dict) or not isinstance(item.get("question"), str):
                raise TaskFileError(f"{path}:{lineno}: an ELMB item needs a string 'question'")
            choices = item.get("choices", [])
            if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
                raise TaskFileError(f"{path}:{lineno}: 'choices' must be a list of strings")
            answer = item.get("answer")
            if answer is not None and (not isinstance(answer, int) or not 0 <= answer < len(choices)):
                raise TaskFileError(f"{path}:{lineno}: 'answer' must index 'choices' (got {answer!r})")
            items.append(item)
    return items


def item_fields(item: Mapping[str, Any], fields: Sequence[str]) -> list[str]:
    """The texts of ``item`` to index for ``fields`` (question, ctx, answer, choices)."""
    out: list[str] = []
    question = str(item.get("question", ""))
    choices = list(item.get("choices", []))
    answer_idx = item.get("answer")
    answer = choices[answer_idx] if isinstance(answer_idx, int) and 0 <= answer_idx < len(choices) else ""
    if "question" in fields:
        out.append(question)
    if "ctx" in fields and item.get("ctx"):
        out.append(str(item["ctx"]))
    if "answer" in fields and answer:
        out.append(answer)
        out.append(f"{question} {answer}")
    if "choices" in fields:
        out.extend(c for c in choices if c != answer or "answer" not in fields)
    return out


@dataclass
class TaskIndex:
    """An index of task n-grams; ``overlap(texts)`` counts, per text, the n-grams shared with each task.

    ``grams[k]`` holds, for run length ``k`` (``n``, or the length of a whole short field), the sorted
    unique hashes and a bitmask of the tasks each one belongs to.
    """

    n: int
    task_names: list[str]
    grams: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_task_files(
        cls,
        paths: Mapping[str, str | Path] | Sequence[str | Path],
        n: int = 13,
        fields: Sequence[str] = ("question", "ctx", "answer"),
        min_short_words: int = 8,
        max_items_per_ngram: int = 20,
    ) -> TaskIndex:
        """Index the ELMB task files ``paths`` (a mapping name -> file, or files named by their stem)."""
        named = dict(paths) if isinstance(paths, Mapping) else {Path(p).stem: p for p in paths}
        tasks = {name: read_task_items(p) for name, p in named.items()}
        return cls.from_items(tasks, n, fields, min_short_words, max_items_per_ngram)

    @classmethod
    def from_items(
        cls,
        tasks: Mapping[str, Iterable[Mapping[str, Any]]],
        n: int = 13,
        fields: Sequence[str] = ("question", "ctx", "answer"),
        min_short_words: int = 8,
        max_items_per_ngram: int = 20,
    ) -> TaskIndex:
        """Index task items given in memory (``{task name: [item, ...]}``)."""
        if len(tasks) > MAX_TASKS:
            raise ValueError(f"at most {MAX_TASKS} tasks can be indexed at once, got {len(tasks)}")
        hasher = WordHasher()
        owners: dict[tuple[int, int], set[int]] = defaultdict(set)  # (k, hash) -> item numbers
        item_task: list[int] = []
        for t, (_, items) in enumerate(tasks.items()):
            for item in items:
                item_no = len(item_task)
                item_task.append(t)
                for text in item_fields(item, fields):
                    wh = hasher.hashes(words(text))
                    if wh.shape[0] >= n:
                        k, hashes = n, ngram_hashes(wh, n)
                    elif wh.shape[0] >= min_short_words:
                        k, hashes = int(wh.shape[0]), ngram_hashes(wh, int(wh.shape[0]))
                    else:
                        continue
                    for h in np.unique(hashes).tolist():
                        owners[(k, h)].add(item_no)
        per_k: dict[int, dict[int, int]] = defaultdict(dict)
        dropped = 0
        for (k, h), its in owners.items():
            if len(its) > max_items_per_ngram:
                dropped += 1
                continue
            mask = 0
            for it in its:
                mask |= 1 << item_task[it]
            per_k[k][h] = mask
        grams: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for k, table in per_k.items():
            keys = np.fromiter(table.keys(), dtype=np.uint64, count=len(table))
            masks = np.fromiter(table.values(), dtype=np.int64, count=len(table))
            order = np.argsort(keys)
            grams[k] = (keys[order], masks[order])
        stats = {
            "items": len(item_task),
            "ngrams": int(sum(v[0].shape[0] for v in grams.values())),
            "template_ngrams_dropped": dropped,
            "run_lengths": sorted(grams),
        }
        return cls(n=n, task_names=list(tasks), grams=grams, stats=stats)

    def overlap_matrix(self, texts: Sequence[str], hasher: WordHasher | None = None) -> np.ndarray:
        """Distinct overlapping n-grams of every text with every task: ``(len(texts), n_tasks)`` int64."""
        hasher = hasher if hasher is not None else WordHasher()
        counts = np.zeros((len(texts), len(self.task_names)), dtype=np.int64)
        word_hashes = [hasher.hashes(words(t)) for t in texts]
        for k, (keys, masks) in self.grams.items():
            per_doc = [np.unique(ngram_hashes(wh, k, short=False)) for wh in word_hashes]
            sizes = np.array([g.shape[0] for g in per_doc], dtype=np.int64)
            if sizes.sum() == 0:
                continue
            flat = np.concatenate(per_doc)
            doc_of = np.repeat(np.arange(len(texts)), sizes)
            pos = np.minimum(np.searchsorted(keys, flat), keys.shape[0] - 1)
            hit = keys[pos] == flat
            hit_docs, hit_masks = doc_of[hit], masks[pos[hit]]
            for t in range(len(self.task_names)):
                sel = (hit_masks >> t) & 1 == 1
                if sel.any():
                    counts[:, t] += np.bincount(hit_docs[sel], minlength=len(texts))
        return counts

    def overlap(self, texts: Sequence[str], hasher: WordHasher | None = None) -> tuple[np.ndarray, list[str]]:
        """Per text, the largest overlap with any one task and that task's name (``""`` when none)."""
        matrix = self.overlap_matrix(texts, hasher)
        if matrix.shape[1] == 0:
            return np.zeros(len(texts), dtype=np.int64), ["" for _ in texts]
        best = matrix.argmax(axis=1)
        counts = matrix[np.arange(len(texts)), best]
        names = [self.task_names[b] if c > 0 else "" for b, c in zip(best.tolist(), counts.tolist(), strict=True)]
        return counts, names
