"""Build the independent domain yardstick: labelled real documents from public sources outside the shared corpus.

Reads git snapshots of public repositories (``--mirrors``, one ``OWNER+NAME/repo`` git directory each, as
the search tool's ``fetch`` lays them out) and writes ``yardstick.jsonl`` (``id``, ``text``, ``domain``,
``source``, ``format``), ``manifest.json`` (counts, sha256, source commits) and the sources' licence texts
into ``--out``. Every source is rendered in several surface formats (a source's items are split between
formats by a hash of the item, so no item appears twice). Deterministic: same snapshots, same bytes.

No source of the shared corpus is used (WikiText, FOLDOC, Jargon File, Devil's Dictionary, Python docs,
CPython, HumanEval, GSM8K, BFCL, XQuAD, CRD3, Tiny Shakespeare), nor AQuA, PubMedQA, Topical-Chat or the
Schema-Guided Dialogue dataset (kept for a later independent check). See ``bench/data/yardstick/SOURCES.md``.

    python bench/build_yardstick.py [--mirrors /work/.mirror] [--out .mixlab-cache/yardstick]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import re
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(__file__).resolve().parents[1] / ".mixlab-cache" / "yardstick"

#: (mirror folder, licence file in it, SPDX-like licence name)
SOURCES: dict[str, tuple[str, str, str]] = {
    "svamp": ("arkilpatel+SVAMP", "LICENSE", "MIT"),
    "toolalpaca": ("tangqiaoyu+ToolAlpaca", "LICENSE", "Apache-2.0"),
    "taskmaster3": ("google-research-datasets+Taskmaster", "", "CC-BY-4.0"),
    "qmsum": ("Yale-LILY+QMSum", "LICENSE", "MIT"),
    "fairytaleqa": ("uci-soe+FairytaleQAData", "LICENSE", "Apache-2.0"),
    "english_novels": ("computationalstylistics+100_english_novels", "", "public domain (pre-1923 novels)"),
    "cobra": ("spf13+cobra", "LICENSE.txt", "Apache-2.0"),
    "hiredis": ("redis+hiredis", "COPYING", "BSD-3-Clause"),
    "click": ("pallets+click", "LICENSE.txt", "BSD-3-Clause"),
    "express": ("expressjs+express", "LICENSE", "MIT"),
}


def rank(key: str, salt: str = "yardstick") -> int:
    return int.from_bytes(hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest(), "big")


def pick(key: str, n: int, salt: str = "format") -> int:
    """A format index in [0, n) chosen by a hash of the item key."""
    return rank(key, salt) % n


class Mirror:
    """Read files of one fetched repository snapshot with ``git show``."""

    def __init__(self, root: Path, name: str) -> None:
        self.git = root / name / "repo"
        if not self.git.is_dir():
            raise FileNotFoundError(f"{self.git}: snapshot not found (fetch github:{name.replace('+', '/')})")

    def _run(self, *args: str) -> bytes:
        return subprocess.run(["git", "-C", str(self.git), *args], check=True, capture_output=True).stdout

    def commit(self) -> str:
        return self._run("rev-parse", "HEAD").decode().strip()

    def files(self, prefix: str = "") -> list[str]:
        out = self._run("ls-tree", "-r", "--name-only", "HEAD", *([prefix] if prefix else []))
        return sorted(out.decode().splitlines())

    def read(self, path: str) -> str:
        return self._run("show", f"HEAD:{path}").decode("utf-8", errors="replace")


# -- small rendering helpers ------------------------------------------------------------------------
def fmt_num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def py_value(v: Any) -> str:
    return repr(v) if not isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def py_call(name: str, args: dict[str, Any]) -> str:
    return f"{name}(" + ", ".join(f"{k}={py_value(v)}" for k, v in args.items()) + ")"


def ident(name: str) -> str:
    return re.sub(r"\W+", "_", name).strip("_")


# -- reasoning: SVAMP ------------------------------------------------------------------------------
def _distractors(answer: float, key: str) -> list[str]:
    a = answer
    cands = [a + 1, a - 1, a * 2, a + 10, a / 2 if a > 2 else a + 3, a + 5, abs(a - 7) + 2]
    out: list[str] = []
    for c in sorted(cands, key=lambda c: rank(f"{key}{c}", "dist")):
        s = fmt_num(round(c, 2))
        if s != fmt_num(a) and s not in out:
            out.append(s)
    return out[:4]


def svamp_docs(m: Mirror) -> Iterator[dict[str, Any]]:
    items = json.loads(m.read("SVAMP.json"))
    for it in items:
        key = f"svamp-{it['ID']}"
        body = " ".join(it["Body"].split()).replace("$ ", "$")
        q = it["Question"].strip()
        eq = it["Equation"].strip()
        ans = fmt_num(float(it["Answer"]))
        expr = re.sub(r"(\d+)\.0\b", r"\1", eq).strip()
        expr_plain = (
            expr[1:-1].strip()
            if expr.startswith("(") and expr.endswith(")") and expr.count("(") == 1
            else expr
        )
        style = pick(key, 4)
        if style == 0:  # rationale + lettered options
            opts = _distractors(float(it["Answer"]), key) + [ans]
            opts = sorted(opts, key=lambda o: rank(key + o, "opt"))
            letters = "ABCDE"
            correct = letters[opts.index(ans)]
            text = (
                f"Problem: {body}. {q}\nOptions: "
                + " , ".join(f"{letters[i]} ) {o}" for i, o in enumerate(opts))
                + f"\nRationale: {expr_plain} = {ans}. Hence the answer is {ans}.\nCorrect Option: {correct}"
            )
            fmt = "rationale_options"
        elif style == 1:  # step by step
            nums = re.findall(r"\d+(?:\.\d+)?", expr)
            text = (
                f"Q: {body}. {q}\nA: Let's think step by step. The numbers given are "
                f"{', '.join(nums)}. We need {it['Type'].lower()}: {expr_plain} = {ans}. So the answer is {ans}."
            )
            fmt = "step_by_step"
        elif style == 2:  # LaTeX
            tex = expr_plain.replace("*", r" \times ").replace("/", r" \div ")
            text = (
                f"**Problem.** {body}. {q}\n\n**Solution.** We compute $${tex} = {ans}$$ "
                f"so the result is $\\boxed{{{ans}}}$."
            )
            fmt = "latex"
        else:  # equation annotation
            text = f"{body}. {q}\nEquation: x = {expr}\nAnswer: {ans}"
            fmt = "equation"
        yield {"id": key, "text": text, "domain": "reasoning", "source": "svamp", "format": fmt}


# -- function calling: ToolAlpaca ------------------------------------------------------------------
def _tool_params(desc: str) -> dict[str, Any]:
    m = re.search(r"Parameters:\s*(\{.*?\})\s*(?:\n|$)", desc)
    props: dict[str, Any] = {}
    required: list[str] = []
    if m:
        try:
            raw = json.loads(m.group(1))
        except json.JSONDecodeError:
            raw = {}
        for k, v in raw.items():
            text = str(v)
            typ = next(
                (t for t in ("integer", "number", "boolean", "array", "object") if t in text), "string"
            )
            props[k] = {"type": typ, "description": text.replace("Required. ", "").strip()}
            if text.startswith("Required"):
                required.append(k)
    return {"type": "object", "properties": props, "required": required}


def toolalpaca_docs(m: Mirror) -> Iterator[dict[str, Any]]:
    for split in ("eval_real", "eval_simulated"):
        for api in json.loads(m.read(f"data/{split}.json")):
            funcs = api["Function_Description"]
            for i, (instr, gold) in enumerate(zip(api["Instructions"], api["Golden_Answers"], strict=False)):
                key = f"toolalpaca-{split}-{ident(api['Name'])}-{i}"
                calls = []
                for step in gold:
                    try:
                        args = json.loads(step["Action_Input"])
                    except json.JSONDecodeError:
                        args = {"input": step["Action_Input"]}
                    calls.append((step["Action"], args if isinstance(args, dict) else {"input": args}))
                used = [n for n, _ in calls if n in funcs] or list(funcs)[:1]
                tools = [
                    {"name": n, "description": funcs[n].split("\n")[0], "parameters": _tool_params(funcs[n])}
                    for n in used
                ]
                style = pick(key, 5)
                if style == 0:  # OpenAI-style messages with tool_calls
                    msgs = [
                        {"role": "user", "content": instr},
                        {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {
                                    "id": f"call_{j}",
                                    "type": "function",
                                    "function": {"name": n, "arguments": json.dumps(a)},
                                }
                                for j, (n, a) in enumerate(calls)
                            ],
                        },
                    ]
                    text = json.dumps({"messages": msgs}, indent=2, ensure_ascii=False)
                    fmt = "openai_tool_calls"
                elif style == 1:  # Python-style call lines after a request
                    lines = [f"User: {instr}"] + [f"Call: {py_call(n, a)}" for n, a in calls]
                    text = "\n".join(lines)
                    fmt = "python_calls"
                elif style == 2:  # XML-tagged calls (Hermes style) with a tool list
                    text = (
                        f"<tools>\n{json.dumps(tools, ensure_ascii=False)}\n</tools>\n"
                        f"<|user|>\n{instr}\n<|assistant|>\n"
                        + "\n".join(
                            f"<tool_call>\n{json.dumps({'name': n, 'arguments': a}, ensure_ascii=False)}\n</tool_call>"
                            for n, a in calls
                        )
                    )
                    fmt = "xml_tool_call"
                elif style == 3:  # ReAct: Action / Action Input
                    text = (
                        f"{api['Name']}: {api['Description']}\n\n{api['NLDocumentation'][:1200]}\n\n"
                        f"Question: {instr}\n"
                        + "\n".join(
                            f"Thought: I should call {n}.\nAction: {n}\nAction Input: {json.dumps(a)}"
                            for n, a in calls
                        )
                    )
                    fmt = "react"
                else:  # API-Request bracket calls with a plain-language API description
                    desc = "\n".join(f"- {n}: {funcs[n].splitlines()[0]}" for n in used)
                    text = f"APIs available:\n{desc}\n\nUser: {instr}\n" + "\n".join(
                        f"API-Request: [{n}(" + ", ".join(f"{k}='{v}'" for k, v in a.items()) + ")]"
                        for n, a in calls
                    )
                    fmt = "api_request"
                yield {
                    "id": key,
                    "text": text,
                    "domain": "function_calling",
                    "source": "toolalpaca",
                    "format": fmt,
                }


# -- Taskmaster-3: API-calling dialogues (function_calling) and plain dialogues (roleplay) ---------
def _tm_turns(conv: dict[str, Any]) -> list[dict[str, Any]]:
    return json.loads(conv["context"]) + [json.loads(conv["generation"])]


def taskmaster_docs(m: Mirror, n_fc: int, n_rp: int) -> Iterator[dict[str, Any]]:
    convs: list[dict[str, Any]] = []
    for path in m.files("TM-3-2020/reward/"):
        convs.extend(json.loads(m.read(path)))
    seen: set[str] = set()
    uniq = []
    for c in sorted(convs, key=lambda c: rank(c["conversation_id"])):
        if c["conversation_id"] not in seen:
            seen.add(c["conversation_id"])
            uniq.append(c)
    fc = [c for c in uniq if sum("api" in t for t in _tm_turns(c)) >= 1][:n_fc]
    rp_pool = [c for c in uniq if c not in fc]
    rp = [c for c in rp_pool if sum("text" in t for t in _tm_turns(c)) >= 6][:n_rp]
    for c in fc:
        key = f"taskmaster3-{c['conversation_id']}"
        turns = _tm_turns(c)
        style = pick(key, 3)
        lines: list[str] = []
        if style == 2:
            text = json.dumps(turns, indent=1, ensure_ascii=False)
        else:
            for t in turns:
                if "text" in t:
                    who = t["role"].capitalize() if style == 0 else t["role"].upper()
                    lines.append(f"{who}: {t['text']}")
                elif "api" in t:
                    for name, args in t["api"].items():
                        args2 = {ident(k): v for k, v in args.items()}
                        lines.append(
                            f"Call: {py_call(name, args2)}"
                            if style == 0
                            else f"[API] {name} {json.dumps(args)}"
                        )
                elif "response" in t:
                    lines.append(f"Result: {json.dumps(t['response'], ensure_ascii=False)}")
            text = "\n".join(lines)
        fmt = ["call_lines", "api_tags", "json_turns"][style]
        yield {"id": key, "text": text, "domain": "function_calling", "source": "taskmaster3", "format": fmt}
    speakers = [("User", "Assistant"), ("Customer", "Agent"), ("USER", "SYSTEM"), ("A", "B")]
    for c in rp:
        key = f"taskmaster3-{c['conversation_id']}"
        # the generated last turn sometimes holds a call as JSON text: dialogue only
        turns = [t for t in _tm_turns(c) if "text" in t and not t["text"].lstrip().startswith("{")]
        style = pick(key, 6)
        if style < 4:
            u, a = speakers[style]
            text = "\n".join(f"{u if t['role'] == 'user' else a}: {t['text']}" for t in turns)
            fmt = f"speaker_{u.lower()}"
        elif style == 4:
            text = "\n".join(
                f"<|im_start|>{'user' if t['role'] == 'user' else 'assistant'}\n{t['text']}<|im_end|>"
                for t in turns
            )
            fmt = "chatml"
        else:
            text = "\n\n".join(
                f"**{'User' if t['role'] == 'user' else 'Agent'}:** {t['text']}" for t in turns
            )
            fmt = "markdown_bold"
        yield {"id": key, "text": text, "domain": "roleplay", "source": "taskmaster3", "format": fmt}


# -- QMSum meeting transcripts: roleplay (transcript chunks) and rag (span + query + answer) -------
def _clean_utt(s: str) -> str:
    s = re.sub(r"\{\w+\}", "", s)
    s = re.sub(r"\s+([?.!,])", r"\1", s)
    return " ".join(s.split())


def qmsum_docs(m: Mirror, n_rp: int, n_rag: int) -> Iterator[dict[str, Any]]:
    paths = [p for p in m.files("data/ALL/") if p.endswith(".json") and "/jsonl/" not in p]
    paths.sort(key=lambda p: rank(p))
    rp_done = rag_done = 0
    for path in paths:
        meeting = json.loads(m.read(path))
        name = Path(path).stem
        tr = [(t["speaker"], _clean_utt(t["content"])) for t in meeting["meeting_transcripts"]]
        tr = [(s, c) for s, c in tr if len(c) > 2]
        if rp_done < n_rp:
            for start in range(0, min(len(tr), 150), 50):
                chunk = [(sp, c[:400]) for sp, c in tr[start : start + 20]]
                if len(chunk) < 10:
                    continue
                key = f"qmsum-{name}-{start}"
                style = pick(key, 3)
                if style == 0:
                    text = "\n".join(f"{s}: {c}" for s, c in chunk)
                elif style == 1:
                    text = "\n".join(f"[{s}] {c}" for s, c in chunk)
                else:
                    text = "\n\n".join(f"{s.upper()}\n{c}" for s, c in chunk)
                fmt = ["speaker_colon", "speaker_brackets", "screenplay"][style]
                yield {"id": key, "text": text, "domain": "roleplay", "source": "qmsum", "format": fmt}
                rp_done += 1
        if rag_done < n_rag:
            for j, q in enumerate(meeting["specific_query_list"][:2]):
                a, b = (int(x) for x in q["relevant_text_span"][0])
                span = [(sp, c[:400]) for sp, c in tr[a : min(b, a + 10) + 1]] if a < len(tr) else []
                if len(span) < 3:
                    continue
                key = f"qmsum-{name}-q{j}"
                excerpt = " ".join(f"{s} said: {c}" if i % 3 == 0 else c for i, (s, c) in enumerate(span))
                style = pick(key, 2)
                if style == 0:
                    text = f"Meeting excerpt: {excerpt}\n\nQuery: {q['query']}\nAnswer: {q['answer']}"
                else:
                    text = f"Context:\n{excerpt}\n\nQuestion: {q['query']}\n\nResponse: {q['answer']}"
                fmt = ["excerpt_query", "context_question"][style]
                yield {"id": key, "text": text, "domain": "rag", "source": "qmsum", "format": fmt}
                rag_done += 1


# -- FairytaleQA: rag (section + questions) and general (sections as prose) ------------------------
def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def fairytale_docs(m: Mirror, n_rag: int, n_gen: int) -> Iterator[dict[str, Any]]:
    stories = [p for p in m.files("data-by-origin/section-stories/") if p.endswith("-story.csv")]
    stories.sort(key=lambda p: rank(p))
    rag_done = gen_done = 0
    for k, path in enumerate(stories):
        title = Path(path).stem.removesuffix("-story").replace("-", " ").title()
        sections = {
            int(r["section"]): r["text"].strip() for r in _csv(m.read(path)) if r["section"].isdigit()
        }
        qpath = path.replace("section-stories", "questions").replace("-story.csv", "-questions.csv")
        as_rag = k % 2 == 0
        if as_rag and rag_done < n_rag:
            try:
                qs = _csv(m.read(qpath))
            except subprocess.CalledProcessError:
                continue
            by_sec: dict[int, list[tuple[str, str]]] = {}
            for r in qs:
                sec = r.get("cor_section", "").split(",")[0].strip()
                if sec.isdigit() and r.get("answer1"):
                    by_sec.setdefault(int(sec), []).append((r["question"].strip(), r["answer1"].strip()))
            for sec, pairs in sorted(by_sec.items())[:3]:
                if sec not in sections:
                    continue
                key = f"fairytaleqa-{Path(path).stem}-{sec}"
                ctx, pairs = sections[sec], pairs[:3]
                style = pick(key, 5)
                if style == 0:
                    text = f"Context: {ctx}\n" + "\n".join(f"Question: {q}\nAnswer: {a}" for q, a in pairs)
                elif style == 1:
                    text = ctx + "\n\n" + "\n".join(f"Q: {q}\nA: {a}" for q, a in pairs)
                elif style == 2:
                    qas = [{"question": q, "answers": [{"text": a}]} for q, a in pairs]
                    text = json.dumps(
                        {"title": title, "context": ctx, "qas": qas}, indent=2, ensure_ascii=False
                    )
                elif style == 3:
                    text = f"Read the passage and answer the questions.\n\nPassage:\n{ctx}\n\n" + "\n".join(
                        f"{i + 1}. {q}\nAnswer: {a}" for i, (q, a) in enumerate(pairs)
                    )
                else:
                    q, a = pairs[0]
                    text = f"### Document\n{ctx}\n\n### Question\n{q}\n\n### Answer\n{a}"
                fmt = ["context_question", "passage_qa", "squad_json", "numbered", "markdown_sections"][style]
                yield {"id": key, "text": text, "domain": "rag", "source": "fairytaleqa", "format": fmt}
                rag_done += 1
        elif not as_rag and gen_done < n_gen:
            secs = [sections[s] for s in sorted(sections)]
            for start in range(0, min(len(secs), 4), 2):
                body = "\n\n".join(secs[start : start + 2])
                key = f"fairytaleqa-{Path(path).stem}-s{start}"
                style = pick(key, 2)
                text = f"{title}\n\n{body}" if style == 0 else body
                fmt = ["titled", "plain"][style]
                yield {"id": key, "text": text, "domain": "general", "source": "fairytaleqa", "format": fmt}
                gen_done += 1


# -- public-domain novels: general -----------------------------------------------------------------
def novel_docs(m: Mirror, n: int) -> Iterator[dict[str, Any]]:
    files = []
    for p in m.files("corpus/"):
        year = re.search(r"_(\d{4})\.txt$", p)
        if year and int(year.group(1)) < 1920:
            files.append(p)
    files.sort(key=lambda p: rank(p))
    per_book = max(1, n // len(files) + 1)
    done = 0
    for p in files:
        text = m.read(p)
        blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
        if max(len(b) for b in blocks) > 20_000:  # one paragraph per line
            blocks = text.splitlines()
        paras = [" ".join(x.split()) for x in blocks if 5 < len(x.split()) and len(x) < 4000]
        author, short, year = Path(p).stem.split("_")[:3]
        for j in range(per_book):
            if done >= n:
                return
            start = len(paras) // (per_book + 1) * (j + 1)
            chunk, size = [], 0
            for para in paras[start:]:
                chunk.append(para)
                size += len(para)
                if size > 2500:
                    break
            key = f"novels-{Path(p).stem}-{j}"
            style = pick(key, 3)
            body = "\n\n".join(chunk)
            if style == 0:
                doc = body
            elif style == 1:
                doc = f"CHAPTER {j + 3}\n\n{body}"
            else:
                doc = f"# {short}, by {author} ({year})\n\n{body}"
            fmt = ["plain", "chapter_heading", "markdown_title"][style]
            yield {"id": key, "text": doc, "domain": "general", "source": "english_novels", "format": fmt}
            done += 1


# -- code: Go, C, Python, JavaScript from permissively licensed repositories -----------------------
CODE_EXT = {"cobra": ".go", "hiredis": ".c", "click": ".py", "express": ".js"}
CODE_ALSO = {"hiredis": ".h"}


def code_docs(name: str, m: Mirror, n: int) -> Iterator[dict[str, Any]]:
    exts = (CODE_EXT[name], CODE_ALSO.get(name, CODE_EXT[name]))
    files = [p for p in m.files() if p.endswith(exts) and "vendor/" not in p]
    files.sort(key=lambda p: rank(p))
    lang = {".go": "go", ".c": "c", ".h": "c", ".py": "python", ".js": "javascript"}
    done = 0
    for p in files:
        src = m.read(p)
        lines = src.splitlines()
        if len(lines) < 15:
            continue
        start = len(lines) // 3 if pick(p, 2, "start") else 0
        body = "\n".join(lines[start : start + 80])
        key = f"{name}-{p}"
        style = pick(key, 3)
        if style == 0:
            text = body
        elif style == 1:
            text = f"{p}\n```{lang[Path(p).suffix]}\n{body}\n```"
        else:
            text = f"File: {p}\n\n{body}"
        fmt = ["raw", "fenced", "file_header"][style]
        yield {"id": key, "text": text, "domain": "code", "source": name, "format": fmt}
        done += 1
        if done >= n:
            return


# -- driver ----------------------------------------------------------------------------------------
def build(mirrors: Path, out: Path, per_domain: int = 200) -> dict[str, Any]:
    ms = {s: Mirror(mirrors, folder) for s, (folder, _, _) in SOURCES.items()}
    half = per_domain // 2
    producers: list[Callable[[], Iterator[dict[str, Any]]]] = [
        lambda: svamp_docs(ms["svamp"]),
        lambda: toolalpaca_docs(ms["toolalpaca"]),
        lambda: taskmaster_docs(ms["taskmaster3"], n_fc=per_domain - 120, n_rp=half),
        lambda: qmsum_docs(ms["qmsum"], n_rp=half, n_rag=per_domain // 4),
        lambda: fairytale_docs(ms["fairytaleqa"], n_rag=per_domain - per_domain // 4, n_gen=half),
        lambda: novel_docs(ms["english_novels"], n=half),
        *[(lambda s=s: code_docs(s, ms[s], per_domain // 3)) for s in CODE_EXT],
    ]
    docs: list[dict[str, Any]] = []
    for make in producers:
        docs.extend(make())
    # cap each domain at per_domain documents, hash-ranked, so sources keep their shares
    by_domain: dict[str, list[dict[str, Any]]] = {}
    for d in sorted(docs, key=lambda d: rank(d["id"], "cap")):
        by_domain.setdefault(d["domain"], []).append(d)
    kept = sorted((d for ds in by_domain.values() for d in ds[:per_domain]), key=lambda d: d["id"])
    ids = [d["id"] for d in kept]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate yardstick ids")
    out.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in kept).encode()
    (out / "yardstick.jsonl").write_bytes(data)
    lic = out / "licenses"
    lic.mkdir(exist_ok=True)
    for s, (folder, lic_file, _) in SOURCES.items():
        if lic_file:
            (lic / f"{s}.txt").write_text(ms[s].read(lic_file), encoding="utf-8")
    manifest = {
        "documents": len(kept),
        "sha256": hashlib.sha256(data).hexdigest(),
        "domains": dict(sorted(Counter(d["domain"] for d in kept).items())),
        "sources": dict(sorted(Counter(d["source"] for d in kept).items())),
        "formats": dict(sorted(Counter(f"{d['domain']}/{d['source']}/{d['format']}" for d in kept).items())),
        "commits": {
            s: {"repo": f.replace("+", "/"), "commit": ms[s].commit(), "license": li}
            for s, (f, _, li) in SOURCES.items()
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"), help="folder of fetched snapshots")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    ap.add_argument("--per-domain", type=int, default=200, help="documents per domain")
    args = ap.parse_args(argv)
    manifest = build(args.mirrors, args.out, args.per_domain)
    print(json.dumps({k: manifest[k] for k in ("documents", "domains", "sources", "sha256")}, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
