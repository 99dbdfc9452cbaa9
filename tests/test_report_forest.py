"""The confirmation's forest plot colours a difference by whether the arm is better, not by its sign."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.colors as mcolors
import pytest

from mixlab.report import plots


def test_forest_colours_lower_gold_bpb_as_better(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def keep(fig: Any, path: Path) -> Path:
        seen["colours"] = [
            mcolors.to_hex(line.get_color()) for line in fig.axes[0].lines if line.get_marker() == "o"
        ]
        path.write_bytes(b"")
        return path

    monkeypatch.setattr(plots, "_save", keep)
    rows = [
        ("lower gold_bpb", -0.7, -0.9, -0.5, False),  # better: lower is better
        ("higher gold_bpb", 0.4, 0.2, 0.6, False),  # worse
        ("higher acc", 0.1, 0.02, 0.2, True),  # better
        ("lower acc", -0.1, -0.2, -0.01, True),  # worse
        ("tie", 0.01, -0.05, 0.07, True),
    ]
    plots.interval_forest(rows, tmp_path / "f.png", "t", "x")
    green, red, grey = (mcolors.to_hex(c) for c in ("tab:green", "tab:red", "tab:gray"))
    assert seen["colours"] == [green, red, green, red, grey]
