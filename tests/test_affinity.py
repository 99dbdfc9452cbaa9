"""Task affinity (DSIR importance weights): the model, the ``affinity`` attribute, per-domain tables,
the affinity quality policies of selection, and ``mixlab affinity``."""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mixlab.affinity import AffinityConfig, DsirAffinityModel, affinity_by_domain, affinity_pool
from mixlab.affinity.stage import ATTR, cluster_task_table
from mixlab.cli import main
from mixlab.domains.config import PartitionConfig
from mixlab.domains.partition import id_rank, partition_pool
from mixlab.mixtures.catalog import load_catalog
from mixlab.pool.ingest import ingest
from mixlab.pool.pool import Pool, PoolError
from mixlab.quality.config import QualityConfig
from mixlab.quality.stage import score_quality
from mixlab.select.config import QualityPolicy, SelectConfig
from mixlab.select.selection import select_documents

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TASK_FILES = {t: DATA / "tasks" / f"{t}.jsonl" for t in ("roleplay", "reasoning", "function_calling", "rag")}
#: Which shared-corpus sources each task's items were held out of.
TASK_SOURCES = {
    "roleplay": ("crd3", "tinyshakespeare"),
    "reasoning": ("gsm8k_train",),
    "function_calling": ("bfcl",),
    "rag": ("xquad",),
}


@cache
def _ranked(path: str) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = (json.loads(line) for line in fh)
        return sorted(
            (r for r in rows if len(r["text"]) < 10_000), key=lambda r: id_rank(r["id"], "affinity-test")
        )


@pytest.fixture(scope="module")
def corpus_pool(tmp_path_factory: pytest.TempPathFactory) -> Pool:
    """40 documents per shared-corpus source (noise included), in 4 shards, with the four tasks' affinity."""
    if not (DATA / "corpus").is_dir() or not all(p.exists() for p in TASK_FILES.values()):
        pytest.skip(f"shared corpus or tasks not found under {DATA}")
    # documents under 10k characters keep the ingest fast (a few library-reference pages are 100k+)
    rows = [r for p in sorted((DATA / "corpus").glob("*.jsonl.gz")) for r in _ranked(str(p))[:40]]
    folder = tmp_path_factory.mktemp("affinity")
    src = folder / "docs.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tok = DATA / "tokenizers" / "gpt2" / "tokenizer.json"
    pool = ingest([src], folder / "pool", tokenizer=str(tok), shard_docs=140)
    affinity_pool(pool, AffinityConfig(tasks={n: str(p) for n, p in TASK_FILES.items()}))
    return pool


# -- the model ------------------------------------------------------------------------------------
ITEMS = {
    "maths": [
        "Question: Tom has 3 apples and buys 4 more. How many apples?\nAnswer: 7",
        "Question: A pen costs 2 dollars. How much do 5 pens cost?\nAnswer: 10 dollars",
        "Question: Sara reads 6 pages a day. How many pages in 4 days?\nAnswer: 24 pages",
    ],
    "calls": [
        'Question: What is the weather in Paris?\nAnswer: get_weather(city="Paris")',
        'Question: Book a table for two.\nAnswer: book_table(people=2, time="19:00")',
    ],
}
BACKGROUND = [
    f"The river runs past the old mill number {i}, where farmers bring grain in autumn and the town "
    "holds its market by the bridge."
    for i in range(40)
] + ["Lobsters are marine crustaceans that live on the sea floor and walk on ten legs."] * 10


def test_dsir_model_ranks_task_like_text_first_and_round_trips(tmp_path: Path) -> None:
    model = DsirAffinityModel(n_features=2**12).fit(ITEMS, BACKGROUND)
    docs = [
        "Ben buys 3 pens and each pen costs 2 dollars. How many dollars does he pay?",
        'call get_weather(city="Rome") and then book_table(people=4)',
        "The river runs past the mill and the farmers bring grain to the market.",
    ]
    s = model.score(docs)
    assert s.shape == (3, 2)
    assert s[0, 0] > s[2, 0] and s[0, 0] > s[1, 0]  # maths text is most like the maths items
    assert s[1, 1] > s[2, 1] and s[1, 1] > s[0, 1]
    assert s[2].max() < 0  # pool-like prose is less likely under the tasks than under the pool
    # an n-gram no task item shows weighs log(pool_weight), the least; keyboard mash is not task-like
    np.testing.assert_allclose(model.log_ratio_.min(), np.log(0.5), rtol=1e-5)
    assert model.score(["qzxv wprt kkjh zzqp"]).max() < s[2].min()
    summed = DsirAffinityModel(n_features=2**12, length_normalise=False).fit(ITEMS, BACKGROUND)
    # "question"/"answer" are in every item of both tasks: the template gets weight 0
    np.testing.assert_allclose(summed.score(["Question:", "Answer:"]), 0.0, atol=1e-6)
    # DSIR's sum grows with length; the per-n-gram score does not (it moves away from the prior only)
    twice = docs[0] + " " + docs[0]
    assert summed.score([twice])[0, 0] > 1.8 * summed.score([docs[0]])[0, 0]
    mean_only = DsirAffinityModel(n_features=2**12, prior_ngrams=0).fit(ITEMS, BACKGROUND)
    np.testing.assert_allclose(mean_only.score([twice]), mean_only.score([docs[0]]), rtol=0.05)
    assert s[0, 0] < model.score([twice])[0, 0] < mean_only.score([docs[0]])[0, 0]
    # the length prior: a two-word fragment of the best n-grams does not outrank the whole document
    assert model.score(["apples pages"])[0, 0] < s[0, 0]
    # calibration: the background sample has median 0 per task
    np.testing.assert_allclose(np.median(model.calibrate(model.score(BACKGROUND)), axis=0), 0.0, atol=1e-9)
    model.save(tmp_path / "m")
    loaded = DsirAffinityModel.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.score(docs), s, rtol=1e-6)
    assert not list((tmp_path / "m").glob("*.pkl"))
    with pytest.raises(ValueError, match="no items"):
        DsirAffinityModel().fit({"empty": []}, BACKGROUND)
    with pytest.raises(FileNotFoundError, match="state.json"):
        DsirAffinityModel.load(tmp_path / "nothing")


