"""Benchmark: mixlab's DoRA trainer vs Hugging Face ``Trainer`` + peft DoRA (the LMFlow path of the challenge).

Both train the same DoRA adapter (peft, r=16, alpha 32, dropout 0.1, all challenge targets) on the same small
locally built Llama base model and the same packed token blocks (EOS-separated documents cut into
``block_size`` rows, as LMFlow's ``group_texts`` does), with the same optimizer settings (AdamW, cosine to 0,
clip 1.0). Reported: training-loop tokens/second of each and their ratio (target >= 1.5x), end-to-end wall
time (data preparation + training + saving the adapter and the merged model), and the loss after N steps
(mean of the last 5 steps; the two runs see the blocks in different orders, so they agree within noise,
not exactly).

    .venv/bin/python bench/bench_train.py      # defaults: tiny-1m base, 4096-id BPE, 20 steps of 4 x 128
    .venv/bin/python bench/bench_train.py --tokenizer ../shared/data/tokenizers/gpt2/tokenizer.json \\
        --block-size 256 --batch-size 4 --steps 12      # a real 50k vocabulary: the head dominates

mixlab's side runs peft's DoRA with its fused layer forward (mixlab.proxies.fused_dora) and the chunked
head + cross-entropy (mixlab.proxies.fused_loss); the HF side runs peft as the LMFlow scripts do.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SOURCES = ("wikitext2", "python_docs", "gsm8k_train", "crd3", "bfcl", "xquad")


def load_texts(per_source: int, max_chars: int) -> list[str]:
    """A few documents from several corpus sources (shared data), interleaved."""
    texts: list[str] = []
    for src in SOURCES:
        path = DATA / "corpus" / f"{src}.jsonl.gz"
        if not path.exists():
            sys.exit(f"shared data missing: {path}")
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            texts.extend(json.loads(line)["text"][:max_chars] for _, line in zip(range(per_source), fh))
    return texts


def train_bpe(texts: list[str], vocab: int, out: Path) -> str:
    """A byte-level BPE tokenizer trained on ``texts`` (no hub access here), saved as a transformers folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<s>", "</s>", "<pad>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer)
    PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    ).save_pretrained(out)
    return str(out)


def run_mixlab(args: argparse.Namespace, texts: list[str], base_dir: Path, tok_spec: str, out: Path) -> dict:
    from mixlab.proxies.config import ProxyConfig
    from mixlab.proxies.trainer import train_proxy

    cfg = ProxyConfig(
        mode="dora",
        base_model=str(base_dir),
        lr=args.lr,
        schedule="cosine",
        min_lr_ratio=0.0,
        warmup_steps=0,
        max_steps=args.steps,
        batch_size=args.batch_size,
        block_size=args.block_size,
        weight_decay=0.0,
        adam_beta2=0.999,
        grad_clip=1.0,
        seed=args.seed,
        num_threads=args.threads,
    )
    t0 = time.perf_counter()
    result = train_proxy(cfg, texts, tok_spec, out)
    e2e = time.perf_counter() - t0
    return {
        "tok_s": result.tokens_per_second,
        "loop_s": result.seconds,
        "e2e_s": e2e,
        "losses": result.losses,
    }


