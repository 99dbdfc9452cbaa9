"""Decontamination: word n-gram overlap between documents and evaluation task items (GPT-3 / Llama style).

Task items (ELMB records: ``question``, ``choices``, ``answer``, optional ``ctx``; any task the evaluation
loads, lm-eval YAMLs included, see :func:`task_items`) are turned into word
sequences (NFKC, case-folded, punctuation stripped: see :func:`mixlab.dedup.normalize.words`) per field;
every run of ``n`` words of a field is indexed. A field shorter than ``n`` words is indexed as one whole
sequence when it has at least ``min_short_words`` words, and never otherwise, so a short choice such as
"2.0" cannot flag documents. N-grams shared by many task items are prompt templates and are dropped.
A document's overlap with a task is the number of distinct indexed n-grams (or whole short fields) of
that task it contains.

Sharing a few n-grams is not enough to be contaminated: task items often share boilerplate with
legitimate training documents (the BFCL function schemas of the function-calling questions reappear, with
other requests, in the corpus). As in the Llama 2 contamination analysis, a document is contaminated
when the n-grams it shares with one field of one task item cover at least ``min_coverage`` of that
field's words (and number at least ``min_overlap``); ``min_coverage=0`` gives the plain GPT-3 rule.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mixlab.dedup.normalize import WordHasher, batch_ngram_hashes, ngram_hashes, words
from mixlab.evaluation.tasks import Task, TaskFormatError, load_task  # one loader of every task format

MAX_TASKS = 63


#: A task cannot be loaded (names the file and line): the evaluation loader's error.
TaskFileError = TaskFormatError


def read_task_items(spec: str | Path, name: str | None = None) -> list[dict[str, Any]]:
    """The items of a task as decontamination indexes them, loaded by the evaluation's task loader
    (:func:`mixlab.evaluation.tasks.load_task`): an ELMB JSONL/Parquet file or an lm-eval task YAML, so
    that every task ``mixlab eval`` scores is also decontaminated. A malformed task raises
    :class:`TaskFileError` naming the file and line. See :func:`task_items`."""
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"task file {path} does not exist")
    return task_items(load_task(name or path.name.split(".")[0], spec))


def task_items(task: Task) -> list[dict[str, Any]]:
    """ELMB-shaped items (``question``, ``choices``, ``answer``, optional ``ctx`` and ``id``) of a loaded task.

    ELMB records are indexed as they are. Documents of an lm-eval YAML keep their own ``question`` and
    ``ctx`` fields when they have them (the text that can leak into a corpus, without the prompt
    template); otherwise the rendered prompt is the question. Choices and answer are the task's own.
    """
    if task.doc_to_text is None:
        return [dict(doc) for doc in task.docs]
    items: list[dict[str, Any]] = []
    for i, doc in enumerate(task.docs):
        question = doc.get("question")
        item: dict[str, Any] = {
            "question": question if isinstance(question, str) else task.context(i),
            "choices": task.choices(i),
            "answer": task.gold(i),
        }
        if isinstance(doc.get("ctx"), str):
            item["ctx"] = doc["ctx"]
        if doc.get("id") is not None:
            item["id"] = doc["id"]
        items.append(item)
    return items


def task_digest(spec: str | Path, name: str | None = None) -> str:
    """sha256 of what a task spec indexes: the file's bytes, or for an lm-eval YAML its items (the YAML
    alone does not change when the data file it names does)."""
    path = Path(spec)
    if path.suffix.lower() in (".yaml", ".yml"):
        items = json.dumps(read_task_items(path, name), sort_keys=True, default=str)
        return hashlib.sha256(items.encode("utf-8")).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def item_fields(item: Mapping[str, Any], fields: Sequence[str]) -> list[tuple[str, str]]:
    """The ``(field kind, text)`` pairs of ``item`` to index for ``fields`` (question, ctx, answer, choices).

    The answer is indexed joined to the end of its question (kind ``question+answer``), never alone: a
    bare answer such as ``map_service.get_directions(start='New York', end='Los Angeles')`` reappears by
    coincidence inside legitimate documents. ``choices`` indexes every choice alone (subject to
    ``min_short_words``), for callers that want it."""
    out: list[tuple[str, str]] = []
    question = str(item.get("question", ""))
    choices = list(item.get("choices", []))
    answer_idx = item.get("answer")
    answer = choices[answer_idx] if isinstance(answer_idx, int) and 0 <= answer_idx < len(choices) else ""
    if "question" in fields:
        out.append(("question", question))
    if "ctx" in fields and item.get("ctx"):
        out.append(("ctx", str(item["ctx"])))
    if "answer" in fields and answer:
        out.append(("question+answer", f"{question} {answer}"))
    if "choices" in fields:
        out.extend(("choice", c) for c in choices)
    return out


@dataclass
class DecontamMatch:
    """Per-document result of :meth:`TaskIndex.match` (arrays aligned with the texts)."""

    contaminated: np.ndarray
    """bool: some task field is covered at least ``min_coverage`` by at least ``min_overlap`` n-grams."""
    task: list[str]
    """The task of the best-covered field ("" when no field shares an n-gram)."""
    item: list[str]
    """The id (or ``task:line``) of that field's task item ("" when none)."""
    overlap: np.ndarray
    """int64: distinct n-grams the document shares with ``task`` (0 when none)."""
    coverage: np.ndarray
    """float32: fraction of the best field's words covered by shared n-grams."""


