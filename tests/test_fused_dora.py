"""Fused DoRA forward and chunked head + cross-entropy: the same function as peft and as HF's logits + CE."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from mixlab.proxies import fused_loss
from mixlab.proxies.config import DEFAULT_DORA_TARGETS
from mixlab.proxies.fused_dora import fuse_dora, is_fused, unfuse_dora
from mixlab.proxies.fused_loss import fused_causal_lm_loss

torch.set_num_threads(1)
VOCAB = 300


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96
    )
    return LlamaForCausalLM(cfg)


def dora(model: LlamaForCausalLM, dropout: float = 0.1) -> torch.nn.Module:
    """peft DoRA on every challenge target, adapters moved away from their zero init so B != 0."""
    peft_model = get_peft_model(
        model,
        LoraConfig(
            r=8, lora_alpha=16, lora_dropout=dropout, use_dora=True, target_modules=list(DEFAULT_DORA_TARGETS)
        ),
    )
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in peft_model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return peft_model


def reference_loss(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=ids, use_cache=False).logits
    targets = F.pad(ids[:, 1:], (0, 1), value=-100)
    return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)


def grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


def assert_same_grads(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and a
    for name, value in a.items():
        torch.testing.assert_close(value, b[name], atol=1e-6, rtol=1e-4, msg=name)


@pytest.fixture()
def ids() -> torch.Tensor:
    return torch.randint(0, VOCAB, (3, 17), generator=torch.Generator().manual_seed(2))


def test_fuse_covers_every_dora_layer_and_unfuse_restores() -> None:
    model = dora(tiny_llama())
    n = fuse_dora(model)
    assert n == 2 * 7 + 2  # 7 projections per layer, embed_tokens, lm_head
    assert fuse_dora(model) == n  # idempotent
    assert is_fused(model.get_base_model().lm_head)
    assert unfuse_dora(model) == n and not is_fused(model.get_base_model().lm_head)


@pytest.mark.parametrize("training", [False, True])
def test_fused_forward_equals_peft_outputs_and_gradients(training: bool, ids: torch.Tensor) -> None:
    peft_model = dora(tiny_llama())
    fused = copy.deepcopy(peft_model)
    fuse_dora(fused)
    peft_model.train(training)
    fused.train(training)
    torch.manual_seed(5)  # same seed: the dropout masks are drawn in the same order by the same modules
    ref = reference_loss(peft_model, ids)
    ref.backward()
    torch.manual_seed(5)
    out = reference_loss(fused, ids)
    out.backward()
    assert out.item() == pytest.approx(ref.item(), abs=1e-6)
    assert_same_grads(grads(peft_model), grads(fused))


@pytest.mark.parametrize("training", [False, True])
def test_chunked_head_loss_equals_logits_cross_entropy_for_dora(
    training: bool, ids: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fused_loss, "CHUNK_ELEMENTS", VOCAB * 7)  # several chunks, the last one partial
    peft_model = dora(tiny_llama())
    fused = copy.deepcopy(peft_model)
    fuse_dora(fused)
    peft_model.train(training)
    fused.train(training)
    torch.manual_seed(5)
    ref = reference_loss(peft_model, ids)
    ref.backward()
    torch.manual_seed(5)
    out = fused_causal_lm_loss(fused, ids)
    assert out is not None
    out.backward()
    assert out.item() == pytest.approx(ref.item(), abs=1e-5)
    assert_same_grads(grads(peft_model), grads(fused))


def test_chunked_head_loss_for_a_trainable_plain_head(
    ids: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fused_loss, "CHUNK_ELEMENTS", VOCAB * 5)
    model = tiny_llama()
    twin = copy.deepcopy(model)
    ref = reference_loss(model, ids)
    ref.backward()
    out = fused_causal_lm_loss(twin, ids)
    assert out is not None
    out.backward()
    assert out.item() == pytest.approx(ref.item(), abs=1e-5)
    assert_same_grads(grads(model), grads(twin))  # includes lm_head.weight and the embeddings


def test_unsupported_heads_fall_back(ids: torch.Tensor) -> None:
    model = tiny_llama()
    model.config.final_logit_softcapping = 30.0  # a head transform the chunked path does not apply
    assert fused_causal_lm_loss(model, ids) is None
    unfused = dora(tiny_llama())  # peft's own forward: not the fused layer
    assert fused_causal_lm_loss(unfused, ids) is None


def test_trainer_fused_and_unfused_give_the_same_loss_curve_and_adapter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train_proxy with the fused paths on and off: same losses step by step, same merged model."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from mixlab.proxies.config import ProxyConfig
    from mixlab.proxies.trainer import train_proxy

    texts = [f"document {i} says " + " ".join(f"w{(i * j) % 97}" for j in range(60)) for i in range(40)]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        texts, trainers.WordLevelTrainer(special_tokens=["<unk>", "<s>", "</s>", "<pad>"])
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.save_pretrained(tmp_path / "tok")
    base = tiny_llama()
    base.resize_token_embeddings(len(fast))
    base.save_pretrained(tmp_path / "base")
    monkeypatch.setattr(fused_loss, "CHUNK_ELEMENTS", 4 * len(fast) * 16)

    common = {"mode": "dora", "base_model": str(tmp_path / "base"), "block_size": 32, "batch_size": 4}
    common |= {"max_steps": 6, "lr": 1e-2, "warmup_steps": 0, "num_threads": 1}
    fast_run = train_proxy(ProxyConfig(**common), texts, str(tmp_path / "tok"), tmp_path / "fused")
    slow_run = train_proxy(
        ProxyConfig(**common, fused_dora=False, fused_loss=False),
        texts,
        str(tmp_path / "tok"),
        tmp_path / "peft",
    )
    assert fast_run.losses == pytest.approx(slow_run.losses, abs=1e-4)
    assert fast_run.losses[-1] < fast_run.losses[0]
    a = AutoModelForCausalLM.from_pretrained(tmp_path / "fused").state_dict()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "peft").state_dict()
    for name, value in a.items():
        torch.testing.assert_close(value, b[name], atol=1e-4, rtol=1e-3, msg=name)
    reloaded = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tmp_path / "base"), tmp_path / "fused" / "adapter"
    )
    assert reloaded is not None  # the fused trainer's adapter is a normal peft adapter
