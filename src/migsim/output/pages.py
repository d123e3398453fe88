"""results/index.html: one offline page that shows every figure (inline SVG) and table, and
links each figure's interactive HTML, SVG and PNG, each table's Markdown and HTML, and the
summary Parquet files. No script, stylesheet or font is loaded from the network."""

from __future__ import annotations

import html
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl
import yaml

from migsim import __version__
from migsim.atomic import atomic_write_text
from migsim.output.html import CSS, inline_svg
from migsim.output.html import rel as _rel

FIGURE_TITLES = {
    "throughput": "Throughput against folio size",
    "speedup": "Speed-up over the baseline",
    "parity": "Simulated against published throughput",
    "compaction": "Direct compaction modes",
    "alloc_latency": "Order-9 allocation latency per mode (CDF)",
}


def _plain(obj):
    """Nested mappings and lists as plain dicts and lists (for yaml.safe_dump)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _table_fragment(page: str) -> str:
    m = re.search(r"<body>(.*)</body>", page, flags=re.S)
    return m.group(1) if m else ""


def _headline(summaries: Sequence[str]) -> list[str]:
    """One-line findings computed from the summaries (MAPE, worst cell)."""
    from migsim.output.tables import throughput_mape

    lines = []
    for path in summaries:
        name = Path(path).stem
        df = pl.read_parquet(path)
        if name == "throughput" and "published_gbps" in df.columns:
            mape, cells = throughput_mape(df)
            if mape is not None:
                lines.append(
                    f"Throughput: MAPE {mape:.2f}% over {cells} published cells "
                    f"({df.height} simulated cells)."
                )
        if name == "compaction" and "published" in df.columns:
            pub = df.filter(pl.col("published").is_not_null() & pl.col("mean").is_not_null())
            wall = pub.filter(pl.col("metric") == "wall_ms")
            if wall.height:
                worst = wall.sort(pl.col("rel_error").abs(), descending=True).row(0, named=True)
                lines.append(
                    f"Compaction: largest wall-time error {worst['rel_error'] * 100:+.1f}% "
                    f"({worst['mode']}) over {wall.height} published modes."
                )
    return lines


def build_index(
    out_dir: Path,
    *,
    figures: Sequence[str],
    tables: Sequence[str],
    summaries: Sequence[str],
    config: Mapping,
    whatif: Sequence[str] = (),
    runs: Sequence[str] = (),
) -> str:
    """The HTML text of results/index.html (paths in it are relative to `out_dir`);
    `whatif`: the what-if studies' output files (a section of their own); `runs`: the run
    files the summaries were built from (listed under Data)."""
    from migsim.output.tables import read_metadata

    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'>",
        "<head>",
        "<meta charset='utf-8'>",
        "<title>migsim results</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        "<h1>migsim results</h1>",
    ]
    meta = read_metadata(summaries[0]) if summaries else {}
    parts.append(
        f"<p class='meta'>migsim {esc(__version__)} · seed {esc(str(config.get('seed')))} · "
        f"platform {esc(str(config.get('platform')))} · configuration hash "
        f"{esc(meta.get('config_hash', '?'))}</p>"
    )
    for line in _headline(summaries):
        parts.append(f"<p>{esc(line)}</p>")

    parts.append("<h2>Figures</h2>")
    stems: dict[str, dict[str, str]] = {}
    for f in figures:
        p = Path(f)
        stems.setdefault(p.stem, {})[p.suffix.lstrip(".")] = f
    for stem, files in stems.items():
        title = FIGURE_TITLES.get(stem, stem)
        links = " ".join(
            f"<a href='{esc(_rel(files[fmt], out_dir))}'>{label}</a>"
            for fmt, label in (("html", "interactive HTML"), ("svg", "SVG"), ("png", "PNG"))
            if fmt in files
        )
        svg = inline_svg(Path(files["svg"]).read_text(), stem) if "svg" in files else ""
        parts.append(
            f"<figure class='chart' id='figure-{esc(stem)}'>"
            f"<figcaption><strong>{esc(title)}</strong> {links}</figcaption>"
            f"<div class='embed'>{svg}</div></figure>"
        )

    parts.append("<h2>Tables</h2>")
    pages: dict[str, dict[str, str]] = {}
    for t in tables:
        p = Path(t)
        pages.setdefault(p.stem, {})[p.suffix.lstrip(".")] = t
    for stem, files in pages.items():
        links = " ".join(
            f"<a href='{esc(_rel(files[fmt], out_dir))}'>{fmt.upper()}</a>"
            for fmt in ("md", "html")
            if fmt in files
        )
        body = _table_fragment(Path(files["html"]).read_text()) if "html" in files else ""
        parts.append(
            f"<section id='table-{esc(stem)}'>{body}<p class='links'>{links}</p></section>"
        )

    if whatif:  # the what-if studies (issue 5): findings, figures, tables, links
        from migsim.output.study_pages import index_section

        parts.append(index_section(whatif, out_dir, config))

    parts.append("<h2>Data</h2><ul>")
    for s in summaries:
        m = read_metadata(s)
        parts.append(
            f"<li><a href='{esc(_rel(s, out_dir))}'>{esc(Path(s).name)}</a> "
            f"(schema {esc(m.get('schema', '?'))}, configuration hash "
            f"{esc(m.get('config_hash', '?'))}, seed {esc(m.get('seed', '?'))})</li>"
        )
    parts.append("<li>Run files (layout: README.md in this folder):<ul class='runs'>")
    for r in runs:
        parts.append(f"<li><a href='{esc(_rel(r, out_dir))}'>{esc(_rel(r, out_dir))}</a></li>")
    parts.append("</ul></li></ul>")
    parts.append("<h2>Configuration</h2>")
    # keys sorted: the same configuration gives the same page however --config ordered it
    parts.append(f"<pre>{esc(yaml.safe_dump(_plain(config), sort_keys=True))}</pre>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def write_index(
    out_path: str | os.PathLike,
    *,
    figures: Sequence[str],
    tables: Sequence[str],
    summaries: Sequence[str],
    config: Mapping,
    whatif: Sequence[str] = (),
    runs: Sequence[str] = (),
) -> None:
    """Write results/index.html atomically."""
    out_path = Path(out_path)
    text = build_index(
        out_path.parent,
        figures=figures,
        tables=tables,
        summaries=summaries,
        config=config,
        whatif=whatif,
        runs=runs,
    )
    atomic_write_text(out_path, text)
