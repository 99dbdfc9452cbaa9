"""Multiple-choice log-likelihood scoring that reproduces lm-evaluation-harness (``hf`` model) exactly.

What lm-eval computes for ``output_type: multiple_choice`` (zero-shot), and what this module computes:

* each request is ``(context, target_delimiter + choice)``; trailing whitespace of the context moves to the
  continuation; ``context_enc = encode(context)``, ``continuation_enc = encode(context + continuation)
  [len(context_enc):]`` where ``encode`` is the tokenizer's default ``encode`` (so a BOS is prepended when
  the tokenizer adds one, and not when the string already starts with it); an empty context is replaced
  by the BOS (else EOS) token;
* the log-likelihood of a choice is the sum of log-softmax probabilities of ``continuation_enc`` given
  ``context_enc`` (inputs longer than the model's context are cut from the left);
* ``acc`` = [argmax of the sums is the gold], ``acc_norm`` divides each sum by the choice's length in
  characters, ``acc_bytes`` by its length in UTF-8 bytes; stderr = sample standard deviation / sqrt(n).

Speed comes from running each context once for all its choices: a document becomes one packed row
``context + choice_1[:-1] + choice_2[:-1] + ...`` with a 4D attention mask (each choice sees the context and
itself) and position ids restarting after the context, so the row gives every choice's scores in one pass;
the output head runs only on scored positions. Rows are sorted by length and batched. The first document
of every task is also scored the plain lm-eval way; if the two disagree (a model that ignores custom masks
or position ids), scoring falls back to the plain path.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mixlab.console import tqdm
from mixlab.evaluation.logprobs import TokenScorer, model_max_length, resolve_device
from mixlab.evaluation.metrics import DOC_METRICS, ChoiceScores
from mixlab.evaluation.tasks import Task

log = logging.getLogger(__name__)

__all__ = [
    "EncodedDoc",
    "TaskResult",
    "aggregate_metrics",
    "doc_record",
    "encode_documents",
    "evaluate_model",
    "evaluate_task",
    "load_model",
    "mean_stderr",
    "score_documents",
]

#: Attention implementations that accept a custom 4D additive mask.
PACKABLE_ATTENTION = ("eager", "sdpa")


@dataclass
class TaskResult:
    """Scores of one task: one record per document and the aggregated metrics."""

    name: str
    per_doc: list[dict[str, Any]]
    """``doc_index``, every metric of :data:`mixlab.evaluation.metrics.DOC_METRICS` (``acc``, ``acc_norm``,
    ``acc_bytes``, ``gold_bpb``, ``correct_prob``, ``margin``), ``loglikelihoods``, ``pred``, ``pred_norm``,
    ``pred_bytes``, ``answer``."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Per registered metric its mean and ``<metric>_stderr``, plus ``n``."""


@dataclass
class EncodedDoc:
    """A document's token ids, split the way lm-eval splits each (context, continuation) request."""

    context: list[int]
    """Context ids shared by every choice (lm-eval's ``context_enc``)."""
    continuations: list[list[int]]
    """Per choice: the scored ids (lm-eval's ``continuation_enc``)."""
    contexts: list[list[int]] | None = None
    """Per-choice contexts, only when they differ between choices (empty-context edge cases)."""

    def context_of(self, j: int) -> list[int]:
        return self.contexts[j] if self.contexts is not None else self.context


# ------------------------------------------------------------------------------ lm-eval tokenization
class _LMEvalEncoder:
    """``HFLM.tok_encode`` / ``_encode_pair`` / empty-context handling of lm-eval 0.4.x, batched."""

    def __init__(self, tokenizer: Any) -> None:
        self.tok = tokenizer
        bos = tokenizer.bos_token_id
        self.prefix_token_id = int(bos if bos is not None else tokenizer.eos_token_id)
        self.prefix_str = tokenizer.decode(self.prefix_token_id)

    def encode(self, strings: Sequence[str]) -> list[list[int]]:
        """Default-special-token encoding; strings already starting with the BOS text get none added."""
        out: list[list[int] | None] = [None] * len(strings)
        has_bos = [bool(self.prefix_str) and s.startswith(self.prefix_str) for s in strings]
        plain = [i for i, flag in enumerate(has_bos) if not flag]
        prefixed = [i for i, flag in enumerate(has_bos) if flag]
        for idx, kwargs in ((plain, {}), (prefixed, {"add_special_tokens": False})):
            if not idx:
                continue
            enc = self.tok([strings[i] for i in idx], return_attention_mask=False, **kwargs)["input_ids"]
            for i, ids in zip(idx, enc, strict=True):
                out[i] = list(ids)
        return [ids if ids is not None else [] for ids in out]

    def encode_no_special(self, strings: Sequence[str]) -> list[list[int]]:
        enc = self.tok(list(strings), add_special_tokens=False, return_attention_mask=False)["input_ids"]
        return [list(ids) for ids in enc]