# -- the attribute on the shared corpus ------------------------------------------------------------
def test_affinity_ranks_each_tasks_own_sources_first(corpus_pool: Pool) -> None:
    attr = corpus_pool.read_attr(ATTR)
    docs = corpus_pool.read_docs(["id", "source"])
    assert attr["id"].equals(docs["id"]) and len(attr) == corpus_pool.n_docs() == 13 * 40
    assert list(attr.columns) == [
        "id", *[f"affinity_{t}" for t in TASK_FILES], "affinity", "affinity_task"
    ]  # fmt: skip
    source = docs["source"].to_numpy()
    for task, sources in TASK_SOURCES.items():
        auc = roc_auc_score(np.isin(source, sources), attr[f"affinity_{task}"])
        assert auc > 0.9, (task, auc)  # measured 0.96-0.99 on this sample
        best = attr["affinity_task"].to_numpy()[np.isin(source, sources)]
        assert np.mean(best == task) > 0.6, task
    table = affinity_by_domain(corpus_pool, by="source")
    assert table.index.name == "source" and int(table["docs"].sum()) == len(attr)
    assert table.loc["bfcl", "best_task"] == "function_calling"
    assert table.loc["gsm8k_train", "best_task"] == "reasoning"
    assert table.loc["crd3", "best_task"] == "roleplay"
    assert table.loc["xquad", "best_task"] == "rag"
    assert table.loc["bfcl", "function_calling"] > table.drop(index="bfcl")["function_calling"].max()
    info = json.loads((corpus_pool.attr_dir(ATTR) / "attr.json").read_text(encoding="utf-8"))
    assert set(info["summary"]["per_task"]) == set(TASK_FILES)


def test_rerun_skips_and_a_changed_task_file_recomputes(corpus_pool: Pool, tmp_path: Path) -> None:
    tasks = {n: str(p) for n, p in TASK_FILES.items()}
    again = affinity_pool(corpus_pool, AffinityConfig(tasks=tasks))
    assert again["computed_shards"] == [] and again["fit"] == {}
    before = corpus_pool.read_attr(ATTR)
    # a copy of one task file with fewer items: same name, other content -> refit and every shard redone
    lines = TASK_FILES["rag"].read_text(encoding="utf-8").splitlines()[:50]
    small = tmp_path / "rag.jsonl"
    small.write_text("\n".join(lines) + "\n", encoding="utf-8")
    changed = affinity_pool(corpus_pool, AffinityConfig(tasks={**tasks, "rag": str(small)}))
    assert changed["computed_shards"] == corpus_pool.shards and changed["fit"]["task_items"]["rag"] == 50
    assert not np.allclose(corpus_pool.read_attr(ATTR)["affinity_rag"], before["affinity_rag"])
    back = affinity_pool(corpus_pool, AffinityConfig(tasks=tasks))  # and back, identical to the first
    assert back["computed_shards"] == corpus_pool.shards
    np.testing.assert_array_equal(corpus_pool.read_attr(ATTR)["affinity_rag"], before["affinity_rag"])


# -- selection ------------------------------------------------------------------------------------
def _mean_affinity(pool: Pool, chosen, column_of) -> dict[str, float]:  # type: ignore[no-untyped-def]
    attr = pool.read_attr(ATTR).set_index("id")
    return {d: float(attr.loc[g["id"], column_of(d)].mean()) for d, g in chosen.groupby("domain", sort=True)}


