"""mixtures: RegMix-style Dirichlet candidates around the token prior, caps, min weight, ratios.csv CLI."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mixlab.cli import main
from mixlab.mixtures import MixtureConfig, PoolViewConfig, available_tokens, sample_mixtures, token_prior
from mixlab.mixtures.sampler import MixtureSamplingError, constrain_weights, entropy, repeat_seed
from mixlab.pool.ingest import ingest
from mixlab.pool.pool import Pool
from mixlab.swarm import read_ratios

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GPT2 = SHARED / "tokenizers" / "gpt2" / "tokenizer.json"
SOURCE_DOMAIN = {
    "jargon": "general",
    "python_docs": "code",
    "gsm8k_train": "reasoning",
    "bfcl": "function_calling",
    "xquad": "rag",
    "tinyshakespeare": "roleplay",
}
DOMAINS = sorted(set(SOURCE_DOMAIN.values()))

pytestmark = pytest.mark.skipif(
    not GPT2.exists(), reason="../shared/data (corpus, GPT-2 tokenizer) is not available"
)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Pool:
    """~250 real corpus documents (incl. noise) with a `domains` and a `quality` attribute."""
    root = tmp_path_factory.mktemp("mixtures")
    inputs = root / "in"
    inputs.mkdir()
    for src in [*SOURCE_DOMAIN, "noise"]:
        n = 10 if src == "python_docs" else 35
        with gzip.open(SHARED / "corpus" / f"{src}.jsonl.gz", "rt", encoding="utf-8") as fh:
            lines = [line for _, line in zip(range(n), fh, strict=False)]
        (inputs / f"{src}.jsonl").write_text("".join(lines), encoding="utf-8")
    p = ingest([inputs], root / "pool", tokenizer=str(GPT2), shard_docs=120)
    for shard in p.shards:
        t = p.read_shard(shard, ["id", "source"]).to_pandas()
        dom = [SOURCE_DOMAIN.get(s, "general") for s in t["source"]]
        probs = {f"p_{d}": pa.array([0.9 if d == x else 0.02 for x in dom], pa.float32()) for d in DOMAINS}
        p.write_attr("domains", shard, pa.table({"domain": dom, **probs}))
        p.write_attr("quality", shard, pa.table({"quality_keep": [s != "noise" for s in t["source"]]}))
    return p


def _expected_tokens(pool: Pool) -> dict[str, int]:
    docs = pool.read_docs(("source", "n_tokens"))
    docs = docs[docs["source"] != "noise"]
    return {d: int(docs.loc[docs["source"].map(SOURCE_DOMAIN) == d, "n_tokens"].sum()) for d in DOMAINS}


def test_available_tokens_and_prior_after_exclusions(pool: Pool) -> None:
    avail = available_tokens(pool)
    assert avail == _expected_tokens(pool)  # noise (quality_keep False) is excluded
    prior = token_prior(pool)
    assert sum(prior.values()) == pytest.approx(1.0)
    assert prior["code"] == pytest.approx(avail["code"] / sum(avail.values()))
    keep_noise = available_tokens(pool, view=PoolViewConfig(exclude_low_quality=False))
    assert sum(keep_noise.values()) > sum(avail.values())
    by_source = available_tokens(pool, view=PoolViewConfig(domain_from="source"))
    assert "noise" not in by_source and by_source["xquad"] == avail["rag"]
    soft = available_tokens(pool, view=PoolViewConfig(soft_labels=True))
    assert sum(soft.values()) == pytest.approx(sum(avail.values()), abs=len(DOMAINS))
    assert soft["code"] < avail["code"]  # 10% of code's mass is spread to other domains


def test_rows_on_simplex_caps_and_min_weight(pool: Pool) -> None:
    avail = available_tokens(pool)
    prior = token_prior(pool)
    budget = 60_000
    cfg = MixtureConfig(n=80, seed=7, budget_tokens=budget, max_epochs=2, min_weight=0.02)
    ratios = sample_mixtures(prior, cfg, avail)
    assert list(ratios.index[:3]) == ["mix-000", "mix-001", "mix-002"] and len(ratios) == 80 + 3
    # three repeats (default): the prior and uniform mixtures first, then one from the rest, same weights
    assert list(ratios.index[80:]) == ["mix-000-seed1", "mix-001-seed1", "mix-041-seed1"]
    for rep in ratios.index[80:]:
        assert (ratios.loc[rep] == ratios.loc[rep.removesuffix("-seed1")]).all()
    assert [repeat_seed(r) for r in ("mix-000", "mix-040-seed1", "mix-1-seed12")] == [0, 1, 12]
    assert list(ratios.columns) == DOMAINS
    w = ratios.to_numpy()
    assert np.allclose(w.sum(axis=1), 1.0)
    assert ((w == 0) | (w >= 0.02 - 1e-12)).all()
    caps = np.array([avail[d] * 2 / budget for d in DOMAINS])
    assert (caps < 1).any()  # the test exercises real caps
    assert (w <= caps + 1e-12).all()
    capped = DOMAINS[int(np.argmin(caps))]
    assert ratios[capped].max() > 0.5 * caps.min()  # capped domains still get used
    assert sample_mixtures(prior, cfg, avail).equals(ratios)
    assert not sample_mixtures(prior, cfg.model_copy(update={"seed": 8}), avail).equals(ratios)


def test_prior_and_uniform_rows_and_no_caps_without_budget(pool: Pool) -> None:
    prior = token_prior(pool)
    ratios = sample_mixtures(prior, MixtureConfig(n=5, min_weight=0.0))
    assert ratios.loc["mix-000"].to_dict() == pytest.approx(prior)
    assert ratios.loc["mix-001"].to_numpy() == pytest.approx(np.full(len(DOMAINS), 1 / len(DOMAINS)))
    no_prior = sample_mixtures(prior, MixtureConfig(n=5, include_prior=False))
    assert not np.allclose(no_prior.loc["mix-000"].to_numpy(), list(prior.values()))


def test_concentration_controls_entropy_and_distance_to_prior(pool: Pool) -> None:
    prior = token_prior(pool)
    p = np.array([prior[d] for d in DOMAINS])
    low = sample_mixtures(
        prior, MixtureConfig(n=150, concentrations=[0.1], include_prior=False, min_weight=0)
    )
    high = sample_mixtures(
        prior, MixtureConfig(n=150, concentrations=[30.0], include_prior=False, min_weight=0)
    )
    assert entropy(low).mean() < entropy(high).mean() - 0.3
    l1_low = np.abs(low.to_numpy() - p).sum(axis=1).mean()
    l1_high = np.abs(high.to_numpy() - p).sum(axis=1).mean()
    assert l1_high < 0.5 * l1_low
    mixed = sample_mixtures(prior, MixtureConfig(n=100, include_prior=False, min_weight=0))
    ent = entropy(mixed).to_numpy()
    assert ent[0::5].mean() < ent[4::5].mean()  # rows cycle over concentrations 0.1 ... 10


def test_constrain_weights_properties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        d = int(rng.integers(2, 9))
        caps = rng.uniform(0.05, 1.0, size=d)
        if caps.sum() < 1.2:
            continue
        raw = rng.dirichlet(np.full(d, 0.3))
        w = constrain_weights(raw, caps, 0.03)
        if w is None:
            continue
        assert w.sum() == pytest.approx(1.0)
        assert (w <= caps + 1e-12).all()
        assert ((w == 0) | (w >= 0.03 - 1e-12)).all()


def test_infeasible_budget_is_a_clear_error(pool: Pool) -> None:
    avail = available_tokens(pool)
    cfg = MixtureConfig(n=4, budget_tokens=10 * sum(avail.values()), max_epochs=2)
    with pytest.raises(MixtureSamplingError, match="cannot fill a budget.*max_epochs=2"):
        sample_mixtures(token_prior(pool), cfg, avail)


def test_cli_mixtures_writes_ratios(pool: Pool, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ratios.csv"
    conf = tmp_path / "mixtures.yaml"
    conf.write_text(
        "mixtures:\n  concentrations: [0.5, 2]\n  min_weight: 0.05\n  domains: [code, rag, reasoning]\n"
    )
    rc = main(
        [
            "mixtures",
            str(pool.root),
            "--n",
            "12",
            "--config",
            str(conf),
            "--budget",
            "20k",
            "--max-epochs",
            "3",
            "--seed",
            "3",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    ratios = read_ratios(out)
    assert len(ratios) == 12 + 3 and list(ratios.columns) == ["code", "rag", "reasoning"]
    assert ratios.index[0] == "mix-000"
    w = ratios.to_numpy()
    assert ((w < 1e-9) | (w >= 0.05 - 1e-7)).all()
    assert "wrote 12 mixtures (+3 repeated" in capsys.readouterr().out
    conf.write_text("mixtures:\n  concentrations: [-1]\n")
    assert main(["mixtures", str(pool.root), "--config", str(conf), "--out", str(out)]) == 1
    assert "concentrations" in capsys.readouterr().err
