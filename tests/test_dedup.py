"""Tests of the dedup stage: exact / near duplicates, clusters across shards, decontamination, CLI."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mixlab.cli import main
from mixlab.dedup.config import DecontamConfig, DedupConfig
from mixlab.dedup.decontam import TaskFileError, TaskIndex
from mixlab.dedup.minhash import estimate_jaccard, minhash_signatures
from mixlab.dedup.normalize import words
from mixlab.dedup.stage import SIGNATURE_ATTR, decontaminate_pool, dedup_pool
from mixlab.pool.ingest import ingest
from mixlab.pool.pool import Pool

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TOKENIZER = DATA / "tokenizers" / "gpt2" / "tokenizer.json"

needs_data = pytest.mark.skipif(not TOKENIZER.exists(), reason=f"shared data not found at {DATA}")


def _read_jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="module")
def corpus() -> dict[str, dict]:
    if not TOKENIZER.exists():
        pytest.skip(f"shared data not found at {DATA}")
    docs: dict[str, dict] = {}
    for path in sorted((DATA / "corpus").glob("*.jsonl.gz")):
        for d in _read_jsonl_gz(path):
            docs[d["id"]] = d
    return docs


def _make_pool(tmp_path: Path, docs: list[dict], shard_docs: int = 1000, name: str = "pool") -> Pool:
    src = tmp_path / f"{name}.jsonl"
    with src.open("w", encoding="utf-8") as fh:
        for d in docs:
            fh.write(json.dumps(d) + "\n")
    return ingest([src], tmp_path / name, tokenizer=str(TOKENIZER), shard_docs=shard_docs)


def _replace_words(text: str, k: int, seed: int) -> str:
    rng = random.Random(seed)
    toks = text.split(" ")
    for i in rng.sample(range(len(toks)), k):
        toks[i] = f"zzq{rng.randrange(10**6)}"
    return " ".join(toks)


def _real_texts(corpus: dict[str, dict], n: int, sources: tuple[str, ...], min_words: int = 60) -> list[str]:
    """Real corpus documents that are not duplicates of each other (distinct sources, long enough)."""
    rng = random.Random(0)
    pool = [d for d in corpus.values() if d["source"] in sources and len(words(d["text"])) >= min_words]
    return [d["text"] for d in rng.sample(pool, n)]


# -- MinHash ----------------------------------------------------------------------------------------------
def test_minhash_estimates_jaccard_and_is_deterministic() -> None:
    base = " ".join(f"w{i}" for i in range(200))
    half = " ".join(f"w{i}" for i in range(100, 300))
    sig = minhash_signatures([base, half, base.upper(), ""], num_perm=256, n=5, seed=3)
    assert sig.shape == (4, 256) and sig.dtype == np.uint32
    a = set(zip(*(range(i, 196 + i) for i in range(5)), strict=True))  # 196 shingles of base
    b = {tuple(x + 100 for x in s) for s in a}
    true = len(a & b) / len(a | b)  # 96 / 296
    assert abs(float(estimate_jaccard(sig[0], sig[1])) - true) < 0.1
    assert estimate_jaccard(sig[0], sig[2]) == 1.0  # case-folded words
    assert (sig[3] == 0xFFFFFFFF).all()
    again = minhash_signatures([base, half, base.upper(), ""], num_perm=256, n=5, seed=3)
    assert np.array_equal(sig, again)
    assert not np.array_equal(
        sig, minhash_signatures([base, half, base.upper(), ""], num_perm=256, n=5, seed=4)
    )


# -- dedup on small pools ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_pool(
    tmp_path_factory: pytest.TempPathFactory, corpus: dict[str, dict]
) -> tuple[Pool, dict[str, str]]:
    """24 distinct real documents, with an exact (case/whitespace) copy and a near copy placed far away
    (shard_docs=6: the copies land in other shards than their originals)."""
    texts = _real_texts(corpus, 24, ("wikitext2", "xquad", "gsm8k_train", "crd3"), min_words=80)
    docs = [{"id": f"orig-{i}", "text": t, "source": "orig"} for i, t in enumerate(texts)]
    docs.append(
        {"id": "exact-0", "text": "  " + texts[0].upper().replace(" ", "   \n ") + "\n", "source": "copy"}
    )
    docs.append({"id": "near-1", "text": _replace_words(texts[1], 3, seed=1), "source": "copy"})
    docs.append({"id": "exact-2", "text": texts[2], "source": "copy"})
    roles = {"exact-0": "orig-0", "near-1": "orig-1", "exact-2": "orig-2"}
    pool = _make_pool(tmp_path_factory.mktemp("small"), docs, shard_docs=6)
    return pool, roles


@needs_data
def test_dedup_finds_exact_and_near_across_shards(small_pool: tuple[Pool, dict[str, str]]) -> None:
    pool, roles = small_pool
    assert len(pool.shards) == 5
    summary = dedup_pool(pool, DedupConfig(), force=True)
    assert summary["duplicates"] == {"exact": 2, "near": 1}
    assert summary["clusters"] == 24 and summary["duplicate_clusters"] == 3
    df = pool.read_attr("dedup").set_index("id")
    for copy, orig in roles.items():
        assert df.loc[copy, "dup_cluster"] == orig  # the original (earliest in pool order) represents
        assert not df.loc[copy, "dup_keep"] and df.loc[orig, "dup_keep"]
        assert df.loc[copy, "dup_size"] == 2
    assert df.loc["exact-0", "dup_kind"] == "exact" and df.loc["near-1", "dup_kind"] == "near"
    assert 0.5 < df.loc["near-1", "dup_jaccard"] < 1.0
    # different documents are not merged: every other original is a singleton representing itself
    others = df.drop(index=[*roles, *roles.values()])
    assert others["dup_keep"].all() and (others["dup_size"] == 1).all() and (others["dup_kind"] == "").all()
    assert (others["dup_cluster"] == others.index).all()
    # exactly one kept document per cluster
    assert df.groupby("dup_cluster")["dup_keep"].sum().eq(1).all()
    # the copies live in other shards than their originals
    shard_of = {i: s for s in pool.shards for i in pool.read_shard(s, ["id"]).column("id").to_pylist()}
    assert all(shard_of[c] != shard_of[o] for c, o in roles.items())


@needs_data
def test_dedup_rerun_skips_and_is_deterministic(small_pool: tuple[Pool, dict[str, str]]) -> None:
    pool, _ = small_pool
    dedup_pool(pool, DedupConfig(), force=True)
    first = pool.read_attr("dedup")
    done = {p: p.stat().st_mtime_ns for p in pool.attr_dir("dedup").glob("*.done")}
    sig_done = {p: p.stat().st_mtime_ns for p in pool.attr_dir(SIGNATURE_ATTR).glob("*.done")}
    again = dedup_pool(pool, DedupConfig())
    assert again["skipped"] is True
    assert {p: p.stat().st_mtime_ns for p in pool.attr_dir("dedup").glob("*.done")} == done
    # a new threshold redoes the global step but reuses the per-shard signatures
    changed = dedup_pool(pool, DedupConfig(threshold=0.9))
    assert changed["skipped"] is False
    assert {p: p.stat().st_mtime_ns for p in pool.attr_dir(SIGNATURE_ATTR).glob("*.done")} == sig_done
    assert changed["duplicates"]["near"] == 0  # 3 of ~100 words replaced: Jaccard well under 0.9
    # forced recomputation with the first config gives identical tables
    dedup_pool(pool, DedupConfig(), force=True)
    assert pool.read_attr("dedup").equals(first)
    clusters = np.load(pool.attr_dir("dedup") / "clusters.npz", allow_pickle=False)
    assert clusters["labels"].shape == (len(first),)


@needs_data
def test_representative_policies(tmp_path: Path, corpus: dict[str, dict]) -> None:
    text = _real_texts(corpus, 1, ("wikitext2",), min_words=120)[0]
    longer = text + " And one more closing sentence."
    pool = _make_pool(tmp_path, [{"id": "a", "text": text}, {"id": "b", "text": longer}])
    dedup_pool(pool, DedupConfig(representative="first"))
    df = pool.read_attr("dedup").set_index("id")
    assert df.loc["b", "dup_cluster"] == "a" and df.loc["a", "dup_keep"]
    dedup_pool(pool, DedupConfig(representative="longest"))
    df = pool.read_attr("dedup").set_index("id")
    assert df.loc["a", "dup_cluster"] == "b" and df.loc["b", "dup_keep"] and not df.loc["a", "dup_keep"]
    # "quality" falls back to pool order without a quality attribute, then follows quality_score
    assert dedup_pool(pool, DedupConfig())["representative_basis"] == "pool order"
    assert pool.read_attr("dedup").set_index("id").loc["a", "dup_keep"]
    pool.write_attr("quality", pool.shards[0], pa.table({"quality_score": [0.1, 0.9]}))
    pool.write_attr_info("quality", {"stage": "test"})
    summary = dedup_pool(pool, DedupConfig())
    assert summary["skipped"] is False and summary["representative_basis"] == "quality_score"
    df = pool.read_attr("dedup").set_index("id")
    assert df.loc["a", "dup_cluster"] == "b" and df.loc["b", "dup_keep"]


@needs_data
def test_recall_on_planted_shared_noise(tmp_path: Path, corpus: dict[str, dict]) -> None:
    """A sample of the shared corpus's planted duplicates, their originals and unrelated real documents."""
    rng = random.Random(0)
    planted = [d for d in corpus.values() if d.get("noise_kind") in ("exact_duplicate", "near_duplicate")]
    sample = rng.sample(planted, 160)
    originals = {d["duplicate_of"] for d in sample}
    all_orig = {d["duplicate_of"] for d in planted}
    fillers = rng.sample(
        [
            d
            for d in corpus.values()
            if d["source"] in ("wikitext2", "gsm8k_train", "crd3", "xquad", "devils_dictionary")
            and d["id"] not in all_orig
        ],
        240,
    )
    docs = [corpus[i] for i in sorted(originals)] + fillers + sample  # copies come after the originals
    pool = _make_pool(tmp_path, [{k: d[k] for k in ("id", "text", "source")} for d in docs], shard_docs=150)
    dedup_pool(pool, DedupConfig())
    df = pool.read_attr("dedup").set_index("id")
    for kind, target in (("exact_duplicate", 0.95), ("near_duplicate", 0.9)):
        rows = [d for d in sample if d["noise_kind"] == kind]
        found = [
            df.loc[d["id"], "dup_cluster"] == df.loc[d["duplicate_of"], "dup_cluster"]
            and not df.loc[d["id"], "dup_keep"]
            for d in rows
        ]
        assert np.mean(found) >= target, (kind, np.mean(found))
    real = df.loc[[d["id"] for d in fillers] + sorted(originals)]
    assert (~real["dup_keep"]).sum() <= 2  # unrelated real documents stay representatives


