"""What every HTML page of the results shares: the style sheet, relative links and inline
SVG figures (pages open offline: no script, stylesheet or font from the network)."""

from __future__ import annotations

import os
import re
from pathlib import Path

CSS = (
    "body{font-family:sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;color:#222}"
    "h1{margin-bottom:.2em}.meta{color:#555}"
    "figure.chart{margin:1.5em 0;border-top:1px solid #ddd;padding-top:.5em}"
    "figure.chart svg{max-width:100%;height:auto}"
    "figcaption a,.links a{margin-right:1em}"
    "table{border-collapse:collapse;margin:1em 0}"
    "caption{font-weight:bold;text-align:left;padding:.3em 0}"
    "th,td{border:1px solid #bbb;padding:.25em .6em;font-variant-numeric:tabular-nums}"
    "td{text-align:right}th[scope=row]{text-align:left}"
    ".note{color:#444;font-size:.9em}pre{background:#f6f6f6;padding:.8em;overflow:auto}"
)


def rel(path: str | os.PathLike, start: Path) -> str:
    """`path` relative to the folder `start` (a link of a page in `start`), with slashes."""
    return Path(os.path.relpath(Path(path).resolve(), start.resolve())).as_posix()


def inline_svg(text: str, prefix: str) -> str:
    """An SVG document made safe to inline in HTML beside others: no XML declaration, and its
    ids (gradients, clip paths) prefixed so that two figures cannot clash."""
    text = re.sub(r"^<\?xml[^>]*>\s*", "", text)
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", text)
    text = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}-{m.group(1)}"', text)
    return text
