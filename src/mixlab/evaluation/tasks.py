"""Multiple-choice tasks: ELMB files, lm-eval task YAMLs and Hugging Face datasets, one :class:`Task` type.

A task is a list of documents plus the three lm-eval projections of a document: the ``context``
(the prompt), the ``choices`` (each scored as ``target_delimiter + choice`` after the context) and the
``gold`` index. ELMB documents (``question``, ``choices``, ``answer``, optional ``ctx``) use the ELMB
prompt ``Question: {question}\\nAnswer:`` (prefixed with ``Context: {ctx}\\n`` when a ``ctx`` is given);
tasks read from an lm-eval YAML render its ``doc_to_text`` / ``doc_to_choice`` / ``doc_to_target``
Jinja templates the way lm-eval does (same field lookup, same ``ast.literal_eval`` of rendered lists),
in a sandboxed Jinja environment.

Every document is checked when the task is loaded; a bad one raises :class:`TaskFormatError` naming
the file and the line (JSONL), row (Parquet) or document index (other sources).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mixlab.jsonl import iter_jsonl

__all__ = ["Task", "TaskFormatError", "load_task", "parse_task_specs", "read_elmb_file"]

ELMB_PROMPT = "Question: {question}\nAnswer:"
ELMB_CONTEXT_PREFIX = "Context: {ctx}\n"


class TaskFormatError(ValueError):
    """A task file or document is malformed; the message names the file and the line."""


# --------------------------------------------------------------------------------------------- Jinja
def _regex_replace(string: str, pattern: str, repl: str, count: int = 0) -> str:
    """The ``regex_replace`` filter lm-eval registers for its templates."""
    return re.sub(pattern, repl, string, count=count)


_JINJA_ENV: Any = None


def _jinja_env() -> Any:
    """A sandboxed Jinja environment configured like lm-eval's (StrictUndefined, keep trailing newline)."""
    global _JINJA_ENV
    if _JINJA_ENV is None:
        from jinja2 import StrictUndefined
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
        env.filters["regex_replace"] = _regex_replace
        _JINJA_ENV = env
    return _JINJA_ENV


