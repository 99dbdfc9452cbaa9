"""Tests of the embedded demo world generator and its tokenizer (mixlab.demo)."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest

from mixlab.demo.noise import NOISE_KINDS
from mixlab.demo.run import FULL
from mixlab.demo.tokenizer import train_tokenizer
from mixlab.demo.world import WORLD_VERSION, WorldPaths, generate_world

DOMAINS = ("roleplay", "reasoning", "function_calling", "rag", "code", "general")
TASKS = ("roleplay", "reasoning", "function_calling", "rag")
N_DOCS, N_ITEMS = 1200, 40


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> WorldPaths:
    return generate_world(tmp_path_factory.mktemp("world"), n_docs=N_DOCS, n_task_items=N_ITEMS, seed=3)


@pytest.fixture(scope="module")
def corpus(world: WorldPaths) -> dict[str, list[dict]]:
    return {p.stem: _read(p) for p in world.corpus_files}


@pytest.fixture(scope="module")
def tasks(world: WorldPaths) -> dict[str, list[dict]]:
    return {name: _read(p) for name, p in world.task_files.items()}


def test_paths_and_layout(world: WorldPaths) -> None:
    assert world.corpus_dir == world.root / "corpus" and world.tasks_dir == world.root / "tasks"
    assert [p.name for p in world.corpus_files] == [f"{d}.jsonl" for d in DOMAINS]
    assert all(p.is_file() for p in world.corpus_files)
    assert set(world.task_files) == set(TASKS)
    assert all(world.task_files[t] == world.tasks_dir / f"{t}.jsonl" for t in TASKS)
    assert (world.root / "world.json").is_file()


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    a = generate_world(tmp_path / "a", n_docs=300, n_task_items=10, seed=7)
    b = generate_world(tmp_path / "b", n_docs=300, n_task_items=10, seed=7)
    c = generate_world(tmp_path / "c", n_docs=300, n_task_items=10, seed=8)
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file())
    assert len(files) == len(DOMAINS) + len(TASKS) + 1
    for rel in files:
        assert (a.root / rel).read_bytes() == (b.root / rel).read_bytes(), rel
    assert (a.root / "corpus/general.jsonl").read_bytes() != (c.root / "corpus/general.jsonl").read_bytes()


def test_corpus_records_are_well_formed(corpus: dict[str, list[dict]]) -> None:
    assert sum(len(rows) for rows in corpus.values()) == N_DOCS
    all_ids = [r["id"] for rows in corpus.values() for r in rows]
    assert len(all_ids) == len(set(all_ids))
    for domain, rows in corpus.items():
        for r in rows:
            assert set(r) <= {"id", "text", "source", "true_domain", "noise_kind", "duplicate_of"}
            assert r["source"] == domain and r["true_domain"] == domain
            assert isinstance(r["text"], str) and r["text"]


def test_noise_fraction_kinds_and_duplicate_links(corpus: dict[str, list[dict]]) -> None:
    rows = [r for rs in corpus.values() for r in rs]
    noise = [r for r in rows if "noise_kind" in r]
    assert 0.06 <= len(noise) / len(rows) <= 0.10
    assert {r["noise_kind"] for r in noise} == set(NOISE_KINDS)
    for domain, rs in corpus.items():
        assert any("noise_kind" in r for r in rs), f"no noise in {domain}"
        by_id = {r["id"]: r for r in rs}
        for r in rs:
            kind = r.get("noise_kind")
            if kind in ("exact_duplicate", "near_duplicate"):
                original = by_id[r["duplicate_of"]]  # same file, a real (non-noise) document
                assert "noise_kind" not in original
                if kind == "exact_duplicate":
                    assert r["text"] == original["text"]
                else:
                    assert r["text"] != original["text"]
                    shared = set(r["text"].split()) & set(original["text"].split())
                    assert len(shared) >= 0.5 * len(set(original["text"].split()))
            else:
                assert "duplicate_of" not in r
            if kind == "short_fragment":
                assert len(r["text"]) < 40
            if kind == "repeated_ngram":
                words = r["text"].split()
                assert len(set(words)) * 5 <= len(words)


def test_general_prose_is_the_largest_domain(corpus: dict[str, list[dict]]) -> None:
    chars = {d: sum(len(r["text"]) for r in rows) for d, rows in corpus.items()}
    total = sum(chars.values())
    assert chars["general"] == max(chars.values())
    assert 0.35 <= chars["general"] / total <= 0.55
    assert all(0.05 <= chars[d] / total <= 0.2 for d in DOMAINS if d != "general")


def test_tasks_are_well_formed(tasks: dict[str, list[dict]]) -> None:
    for name, rows in tasks.items():
        assert len(rows) == N_ITEMS
        answers = set()
        for r in rows:
            assert isinstance(r["question"], str) and r["question"]
            assert len(r["choices"]) == 4 and len(set(r["choices"])) == 4
            assert all(isinstance(c, str) and c for c in r["choices"])
            assert 0 <= r["answer"] < 4
            assert r["choices"][r["answer"]] == r["correct_answer_content"]
            assert ("ctx" in r) == (name == "rag")
            answers.add(r["answer"])
        assert answers == {0, 1, 2, 3}, f"{name}: answer positions are not spread"
        assert len({r["question"] for r in rows}) == len(rows) or name == "rag"


def _words(choice: str) -> list[str]:
    return choice.replace(":", " ").replace("!", " ").split()


def test_rag_items_state_the_answer_and_one_distractor_in_their_context(
    tasks: dict[str, list[dict]], world: WorldPaths
) -> None:
    info = json.loads((world.root / "world.json").read_text())
    values = {v for land in info["lands"] for v in land["facts"].values()}
    for r in tasks["rag"]:
        assert r["correct_answer_content"] in r["ctx"]
        in_ctx = [c for c in r["choices"] if c in r["ctx"]]
        assert len(in_ctx) == 2  # the answer and another attribute's value of the same passage
        fakes = [c for c in r["choices"] if c not in r["ctx"]]
        assert all(c not in values for c in fakes)  # recombinations: names of nothing
        assert all(len(c.split()) == 2 for c in r["choices"])
        words = [w for c in r["choices"] for w in c.split()]
        assert len(words) == len(set(words))  # no choice shares a word with another


def test_reasoning_answers_count_on_or_back(tasks: dict[str, list[dict]]) -> None:
    import re

    for r in tasks["reasoning"]:
        a, b = (int(x) for x in re.findall(r"\b\d+\b", r["question"])[:2])
        step = -1 if re.search(r"gives|lost|takes out", r["question"]) else 1
        assert r["correct_answer_content"] == " ".join(str(a + step * (i + 1)) for i in range(b))
        counts = [[int(x) for x in c.split()] for c in r["choices"]]
        assert all(len(c) == b for c in counts)  # same length for every choice
        valid = [
            c
            for c in counts
            if all(abs(y - x) == 1 and y - x == c[1] - c[0] for x, y in itertools.pairwise(c))
        ]
        assert len(valid) == 2  # the answer and the count the wrong way; the other two skip or repeat


def test_roleplay_choices_share_tag_and_shape_but_no_word(
    tasks: dict[str, list[dict]], world: WorldPaths
) -> None:
    info = json.loads((world.root / "world.json").read_text())
    real = {c["catchphrase"] for c in info["characters"]}
    for r in tasks["roleplay"]:
        name = r["correct_answer_content"].split(":")[0]
        assert r["question"].startswith(f"You are {name},")
        lines = [c.split(": ", 1) for c in r["choices"]]
        assert {tag for tag, _ in lines} == {name}
        assert all(len(said.split()) == 2 and said.endswith("!") for _, said in lines)
        assert sum(said in real for _, said in lines) == 2  # the answer and another character's catchphrase
        words = [w for _, said in lines for w in _words(said)]
        assert len(words) == len(set(words))


def test_no_task_item_appears_in_the_corpus(
    corpus: dict[str, list[dict]], tasks: dict[str, list[dict]]
) -> None:
    text = "\n".join(r["text"] for rows in corpus.values() for r in rows)
    for name, rows in tasks.items():
        for r in rows:
            assert r["question"] not in text or name == "rag", f"{name} question leaked: {r['question'][:80]}"
            if "ctx" in r:
                assert r["ctx"] not in text  # the facts recur (a knowledge base), this passage does not


def test_domains_teach_their_skill(corpus: dict[str, list[dict]], tasks: dict[str, list[dict]]) -> None:
    """Each task's answers are learnable from its own domain, absent from general prose, and the choices a
    model rules out with that knowledge (recombinations, skipped counts) never appear in any document."""
    import re

    clean = {d: [r["text"] for r in rows if "noise_kind" not in r] for d, rows in corpus.items()}
    general = "\n".join(clean["general"])
    everything = "\n".join(t for texts in clean.values() for t in texts)
    domain_text = {d: "\n".join(texts) for d, texts in clean.items()}
    for name in TASKS:
        for r in tasks[name]:
            gold = r["correct_answer_content"]
            taught = gold.split(": ", 1)[-1] if name == "roleplay" else gold.split("(")[0] + "("
            if name == "rag":
                taught = gold
            if name == "reasoning":  # each step of the count is taught (a count that says "x y")
                nums = gold.split()
                for x, y in itertools.pairwise(nums):
                    assert re.search(rf"(?<![\d]) ?{x} {y}(?![\d])", domain_text[name]), (gold, x, y)
                continue
            assert taught in domain_text[name], (name, taught)
            assert taught not in general, (name, taught)
            if name in ("roleplay", "rag"):
                wrong = [c for c in r["choices"] if c != gold]
                fakes = [c.split(": ", 1)[-1] for c in wrong][-2:]
                for fake in fakes if name == "roleplay" else [c for c in wrong if c not in r["ctx"]]:
                    assert fake not in everything, (name, fake)
    # a count with a skip or a repeat is never taught as a count
    for r in tasks["reasoning"]:
        for c in r["choices"]:
            nums = [int(x) for x in c.split()]
            if not all(abs(y - x) == 1 and y - x == nums[1] - nums[0] for x, y in itertools.pairwise(nums)):
                assert not re.search(rf"(?<![\d ]) ?{re.escape(c)}(?![\d])", domain_text["reasoning"])
    assert "capital of" not in general and not re.search(r"\d", general)
    lexicon_words = {
        w.lower() for r in tasks["roleplay"] for c in r["choices"] for w in _words(c.split(": ", 1)[1])
    }
    assert not lexicon_words & set(re.findall(r"[a-z]+", general.lower()))


def test_world_json_counts(world: WorldPaths, corpus: dict[str, list[dict]]) -> None:
    info = json.loads((world.root / "world.json").read_text())
    assert info["seed"] == 3 and info["n_docs"] == N_DOCS and info["n_task_items"] == N_ITEMS
    for domain, rows in corpus.items():
        assert info["domains"][domain]["docs"] == len(rows)
        assert info["domains"][domain]["noise_docs"] == sum("noise_kind" in r for r in rows)
    assert sum(info["noise_kinds"].values()) == sum(d["noise_docs"] for d in info["domains"].values())
    assert info["tasks"] == {t: N_ITEMS for t in TASKS}
    assert len(info["characters"]) == 24 and len(info["functions"]) == 20 and len(info["lands"]) == 12
    assert info["version"] == WORLD_VERSION


def test_full_size_world_is_fast_and_bounded(tmp_path: Path) -> None:
    start = time.perf_counter()
    paths = generate_world(tmp_path / "full")
    elapsed = time.perf_counter() - start
    info = json.loads((paths.root / "world.json").read_text())
    chars = sum(d["chars"] for d in info["domains"].values())
    assert sum(d["docs"] for d in info["domains"].values()) == FULL.n_docs
    assert 4_000_000 <= chars <= 8_000_000
    assert elapsed < 20, f"generation took {elapsed:.1f}s"
    # every catchphrase and every land's value is taught about equally often: no frequency cue
    rp = (paths.corpus_dir / "roleplay.jsonl").read_text(encoding="utf-8")
    said = [rp.count(c["catchphrase"]) for c in info["characters"]]
    assert min(said) >= 0.5 * max(said) > 50
    rag = (paths.corpus_dir / "rag.jsonl").read_text(encoding="utf-8")
    stated = [rag.count(v) for land in info["lands"] for v in land["facts"].values()]
    assert min(stated) >= 0.5 * max(stated) > 30


def test_bad_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_docs"):
        generate_world(tmp_path, n_docs=10)
    with pytest.raises(ValueError, match="n_task_items"):
        generate_world(tmp_path, n_task_items=0)


@pytest.fixture(scope="module")
def tokenizer_dir(
    world: WorldPaths, corpus: dict[str, list[dict]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    texts = [r["text"] for rows in corpus.values() for r in rows]
    return train_tokenizer(iter(texts), tmp_path_factory.mktemp("tok"), vocab_size=800)


def test_tokenizer_loads_round_trips_and_adds_bos(tokenizer_dir: Path, corpus: dict[str, list[dict]]) -> None:
    from transformers import AutoTokenizer

    from mixlab.tokenization import count_tokens, load_tokenizer

    auto = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    ours = load_tokenizer(str(tokenizer_dir))
    assert len(auto) == 800
    for tok in (auto, ours):
        assert (tok.bos_token, tok.eos_token, tok.unk_token, tok.pad_token) == (
            "<s>",
            "</s>",
            "<unk>",
            "<pad>",
        )
        assert tok.bos_token_id != tok.eos_token_id != tok.pad_token_id
        samples = [corpus[d][i]["text"] for d in DOMAINS for i in range(3)] + ["Café naïve — 東京 ✓\n\tend "]
        for text in samples:
            plain = tok(text, add_special_tokens=False)["input_ids"]
            with_bos = tok(text, add_special_tokens=True)["input_ids"]
            assert with_bos == [tok.bos_token_id] + plain  # BOS prepended, no EOS appended
            assert tok.bos_token_id not in plain
            assert tok.decode(plain) == text
            assert tok.decode(with_bos, skip_special_tokens=True) == text
    counts = count_tokens(ours, [corpus["general"][0]["text"]])
    assert counts[0] == len(auto(corpus["general"][0]["text"], add_special_tokens=False)["input_ids"])
    # lm-eval style split: context tokens are a prefix of context+continuation tokens at word boundaries
    ctx, cont = "Question: What is the capital of Velor?\nAnswer:", " Ossa"
    whole = auto(ctx + cont)["input_ids"]
    assert whole[: len(auto(ctx)["input_ids"])] == auto(ctx)["input_ids"]
