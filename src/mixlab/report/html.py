"""A self-contained HTML report: sections of text, tables and embedded PNG plots."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from mixlab.pool.pool import atomic_write_text

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{border-bottom:2px solid #4C72B0}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
img{max-width:100%;margin:.5em 0;border:1px solid #eee}
.verdict{font-size:1.1em;padding:.6em;background:#f6f8ff;border-left:4px solid #4C72B0}
code{background:#f4f4f4;padding:1px 4px}
.scroll{overflow-x:auto;max-width:100%}
nav.toc{background:#fafafa;border:1px solid #eee;padding:.4em 1em;margin:1em 0}
nav.toc a{margin-right:1.2em;white-space:nowrap}
"""


@dataclass
class Section:
    """One report section."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    highlight: str | None = None
    """A one-paragraph verdict shown prominently."""


def _table_html(caption: str, df: pd.DataFrame) -> str:
    body = df.to_html(float_format=lambda v: f"{v:.4g}", border=0, escape=True)
    body = f"<div class='scroll'>{body}</div>"  # wide tables scroll instead of being cut off
    return f"<p><b>{html.escape(caption)}</b></p>{body}" if caption else body


def _image_html(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}"/>'


def write_report(path: Path, title: str, sections: list[Section]) -> Path:
    """Write ``sections`` as one self-contained HTML file at ``path`` (plots embedded)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by mixlab</p>",
    ]
    anchors = [f"s{i}" for i in range(len(sections))]
    toc = " ".join(
        f"<a href='#{a}'>{html.escape(sec.title)}</a>" for a, sec in zip(anchors, sections, strict=True)
    )
    parts.append(f"<nav class='toc'><b>Contents</b>: {toc}</nav>")
    for anchor, sec in zip(anchors, sections, strict=True):
        parts.append(f"<h2 id='{anchor}'>{html.escape(sec.title)}</h2>")
        if sec.highlight:
            parts.append(f"<p class='verdict'>{html.escape(sec.highlight)}</p>")
        parts.extend(f"<p>{html.escape(p)}</p>" for p in sec.paragraphs)
        parts.extend(_table_html(c, df) for c, df in sec.tables)
        parts.extend(_image_html(p) for p in sec.images if p.exists())
    parts.append("</body></html>")
    atomic_write_text(path, "\n".join(parts))
    return path
