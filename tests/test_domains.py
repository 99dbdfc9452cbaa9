"""Tests of the domains stage: rules, classifiers, clusters, partition_pool and the CLI."""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from mixlab.cli import main
from mixlab.domains.clusters import ClusterModel, merge_centroids
from mixlab.domains.config import DEFAULT_DOMAINS, ClusterConfig, PartitionConfig, load_partition_config
from mixlab.domains.hashed_classifier import HashedNgramClassifier
from mixlab.domains.partition import id_rank, partition_pool, read_seed_file
from mixlab.domains.rules import RulesError, load_rules, parse_rules
from mixlab.pool.ingest import ingest
from mixlab.pool.pool import Pool, PoolError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCE_DOMAIN = {
    "wikitext2": "general", "foldoc": "general", "jargon": "general", "devils_dictionary": "general",
    "python_docs": "code", "cpython_stdlib": "code", "humaneval": "code", "gsm8k_train": "reasoning",
    "bfcl": "function_calling", "xquad": "rag", "crd3": "roleplay", "tinyshakespeare": "roleplay",
}  # fmt: skip

CRAFTED = {
    "function_calling": (
        'You have access to the following functions:\n[{"name": "get_weather", "parameters": {"type": "object", '
        '"properties": {"city": {"type": "string"}}}}]\n\nUser: Weather in Paris?'
    ),
    "code": "import os\n\n\ndef walk(root):\n    for p in os.listdir(root):\n        yield p\n    return None\n",
    "reasoning": "Question: Tom has 3 apples and buys 4 more. How many?\nAnswer: 3 + 4 = 7 apples. The answer is 7.",
    "rag": (
        "The Amazon rainforest covers much of the Amazon basin of South America, an area of seven million square "
        "kilometres, of which five and a half million are covered by the rainforest itself.\n\n"
        "Question: How large is the basin?\nAnswer: seven million square kilometres"
    ),
    "roleplay": (
        "ROMEO:\nBut soft, what light through yonder window breaks?\n\nJULIET:\nAy me!\n\n"
        "ROMEO:\nShe speaks.\n\nJULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n"
    ),
    "general": "Lobster\n\nLobsters are a family of large marine crustaceans. "
    + "They live on the sea floor. " * 20,
}


def _corpus_rows(per_source: int, with_noise: bool = True) -> list[dict]:
    if not (DATA / "corpus").is_dir():
        pytest.skip(f"shared corpus not found at {DATA / 'corpus'}")
    rows: list[dict] = []
    for path in sorted((DATA / "corpus").glob("*.jsonl.gz")):
        if path.name.startswith("noise") and not with_noise:
            continue
        rows.extend(_ranked_docs(str(path))[:per_source])
    return rows


@cache
def _ranked_docs(path: str) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return sorted((json.loads(line) for line in fh), key=lambda r: id_rank(r["id"], "test"))


@pytest.fixture(scope="module")
def small_pool(tmp_path_factory: pytest.TempPathFactory) -> Pool:
    tok = DATA / "tokenizers" / "gpt2" / "tokenizer.json"
    rows = _corpus_rows(30)
    folder = tmp_path_factory.mktemp("pool")
    src = folder / "docs.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return ingest([src], folder / "pool", tokenizer=str(tok), shard_docs=150)


# -- rules ----------------------------------------------------------------------------------------
def test_default_rules_label_crafted_texts() -> None:
    rules = load_rules()
    assert rules.domains == list(DEFAULT_DOMAINS)
    labels, probs, names = rules.apply(list(CRAFTED.values()))
    assert labels == list(CRAFTED)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert all(n != "catch_all" for n in names[:5])
    gibberish = rules.apply(["qwe zxc asd"])
    assert gibberish[0] == ["general"] and gibberish[2] == ["catch_all"]
    assert gibberish[1][0, DEFAULT_DOMAINS.index("general")] == pytest.approx(0.5)