def test_affinity_policy_takes_higher_affinity_documents_than_hash_order(corpus_pool: Pool) -> None:
    partition_pool(corpus_pool, PartitionConfig(method="rules"), force=True)
    score_quality(corpus_pool, QualityConfig())
    kept = load_catalog(corpus_pool).kept.groupby("domain")["n_tokens"].sum()
    # every domain gives half its kept tokens: which half is what the policy decides
    mixture = {d: float(kept[d]) for d in ("reasoning", "function_calling", "roleplay", "general")}
    budget = int(sum(mixture.values()) / 2)

    def column(d: str) -> str:
        return f"affinity_{d}" if d in TASK_FILES else "affinity"

    means = {}
    for policy in ("all", "affinity", "affinity+quality"):
        sel = select_documents(
            corpus_pool, mixture, SelectConfig(budget_tokens=budget, quality_policy=policy, max_epochs=1)
        )
        assert abs(sel.total_tokens - budget) < 0.02 * budget
        means[policy] = _mean_affinity(corpus_pool, sel.chosen, column)
        if policy != "all":
            assert sel.manifest["domains"]["reasoning"]["ranked_by"] == "affinity_reasoning"
            assert sel.manifest["domains"]["general"]["ranked_by"] == "affinity"
            assert "affinity" in sel.manifest["attributes_used"]
    for d in mixture:
        assert means["affinity"][d] > means["all"][d], (d, means)
        assert means["affinity"][d] >= means["affinity+quality"][d] - 1e-9, (d, means)
    # affinity+quality trades some affinity for quality: its chosen documents score higher on quality
    q = corpus_pool.read_attr("quality", columns=["quality_score"]).set_index("id")["quality_score"]
    mixed = select_documents(
        corpus_pool,
        mixture,
        SelectConfig(budget_tokens=budget, quality_policy="affinity+quality:0.2", max_epochs=1),
    )
    pure = select_documents(
        corpus_pool, mixture, SelectConfig(budget_tokens=budget, quality_policy="affinity", max_epochs=1)
    )
    assert q.loc[mixed.chosen["id"]].mean() > q.loc[pure.chosen["id"]].mean()
    # a named column ranks every domain by it
    fc = select_documents(
        corpus_pool,
        mixture,
        SelectConfig(budget_tokens=budget, quality_policy="affinity:affinity_rag", max_epochs=1),
    )
    assert {e.get("ranked_by") for e in fc.manifest["domains"].values()} == {"affinity_rag"}


def test_affinity_policy_parsing_and_errors(corpus_pool: Pool, tmp_path: Path) -> None:
    assert QualityPolicy.model_validate("affinity").mode == "affinity"
    p = QualityPolicy.model_validate("affinity+quality:0.7")
    assert p.mode == "affinity+quality" and p.affinity_weight == 0.7 and p.ranked
    assert QualityPolicy.model_validate("affinity:affinity_rag").affinity_column == "affinity_rag"
    assert QualityPolicy.model_validate("all").model_dump(exclude_none=True) == {"mode": "all"}
    with pytest.raises(ValueError, match="affinity modes"):
        QualityPolicy(mode="all", affinity_weight=0.5)
    with pytest.raises(ValueError):
        QualityPolicy.model_validate("affinity+quality:1.5")
    with pytest.raises(PoolError, match="no column 'affinity_nope'"):
        select_documents(
            corpus_pool,
            {"general": 1.0},
            SelectConfig(budget_tokens=1000, quality_policy="affinity:affinity_nope"),
        )
    bare = ingest(
        [_one_file(tmp_path)],
        tmp_path / "bare",
        tokenizer=str(DATA / "tokenizers" / "gpt2" / "tokenizer.json"),
    )
    with pytest.raises(PoolError, match="mixlab affinity"):
        select_documents(bare, {"s": 1.0}, SelectConfig(budget_tokens=10, quality_policy="affinity"))


def _one_file(tmp_path: Path) -> Path:
    path = tmp_path / "s.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": f"d{i}", "text": f"document number {i} " * 5, "source": "s"}) + "\n"
            for i in range(6)
        ),
        encoding="utf-8",
    )
    return path


# -- CLI ------------------------------------------------------------------------------------------
def test_cli_affinity_prints_tables_and_writes_csv(
    corpus_pool: Pool, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    specs = ",".join(f"{n}={p}" for n, p in TASK_FILES.items())
    out = tmp_path / "table.csv"
    assert (
        main(["affinity", str(corpus_pool.root), "--tasks", specs, "--by", "source", "--table-out", str(out)])
        == 0
    )
    text = capsys.readouterr().out
    assert "per-source" in text and "bfcl" in text and "function_calling" in text
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith(
        "source,docs,tokens,roleplay,reasoning,function_calling,rag,affinity,best_task"
    )
    assert len(lines) == 1 + 13
    assert main(["affinity", str(corpus_pool.root), "--tasks", specs, "--by", "source", "--clusters"]) == 0
    assert "lift_function_calling" in capsys.readouterr().out
    table = cluster_task_table(corpus_pool, by="source")
    lift = table["lift_function_calling"]
    assert lift["bfcl"] > 0 and lift["bfcl"] == lift.max() and lift["foldoc"] < 0
    assert main(["affinity", str(corpus_pool.root), "--tasks", "x=" + str(tmp_path / "missing.jsonl")]) == 1
    assert "missing.jsonl" in capsys.readouterr().err