@dataclass
class TaskIndex:
    """An index of the word n-grams of evaluation task items.

    For each run length ``k`` (``n``, or the length of a whole short field) ``grams[k]`` holds the sorted
    unique n-gram hashes, and ``occ[k]`` where each occurs: ``(offsets, field, start)`` in CSR form (the
    occurrences of key ``i`` are ``offsets[i]:offsets[i+1]``). Fields are described by ``field_task``,
    ``field_item``, ``field_kind`` and ``field_len`` (words).
    """

    n: int
    task_names: list[str]
    grams: dict[int, np.ndarray]
    occ: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]
    field_task: np.ndarray
    field_item: list[str]
    field_kind: list[str]
    field_len: np.ndarray
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
        """Index the tasks ``paths`` (a mapping name -> task file or lm-eval YAML, or files named by their
        stem), loaded by the evaluation's task loader."""
        named = dict(paths) if isinstance(paths, Mapping) else {Path(p).stem: p for p in paths}
        tasks = {name: read_task_items(p, name) for name, p in named.items()}
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
        hasher = WordHasher()
        field_task: list[int] = []
        field_item: list[str] = []
        field_kind: list[str] = []
        field_len: list[int] = []
        field_item_no: list[int] = []
        keys: list[np.ndarray] = []
        ks: list[np.ndarray] = []
        fids: list[np.ndarray] = []
        starts: list[np.ndarray] = []
        item_no = 0
        for t, (name, items) in enumerate(tasks.items()):
            for line, item in enumerate(items, start=1):
                item_id = str(item.get("id", f"{name}:{line}"))
                for kind, text in item_fields(item, fields):
                    wh = hasher.hashes(words(text))
                    length = int(wh.shape[0])
                    if length < min(n, min_short_words):
                        continue
                    k = min(n, length)
                    hashes = ngram_hashes(wh, k)
                    fid = len(field_task)
                    field_task.append(t)
                    field_item.append(item_id)
                    field_kind.append(kind)
                    field_len.append(length)
                    field_item_no.append(item_no)
                    keys.append(hashes)
                    ks.append(np.full(hashes.shape[0], k, dtype=np.int64))
                    fids.append(np.full(hashes.shape[0], fid, dtype=np.int64))
                    starts.append(np.arange(hashes.shape[0], dtype=np.int64))
                item_no += 1
        key = np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64)
        kk = np.concatenate(ks) if ks else np.zeros(0, dtype=np.int64)
        fid_all = np.concatenate(fids) if fids else np.zeros(0, dtype=np.int64)
        start_all = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
        item_of = np.asarray(field_item_no, dtype=np.int64)[fid_all] if fids else fid_all
        # drop template n-grams: shared by more than max_items_per_ngram distinct items
        order = np.lexsort((item_of, key, kk))
        key, kk, fid_all, start_all, item_of = (a[order] for a in (key, kk, fid_all, start_all, item_of))
        new_gram = np.ones(key.shape[0], dtype=bool)
        new_gram[1:] = (key[1:] != key[:-1]) | (kk[1:] != kk[:-1])
        new_item = new_gram.copy()
        new_item[1:] |= item_of[1:] != item_of[:-1]
        gram_id = np.cumsum(new_gram) - 1
        items_per_gram = (
            np.bincount(gram_id[new_item], minlength=int(new_gram.sum())) if key.size else gram_id
        )
        keep = items_per_gram[gram_id] <= max_items_per_ngram if key.size else new_gram
        dropped = int((items_per_gram > max_items_per_ngram).sum()) if key.size else 0
        grams: dict[int, np.ndarray] = {}
        occ: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for k in np.unique(kk[keep]).tolist():
            sel = keep & (kk == k)
            k_keys, k_fid, k_start = key[sel], fid_all[sel], start_all[sel]
            uniq, first = np.unique(k_keys, return_index=True)
            offsets = np.append(first, k_keys.shape[0]).astype(np.int64)
            grams[int(k)] = uniq
            occ[int(k)] = (offsets, k_fid, k_start)
        stats = {
            "items": item_no,
            "fields": len(field_task),
            "ngrams": int(sum(g.shape[0] for g in grams.values())),
            "template_ngrams_dropped": dropped,
            "run_lengths": sorted(grams),
        }
        return cls(
            n=n,
            task_names=list(tasks),
            grams=grams,
            occ=occ,
            field_task=np.asarray(field_task, dtype=np.int64),
            field_item=field_item,
            field_kind=field_kind,
            field_len=np.asarray(field_len, dtype=np.int64),
            stats=stats,
        )

    def _hits(self, texts: Sequence[str], hasher: WordHasher) -> tuple[np.ndarray, ...]:
        """Every (document, key, field, start, k) where a distinct n-gram of a document occurs in a field."""
        word_hashes = [hasher.hashes(words(t)) for t in texts]
        out: list[tuple[np.ndarray, ...]] = []
        key_base = 0
        for k in sorted(self.grams):
            uniq = self.grams[k]
            offsets, fids, starts = self.occ[k]
            hashes, doc, _ = batch_ngram_hashes(word_hashes, k)
            if hashes.size and uniq.size:
                pos = np.minimum(np.searchsorted(uniq, hashes), uniq.shape[0] - 1)
                hit = uniq[pos] == hashes
                pair = np.unique(np.stack([doc[hit], pos[hit]], axis=1), axis=0)  # distinct per document
                if pair.size:
                    counts = offsets[pair[:, 1] + 1] - offsets[pair[:, 1]]
                    rep = np.repeat(np.arange(pair.shape[0]), counts)
                    first = np.repeat(offsets[pair[:, 1]], counts)
                    idx = first + (np.arange(rep.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts))
                    out.append(
                        (
                            pair[rep, 0],
                            pair[rep, 1] + key_base,
                            fids[idx],
                            starts[idx],
                            np.full(rep.shape[0], k),
                        )
                    )
            key_base += int(uniq.shape[0])
        if not out:
            return tuple(np.zeros(0, dtype=np.int64) for _ in range(5))
        return tuple(np.concatenate(cols) for cols in zip(*out, strict=True))

    def overlap_matrix(self, texts: Sequence[str], hasher: WordHasher | None = None) -> np.ndarray:
        """Distinct overlapping n-grams of every text with every task: ``(len(texts), n_tasks)`` int64."""
        doc, key, fid, _, _ = self._hits(texts, hasher if hasher is not None else WordHasher())
        return self._task_counts(len(texts), doc, key, fid)

    def _task_counts(self, n_docs: int, doc: np.ndarray, key: np.ndarray, fid: np.ndarray) -> np.ndarray:
        n_tasks = len(self.task_names)
        counts = np.zeros((n_docs, n_tasks), dtype=np.int64)
        if doc.size:
            triples = np.unique(np.stack([doc, key, self.field_task[fid]], axis=1), axis=0)
            np.add.at(counts, (triples[:, 0], triples[:, 2]), 1)
        return counts

    def overlap(self, texts: Sequence[str], hasher: WordHasher | None = None) -> tuple[np.ndarray, list[str]]:
        """Per text, the largest overlap (distinct shared n-grams) with any one task and that task's name
        (``""`` when none)."""
        matrix = self.overlap_matrix(texts, hasher)
        if matrix.shape[1] == 0:
            return np.zeros(len(texts), dtype=np.int64), ["" for _ in texts]
        best = matrix.argmax(axis=1)
        counts = matrix[np.arange(len(texts)), best]
        names = [
            self.task_names[b] if c > 0 else "" for b, c in zip(best.tolist(), counts.tolist(), strict=True)
        ]
        return counts, names

    def match(
        self,
        texts: Sequence[str],
        min_overlap: int = 1,
        min_coverage: float = 0.8,
        hasher: WordHasher | None = None,
    ) -> DecontamMatch:
        """Flag the texts that contain a task field: see the module docstring for the rule."""
        n_docs = len(texts)
        doc, key, fid, start, k = self._hits(texts, hasher if hasher is not None else WordHasher())
        counts = self._task_counts(n_docs, doc, key, fid)
        contaminated = np.zeros(n_docs, dtype=bool)
        coverage = np.zeros(n_docs, dtype=np.float32)
        overlap = np.zeros(n_docs, dtype=np.int64)
        task = ["" for _ in range(n_docs)]
        item = ["" for _ in range(n_docs)]
        if doc.size:
            # per (document, field): words covered by the union of [start, start + k) and n-grams matched
            order = np.lexsort((start, fid, doc))
            doc, fid, start, k = doc[order], fid[order], start[order], k[order]
            new = np.ones(doc.shape[0], dtype=bool)
            new[1:] = (doc[1:] != doc[:-1]) | (fid[1:] != fid[:-1])
            group = np.cumsum(new) - 1
            step = np.where(new, k, np.minimum(np.diff(start, prepend=0), k))
            covered = np.bincount(group, weights=step)
            matched = np.bincount(group)
            g_doc, g_fid = doc[new], fid[new]
            g_cov = covered / self.field_len[g_fid]
            g_ok = (matched >= min_overlap) & (g_cov >= min_coverage)
            # best field per document: contaminating first, then highest coverage, then most n-grams
            best_order = np.lexsort((-matched, -g_cov, ~g_ok, g_doc))
            first = np.ones(best_order.shape[0], dtype=bool)
            first[1:] = g_doc[best_order][1:] != g_doc[best_order][:-1]
            for g in best_order[first].tolist():
                d, f = int(g_doc[g]), int(g_fid[g])
                t = int(self.field_task[f])
                contaminated[d] = bool(g_ok[g])
                coverage[d] = float(g_cov[g])
                overlap[d] = int(counts[d, t])
                task[d] = self.task_names[t]
                item[d] = self.field_item[f]
        return DecontamMatch(
            contaminated=contaminated, task=task, item=item, overlap=overlap, coverage=coverage
        )