# ---------------------------------------------------------------------------------------------- Task
@dataclass
class Task:
    """A multiple-choice task: documents and how each becomes a context, choices and a gold index.

    With all templates ``None`` the documents are ELMB records. Otherwise ``doc_to_text``,
    ``doc_to_choice`` and ``doc_to_target`` follow lm-eval's semantics: a string naming a document
    field returns that field, any other string is a Jinja template (a rendered ``doc_to_choice`` is
    parsed with ``ast.literal_eval``, a rendered all-digit ``doc_to_target`` becomes an index), a list
    of choices is used as is, an int target is a fixed index.
    """

    name: str
    docs: list[dict[str, Any]]
    source: str = ""
    """Where the documents came from (file, YAML or dataset id), for messages."""
    doc_to_text: str | None = None
    doc_to_choice: str | list[str] | dict[str, str] | None = None
    doc_to_target: str | int | None = None
    target_delimiter: str = " "
    description: str = ""
    """Text (or template) put before every context, as lm-eval's ``description``."""
    features: tuple[str, ...] = ()
    """Column names of the documents (lm-eval looks a template up as a field name first)."""
    _templates: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.docs)

    def _doc(self, doc: int | Mapping[str, Any]) -> Mapping[str, Any]:
        return self.docs[doc] if isinstance(doc, int) else doc

    def _render(self, template: str, doc: Mapping[str, Any]) -> str:
        compiled = self._templates.get(template)
        if compiled is None:
            compiled = self._templates[template] = _jinja_env().from_string(template)
        return str(compiled.render(**doc))

    def _is_feature(self, key: str, doc: Mapping[str, Any]) -> bool:
        return key in self.features or (not self.features and key in doc)

    def context(self, doc: int | Mapping[str, Any]) -> str:
        """The prompt of a document (index or record), exactly as lm-eval builds it for zero-shot."""
        d = self._doc(doc)
        if self.doc_to_text is None:
            text = ELMB_PROMPT.format(question=d["question"])
            if d.get("ctx"):
                text = ELMB_CONTEXT_PREFIX.format(ctx=d["ctx"]) + text
        elif self._is_feature(self.doc_to_text, d):
            text = d[self.doc_to_text]
        else:
            text = self._render(self.doc_to_text, d)
        if not isinstance(text, str):
            raise TypeError(
                f"context is {type(text).__name__}, not a string (multiple-input tasks are unsupported)"
            )
        if self.description:
            desc = d[self.description] if self.description in d else self._render(self.description, d)
            text = str(desc) + text
        return text

    def choices(self, doc: int | Mapping[str, Any]) -> list[str]:
        """The answer options of a document, without the target delimiter."""
        d = self._doc(doc)
        spec = self.doc_to_choice
        if spec is None:
            value: Any = d["choices"]
        elif isinstance(spec, list):
            value = spec
        elif isinstance(spec, dict):
            value = list(spec.values())
        elif self._is_feature(spec, d):
            value = d[spec]
        else:
            value = ast.literal_eval(self._render(spec, d))
        if not isinstance(value, (list, tuple)) or not all(isinstance(c, str) for c in value):
            raise TypeError(f"choices must be a list of strings, got {value!r:.200}")
        return list(value)

    def continuations(self, doc: int | Mapping[str, Any]) -> list[str]:
        """The scored strings: ``target_delimiter + choice`` for each choice."""
        return [f"{self.target_delimiter}{c}" for c in self.choices(doc)]

    def gold(self, doc: int | Mapping[str, Any]) -> int:
        """Index of the correct choice."""
        d = self._doc(doc)
        spec = self.doc_to_target
        if spec is None:
            value: Any = d["answer"]
        elif isinstance(spec, int):
            value = spec
        elif self._is_feature(spec, d):
            value = d[spec]
        else:
            value = self._render(spec, d)
            if value.isdigit():
                value = int(value)
        if isinstance(value, str):
            options = self.choices(d)
            if value not in options:
                raise ValueError(f"target {value!r:.100} is not one of the choices")
            value = options.index(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"answer must be an integer index, got {value!r:.100}")
        n = len(self.choices(d))
        if not 0 <= value < n:
            raise ValueError(f"answer index {value} out of range for {n} choices")
        return value

    def check(self, locations: list[str] | None = None) -> None:
        """Render every document once; raise :class:`TaskFormatError` naming the first bad one."""
        for i, d in enumerate(self.docs):
            where = locations[i] if locations else f"{self.source or self.name}: document {i}"
            try:
                choices = self.choices(d)
                if len(choices) < 2:
                    raise ValueError(f"needs at least 2 choices, got {len(choices)}")
                for j, c in enumerate(choices):
                    if not c:
                        raise ValueError(f"choice {j} is empty (acc_norm divides by its length)")
                self.gold(d)
                self.context(d)
            except (KeyError, TypeError, ValueError, SyntaxError) as exc:
                raise TaskFormatError(f"{where}: {_describe(exc)}") from exc
            except Exception as exc:  # jinja2 errors (UndefinedError, TemplateSyntaxError, SecurityError)
                if type(exc).__module__.startswith("jinja2"):
                    raise TaskFormatError(f"{where}: template error: {exc}") from exc
                raise


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc)


