"""The one JSON Lines reader of mixlab: ``(line number, object)`` per line, ``.gz`` / ``.zst`` included.

Every module that reads JSONL (the pool's inputs, task files, lm-eval samples, seed documents, held-out
text, per-item evaluation results) goes through :func:`iter_jsonl`, so a bad line reads the same
everywhere: ``FILE:LINE: reason``, with one of three reasons:

* ``invalid UTF-8: ...`` (the bytes do not decode),
* ``malformed JSON: <what> at column N`` (or ``malformed JSON: nested too deeply``),
* ``JSON line is not an object`` (a list, a number, a string or null).

A caller that keeps going past bad lines (ingestion) passes ``quarantine``, a callback that receives a
:class:`BadLine`; otherwise the first bad line raises (``error``, default :class:`JsonlError`). Blank lines
are skipped and counted when ``counts`` is given; a UTF-8 byte order mark at the start is ignored.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

__all__ = [
    "BOM",
    "BadLine",
    "JsonlError",
    "LineCounts",
    "iter_jsonl",
    "iter_jsonl_lines",
    "open_binary",
    "read_jsonl_objects",
]

BOM = b"\xef\xbb\xbf"
#: Characters of a bad line kept with its quarantine record.
RAW_CHARS = 200


class JsonlError(ValueError):
    """A line of a JSONL file is not a JSON object; the message is ``FILE:LINE: reason``."""


@dataclass(frozen=True)
class BadLine:
    """A line that is not a JSON object: where, why, and its first characters."""

    file: str
    line: int
    reason: str
    raw: str = ""

    def message(self) -> str:
        """``FILE:LINE: reason``."""
        return f"{self.file}:{self.line}: {self.reason}"


class LineCounts(Protocol):
    """Anything counting blank lines (e.g. :class:`mixlab.pool.readers.ReadStats`)."""

    blank_lines: int


class _ZstdFrames(io.RawIOBase):
    """Decompress every zstd frame of a file in turn; a file that ends inside a frame is an error.

    (``ZstdDecompressor.stream_reader`` returns a truncated frame's data, or nothing, without a word.)
    """

    def __init__(self, fh: BinaryIO) -> None:
        import zstandard

        self._zstd = zstandard
        self._fh = fh
        self._dec = zstandard.ZstdDecompressor().decompressobj()
        self._in_frame = False
        self._buf = b""
        self._pos = 0
        self._eof = False

    def readable(self) -> bool:
        return True

    def _feed(self, chunk: bytes) -> None:
        out = []
        while chunk:
            self._in_frame = True
            out.append(self._dec.decompress(chunk))
            if not self._dec.eof:
                break
            chunk = self._dec.unused_data
            self._dec = self._zstd.ZstdDecompressor().decompressobj()
            self._in_frame = False
        self._buf, self._pos = self._buf[self._pos :] + b"".join(out), 0

    def readinto(self, b: Any) -> int:
        while self._pos >= len(self._buf) and not self._eof:
            chunk = self._fh.read(1 << 16)
            if not chunk:
                self._eof = True
                if self._in_frame:
                    raise self._zstd.ZstdError("truncated zstd file: the data ends inside a frame")
                break
            self._feed(chunk)
        n = min(len(b), len(self._buf) - self._pos)
        b[:n] = self._buf[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


def open_binary(path: str | Path) -> BinaryIO:
    """``path`` opened for binary reading, decompressed when it ends in ``.gz``, ``.zst`` or ``.zstd``."""
    path = Path(path)
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if path.name.endswith((".zst", ".zstd")):
        return io.BufferedReader(_ZstdFrames(path.open("rb")))  # type: ignore[return-value]
    return path.open("rb")


def _parse(raw_bytes: bytes, file: str, lineno: int) -> tuple[dict[str, Any], str] | BadLine:
    try:
        raw = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        return BadLine(file, lineno, f"invalid UTF-8: {exc}", raw_bytes[:RAW_CHARS].decode("latin-1"))
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        return BadLine(file, lineno, f"malformed JSON: {exc.msg} at column {exc.colno}", raw[:RAW_CHARS])
    except RecursionError:
        return BadLine(file, lineno, "malformed JSON: nested too deeply", raw[:RAW_CHARS])
    if not isinstance(obj, dict):
        return BadLine(file, lineno, "JSON line is not an object", raw[:RAW_CHARS])
    return obj, raw


def iter_jsonl_lines(
    path: str | Path,
    *,
    quarantine: Callable[[BadLine], None] | None = None,
    counts: LineCounts | None = None,
    error: Callable[[str], Exception] = JsonlError,
) -> Iterator[tuple[int, dict[str, Any], str]]:
    """:func:`iter_jsonl` that also yields each good line's text (for quarantine records downstream)."""
    file = str(path)
    with open_binary(path) as fh:
        for lineno, raw_bytes in enumerate(fh, 1):
            if lineno == 1:
                raw_bytes = raw_bytes.removeprefix(BOM)
            if not raw_bytes.strip():
                if counts is not None:
                    counts.blank_lines += 1
                continue
            parsed = _parse(raw_bytes, file, lineno)
            if isinstance(parsed, BadLine):
                if quarantine is None:
                    raise error(parsed.message())
                quarantine(parsed)
                continue
            yield lineno, parsed[0], parsed[1]


def iter_jsonl(
    path: str | Path,
    *,
    quarantine: Callable[[BadLine], None] | None = None,
    counts: LineCounts | None = None,
    error: Callable[[str], Exception] = JsonlError,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(1-based line, object)`` for every line of ``path`` that holds a JSON object.

    A bad line goes to ``quarantine`` when given, else raises ``error("FILE:LINE: reason")``. Blank lines
    are skipped (counted in ``counts.blank_lines``). Compressed files (``.gz``, ``.zst``) are read as such.
    """
    for lineno, obj, _ in iter_jsonl_lines(path, quarantine=quarantine, counts=counts, error=error):
        yield lineno, obj


def read_jsonl_objects(
    path: str | Path, error: Callable[[str], Exception] = JsonlError
) -> list[dict[str, Any]]:
    """Every object of a JSONL file, in order; the first bad line raises ``error`` naming file and line."""
    return [obj for _, obj in iter_jsonl(path, error=error)]
