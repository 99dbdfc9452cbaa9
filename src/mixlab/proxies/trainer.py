"""Train one proxy model on one selection: a tiny Llama from scratch, or DoRA on a Hugging Face causal LM.

The loop is deliberately lean: the data is tokenized and packed once into a contiguous int32 tensor
(no padding, no attention masks, no collator), batches are index gathers from it, the optimizer is
PyTorch's fused AdamW where available, the loss is checked for NaN/inf every ``check_every`` steps
(one device sync per check), and on GPU the forward runs under bf16 autocast with SDPA attention
(optionally ``torch.compile``). On CPU everything is fp32. Given the same config, data and thread count
the loss curve is identical from run to run.

Output folder (loadable with ``AutoModelForCausalLM.from_pretrained(out_dir)`` and lm-eval's ``hf`` model):
``config.json`` + ``model.safetensors`` (for dora: the adapter merged into the base), the tokenizer,
``adapter/`` (dora only: the peft adapter) and ``train_log.json``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mixlab.console import tqdm
from mixlab.pool.pool import atomic_write_text
from mixlab.proxies.config import ProxyConfig
from mixlab.proxies.fused_dora import fuse_dora
from mixlab.proxies.fused_loss import fused_causal_lm_loss
from mixlab.proxies.packing import pack_documents, read_selection_texts, resolve_special_ids
from mixlab.proxies.presets import build_model
from mixlab.tokenization import load_tokenizer

log = logging.getLogger(__name__)

TRAIN_LOG = "train_log.json"
ADAPTER_DIR = "adapter"


class DivergenceError(RuntimeError):
    """Training produced a non-finite (NaN or inf) loss."""


@dataclass
class TrainResult:
    """What one proxy training run produced."""

    out_dir: Path
    steps: int
    tokens: int
    """Tokens trained on (steps x batch x accumulation x block)."""
    seconds: float
    """Wall time of the training loop (tokenization, model loading and saving excluded)."""
    final_loss: float
    """Mean training loss over the last min(10, steps) steps."""
    losses: list[float] = field(default_factory=list)
    """Training loss (nats/token) of every optimizer step."""

    @property
    def tokens_per_second(self) -> float:
        """Training throughput."""
        return self.tokens / self.seconds if self.seconds > 0 else float("nan")


@dataclass(frozen=True)
class _Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None


def resolve_runtime(cfg: ProxyConfig) -> _Runtime:
    """Device and autocast precision for ``cfg`` (bf16 autocast on GPU by default, fp32 on CPU)."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    device = torch.device(
        "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
    )
    if cfg.dtype == "bf16":
        autocast: torch.dtype | None = torch.bfloat16
    elif cfg.dtype == "fp32":
        autocast = None
    else:
        autocast = torch.bfloat16 if device.type == "cuda" else None
    return _Runtime(device=device, autocast_dtype=autocast)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_dora_model(cfg: ProxyConfig, base: Any) -> Any:
    """Wrap ``base`` in a peft DoRA adapter as ``cfg`` describes; only adapter parameters stay trainable.

    Target modules missing from the model are an error naming them (peft would otherwise fail obscurely).
    """
    from peft import LoraConfig, get_peft_model

    names = {name.rsplit(".", 1)[-1] for name, _ in base.named_modules()}
    missing = [t for t in cfg.target_modules if t not in names]
    if missing:
        raise ValueError(f"DoRA target module(s) not found in the base model: {', '.join(missing)}")
    lora = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        use_dora=True,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(base, lora)


