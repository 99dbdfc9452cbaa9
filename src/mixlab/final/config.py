"""Typed settings of the final run (the ``final`` section of a pipeline YAML).

The defaults are the data-filtering challenge's training recipe: DoRA via peft with r=16, alpha 32, dropout
0.1 on embed_tokens, q, k, v, o, gate, up, down and lm_head; learning rate 1e-5; one epoch; blocks of 1024
tokens; batch 24 per GPU; bf16 on GPU.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mixlab.proxies.config import DEFAULT_DORA_TARGETS, ProxyConfig


class FinalConfig(BaseModel):
    """The final run: DoRA on the base model over the final dataset, merged, evaluated before and after."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        True,
        description=(
            "train the base model on the final dataset, merge the adapter into DIR/final/model and score it "
            "before and after on every task (skipped when the dataset was not built)"
        ),
    )
    base_model: str | None = Field(
        None, description="Hugging Face causal LM (folder or hub name) to adapt; default: proxy.base_model"
    )
    lr: float = Field(1e-5, gt=0, description="peak learning rate (challenge recipe: 1e-5)")
    epochs: float = Field(1.0, gt=0, description="passes over the final dataset (challenge recipe: 1)")
    max_steps: int | None = Field(
        None, ge=1, description="stop after this many optimizer steps (caps `epochs`; None: the epochs)"
    )
    block_size: int = Field(1024, ge=2, description="tokens per training block (challenge recipe: 1024)")
    batch_size: int = Field(24, ge=1, description="blocks per micro-batch (challenge recipe: 24 per GPU)")
    grad_accum: int = Field(1, ge=1, description="micro-batches accumulated per optimizer step")
    r: int = Field(16, ge=1, description="DoRA rank (challenge recipe: 16)")
    alpha: float = Field(32.0, gt=0, description="DoRA alpha, scaling = alpha / r (challenge recipe: 32)")
    dropout: float = Field(
        0.1, ge=0, lt=1, description="dropout on the adapter input (challenge recipe: 0.1)"
    )
    target_modules: list[str] = Field(
        default_factory=lambda: list(DEFAULT_DORA_TARGETS),
        description="modules the DoRA adapter wraps (challenge recipe: embeddings, attention, MLP, head)",
    )
    warmup_steps: int = Field(0, ge=0, description="linear warmup steps to the peak learning rate")
    schedule: Literal["constant", "cosine"] = Field(
        "cosine", description="learning-rate schedule after warmup"
    )
    dtype: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="compute precision: auto is bf16 autocast on GPU (the recipe's bf16), fp32 on CPU"
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when available, else cpu")
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads (None: torch's default)")
    seed: int | None = Field(
        None, description="seed of the adapter and the data order (None: the pipeline's)"
    )
    evaluate: bool = Field(
        True, description="score the base model (before) and the merged model (after) on every task"
    )

    def proxy_config(self, base_model: str, seed: int) -> ProxyConfig:
        """The trainer's config of this recipe (the adapter is merged into the saved model)."""
        return ProxyConfig(
            mode="dora",
            base_model=base_model,
            lr=self.lr,
            epochs=self.epochs,
            max_steps=self.max_steps,
            block_size=self.block_size,
            batch_size=self.batch_size,
            grad_accum=self.grad_accum,
            r=self.r,
            alpha=self.alpha,
            dropout=self.dropout,
            target_modules=list(self.target_modules),
            warmup_steps=self.warmup_steps,
            schedule=self.schedule,
            dtype=self.dtype,
            device=self.device,
            num_threads=self.num_threads,
            seed=seed if self.seed is None else self.seed,
            merge=True,
        )