def test_rules_yaml_errors_name_file_and_line(tmp_path: Path) -> None:
    good_rule = "  - name: a\n    domain: x\n    confidence: 0.9\n    when: {regex: 'foo'}\n"
    bad_regex = "  - name: b\n    domain: y\n    confidence: 0.9\n    when: {regex: '(unclosed'}\n"
    path = tmp_path / "rules.yaml"
    path.write_text(
        f"domains: [x, y]\nrules:\n{good_rule}{bad_regex}catch_all: {{name: c, domain: x, confidence: 0.5}}\n"
    )
    with pytest.raises(RulesError, match=rf"{path}:7: rule #2 \(b\).*invalid regex"):
        load_rules(path)
    path.write_text(f"domains: [x, y]\nrules:\n{good_rule}")
    with pytest.raises(RulesError, match=rf"{path}:1: missing 'catch_all'"):
        load_rules(path)
    with pytest.raises(RulesError, match=r"r.yaml:3: rule #1 \(a\): domain 'z'"):
        parse_rules(
            "domains: [x, y]\nrules:\n  - {name: a, domain: z, confidence: 1, when: {regex: a}}\n", "r.yaml"
        )
    with pytest.raises(RulesError, match=r"exactly one of"):
        parse_rules(
            "domains: [x, y]\nrules:\n  - {name: a, domain: x, confidence: 1, when: {foo: 1}}\n", "r.yaml"
        )
    rs = parse_rules(
        "domains: [x, y]\nrules:\n  - name: turns\n    domain: y\n    confidence: 1\n"
        "    when: {regex: '^(\\w+):', min_count: 3, distinct: 2}\ncatch_all: {name: c, domain: x, confidence: 0.6}\n"
    )
    assert rs.apply(["A: hi\nB: yo\nA: ok"])[0] == ["y"]
    assert rs.apply(["A: hi\nA: yo\nA: ok"])[0] == ["x"]  # one distinct speaker only


