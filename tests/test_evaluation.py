"""Evaluation engine: task loading, lm-eval-exact multiple-choice scoring, domain loss, results, CLI.

A real tiny Llama and a real BPE tokenizer (trained here, BOS added by its post-processor like Llama's) are
saved to disk; expected log-likelihoods are computed with a plain full forward pass per (context, choice)
and compared with the packed/batched scorer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mixlab.cli import main
from mixlab.evaluation.domain_loss import domain_losses
from mixlab.evaluation.multiple_choice import (
    doc_record,
    encode_documents,
    evaluate_task,
    load_model,
    mean_stderr,
    score_documents,
)
from mixlab.evaluation.results import metrics_row, read_json_metrics
from mixlab.evaluation.tasks import Task, TaskFormatError, load_task, parse_task_specs

CORPUS = [
    "Question: What is the capital of France?\nAnswer: Paris is the capital of France.",
    "Question: How many legs does a spider have?\nAnswer: A spider has eight legs.",
    "Context: The river flows north through the old town.\nQuestion: Where does the river flow?\nAnswer: north",
    "The quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun.",
    "def add(a, b):\n    return a + b  # a small python function",
] * 10

ELMB_DOCS = [
    {
        "question": "What is the capital of France?",
        "choices": ["Paris", "Rome", "a very long wrong answer"],
        "answer": 0,
    },
    {"question": "How many legs does a spider have?", "choices": ["eight", "six"], "answer": 1},
    {
        "ctx": "The river flows north through the old town.",
        "question": "Where does the river flow?",
        "choices": ["north", "south", "east", "west"],
        "answer": 0,
    },
    {"question": "Pick one", "choices": [" leading space", "trailing space "], "answer": 1},
    {
        "question": "Who wrote it?",
        "choices": ["the fox", "the lazy dog jumps over the quick brown fox"],
        "answer": 1,
    },
]


def _train_tokenizer(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tk.train_from_iterator(CORPUS, trainer)
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    tok.save_pretrained(out)


def _save_model(out: Path, vocab: int, max_positions: int = 256, seed: int = 0) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        initializer_range=0.2,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    LlamaForCausalLM(cfg).save_pretrained(out)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny_llama")
    _train_tokenizer(out)
    from transformers import AutoTokenizer

    _save_model(out, vocab=len(AutoTokenizer.from_pretrained(str(out))))
    return out


@pytest.fixture(scope="module")
def loaded(model_dir: Path) -> tuple[Any, Any]:
    torch.set_num_threads(1)
    return load_model(model_dir, device="cpu")


@pytest.fixture()
def elmb_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_task.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in ELMB_DOCS), encoding="utf-8")
    return path


def _reference_loglikelihood(
    model: Any, tokenizer: Any, context: str, continuation: str, max_length: int = 10**9
) -> float:
    """lm-eval's rule written out plainly: move trailing spaces, encode, one full forward, sum log-probs."""
    n = len(context) - len(context.rstrip())
    if n:
        continuation, context = context[-n:] + continuation, context[:-n]
    if context == "":
        cont = tokenizer.encode(continuation, add_special_tokens=False)
        ctx = [tokenizer.bos_token_id]
    else:
        whole = tokenizer.encode(context + continuation)
        ctx = tokenizer.encode(context)
        cont = whole[len(ctx) :]
    ids = (ctx + cont)[-(max_length + 1) :][:-1]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
    return sum(float(logp[len(ids) - len(cont) + t, tok]) for t, tok in enumerate(cont))


# ------------------------------------------------------------------------------------------ scoring
def test_packed_scores_equal_plain_full_forward(loaded: tuple[Any, Any], elmb_file: Path) -> None:
    model, tok = loaded
    task = load_task("tiny", elmb_file)
    result = evaluate_task(model, tok, task, batch_size=2)
    assert [r["doc_index"] for r in result.per_doc] == list(range(len(ELMB_DOCS)))
    for i, rec in enumerate(result.per_doc):
        expected = [_reference_loglikelihood(model, tok, task.context(i), c) for c in task.continuations(i)]
        assert rec["loglikelihoods"] == pytest.approx(expected, abs=1e-4)
        assert rec["answer"] == ELMB_DOCS[i]["answer"]
    # the forced plain path (lm-eval's own batching) gives the same numbers
    encoded = encode_documents(tok, task, range(len(task)))
    plain = score_documents(model, tok, encoded, batch_size=3, packed=False)
    packed = score_documents(model, tok, encoded, batch_size=3, packed=True)
    for a, b in zip(plain, packed, strict=True):
        assert a == pytest.approx(b, abs=1e-4)