def _load_hf_model(name: str, runtime: _Runtime) -> tuple[Any, torch.dtype]:
    """Load a causal LM in fp32 (SDPA attention); also return the dtype it was stored in."""
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        hf_config = AutoConfig.from_pretrained(name)
    except Exception as exc:  # re-raised with the model named
        raise ValueError(f"cannot load model {name!r}: {exc}") from exc
    stored = getattr(hf_config, "dtype", None) or getattr(hf_config, "torch_dtype", None) or torch.float32
    if isinstance(stored, str):
        stored = getattr(torch, stored, torch.float32)
    model = AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32, attn_implementation="sdpa")
    return model, stored


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def make_optimizer(model: torch.nn.Module, cfg: ProxyConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW on the trainable parameters (decay on matrices only), fused when the device supports it."""
    kwargs: dict[str, Any] = {
        "lr": cfg.lr,
        "betas": (cfg.adam_beta1, cfg.adam_beta2),
        "eps": cfg.adam_eps,
    }
    groups = _param_groups(model, float(cfg.weight_decay or 0.0))
    try:
        return torch.optim.AdamW(groups, fused=True, **kwargs)
    except (RuntimeError, TypeError):  # fused kernels unavailable for this device/dtype
        return torch.optim.AdamW(groups, foreach=device.type == "cuda", **kwargs)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: ProxyConfig, total_steps: int) -> Any:
    """Linear warmup then constant or cosine decay to ``min_lr_ratio`` x the peak (transformers schedules)."""
    from transformers import get_constant_schedule_with_warmup, get_cosine_with_min_lr_schedule_with_warmup

    warmup = min(int(cfg.warmup_steps or 0), max(total_steps - 1, 0))
    if cfg.schedule == "constant":
        return get_constant_schedule_with_warmup(optimizer, num_warmup_steps=warmup)
    return get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, num_warmup_steps=warmup, num_training_steps=total_steps, min_lr_rate=cfg.min_lr_ratio
    )


def plan_steps(cfg: ProxyConfig, n_blocks: int) -> int:
    """Optimizer steps: from the token budget if set, else from ``epochs``; capped by ``max_steps``."""
    per_step = cfg.batch_size * cfg.grad_accum
    if cfg.train_tokens is not None:
        steps = math.ceil(cfg.train_tokens / cfg.tokens_per_step)
    elif cfg.max_steps is not None:
        steps = cfg.max_steps
    else:
        steps = max(1, math.floor(cfg.epochs * n_blocks / per_step))
    if cfg.max_steps is not None:
        steps = min(steps, cfg.max_steps)
    return max(1, steps)


def _batches(n_blocks: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Block indices, a fresh seeded permutation per pass over the data (passes are chained)."""
    gen = torch.Generator().manual_seed(seed)
    buf = torch.empty(0, dtype=torch.long)
    while True:
        while len(buf) < batch_size:
            buf = torch.cat([buf, torch.randperm(n_blocks, generator=gen)])
        yield buf[:batch_size]
        buf = buf[batch_size:]


def causal_lm_loss(model: Any, input_ids: torch.Tensor, fused: bool = False) -> torch.Tensor:
    """Mean next-token cross-entropy (nats/token) of ``input_ids`` (every position predicts the next).

    The targets are shifted instead of the logits (the last position gets ``ignore_index``), so the
    (tokens x vocabulary) logits are never copied. With ``fused`` the head and the loss run chunk by chunk
    (:func:`mixlab.proxies.fused_loss.fused_causal_lm_loss`) where the model supports it.
    """
    if fused:
        loss = fused_causal_lm_loss(model, input_ids)
        if loss is not None:
            return loss
    logits = model(input_ids=input_ids, use_cache=False).logits
    targets = F.pad(input_ids[:, 1:], (0, 1), value=-100)
    return F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=-100)


def _write_log(out_dir: Path, payload: dict[str, Any]) -> None:
    atomic_write_text(out_dir / TRAIN_LOG, json.dumps(payload, indent=1, default=str))


