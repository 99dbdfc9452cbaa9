"""What ingestion calls a bad input: the errors that quarantine a whole file, and the reason written for it."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import zstandard

from mixlab.pool.pool import PoolError

#: Errors that make a whole input file unreadable (quarantined as a file, not a traceback).
FILE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # unreadable, gzip.BadGzipFile
    EOFError,  # truncated .gz
    ValueError,  # InputFormatError, UnicodeDecodeError, pyarrow.ArrowInvalid
    zstandard.ZstdError,
    pa.ArrowException,
)


class IngestError(PoolError):
    """A bad record or file under ``on_error="fail"``, or an output folder that may not be replaced."""


def file_reason(exc: BaseException, path: Path) -> str:
    """One line naming what is wrong with a whole file (without repeating its name)."""
    text = str(exc).replace("\n", " ").strip().removeprefix(f"{path}: ") or type(exc).__name__
    if isinstance(exc, EOFError):
        return f"truncated compressed file: {text}"
    if isinstance(exc, zstandard.ZstdError):
        return f"corrupt zstd file: {text}"
    if isinstance(exc, OSError) and "gzip" in type(exc).__name__.lower() + text.lower():
        return f"corrupt gzip file: {text}"
    if isinstance(exc, OSError):
        return f"unreadable file: {text}"
    if isinstance(exc, UnicodeDecodeError):
        return f"invalid UTF-8: {text}"
    if isinstance(exc, pa.ArrowException):
        return f"unreadable Arrow/Parquet data: {text}"
    return f"unreadable input: {text}"
