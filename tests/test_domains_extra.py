"""Domains beyond rules and classifiers: ClimbLab clusters (sources) as domains with summaries and a
cluster-to-task affinity table, sources pinned to a domain, and LDA topics beside k-means."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import normalized_mutual_info_score

from mixlab.affinity import AffinityConfig, affinity_pool, cluster_task_table
from mixlab.cli import main
from mixlab.domains.clusters import ClusterModel, summarise_groups
from mixlab.domains.config import ClusterConfig, PartitionConfig
from mixlab.domains.methods import natural_key, pin_sources, read_source_summaries
from mixlab.domains.partition import CLUSTER_STATE, CLUSTERS_ATTR, partition_pool
from mixlab.pool.ingest import ingest
from mixlab.pool.pool import Pool
from mixlab.select.config import SelectConfig
from mixlab.select.selection import select_documents

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GPT2 = DATA / "tokenizers" / "gpt2" / "tokenizer.json"
TASK_FILES = {t: DATA / "tasks" / f"{t}.jsonl" for t in ("roleplay", "reasoning", "function_calling", "rag")}
#: ClimbLab sample clusters used (README labels): reading-qa, code-exercises, function-calls, roleplay, drama.
CLUSTERS = ("cluster_2", "cluster_12", "cluster_15", "cluster_18", "cluster_20")


@pytest.fixture(scope="module")
def climb_pool(tmp_path_factory: pytest.TempPathFactory) -> Pool:
    """Five clusters of the ClimbLab-layout sample (1,168 documents), ingested from their GPT-2 ids."""
    sample = DATA / "climblab_sample"
    if not all((sample / c).is_dir() for c in CLUSTERS):
        pytest.skip(f"ClimbLab sample not found at {sample}")
    folder = tmp_path_factory.mktemp("climb")
    for c in CLUSTERS:
        shutil.copytree(sample / c, folder / "layout" / c)
    return ingest(
        [folder / "layout"], folder / "pool", tokenizer=str(GPT2), decode_tokenizer=str(GPT2), shard_docs=400
    )


# -- ClimbLab clusters (sources) as domains ---------------------------------------------------------
def test_natural_order() -> None:
    assert sorted(["cluster_12", "cluster_2", "cluster_1", "b", "a10", "a9"], key=natural_key) == [
        "a9", "a10", "b", "cluster_1", "cluster_2", "cluster_12"
    ]  # fmt: skip


def test_climblab_clusters_become_domains_with_summaries(
    climb_pool: Pool, capsys: pytest.CaptureFixture
) -> None:
    assert main(["partition", str(climb_pool.root), "--method", "sources", "--force"]) == 0
    out = capsys.readouterr().out
    assert "sources as domains" in out and "cluster_15" in out
    attr = climb_pool.read_attr("domains")
    docs = climb_pool.read_docs(["id", "source"])
    assert [c for c in attr.columns if c.startswith("p_")] == [f"p_{c}" for c in CLUSTERS]  # natural order
    assert (attr["domain"].to_numpy() == docs["source"].to_numpy()).all()
    np.testing.assert_array_equal(attr[[f"p_{c}" for c in CLUSTERS]].max(axis=1), 1.0)
    assert set(attr["domain_method"]) == {"source"}
    summaries = {s["domain"]: s for s in read_source_summaries(climb_pool)}
    assert list(summaries) == list(CLUSTERS)
    assert {"description", "type", "parameters"} & set(summaries["cluster_15"]["top_terms"])
    assert {"thou", "thy", "thee"} & set(summaries["cluster_20"]["top_terms"])
    assert {"def", "return", "assert"} & set(summaries["cluster_12"]["top_terms"])
    assert all(len(s["examples"]) == 3 and s["examples"][0]["snippet"] for s in summaries.values())
    # the domains work as mixture components at once
    sel = select_documents(
        climb_pool, {"cluster_15": 0.5, "cluster_20": 0.5}, SelectConfig(budget_tokens=20_000)
    )
    assert set(sel.chosen["domain"]) == {"cluster_15", "cluster_20"}


def test_cluster_to_task_affinity_table_names_the_clusters(climb_pool: Pool) -> None:
    if not all(p.exists() for p in TASK_FILES.values()):
        pytest.skip("shared tasks not found")
    partition_pool(climb_pool, PartitionConfig(method="sources"))
    affinity_pool(climb_pool, AffinityConfig(tasks={n: str(p) for n, p in TASK_FILES.items()}))
    table = cluster_task_table(climb_pool, by="domains")
    assert list(table.index) == list(CLUSTERS) and table.index.name == "cluster"
    assert int(table["docs"].sum()) == climb_pool.n_docs()
    best = table["best_task"].to_dict()
    assert best["cluster_2"] == "rag"  # XQuAD paragraphs with questions
    assert best["cluster_15"] == "function_calling"  # BFCL
    assert best["cluster_18"] == "roleplay" and best["cluster_20"] == "roleplay"  # Critical Role, drama
    assert table["lift_function_calling"].idxmax() == "cluster_15"
    assert table["lift_roleplay"].idxmax() == "cluster_18"
    by_source = cluster_task_table(climb_pool, by="source")  # a ClimbLab pool keeps the cluster as source
    np.testing.assert_allclose(by_source["rag"].to_numpy(), table["rag"].to_numpy())


# -- pinned sources --------------------------------------------------------------------------------
def test_pin_sources_overrides_the_method(climb_pool: Pool, capsys: pytest.CaptureFixture) -> None:
    plain = partition_pool(climb_pool, PartitionConfig(method="rules"), force=True)
    before = climb_pool.read_attr("domains")
    pins = {"cluster_15": "synthetic_fc", "cluster_2": "reasoning"}
    summary = partition_pool(climb_pool, PartitionConfig(method="rules", pin_sources=pins), force=True)
    attr = climb_pool.read_attr("domains")
    source = climb_pool.read_docs(["source"])["source"].to_numpy()
    p_cols = [c for c in attr.columns if c.startswith("p_")]
    assert p_cols[-1] == "p_synthetic_fc" and len(p_cols) == 7  # six rule domains + the new one
    np.testing.assert_allclose(attr[p_cols].sum(axis=1), 1.0, rtol=1e-6)
    fc = source == "cluster_15"
    assert (attr["domain"][fc] == "synthetic_fc").all() and (attr["p_synthetic_fc"][fc] == 1.0).all()
    assert (attr["domain_method"][fc] == "pin:cluster_15").all()
    rq = source == "cluster_2"
    assert (attr["domain"][rq] == "reasoning").all() and (attr["p_reasoning"][rq] == 1.0).all()
    other = ~(fc | rq)
    assert (attr["domain"][other].to_numpy() == before["domain"][other].to_numpy()).all()
    assert (attr["p_synthetic_fc"][other] == 0).all()
    assert summary["domains"]["synthetic_fc"]["docs"] == int(fc.sum())
    assert (
        summary["domains"]["reasoning"]["docs"]
        >= int(rq.sum())
        > plain["domains"].get("reasoning", {}).get("docs", 0)
    )
    # the pinned source is a mixture component of its own
    sel = select_documents(
        climb_pool, {"synthetic_fc": 0.5, "roleplay": 0.5}, SelectConfig(budget_tokens=20_000)
    )
    picked = sel.chosen[sel.chosen["domain"] == "synthetic_fc"]
    assert set(climb_pool.read_docs(["id", "source"]).set_index("id").loc[picked["id"], "source"]) == {
        "cluster_15"
    }
    # a typo pins nothing silently
    with pytest.raises(ValueError, match="cluster_99"):
        partition_pool(
            climb_pool, PartitionConfig(method="rules", pin_sources={"cluster_99": "x"}), force=True
        )
    with pytest.raises(ValueError, match="pin_sources"):
        PartitionConfig(pin_sources={"cluster_2": "a/b"})
    # CLI
    assert (
        main(["partition", str(climb_pool.root), "--method", "rules", "--pin", "cluster_20=drama", "--force"])
        == 0
    )
    assert "cluster_20 -> drama" in capsys.readouterr().out
    assert set(climb_pool.read_attr("domains")["domain"][source == "cluster_20"]) == {"drama"}
    assert main(["partition", str(climb_pool.root), "--pin", "cluster_20", "--force"]) == 1


def test_pin_sources_adds_the_column_even_without_the_source() -> None:
    table = pa.table(
        {
            "domain": ["a", "b"],
            "p_a": pa.array([0.9, 0.2], pa.float32()),
            "p_b": pa.array([0.1, 0.8], pa.float32()),
            "domain_method": ["m", "m"],
        }
    )
    out = pin_sources(table, ["s1", "s2"], {"s9": "new"})
    assert out.column_names == ["domain", "p_a", "p_b", "p_new", "domain_method"]
    assert out.column("p_new").to_pylist() == [0.0, 0.0] and out.column("domain").to_pylist() == ["a", "b"]
    out = pin_sources(table, ["s1", "s2"], {"s1": "b"})
    assert out.column("domain").to_pylist() == ["b", "b"]
    assert out.column("p_b").to_pylist() == [1.0, pytest.approx(0.8)]
    assert out.column("domain_method").to_pylist() == ["pin:s1", "m"]
    assert pin_sources(table, ["s1", "s2"], {}) is table


# -- LDA topics ------------------------------------------------------------------------------------
VOCABS = {
    "sea": "ocean wave ship sailor harbour tide fish anchor coral reef",
    "food": "bread cheese butter oven recipe flour sugar baking dough cake",
    "space": "planet orbit rocket galaxy comet telescope astronaut lunar solar star",
    "law": "court judge lawyer verdict trial jury statute appeal contract witness",
}


def _topic_docs(n: int = 60) -> tuple[list[str], list[str], list[str]]:
    rng = np.random.default_rng(0)
    texts, ids, labels = [], [], []
    for i in range(n):
        topic = list(VOCABS)[i % 4]
        words = rng.choice(VOCABS[topic].split(), size=30)
        texts.append(" ".join(words))
        ids.append(f"d{i}")
        labels.append(topic)
    return texts, ids, labels


def test_lda_finds_k_topics_with_top_terms_and_round_trips(tmp_path: Path) -> None:
    texts, ids, labels = _topic_docs()
    cfg = ClusterConfig(algorithm="lda", k=4, merge_threshold=1.0, lda_max_iter=30, batch_size=64)
    model = ClusterModel(cfg).fit(texts, ids)
    assert model.n_clusters_ == 4 and len(model.summaries_) == 4
    merged, _raw, dist = model.predict(texts)
    assert normalized_mutual_info_score(labels, merged) > 0.9
    assert ((dist >= 0) & (dist <= 1)).all()
    for s in model.summaries_:  # each topic's top terms come from one vocabulary
        top = s["top_terms"][:5]
        assert len(top) == 5
        assert max(sum(t in VOCABS[v].split() for t in top) for v in VOCABS) == 5, top
        assert s["examples"] and s["examples"][0]["distance"] <= s["examples"][-1]["distance"]
    model.save(tmp_path / "lda")
    assert not list((tmp_path / "lda").glob("*.pkl"))
    again = ClusterModel.load(tmp_path / "lda")
    m2, _r2, d2 = again.predict(texts)
    np.testing.assert_array_equal(m2, merged)
    np.testing.assert_allclose(d2, dist, atol=1e-6)
    # near-identical topics merge like k-means clusters do
    merged_model = ClusterModel(cfg.model_copy(update={"k": 8, "merge_threshold": 0.5})).fit(texts, ids)
    assert merged_model.n_clusters_ < 8


def test_summarise_groups_top_terms() -> None:
    texts, ids, labels = _topic_docs(40)
    summaries = summarise_groups(texts, ids, labels, ClusterConfig(top_terms=5, examples=2))
    assert [s["domain"] for s in summaries] == list(VOCABS)
    for s in summaries:
        assert set(s["top_terms"]) <= set(VOCABS[s["domain"]].split()) and len(s["top_terms"]) == 5
        assert len(s["examples"]) == 2 and s["size"] == 10


def test_lda_topics_on_the_climblab_sample(
    climb_pool: Pool, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "topics.json"
    argv = ["cluster", str(climb_pool.root), "--algorithm", "lda", "--k", "5", "--merge-threshold", "1.0"]
    argv += ["--fit-sample", "600"]
    assert main([*argv, "--out", str(out), "--force"]) == 0
    assert "5 LDA topics" in capsys.readouterr().out
    summaries = json.loads(out.read_text(encoding="utf-8"))
    assert len(summaries) == 5 and all(len(s["top_terms"]) >= 5 for s in summaries)
    assert sum(s["docs"] for s in summaries) == climb_pool.n_docs()
    attr = climb_pool.read_attr(CLUSTERS_ATTR)
    source = climb_pool.read_docs(["source"])["source"]
    assert set(attr["cluster"]) <= set(range(5))
    assert normalized_mutual_info_score(source, attr["cluster"]) > 0.5
    model = ClusterModel.load(climb_pool.attr_dir(CLUSTERS_ATTR) / CLUSTER_STATE)
    assert model.config.algorithm == "lda" and model.topic_word_.shape[0] == 5
    # topics as domains through partition
    config = PartitionConfig(
        method="clusters",
        clusters=ClusterConfig(algorithm="lda", k=5, merge_threshold=1.0, lda_max_iter=5, fit_sample=600),
    )
    summary = partition_pool(climb_pool, config, force=True)
    assert set(summary["domains"]) <= {f"cluster_{c:02d}" for c in range(5)}
