"""results/index.html, the front page: the answer first (``migsim.output.answer``: a few
sentences and one figure), then one short section per study (its answer in one line, a
thumbnail, a link to its own page), then the reproduction tables, the data files, and the
configuration folded in a ``<details>`` element. Offline: no script, stylesheet or font from
the network; the thumbnails are the studies' PNG files beside the page."""

from __future__ import annotations

import html
import io
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from migsim.output.answer import answer_chart, answer_section, study_line
from migsim.output.html import inline_svg
from migsim.output.html import rel as _rel

FRONT_CSS = (
    ".studies{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:1em}"
    ".study{border:1px solid #ddd;padding:.5em .7em}.study h3{margin:.1em 0 .4em;font-size:1.05em}"
    ".study img.thumb{width:100%;height:150px;object-fit:contain;object-position:left top;"
    "background:#fff}.study p{margin:.4em 0;font-size:.92em}"
    ".study p.files{font-size:.8em;color:#555}.study p.files a{margin-right:.5em}"
    "details{margin:1em 0}summary{cursor:pointer;font-weight:bold}"
)


@dataclass(frozen=True)
class StudyEntry:
    """One study on the front page: its name, title, own page, thumbnail (PNG), summary
    Parquet and findings paragraph file (paths; None where it has none)."""

    name: str
    title: str
    page: str
    thumbnail: str | None = None
    summary: str | None = None
    findings: str | None = None
    files: tuple[tuple[str, str], ...] = ()  # (label, path): its figures' and tables' files


def findings_text(md_path: str | os.PathLike | None) -> str | None:
    """The paragraph of a findings Markdown file (its heading dropped)."""
    if not md_path or not Path(md_path).exists():
        return None
    lines = Path(md_path).read_text().splitlines()
    return " ".join(ln for ln in lines if ln.strip() and not ln.startswith("#")).strip()


def answer_figure_svg(throughput_summary: str | os.PathLike | None, out_svg: str | None) -> str:
    """The answer's figure as SVG text (written to `out_svg` too when given)."""
    import polars as pl

    from migsim.atomic import atomic_write_text

    if not throughput_summary or not Path(throughput_summary).exists():
        return ""
    chart = answer_chart(pl.read_parquet(throughput_summary))
    buf = io.StringIO()
    chart.save(buf, format="svg")
    text = buf.getvalue()
    if out_svg:
        atomic_write_text(out_svg, text)
    return inline_svg(text, "answer")


def _study_section(s: StudyEntry, out_dir: Path) -> str:
    esc = html.escape
    page = esc(_rel(s.page, out_dir))
    line = study_line(s.name, s.summary, findings_text(s.findings))
    parts = [f"<section class='study' id='study-{esc(s.name)}'>"]
    parts.append(f"<h3><a href='{page}'>{esc(s.title)}</a></h3>")
    if s.thumbnail and Path(s.thumbnail).exists():
        parts.append(
            f"<a href='{page}'><img class='thumb' src='{esc(_rel(s.thumbnail, out_dir))}' "
            f"alt='{esc(s.title)}'></a>"
        )
    if line:
        parts.append(f"<p class='line'>{esc(line)}</p>")
    if s.files:
        links = " ".join(
            f"<a href='{esc(_rel(p, out_dir))}'>{esc(label)}</a>" for label, p in s.files
        )
        parts.append(f"<p class='files'>{links}</p>")
    parts.append("</section>")
    return "".join(parts)


def _table_fragment(page: str) -> str:
    m = re.search(r"<body>(.*)</body>", page, flags=re.S)
    return m.group(1) if m else ""


def front_page(
    out_dir: Path,
    *,
    head: Sequence[str],
    answer_paths: Mapping[str, str | None],
    answer_svg: str,
    studies: Sequence[StudyEntry],
    tables: Sequence[str],
    data: Sequence[str],
    links: Sequence[tuple[str, str]],
    config_yaml: str,
) -> str:
    """The body of results/index.html after `head` (title, meta line): the answer (numbers
    from `answer_paths`, figure `answer_svg`), the studies, the reproduction `tables` (their
    HTML files), the `data` list items (HTML), `links` (label, path) and the configuration
    folded (`config_yaml`)."""
    esc = html.escape
    section, _ = answer_section(answer_paths, answer_svg)
    parts = [*head, section]
    parts.append("<h2 id='studies'>Studies</h2>")
    if links:
        parts.append(
            "<p class='links'>"
            + " · ".join(
                f"<a href='{esc(_rel(p, out_dir))}'>{esc(label)}</a>" for label, p in links
            )
            + "</p>"
        )
    parts.append("<div class='studies'>")
    parts += [_study_section(s, out_dir) for s in studies]
    parts.append("</div>")
    parts.append("<h2 id='reproduction'>Reproduction of the published tables</h2>")
    for t in tables:
        p = Path(t)
        md = p.with_suffix(".md")
        link = f" <a href='{esc(_rel(md, out_dir))}'>Markdown</a>" if md.exists() else ""
        parts.append(
            f"<section id='table-{esc(p.stem)}'>{_table_fragment(p.read_text())}"
            f"<p class='links'><a href='{esc(_rel(p, out_dir))}'>HTML</a>{link}</p></section>"
        )
    parts.append("<h2 id='data'>Data</h2><ul>")
    parts += [f"<li>{d}</li>" for d in data]
    parts.append("</ul>")
    parts.append(
        "<details id='configuration'><summary>Configuration of this run</summary>"
        f"<pre>{esc(config_yaml)}</pre></details>"
    )
    return "\n".join(parts)