def test_encoding_follows_lmeval_rules(loaded: tuple[Any, Any]) -> None:
    _, tok = loaded
    task = Task(
        name="t", docs=[{"q": "Say it: "}], doc_to_text="{{q}}", doc_to_choice=["yes", "no"], doc_to_target=0
    )
    (doc,) = encode_documents(tok, task, [0])
    assert doc.context[0] == tok.bos_token_id  # BOS added because this tokenizer adds it
    assert doc.context == tok.encode("Say it:")  # trailing space moved out of the context ...
    whole = tok.encode("Say it:  yes")  # ... into the continuation (context space + delimiter)
    assert doc.continuations[0] == whole[len(doc.context) :]
    # a context that already starts with the BOS text gets no second BOS
    bos_task = Task(
        name="b", docs=[{"q": "<s>Hi"}], doc_to_text="{{q}}", doc_to_choice=["x", "y"], doc_to_target=0
    )
    (bos_doc,) = encode_documents(tok, bos_task, [0])
    assert bos_doc.context == tok.encode("<s>Hi", add_special_tokens=False)
    assert bos_doc.context.count(tok.bos_token_id) == 1


def test_empty_context_and_truncation_match_reference(tmp_path: Path, model_dir: Path) -> None:
    from transformers import AutoTokenizer

    small = tmp_path / "short_context_model"
    small.mkdir()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    tok.save_pretrained(small)
    _save_model(small, vocab=len(tok), max_positions=24, seed=1)
    model, tok = load_model(small, device="cpu")
    long_q = " ".join(["the quick brown fox jumps over the lazy dog"] * 4)
    task = Task(
        name="edge",
        docs=[
            {"q": "", "c": ["Paris", "Rome"]},
            {"q": long_q, "c": ["a spider", "eight legs"]},
            {"q": "Hi", "c": ["x", "y"]},
        ],
        doc_to_text="{{q}}",
        doc_to_choice="c",
        doc_to_target=0,
    )
    result = evaluate_task(model, tok, task, batch_size=4)
    for i, rec in enumerate(result.per_doc):
        expected = [
            _reference_loglikelihood(model, tok, task.context(i), c, max_length=24)
            for c in task.continuations(i)
        ]
        assert rec["loglikelihoods"] == pytest.approx(expected, abs=1e-4)


def test_acc_and_acc_norm_differ_on_crafted_case(loaded: tuple[Any, Any]) -> None:
    model, tok = loaded
    short, long = "x", " ".join(["the lazy dog jumps over the quick brown fox"] * 3)
    task = Task(name="crafted", docs=[{"question": "Which one?", "choices": [short, long], "answer": 1}])
    rec = evaluate_task(model, tok, task).per_doc[0]
    ll_short, ll_long = rec["loglikelihoods"]
    assert ll_short > ll_long  # fewer tokens: higher summed log-likelihood ...
    assert ll_long / len(long) > ll_short / len(short)  # ... but lower per character
    assert (rec["pred"], rec["acc"]) == (0, 0.0)
    assert (rec["pred_norm"], rec["acc_norm"]) == (1, 1.0)
    # pure arithmetic of the definitions, including the UTF-8 byte variant
    # per char: -2, -1.8, -1.19 -> 2; per UTF-8 byte ("é" is 2 bytes): -2, -0.9, -1.19 -> 1
    by_hand = doc_record(0, [-4.0, -9.0, -9.5], ["ab", "ééééé", "abcdefgh"], gold=1)
    assert (by_hand["pred"], by_hand["pred_norm"], by_hand["pred_bytes"]) == (0, 2, 1)
    assert (by_hand["acc"], by_hand["acc_norm"], by_hand["acc_bytes"]) == (0.0, 0.0, 1.0)


