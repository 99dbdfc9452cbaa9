"""Proxy training: packing, scratch and DoRA trainers, determinism, NaN detection, swarm runner, CLI."""

from __future__ import annotations

import functools
import gzip
import json
import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from mixlab.cli import main
from mixlab.proxies.config import ProxyConfig
from mixlab.proxies.packing import SelectionFormatError, pack_documents, read_selection_texts
from mixlab.proxies.presets import PRESETS, build_model
from mixlab.proxies.swarm import DONE_MARKER, run_swarm
from mixlab.proxies.trainer import DivergenceError, TrainResult, build_dora_model, train_proxy
from mixlab.swarm import read_metrics
from mixlab.tokenization import load_tokenizer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def texts() -> list[str]:
    path = DATA / "corpus" / "wikitext2.jsonl.gz"
    if not path.exists():
        pytest.skip(f"shared data missing: {path}")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        docs = [json.loads(line)["text"][:1000] for _, line in zip(range(120), fh)]
    return docs


@pytest.fixture(scope="session")
def tok_dir(tmp_path_factory: pytest.TempPathFactory, texts: list[str]) -> str:
    """A real byte-level BPE tokenizer (512 ids) trained on the fly, saved as a transformers folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    out = tmp_path_factory.mktemp("tok")
    fast.save_pretrained(out)
    return str(out)


def tiny_cfg(**kw: object) -> ProxyConfig:
    base: dict[str, object] = {"preset": "demo", "block_size": 64, "batch_size": 4, "max_steps": 6}
    base.update({"lr": 3e-3, "warmup_steps": 1, "num_threads": 1})
    base.update(kw)
    return ProxyConfig(**base)  # type: ignore[arg-type]


# ---------------------------------------------------------------- packing


def test_pack_documents_eos_separators_block_count_and_bos(tok_dir: str) -> None:
    tok = load_tokenizer(tok_dir)
    docs = ["The cat sat on the mat.", "A second, longer document about history and science.", "Third one."]
    ids = [tok(d, add_special_tokens=False)["input_ids"] for d in docs]
    stream = [t for d in ids for t in (*d, tok.eos_token_id)]
    blocks = pack_documents(docs, tok, block_size=7, add_bos=False)
    assert blocks.shape == (len(stream) // 7, 7)
    assert blocks.dtype in (torch.int32, torch.int64)
    assert blocks.flatten().tolist() == stream[: blocks.numel()]
    assert (
        blocks.flatten().tolist().count(tok.eos_token_id)
        == stream[: blocks.numel()].count(tok.eos_token_id)
        >= 2
    )

    with_bos = [t for d in ids for t in (tok.bos_token_id, *d, tok.eos_token_id)]
    blocks = pack_documents(docs, tok, block_size=5, add_bos=True)
    assert blocks.shape[0] == len(with_bos) // 5
    assert blocks.flatten().tolist() == with_bos[: blocks.numel()]
    assert blocks[0, 0].item() == tok.bos_token_id

    with pytest.raises(ValueError, match="not enough text"):
        pack_documents(["hi"], tok, block_size=4096, add_bos=False)


def test_gpt2_tokenizer_json_without_declared_eos(texts: list[str]) -> None:
    spec = DATA / "tokenizers" / "gpt2" / "tokenizer.json"
    if not spec.exists():
        pytest.skip(f"shared data missing: {spec}")
    tok = load_tokenizer(str(spec))
    blocks = pack_documents(texts[:3], tok, block_size=32, add_bos=False)
    assert (blocks == 50256).any()  # <|endoftext|> found as the separator


def test_read_selection_formats_and_errors(tmp_path: Path) -> None:
    docs = ["first document", "second document", "third"]
    jl = tmp_path / "a"
    jl.mkdir()
    (jl / "data.jsonl").write_text(
        "".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(docs))
    )
    pqdir = tmp_path / "b"
    pqdir.mkdir()
    pq.write_table(pa.table({"id": ["0", "1", "2"], "text": docs}), pqdir / "data.parquet")
    lm = tmp_path / "c"
    lm.mkdir()
    (lm / "data.json").write_text(json.dumps({"type": "text_only", "instances": [{"text": t} for t in docs]}))
    for path in (jl, pqdir, lm, jl / "data.jsonl"):
        assert read_selection_texts(path) == docs

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": broken\n')
    with pytest.raises(SelectionFormatError, match=r"bad.jsonl: line 2"):
        read_selection_texts(bad)
    with pytest.raises(FileNotFoundError, match="selection folder holds none"):
        read_selection_texts(tmp_path)


# ---------------------------------------------------------------- presets


def test_preset_parameter_counts_match_models() -> None:
    for name, preset in PRESETS.items():
        with torch.device("meta"):
            model = build_model(name, vocab_size=1000, bos_id=0, eos_id=1, pad_id=2)
        embed = model.get_input_embeddings().weight.numel() + model.get_output_embeddings().weight.numel()
        non_embedding = sum(p.numel() for p in model.parameters()) - embed
        assert non_embedding == preset.non_embedding_params, name
        assert f"{non_embedding:,}" in preset.description
    assert 0.9e6 < PRESETS["tiny-1m"].non_embedding_params < 1.2e6
    assert 14e6 < PRESETS["small-15m"].non_embedding_params < 17e6
    with pytest.raises(ValueError, match="unknown model preset"):
        build_model("nope", 100, 0, 1, 2)


# ---------------------------------------------------------------- scratch training


def test_scratch_training_reduces_loss_and_saves_hf_folder(
    tmp_path: Path, tok_dir: str, texts: list[str]
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = tiny_cfg(max_steps=40, batch_size=8, warmup_steps=4)
    result = train_proxy(cfg, texts, tok_dir, tmp_path / "m")
    assert result.steps == 40 and len(result.losses) == 40
    assert result.tokens == 40 * 8 * 64
    assert result.losses[0] > math.log(512) - 0.5  # starts near uniform over the vocabulary
    assert sum(result.losses[-5:]) / 5 < sum(result.losses[:5]) / 5 - 0.5
    log = json.loads((tmp_path / "m" / "train_log.json").read_text())
    assert log["status"] == "ok" and log["losses"] == result.losses and log["tokens_per_second"] > 0
    assert (tmp_path / "m" / "model.safetensors").exists()
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    assert tok.eos_token == "</s>" and model.config.eos_token_id == tok.eos_token_id


def test_same_config_same_loss_curve(tmp_path: Path, tok_dir: str, texts: list[str]) -> None:
    cfg = tiny_cfg(max_steps=8)
    a = train_proxy(cfg, texts, tok_dir, tmp_path / "a")
    b = train_proxy(cfg, texts, tok_dir, tmp_path / "b")
    c = train_proxy(tiny_cfg(max_steps=8, seed=1), texts, tok_dir, tmp_path / "c")
    assert a.losses == b.losses
    assert a.losses != c.losses


def test_token_budget_repeats_data_and_sets_steps(tmp_path: Path, tok_dir: str, texts: list[str]) -> None:
    cfg = tiny_cfg(max_steps=None, train_tokens=5 * 4 * 64 + 1, schedule="constant")
    short = [t[:200] for t in texts[:3]]
    result = train_proxy(cfg, short, tok_dir, tmp_path / "m")  # fewer blocks than the budget needs
    assert result.steps == 6
    log = json.loads((tmp_path / "m" / "train_log.json").read_text())
    assert log["blocks"] * 64 < result.tokens
    assert log["lr"][1:] == [pytest.approx(3e-3)] * 5  # constant after one warmup step


def test_nan_loss_raises_divergence_error(tmp_path: Path, tok_dir: str, texts: list[str]) -> None:
    tok = load_tokenizer(tok_dir)
    torch.manual_seed(0)
    model = build_model("demo", len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight[0, 0] = float("nan")
    model.save_pretrained(tmp_path / "nan")
    with pytest.raises(DivergenceError, match="loss is nan at step 1"):
        train_proxy(tiny_cfg(), texts, tok_dir, tmp_path / "out", init_model=str(tmp_path / "nan"))
    log = json.loads((tmp_path / "out" / "train_log.json").read_text())
    assert log["status"] == "diverged" and "nan" in log["error"]


# ---------------------------------------------------------------- dora


def test_dora_trains_adapter_only_and_saves_merged_model(
    tmp_path: Path, tok_dir: str, texts: list[str]
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(tok_dir)
    torch.manual_seed(0)
    base = build_model("demo", len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    base.save_pretrained(tmp_path / "base")
    base_sd = {k: v.clone() for k, v in base.state_dict().items()}

    cfg = tiny_cfg(mode="dora", base_model=str(tmp_path / "base"), lr=1e-2, max_steps=10)
    assert (cfg.r, cfg.alpha, cfg.dropout) == (16, 32.0, 0.1) and "lm_head" in cfg.target_modules
    peft_model = build_dora_model(cfg, AutoModelForCausalLM.from_pretrained(tmp_path / "base"))
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("lora_magnitude_vector" in n for n in trainable)
    assert any("embed_tokens" in n for n in trainable) and any("lm_head" in n for n in trainable)

    result = train_proxy(cfg, texts, tok_dir, tmp_path / "out")
    assert result.losses[-1] < result.losses[0]
    log = json.loads((tmp_path / "out" / "train_log.json").read_text())
    assert log["trainable_params"] == sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert log["trainable_params"] < log["total_params"]

    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert not torch.equal(
        merged.state_dict()["model.layers.0.self_attn.q_proj.weight"],
        base_sd["model.layers.0.self_attn.q_proj.weight"],
    )
    reloaded = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tmp_path / "base"), tmp_path / "out" / "adapter"
    ).eval()
    ids = pack_documents(texts[:5], tok, block_size=32, add_bos=False)[:2].long()
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, reloaded(ids).logits, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(merged(ids).logits, base(ids).logits, atol=1e-3)


# ---------------------------------------------------------------- swarm


def write_selection(root: Path, texts: list[str], run: str, weights: dict[str, float]) -> Path:
    """make_data for tests: a selection of the first n texts, n growing with weight 'a'."""
    folder = root / run
    folder.mkdir(parents=True, exist_ok=True)
    n = 20 + int(60 * weights["a"])
    with (folder / "data.jsonl").open("w") as fh:
        for i, t in enumerate(texts[:n]):
            fh.write(json.dumps({"id": str(i), "text": t}) + "\n")
    return folder


def fake_train(fail: set[str], run: str, data: Path, run_dir: Path) -> TrainResult:
    """A train callable that counts its calls per run and fails for the runs in ``fail``."""
    calls = run_dir / "calls.txt"
    calls.write_text(calls.read_text() + "x" if calls.exists() else "x")
    if run in fail:
        raise RuntimeError(f"boom in {run}\nsecond line")
    return TrainResult(out_dir=run_dir, steps=1, tokens=10, seconds=0.1, final_loss=1.0, losses=[1.0])


def fake_evaluate(run: str, model_dir: Path) -> dict[str, float]:
    return {"task/acc": 0.25 + 0.1 * int(run[1:])}


def fake_data(run: str, weights: dict[str, float]) -> Path:
    return Path(".")


def test_swarm_skips_finished_runs_and_records_failures(tmp_path: Path) -> None:
    ratios = pd.DataFrame(
        {"a": [0.5, 0.2, 1.0], "b": [0.5, 0.8, 0.0]}, index=pd.Index(["r0", "r1", "r2"], name="run")
    )
    out, csv = tmp_path / "swarm", tmp_path / "metrics.csv"
    df = run_swarm(ratios, fake_data, functools.partial(fake_train, {"r1"}), fake_evaluate, out, csv)
    assert df.loc["r0", "status"] == "ok" and df.loc["r2", "status"] == "ok"
    assert (
        df.loc["r1", "status"] == "failed" and "RuntimeError: boom in r1 second line" == df.loc["r1", "error"]
    )
    assert df.loc["r2", "task/acc"] == pytest.approx(0.45) and math.isnan(df.loc["r1", "task/acc"])
    assert (out / "runs" / "r0" / DONE_MARKER).exists() and not (out / "runs" / "r1" / DONE_MARKER).exists()
    assert "boom" in (out / "runs" / "r1" / "error.log").read_text()

    df = run_swarm(ratios, fake_data, functools.partial(fake_train, set()), fake_evaluate, out, csv)
    calls = {r: (out / "runs" / r / "calls.txt").read_text() for r in ratios.index}
    assert calls == {"r0": "x", "r1": "xx", "r2": "x"}  # only the failed run was retried
    assert set(df["status"]) == {"ok"}
    assert pd.isna(df.loc["r1", "error"]) or df.loc["r1", "error"] == ""  # the old error is cleared

    (out / "runs" / "r2" / DONE_MARKER).unlink()  # an ok row without its marker is not finished
    run_swarm(ratios, fake_data, functools.partial(fake_train, set()), fake_evaluate, out, csv)
    assert (out / "runs" / "r2" / "calls.txt").read_text() == "xx"


def test_swarm_process_pool(tmp_path: Path) -> None:
    ratios = pd.DataFrame(
        {"a": [0.5, 0.2, 1.0], "b": [0.5, 0.8, 0.0]}, index=pd.Index(["r0", "r1", "r2"], name="run")
    )
    csv = tmp_path / "metrics.csv"
    df = run_swarm(
        ratios,
        fake_data,
        functools.partial(fake_train, {"r2"}),
        fake_evaluate,
        tmp_path / "s",
        csv,
        workers=2,
    )
    assert (
        df.loc["r0", "status"] == "ok"
        and df.loc["r1", "status"] == "ok"
        and df.loc["r2", "status"] == "failed"
    )
    assert read_metrics(csv).loc["r1", "task/acc"] == pytest.approx(0.35)


def test_swarm_with_real_trainer(tmp_path: Path, tok_dir: str, texts: list[str]) -> None:
    ratios = pd.DataFrame({"a": [0.0, 1.0], "b": [1.0, 0.0]}, index=pd.Index(["m0", "m1"], name="run"))
    make = functools.partial(write_selection, tmp_path / "sel", texts)
    df = run_swarm(
        ratios, make, tiny_cfg(max_steps=3), None, tmp_path / "s", tmp_path / "m.csv", tokenizer_spec=tok_dir
    )
    assert list(df["status"]) == ["ok", "ok"]
    assert (df["train/final_loss"] > 0).all() and (df["train/tokens"] == 3 * 4 * 64).all()
    assert (tmp_path / "s" / "runs" / "m1" / "model.safetensors").exists()


# ---------------------------------------------------------------- CLI


def test_cli_train_with_yaml_and_flag_overrides(tmp_path: Path, tok_dir: str, texts: list[str]) -> None:
    sel = write_selection(tmp_path, texts, "sel", {"a": 0.5})
    cfg_file = tmp_path / "proxy.yaml"
    cfg_file.write_text(
        "proxy:\n  preset: demo\n  block_size: 32\n  batch_size: 2\n  max_steps: 50\n  lr: 0.001\n"
    )
    rc = main(["train", "--data", str(sel), "--tokenizer", tok_dir, "--out", str(tmp_path / "out"),
               "--config", str(cfg_file), "--steps", "3", "--threads", "1"])  # fmt: skip
    assert rc == 0
    log = json.loads((tmp_path / "out" / "train_log.json").read_text())
    assert log["steps"] == 3 and log["config"]["block_size"] == 32 and log["config"]["lr"] == 0.001

    cfg_file.write_text("proxy:\n  preset: demo\n  block_size: [1\n")
    rc = main(
        [
            "train",
            "--data",
            str(sel),
            "--tokenizer",
            tok_dir,
            "--out",
            str(tmp_path / "o2"),
            "--config",
            str(cfg_file),
        ]
    )
    assert rc == 1
    rc = main(["train", "--mode", "dora", "--data", str(sel), "--out", str(tmp_path / "o3")])
    assert rc == 1  # dora without a base model: a one-line error