# ------------------------------------------------------------------------------------- file readers
def _read_records(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Records of a JSONL(.gz/.zst) or Parquet file and the location string of each."""
    if not path.exists():
        raise FileNotFoundError(f"task file not found: {path}")
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as exc:
            raise TaskFormatError(f"{path}: cannot read Parquet: {exc}") from exc
        return rows, [f"{path}: row {i + 1}" for i in range(len(rows))]
    docs: list[dict[str, Any]] = []
    where: list[str] = []
    for lineno, obj in iter_jsonl(path, error=TaskFormatError):
        docs.append(obj)
        where.append(f"{path}:{lineno}")
    return docs, where


def read_elmb_file(path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """ELMB records of a JSONL/Parquet file with their ``file:line`` locations; strict field checks."""
    path = Path(path)
    docs, where = _read_records(path)
    for d, loc in zip(docs, where, strict=True):
        if not isinstance(d.get("question"), str):
            raise TaskFormatError(f"{loc}: field 'question' must be a string")
        if "ctx" in d and d["ctx"] is not None and not isinstance(d["ctx"], str):
            raise TaskFormatError(f"{loc}: field 'ctx' must be a string")
        if not isinstance(d.get("choices"), list):
            raise TaskFormatError(f"{loc}: field 'choices' must be a list of strings")
        if "answer" not in d:
            raise TaskFormatError(f"{loc}: missing field 'answer'")
    if not docs:
        raise TaskFormatError(f"{path}: no documents")
    return docs, where


# ---------------------------------------------------------------------------------------- lm-eval YAML
class _TaskYamlLoader(yaml.SafeLoader):
    """SafeLoader that names ``!function`` (Python code in lm-eval YAMLs) as unsupported, with its line."""


class _FunctionTagError(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def _reject_function(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    raise _FunctionTagError(node.start_mark.line + 1)


_TaskYamlLoader.add_constructor("!function", _reject_function)

#: lm-eval config keys mixlab understands; others are ignored only if listed in _IGNORED_KEYS.
_USED_KEYS = {
    "task", "dataset_path", "dataset_name", "dataset_kwargs", "test_split", "validation_split", "training_split",
    "output_type", "doc_to_text", "doc_to_choice", "doc_to_target", "target_delimiter", "description",
    "num_fewshot", "include",
}  # fmt: skip
_IGNORED_KEYS = {
    "tag", "group", "metric_list", "metadata", "fewshot_split", "fewshot_delimiter", "fewshot_config",
    "should_decontaminate", "doc_to_decontamination_query", "repeats", "filter_list", "task_alias",
    "unsafe_code", "generation_kwargs", "dataset_name_alias", "gen_prefix",
}  # fmt: skip


def _load_yaml_config(path: Path, depth: int = 0) -> dict[str, Any]:
    if depth > 8:
        raise TaskFormatError(f"{path}: 'include' nested too deeply")
    if not path.exists():
        raise FileNotFoundError(f"task YAML not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        loaded = yaml.load(text, Loader=_TaskYamlLoader)
    except _FunctionTagError as exc:
        raise TaskFormatError(
            f"{path}:{exc.line}: '!function' (Python code) is not supported; use Jinja templates or a field name"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise TaskFormatError(f"{path}{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(loaded, dict):
        raise TaskFormatError(f"{path}:1: expected a mapping of lm-eval task settings")
    cfg: dict[str, Any] = {}
    include = loaded.get("include")
    if include is not None:
        inc = Path(include)
        cfg.update(_load_yaml_config(inc if inc.is_absolute() else path.parent / inc, depth + 1))
    cfg.update({k: v for k, v in loaded.items() if k != "include"})
    return cfg


def _line_of_key(path: Path, key: str) -> int:
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith(f"{key}:"):
            return i
    return 1


def _resolve_data_file(value: str, yaml_path: Path) -> Path:
    p = Path(value).expanduser()
    if p.is_absolute():
        return p
    beside = yaml_path.parent / p
    return beside if beside.exists() else Path.cwd() / p


def _split_files(data_files: Any, split: str, yaml_path: Path) -> list[Path]:
    if isinstance(data_files, Mapping):
        if split not in data_files:
            raise TaskFormatError(
                f"{yaml_path}: data_files has no split {split!r} (has {sorted(data_files)})"
            )
        data_files = data_files[split]
    files = [data_files] if isinstance(data_files, str) else list(data_files)
    return [_resolve_data_file(str(f), yaml_path) for f in files]


def _load_yaml_task(name: str, path: Path) -> Task:
    cfg = _load_yaml_config(path)
    for key in cfg:
        if key not in _USED_KEYS and key not in _IGNORED_KEYS:
            raise TaskFormatError(
                f"{path}:{_line_of_key(path, key)}: unsupported lm-eval task setting {key!r}"
            )
    if cfg.get("output_type", "multiple_choice") != "multiple_choice":
        raise TaskFormatError(
            f"{path}:{_line_of_key(path, 'output_type')}: output_type {cfg['output_type']!r} is not supported "
            "(only multiple_choice)"
        )
    if int(cfg.get("num_fewshot") or 0) != 0:
        raise TaskFormatError(
            f"{path}:{_line_of_key(path, 'num_fewshot')}: only zero-shot tasks are supported"
        )
    for key in ("dataset_path", "doc_to_text", "doc_to_choice", "doc_to_target"):
        if key not in cfg:
            raise TaskFormatError(f"{path}: missing lm-eval task setting {key!r}")
    split = cfg.get("test_split") or cfg.get("validation_split")
    if not split:
        raise TaskFormatError(f"{path}: needs a test_split or validation_split")
    kwargs = dict(cfg.get("dataset_kwargs") or {})
    builder = str(cfg["dataset_path"])
    locations: list[str] | None
    if builder in ("json", "parquet") and "data_files" in kwargs:
        docs, locations = [], []
        for file in _split_files(kwargs["data_files"], split, path):
            file_docs, file_where = _read_records(file)
            docs.extend(file_docs)
            locations.extend(file_where)
    else:
        docs = _load_hf_docs(builder, cfg.get("dataset_name"), split, kwargs)
        locations = None
    # Hugging Face datasets give every record every column (missing ones as None); lm-eval sees that.
    features: dict[str, None] = {}
    for d in docs:
        features.update(dict.fromkeys(d))
    docs = [{k: d.get(k) for k in features} for d in docs]
    task = Task(
        name=name,
        docs=docs,
        source=str(path),
        doc_to_text=cfg["doc_to_text"],
        doc_to_choice=cfg["doc_to_choice"],
        doc_to_target=cfg["doc_to_target"],
        target_delimiter=str(cfg.get("target_delimiter", " ")),
        description=str(cfg.get("description") or ""),
        features=tuple(features),
    )
    if not docs:
        raise TaskFormatError(f"{path}: the {split!r} split has no documents")
    task.check(locations)
    return task


# ---------------------------------------------------------------------------------- Hugging Face hub
def _load_hf_docs(
    dataset: str, config: str | None, split: str, kwargs: dict[str, Any]
) -> list[dict[str, Any]]:
    """Rows of a Hugging Face dataset split (needs the hub or a local datasets cache)."""
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets comes with lm-eval
        raise TaskFormatError(f"loading {dataset!r} needs the 'datasets' package") from exc
    try:
        ds = datasets.load_dataset(dataset, config, split=split, **kwargs)
    except Exception as exc:
        raise TaskFormatError(
            f"cannot load Hugging Face dataset {dataset!r} (split {split!r}): {exc}"
        ) from exc
    return [dict(row) for row in ds]


def _parse_hf_id(spec: str) -> tuple[str, str | None, str]:
    """``owner/name[:config][@split]`` -> (id, config, split); split defaults to ``test``."""
    rest, _, split = spec.partition("@")
    dataset, _, config = rest.partition(":")
    return dataset.removeprefix("hf://"), (config or None), (split or "test")


# --------------------------------------------------------------------------------------------- API
def load_task(name: str, spec: str | Path) -> Task:
    """Load a task from an ELMB JSONL/Parquet file, an lm-eval task YAML, or a Hugging Face dataset id.

    A Hugging Face id is ``owner/name[:config][@split]`` (split ``test`` by default) whose rows are ELMB
    records; it needs network access or a populated ``datasets`` cache.
    """
    path = Path(spec)
    suffixes = "".join(path.suffixes).lower()
    if path.suffix.lower() in (".yaml", ".yml"):
        return _load_yaml_task(name, path)
    if path.exists() or any(s in suffixes for s in (".jsonl", ".json", ".parquet", ".ndjson")):
        docs, where = read_elmb_file(path)
        task = Task(name=name, docs=docs, source=str(path))
        task.check(where)
        return task
    spec_str = str(spec)
    if "/" not in spec_str.removeprefix("hf://"):
        raise FileNotFoundError(
            f"task {name!r}: {spec_str!r} is neither an existing file nor a dataset id owner/name"
        )
    dataset, config, split = _parse_hf_id(spec_str)
    docs = _load_hf_docs(dataset, config, split, {})
    task = Task(name=name, docs=docs, source=spec_str)
    task.check()
    return task


def parse_task_specs(text: str) -> dict[str, str]:
    """Parse ``"a=f1,b=f2"`` into ``{"a": "f1", "b": "f2"}``; a bare ``FILE`` is named after its stem."""
    specs: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if "=" in item:
            name, _, spec = item.partition("=")
            name, spec = name.strip(), spec.strip()
        else:
            spec = item
            name = Path(item).name.split(".")[0]
        if not name or not spec:
            raise ValueError(f"invalid task spec {item!r}: expected NAME=FILE")
        if name in specs:
            raise ValueError(f"task {name!r} given twice")
        specs[name] = spec
    if not specs:
        raise ValueError("no tasks given: expected NAME=FILE[,NAME=FILE...]")
    return specs
