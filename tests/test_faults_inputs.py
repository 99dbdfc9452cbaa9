"""Fault injection at ingest: 30+ kinds of bad records and bad files, with every count asserted.

Also: ``--force`` never deletes a folder that is not a pool, a BOM does not cost the first record, blank
lines and skipped files are reported, ``on_error: fail`` stops at the first bad input, and an empty
pool gives a clear error.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from test_faults_support import TOKENIZER, needs_data

from mixlab.cli import main
from mixlab.pool.ingest import ingest
from mixlab.pool.pool import Pool, PoolError

pytestmark = needs_data

MAX_CHARS = 2000


def _line(obj: Any) -> bytes:
    return (obj if isinstance(obj, str) else json.dumps(obj)).encode("utf-8") + b"\n"


def make_bad_inputs(root: Path) -> tuple[list[Path], dict[str, Any]]:
    """Write one folder of inputs holding every kind of bad record and bad file, plus what must come out.

    Returns the ingest inputs and the expected outcome: documents, quarantine reasons (by the part of the
    reason before ':'), quarantined files (name -> reason prefix), skipped files, blank lines.
    """
    d = root / "in"
    d.mkdir(parents=True)
    reasons: Counter[str] = Counter()
    docs = 0

    # -- records of one JSONL file ---------------------------------------------------------------
    records: list[tuple[bytes, str | None]] = [  # (raw line, reason or None for a document)
        (b"\xef\xbb\xbf" + _line({"id": "bom-first", "text": "The first record, after a BOM."}), None),
        (b"{not json\n", "malformed JSON"),
        (b'{"id": "t1", "text": "cut in the mid\n', "malformed JSON"),
        (b"[" * 100_000 + b"\n", "malformed JSON"),  # nested too deeply for the parser
        (b'{"id": "u1", "text": "caf\xe9"}\n', "invalid UTF-8"),
        (b"[1, 2]\n", "JSON line is not an object"),
        (b"42\n", "JSON line is not an object"),
        (b'"just a string"\n', "JSON line is not an object"),
        (b"null\n", "JSON line is not an object"),
        (_line({"id": "m1"}), "missing text field"),
        (_line({"id": "m2", "text": None}), "missing text field"),
        (_line({"id": "n1", "text": 7}), "text field is int, not a string"),
        (_line({"id": "n2", "text": ["a"]}), "text field is list, not a string"),
        (_line({"id": "n3", "text": {"a": 1}}), "text field is dict, not a string"),
        (_line({"id": "n4", "text": True}), "text field is bool, not a string"),
        (b'{"id": "n5", "text": NaN}\n', "text field is float, not a string"),
        (_line({"id": "e1", "text": ""}), "empty document"),
        (_line({"id": "e2", "text": " \n\t "}), "empty document"),
        (_line({"id": "big", "text": "x" * (MAX_CHARS + 1)}), "document too large"),
        (_line({"id": "dup", "text": "The first document with this id."}), None),
        (_line({"id": "dup", "text": "A second document with the same id."}), "duplicate id"),
        (b'{"id": "s1", "text": "lone \\ud800 surrogate"}\n', "invalid Unicode in text"),
        (b'{"id": "\\udc00", "text": "a bad id"}\n', "invalid Unicode in id"),
        (b'{"id": "s3", "text": "a bad source", "source": "\\ud83d"}\n', "invalid Unicode in source"),
        (b'{"id": "crlf", "text": "Windows line ending."}\r\n', None),
        (_line({"id": "ctrl", "text": "control \u0000 and \u001b characters are text"}), None),
    ]
    blank = b"\n   \n\r\n"  # three blank lines: counted, neither documents nor errors
    body = b"".join(raw for raw, _ in records[:5]) + blank + b"".join(raw for raw, _ in records[5:])
    (d / "records.jsonl").write_bytes(body)
    for _, reason in records:
        if reason is None:
            docs += 1
        else:
            reasons[reason] += 1

    # -- other readable formats, each with good and bad records ----------------------------------------
    (d / "more.ndjson").write_bytes(
        _line({"text": "ndjson is read"}) + _line({"id": "bom-first", "text": "x"})
    )
    docs += 1
    reasons["duplicate id"] += 1
    (d / "lines.json.gz").write_bytes(gzip.compress(_line({"text": "json.gz holding lines is read"})))
    docs += 1
    (d / "frames.jsonl.zst").write_bytes(
        zstandard.ZstdCompressor().compress(_line({"text": "first zstd frame"}))
        + zstandard.ZstdCompressor().compress(_line({"text": "second zstd frame"}))
    )
    docs += 2
    lmflow = b'{"type": "text_only", "instances": [{"text": "lmflow text"}, "not an object", {"no": 1}, {"text": "\\ud800"}]}'
    (d / "lmflow.json").write_bytes(b"\xef\xbb\xbf" + lmflow)
    docs += 1
    reasons.update(["instance is not an object", "missing text field", "invalid Unicode in text"])
    pq.write_table(pa.table({"text": ["parquet text", None, "", "   "]}), d / "rows.parquet")
    docs += 1
    reasons.update(["missing text field", "empty document", "empty document"])
    (d / "empty.jsonl").write_bytes(b"")

    # -- bad files: each quarantined as a whole, the rest is ingested ----------------------------------
    good = b"".join(_line({"text": f"line {i} of a file that breaks later on"}) for i in range(200))
    gz = gzip.compress(good)
    bad_files = {
        "truncated.jsonl.gz": (gz[: len(gz) // 2], "truncated compressed file"),
        "garbage.jsonl.gz": (b"\x1f\x8b\x07" + bytes(range(64)), "corrupt gzip file"),
        "plain-named.jsonl.gz": (good, "corrupt gzip file"),
        "garbage.jsonl.zst": (b"not zstd at all" * 8, "corrupt zstd file"),
        "truncated.jsonl.zst": (zstandard.ZstdCompressor().compress(good)[:50], "corrupt zstd file"),
        "garbage.parquet": (b"PAR1" + bytes(range(100)), "unreadable Arrow/Parquet data"),
        "broken-lmflow.json": (b'{"type": "text_only", "instances": [{"text": "a"}', "unreadable input"),
        "latin1-lmflow.json": (
            b'{"type": "text_only", "instances": [{"text": "caf\xe9"}]}',
            "unreadable input",
        ),
        "wrong-type.json": (b'{"type": "conversation", "instances": []}', "unreadable input"),
    }
    for name, (data, _) in bad_files.items():
        (d / name).write_bytes(data)
    pq.write_table(pa.table({"body": ["no text column"]}), d / "no-text.parquet")
    expected_files = {name: reason for name, (_, reason) in bad_files.items()}
    expected_files["no-text.parquet"] = "unreadable input"

    # -- files a folder expansion skips, each listed with its reason -----------------------------------
    for name in ("notes.txt", "table.csv", "README.md", "data.xml", ".hidden.jsonl"):
        (d / name).write_text("not read\n")
    (d / "dangling.jsonl").symlink_to(d / "no-such-target.jsonl")
    skipped = {"notes.txt", "table.csv", "README.md", "data.xml", ".hidden.jsonl", "dangling.jsonl"}

    # -- a file that cannot be read at all (a socket: open() fails even for root) -----------------------
    sock_path = root / "unreadable.jsonl"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    expected_files["unreadable.jsonl"] = "unreadable file"
    inputs = [d, sock_path]
    if os.geteuid() != 0:  # permissions only stop a non-root user
        locked = root / "locked.jsonl"
        locked.write_bytes(good)
        locked.chmod(0)
        inputs.append(locked)
        expected_files["locked.jsonl"] = "unreadable file"
    expected = {
        "docs": docs,
        "reasons": reasons,
        "files": expected_files,
        "skipped": skipped,
        "blank_lines": 3,
        "socket": sock,
    }
    return inputs, expected


def test_every_kind_of_bad_record_and_file_is_quarantined_and_counted(tmp_path: Path) -> None:
    inputs, expected = make_bad_inputs(tmp_path)
    kinds = sum(expected["reasons"].values()) + len(expected["files"]) + len(expected["skipped"])
    assert len(expected["reasons"]) + len(expected["files"]) + len(expected["skipped"]) >= 25, kinds
    pool = ingest(inputs, tmp_path / "pool", tokenizer=str(TOKENIZER), max_chars=MAX_CHARS, shard_docs=3)
    meta = pool.meta
    assert pool.n_docs() == expected["docs"]
    got = Counter({k: v for k, v in meta["quarantine_reasons"].items()})
    assert got == expected["reasons"]
    # nothing lost: every record read is a document or a quarantine line
    assert meta["documents_in"] == pool.n_docs() + pool.quarantine_count()
    assert meta["blank_lines"] == expected["blank_lines"]
    files = {Path(q["file"]).name: q["reason"] for q in meta["quarantined_files"]}
    assert set(files) == set(expected["files"])
    for name, prefix in expected["files"].items():
        assert files[name].startswith(prefix), (name, files[name])
    assert {Path(s["file"]).name for s in meta["skipped_files"]} == expected["skipped"]
    assert all(s["reason"] for s in meta["skipped_files"])
    lines = [json.loads(x) for x in (pool.root / "quarantine.jsonl").read_text().splitlines()]
    assert sum(1 for q in lines if q.get("scope") == "file") == len(expected["files"])
    assert len(lines) == pool.quarantine_count() + len(expected["files"])
    # the documents are exactly the good ones, the BOM did not cost the first record
    ids = list(pool.read_docs(["id"])["id"])
    assert "bom-first" in ids and "crlf" in ids and "ctrl" in ids and "dup" in ids
    texts = list(pool.read_docs(["text"])["text"])
    assert not any("breaks later on" in t for t in texts)  # no record of a quarantined file
    assert {"ndjson is read", "json.gz holding lines is read", "second zstd frame"} <= set(texts)
    expected["socket"].close()


def test_cli_reports_quarantined_and_skipped_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs, expected = make_bad_inputs(tmp_path)
    argv = ["ingest", *map(str, inputs), "--out", str(tmp_path / "pool"), "--tokenizer", str(TOKENIZER)]
    assert main([*argv, "--max-chars", str(MAX_CHARS)]) == 0
    out = capsys.readouterr().out
    assert f"-> {expected['docs']} documents" in out
    assert "quarantined file" in out and "truncated.jsonl.gz" in out
    assert "skipped" in out and "notes.txt" in out
    expected["socket"].close()


def test_on_error_fail_stops_at_the_first_bad_record_or_file(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text('{"text": "fine"}\n{"text": "lone \\ud800"}\n', encoding="utf-8")
    with pytest.raises(PoolError, match=r"a\.jsonl:2: invalid Unicode in text"):
        ingest([src], tmp_path / "pool", tokenizer=str(TOKENIZER), on_error="fail")
    assert not (tmp_path / "pool").exists()  # nothing half-written
    bad = tmp_path / "b.jsonl.gz"
    bad.write_bytes(gzip.compress(b'{"text": "x"}\n' * 50)[:30])
    with pytest.raises(PoolError, match=r"b\.jsonl\.gz: truncated compressed file"):
        ingest([bad], tmp_path / "pool", tokenizer=str(TOKENIZER), on_error="fail")
    argv = ["ingest", str(bad), "--out", str(tmp_path / "p2"), "--tokenizer", str(TOKENIZER)]
    assert main([*argv, "--on-error", "fail"]) == 1
    assert main(argv) == 0  # the default quarantines the file
    assert Pool.open(tmp_path / "p2").meta["quarantined_files"][0]["file"] == str(bad)


def test_force_replaces_only_a_pool_or_an_empty_folder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": f"document {i}"}) + "\n" for i in range(12)))
    precious = tmp_path / "work"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    (precious / "sub").mkdir()
    (precious / "sub" / "data.bin").write_bytes(b"\x00" * 10)
    argv = ["ingest", str(src), "--tokenizer", str(TOKENIZER), "--force"]
    assert main([*argv, "--out", str(precious)]) == 1
    assert (precious / "thesis.tex").read_text() == "years of work"
    assert (precious / "sub" / "data.bin").exists()
    # an input inside the output folder: replacing it would delete the input
    pool_dir = tmp_path / "pool"
    ingest([src], pool_dir, tokenizer=str(TOKENIZER))
    inner = pool_dir / "in.jsonl"
    inner.write_text(src.read_text())
    with pytest.raises(PoolError, match="inside the output folder"):
        ingest([inner], pool_dir, tokenizer=str(TOKENIZER), force=True)
    inner.unlink()
    # a pool is replaced with --force, saying what is replaced
    with caplog.at_level("WARNING"):
        pool = ingest([src], pool_dir, tokenizer=str(TOKENIZER), shard_docs=5, force=True)
    assert pool.shards == ["00000", "00001", "00002"]
    assert any("replacing a mixlab pool of 12 documents" in r.getMessage() for r in caplog.records)
    # an empty folder needs no --force
    (tmp_path / "empty").mkdir()
    assert ingest([src], tmp_path / "empty", tokenizer=str(TOKENIZER)).n_docs() == 12
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_empty_pool_gives_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "all-bad.jsonl"
    src.write_text('{"text": ""}\n{"nope": 1}\n')
    pool = ingest([src], tmp_path / "pool", tokenizer=str(TOKENIZER))
    assert pool.n_docs() == 0 and pool.meta["documents_in"] == 2
    for argv in (
        ["quality", str(pool.root)],
        ["dedup", str(pool.root)],
        ["partition", str(pool.root), "--method", "rules"],
    ):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "holds no documents" in err and "Must pass" not in err, err
    mixture = tmp_path / "mixture.json"
    mixture.write_text('{"general": 1.0}')
    argv = ["select", str(pool.root), "--budget", "100", "--mixture", str(mixture), "--out", str(tmp_path)]
    assert main(argv) == 1
    assert "holds no documents" in capsys.readouterr().err
    with pytest.raises(PoolError, match="holds no documents"):
        pool.require_documents("select")