def test_continuous_metrics_match_hand_computation(loaded: tuple[Any, Any]) -> None:
    """gold_bpb, correct_prob and margin from a tiny model's own log-likelihoods, computed by hand."""
    model, tok = loaded
    docs = [
        {"question": "Which one?", "choices": ["yes", "no way", "perhaps é"], "answer": 2},
        {"question": "Pick the animal.", "choices": ["a cat", "blue"], "answer": 0},
        {"question": "And now?", "choices": ["x", "yy", "zzz", "wwww"], "answer": 1},
    ]
    task = Task(name="cont", docs=docs)
    result = evaluate_task(model, tok, task, batch_size=2)
    by_metric: dict[str, list[float]] = {"gold_bpb": [], "correct_prob": [], "margin": []}
    for i, rec in enumerate(result.per_doc):
        conts = task.continuations(i)
        lls = [_reference_loglikelihood(model, tok, task.context(i), c, max_length=256) for c in conts]
        gold = docs[i]["answer"]
        choices = docs[i]["choices"]
        bpb = -lls[gold] / (math.log(2) * len(conts[gold].encode("utf-8")))
        prob = math.exp(lls[gold]) / sum(math.exp(x) for x in lls)
        per_char = [ll / len(c) for ll, c in zip(lls, choices, strict=True)]
        margin = per_char[gold] - max(v for j, v in enumerate(per_char) if j != gold)
        assert rec["gold_bpb"] == pytest.approx(bpb, abs=1e-5)
        assert rec["correct_prob"] == pytest.approx(prob, abs=1e-6)
        assert rec["margin"] == pytest.approx(margin, abs=1e-5)
        assert (rec["margin"] > 0) == bool(rec["acc_norm"])  # margin's sign is what acc_norm reads
        by_metric["gold_bpb"].append(bpb)
        by_metric["correct_prob"].append(prob)
        by_metric["margin"].append(margin)
    for name, values in by_metric.items():
        assert result.metrics[name] == pytest.approx(float(np.mean(values)), abs=1e-5)
        assert result.metrics[f"{name}_stderr"] == pytest.approx(mean_stderr(values), abs=1e-5)
    # pure arithmetic: two choices with log-likelihoods -1 and -3 (gold 0), " ab" scored, choices "ab", "cd"
    by_hand = doc_record(0, [-1.0, -3.0], ["ab", "cd"], gold=0)
    assert by_hand["gold_bpb"] == pytest.approx(1.0 / (math.log(2) * 3))
    assert by_hand["correct_prob"] == pytest.approx(1 / (1 + math.exp(-2)))
    assert by_hand["margin"] == pytest.approx(-0.5 - -1.5)


def test_stderr_is_sample_std_over_sqrt_n() -> None:
    assert mean_stderr([1.0, 0.0, 1.0, 1.0]) == pytest.approx(0.25)  # sqrt(0.75/3)/sqrt(4)
    assert mean_stderr([1.0, 1.0]) == 0.0
    assert math.isnan(mean_stderr([1.0]))
    from lm_eval.api.metrics import mean_stderr as lmeval_stderr

    values = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    assert mean_stderr(values) == pytest.approx(lmeval_stderr(values), rel=1e-12)


# -------------------------------------------------------------------------------------------- tasks
def test_elmb_prompt_and_rag_prefix(elmb_file: Path) -> None:
    task = load_task("tiny", elmb_file)
    assert task.context(0) == "Question: What is the capital of France?\nAnswer:"
    assert task.context(2) == (
        "Context: The river flows north through the old town.\nQuestion: Where does the river flow?\nAnswer:"
    )
    assert task.continuations(1) == [" eight", " six"] and task.gold(1) == 1


def test_lmeval_yaml_task_loading(tmp_path: Path, elmb_file: Path) -> None:
    (tmp_path / "_base.yaml").write_text(
        "dataset_path: json\ntest_split: test\noutput_type: multiple_choice\ntarget_delimiter: ' '\n"
        "metric_list:\n  - metric: acc\n",
        encoding="utf-8",
    )
    (tmp_path / "t.yaml").write_text(
        "include: _base.yaml\ntask: tiny_yaml\n"
        f"dataset_kwargs:\n  data_files:\n    test: {elmb_file.name}\n"
        'doc_to_text: "{% if ctx %}Context: {{ctx}}\\n{% endif %}Question: {{question}}\\nAnswer:"\n'
        "doc_to_choice: '{{choices}}'\ndoc_to_target: '{{answer}}'\n",
        encoding="utf-8",
    )
    task = load_task("mine", tmp_path / "t.yaml")
    native = load_task("tiny", elmb_file)
    assert task.name == "mine" and len(task) == len(ELMB_DOCS)
    for i in range(len(task)):
        assert task.context(i) == native.context(i)
        assert task.choices(i) == native.choices(i)
        assert task.gold(i) == native.gold(i)
    # a target given as the answer text is turned into its index
    text_target = Task(
        name="t",
        docs=[{"c": ["no", "yes"], "a": "yes"}],
        doc_to_text="Q",
        doc_to_choice="c",
        doc_to_target="a",
    )
    assert text_target.gold(0) == 1


