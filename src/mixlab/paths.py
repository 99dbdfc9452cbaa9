"""Names that become paths, and folders replaced as a whole.

Every name read from a user file or flag that mixlab turns into a file or folder name (a run id of
``ratios.csv``, a task name, a shard or attribute name of ``pool.json``) goes through :func:`safe_name`,
so that no name can reach outside the folder it is meant for (``../x``, ``/abs``, ``a/b``).

Whole output folders (a pool, an exported dataset) are built in a private temporary sibling and swapped
into place (:func:`replace_dir`), under a lock next to them (:func:`dir_lock`), so a reader sees the old
folder or the new one, never a mix, and two writers wait for each other instead of interleaving.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

#: Longest accepted name (most file systems allow 255 bytes per path component).
MAX_NAME_CHARS = 200


class UnsafeNameError(ValueError):
    """A name that would become a path is empty, absolute, has a separator or points outside its folder."""


def safe_name(name: object, what: str = "name") -> str:
    """Return ``name`` unchanged if it is safe as one path component, else raise :class:`UnsafeNameError`.

    Safe: a non-empty string of at most ``MAX_NAME_CHARS`` characters, without ``/`` or ``\\``, without
    control characters (NUL included), not ``.`` or ``..`` and not starting with ``.`` (hidden files and
    mixlab's own temporary files start with a dot), without leading or trailing spaces.
    """
    if not isinstance(name, str):
        raise UnsafeNameError(f"{what} {name!r} is not a string")
    problem = None
    if not name:
        problem = "is empty"
    elif name != name.strip():
        problem = "starts or ends with white space"
    elif "/" in name or "\\" in name:
        problem = "contains a path separator"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        problem = "contains a control character"
    elif name.startswith("."):
        problem = "starts with '.' (relative or hidden path)"
    elif len(name) > MAX_NAME_CHARS:
        problem = f"is longer than {MAX_NAME_CHARS} characters"
    if problem:
        raise UnsafeNameError(
            f"{what} {name!r} {problem}; it becomes a file name, so use letters, digits, '-', '_' or '.'"
        )
    return name


# -- locks --------------------------------------------------------------------------------------------
_HELD: set[str] = set()


@contextlib.contextmanager
def file_lock(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed); wait, with a message, while another process
    holds it. The lock dies with its process (``flock``), so a killed run never leaves a stale lock.
    Re-entering a lock this process already holds is a no-op."""
    key = str(Path(os.path.abspath(path)))
    if key in _HELD:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locking
        yield
        return
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("%s is in use by another mixlab process; waiting for it to finish", what)
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        _HELD.add(key)
        try:
            yield
        finally:
            _HELD.discard(key)
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def lock_path(folder: Path) -> Path:
    """The lock file guarding a whole output folder: a hidden sibling ``.NAME.lock``."""
    folder = Path(os.path.abspath(folder))
    return folder.parent / f".{folder.name}.lock"


def dir_lock(folder: Path) -> contextlib.AbstractContextManager[None]:
    """Lock that serialises every writer of the whole folder ``folder``."""
    return file_lock(lock_path(folder), f"{folder}")


# -- temporary siblings and the atomic swap -------------------------------------------------------------
def _tmp_prefix(folder: Path) -> str:
    return f".{folder.name}.tmp-"


def _old_prefix(folder: Path) -> str:
    return f".{folder.name}.old-"


def new_temp_dir(folder: Path) -> Path:
    """A fresh private folder next to ``folder`` (same file system, so it can be renamed into place)."""
    folder = Path(os.path.abspath(folder))
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f"{_tmp_prefix(folder)}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


def clean_stale(folder: Path) -> list[Path]:
    """Remove temporary siblings left by killed runs, restoring ``folder`` from a half-done swap.

    Call only while holding :func:`dir_lock` (then no live run owns them). Returns what was removed.
    """
    folder = Path(os.path.abspath(folder))
    parent = folder.parent
    if not parent.is_dir():
        return []
    olds = sorted(p for p in parent.iterdir() if p.name.startswith(_old_prefix(folder)))
    if olds and not folder.exists():
        # killed between the two renames of a swap without RENAME_EXCHANGE: put the old folder back
        os.rename(olds[-1], folder)
        log.warning("%s: restored from an interrupted replacement", folder)
        olds = olds[:-1]
    removed = []
    for p in [*olds, *(p for p in parent.iterdir() if p.name.startswith(_tmp_prefix(folder)))]:
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    if removed:
        log.warning("%s: removed %d temporary folder(s) left by an interrupted run", folder, len(removed))
    return removed


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux ``renameat2(RENAME_EXCHANGE)``); False when unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_dir(tmp: Path, folder: Path) -> None:
    """Put the finished folder ``tmp`` at ``folder``, replacing what was there as one step."""
    folder = Path(os.path.abspath(folder))
    if not folder.exists():
        os.rename(tmp, folder)
        return
    if _exchange(tmp, folder):
        shutil.rmtree(tmp)  # now holds the old folder
        return
    old = folder.parent / f"{_old_prefix(folder)}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.rename(folder, old)
    os.rename(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