def train_proxy(
    cfg: ProxyConfig,
    data: Path | Sequence[str],
    tokenizer_spec: str,
    out_dir: Path,
    init_model: str | None = None,
) -> TrainResult:
    """Train one proxy on ``data`` (a selection folder/file or a list of texts) and save it to ``out_dir``.

    scratch: a new model of ``cfg.preset`` (or the full model ``init_model``, trained further);
    dora: a DoRA adapter on ``cfg.base_model`` (``init_model`` overrides it), saved under
    ``out_dir/adapter`` and, with ``cfg.merge``, merged into the base and saved as ``out_dir``'s model.
    Raises :class:`DivergenceError` (after writing ``train_log.json`` with status ``diverged``) when the
    loss becomes NaN or inf.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    runtime = resolve_runtime(cfg)
    tokenizer = load_tokenizer(str(tokenizer_spec))
    special = resolve_special_ids(tokenizer)
    texts = read_selection_texts(Path(data)) if isinstance(data, (str, Path)) else list(data)
    blocks = pack_documents(texts, tokenizer, cfg.block_size, cfg.add_bos)
    n_blocks = int(blocks.shape[0])
    vocab_size = len(tokenizer)

    seed_everything(cfg.seed)
    stored_dtype = torch.float32
    if cfg.mode == "scratch":
        if init_model:
            model, stored_dtype = _load_hf_model(init_model, runtime)
        else:
            model = build_model(cfg.preset, vocab_size, special.bos, special.eos, special.pad)
    else:
        base_name = init_model or cfg.base_model
        assert base_name is not None  # guaranteed by ProxyConfig validation
        base, stored_dtype = _load_hf_model(base_name, runtime)
        seed_everything(cfg.seed)
        model = build_dora_model(cfg, base)
        if cfg.fused_dora:
            fuse_dora(model)
    model_vocab = int(model.get_input_embeddings().weight.shape[0])
    max_id = int(blocks.max())
    if max_id >= model_vocab:
        raise ValueError(
            f"tokenizer {tokenizer_spec!r} produces id {max_id} but the model has only {model_vocab} embeddings"
        )
    model.to(runtime.device)
    model.train()
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_total = sum(p.numel() for p in model.parameters())

    steps = plan_steps(cfg, n_blocks)
    optimizer = make_optimizer(model, cfg, runtime.device)
    scheduler = make_scheduler(optimizer, cfg, steps)
    forward_model = model
    if cfg.compile and runtime.device.type == "cuda":
        forward_model = torch.compile(model)
    if runtime.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        blocks = blocks.pin_memory()
    params = [p for p in model.parameters() if p.requires_grad]
    order = _batches(n_blocks, cfg.batch_size, cfg.seed)
    check_every = 1 if runtime.device.type == "cpu" else cfg.check_every

    log_base: dict[str, Any] = {
        "mode": cfg.mode,
        "config": cfg.model_dump(mode="json"),
        "tokenizer": str(tokenizer_spec),
        "init_model": init_model,
        "device": str(runtime.device),
        "dtype": "bf16" if runtime.autocast_dtype is torch.bfloat16 else "fp32",
        "documents": len(texts),
        "blocks": n_blocks,
        "data_tokens": n_blocks * cfg.block_size,
        "planned_steps": steps,
        "trainable_params": n_trainable,
        "total_params": n_total,
    }
    losses: list[float] = []
    lrs: list[float] = []
    pending: list[torch.Tensor] = []

    def flush(step: int) -> None:
        if not pending:
            return
        values = torch.stack(pending).tolist()
        pending.clear()
        for i, v in enumerate(values):
            if not math.isfinite(v):
                bad_step = step - len(values) + i + 1
                losses.extend(values[: i + 1])
                msg = f"loss is {v} at step {bad_step}"
                _write_log(
                    out_dir,
                    {**log_base, "status": "diverged", "error": msg, "steps": len(losses), "losses": losses},
                )
                raise DivergenceError(msg)
        losses.extend(values)

    bar = tqdm(total=steps, desc=f"train {cfg.mode}", unit="step", leave=False)
    t_loop = time.perf_counter()
    for step in range(1, steps + 1):
        step_loss = torch.zeros((), device=runtime.device)
        for _ in range(cfg.grad_accum):
            idx = next(order)
            batch = blocks[idx].to(runtime.device, dtype=torch.long, non_blocking=True)
            with torch.autocast(
                runtime.device.type,
                dtype=runtime.autocast_dtype or torch.float32,
                enabled=runtime.autocast_dtype is not None,
            ):
                loss = causal_lm_loss(forward_model, batch, fused=cfg.fused_loss and forward_model is model)
            (loss / cfg.grad_accum).backward()
            step_loss += loss.detach() / cfg.grad_accum
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=True)
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        pending.append(step_loss)
        if step % check_every == 0 or step == steps:
            flush(step)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
        bar.update()
    flush(steps)
    if runtime.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t_loop
    bar.close()

    tokens = steps * cfg.tokens_per_step
    final_loss = float(np.mean(losses[-min(10, len(losses)) :]))
    model.eval()
    _save(model, cfg, tokenizer, out_dir, stored_dtype)
    result = TrainResult(
        out_dir=out_dir, steps=steps, tokens=tokens, seconds=seconds, final_loss=final_loss, losses=losses
    )
    _write_log(
        out_dir,
        {
            **log_base,
            "status": "ok",
            "error": "",
            "steps": steps,
            "tokens": tokens,
            "seconds": seconds,
            "total_seconds": time.perf_counter() - t_start,
            "tokens_per_second": result.tokens_per_second,
            "final_loss": final_loss,
            "losses": losses,
            "lr": lrs,
        },
    )
    log.info(
        "trained %s proxy: %d steps, %d tokens in %.1fs (%.0f tok/s), final loss %.4f -> %s",
        cfg.mode,
        steps,
        tokens,
        seconds,
        result.tokens_per_second,
        final_loss,
        out_dir,
    )
    return result


def _save(model: Any, cfg: ProxyConfig, tokenizer: Any, out_dir: Path, stored_dtype: torch.dtype) -> None:
    """Save the model folder (merged for dora), the adapter (dora) and the tokenizer."""
    model = model.to("cpu")
    if cfg.mode == "dora":
        # the base embeddings are frozen, so the adapter need not carry copies of them
        model.save_pretrained(out_dir / ADAPTER_DIR, save_embedding_layers=False)
        tokenizer.save_pretrained(out_dir / ADAPTER_DIR)
        if cfg.merge:
            merged = model.merge_and_unload()
            merged.to(stored_dtype).save_pretrained(out_dir)
    else:
        model.to(stored_dtype).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