def test_yaml_errors_name_file_and_line(tmp_path: Path, elmb_file: Path) -> None:
    bad = tmp_path / "fn.yaml"
    bad.write_text(
        f"task: x\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {elmb_file}\n"
        "test_split: test\ndoc_to_text: !function utils.doc_to_text\ndoc_to_choice: choices\ndoc_to_target: answer\n",
        encoding="utf-8",
    )
    with pytest.raises(TaskFormatError, match=r"fn\.yaml:7: '!function'"):
        load_task("x", bad)
    gen = tmp_path / "gen.yaml"
    gen.write_text(
        f"task: g\ndataset_path: json\noutput_type: generate_until\ndataset_kwargs:\n  data_files: {elmb_file}\n"
        "test_split: test\ndoc_to_text: q\ndoc_to_choice: c\ndoc_to_target: a\n",
        encoding="utf-8",
    )
    with pytest.raises(TaskFormatError, match=r"gen\.yaml:3: output_type 'generate_until'"):
        load_task("g", gen)
    tmpl = tmp_path / "tmpl.yaml"
    tmpl.write_text(
        f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {elmb_file}\ntest_split: test\n"
        "doc_to_text: '{{missing_field}}'\ndoc_to_choice: choices\ndoc_to_target: answer\n",
        encoding="utf-8",
    )
    with pytest.raises(TaskFormatError, match=rf"{elmb_file.name}:1: template error"):
        load_task("t", tmpl)


@pytest.mark.parametrize(
    ("line", "bad", "message"),
    [
        (3, "{not json", "malformed JSON"),
        (2, json.dumps({"question": "q", "choices": ["a", "b"], "answer": 5}), "answer index 5 out of range"),
        (4, json.dumps({"choices": ["a", "b"], "answer": 0}), "field 'question' must be a string"),
        (2, json.dumps({"question": "q", "choices": ["a", ""], "answer": 0}), "choice 1 is empty"),
        (3, json.dumps({"question": "q", "choices": ["a", "b"], "answer": "0"}), "not one of the choices"),
    ],
)
def test_malformed_task_file_names_file_and_line(tmp_path: Path, line: int, bad: str, message: str) -> None:
    good = json.dumps(ELMB_DOCS[0])
    lines = [good] * 4
    lines[line - 1] = bad
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(TaskFormatError, match=rf"broken\.jsonl:{line}: .*{message}"):
        load_task("broken", path)


def test_parse_task_specs() -> None:
    assert parse_task_specs("a=x.jsonl, b=y.yaml") == {"a": "x.jsonl", "b": "y.yaml"}
    assert parse_task_specs("dir/rag.jsonl") == {"rag": "dir/rag.jsonl"}
    with pytest.raises(ValueError, match="given twice"):
        parse_task_specs("a=x,a=y")


# -------------------------------------------------------------------------------------- domain loss
def test_domain_loss_matches_hand_computation(loaded: tuple[Any, Any]) -> None:
    model, tok = loaded
    texts = {"general": [CORPUS[3], "fox"], "code": [CORPUS[4]]}
    out = domain_losses(model, tok, texts, block_size=8, batch_size=3)
    for domain, docs in texts.items():
        nats, n_tokens = 0.0, 0
        for text in docs:  # one full forward over BOS + text, every token predicted once
            ids = [tok.bos_token_id, *tok.encode(text, add_special_tokens=False)]
            n_tokens += len(ids) - 1
            # the scorer conditions each 8-token window only on the token before it
            for start in range(0, len(ids) - 1, 8):
                window = ids[start : start + 9]
                with torch.no_grad():
                    logp = torch.log_softmax(model(torch.tensor([window[:-1]])).logits[0].float(), -1)
                nats -= sum(float(logp[t, window[t + 1]]) for t in range(len(window) - 1))
        n_bytes = sum(len(t.encode("utf-8")) for t in docs)
        assert out[domain]["loss"] == pytest.approx(nats / n_tokens, rel=1e-5)
        assert out[domain]["bpb"] == pytest.approx(nats / math.log(2) / n_bytes, rel=1e-5)
        assert out[domain]["n_tokens"] == n_tokens


