"""``mixlab status DIR``: what a pipeline run has done, is doing, failed and has left, with the times.

Reads only the run directory's artefacts (the same files a rerun uses to skip finished work), so it can be
called while a run is going on, from another terminal.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

__all__ = ["StageStatus", "format_status", "run_status"]


@dataclass
class StageStatus:
    """One step of the loop."""

    name: str
    state: str
    """``done``, ``running``, ``failed``, ``partial`` or ``left``."""
    detail: str = ""
    seconds: float | None = None
    runs: dict[str, int] = field(default_factory=dict)


def _swarm_status(folder: Path, ratios_path: Path, name: str) -> StageStatus:
    from mixlab.proxies.swarm import DONE_MARKER, ERROR_LOG
    from mixlab.swarm import read_ratios

    if not ratios_path.exists():
        return StageStatus(name, "left", "no mixtures yet")
    runs = [str(r) for r in read_ratios(ratios_path).index]
    counts = {"ok": 0, "failed": 0, "running": 0, "left": 0}
    seconds = 0.0
    for run in runs:
        d = folder / "runs" / run
        if (d / DONE_MARKER).exists():
            counts["ok"] += 1
            log = d / "train_log.json"
            if log.exists():
                value = json.loads(log.read_text(encoding="utf-8")).get("seconds")
                seconds += float(value) if isinstance(value, int | float) else 0.0
        elif (d / ERROR_LOG).exists():
            counts["failed"] += 1
        elif d.exists():
            counts["running"] += 1
        else:
            counts["left"] += 1
    if counts["ok"] == len(runs):
        state = "done"
    elif counts["running"]:
        state = "running"
    elif counts["failed"] and not counts["left"]:
        state = "failed"
    else:
        state = "partial" if counts["ok"] else "left"
    detail = ", ".join(f"{v} {k}" for k, v in counts.items() if v) + f" of {len(runs)} runs"
    return StageStatus(name, state, detail, seconds or None, counts)


def run_status(workdir: str | Path) -> list[StageStatus]:
    """The state of every step of the run in ``workdir``."""
    work = Path(workdir)
    if not work.is_dir():
        raise FileNotFoundError(f"{work}: no such run directory")
    timings: dict[str, float] = {}
    if (work / "timings.json").exists():
        timings = json.loads((work / "timings.json").read_text(encoding="utf-8"))
    out: list[StageStatus] = []
    pool = work / "pool" / "pool.json"
    if pool.exists():
        meta = json.loads(pool.read_text(encoding="utf-8"))
        attrs = (
            sorted(p.name for p in (work / "pool" / "attrs").iterdir())
            if (work / "pool" / "attrs").is_dir()
            else []
        )
        detail = f"{meta.get('n_docs', meta.get('documents', '?'))} documents; attributes: {', '.join(attrs) or 'none'}"
        out.append(StageStatus("ingest + annotate", "done", detail, timings.get("annotate")))
    else:
        out.append(StageStatus("ingest + annotate", "left"))
    swarm = _swarm_status(work / "swarm", work / "ratios.csv", "swarm")
    swarm.seconds = timings.get("swarm", swarm.seconds)
    out.append(swarm)
    optimal = work / "optimal.json"
    if optimal.exists():
        objectives = json.loads(optimal.read_text(encoding="utf-8")).get("objectives", {})
        verdicts = [f"{n} {'trusted' if o.get('trusted') else 'UNTRUSTED'}" for n, o in objectives.items()]
        out.append(
            StageStatus("signal + fit + search", "done", "; ".join(verdicts), timings.get("fit+search"))
        )
    else:
        out.append(StageStatus("signal + fit + search", "left"))
    manifest = work / "dataset" / "manifest.json"
    if manifest.exists():
        m = json.loads(manifest.read_text(encoding="utf-8"))
        out.append(StageStatus("build", "done", f"{m.get('total_tokens')} tokens", timings.get("build")))
    else:
        out.append(StageStatus("build", "left" if "build" not in timings else "skipped", "no dataset"))
    confirm = _swarm_status(work / "confirm", work / "confirm_ratios.csv", "confirm")
    if (work / "confirm.json").exists():
        confirm.detail += "; " + json.loads((work / "confirm.json").read_text(encoding="utf-8"))["headline"]
    confirm.seconds = timings.get("confirm", confirm.seconds)
    out.append(confirm)
    report = work / "report.html"
    out.append(
        StageStatus("report", "done" if report.exists() else "left", str(report) if report.exists() else "")
    )
    return out


def format_status(stages: list[StageStatus]) -> str:
    """Aligned text, one line per step."""
    lines = []
    for s in stages:
        secs = "" if s.seconds is None or math.isnan(s.seconds) else f"{s.seconds:8.1f}s"
        lines.append(f"{s.name:<22} {s.state:<8} {secs:>9}  {s.detail}")
    return "\n".join(lines)


def status_table(stages: list[StageStatus]) -> pd.DataFrame:
    """The same as a table (for tests and the report)."""
    return pd.DataFrame(
        [{"step": s.name, "state": s.state, "seconds": s.seconds, "detail": s.detail} for s in stages]
    )
