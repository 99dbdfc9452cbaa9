"""select: hash-ranked selection at an exact token budget, quality policy, soft labels, exports, CLI."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mixlab.cli import main
from mixlab.mixtures.catalog import Catalog
from mixlab.pool.ingest import ingest
from mixlab.pool.pool import Pool
from mixlab.pool.readers import RawDoc, read_any
from mixlab.select import QualityPolicy, SelectConfig, export_selection, select_documents
from mixlab.select.quotas import ShortfallError
from mixlab.select.selection import assign_soft_domains
from mixlab.tokenization import count_tokens

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GPT2 = SHARED / "tokenizers" / "gpt2" / "tokenizer.json"
SOURCE_DOMAIN = {
    "foldoc": "general",
    "jargon": "general",
    "python_docs": "code",
    "gsm8k_train": "reasoning",
    "bfcl": "function_calling",
    "xquad": "rag",
    "tinyshakespeare": "roleplay",
}
DOCS_PER_SOURCE = {"python_docs": 12, "xquad": 25}  # others: 45; noise: 45
DOMAINS = sorted(set(SOURCE_DOMAIN.values()))

pytestmark = pytest.mark.skipif(
    not GPT2.exists(), reason="../shared/data (corpus, GPT-2 tokenizer) is not available"
)


def _bucket(doc_id: str) -> int:
    return int(hashlib.md5(doc_id.encode()).hexdigest(), 16) % 4


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Pool:
    """~340 real corpus documents (incl. noise) with domains, quality, dedup and decontam attributes."""
    root = tmp_path_factory.mktemp("select")
    inputs = root / "in"
    inputs.mkdir()
    for src in [*SOURCE_DOMAIN, "noise"]:
        with gzip.open(SHARED / "corpus" / f"{src}.jsonl.gz", "rt", encoding="utf-8") as fh:
            lines = [line for _, line in zip(range(DOCS_PER_SOURCE.get(src, 45)), fh, strict=False)]
        (inputs / f"{src}.jsonl").write_text("".join(lines), encoding="utf-8")
    p = ingest([inputs], root / "pool", tokenizer=str(GPT2), shard_docs=100)
    for shard in p.shards:
        t = p.read_shard(shard, ["id", "source"]).to_pandas()
        dom = [SOURCE_DOMAIN.get(s, "general") for s in t["source"]]
        probs = {f"p_{d}": pa.array([0.75 if d == x else 0.05 for x in dom], pa.float32()) for d in DOMAINS}
        p.write_attr("domains", shard, pa.table({"domain": dom, **probs}))
        ids = t["id"].tolist()
        p.write_attr(
            "quality",
            shard,
            pa.table(
                {
                    "quality_score": [float(_bucket(i)) for i in ids],
                    "quality_bucket": [_bucket(i) for i in ids],
                    "quality_keep": [not i.startswith("noise") for i in ids],
                }
            ),
        )
        p.write_attr("dedup", shard, pa.table({"dup_keep": [not i.endswith("-3") for i in ids]}))
        p.write_attr("decontam", shard, pa.table({"contaminated": [i.endswith("-7") for i in ids]}))
    return p


@pytest.fixture(scope="module")
def docs(pool: Pool) -> pd.DataFrame:
    d = pool.read_docs(("id", "source", "n_tokens"))
    d["domain"] = [SOURCE_DOMAIN.get(s, "general") for s in d["source"]]
    d["excluded"] = d["id"].str.startswith("noise") | d["id"].str.endswith("-3") | d["id"].str.endswith("-7")
    d["bucket"] = [_bucket(i) for i in d["id"]]
    return d


MIX = {"general": 0.3, "code": 0.25, "reasoning": 0.15, "function_calling": 0.1, "rag": 0.1, "roleplay": 0.1}


def test_same_seed_same_selection_other_seed_differs(pool: Pool) -> None:
    a = select_documents(pool, MIX, SelectConfig(budget_tokens=30_000, seed=1))
    b = select_documents(pool, MIX, SelectConfig(budget_tokens=30_000, seed=1))
    c = select_documents(pool, MIX, SelectConfig(budget_tokens=30_000, seed=2))
    assert a.chosen["id"].tolist() == b.chosen["id"].tolist()
    assert a.manifest == b.manifest
    assert set(a.chosen["id"]) != set(c.chosen["id"])
    # output order is a shuffle, not grouped by domain
    changes = int((a.chosen["domain"] != a.chosen["domain"].shift()).sum())
    assert changes > len(a.chosen) / 3


def test_budget_hit_within_one_document_overall_and_per_domain(pool: Pool, docs: pd.DataFrame) -> None:
    budget = 40_000
    sel = select_documents(pool, MIX, SelectConfig(budget_tokens=budget, seed=0))
    m = sel.manifest
    biggest = int(sel.chosen["n_tokens"].max())
    assert m["total_tokens"] == int(sel.chosen["n_tokens"].sum())
    assert abs(m["total_tokens"] - budget) <= biggest
    for domain, w in MIX.items():
        got = int(sel.chosen.loc[sel.chosen["domain"] == domain, "n_tokens"].sum())
        assert got == m["domains"][domain]["tokens"]
        largest_in_domain = int(docs.loc[docs["domain"] == domain, "n_tokens"].max())
        assert abs(got - w * budget) <= largest_in_domain, domain
    # nothing excluded was selected, counted by reason, and kept + excluded adds up
    assert not set(sel.chosen["id"]) & set(docs.loc[docs["excluded"], "id"])
    ex = m["exclusions"]
    dup, contam = docs["id"].str.endswith("-3"), docs["id"].str.endswith("-7")  # one reason each, in order
    assert ex["contaminated"]["docs"] == int(contam.sum())
    assert ex["duplicate"]["docs"] == int(dup.sum())
    assert ex["low_quality"]["docs"] == int((docs["id"].str.startswith("noise") & ~dup & ~contam).sum())
    assert m["kept_documents"] + sum(v["docs"] for v in ex.values()) == m["pool_documents"] == len(docs)


def test_exports_readable_and_manifest_tokens_match_retokenized_text(pool: Pool, tmp_path: Path) -> None:
    config = SelectConfig(budget_tokens=25_000, seed=3, formats=["jsonl", "parquet", "lmflow"])
    sel = select_documents(pool, MIX, config)
    out = export_selection(pool, sel, tmp_path / "ds", config.formats, part_chars=20_000)  # several parts
    manifest = json.loads((out / "manifest.json").read_text())
    rows = [json.loads(line) for line in (out / "data.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == sel.chosen["id"].tolist()
    texts = [r["text"] for r in rows]
    n_tok = count_tokens(pool.tokenizer(), texts)
    per_domain = pd.Series(n_tok).groupby([r["domain"] for r in rows]).sum()
    for domain, entry in manifest["domains"].items():
        assert int(per_domain.get(domain, 0)) == entry["tokens"], domain
    assert int(n_tok.sum()) == manifest["total_tokens"]
    for name in ("data.jsonl", "data.parquet", "data.json"):
        back = list(read_any(out / name))
        assert all(isinstance(d, RawDoc) for d in back)
        assert [d.text for d in back] == texts, name
        assert manifest["files"][name]["sha256"] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    assert json.loads((out / "data.json").read_text())["type"] == "text_only"
    # same selection exported again is byte-identical
    again = export_selection(pool, sel, tmp_path / "ds2", config.formats)
    for name in ("data.jsonl", "data.parquet", "data.json", "manifest.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes()


def test_repetition_up_to_epochs_cap_and_shortfall(pool: Pool, docs: pd.DataFrame) -> None:
    kept = docs[~docs["excluded"]]
    rag_tokens = int(kept.loc[kept["domain"] == "rag", "n_tokens"].sum())
    budget = 30_000
    weight = 2.5 * rag_tokens / budget  # rag must be read 2.5 times
    mix = {"rag": weight, "general": 1 - weight}
    sel = select_documents(pool, mix, SelectConfig(budget_tokens=budget, max_epochs=3))
    rag = sel.chosen[sel.chosen["domain"] == "rag"]
    counts = rag["id"].value_counts()
    n_rag = int((kept["domain"] == "rag").sum())
    assert len(counts) == n_rag and counts.min() == 2 and counts.max() == 3  # 2 whole epochs + partial one
    assert abs(int(rag["n_tokens"].sum()) - weight * budget) <= int(rag["n_tokens"].max())
    assert 2.0 < sel.manifest["domains"]["rag"]["epochs"] <= 3.0
    assert sel.manifest["domains"]["rag"]["repeats"] == len(rag) - n_rag
    assert sorted(rag["repeat"].unique()) == [0, 1, 2]

    with pytest.raises(ShortfallError) as err:
        select_documents(pool, mix, SelectConfig(budget_tokens=budget, max_epochs=2))
    msg = str(err.value)
    assert "'rag'" in msg and f"{rag_tokens:,} available tokens" in msg and "max_epochs 2" in msg
    assert f"{weight * budget:,.0f}" in msg

    red = select_documents(
        pool, mix, SelectConfig(budget_tokens=budget, max_epochs=2, shortfall="redistribute")
    )
    assert red.manifest["redistributed"]["rag"]["granted_tokens"] == pytest.approx(2 * rag_tokens)
    assert red.manifest["redistributed"]["general"]["delta_tokens"] > 0
    assert abs(red.total_tokens - budget) <= int(red.chosen["n_tokens"].max())
    assert red.chosen.loc[red.chosen["domain"] == "rag", "id"].value_counts().max() == 2


def test_quality_policy_shares_and_top_k(pool: Pool, docs: pd.DataFrame) -> None:
    budget = 20_000
    policy = QualityPolicy.model_validate({"3": 0.5, "2": 0.3, "1": 0.2, "0": 0})
    sel = select_documents(pool, {"general": 1.0}, SelectConfig(budget_tokens=budget, quality_policy=policy))
    assert 0 not in set(sel.chosen["bucket"])
    buckets = sel.manifest["domains"]["general"]["buckets"]
    largest = int(docs.loc[docs["domain"] == "general", "n_tokens"].max())
    for b, share in ((3, 0.5), (2, 0.3), (1, 0.2)):
        got = int(sel.chosen.loc[sel.chosen["bucket"] == b, "n_tokens"].sum())
        assert got == buckets[str(b)]["tokens"]
        assert abs(got - share * budget) <= 2 * largest, b
    top = select_documents(
        pool, {"general": 1.0}, SelectConfig(budget_tokens=budget, quality_policy={"top_k_buckets": 2})
    )
    assert set(top.chosen["bucket"]) <= {2, 3}
    assert QualityPolicy.model_validate("all").mode == "all"
    with pytest.raises(ValueError):
        QualityPolicy.model_validate({"3": -1})


def test_soft_label_assignment_follows_probabilities() -> None:
    rng = np.random.default_rng(0)
    n, names = 20_000, ["a", "b", "c"]
    probs = rng.dirichlet([0.5, 1.0, 2.0], size=n)
    ids = [f"doc-{i}" for i in range(n)]
    frame = pd.DataFrame({"id": ids, "n_tokens": 1, "excluded": ""})
    catalog = Catalog(docs=frame, domains=names, domain_origin="test", probs=probs, prob_domains=names)
    got = assign_soft_domains(catalog, seed=0)
    assert (got == assign_soft_domains(catalog, seed=0)).all()
    assert (got != assign_soft_domains(catalog, seed=1)).mean() > 0.2
    for j, name in enumerate(names):
        expected = probs[:, j].sum()
        sd = np.sqrt((probs[:, j] * (1 - probs[:, j])).sum())
        assert abs((got == name).sum() - expected) < 4 * sd, name
    # a one-hot row always lands on its domain
    one_hot = np.eye(3)[rng.integers(0, 3, size=500)]
    cat2 = Catalog(docs=frame.iloc[:500], domains=names, domain_origin="t", probs=one_hot, prob_domains=names)
    assert (assign_soft_domains(cat2, seed=5) == np.array(names, dtype=object)[one_hot.argmax(axis=1)]).all()


def test_soft_labels_in_selection(pool: Pool) -> None:
    hard = select_documents(pool, MIX, SelectConfig(budget_tokens=20_000))
    soft = select_documents(pool, MIX, SelectConfig(budget_tokens=20_000, soft_labels=True))
    assert soft.manifest["soft_labels"] is True
    src = pool.read_docs(("id", "source")).set_index("id")["source"]
    hard_dom = soft.chosen["id"].map(src).map(lambda s: SOURCE_DOMAIN.get(s, "general"))
    mismatch = float((hard_dom != soft.chosen["domain"]).mean())
    assert 0.05 < mismatch < 0.6  # p = 0.75 on the source's domain: some documents move
    assert (
        hard.chosen["domain"] == hard.chosen["id"].map(src).map(SOURCE_DOMAIN.get).fillna("general")
    ).all()


def test_unknown_domain_and_source_fallback(pool: Pool) -> None:
    with pytest.raises(ValueError, match="'legal'.*not found"):
        select_documents(pool, {"legal": 0.5, "code": 0.5}, SelectConfig(budget_tokens=1000))
    cfg = SelectConfig(
        budget_tokens=5_000, domain_from="source", source_map={"gsm8k_train": "math", "bfcl": "tools"}
    )
    sel = select_documents(pool, {"math": 0.5, "tools": 0.5}, cfg)
    assert set(sel.chosen["domain"]) == {"math", "tools"}
    assert sel.manifest["exclusions"]["unmapped_source"]["docs"] > 0
    assert sel.manifest["domain_origin"] == "source"


def test_cli_select_and_build(pool: Pool, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mix_path = tmp_path / "mixture.json"
    mix_path.write_text(json.dumps({"weights": MIX}))
    out = tmp_path / "sel"
    rc = main(
        [
            "select",
            str(pool.root),
            "--mixture",
            str(mix_path),
            "--budget",
            "12k",
            "--format",
            "jsonl,lmflow",
            "--seed",
            "4",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["budget_tokens"] == 12_000 and m["seed"] == 4 and set(m["files"]) == {"data.jsonl", "data.json"}

    ratios = tmp_path / "ratios.csv"
    ratios.write_text("run," + ",".join(MIX) + "\nmix-000," + ",".join(str(v) for v in MIX.values()) + "\n")
    out2 = tmp_path / "sel2"
    assert (
        main(
            [
                "select",
                str(pool.root),
                "--ratios",
                str(ratios),
                "--run",
                "mix-000",
                "--budget",
                "12000",
                "--seed",
                "4",
                "--out",
                str(out2),
            ]
        )
        == 0
    )
    assert (out2 / "data.jsonl").read_bytes() == (out / "data.jsonl").read_bytes()

    optimal = tmp_path / "optimal.json"
    optimal.write_text(
        json.dumps(
            {
                "objectives": {"total": {"weights": MIX}, "code_only": {"weights": {"code": 1}}},
                "chosen": "total",
            }
        )
    )
    out3 = tmp_path / "final"
    capsys.readouterr()
    assert (
        main(
            [
                "build",
                str(pool.root),
                "--optimal",
                str(optimal),
                "--objective",
                "code_only",
                "--budget",
                "8k",
                "--format",
                "parquet",
                "--quality-policy",
                '{"3": 0.6, "2": 0.4}',
                "--out",
                str(out3),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert f"manifest: {out3 / 'manifest.json'}" in printed and str(out3 / "data.parquet") in printed
    m3 = json.loads((out3 / "manifest.json").read_text())
    assert set(m3["mixture"]) == {"code"} and m3["quality_policy"]["mode"] == "shares"

    rc = main(
        [
            "select",
            str(pool.root),
            "--mixture",
            str(mix_path),
            "--budget",
            "10B",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert rc == 1
    assert "not enough data" in capsys.readouterr().err