def run_hf_trainer(
    args: argparse.Namespace, texts: list[str], base_dir: Path, tok_spec: str, out: Path
) -> dict:
    """The LMFlow way: datasets map (tokenize, append EOS, group_texts) -> Trainer + peft DoRA."""
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        default_data_collator,
    )

    from mixlab.proxies.config import DEFAULT_DORA_TARGETS
    from mixlab.tokenization import load_tokenizer

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    tok = load_tokenizer(tok_spec)
    eos = tok.eos_token_id if tok.eos_token_id is not None else tok.get_vocab()["<|endoftext|>"]
    bs = args.block_size

    def tokenize(batch: dict) -> dict:
        ids = tok(batch["text"], add_special_tokens=False)["input_ids"]
        return {"input_ids": [x + [eos] for x in ids]}

    def group_texts(batch: dict) -> dict:
        concat = [t for ids in batch["input_ids"] for t in ids]
        n = len(concat) // bs * bs
        blocks = [concat[i : i + bs] for i in range(0, n, bs)]
        return {"input_ids": blocks, "labels": [list(b) for b in blocks]}

    ds = Dataset.from_dict({"text": texts}).map(tokenize, batched=True, remove_columns=["text"])
    ds = ds.map(group_texts, batched=True, batch_size=len(ds))
    torch.manual_seed(args.seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, attn_implementation="sdpa")
    lora = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.1, target_modules=list(DEFAULT_DORA_TARGETS), use_dora=True,
        task_type="CAUSAL_LM",
    )  # fmt: skip
    model = get_peft_model(base, lora)

    class Clock(TrainerCallback):
        start = end = 0.0
        losses: ClassVar[list[float]] = []

        def on_train_begin(self, *a, **k):  # type: ignore[no-untyped-def]
            Clock.start = time.perf_counter()

        def on_step_end(self, *a, **k):  # type: ignore[no-untyped-def]
            Clock.end = time.perf_counter()

        def on_log(self, _args, _state, _control, logs=None, **k):  # type: ignore[no-untyped-def]
            if logs and "loss" in logs:
                Clock.losses.append(float(logs["loss"]))

    cuda = torch.cuda.is_available()
    targs = TrainingArguments(
        output_dir=str(out / "hf"),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=args.lr,
        lr_scheduler_type="cosine",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=args.seed,
        use_cpu=not cuda,
        bf16=cuda,
        dataloader_drop_last=True,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model, args=targs, train_dataset=ds, data_collator=default_data_collator, callbacks=[Clock()]
    )
    trainer.train()
    loop = Clock.end - Clock.start
    model.save_pretrained(out / "adapter", save_embedding_layers=False)
    model.merge_and_unload().save_pretrained(out)
    tok.save_pretrained(out)
    e2e = time.perf_counter() - t0
    tokens = args.steps * args.batch_size * bs
    return {"tok_s": tokens / loop, "loop_s": loop, "e2e_s": e2e, "losses": Clock.losses}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny-1m", help="size preset of the locally built base model")
    p.add_argument(
        "--tokenizer",
        default="train",
        help="tokenizer spec, or `train` for a byte-level BPE of --vocab ids trained on the bench texts",
    )
    p.add_argument("--vocab", type=int, default=4096, help="vocabulary of the trained BPE tokenizer")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument(
        "--lr", type=float, default=1e-3, help="higher than the recipe's 1e-5 so the loss moves in N steps"
    )
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--per-source", type=int, default=40, help="documents per corpus source")
    p.add_argument("--max-chars", type=int, default=4000)
    p.add_argument("--repeats", type=int, default=1, help="alternate runs; the best time of each is reported")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from mixlab.proxies.presets import build_model
    from mixlab.tokenization import load_tokenizer

    torch.set_num_threads(args.threads)
    texts = load_texts(args.per_source, args.max_chars)
    with tempfile.TemporaryDirectory() as tmp_str:
        tmp = Path(tmp_str)
        if args.tokenizer == "train":
            args.tokenizer = train_bpe(texts, args.vocab, tmp / "tok")
        tok = load_tokenizer(args.tokenizer)
        from mixlab.proxies.packing import resolve_special_ids

        special = resolve_special_ids(tok)
        torch.manual_seed(args.seed)
        base = build_model(args.preset, len(tok), special.bos, special.eos, special.pad)
        base.save_pretrained(tmp / "base")
        print(
            f"base: preset {args.preset}, vocab {len(tok)}, {sum(p.numel() for p in base.parameters()):,} params; "
            f"{len(texts)} docs; {args.steps} steps x {args.batch_size} x {args.block_size} tokens; "
            f"{args.threads} threads; device {'cuda' if torch.cuda.is_available() else 'cpu'}"
        )
        del base
        ours, theirs = [], []
        for r in range(args.repeats):
            theirs.append(run_hf_trainer(args, texts, tmp / "base", args.tokenizer, tmp / f"hf{r}"))
            ours.append(run_mixlab(args, texts, tmp / "base", args.tokenizer, tmp / f"ml{r}"))
    best_ours = max(ours, key=lambda x: x["tok_s"])
    best_theirs = max(theirs, key=lambda x: x["tok_s"])
    ratio = best_ours["tok_s"] / best_theirs["tok_s"]
    e2e_ratio = min(x["e2e_s"] for x in theirs) / min(x["e2e_s"] for x in ours)
    last = lambda losses: statistics.fmean(losses[-5:])
    noise = (
        statistics.pstdev(best_theirs["losses"][-10:]) if len(best_theirs["losses"]) >= 10 else float("nan")
    )
    print(f"{'':22}{'tokens/s':>12}{'loop s':>10}{'e2e s':>10}{'loss@N':>10}")
    for name, res in (("mixlab train_proxy", best_ours), ("HF Trainer + peft", best_theirs)):
        print(
            f"{name:22}{res['tok_s']:>12,.0f}{res['loop_s']:>10.2f}{res['e2e_s']:>10.2f}{last(res['losses']):>10.4f}"
        )
    diff = abs(last(best_ours["losses"]) - last(best_theirs["losses"]))
    print(f"loss difference {diff:.4f} (step-to-step std of the HF run over its last 10 steps: {noise:.4f})")
    print(f"end-to-end speed-up: {e2e_ratio:.2f}x")
    print(f"RATIO mixlab/HF tokens per second: {ratio:.2f}x (target >= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
