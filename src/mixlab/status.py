"""``mixlab status DIR``: what a pipeline run has done, is doing, failed and has left, with the times.

Reads only the run directory's artefacts (the same files a rerun uses to skip finished work), so it can be
called while a run is going on, from another terminal. A run holds ``DIR/.mixlab-run.lock`` while it works;
when nobody holds it, a proxy or step that started and did not finish was interrupted (a rerun redoes it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["RUN_LOCK", "StageStatus", "format_status", "run_active", "run_status"]

#: Held (``flock``) by ``mixlab run`` while it works on a run directory.
RUN_LOCK = ".mixlab-run.lock"


@dataclass
class StageStatus:
    """One step of the loop."""

    name: str
    state: str
    """``done``, ``running``, ``failed``, ``partial``, ``interrupted``, ``skipped`` or ``left``."""
    detail: str = ""
    seconds: float | None = None
    runs: dict[str, int] = field(default_factory=dict)


def run_active(workdir: str | Path) -> bool:
    """Whether a ``mixlab run`` is working on ``workdir`` now (it holds the run lock)."""
    path = Path(workdir) / RUN_LOCK
    if not path.exists():
        return False
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locking, so no way to tell
        return False
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return False


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _swarm_status(folder: Path, runs: list[str], name: str, active: bool) -> StageStatus:
    from mixlab.proxies.swarm import DONE_MARKER, ERROR_LOG

    if not runs:
        return StageStatus(name, "left", "no mixtures yet")
    counts = {"ok": 0, "failed": 0, "running" if active else "interrupted": 0, "left": 0}
    seconds = 0.0
    for run in runs:
        d = folder / "runs" / run
        if (d / DONE_MARKER).exists():
            counts["ok"] += 1
            log = _read_json(d / "train_log.json") or {}
            value = log.get("seconds")
            seconds += float(value) if isinstance(value, int | float) else 0.0
        elif (d / ERROR_LOG).exists():
            counts["failed"] += 1
        elif d.exists():
            counts["running" if active else "interrupted"] += 1
        else:
            counts["left"] += 1
    if counts["ok"] == len(runs):
        state = "done"
    elif counts.get("running"):
        state = "running"
    elif counts["failed"] and not counts["left"] and not counts.get("interrupted"):
        state = "failed"
    elif counts.get("interrupted"):
        state = "interrupted"
    else:
        state = "partial" if counts["ok"] else "left"
    detail = ", ".join(f"{v} {k}" for k, v in counts.items() if v) + f" of {len(runs)} runs"
    return StageStatus(name, state, detail, seconds or None, counts)


def _ratios_runs(path: Path) -> list[str]:
    from mixlab.swarm import read_ratios

    return [str(r) for r in read_ratios(path).index] if path.exists() else []


def _rounds_status(work: Path, active: bool) -> list[StageStatus]:
    """One line per round when the pipeline has more than one (``rounds.json``, ``rounds/round-<k>.csv``)."""
    from mixlab.rounds import read_rounds, round_of, swarm_ratios

    rounds = read_rounds(work)
    if rounds is None or len(rounds.get("sizes", [])) <= 1:
        return []
    records = {int(r["round"]): r for r in rounds.get("rounds", [])}
    ratios = swarm_ratios(work)
    by_round: dict[int, list[str]] = {}
    for run in ratios.index:
        by_round.setdefault(round_of(str(run)), []).append(str(run))
    out = []
    for k, size in enumerate(rounds["sizes"], start=1):
        name = f"  round {k}"
        runs = by_round.get(k, [])
        if not runs:
            out.append(StageStatus(name, "left", f"{size} mixtures, not proposed yet"))
            continue
        st = _swarm_status(work / "swarm", runs, name, active)
        rec = records.get(k)
        if rec is not None:
            lo, hi = rec["interval"]
            st.detail += (
                f"; predicted {rounds.get('objective', 'total')} {rec['predicted']:.4g} [{lo:.4g}, {hi:.4g}]"
            )
            st.seconds = rec.get("seconds", st.seconds)
        elif st.state == "done":
            st.state = "running" if active else "partial"
            st.detail += "; not fitted yet"
        out.append(st)
    return out


def _final_status(work: Path, timings: dict[str, float], active: bool) -> StageStatus:
    """The final run: done (with S), running, failed, skipped (and why), interrupted or left."""
    from mixlab.final.stage import STEPS, final_paths

    paths = final_paths(work)
    seconds = timings.get("final")
    skipped = _read_json(paths.skipped)
    if skipped is not None:
        return StageStatus("final run", "skipped", str(skipped.get("reason", "")), seconds)
    if paths.error.exists():
        last = paths.error.read_text(encoding="utf-8").strip().splitlines()[-1:]
        return StageStatus("final run", "failed", f"{last[0] if last else ''} (see {paths.error})", seconds)
    done = [s for s in STEPS if paths.stamp(s).exists()]
    summary = _read_json(paths.summary)
    needed = ("train",) if summary is not None and "S" not in summary else STEPS
    if summary is not None and all(s in done for s in needed):
        detail = f"model {paths.model}"
        if "S" in summary and "acc" in summary["S"]:
            detail = (
                f"S(acc) = {summary['S']['acc']['total']:+.4f} over {len(summary['tasks'])} tasks; " + detail
            )
        total = sum(float(v) for v in summary.get("seconds", {}).values())
        return StageStatus("final run", "done", detail, seconds if seconds is not None else total)
    if done or paths.root.joinpath("model").exists():
        state = "running" if active else "interrupted"
        return StageStatus(
            "final run", state, f"done: {', '.join(done) or 'nothing yet'} of {', '.join(STEPS)}"
        )
    return StageStatus("final run", "left")


def run_status(workdir: str | Path) -> list[StageStatus]:
    """The state of every step of the run in ``workdir``."""
    from mixlab.final.stage import final_paths
    from mixlab.rounds import swarm_ratios

    work = Path(workdir)
    if not work.is_dir():
        raise FileNotFoundError(f"{work}: no such run directory")
    active = run_active(work)
    timings: dict[str, float] = _read_json(work / "timings.json") or {}
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
        out.append(StageStatus("ingest + annotate", "running" if active else "left"))
    ratios = swarm_ratios(work)
    swarm = _swarm_status(work / "swarm", [str(r) for r in ratios.index], "swarm", active)
    swarm.seconds = timings.get("swarm", swarm.seconds)
    out.append(swarm)
    out.extend(_rounds_status(work, active))
    optimal = work / "optimal.json"
    if optimal.exists():
        objectives = json.loads(optimal.read_text(encoding="utf-8")).get("objectives", {})
        verdicts = [f"{n} {'trusted' if o.get('trusted') else 'UNTRUSTED'}" for n, o in objectives.items()]
        out.append(
            StageStatus("signal + fit + search", "done", "; ".join(verdicts), timings.get("fit+search"))
        )
    else:
        out.append(StageStatus("signal + fit + search", "left"))
    manifest = final_paths(work).dataset / "manifest.json"
    if manifest.exists():
        m = json.loads(manifest.read_text(encoding="utf-8"))
        detail = f"{m.get('total_tokens')} tokens in {manifest.parent}"
        out.append(StageStatus("build", "done", detail, timings.get("build")))
    else:
        out.append(StageStatus("build", "left" if "build" not in timings else "skipped", "no dataset"))
    confirm = _swarm_status(work / "confirm", _ratios_runs(work / "confirm_ratios.csv"), "confirm", active)
    if confirm.state == "left" and "final" in timings:  # the run went past it: confirm.enabled is false
        confirm.state, confirm.detail = "skipped", "not enabled"
    summary = _read_json(work / "confirm.json")
    if summary is not None:
        confirm.detail += "; " + str(summary["headline"])
    confirm.seconds = timings.get("confirm", confirm.seconds)
    out.append(confirm)
    out.append(_final_status(work, timings, active))
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
        lines.append(f"{s.name:<22} {s.state:<11} {secs:>9}  {s.detail}")
    return "\n".join(lines)


def status_table(stages: list[StageStatus]) -> pd.DataFrame:
    """The same as a table (for tests and the report)."""
    return pd.DataFrame(
        [{"step": s.name, "state": s.state, "seconds": s.seconds, "detail": s.detail} for s in stages]
    )