def encode_documents(tokenizer: Any, task: Task, indices: Sequence[int]) -> list[EncodedDoc]:
    """Token ids of the given documents' requests, exactly as lm-eval's ``hf`` model builds them."""
    enc = _LMEvalEncoder(tokenizer)
    contexts: list[str] = []
    wholes: list[str] = []
    layout: list[tuple[str, list[str]]] = []
    for i in indices:
        context = task.context(i)
        conts = task.continuations(i)
        if context == "":
            layout.append(("", conts))
            continue
        n_spaces = len(context) - len(context.rstrip())
        moved = context[len(context) - n_spaces :] if n_spaces else ""
        stripped = context[: len(context) - n_spaces] if n_spaces else context
        conts = [moved + c for c in conts]
        layout.append((stripped, conts))
        contexts.append(stripped)
        wholes.extend(stripped + c for c in conts)
    ctx_ids = iter(enc.encode(contexts))
    whole_ids = iter(enc.encode(wholes))
    docs: list[EncodedDoc] = []
    for (context, conts), i in zip(layout, indices, strict=True):
        if context == "":
            docs.append(_empty_context_doc(enc, conts))
            continue
        ctx = next(ctx_ids)
        cont_ids = [next(whole_ids)[len(ctx) :] for _ in conts]
        for j, ids in enumerate(cont_ids):
            if not ids:
                raise ValueError(f"task {task.name!r}, document {i}: choice {j} encodes to no tokens")
        docs.append(EncodedDoc(context=ctx, continuations=cont_ids))
    return docs


def _empty_context_doc(enc: _LMEvalEncoder, conts: list[str]) -> EncodedDoc:
    """lm-eval's empty-context rule: BOS/EOS as the context, unless the continuation starts with it."""
    ctxs: list[list[int]] = []
    scored: list[list[int]] = []
    for ids in enc.encode_no_special(conts):
        if ids and ids[0] == enc.prefix_token_id:
            ctxs.append(ids[:1])
            scored.append(ids[1:])
        else:
            ctxs.append([enc.prefix_token_id])
            scored.append(ids)
    same = all(c == ctxs[0] for c in ctxs)
    return EncodedDoc(context=ctxs[0], continuations=scored, contexts=None if same else ctxs)


# ------------------------------------------------------------------------------------------ scoring
def _packable(doc: EncodedDoc, max_length: int) -> bool:
    return doc.contexts is None and all(
        len(doc.context) + len(c) <= max_length + 1 and len(c) > 0 for c in doc.continuations
    )


def _packed_layout(doc: EncodedDoc) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """Packed ids, position ids and per choice the (start, length) of its block in the row."""
    ids = list(doc.context)
    c = len(ids)
    positions = list(range(c))
    blocks: list[tuple[int, int]] = []
    for cont in doc.continuations:
        body = cont[:-1]
        blocks.append((len(ids), len(body)))
        ids.extend(body)
        positions.extend(range(c, c + len(body)))
    return ids, positions, blocks


def _score_packed(scorer: TokenScorer, docs: list[EncodedDoc]) -> list[list[float]]:
    """One forward pass for a batch of documents, each packed into one row."""
    layouts = [_packed_layout(d) for d in docs]
    width = max(len(ids) for ids, _, _ in layouts)
    n = len(docs)
    input_ids = torch.zeros((n, width), dtype=torch.long)
    position_ids = torch.zeros((n, width), dtype=torch.long)
    allowed = torch.zeros((n, width, width), dtype=torch.bool)
    eye = torch.eye(width, dtype=torch.bool)
    tril = torch.ones((width, width), dtype=torch.bool).tril_()  # tril[:k, :k] is the causal mask of k tokens
    rows: list[int] = []
    cols: list[int] = []
    targets: list[int] = []
    owner: list[int] = []  # flat choice index of each scored token
    n_choices = 0
    for b, (doc, (ids, pos, blocks)) in enumerate(zip(docs, layouts, strict=True)):
        length, c = len(ids), len(doc.context)
        input_ids[b, :length] = torch.tensor(ids)
        position_ids[b, :length] = torch.tensor(pos)
        allowed[b, :c, :c] = tril[:c, :c]
        allowed[b, length:] = eye[length:]  # padding rows see themselves only (no empty softmax)
        for cont, (start, size) in zip(doc.continuations, blocks, strict=True):
            if size:
                allowed[b, start : start + size, :c] = True
                allowed[b, start : start + size, start : start + size] = tril[:size, :size]
            rows.extend([b] * len(cont))
            cols.extend([c - 1, *range(start, start + size)])
            targets.extend(cont)
            owner.extend([n_choices] * len(cont))
            n_choices += 1
    mask = torch.zeros((n, 1, width, width), dtype=scorer.dtype)
    mask.masked_fill_(~allowed.unsqueeze(1), torch.finfo(scorer.dtype).min)
    token_lp = scorer.score(
        input_ids,
        torch.tensor(rows),
        torch.tensor(cols),
        torch.tensor(targets),
        attention_mask=mask,
        position_ids=position_ids,
    )
    sums = torch.zeros(n_choices, dtype=torch.float64).index_add_(0, torch.tensor(owner), token_lp.double())
    out: list[list[float]] = []
    k = 0
    for doc in docs:
        m = len(doc.continuations)
        out.append([float(x) for x in sums[k : k + m]])
        k += m
    return out