# -- classifiers ----------------------------------------------------------------------------------
def test_hashed_classifier_learns_from_seeds_and_round_trips(tmp_path: Path) -> None:
    rows = _corpus_rows(40, with_noise=False)
    train = [r for r in rows if id_rank(r["id"], "split") % 2 == 0]
    test = [r for r in rows if id_rank(r["id"], "split") % 2 == 1]
    clf = HashedNgramClassifier(n_features=2**15).fit(
        [r["text"] for r in train], [SOURCE_DOMAIN[r["source"]] for r in train]
    )
    probs = clf.predict_proba([r["text"] for r in test])
    assert probs.shape == (len(test), 6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    acc = np.mean(
        clf.predict([r["text"] for r in test]) == np.array([SOURCE_DOMAIN[r["source"]] for r in test])
    )
    assert acc > 0.85
    clf.save(tmp_path / "m")
    assert (tmp_path / "m.safetensors").exists() and (tmp_path / "m.json").exists()
    again = HashedNgramClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(
        again.predict_proba([r["text"] for r in test[:10]]), probs[:10], rtol=1e-5, atol=1e-6
    )


def test_embedding_classifier_on_real_minilm(tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(1)
    from mixlab.domains.embedding_classifier import EmbeddingClassifier

    texts = [
        "def add(a, b):\n    return a + b", "import sys\nfor line in sys.stdin:\n    print(line)",
        "class Stack:\n    def push(self, x):\n        self.items.append(x)",
        "ROMEO: My lady, the night is young.\nJULIET: Stay a while, sweet prince.",
        "MATT: You enter the tavern.\nLAURA: I order an ale and look around.",
        "KING: Bring me the traitor!\nGUARD: At once, my liege.",
    ]  # fmt: skip
    labels = ["code"] * 3 + ["roleplay"] * 3
    clf = EmbeddingClassifier(max_seq_length=64).fit(texts, labels)
    queries = ["while x < 10:\n    x += 1\nprint(x)", "HAMLET: To be or not to be.\nHORATIO: My lord?"]
    probs = clf.predict_proba(queries)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert list(clf.predict(queries)) == ["code", "roleplay"]
    clf.save(tmp_path / "e")
    np.testing.assert_allclose(
        EmbeddingClassifier.load(tmp_path / "e").predict_proba(queries), probs, rtol=1e-4
    )


# -- clusters -------------------------------------------------------------------------------------
def test_merge_centroids_joins_near_clusters() -> None:
    c = np.array([[1.0, 0.0, 0.0], [0.99, 0.14, 0.0], [0.0, 0.0, 1.0]])
    assert merge_centroids(c, 0.95).tolist() == [0, 0, 1]
    assert merge_centroids(c, 1.0).tolist() == [0, 1, 2]


def test_clusters_summaries_merging_and_round_trip(tmp_path: Path) -> None:
    rows = _corpus_rows(15, with_noise=False)
    texts, ids = [r["text"] for r in rows], [r["id"] for r in rows]
    unmerged = ClusterModel(ClusterConfig(k=8, svd_dim=32, merge_threshold=1.0)).fit(texts, ids)
    assert unmerged.n_clusters_ == 8
    sims = unmerged.raw_centroids_ @ unmerged.raw_centroids_.T
    closest = float(np.max(sims[~np.eye(8, dtype=bool)]))
    # same seed, same k-means; a threshold just below the closest pair merges exactly that pair
    model = ClusterModel(ClusterConfig(k=8, svd_dim=32, merge_threshold=closest - 1e-4)).fit(texts, ids)
    assert model.n_clusters_ == 7
    assert sorted(len(x["merged_from"]) for x in model.summaries_) == [1] * 6 + [2]
    s = model.summaries_
    assert sorted(r for x in s for r in x["merged_from"]) == list(range(8))
    assert sum(x["size"] for x in s) == len(texts)
    assert all(len(x["examples"]) == min(3, x["size"]) and x["top_terms"] for x in s if x["size"])
    # the roleplay transcripts cluster together: most crd3 docs share one cluster
    merged, _, dist = model.predict(texts)
    crd3 = [m for m, i in zip(merged, ids, strict=True) if i.startswith("crd3")]
    assert np.bincount(crd3).max() >= 0.8 * len(crd3)
    assert (dist >= 0).all()
    model.save(tmp_path / "c")
    again = ClusterModel.load(tmp_path / "c")
    np.testing.assert_array_equal(again.predict(texts[:20])[0], merged[:20])


# -- partition on a pool --------------------------------------------------------------------------
def test_partition_pool_writes_aligned_attribute_and_reruns_skip(small_pool: Pool) -> None:
    config = PartitionConfig(method="rules+classifier", classifier={"n_features": 2**15})
    summary = partition_pool(small_pool, config)
    assert summary["computed_shards"] == small_pool.shards and len(small_pool.shards) > 1
    assert set(summary["domains"]) <= set(DEFAULT_DOMAINS) and summary["fit"]["seeds"]
    assert sum(v["docs"] for v in summary["domains"].values()) == small_pool.n_docs()
    assert sum(v["tokens"] for v in summary["domains"].values()) == small_pool.n_tokens()
    for shard in small_pool.shards:
        assert small_pool.attr_done("domains", shard)
    attr = small_pool.read_attr("domains")
    docs = small_pool.read_docs(["id", "source"])
    assert attr["id"].tolist() == docs["id"].tolist()
    pcols = [f"p_{d}" for d in DEFAULT_DOMAINS]
    assert attr[pcols].dtypes.unique().tolist() == [np.dtype("float32")]
    np.testing.assert_allclose(attr[pcols].sum(axis=1), 1.0, rtol=1e-5)
    assert (attr["domain"].to_numpy() == np.array(DEFAULT_DOMAINS)[attr[pcols].to_numpy().argmax(1)]).all()
    assert (attr["domain_method"] == "rules+classifier").all()  # default combine: product
    scored = docs["source"].isin(SOURCE_DOMAIN).to_numpy()
    gold = docs["source"][scored].map(SOURCE_DOMAIN).to_numpy()
    assert np.mean(attr["domain"].to_numpy()[scored] == gold) > 0.95
    before = (small_pool.attr_dir("domains") / f"{small_pool.shards[0]}.parquet").read_bytes()
    again = partition_pool(small_pool, config)
    assert again["computed_shards"] == [] and again["domains"] == summary["domains"]
    assert (small_pool.attr_dir("domains") / f"{small_pool.shards[0]}.parquet").read_bytes() == before
    with pytest.raises(PoolError, match="another config"):
        partition_pool(small_pool, PartitionConfig(method="rules"))


def test_cli_partition_default_domains_and_cluster(
    small_pool: Pool, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["partition", str(small_pool.root), "--method", "rules", "--force"]) == 0
    out = capsys.readouterr().out
    assert "function_calling" in out and "tokens" in out
    attr = small_pool.read_attr("domains")
    assert [c for c in attr.columns if c.startswith("p_")] == [f"p_{d}" for d in DEFAULT_DOMAINS]
    assert attr["domain_method"].str.startswith("rule:").all()
    export = tmp_path / "domains.jsonl"
    assert main(["attrs", str(small_pool.root), "domains", "--out", str(export)]) == 0
    first = json.loads(export.read_text().splitlines()[0])
    assert {"id", "domain", "p_code"} <= set(first)

    summaries = tmp_path / "summaries.json"
    code = main(
        ["cluster", str(small_pool.root), "--k", "6", "--merge-threshold", "0.95", "--out", str(summaries)]
    )
    assert code == 0
    data = json.loads(summaries.read_text())
    assert sum(s["docs"] for s in data) == small_pool.n_docs()
    assert all({"top_terms", "examples", "merged_from", "size"} <= set(s) for s in data)
    clusters = small_pool.read_attr("clusters")
    assert {"cluster", "cluster_distance"} <= set(clusters.columns) and len(clusters) == small_pool.n_docs()


def test_config_and_seed_file_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "p.yaml"
    cfg.write_text("partition:\n  method: rules\n  rules_file: my_rules.yaml\n")
    loaded = load_partition_config(cfg, method=None)
    assert loaded.method == "rules" and loaded.rules_file == tmp_path / "my_rules.yaml"
    cfg.write_text("method: magic\n")
    with pytest.raises(ValueError, match=str(cfg)):
        load_partition_config(cfg)
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"text": "def f(): pass", "domain": "code"}\n{"text": "x", "domain": "poetry"}\n')
    with pytest.raises(ValueError, match=rf"{seeds}:2: domain 'poetry'"):
        read_seed_file(seeds, DEFAULT_DOMAINS)


def test_rules_macro_f1_on_shared_corpus_sample() -> None:
    from sklearn.metrics import f1_score

    rows = _corpus_rows(120, with_noise=False)
    labels, _, _ = load_rules().apply([r["text"] for r in rows])
    gold = [SOURCE_DOMAIN[r["source"]] for r in rows]
    macro = f1_score(gold, labels, labels=list(DEFAULT_DOMAINS), average="macro")
    assert macro >= 0.95, macro


# -- rules about syntax: every family in its common real-world forms --------------------------------
SYNTAX_EXAMPLES: dict[str, list[str]] = {
    "function_calling": [
        # Python-style call line (the form the Schema-Guided Dialogue release prints)
        (
            "User: I need a one-way flight to San Francisco on March 1st.\n"
            'Call: SearchOnewayFlight(departure_date="2019-03-01", destination_city="San Francisco")'
        ),
        # bare keyword-argument call answering a request
        "User: What's the weather in Boston in fahrenheit?\nget_current_weather(location='Boston, MA', unit='fahrenheit')",
        # JSON call object
        'Request: book a table for two at 7pm\n{"name": "book_table", "arguments": {"people": 2, "time": "19:00"}}',
        # JSON schema of parameters
        (
            '{"name": "get_stock", "description": "Price of a stock", "parameters": {"type": "object", '
            '"properties": {"symbol": {"type": "string"}}, "required": ["symbol"]}}'
        ),
        # XML-tagged (Hermes-style) call
        (
            '<|user|>\nConvert 100 USD to EUR\n<|assistant|>\n<tool_call>\n{"name": "convert", "arguments": '
            '{"amount": 100, "from": "USD", "to": "EUR"}}\n</tool_call>'
        ),
        # OpenAI-style tool_calls
        (
            '{"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", '
            '"function": {"name": "get_time", "arguments": "{\\"tz\\": \\"UTC\\"}"}}]}'
        ),
        # ReAct agent trace
        (
            "Question: Is today a public holiday in China?\nThought: I should check the calendar API.\n"
            'Action: PublicHolidayIsToday\nAction Input: {"countryCode": "CN"}\nObservation: false'
        ),
        # bracketed API request
        "User: Can you find a tool for scheduling?\nAPI-Request: [ToolSearcher(keywords='schedule meeting')]",
    ],
    "reasoning": [
        # rationale + lettered options
        (
            "Problem: A shop sells pens at 3 for $2. How much do 12 pens cost?\n"
            "Options: A ) 6 , B ) 8 , C ) 9 , D ) 12 , E ) 4\nRationale: 12 / 3 = 4 groups, 4 * 2 = 8.\nCorrect Option: B"
        ),
        # step by step
        (
            "Q: Tom has 5 apples and eats 2. How many are left?\nA: Let's think step by step. "
            "He starts with 5 and eats 2, so 5 - 2 = 3 remain. The answer is 3."
        ),
        # LaTeX
        r"Find $x$ if $2x + 3 = 11$. Subtract 3: $2x = 8$, so $x = \frac{8}{2} = 4$ and $\boxed{4}$.",
        # labelled equation
        "Each pack of cards costs 76 dollars with a discount of 25 dollars.\nEquation: x = ( 76 - 25 )\nAnswer: 51",
    ],
    "roleplay": [
        (
            "MARY: Where have you been all night?\nJOHN: Out walking, I could not sleep.\n"
            "MARY: In this weather?\nJOHN: The rain suits my mood."
        ),
        (
            "User: hi, can you recommend a movie?\nAssistant: Sure! What genres do you like?\n"
            "User: something funny\nAssistant: Try a classic comedy tonight."
        ),
        (
            "[Project Manager] Let's start with the budget.\n[Marketing] We are at twelve euros per unit.\n"
            "[Project Manager] That is too high.\n[Industrial Designer] We can drop the flip top."
        ),
        (
            "**Customer:** My order never arrived.\n\n**Agent:** I am sorry, can I have the order number?\n\n"
            "**Customer:** It is 4411.\n\n**Agent:** Thanks, I see it was delayed."
        ),
        "HAMLET\nWho's there?\n\nHORATIO\nFriends to this ground.\n\nHAMLET\nGood night.\n\nHORATIO\nGood night, my lord.",
        "<|im_start|>user\nYou are a pirate. Greet me.<|im_end|>\n<|im_start|>assistant\nArr, ahoy matey!<|im_end|>",
    ],
    "rag": [
        (
            "Context: The Nile is a major north-flowing river in northeastern Africa.\n"
            "Question: Which way does the Nile flow?\nAnswer: north"
        ),
        (
            "The Amazon rainforest covers much of the Amazon basin of South America, an area of seven million square "
            "kilometres, of which five and a half million are covered by the rainforest.\n\n"
            "Q: How large is the basin?\nA: seven million square kilometres"
        ),
        '{"title": "Snow Man", "context": "'
        + "The snow man stood in the yard and watched the sun go down. " * 5
        + '", "qas": [{"question": "What did he watch?", "answers": [{"text": "the sun"}]}]}',
        (
            "### Document\nThe committee met on Tuesday and approved the new budget after a long debate about "
            "the cost of the bridge repairs.\n\n### Question\nWhen did the committee meet?\n\n### Answer\nTuesday"
        ),
        (
            "Read the passage and answer the questions.\n\nPassage:\nThe old lamp had shone for many years in the "
            "street.\n\n1. How long had the lamp shone?\nAnswer: many years"
        ),
    ],
}


@pytest.mark.parametrize("domain", list(SYNTAX_EXAMPLES))
def test_default_rules_recognise_every_syntax_family(domain: str) -> None:
    labels, _, names = load_rules().apply(SYNTAX_EXAMPLES[domain])
    wrong = [
        (n, t[:60]) for lab, n, t in zip(labels, names, SYNTAX_EXAMPLES[domain], strict=True) if lab != domain
    ]
    assert not wrong, wrong


def test_rules_name_no_source() -> None:
    text = load_rules().source and Path(load_rules().source).read_text(encoding="utf-8").lower()
    for source in (
        "gsm8k",
        "bfcl",
        "xquad",
        "crd3",
        "shakespeare",
        "svamp",
        "toolalpaca",
        "taskmaster",
        "qmsum",
    ):
        assert source not in text


def test_sequence_condition_matches_in_order() -> None:
    rs = parse_rules(
        "domains: [x, y]\nrules:\n  - name: s\n    domain: y\n    confidence: 0.9\n"
        "    when: {sequence: ['^ctx', '^q:', '^a:'], ignore_case: true}\ncatch_all: {name: c, domain: x, confidence: 0.5}\n"
    )
    assert rs.apply(["CTX here\nQ: why\nA: because"])[0] == ["y"]
    assert rs.apply(["Q: why\nA: because\nctx later"])[0] == ["x"]
    with pytest.raises(RulesError, match="sequence"):
        parse_rules(
            "domains: [x, y]\nrules:\n  - {name: s, domain: y, confidence: 1, when: {sequence: []}}\n"
            "catch_all: {name: c, domain: x, confidence: 0.5}\n"
        )


def _yardstick() -> list[dict]:
    for folder in (DATA / "yardstick", Path(__file__).resolve().parents[1] / ".mixlab-cache" / "yardstick"):
        if (folder / "yardstick.jsonl").exists():
            return [json.loads(line) for line in (folder / "yardstick.jsonl").open(encoding="utf-8")]
    pytest.skip("yardstick not built (bench/build_yardstick.py)")


def test_rules_macro_f1_on_independent_yardstick() -> None:
    from sklearn.metrics import f1_score

    rows = _yardstick()[::3]
    labels, _, _ = load_rules().apply([r["text"] for r in rows])
    macro = f1_score([r["domain"] for r in rows], labels, labels=list(DEFAULT_DOMAINS), average="macro")
    assert macro >= 0.9, macro


# -- task-anchored domains ------------------------------------------------------------------------
TASK_FILES = {d: DATA / "tasks" / f"{d}.jsonl" for d in ("roleplay", "reasoning", "function_calling", "rag")}


def test_task_anchored_model_scores_and_round_trips(tmp_path: Path) -> None:
    from mixlab.domains.anchored import TaskAnchoredModel, anchored_to_domains

    items = {
        "maths": [
            "Question: 3 + 4 = ?\nAnswer: 7",
            "Question: 10 - 2 = ?\nAnswer: 8",
            "Question: 6 * 7 = ?\nAnswer: 42",
        ],
        "calls": [
            'Question: weather?\nAnswer: get_weather(city="Paris")',
            'Question: time?\nAnswer: get_time(tz="UTC")',
        ],
    }
    background = [f"The river flows past the town number {i} and the farms around it." for i in range(30)]
    model = TaskAnchoredModel(k=2, n_features=2**12, threshold=1.0).fit(items, background)
    docs = [
        "2 + 2 = 4 and 5 * 3 = 15",
        'get_weather(city="Rome") then get_time(tz="CET")',
        "The river flows past farms.",
    ]
    p = model.predict_proba(docs)
    assert model.classes_ == ["maths", "calls", "other"]
    assert [model.classes_[i] for i in p.argmax(1)] == ["maths", "calls", "other"]
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    model.save(tmp_path / "a")
    np.testing.assert_allclose(TaskAnchoredModel.load(tmp_path / "a").predict_proba(docs), p, rtol=1e-6)
    mapped = anchored_to_domains(p, model.classes_, ["maths", "calls", "code", "general"])
    np.testing.assert_allclose(mapped[:, 2], mapped[:, 3])  # "other" spread evenly
    np.testing.assert_allclose(mapped.sum(axis=1), 1.0)


def test_partition_with_tasks_only_and_with_rules(small_pool: Pool, capsys: pytest.CaptureFixture) -> None:
    if not all(p.exists() for p in TASK_FILES.values()):
        pytest.skip("shared tasks not found")
    specs = ",".join(f"{n}={p}" for n, p in TASK_FILES.items() if n in ("reasoning", "function_calling"))
    assert main(["partition", str(small_pool.root), "--tasks", specs, "--force"]) == 0
    attr = small_pool.read_attr("domains")
    assert [c for c in attr.columns if c.startswith("p_")] == ["p_reasoning", "p_function_calling", "p_other"]
    assert (attr["domain_method"] == "anchored").all() and len(attr) == small_pool.n_docs()
    assert (small_pool.attr_dir("domains") / "task_anchored" / "state.json").exists()
    docs = small_pool.read_docs(["id", "source"])
    fc = attr["domain"].to_numpy()[docs["source"].to_numpy() == "bfcl"]
    assert np.mean(fc == "function_calling") > 0.5  # the task's own source is found without any rule
    config = PartitionConfig(method="rules+anchored", tasks={n: str(p) for n, p in TASK_FILES.items()})
    summary = partition_pool(small_pool, config, force=True)
    assert set(summary["domains"]) <= set(DEFAULT_DOMAINS)
    attr = small_pool.read_attr("domains")
    np.testing.assert_allclose(attr[[f"p_{d}" for d in DEFAULT_DOMAINS]].sum(axis=1), 1.0, rtol=1e-5)
    scored = docs["source"].isin(SOURCE_DOMAIN).to_numpy()
    gold = docs["source"][scored].map(SOURCE_DOMAIN).to_numpy()
    assert np.mean(attr["domain"].to_numpy()[scored] == gold) > 0.9
    with pytest.raises(ValueError, match="needs tasks"):
        partition_pool(small_pool, PartitionConfig(method="anchored"), force=True)
