"""The one JSONL reader: compressed files, blank lines, a BOM, ``FILE:LINE: reason`` errors, quarantine."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from mixlab.jsonl import BadLine, JsonlError, iter_jsonl, read_jsonl_objects

BODY = (
    b'\xef\xbb\xbf{"a": 1}\n'  # a BOM before the first line is ignored
    b"\n"
    b"{not json\n"
    b"[1, 2]\n"
    b'{"a": "caf\xe9"}\n'
    b"   \r\n"
    b'{"a": 2}\r\n'
)


@dataclass
class Counts:
    blank_lines: int = 0


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_good_lines_bad_lines_and_blank_lines(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"x{suffix}"
    data = {".jsonl": BODY, ".jsonl.gz": gzip.compress(BODY)}.get(suffix)
    path.write_bytes(data if data is not None else zstandard.ZstdCompressor().compress(BODY))
    bad: list[BadLine] = []
    counts = Counts()
    rows = list(iter_jsonl(path, quarantine=bad.append, counts=counts))
    assert rows == [(1, {"a": 1}), (7, {"a": 2})]
    assert counts.blank_lines == 2
    assert [(b.line, b.reason.split(":")[0]) for b in bad] == [
        (3, "malformed JSON"),
        (4, "JSON line is not an object"),
        (5, "invalid UTF-8"),
    ]
    assert (
        bad[0].message()
        == f"{path}:3: malformed JSON: Expecting property name enclosed in double quotes at column 2"
    )
    assert bad[0].raw == "{not json\n"


class MyError(ValueError):
    pass


def test_strict_reading_raises_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(BODY)
    with pytest.raises(JsonlError, match=r"x\.jsonl:3: malformed JSON"):
        read_jsonl_objects(path)
    with pytest.raises(MyError, match=r"x\.jsonl:3: malformed JSON"):
        list(iter_jsonl(path, error=MyError))
    path.write_bytes(b'{"a": 1}\n' + b"[" * 100_000 + b"\n")
    with pytest.raises(JsonlError, match=r"x\.jsonl:2: malformed JSON: nested too deeply"):
        read_jsonl_objects(path)


def test_truncated_zstd_is_an_error_not_silence(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl.zst"
    whole = zstandard.ZstdCompressor().compress(b'{"a": 1}\n' * 1000)
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(zstandard.ZstdError, match="truncated"):
        read_jsonl_objects(path)