# ------------------------------------------------------------------------------------ results + CLI
def test_cli_eval_and_domain_loss_write_files(tmp_path: Path, model_dir: Path, elmb_file: Path) -> None:
    out = tmp_path / "eval"
    rc = main(["eval", "--model", str(model_dir), "--tasks", f"alpha={elmb_file},beta={elmb_file}", "--out", str(out),
               "--limit", "3", "--batch-size", "2", "--device", "cpu"])  # fmt: skip
    assert rc == 0
    records = [json.loads(line) for line in (out / "alpha.jsonl").read_text().splitlines()]
    assert len(records) == 3
    assert set(records[0]) >= {
        "doc_index",
        "acc",
        "acc_norm",
        "loglikelihoods",
        "pred",
        "pred_norm",
        "answer",
    }
    assert len(records[2]["loglikelihoods"]) == 4
    metrics = read_json_metrics(out / "metrics.json")
    assert set(metrics) == {"alpha", "beta"} and metrics["alpha"]["n"] == 3
    assert metrics["alpha"]["acc"] == pytest.approx(sum(r["acc"] for r in records) / 3)

    held_out = tmp_path / "general.jsonl"
    held_out.write_text(json.dumps({"text": CORPUS[3]}) + "\n" + "{broken\n", encoding="utf-8")
    loss_path = tmp_path / "loss.json"
    rc = main(["domain-loss", "--model", str(model_dir), "--data", f"general={held_out}", "--out", str(loss_path),
               "--device", "cpu"])  # fmt: skip
    assert rc == 0
    losses = read_json_metrics(loss_path)
    assert losses["general"]["n_docs"] == 1 and losses["general"]["loss"] > 0

    from mixlab.evaluation.results import TASK_METRICS
    from mixlab.evaluation.tasks import load_task as _load

    model, tok = load_model(model_dir, device="cpu")
    result = evaluate_task(model, tok, _load("alpha", elmb_file), limit=3)
    row = metrics_row({"alpha": result}, losses)
    assert list(row) == [f"alpha/{m}" for m in TASK_METRICS] + ["loss/general", "bpb/general"]
    assert row["alpha/acc"] == pytest.approx(metrics["alpha"]["acc"])


def test_cli_reports_malformed_task_file(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ELMB_DOCS[0]) + "\n[1, 2]\n", encoding="utf-8")
    rc = main(["eval", "--model", str(model_dir), "--tasks", f"bad={path}", "--out", str(tmp_path / "o")])
    assert rc == 1
    assert f"{path}:2: JSON line is not an object" in capsys.readouterr().err


def test_packing_self_check_falls_back_to_plain_path(
    loaded: tuple[Any, Any], elmb_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mixlab.evaluation.multiple_choice as mc
    from mixlab.evaluation.logprobs import TokenScorer

    model, tok = loaded
    scorer = TokenScorer(model)
    assert scorer.split_head  # the output head is applied only to scored positions for this Llama
    encoded = encode_documents(tok, load_task("tiny", elmb_file), range(len(ELMB_DOCS)))
    assert mc._packing_agrees(scorer, encoded[2], max_length=256)
    plain = score_documents(model, tok, encoded, packed=False)

    def broken(scorer: Any, docs: Any) -> list[list[float]]:  # as if the model ignored the packed mask
        return [[x + 1.0 for x in lls] for lls in mc._plain_docs(scorer, docs, 256, 8)]

    monkeypatch.setattr(mc, "_score_packed", broken)
    fallback = score_documents(model, tok, encoded)
    assert [x for lls in fallback for x in lls] == pytest.approx([x for lls in plain for x in lls], abs=1e-6)


def test_evaluate_run_from_config(tmp_path: Path, model_dir: Path, elmb_file: Path) -> None:
    from mixlab.evaluation.config import EvalConfig
    from mixlab.evaluation.runner import evaluate_run

    held_out = tmp_path / "code.jsonl"
    held_out.write_text(json.dumps({"text": CORPUS[4]}) + "\n", encoding="utf-8")
    cfg = EvalConfig(
        tasks={"tiny": str(elmb_file)}, validation={"code": str(held_out)}, limit=2, device="cpu"
    )
    row = evaluate_run(model_dir, cfg, out_dir=tmp_path / "run")
    metrics = ("acc", "acc_norm", "acc_bytes", "gold_bpb", "correct_prob", "margin")
    assert set(row) == {f"tiny/{m}" for m in metrics} | {f"tiny/{m}_stderr" for m in metrics} | {
        "loss/code",
        "bpb/code",
    }
    assert (tmp_path / "run" / "tiny.jsonl").exists() and (tmp_path / "run" / "domain_loss.json").exists()
    with pytest.raises(ValueError, match="invalid name"):
        EvalConfig(tasks={"a/b": "x.jsonl"})
