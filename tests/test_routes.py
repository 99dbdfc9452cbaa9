"""Merged proxies and MixMin: merging real DoRA components of a tiny Llama, and MixMin's convex optimiser."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mixlab.evaluation.config import EvalConfig
from mixlab.evaluation.multiple_choice import load_model
from mixlab.evaluation.runner import evaluate_loaded, evaluate_run
from mixlab.proxies.components import component_table, train_seconds
from mixlab.proxies.config import ProxyConfig
from mixlab.proxies.merging import ComponentWeights, MergedProxy, merge_coefficients
from mixlab.proxies.presets import build_model
from mixlab.proxies.trainer import train_proxy
from mixlab.search.mixmin import TaskItems, mixture_predictions, read_task_items, search_mixmin, solve_mixmin
from mixlab.tokenization import load_tokenizer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
torch.set_num_threads(1)


def _texts(name: str, n: int) -> list[str]:
    path = DATA / "corpus" / name
    if not path.exists():
        pytest.skip(f"shared data missing: {path}")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line)["text"][:600] for _, line in zip(range(n), fh)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """A byte-level BPE tokenizer, a tiny Llama base and two DoRA components trained on two domains."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("routes")
    domains = {"prose": _texts("wikitext2.jsonl.gz", 40), "code": _texts("python_docs.jsonl.gz", 40)}
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([t for ts in domains.values() for t in ts], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.save_pretrained(root / "tok")
    tokenizer = load_tokenizer(str(root / "tok"))
    torch.manual_seed(0)
    base = build_model(
        "demo", len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    )
    base.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    cfg = ProxyConfig(
        mode="dora",
        base_model=str(root / "base"),
        lr=2e-2,
        max_steps=4,
        block_size=32,
        batch_size=4,
        num_threads=1,
    )
    for name, texts in domains.items():
        train_proxy(cfg, texts, str(root / "tok"), root / name)
    task = root / "task.jsonl"
    rows = [
        {"question": "def add(a, b): return", "choices": ["a + b", "the river"], "answer": 0},
        {"question": "The history of the town", "choices": ["import os", "began in 1900"], "answer": 1},
        {"question": "for i in range(3):", "choices": ["print(i)", "a quiet village"], "answer": 0},
    ]
    task.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return {"root": root, "base": root / "base", "prose": root / "prose", "code": root / "code", "task": task}


def test_merged_weights_equal_the_formula_and_corners_equal_components(world: dict[str, Path | str]) -> None:
    from mixlab.proxies.merging import read_weights

    comps = {"prose": world["prose"], "code": world["code"]}
    cw = ComponentWeights.load(world["base"], comps)
    w0, wp, wc = read_weights(world["base"]), read_weights(world["prose"]), read_weights(world["code"])
    # DoRA changed every target (attention, MLP, embeddings, head), never the norms
    assert "model.layers.0.self_attn.q_proj.weight" in cw.changed and "lm_head.weight" in cw.changed
    assert "model.embed_tokens.weight" in cw.changed
    assert not any("norm" in k for k in cw.changed)
    merged = cw.merged([0.3, 0.7])
    for key in cw.changed:
        expected = w0[key] + 0.3 * (wp[key] - w0[key]) + 0.7 * (wc[key] - w0[key])
        torch.testing.assert_close(merged[key], expected, atol=1e-6, rtol=1e-5)
    corner = cw.merged([1.0, 0.0])
    assert all(torch.equal(corner[k], wp[k]) for k in cw.changed)

    # the in-memory merged model at a corner scores exactly like the component loaded from its folder
    ev = EvalConfig(tasks={"t": str(world["task"])}, batch_size=4, device="cpu")
    model, tokenizer = load_model(world["prose"], "cpu")
    proxy = MergedProxy(cw, model)
    proxy.set_coefficients([0.0, 1.0])  # move away first, then back to the prose corner
    proxy.set_coefficients([1.0, 0.0])
    root = Path(world["root"])
    in_memory = evaluate_loaded(model, tokenizer, ev, out_dir=root / "mem")
    from_folder = evaluate_run(world["prose"], ev, out_dir=root / "disk")
    assert in_memory == pytest.approx(from_folder, nan_ok=True)
    # and an interior mixture is a different model
    proxy.set_coefficients([0.5, 0.5])
    assert evaluate_loaded(model, tokenizer, ev)["t/gold_bpb"] != pytest.approx(from_folder["t/gold_bpb"])
    assert train_seconds([world["prose"], world["code"]]) > 0


def test_merge_coefficients_with_a_general_share() -> None:
    table = component_table(["code", "general", "rag"], general_share=0.5)
    assert list(table.index) == ["component-code", "component-general", "component-rag"]
    M = table.to_numpy().T  # domains x components
    assert M[:, 0].tolist() == [0.5, 0.5, 0.0] and M[:, 1].tolist() == [0.0, 1.0, 0.0]
    x = np.array([0.2, 0.5, 0.3])
    c = merge_coefficients(x, M)
    np.testing.assert_allclose(c, [0.4, 0.0, 0.6], atol=1e-12)
    np.testing.assert_allclose(M @ c, x, atol=1e-12)
    # pure components: the coefficients are the mixture
    np.testing.assert_allclose(merge_coefficients(x, component_table(["a", "b", "c"]).to_numpy().T), x)


def _items(name: str, gold_ll: list[list[float]], nbytes: list[float] | None = None) -> TaskItems:
    """Items with two choices whose wrong choice is very unlikely under every component."""
    L = np.asarray(gold_ll, dtype=np.float64)  # components x items
    choice_ll = [np.stack([L[:, j], np.full(L.shape[0], -50.0)], axis=1) for j in range(L.shape[1])]
    nb = np.ones(L.shape[1]) if nbytes is None else np.asarray(nbytes, dtype=np.float64)
    return TaskItems(name, choice_ll, np.zeros(L.shape[1], dtype=np.int64), nb)


def test_mixmin_corner_when_one_component_predicts_every_gold() -> None:
    items = _items("t", [[0.0, 0.0, 0.0], [-2.0, -0.5, -3.0], [-1.0, -1.0, -1.0]])
    c = solve_mixmin([items], np.zeros(3), np.ones(3))
    np.testing.assert_allclose(c, [1.0, 0.0, 0.0], atol=1e-6)
    assert mixture_predictions(items, c)["gold_bpb"] == pytest.approx(0.0, abs=1e-6)


def test_mixmin_matches_the_hand_solution_and_respects_caps() -> None:
    # A predicts item 1 (p=1) and never item 2 (p=e^-40), B the reverse; item weights 1/bytes.
    # minimise  -(1/b1) log w - (1/b2) log(1-w)  =>  w = (1/b1) / (1/b1 + 1/b2)
    items = _items("t", [[0.0, -40.0], [-40.0, 0.0]], nbytes=[2.0, 6.0])
    c = solve_mixmin([items], np.zeros(2), np.ones(2))
    assert c[0] == pytest.approx(0.75, abs=1e-4)
    capped = solve_mixmin([items], np.zeros(2), np.array([0.3, 1.0]))  # availability caps A at 0.3
    assert capped[0] == pytest.approx(0.3, abs=1e-6)
    # components with half general data: the data mixture M c is bounded, the optimum moves accordingly
    M = np.array([[0.5, 0.0], [0.5, 1.0]])  # domain A, general  x  component A, component general
    c2 = solve_mixmin([items], np.zeros(2), np.array([0.3, 1.0]), M)
    np.testing.assert_allclose(M @ c2, [0.3, 0.7], atol=1e-6)
    assert c2[0] == pytest.approx(0.6, abs=1e-6)


def test_search_mixmin_total_and_tasks_from_eval_files(tmp_path: Path) -> None:
    def write(comp: str, lls: list[list[float]]) -> Path:
        d = tmp_path / comp
        d.mkdir()
        recs = [
            {"doc_index": j, "loglikelihoods": ll, "answer": 0, "gold_bpb": -ll[0] / (math.log(2) * 4)}
            for j, ll in enumerate(lls)
        ]
        (d / "t1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
        (d / "t2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reversed(recs)))
        return d

    a = write("a", [[-1.0, -9.0], [-2.0, -9.0]])
    b = write("b", [[-8.0, -1.0], [-7.0, -1.0]])
    items = {t: read_task_items([a, b], t) for t in ("t1", "t2")}
    assert items["t1"].nbytes.tolist() == [4.0, 4.0]
    res = search_mixmin(
        items,
        ["da", "db"],
        ["component-da", "component-db"],
        np.eye(2),
        np.zeros(2),
        np.ones(2),
        {"da": 0.5, "db": 0.5},
    )
    total = res["objectives"]["total"]  # type: ignore[index]
    assert total["weights"]["da"] == pytest.approx(1.0, abs=1e-6)
    assert total["direction"] == "min" and total["interval"][0] <= total["predicted"] <= total["interval"][1]
    assert set(res["objectives"]) == {"total", "t1", "t2"}  # type: ignore[arg-type]


def test_component_of_a_small_domain_fills_up_with_general_data() -> None:
    table = component_table(["code", "general", "rag"], caps=[0.9, 1.0, 1.0])
    assert table.loc["component-code"].tolist() == pytest.approx([0.9, 0.1, 0.0])
    assert table.loc["component-rag"].tolist() == [0.0, 0.0, 1.0]
    # the general component itself too small: the rest goes to the others by their spare caps
    table = component_table(["code", "general", "rag"], caps=[1.0, 0.5, 1.0])
    assert table.loc["component-general"].tolist() == pytest.approx([0.25, 0.5, 0.25])
    x = np.array([0.45, 0.1, 0.45])  # a mixture the components reach with non-negative coefficients
    c = merge_coefficients(x, table.to_numpy().T)
    np.testing.assert_allclose(table.to_numpy().T @ c, x, atol=1e-12)


def test_norm_preserving_merge_keeps_corners_and_restores_the_update_norm(
    world: dict[str, Path | str],
) -> None:
    from mixlab.proxies.merging import read_weights

    cw = ComponentWeights.load(world["base"], {"prose": world["prose"], "code": world["code"]})
    w0, wp, wc = read_weights(world["base"]), read_weights(world["prose"]), read_weights(world["code"])
    corner = cw.merged([0.0, 1.0], "norm")
    assert all(torch.equal(corner[k], wc[k]) for k in cw.changed)
    linear, norm = cw.merged([0.4, 0.6]), cw.merged([0.4, 0.6], "norm")
    for key in cw.changed:
        dp, dc = wp[key] - w0[key], wc[key] - w0[key]
        target = 0.4 * float(dp.norm()) + 0.6 * float(dc.norm())
        assert float((norm[key] - w0[key]).norm()) == pytest.approx(target, rel=1e-4)
        assert float((linear[key] - w0[key]).norm()) <= target * (1 + 1e-5)  # the triangle inequality
        cos = torch.nn.functional.cosine_similarity(
            (norm[key] - w0[key]).flatten(), (linear[key] - w0[key]).flatten(), dim=0
        )
        assert float(cos) == pytest.approx(1.0, abs=1e-5)  # same direction, only longer
    with pytest.raises(ValueError, match="unknown merge rule"):
        cw.merged([0.5, 0.5], "ties")
