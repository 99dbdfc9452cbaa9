"""CLI of the evaluation stage: ``mixlab eval`` (multiple-choice tasks) and ``mixlab domain-loss``."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from mixlab.evaluation.config import EvalConfig
from mixlab.evaluation.domain_loss import domain_losses, parse_domain_specs, read_domain_texts
from mixlab.evaluation.multiple_choice import evaluate_task, load_model
from mixlab.evaluation.results import write_domain_losses, write_task_results
from mixlab.evaluation.tasks import load_task, parse_task_specs
from mixlab.stage_config import add_config_argument, flag_values, stage_config


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def _print_metrics(name: str, m: dict[str, float]) -> None:
    print(
        f"{name}: acc {_fmt(m['acc'])} ± {_fmt(m['acc_stderr'])}  "
        f"acc_norm {_fmt(m['acc_norm'])} ± {_fmt(m['acc_norm_stderr'])}  "
        f"gold_bpb {_fmt(m['gold_bpb'])}  correct_prob {_fmt(m['correct_prob'])}  "
        f"margin {_fmt(m['margin'])}  n {int(m['n'])}"
    )


def _cmd_import_lmeval(args: argparse.Namespace) -> int:
    from mixlab.evaluation.lmeval_import import import_samples

    rename = {v: k for k, v in parse_task_specs(args.tasks).items()} if args.tasks else None
    results = import_samples(args.lmeval_samples, rename=rename)
    for name, result in results.items():
        _print_metrics(name, result.metrics)
    path = write_task_results(results, args.out)
    print(f"imported {len(results)} lm-eval task(s); wrote their result files and {path}")
    return 0


#: ``mixlab eval`` flags (argparse dest) -> EvalConfig fields.
EVAL_FLAGS = {"batch_size": "batch_size", "device": "device", "limit": "limit"}
#: ``mixlab domain-loss`` flags (argparse dest) -> EvalConfig fields.
DOMAIN_LOSS_FLAGS = {
    "block_size": "block_size",
    "batch_size": "loss_batch_size",
    "max_docs": "max_docs_per_domain",
    "device": "device",
}


def _config(args: argparse.Namespace, flags: dict[str, str], extra: dict[str, object]) -> EvalConfig:
    """The evaluation section of ``--config`` with the flags given on top."""
    overrides = {**flag_values(args, flags), **{k: v for k, v in extra.items() if v is not None}}
    return stage_config(EvalConfig, args.config, "evaluation", overrides)


def _cmd_eval(args: argparse.Namespace) -> int:
    if args.lmeval_samples is not None:
        return _cmd_import_lmeval(args)
    cfg = _config(args, EVAL_FLAGS, {"tasks": parse_task_specs(args.tasks) if args.tasks else None})
    if args.model is None or not cfg.tasks:
        raise ValueError(
            "--model and tasks are required: --tasks NAME=SPEC,... or evaluation.tasks in --config "
            "(or give --lmeval-samples PATH)"
        )
    tasks = {name: load_task(name, spec) for name, spec in cfg.tasks.items()}  # fail on bad files first
    model, tokenizer = load_model(args.model, cfg.device)
    results = {}
    for name, task in tasks.items():
        results[name] = evaluate_task(model, tokenizer, task, batch_size=cfg.batch_size, limit=cfg.limit)
        _print_metrics(name, results[name].metrics)
    path = write_task_results(results, args.out)
    print(f"wrote {len(results)} task result files and {path}")
    return 0


def _cmd_domain_loss(args: argparse.Namespace) -> int:
    cfg = _config(
        args, DOMAIN_LOSS_FLAGS, {"validation": parse_domain_specs(args.data) if args.data else None}
    )
    if not cfg.validation:
        raise ValueError(
            "held-out files are required: --data DOMAIN=FILE,... or evaluation.validation in --config"
        )
    texts: dict[str, list[str]] = {}
    for domain, spec in cfg.validation.items():
        texts[domain], bad = read_domain_texts(
            spec, text_field=args.text_field, max_docs=cfg.max_docs_per_domain
        )
        if bad:
            print(f"{domain}: {len(bad)} record(s) not scored, first: {bad[0]}")
    model, tokenizer = load_model(args.model, cfg.device)
    losses = domain_losses(model, tokenizer, texts, block_size=cfg.block_size, batch_size=cfg.loss_batch_size)
    for domain, values in losses.items():
        print(
            f"{domain}: loss {_fmt(values['loss'])} nats/token  bpb {_fmt(values['bpb'])}  "
            f"({int(values['n_docs'])} docs, {int(values['n_tokens'])} tokens)"
        )
    path = write_domain_losses(losses, Path(args.out))
    print(f"wrote {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``eval`` and ``domain-loss`` to the ``mixlab`` command line."""
    e = sub.add_parser(
        "eval", help="score a model on multiple-choice tasks exactly as lm-eval's hf model does"
    )
    e.add_argument("--model", help="model folder (transformers AutoModelForCausalLM + tokenizer)")
    e.add_argument(
        "--tasks",
        help=(
            "NAME=SPEC[,NAME=SPEC...]; SPEC is an ELMB .jsonl/.parquet file, an lm-eval task YAML or a HF id. "
            "With --lmeval-samples: NAME=LMEVAL_TASK renames imported tasks"
        ),
    )
    e.add_argument(
        "--lmeval-samples",
        default=None,
        help=(
            "import lm-eval --log_samples output instead of scoring: a samples_<task>_<timestamp>.jsonl "
            "file or a folder of them; writes the same NAME.jsonl and metrics.json"
        ),
    )
    e.add_argument("--out", required=True, help="folder for NAME.jsonl per task and metrics.json")
    add_config_argument(e, "evaluation")
    e.add_argument("--batch-size", type=int, default=None, help="documents per forward pass (default 32)")
    e.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    e.add_argument("--limit", type=int, default=None, help="only the first N documents of each task")
    e.set_defaults(func=_cmd_eval)

    d = sub.add_parser(
        "domain-loss", help="validation loss and bits per byte on held-out text of each domain"
    )
    d.add_argument("--model", required=True, help="model folder")
    d.add_argument(
        "--data",
        default=None,
        help="DOMAIN=FILE[,DOMAIN=FILE...] held-out JSONL/Parquet files (default: evaluation.validation)",
    )
    d.add_argument("--out", required=True, help="output JSON file (domain -> loss, bpb, counts)")
    add_config_argument(d, "evaluation")
    d.add_argument("--block-size", type=int, default=None, help="tokens per scored window (default 256)")
    d.add_argument("--batch-size", type=int, default=None, help="windows per forward pass (default 8)")
    d.add_argument("--max-docs", type=int, default=None, help="score at most N documents per domain")
    d.add_argument("--text-field", default="text", help="name of the text field/column")
    d.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    d.set_defaults(func=_cmd_domain_loss)
