"""Quality scorers through the executor: perplexity (a tiny local Llama), embedding density and the
classifier, run by the quality stage over a multi-shard pool, combined into the score, the rules and the
buckets; reruns recompute nothing and a changed scorer recomputes only itself."""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mixlab.executors import LocalExecutor, Resources, read_stats
from mixlab.pool.pool import Pool, PoolError
from mixlab.quality.combine import Term, apply_rules, combined_score
from mixlab.quality.config import (
    ClassifierSettings,
    DensitySettings,
    FilterRule,
    PerplexitySettings,
    QualityConfig,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GPT2 = DATA / "tokenizers" / "gpt2" / "tokenizer.json"
REASONING = DATA / "tasks" / "reasoning.jsonl"


def _need_data() -> None:
    if not (DATA / "corpus").exists():
        pytest.skip(f"shared data not found at {DATA}")


class RecordingExecutor(LocalExecutor):
    """The local executor in this process, remembering the resources each map declared."""

    def __init__(self) -> None:
        super().__init__(1)
        self.resources: list[Resources] = []

    def _imap(
        self, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], resources: Resources
    ) -> Iterator[tuple[int, Any]]:
        self.resources.append(resources)
        yield from super()._imap(fn, calls, resources)


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 130 documents of the shared corpus in 4 shards, with a 2-domain ``domains`` attribute."""
    from mixlab.pool.ingest import ingest

    _need_data()
    rng = random.Random(7)
    rows: list[dict[str, Any]] = []
    for f in sorted((DATA / "corpus").glob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            recs = [json.loads(line) for line in fh]
        short = [r for r in recs if len(r["text"]) <= 3000]
        rows.extend(rng.sample(short, min(10, len(short))))
    src = tmp_path_factory.mktemp("in") / "docs.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    root = tmp_path_factory.mktemp("pool") / "pool"
    pool = ingest([src], root, tokenizer=str(GPT2), shard_docs=40)
    code = {"cpython_stdlib", "humaneval", "python_docs", "bfcl"}
    for shard in pool.shards:
        src_col = pool.read_shard(shard, ["source"]).column("source").to_pylist()
        pool.write_attr(
            "domains", shard, pa.table({"domain": ["code" if s in code else "text" for s in src_col]})
        )
    return root


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama and its BPE tokenizer saved as a Hugging Face folder (safetensors)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("llama")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(["the cat sat on the mat", "def f(x): return x + 1", "hello world"] * 20, trainer)
    tok.save(str(out / "tok.json"))
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_file=str(out / "tok.json"),
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    hf_tok.save_pretrained(out)
    (out / "tok.json").unlink()
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(hf_tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=128,
    )
    LlamaForCausalLM(cfg).save_pretrained(out, safe_serialization=True)
    assert (out / "model.safetensors").exists()
    return out


def _config(llama: Path, **over: Any) -> QualityConfig:
    base: dict[str, Any] = {
        "perplexity": PerplexitySettings(
            model=str(llama), max_length=32, batch_size=16, weight=1.0, threads=1
        ),
        "density": DensitySettings(enabled=True, max_seq_length=32, k=5, n_reference=60, weight=0.5),
        "classifier": ClassifierSettings(
            positive=[str(REASONING)], n_negative=40, n_features=4096, weight=1.0
        ),
        "extra_filters": [
            FilterRule(name="perplexity_high", signal="perplexity", max_quantile=0.9),
            FilterRule(name="density_outlier", signal="density", max_quantile=0.95, per_domain=False),
        ],
    }
    base.update(over)
    return QualityConfig(**base)


SCORER_ATTRS = ("perplexity", "density_embeddings", "density", "quality_classifier")


def test_scorers_run_through_executor_and_feed_score_rules_buckets(pool_dir: Path, llama_dir: Path) -> None:
    from mixlab.quality.density import knn_to_reference, read_embeddings
    from mixlab.quality.perplexity import PerplexityScorer
    from mixlab.quality.stage import score_quality, score_terms

    pool = Pool.open(pool_dir)
    assert len(pool.shards) == 4
    config = _config(llama_dir)
    ex = RecordingExecutor()
    summary = score_quality(pool, config, executor=ex)

    # every scorer ran on every shard, one attribute each (plus density's embeddings), with stats
    assert summary["scorers_computed"] == {a: pool.shards for a in SCORER_ATTRS}
    for attr in SCORER_ATTRS:
        stats = read_stats(pool, attr)
        assert stats is not None and stats["totals"]["documents"] == pool.n_docs() > 100
    # resources declared per shard: signals, perplexity, embeddings, density, classifier
    assert len(ex.resources) == 5 and all(r.cpus == 1 and r.gpus == 0 for r in ex.resources)

    texts = pool.read_docs(["text"])["text"].tolist()
    ppl = pool.read_attr("perplexity")["perplexity"].to_numpy()
    direct = PerplexityScorer(str(llama_dir), max_length=32, batch_size=8, device="cpu").score(texts)
    np.testing.assert_allclose(ppl, direct, rtol=1e-4)
    assert np.isfinite(ppl).all() and (ppl > 1).all()

    # density: the 60-document hashed reference sample, each document never its own neighbour
    with np.load(pool.attr_dir("density") / "reference.npz") as ref:
        ref_ids, ref_emb = ref["ids"].astype(object), ref["embeddings"].astype(np.float32)
    assert len(ref_ids) == 60 and len(set(ref_ids.tolist())) == 60
    ids, emb = zip(*(read_embeddings(pool, s) for s in pool.shards), strict=True)
    all_ids, all_emb = np.concatenate(ids), np.vstack(emb)
    dens = pool.read_attr("density")["density"].to_numpy()
    np.testing.assert_allclose(dens, knn_to_reference(all_emb, all_ids, ref_emb, ref_ids, 5))
    assert all_emb.shape == (pool.n_docs(), 384) and (dens > 0).all()
    clf = pool.read_attr("quality_classifier")["classifier"].to_numpy()
    assert ((clf > 0) & (clf < 1)).all()

    # rules on scorer signals, quantiles per domain (perplexity) or over the pool (density)
    q = pool.read_attr("quality")
    domains = pool.read_attr("domains")["domain"].to_numpy(dtype=object)
    for d in ("code", "text"):
        m = domains == d
        hi = np.nanquantile(ppl[m], 0.9)
        flagged = m & (q["quality_reason"].to_numpy() == "perplexity_high")
        assert flagged.any() and (ppl[flagged] > hi).all()
    out = q["quality_reason"].to_numpy() == "density_outlier"
    assert (dens[out] > np.quantile(dens, 0.95)).all()
    assert summary["by_reason"]["perplexity_high"] == int((q["quality_reason"] == "perplexity_high").sum())

    # the score combines heuristics and all three scorers (with their directions); buckets follow it
    frame = pool.read_attr("quality_signals").assign(perplexity=ppl, density=dens, classifier=clf)
    terms = score_terms(config)
    assert [t for t in terms if t.column in {"perplexity", "density", "classifier"}] == [
        Term("perplexity", 1.0, False, True),
        Term("density", 0.5, False, False),
        Term("classifier", 1.0, True, False),
    ]
    np.testing.assert_array_equal(q["quality_score"].to_numpy(), combined_score(frame, terms))
    scorers_only = _config(llama_dir, score_weights={}, extra_filters=[])
    score_quality(pool, scorers_only, executor=ex)
    q2 = pool.read_attr("quality")
    s2 = q2["quality_score"].to_numpy()
    expected = (1.0 * (1 - pd.Series(ppl).rank(pct=True)) + 0.5 * (1 - pd.Series(dens).rank(pct=True))) / 2.5
    expected += pd.Series(clf).rank(pct=True) / 2.5
    np.testing.assert_allclose(s2, expected.to_numpy(), rtol=1e-12)
    for d in ("code", "text"):
        m = domains == d
        b, s = q2["quality_bucket"].to_numpy()[m], s2[m]
        assert all(
            s[b == k].max() <= s[b == k + 1].min() for k in range(4) if (b == k).any() and (b == k + 1).any()
        )


def test_rerun_recomputes_nothing_and_one_change_only_its_scorer(pool_dir: Path, llama_dir: Path) -> None:
    from mixlab.quality.stage import score_quality

    pool = Pool.open(pool_dir)
    ex = LocalExecutor(1)
    score_quality(pool, _config(llama_dir), executor=ex)
    none: dict[str, list[str]] = {a: [] for a in SCORER_ATTRS}
    again = score_quality(pool, _config(llama_dir), executor=ex)
    assert again["scorers_computed"] == none and again["signals_computed"] == []

    # weights, directions, batch size and threads change the score, never a scorer's values
    calm = _config(
        llama_dir,
        perplexity=PerplexitySettings(
            model=str(llama_dir), max_length=32, batch_size=3, weight=2.0, threads=2
        ),
        density=DensitySettings(enabled=True, max_seq_length=32, k=5, n_reference=60, direction="higher"),
    )
    assert score_quality(pool, calm, executor=ex)["scorers_computed"] == none

    before = {a: pool.attr_target(a) for a in SCORER_ATTRS}
    k7 = _config(llama_dir, density=DensitySettings(enabled=True, max_seq_length=32, k=7, n_reference=60))
    changed = score_quality(pool, k7, executor=ex)["scorers_computed"]
    assert changed == {**none, "density": pool.shards}  # embeddings kept, others untouched
    after = {a: pool.attr_target(a) for a in SCORER_ATTRS}
    assert {a for a in SCORER_ATTRS if before[a] != after[a]} == {"density"}

    short = _config(
        llama_dir,
        perplexity=PerplexitySettings(model=str(llama_dir), max_length=16, weight=1.0),
        density=DensitySettings(enabled=True, max_seq_length=32, k=7, n_reference=60),
    )
    assert score_quality(pool, short, executor=ex)["scorers_computed"] == {**none, "perplexity": pool.shards}


def test_cli_perplexity_density_share_the_stage(
    pool_dir: Path, llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mixlab.cli import main
    from mixlab.quality.stage import score_quality

    pool = Pool.open(pool_dir)
    ppl16 = PerplexitySettings(model=str(llama_dir), max_length=16)
    score_quality(pool, _config(llama_dir, perplexity=ppl16), executor=LocalExecutor(1))
    # the command runs the same stage code: with the stage's settings it finds every shard done
    assert main(["perplexity", str(pool_dir), "--model", str(llama_dir), "--max-length", "16"]) == 0
    assert "0 of 4 shard(s) computed" in capsys.readouterr().out
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(
        "quality:\n"
        "  density: {enabled: true, max_seq_length: 32, k: 3, n_reference: 60}\n"
        "  extra_filters:\n"
        "    - {name: ppl_top, signal: perplexity, max_quantile: 0.5, per_domain: false}\n",
        encoding="utf-8",
    )
    assert main(["density", str(pool_dir), "--config", str(cfg)]) == 0
    assert "4 of 4 shard(s) computed" in capsys.readouterr().out  # k changed: density redone
    # `mixlab quality` with a rule on perplexity uses the attribute the command wrote
    assert main(["quality", str(pool_dir), "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "filtered (ppl_top):" in out
    assert pool.attr_target("density") is not None


def test_missing_scorer_attribute_names_how_to_compute_it(tmp_path: Path) -> None:
    from mixlab.pool.ingest import ingest
    from mixlab.quality.stage import score_quality

    _need_data()
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps({"text": f"document number {i} about cats"}) + "\n" for i in range(6)))
    pool = ingest([src], tmp_path / "pool", tokenizer=str(GPT2), shard_docs=3)
    bad = QualityConfig(extra_filters=[FilterRule(name="p", signal="perplexity", max=10)])
    with pytest.raises(PoolError, match="quality.perplexity.model"):
        score_quality(pool, bad)
    with pytest.raises(PoolError, match="density.enabled"):
        score_quality(pool, QualityConfig(score_weights={"density": -1.0}))


def test_combine_rank_zscore_per_domain_and_quantile_rules() -> None:
    rng = np.random.default_rng(0)
    dom = np.array(["a"] * 50 + ["b"] * 50, dtype=object)
    frame = pd.DataFrame(
        {"x": np.r_[rng.normal(0, 1, 50), rng.normal(10, 1, 50)], "y": rng.normal(0, 1, 100)}
    )
    up = [Term("x", 1.0, True)]
    glob, per = combined_score(frame, up), combined_score(frame, up, domains=dom)
    assert glob[dom == "b"].min() > glob[dom == "a"].max()  # global ranks: b above a
    assert per[dom == "a"].max() == per[dom == "b"].max() == 1.0  # per-domain ranks: each spans (0, 1]
    z = combined_score(frame, up, "zscore", dom)
    assert abs(z[dom == "a"].mean()) < 1e-9 and abs(z[dom == "b"].mean()) < 1e-9
    down = combined_score(frame, [Term("x", 1.0, False)], "zscore", dom)
    np.testing.assert_allclose(down, -z)
    logz = combined_score(
        pd.DataFrame({"p": [1.0, 10.0, 100.0, np.nan]}), [Term("p", 1, False, True)], "zscore"
    )
    np.testing.assert_allclose(logz, [np.sqrt(1.5), 0.0, -np.sqrt(1.5), 0.0])
    with pytest.raises(ValueError, match="unknown signal"):
        combined_score(frame, [Term("nope", 1.0, True)])

    rule = FilterRule(name="top", signal="x", max_quantile=0.8)
    per_dom = apply_rules(frame, [rule], dom).to_numpy() == "top"
    assert per_dom[dom == "a"].sum() == per_dom[dom == "b"].sum() == 10
    pooled = apply_rules(frame, [rule.model_copy(update={"per_domain": False})], dom).to_numpy() == "top"
    assert pooled.sum() == 20 and not pooled[dom == "a"].any()
    with pytest.raises(ValueError, match="needs min, max"):
        FilterRule(name="none", signal="x")


def test_scorer_registry_declares_resources_and_directions() -> None:
    from mixlab.quality.scorers import SCORERS, active_scorers

    assert {n: (s.attr, s.signal, s.direction) for n, s in SCORERS.items()} == {
        "perplexity": ("perplexity", "perplexity", "lower"),
        "density": ("density", "density", "lower"),
        "classifier": ("quality_classifier", "classifier", "higher"),
    }
    gpu = PerplexitySettings(model="m", threads=4, gpus=0.5, memory_gb=6)
    assert SCORERS["perplexity"].resources(gpu) == Resources(cpus=4, gpus=0.5, memory_gb=6)
    assert active_scorers(QualityConfig()) == []  # the default stays heuristics only
    on = QualityConfig(perplexity=gpu, density={"enabled": True})
    assert [s.name for s in active_scorers(on)] == ["perplexity", "density"]
