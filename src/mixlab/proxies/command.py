"""CLI of proxy training: ``mixlab train`` (one proxy, or the final DoRA run with ``--merge``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mixlab.proxies.config import ProxyConfig
from mixlab.stage_config import add_config_argument, flag_values, stage_config

#: Sections of a pipeline YAML that may hold the proxy config (else the file itself is the config).
CONFIG_SECTIONS: tuple[str, ...] = ("proxy", "proxies", "train")

#: ``mixlab train`` flags (argparse dest) -> ProxyConfig fields.
TRAIN_FLAGS = {
    "mode": "mode",
    "preset": "preset",
    "base_model": "base_model",
    "steps": "max_steps",
    "tokens": "train_tokens",
    "lr": "lr",
    "batch_size": "batch_size",
    "block_size": "block_size",
    "seed": "seed",
    "device": "device",
    "merge": "merge",
    "threads": "num_threads",
}


def config_from_args(args: argparse.Namespace) -> ProxyConfig:
    """ProxyConfig from ``--config`` YAML, overridden by the explicit flags."""
    return stage_config(
        ProxyConfig, args.config, CONFIG_SECTIONS, flag_values(args, TRAIN_FLAGS), what="proxy"
    )


def _cmd_train(args: argparse.Namespace) -> int:
    from mixlab.proxies.trainer import train_proxy

    cfg = config_from_args(args)
    tokenizer = args.tokenizer or (cfg.base_model if cfg.mode == "dora" else None)
    if tokenizer is None:
        raise ValueError("--tokenizer is required in scratch mode")
    result = train_proxy(cfg, Path(args.data), tokenizer, Path(args.out), init_model=args.init_model)
    print(
        f"trained {cfg.mode} proxy: {result.steps} steps, {result.tokens} tokens in {result.seconds:.1f}s "
        f"({result.tokens_per_second:,.0f} tok/s), final loss {result.final_loss:.4f} -> {result.out_dir}"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "train",
        help="train one proxy (scratch tiny LM or DoRA on a base model) on a selection",
        description="Train one proxy model on a selection folder and save a Hugging Face model folder.",
    )
    p.add_argument(
        "--mode", choices=["scratch", "dora"], default=None, help="training mode (default scratch)"
    )
    p.add_argument(
        "--data", required=True, help="selection folder (data.jsonl/.parquet/LMFlow data.json) or file"
    )
    p.add_argument(
        "--tokenizer", default=None, help="tokenizer folder/file/name (dora default: the base model)"
    )
    p.add_argument("--out", required=True, help="output model folder")
    p.add_argument("--base-model", default=None, help="dora: Hugging Face causal LM folder or name")
    p.add_argument(
        "--init-model", default=None, help="start from this model folder instead of a fresh preset"
    )
    p.add_argument(
        "--preset", default=None, help="scratch model size preset (demo, tiny-1m, small-15m, medium-60m)"
    )
    add_config_argument(p, "proxy")
    p.add_argument("--steps", type=int, default=None, help="maximum optimizer steps")
    p.add_argument("--tokens", type=int, default=None, help="token budget (sets the number of steps)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--batch-size", type=int, default=None, help="blocks per micro-batch")
    p.add_argument("--block-size", type=int, default=None, help="tokens per block")
    p.add_argument("--seed", type=int, default=None, help="random seed")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="device (default auto)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--merge",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="dora: merge the adapter into the base and save the merged model (default on)",
    )
    p.set_defaults(func=_cmd_train)