def _score_plain(
    scorer: TokenScorer, requests: list[tuple[list[int], list[int]]], max_length: int, batch_size: int
) -> list[float]:
    """lm-eval's own path: one right-padded row per (context, continuation), no attention mask."""
    out = [0.0] * len(requests)
    order = sorted(range(len(requests)), key=lambda i: -(len(requests[i][0]) + len(requests[i][1])))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        inputs = [(requests[i][0] + requests[i][1])[-(max_length + 1) :][:-1] for i in chunk]
        width = max(len(x) for x in inputs)
        input_ids = torch.zeros((len(chunk), width), dtype=torch.long)
        rows: list[int] = []
        cols: list[int] = []
        targets: list[int] = []
        owner: list[int] = []
        for b, (i, inp) in enumerate(zip(chunk, inputs, strict=True)):
            cont = requests[i][1]
            input_ids[b, : len(inp)] = torch.tensor(inp)
            rows.extend([b] * len(cont))
            cols.extend(range(len(inp) - len(cont), len(inp)))
            targets.extend(cont)
            owner.extend([b] * len(cont))
        token_lp = scorer.score(input_ids, torch.tensor(rows), torch.tensor(cols), torch.tensor(targets))
        sums = torch.zeros(len(chunk), dtype=torch.float64).index_add_(
            0, torch.tensor(owner), token_lp.double()
        )
        for b, i in enumerate(chunk):
            out[i] = float(sums[b])
    return out


def _plain_docs(
    scorer: TokenScorer, docs: list[EncodedDoc], max_length: int, batch_size: int
) -> list[list[float]]:
    requests = [(d.context_of(j), c) for d in docs for j, c in enumerate(d.continuations)]
    flat = _score_plain(scorer, requests, max_length, batch_size)
    out: list[list[float]] = []
    k = 0
    for d in docs:
        out.append(flat[k : k + len(d.continuations)])
        k += len(d.continuations)
    return out


def _packing_agrees(scorer: TokenScorer, doc: EncodedDoc, max_length: int) -> bool:
    """Score one document both ways; True when the packed path reproduces the plain one."""
    packed = _score_packed(scorer, [doc])[0]
    plain = _plain_docs(scorer, [doc], max_length, batch_size=len(doc.continuations))[0]
    n_tokens = sum(len(c) for c in doc.continuations)
    tol = 1e-3 if scorer.dtype == torch.float32 else 0.05 * n_tokens
    worst = max(abs(a - b) for a, b in zip(packed, plain, strict=True))
    if worst > tol:
        log.warning("packed scoring differs from plain scoring by %.3g: using the plain path", worst)
        return False
    return True


def score_documents(
    model: Any,
    tokenizer: Any,
    docs: list[EncodedDoc],
    batch_size: int = 32,
    desc: str = "scoring",
    packed: bool | None = None,
) -> list[list[float]]:
    """Per document, per choice summed log-likelihood of the continuation given the context.

    ``packed=None`` packs when the model's attention accepts custom masks and a one-document check agrees
    with the plain path; ``True``/``False`` force a path.
    """
    scorer = TokenScorer(model)
    max_length = model_max_length(scorer.model, tokenizer)
    results: list[list[float] | None] = [None] * len(docs)
    can_pack = [i for i, d in enumerate(docs) if _packable(d, max_length)]
    if packed is None:
        packed = scorer.attn_implementation in PACKABLE_ATTENTION and bool(can_pack)
        if packed:
            packed = _packing_agrees(scorer, docs[can_pack[0]], max_length)
    if not packed:
        can_pack = []
    rest = sorted(set(range(len(docs))) - set(can_pack))
    order = sorted(
        can_pack, key=lambda i: -(len(docs[i].context) + sum(len(c) for c in docs[i].continuations))
    )
    n_batches = math.ceil(len(order) / batch_size) + math.ceil(len(rest) / batch_size)
    with tqdm(total=n_batches, desc=desc, unit="batch", leave=False) as bar:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            for i, lls in zip(chunk, _score_packed(scorer, [docs[i] for i in chunk]), strict=True):
                results[i] = lls
            bar.update(1)
        for start in range(0, len(rest), batch_size):
            chunk = rest[start : start + batch_size]
            lls_chunk = _plain_docs(scorer, [docs[i] for i in chunk], max_length, batch_size * 4)
            for i, lls in zip(chunk, lls_chunk, strict=True):
                results[i] = lls
            bar.update(1)
    return [r if r is not None else [] for r in results]


