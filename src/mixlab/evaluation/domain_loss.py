"""Per-domain validation loss (nats per token) and bits per UTF-8 byte on held-out text.

Every document is scored on its own, the way lm-eval scores ``loglikelihood_rolling`` tasks: its tokens
(no special tokens) are predicted after the BOS token (EOS when there is no BOS), in consecutive windows of
at most ``block_size`` tokens, each window conditioned on the token just before it. So every token of every
document is predicted exactly once, and ``bpb = total nats / ln 2 / total UTF-8 bytes`` is comparable
across tokenizers while ``loss = total nats / total tokens`` is the usual validation loss.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from mixlab.console import tqdm
from mixlab.evaluation.logprobs import TokenScorer, model_max_length, resolve_device

__all__ = ["domain_losses", "parse_domain_specs", "read_domain_texts"]


def _windows(ids: list[int], prefix: int, block_size: int) -> list[tuple[list[int], list[int]]]:
    """(inputs, targets) windows that predict every id once; the first conditions on ``prefix``."""
    seq = [prefix, *ids]
    out = []
    for start in range(0, len(ids), block_size):
        n = min(block_size, len(ids) - start)
        out.append((seq[start : start + n], seq[start + 1 : start + n + 1]))
    return out


def _domain_nats(
    scorer: TokenScorer, windows: list[tuple[list[int], list[int]]], batch_size: int, desc: str
) -> float:
    total = 0.0
    order = sorted(range(len(windows)), key=lambda i: -len(windows[i][0]))
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", leave=False):
        chunk = [windows[i] for i in order[start : start + batch_size]]
        width = max(len(inp) for inp, _ in chunk)
        input_ids = torch.zeros((len(chunk), width), dtype=torch.long)
        rows: list[int] = []
        cols: list[int] = []
        targets: list[int] = []
        for b, (inp, tgt) in enumerate(chunk):  # right padding: causal rows never see it
            input_ids[b, : len(inp)] = torch.tensor(inp)
            rows.extend([b] * len(tgt))
            cols.extend(range(len(tgt)))
            targets.extend(tgt)
        lp = scorer.score(input_ids, torch.tensor(rows), torch.tensor(cols), torch.tensor(targets))
        total -= float(lp.double().sum())
    return total


def domain_losses(
    model: Any,
    tokenizer: Any,
    texts_by_domain: dict[str, list[str]],
    block_size: int = 512,
    batch_size: int = 8,
    device: str | None = None,
) -> dict[str, dict[str, float]]:
    """Per domain: ``loss`` (nats/token), ``bpb`` (bits/UTF-8 byte), ``n_tokens``, ``n_bytes``, ``n_docs``.

    ``block_size`` is capped at the model's context length; empty texts count in ``n_docs`` but score
    nothing. A domain without any token gets NaN loss and bpb.
    """
    if block_size < 1 or batch_size < 1:
        raise ValueError("block_size and batch_size must be >= 1")
    if device is not None:
        model.to(resolve_device(device))
    model.eval()
    scorer = TokenScorer(model)
    block_size = min(block_size, model_max_length(scorer.model, tokenizer))
    bos = tokenizer.bos_token_id
    prefix = int(bos if bos is not None else tokenizer.eos_token_id)
    out: dict[str, dict[str, float]] = {}
    for domain, texts in texts_by_domain.items():
        texts = list(texts)
        ids = (
            tokenizer(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]
            if texts
            else []
        )
        windows = [w for doc in ids for w in _windows(list(doc), prefix, block_size)]
        n_tokens = sum(len(doc) for doc in ids)
        n_bytes = sum(len(t.encode("utf-8")) for t in texts)
        nats = _domain_nats(scorer, windows, batch_size, f"loss {domain}") if windows else 0.0
        out[domain] = {
            "loss": nats / n_tokens if n_tokens else float("nan"),
            "bpb": nats / math.log(2) / n_bytes if n_bytes and n_tokens else float("nan"),
            "n_tokens": float(n_tokens),
            "n_bytes": float(n_bytes),
            "n_docs": float(len(texts)),
        }
    return out


def read_domain_texts(
    path: str | Path, text_field: str = "text", max_docs: int | None = None
) -> tuple[list[str], list[str]]:
    """Texts of a held-out file (JSONL[.gz/.zst], Parquet, LMFlow, HF on disk) and its quarantine messages.

    Bad records (invalid JSON, missing or non-string text, empty documents) are not scored; each comes back
    as ``"file:line: reason"`` so the caller can report how many were left out and why.
    """
    from mixlab.pool.readers import Quarantined, read_any

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"held-out file not found: {path}")
    texts: list[str] = []
    bad: list[str] = []
    for rec in read_any(path, text_field=text_field):
        if isinstance(rec, Quarantined):
            bad.append(f"{rec.file}:{rec.line}: {rec.reason}")
            continue
        texts.append(rec.text)
        if max_docs is not None and len(texts) >= max_docs:
            break
    return texts, bad


def parse_domain_specs(text: str) -> dict[str, str]:
    """``"a=f1.jsonl,b=f2.jsonl"`` -> ``{"a": "f1.jsonl", "b": "f2.jsonl"}``."""
    specs: dict[str, str] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        name, sep, spec = item.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise ValueError(f"invalid domain spec {item!r}: expected DOMAIN=FILE")
        if name.strip() in specs:
            raise ValueError(f"domain {name.strip()!r} given twice")
        specs[name.strip()] = spec.strip()
    if not specs:
        raise ValueError("no domains given: expected DOMAIN=FILE[,DOMAIN=FILE...]")
    return specs
