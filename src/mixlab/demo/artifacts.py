"""Crash-safe outputs of the demo's own steps: atomic writes plus recorded fingerprints.

Every file the demo generates is written to a temporary sibling and renamed into place, and a folder written
by a library (the tokenizer, the base model) is built in a private temporary folder and swapped in whole, so
a killed demo never leaves a half-written file under its final name. When a step finishes,
``OUT/.demo-state/<step>.json`` records the step's key (its settings and the digests of the steps it reads)
and the SHA-256 of every file it wrote. A rerun reuses a step only when the key matches and every file still
has its recorded digest: a file truncated, edited or deleted afterwards is detected and the step redone, and
a redone step changes the keys of the steps after it, which are then redone too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mixlab.paths import clean_stale, file_lock, new_temp_dir, replace_dir

log = logging.getLogger("mixlab.demo")

STATE_DIR = ".demo-state"
#: Bumped when the format of the records changes (older records are then ignored, so steps are redone).
STATE_FORMAT = "mixlab-demo-state/1"


_TEMP_FILE = re.compile(r"\..+\.tmp\d+")


class DemoStateError(RuntimeError):
    """The demo folder holds outputs that do not belong to the inputs generated now."""


def digest(obj: Any) -> str:
    """SHA-256 (hex) of a JSON-able object, keys sorted."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def atomic_write_lines(path: Path, lines: Iterable[str]) -> None:
    """Write ``lines`` (each ending with its newline) to ``path`` through a temporary sibling and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(lines)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary sibling and a rename."""
    atomic_write_lines(path, [text])


def remove_temp_files(folders: Iterable[Path]) -> list[Path]:
    """Delete the temporary files (``.NAME.tmp<pid>``) a killed writer left in ``folders``; returns them.

    Call only while holding the demo folder's lock, so that no live writer owns them.
    """
    removed: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            if p.is_file() and _TEMP_FILE.fullmatch(p.name):
                p.unlink(missing_ok=True)
                removed.append(p)
    if removed:
        log.warning("removed %d temporary file(s) left by an interrupted demo", len(removed))
    return removed


@contextmanager
def atomic_folder(folder: Path) -> Iterator[Path]:
    """Yield an empty private folder; when the block succeeds it replaces ``folder`` as one step.

    Temporary folders left by a killed run are removed first; on an error the temporary folder is removed
    and ``folder`` is left as it was.
    """
    clean_stale(folder)
    tmp = new_temp_dir(folder)
    try:
        yield tmp
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, folder)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_digests(root: Path, outputs: Iterable[str]) -> dict[str, str] | None:
    """Relative path -> SHA-256 of every file of ``outputs`` (files or folders under ``root``).

    Hidden names (temporary files) are skipped. None when an output is missing or a folder is empty.
    """
    found: dict[str, str] = {}
    for rel in outputs:
        path = root / rel
        if path.is_file():
            found[rel] = _sha256_file(path)
        elif path.is_dir():
            files = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
            )
            if not files:
                return None
            for p in files:
                found[p.relative_to(root).as_posix()] = _sha256_file(p)
        else:
            return None
    return found


class StepState:
    """The records of the demo's steps under ``root/.demo-state``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.dir = self.root / STATE_DIR

    def _path(self, step: str) -> Path:
        return self.dir / f"{step}.json"

    def read(self, step: str) -> dict[str, Any] | None:
        """The record of ``step``, or None when absent, unreadable or of another format."""
        try:
            record = json.loads(self._path(step).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("format") != STATE_FORMAT:
            return None
        return record

    def write(self, step: str, key: dict[str, Any], outputs: list[str], files: dict[str, str]) -> str:
        """Record ``step`` as done with ``key``, its ``outputs`` and their ``files``; returns its digest."""
        record = {
            "format": STATE_FORMAT,
            "key": key,
            "outputs": outputs,
            "files": files,
            "digest": digest([key, files]),
        }
        atomic_write_text(self._path(step), json.dumps(record, indent=1, sort_keys=True) + "\n")
        return str(record["digest"])

    def check(self, step: str, key: dict[str, Any]) -> str | None:
        """The digest of ``step`` when its record has ``key`` and its outputs still hold the recorded files."""
        record = self.read(step)
        if record is None or record.get("key") != json.loads(json.dumps(key)):
            return None
        outputs, files = record.get("outputs"), record.get("files")
        if not isinstance(outputs, list) or not isinstance(files, dict):
            return None
        current = file_digests(self.root, outputs)
        if current != files:
            changed = sorted(set((current or {}).items()) ^ set(files.items()))
            log.warning(
                "demo step %s: %s changed since it was written; redoing the step",
                step,
                ", ".join(sorted({rel for rel, _ in changed})[:5]) or ", ".join(outputs),
            )
            return None
        return str(record["digest"])

    def run(self, step: str, key: dict[str, Any], outputs: list[str], make: Callable[[], object]) -> str:
        """Reuse ``step`` if its record still holds, else ``make()`` it and record ``outputs``."""
        done = self.check(step, key)
        if done is not None:
            log.info("demo step %s: reusing %s", step, ", ".join(outputs))
            return done
        self._path(step).unlink(missing_ok=True)
        make()
        files = file_digests(self.root, outputs)
        if files is None:
            raise RuntimeError(f"demo step {step} did not write all of {outputs} under {self.root}")
        return self.write(step, key, outputs, files)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the demo folder's lock (a second demo on the same folder waits)."""
        with file_lock(self.dir / "lock", f"demo folder {self.root}"):
            yield