# ------------------------------------------------------------------------------------------ metrics
def mean_stderr(values: Sequence[float]) -> float:
    """Standard error of the mean with the sample (n - 1) standard deviation, as lm-eval reports it."""
    n = len(values)
    if n < 2:
        return float("nan")
    arr = np.asarray(values, dtype=np.float64)
    return float(math.sqrt(float(((arr - arr.mean()) ** 2).sum()) / (n - 1)) / math.sqrt(n))


def doc_record(
    index: int, lls: list[float], choices: list[str], gold: int, continuations: list[str] | None = None
) -> dict[str, Any]:
    """One document's record: every registered metric, the log-likelihoods and the argmax predictions.

    ``continuations`` are the scored strings (delimiter + choice); by default ``" " + choice``.
    """
    conts = continuations if continuations is not None else [f" {c}" for c in choices]
    scores = ChoiceScores.of(lls, choices, conts, gold)
    arr = scores.loglikelihoods
    chars = np.array([float(len(c)) for c in choices])
    nbytes = np.array([float(len(c.encode("utf-8"))) for c in choices])
    record: dict[str, Any] = {"doc_index": index}
    record.update({name: m.fn(scores) for name, m in DOC_METRICS.items()})
    record.update(
        {
            "loglikelihoods": [float(x) for x in lls],
            "pred": int(np.argmax(arr)),
            "pred_norm": int(np.argmax(arr / chars)),
            "pred_bytes": int(np.argmax(arr / nbytes)),
            "answer": gold,
        }
    )
    return record


def aggregate_metrics(per_doc: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean and standard error (lm-eval's) of every registered metric over the documents, plus ``n``.

    A document without a value (NaN, e.g. the margin of a one-choice item) is left out of that metric.
    """
    metrics: dict[str, float] = {}
    for key in DOC_METRICS:
        values = [float(r[key]) for r in per_doc if key in r and r[key] is not None]
        values = [v for v in values if not math.isnan(v)]
        metrics[key] = float(np.mean(values)) if values else float("nan")
        metrics[f"{key}_stderr"] = mean_stderr(values)
    metrics["n"] = float(len(per_doc))
    return metrics


# ---------------------------------------------------------------------------------------------- API
def evaluate_task(
    model: Any,
    tokenizer: Any,
    task: Task,
    batch_size: int = 32,
    device: str | None = None,
    limit: int | None = None,
) -> TaskResult:
    """Score every document of ``task`` (the first ``limit`` ones if given) with ``model``.

    ``device`` moves the model there first; ``None`` keeps it where it is. ``batch_size`` counts
    documents per forward pass (each packs all its choices).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if device is not None:
        model.to(resolve_device(device))
    model.eval()
    indices = list(range(len(task.docs) if limit is None else min(limit, len(task.docs))))
    encoded = encode_documents(tokenizer, task, indices)
    lls = score_documents(model, tokenizer, encoded, batch_size=batch_size, desc=f"eval {task.name}")
    per_doc = [
        doc_record(i, ll, task.choices(i), task.gold(i), task.continuations(i))
        for i, ll in zip(indices, lls, strict=True)
    ]
    return TaskResult(name=task.name, per_doc=per_doc, metrics=aggregate_metrics(per_doc))


def load_model(model_path: str | Path, device: str | None = None) -> tuple[Any, Any]:
    """``AutoModelForCausalLM`` + ``AutoTokenizer`` from a folder; float32 on CPU, bfloat16 on GPU."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model_path)
    if not path.exists():
        raise FileNotFoundError(f"model folder not found: {path}")
    dev = resolve_device(device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    model.to(dev)
    model.eval()
    return model, tokenizer


def evaluate_model(
    model_path: str | Path,
    tasks: dict[str, Task],
    batch_size: int = 32,
    device: str | None = None,
    limit: int | None = None,
) -> dict[str, TaskResult]:
    """Load the model at ``model_path`` and evaluate it on every task (keyed like ``tasks``)."""
    model, tokenizer = load_model(model_path, device)
    return {
        name: evaluate_task(model, tokenizer, task, batch_size=batch_size, limit=limit)
        for name, task in tasks.items()
    }
