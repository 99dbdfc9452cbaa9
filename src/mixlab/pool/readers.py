"""Readers for the formats users already have; every line either yields a document or a quarantine record.

Supported inputs (DESIGN.md "Users' world"):
- JSON Lines, optionally ``.gz`` or ``.zst`` compressed: one object per line with a text field;
- Parquet with a text column;
- LMFlow ``{"type": "text_only", "instances": [{"text": ...}, ...]}`` JSON;
- Hugging Face datasets saved with ``save_to_disk`` (a folder with ``dataset_info.json`` and ``*.arrow``);
- the NVIDIA ClimbLab layout (``cluster_k/*.tokenized.parquet`` with GPT-2 ids in ``tokens``), decoded
  with the GPT-2 tokenizer given as ``decode_tokenizer``.

Nothing is dropped silently: malformed lines, wrong encodings (invalid UTF-8, lone surrogates such as
``"\ud800"``), missing or non-string text fields and empty documents come back as :class:`Quarantined`
with the file, the line and the reason; blank lines are counted in a :class:`ReadStats`. A UTF-8 byte
order mark at the start of a file is ignored. Folder expansion reads every supported file and lists the
others with the reason they were skipped (:func:`expand_inputs_report`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow.parquet as pq

from mixlab.jsonl import BOM, BadLine, iter_jsonl_lines, open_binary


@dataclass(frozen=True)
class RawDoc:
    """One document as read: text plus provenance."""

    text: str
    source: str
    file: str
    line: int
    """1-based line (JSONL), row (Parquet/Arrow) or instance (LMFlow) number."""
    orig_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Quarantined:
    """An input record that could not become a document, with the reason."""

    file: str
    line: int
    reason: str
    raw: str = ""


@dataclass
class ReadStats:
    """Counts a reader keeps besides what it yields (blank lines are neither documents nor errors)."""

    blank_lines: int = 0


@dataclass(frozen=True)
class Skipped:
    """A file found while expanding a folder that is not read, with the reason."""

    file: str
    reason: str


class InputFormatError(ValueError):
    """A whole input cannot be read (unknown format, unreadable file)."""


#: Suffixes read when a folder is expanded (each also with .gz, .zst or .zstd).
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
COMPRESSION_SUFFIXES = (".gz", ".zst", ".zstd")
#: Known files that are deliberately not read, with the reason given in the skipped list.
UNSUPPORTED_SUFFIXES = {
    ".txt": "plain text is not read (no document boundaries): convert it to JSONL with a text field",
    ".md": "plain text is not read (no document boundaries): convert it to JSONL with a text field",
    ".csv": "CSV is not read: convert it to JSONL or Parquet with a text column",
    ".tsv": "TSV is not read: convert it to JSONL or Parquet with a text column",
}


def unicode_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as UTF-8 (a lone surrogate such as ``\\ud800``), or None."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start : exc.end]
        return f"lone surrogate {bad.encode('unicode_escape').decode('ascii')} at character {exc.start}"
    return None


def _open_binary(path: Path) -> BinaryIO:
    return open_binary(path)


def detect_format(path: Path) -> str:
    """Name the format of ``path``: jsonl, parquet, climblab, lmflow, hf_disk."""
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            return "hf_disk"
        if any(path.glob("cluster_*/*.tokenized.parquet")) or any(path.glob("*.tokenized.parquet")):
            return "climblab"
        raise InputFormatError(f"{path}: directory is neither a HF dataset on disk nor a ClimbLab layout")
    name = path.name
    if name.endswith(".tokenized.parquet"):
        return "climblab"
    if name.endswith(".parquet"):
        return "parquet"
    base = name.removesuffix(".gz").removesuffix(".zst").removesuffix(".zstd")
    if base.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if base.endswith(".json"):
        with _open_binary(path) as fh:
            head = fh.read(4096).removeprefix(BOM).lstrip()
        if head.startswith(b"{") and b'"type"' in head and b'"instances"' in head:
            return "lmflow"
        return "jsonl"
    raise InputFormatError(f"{path}: unknown input format (expected .jsonl[.gz|.zst], .parquet, .json)")


def _source_of(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".zst", ".zstd", ".jsonl", ".ndjson", ".json", ".parquet", ".tokenized"):
        name = name.removesuffix(suffix)
    return name


def _check_text(value: Any, file: str, line: int, raw: str) -> str | Quarantined:
    if value is None:
        return Quarantined(file, line, "missing text field", raw[:200])
    if not isinstance(value, str):
        return Quarantined(file, line, f"text field is {type(value).__name__}, not a string", raw[:200])
    if not value.strip():
        return Quarantined(file, line, "empty document", raw[:200])
    return value


def read_jsonl(
    path: Path, text_field: str = "text", stats: ReadStats | None = None
) -> Iterator[RawDoc | Quarantined]:
    """Documents of a JSON Lines file (the shared reader, :func:`mixlab.jsonl.iter_jsonl`); a line that is
    not a JSON object, or whose text field is not usable text, comes back as :class:`Quarantined`."""
    file = str(path)
    default_source = _source_of(path)
    bad: list[BadLine] = []
    for lineno, obj, raw in iter_jsonl_lines(path, quarantine=bad.append, counts=stats):
        yield from (Quarantined(b.file, b.line, b.reason, b.raw) for b in bad)
        bad.clear()
        text = _check_text(obj.get(text_field), file, lineno, raw)
        if isinstance(text, Quarantined):
            yield text
            continue
        orig = obj.get("id")
        source = obj.get("source") or default_source
        fields = {"text": text, "id": None if orig is None else str(orig), "source": str(source)}
        problem = next(
            (f"invalid Unicode in {k}: {p}" for k, v in fields.items() if v and (p := unicode_problem(v))),
            None,
        )
        if problem:
            yield Quarantined(file, lineno, problem, raw[:200])
            continue
        meta = {k: v for k, v in obj.items() if k not in (text_field, "id", "source")}
        yield RawDoc(
            text=text,
            source=str(source),
            file=file,
            line=lineno,
            orig_id=fields["id"],
            meta=meta,
        )
    yield from (Quarantined(b.file, b.line, b.reason, b.raw) for b in bad)


def read_lmflow(path: Path) -> Iterator[RawDoc | Quarantined]:
    file = str(path)
    with _open_binary(path) as fh:
        try:
            obj = json.loads(fh.read().decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputFormatError(f"{path}: not a valid LMFlow JSON file: {exc}") from exc
    if obj.get("type") != "text_only" or not isinstance(obj.get("instances"), list):
        raise InputFormatError(f"{path}: LMFlow file must have type 'text_only' and a list of instances")
    source = _source_of(path)
    for i, inst in enumerate(obj["instances"], 1):
        raw = json.dumps(inst)[:200]
        if not isinstance(inst, dict):
            yield Quarantined(file, i, "instance is not an object", raw)
            continue
        text = _check_text(inst.get("text"), file, i, raw)
        if isinstance(text, Quarantined):
            yield text
            continue
        problem = unicode_problem(text)
        if problem:
            yield Quarantined(file, i, f"invalid Unicode in text: {problem}", raw)
            continue
        yield RawDoc(text=text, source=source, file=file, line=i)


def _iter_table_rows(
    table: Any, file: str, source: str, text_field: str, first_line: int = 1
) -> Iterator[RawDoc | Quarantined]:
    if text_field not in table.column_names:
        raise InputFormatError(f"{file}: no {text_field!r} column (columns: {table.column_names})")
    cols = table.to_pydict()
    texts = cols.pop(text_field)
    ids = cols.pop("id", [None] * len(texts))
    sources = cols.pop("source", [None] * len(texts))
    for i, text in enumerate(texts):
        line = first_line + i
        checked = _check_text(text, file, line, repr(text)[:200])
        if isinstance(checked, Quarantined):
            yield checked
            continue
        yield RawDoc(
            text=checked,
            source=str(sources[i] or source),
            file=file,
            line=line,
            orig_id=None if ids[i] is None else str(ids[i]),
            meta={k: v[i] for k, v in cols.items()},
        )


def read_parquet(
    path: Path, text_field: str = "text", row_groups: Sequence[int] | None = None, first_line: int = 1
) -> Iterator[RawDoc | Quarantined]:
    """Rows of a Parquet file, or of its ``row_groups`` (whose first row is row ``first_line``)."""
    if row_groups is None:
        table = pq.read_table(path)
    else:
        table = pq.ParquetFile(path).read_row_groups(list(row_groups))
    yield from _iter_table_rows(table, str(path), _source_of(path), text_field, first_line)


def hf_arrow_files(path: Path) -> list[Path]:
    """The ``.arrow`` files of a Hugging Face dataset folder, in reading order."""
    return sorted(path.rglob("*.arrow"))


def read_hf_arrow(arrow: Path, source: str, text_field: str = "text") -> Iterator[RawDoc | Quarantined]:
    """Rows of one ``.arrow`` file of a Hugging Face dataset folder (``source``: the folder's name)."""
    import pyarrow as pa

    with pa.memory_map(str(arrow)) as src:
        try:
            table = pa.ipc.open_stream(src).read_all()
        except pa.ArrowInvalid:
            table = pa.ipc.open_file(src).read_all()
    yield from _iter_table_rows(table, str(arrow), source, text_field)


def read_hf_disk(path: Path, text_field: str = "text") -> Iterator[RawDoc | Quarantined]:
    arrows = hf_arrow_files(path)
    if not arrows:
        raise InputFormatError(f"{path}: HF dataset folder holds no .arrow files")
    for arrow in arrows:
        yield from read_hf_arrow(arrow, path.name, text_field)


def climblab_files(path: Path) -> list[Path]:
    """The token files of a ClimbLab input: ``cluster_*/*.tokenized.parquet`` of a folder, or the file."""
    if not path.is_dir():
        return [path]
    return sorted(path.glob("cluster_*/*.tokenized.parquet")) or sorted(path.glob("*.tokenized.parquet"))


def read_climblab_file(
    f: Path, decode_tokenizer: Any, row_groups: Sequence[int] | None = None, first_line: int = 1
) -> Iterator[RawDoc | Quarantined]:
    """One ClimbLab token file (or its ``row_groups``), decoded; the cluster folder becomes the source."""
    if row_groups is None:
        table = pq.read_table(f, columns=["tokens"])
    else:
        table = pq.ParquetFile(f).read_row_groups(list(row_groups), columns=["tokens"])
    source = f.parent.name if f.parent.name.startswith("cluster_") else _source_of(f)
    tokens = table.column("tokens").to_pylist()
    texts = decode_tokenizer.batch_decode(tokens, clean_up_tokenization_spaces=False)
    for i, text in enumerate(texts):
        line = first_line + i
        checked = _check_text(text, str(f), line, "")
        if isinstance(checked, Quarantined):
            yield checked
            continue
        yield RawDoc(text=checked, source=source, file=str(f), line=line, meta={"cluster": source})


def read_climblab(path: Path, decode_tokenizer: Any) -> Iterator[RawDoc | Quarantined]:
    """ClimbLab token files: decode GPT-2 ids back to text; the cluster folder becomes the source."""
    files = climblab_files(path)
    if decode_tokenizer is None:
        raise InputFormatError(f"{path}: ClimbLab token files need a decode tokenizer (GPT-2)")
    for f in files:
        yield from read_climblab_file(f, decode_tokenizer)


def _supported(name: str) -> bool:
    if name.endswith(".parquet"):
        return True
    for comp in ("", *COMPRESSION_SUFFIXES):
        if comp and not name.endswith(comp):
            continue
        if name.removesuffix(comp).endswith(JSON_SUFFIXES):
            return True
    return False


def _skip_reason(f: Path) -> str:
    if f.is_symlink() and not f.exists():
        return "broken symbolic link"
    if not f.is_file():
        return "not a regular file"
    suffix = f.name.removesuffix(".gz").removesuffix(".zst").removesuffix(".zstd")
    for ext, reason in UNSUPPORTED_SUFFIXES.items():
        if suffix.endswith(ext):
            return reason
    return f"unknown format (read: {', '.join(JSON_SUFFIXES)}[.gz|.zst] and .parquet)"


def expand_inputs_report(inputs: list[Path], exclude: Path | None = None) -> tuple[list[Path], list[Skipped]]:
    """Expand folders into their input files (sorted); keep dataset folders whole; list what is skipped.

    Hidden files and folders (``.name``), anything under ``exclude`` (the output folder) and files of
    other formats are not read; each comes back as :class:`Skipped` with its reason.
    """
    out: list[Path] = []
    skipped: list[Skipped] = []
    excluded = exclude.resolve() if exclude is not None else None
    for p in inputs:
        if not p.exists():
            raise InputFormatError(f"{p}: input does not exist")
        if not p.is_dir():
            out.append(p)
            continue
        try:
            detect_format(p)
            out.append(p)
            continue
        except InputFormatError:
            pass
        found: list[Path] = []
        for f in sorted(p.rglob("*")):
            rel = f.relative_to(p)
            if excluded is not None and (f.resolve() == excluded or excluded in f.resolve().parents):
                continue
            if any(part.startswith(".") for part in rel.parts):
                if not any(part.startswith(".") for part in rel.parts[:-1]):
                    skipped.append(Skipped(str(f), "hidden file or folder"))
                continue
            if f.is_dir() and not f.is_symlink():
                continue
            if f.is_file() and _supported(f.name):
                found.append(f)
            else:
                skipped.append(Skipped(str(f), _skip_reason(f)))
        if not found:
            reasons = "; ".join(f"{Path(s.file).name}: {s.reason}" for s in skipped[-5:])
            raise InputFormatError(
                f"{p}: directory holds no readable input files" + (f" ({reasons})" if reasons else "")
            )
        out.extend(found)
    return out, skipped


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Expand folders of JSONL/Parquet into their files (sorted); keep dataset folders whole."""
    return expand_inputs_report(inputs)[0]


def read_any(
    path: Path, text_field: str = "text", decode_tokenizer: Any = None, stats: ReadStats | None = None
) -> Iterator[RawDoc | Quarantined]:
    fmt = detect_format(path)
    if fmt == "jsonl":
        yield from read_jsonl(path, text_field, stats)
    elif fmt == "parquet":
        yield from read_parquet(path, text_field)
    elif fmt == "lmflow":
        yield from read_lmflow(path)
    elif fmt == "hf_disk":
        yield from read_hf_disk(path, text_field)
    elif fmt == "climblab":
        yield from read_climblab(path, decode_tokenizer)
    else:  # pragma: no cover - detect_format only returns the names above
        raise InputFormatError(f"{path}: unsupported format {fmt}")
