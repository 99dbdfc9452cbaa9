"""Typed configuration of proxy training: tiny models from scratch, or DoRA continued pretraining.

Fields left at ``None`` take a default that depends on ``mode`` (see :data:`MODE_DEFAULTS`): a tiny model
trained from scratch wants a large learning rate and weight decay, while the DoRA recipe of the
data-filtering challenge (r=16, alpha 32, dropout 0.1, lr 1e-5, block 1024, one epoch) wants neither.
After validation every such field holds a concrete value.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: The challenge's DoRA targets: every linear layer of a Llama block plus the embeddings and the head.
DEFAULT_DORA_TARGETS: tuple[str, ...] = (
    "embed_tokens",
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    "lm_head",
)

#: Defaults filled in for fields left as ``None``, per mode.
MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "scratch": {
        "lr": 1e-3,
        "weight_decay": 0.1,
        "schedule": "cosine",
        "warmup_steps": 20,
        "adam_beta2": 0.95,
    },
    "dora": {"lr": 1e-5, "weight_decay": 0.0, "schedule": "cosine", "warmup_steps": 0, "adam_beta2": 0.999},
}


class ProxyConfig(BaseModel):
    """How one proxy model is trained on one selection (used by ``mixlab train`` and the swarm runner)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["scratch", "dora"] = Field(
        "scratch",
        description=(
            "`scratch`: a new Llama-style model built from `preset` (or `init_model`) trained on the data; "
            "`dora`: continued pretraining of `base_model` with a peft DoRA adapter"
        ),
    )
    preset: str = Field(
        "tiny-1m", description="model size preset for scratch mode (see mixlab.proxies.presets)"
    )
    base_model: str | None = Field(
        None,
        description="Hugging Face causal LM (folder or hub name) that dora mode adapts; required for dora",
    )
    lr: float | None = Field(None, gt=0, description="peak learning rate (default: scratch 1e-3, dora 1e-5)")
    min_lr_ratio: float = Field(
        0.1, ge=0.0, le=1.0, description="cosine schedule: final learning rate as a fraction of the peak"
    )
    schedule: Literal["constant", "cosine"] | None = Field(
        None, description="learning-rate schedule after warmup (default cosine)"
    )
    warmup_steps: int | None = Field(
        None, ge=0, description="linear warmup steps from 0 to the peak rate (default: scratch 20, dora 0)"
    )
    max_steps: int | None = Field(
        None, ge=1, description="stop after this many optimizer steps (caps `train_tokens` and `epochs`)"
    )
    train_tokens: int | None = Field(
        None,
        ge=1,
        description=(
            "token budget per proxy: steps = ceil(train_tokens / (batch_size * grad_accum * block_size)); "
            "the data is repeated (reshuffled each pass) when it holds fewer tokens. Unset: `epochs` passes"
        ),
    )
    epochs: float = Field(
        1.0, gt=0, description="passes over the packed data when neither train_tokens nor max_steps is set"
    )
    batch_size: int = Field(8, ge=1, description="blocks per micro-batch")
    grad_accum: int = Field(1, ge=1, description="micro-batches accumulated per optimizer step")
    block_size: int = Field(
        1024, ge=2, description="tokens per training block (documents packed, EOS-separated)"
    )
    add_bos: bool = Field(
        False, description="prepend the tokenizer's BOS token to every document when packing"
    )
    grad_clip: float | None = Field(
        1.0, gt=0, description="clip the global gradient norm to this (None: off)"
    )
    weight_decay: float | None = Field(
        None, ge=0, description="AdamW weight decay on matrices (default: scratch 0.1, dora 0.0)"
    )
    adam_beta1: float = Field(0.9, ge=0, lt=1, description="AdamW beta1")
    adam_beta2: float | None = Field(
        None, ge=0, lt=1, description="AdamW beta2 (default: scratch 0.95, dora 0.999)"
    )
    adam_eps: float = Field(1e-8, gt=0, description="AdamW epsilon")
    seed: int = Field(
        0, description="seed of model initialisation, adapter initialisation, dropout and data order"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="`auto`: cuda when available, else cpu"
    )
    dtype: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="compute precision: `auto` is bf16 autocast on GPU and fp32 on CPU; weights stay fp32",
    )
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads (None: leave torch's default)")
    fused_dora: bool = Field(
        True,
        description="evaluate peft's DoRA layers with mixlab's fused forward (same function, fewer passes; "
        "see mixlab.proxies.fused_dora); false runs peft's own forward",
    )
    fused_loss: bool = Field(
        True,
        description="compute the output head and cross-entropy chunk by chunk without materialising the "
        "logits (mixlab.proxies.fused_loss; fp32 only, so not under GPU autocast); false uses the model's logits",
    )
    compile: bool = Field(False, description="torch.compile the model (GPU only; ignored on CPU)")
    check_every: int = Field(
        10, ge=1, description="check the loss for NaN/inf every this many steps (each check syncs the GPU)"
    )
    r: int = Field(16, ge=1, description="DoRA rank")
    alpha: float = Field(32.0, gt=0, description="DoRA alpha (scaling = alpha / r)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the adapter input")
    target_modules: list[str] = Field(
        default_factory=lambda: list(DEFAULT_DORA_TARGETS), description="module names the DoRA adapter wraps"
    )
    merge: bool = Field(
        True,
        description=(
            "dora: merge the adapter into the base (merge_and_unload) and save the merged model in the output "
            "folder (the adapter always goes to OUT/adapter); False saves only the adapter"
        ),
    )

    @model_validator(mode="after")
    def _fill_mode_defaults(self) -> ProxyConfig:
        for name, value in MODE_DEFAULTS[self.mode].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.mode == "dora" and not self.base_model:
            raise ValueError("mode 'dora' needs base_model (a Hugging Face model folder or name)")
        return self

    @property
    def tokens_per_step(self) -> int:
        """Tokens consumed by one optimizer step."""
        return self.batch_size * self.grad_accum * self.block_size