# -- decontamination -------------------------------------------------------------------------------------------
def _task_items(name: str) -> list[dict]:
    with (DATA / "tasks" / f"{name}.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@needs_data
def test_decontam_flags_planted_not_clean(tmp_path: Path, corpus: dict[str, dict]) -> None:
    reasoning, rag, roleplay = _task_items("reasoning"), _task_items("rag"), _task_items("roleplay")
    q = reasoning[7]
    planted = {
        "qa": f"Homework help forum.\nProblem: {q['question']}\nSolution: the answer is {q['choices'][q['answer']]}.",
        "ctx": f"From the encyclopedia. {rag[3]['ctx']} See also: related articles.",
        "rag_q": f"Quiz night! {rag[10]['question']} Answer: {rag[10]['choices'][rag[10]['answer']]}",
        "roleplay": "Transcript.\n"
        + roleplay[5]["question"]
        + " "
        + roleplay[5]["choices"][roleplay[5]["answer"]],
        "roleplay_part": "Excerpt.\n" + roleplay[5]["question"][-300:],  # a small part: overlaps, not flagged
    }
    choice_soup = " ".join(c for item in reasoning[:60] for c in item["choices"])  # "2.0 9.0 18.0 ..."
    clean = _real_texts(
        corpus, 40, ("wikitext2", "gsm8k_train", "crd3", "xquad", "python_docs"), min_words=30
    )
    docs = [{"id": f"planted-{k}", "text": t} for k, t in planted.items()]
    docs += [
        {"id": "choices", "text": f"Numbers seen today: {choice_soup}. Also 'the dot' and 'circle logo'."}
    ]
    docs += [{"id": f"clean-{i}", "text": t} for i, t in enumerate(clean)]
    pool = _make_pool(tmp_path, docs, shard_docs=20)
    tasks = {n: DATA / "tasks" / f"{n}.jsonl" for n in ("reasoning", "rag", "roleplay", "function_calling")}
    summary = decontaminate_pool(pool, DecontamConfig(tasks=tasks))
    df = pool.read_attr("decontam").set_index("id")
    flagged = set(df.index[df["contaminated"]])
    assert flagged == {f"planted-{k}" for k in planted if k != "roleplay_part"}, flagged
    assert df.loc["planted-roleplay_part", "contam_overlap"] > 0
    assert df.loc["planted-qa", "contam_task"] == "reasoning" and df.loc["planted-qa", "contam_overlap"] >= 5
    assert df.loc["planted-ctx", "contam_task"] == "rag"
    same_ctx = {it["id"] for it in rag if it["ctx"] == rag[3]["ctx"]}  # several questions share a context
    assert df.loc["planted-ctx", "contam_item"] in same_ctx
    assert df.loc["planted-roleplay", "contam_task"] == "roleplay"
    assert df.loc["choices", "contam_overlap"] == 0 and df.loc["choices", "contam_task"] == ""
    assert summary["contaminated"] == 4 and summary["per_task"]["rag"] == 2
    assert summary["per_task"]["function_calling"] == 0
    # rerun skips; another n recomputes
    assert decontaminate_pool(pool, DecontamConfig(tasks=tasks))["skipped"] is True
    assert decontaminate_pool(pool, DecontamConfig(tasks=tasks, n=8))["shards_computed"] == len(pool.shards)


@needs_data
def test_task_index_overlap_api_and_short_fields() -> None:
    items = {
        "t": [
            {
                "question": "What is two plus two, asked the very curious little child?",
                "choices": ["2.0", "4.0"],
                "answer": 1,
            },
            {"question": "Short one?", "choices": ["yes", "no"], "answer": 0},
        ]
    }
    index = TaskIndex.from_items(items, n=13, min_short_words=8)
    counts, names = index.overlap(
        [
            "she said: what is two plus two asked the very curious little child? and left",
            "short one? yes",  # 2-word question: never matched on its own
            "4.0 2.0 yes no",
        ]
    )
    assert counts.tolist() == [1, 0, 0] and names == ["t", "", ""]
    paths = {"reasoning": DATA / "tasks" / "reasoning.jsonl"}
    real = TaskIndex.from_task_files(paths, n=13)
    assert real.task_names == ["reasoning"] and real.stats["items"] == 500
    q = _task_items("reasoning")[0]["question"]
    assert real.overlap([q])[0][0] >= 1


def test_task_file_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "choices": ["a", "b"], "answer": 0}\n{not json\n')
    with pytest.raises(TaskFileError, match=r"bad\.jsonl:2: malformed JSON"):
        TaskIndex.from_task_files([bad])
    bad.write_text('{"question": "q", "choices": ["a", "b"], "answer": 3}\n')
    with pytest.raises(TaskFileError, match=r"bad\.jsonl:1: answer index 3 out of range"):
        TaskIndex.from_task_files([bad])


# -- CLI ---------------------------------------------------------------------------------------------------------
@needs_data
def test_cli_dedup_and_decontam(
    small_pool: tuple[Pool, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pool, _ = small_pool
    cfg = tmp_path / "dedup.yaml"
    cfg.write_text("dedup:\n  num_perm: 64\n  shingle_n: 5\n")
    assert main(["dedup", str(pool.root), "--config", str(cfg), "--threshold", "0.5", "--force"]) == 0
    out = capsys.readouterr().out
    assert "duplicates: exact 2, near 1" in out
    tasks = f"reasoning={DATA / 'tasks' / 'reasoning.jsonl'},rag={DATA / 'tasks' / 'rag.jsonl'}"
    assert main(["decontam", str(pool.root), "--tasks", tasks, "--n", "13"]) == 0
    out = capsys.readouterr().out
    assert "0 contaminated" in out and '"reasoning": 0' in out
    assert main(["decontam", str(pool.root), "--tasks", "reasoning"]) == 1
    assert "NAME=FILE" in capsys.readouterr().err
    assert main(["decontam", str(pool.root), "--tasks", f"x={tmp_path / 'missing.jsonl'}"]) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("dedup: [1, 2\n")
    assert main(["dedup", str(pool.root), "--config", str(bad)]) == 1
    assert "bad.yaml:" in capsys.readouterr().err
