"""Swarm tables: ``ratios.csv`` (run id + one column per domain) and ``metrics.csv`` (run id + metrics).

These plain tables are the contract between proxy training (any stack) and regression (DESIGN principle 5,
the Olmix format). The id column may be called ``run``, ``run_id`` or ``index``; mixlab writes ``run``.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from mixlab.paths import safe_name
from mixlab.pool.pool import atomic_write_text

ID_COLUMNS = ("run", "run_id", "index")


class SwarmTableError(ValueError):
    """A ratios or metrics table is malformed."""


def _read_csv(path: str | Path) -> tuple[pd.DataFrame, str]:
    path = Path(path)
    if not path.exists():
        raise SwarmTableError(f"{path}: file does not exist")
    try:
        df = pd.read_csv(path)
    except Exception as exc:
        raise SwarmTableError(f"{path}: not a readable CSV: {exc}") from exc
    id_col = next((c for c in ID_COLUMNS if c in df.columns), None)
    if id_col is None:
        raise SwarmTableError(f"{path}: no run id column (expected one of {', '.join(ID_COLUMNS)})")
    if df[id_col].isna().any():
        row = int(df[id_col].isna().to_numpy().argmax()) + 2
        raise SwarmTableError(f"{path}: line {row}: empty run id")
    df[id_col] = df[id_col].astype(str)
    dup = df[id_col].duplicated()
    if dup.any():
        row = int(dup.to_numpy().argmax()) + 2
        raise SwarmTableError(f"{path}: line {row}: duplicate run id {df[id_col][dup].iloc[0]!r}")
    return df, id_col


def read_ratios(path: str | Path, tolerance: float = 0.02) -> pd.DataFrame:
    """Mixture table indexed by run id (index name kept as in the file), rows renormalised to sum to 1.

    Non-numeric or negative weights are an error naming the line; rows whose sum is off by more than
    ``tolerance`` are renormalised with a warning.
    """
    df, id_col = _read_csv(path)
    for row, run in enumerate(df[id_col], 2):  # a run id becomes a folder name: it may not escape
        try:
            safe_name(run, "run id")
        except ValueError as exc:
            raise SwarmTableError(f"{path}: line {row}: {exc}") from None
    df = df.set_index(id_col)
    for col in df.columns:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna()
        if bad.any():
            row = int(bad.to_numpy().argmax()) + 2
            raise SwarmTableError(
                f"{path}: line {row}: column {col!r} is not a number ({df[col].iloc[row - 2]!r})"
            )
        if (values < 0).any():
            row = int((values < 0).to_numpy().argmax()) + 2
            raise SwarmTableError(f"{path}: line {row}: negative weight in column {col!r}")
        df[col] = values.astype(float)
    sums = df.sum(axis=1)
    if (sums <= 0).any():
        row = int((sums <= 0).to_numpy().argmax()) + 2
        raise SwarmTableError(f"{path}: line {row}: weights sum to zero")
    off = (sums - 1.0).abs() > tolerance
    if off.any():
        warnings.warn(
            f"{path}: {int(off.sum())} mixture row(s) do not sum to 1 (e.g. {sums[off].iloc[0]:.4f}); renormalised",
            stacklevel=2,
        )
    return df.div(sums, axis=0)


def read_metrics(path: str | Path) -> pd.DataFrame:
    """Metrics table indexed by run id; non-numeric metric cells become NaN (e.g. failed runs)."""
    df, id_col = _read_csv(path)
    df = df.set_index(id_col)
    for col in df.columns:
        if col in ("status", "error"):
            continue
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def write_ratios(path: str | Path, ratios: pd.DataFrame) -> None:
    """Write a mixture table with a ``run`` id column first."""
    df = ratios.copy()
    df.index = df.index.astype(str)
    df.index.name = "run"
    buf = io.StringIO()
    df.to_csv(buf, float_format="%.8f")
    atomic_write_text(Path(path), buf.getvalue())


def upsert_metrics(path: str | Path, run: str, values: Mapping[str, float | str | None]) -> pd.DataFrame:
    """Insert or replace one run's row in ``metrics.csv`` (atomic rewrite), keeping other runs as they are."""
    path = Path(path)
    if path.exists():
        df = read_metrics(path)
        df.index.name = "run"
    else:
        df = pd.DataFrame(index=pd.Index([], name="run", dtype=str))
    row = {k: (float("nan") if v is None else v) for k, v in values.items()}
    for k in row:
        if k not in df.columns:
            df[k] = math.nan if k not in ("status", "error") else None
    if run in df.index:
        df = df.drop(index=run)
    df = pd.concat([df, pd.DataFrame([row], index=pd.Index([run], name="run"))])
    buf = io.StringIO()
    df.to_csv(buf)
    atomic_write_text(path, buf.getvalue())
    return df
