"""Size presets of the Llama-style proxy models trained from scratch.

RegMix trained ~1M non-embedding-parameter proxies; Olmix argues that rankings of mixtures only become
reliable from ~15M. The presets below span that range (plus ``demo`` for tests and the demo world).
Non-embedding parameters exclude the token embeddings and the output head, whose size depends on the
vocabulary (``vocab_size * hidden`` each; the two are not tied).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelPreset:
    """Shape of a Llama-style decoder (SwiGLU MLP, RMSNorm, rotary positions, no biases)."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    num_kv_heads: int | None = None
    """Grouped-query attention heads (None: same as ``num_heads``)."""
    max_position_embeddings: int = 4096
    description: str = ""

    @property
    def non_embedding_params(self) -> int:
        """Parameters outside the embeddings and the output head (attention, MLP, norms)."""
        h = self.hidden_size
        kv = (self.num_kv_heads or self.num_heads) * (h // self.num_heads)
        attn = 2 * h * h + 2 * h * kv
        mlp = 3 * h * self.intermediate_size
        return self.num_layers * (attn + mlp + 2 * h) + h


#: Presets by name. Non-embedding parameter counts: demo 20,640; demo-base 328,320; tiny-1m 1,066,368;
#: small-15m 15,341,952; medium-60m 60,964,480.
PRESETS: dict[str, ModelPreset] = {
    "demo": ModelPreset(
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        intermediate_size=64,
        description="20,640 non-embedding params: tests and the embedded demo world",
    ),
    "demo-base": ModelPreset(
        hidden_size=128,
        num_layers=2,
        num_heads=4,
        intermediate_size=256,
        description="328,320 non-embedding params: the embedded demo's base model (trains in a minute on CPU)",
    ),
    "tiny-1m": ModelPreset(
        hidden_size=128,
        num_layers=5,
        num_heads=4,
        intermediate_size=384,
        description="1,066,368 non-embedding params: RegMix-sized proxy",
    ),
    "small-15m": ModelPreset(
        hidden_size=384,
        num_layers=8,
        num_heads=6,
        intermediate_size=1152,
        description="15,341,952 non-embedding params: the size Olmix recommends as a minimum",
    ),
    "medium-60m": ModelPreset(
        hidden_size=640,
        num_layers=12,
        num_heads=10,
        intermediate_size=1792,
        description="60,964,480 non-embedding params: larger proxy for GPU swarms",
    ),
}


def get_preset(name: str) -> ModelPreset:
    """The preset called ``name``; a ValueError lists the known names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r} (known: {', '.join(PRESETS)})") from None


def build_config(
    preset: str, vocab_size: int, bos_id: int | None, eos_id: int | None, pad_id: int | None
) -> Any:
    """A ``transformers.LlamaConfig`` for ``preset`` with the tokenizer's vocabulary and special ids."""
    from transformers import LlamaConfig

    p = get_preset(preset)
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be at least 2, got {vocab_size}")
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=p.hidden_size,
        intermediate_size=p.intermediate_size,
        num_hidden_layers=p.num_layers,
        num_attention_heads=p.num_heads,
        num_key_value_heads=p.num_kv_heads or p.num_heads,
        max_position_embeddings=p.max_position_embeddings,
        hidden_act="silu",
        rms_norm_eps=1e-5,
        initializer_range=0.02,
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        use_cache=True,
    )


def build_model(
    preset: str, vocab_size: int, bos_id: int | None, eos_id: int | None, pad_id: int | None
) -> Any:
    """A freshly initialised ``transformers.LlamaForCausalLM`` of size ``preset`` (fp32, SDPA attention).

    Initialisation draws from torch's global RNG: seed it (``torch.manual_seed``) for a reproducible model.
    """
    from transformers import LlamaForCausalLM

    config = build_config(preset, vocab_size, bos_id, eos_id, pad_id)
    config._attn_implementation = "sdpa"
    return LlamaForCausalLM(config)
