"""Presentation of the what-if studies: per study the figure (offline HTML, SVG, PNG), the
Markdown and HTML table and the findings paragraph (``render_study``), and
results/whatif/index.html with every study on one offline page (``write_whatif_page``)."""

from __future__ import annotations

import html
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from migsim.atomic import atomic_write_text
from migsim.report import CSS, inline_svg
from migsim.tables_whatif import TITLES


def _rel(path: str | os.PathLike, start: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), start.resolve())).as_posix()


def _findings_text(md_path: str) -> str:
    """The paragraph of a findings Markdown file (its heading dropped)."""
    lines = Path(md_path).read_text().splitlines()
    return " ".join(ln for ln in lines if ln.strip() and not ln.startswith("#")).strip()


def _table_body(page: str) -> str:
    m = re.search(r"<body>(.*)</body>", page, flags=re.S)
    return m.group(1) if m else ""


def study_files(results: str, study: str) -> dict[str, str]:
    """Output paths of one study under `results`/whatif."""
    d = f"{results}/whatif"
    return {
        "parquet": f"{d}/{study}.parquet",
        "html": f"{d}/{study}.html",
        "svg": f"{d}/{study}.svg",
        "png": f"{d}/{study}.png",
        "md": f"{d}/{study}_table.md",
        "table_html": f"{d}/{study}_table.html",
        "findings": f"{d}/{study}_findings.md",
    }


def section_html(
    study: str, files: Mapping[str, str], out_dir: Path, *, figure: bool = True
) -> str:
    """One study: heading, findings, (inline figure,) table and links."""
    esc = html.escape
    links = " ".join(
        f"<a href='{esc(_rel(files[k], out_dir))}'>{label}</a>"
        for k, label in (
            ("html", "interactive HTML"),
            ("svg", "SVG"),
            ("png", "PNG"),
            ("table_html", "table (HTML)"),
            ("md", "table (Markdown)"),
            ("findings", "findings (Markdown)"),
            ("parquet", "summary (Parquet)"),
        )
        if k in files
    )
    parts = [
        f"<section id='whatif-{esc(study)}'>",
        f"<h3>{esc(TITLES[study])}</h3>",
        f"<p class='findings'>{esc(_findings_text(files['findings']))}</p>",
    ]
    if figure and "svg" in files:
        svg = inline_svg(Path(files["svg"]).read_text(), f"whatif-{study}")
        parts.append(f"<figure class='chart'><div class='embed'>{svg}</div></figure>")
    if "table_html" in files:
        parts.append(_table_body(Path(files["table_html"]).read_text()))
    parts.append(f"<p class='links'>{links}</p></section>")
    return "\n".join(parts)


def build_page(out_path: str | os.PathLike, studies: Mapping[str, Mapping[str, str]]) -> str:
    """The HTML text of the what-if page (links relative to its folder)."""
    out_dir = Path(out_path).parent
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'>",
        "<head>",
        "<meta charset='utf-8'>",
        "<title>migsim what-if studies</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        "<h1>What-if studies</h1>",
        "<p class='meta'>Questions the published hardware experiment could not answer; every "
        "number in a findings paragraph is computed from the study's summary Parquet.</p>",
    ]
    for study, files in studies.items():
        parts.append(section_html(study, files, out_dir))
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def write_page(out_path: str | os.PathLike, studies: Mapping[str, Mapping[str, str]]) -> None:
    """Write results/whatif/index.html atomically."""
    atomic_write_text(out_path, build_page(out_path, studies))


def render_study(
    study: str, summary_path: str, outputs: Mapping[str, str], bundle: str | None = None
) -> None:
    """Figure (html, svg, png beside `outputs['svg']`), Markdown table, HTML table page (with
    the findings paragraph above the table, for Snakemake's report) and the findings paragraph
    of one study. `outputs` has keys svg, md, table_html, findings; `bundle`: the prebuilt
    script the HTML figure inlines (figures.write_javascript_bundle)."""
    import polars as pl

    from migsim.figures_whatif import BUILDERS
    from migsim.output.figures import save_chart
    from migsim.output.tables import table_page
    from migsim.studies.common import FINDINGS
    from migsim.tables_whatif import SCHEMAS, TABLES, markdown

    df = SCHEMAS[study].conform(pl.read_parquet(summary_path))
    text = FINDINGS[study](df)
    save_chart(BUILDERS[study](df), str(Path(outputs["svg"]).with_suffix("")), bundle=bundle)
    tables = TABLES[study](df)
    atomic_write_text(outputs["md"], markdown(tables))
    page = table_page(TITLES[study], tables).replace(
        "<body>\n", f"<body>\n<p class='findings'>{html.escape(text)}</p>\n", 1
    )
    atomic_write_text(outputs["table_html"], page)
    atomic_write_text(outputs["findings"], f"## {TITLES[study]}: findings\n\n{text}\n")


def render_all(results: str, studies: Sequence[str], page: str, bundle: str | None = None) -> None:
    """Render every study of `studies` from its summary under `results`/whatif (one process:
    the figure renderer starts once), then write the what-if page `page`."""
    for study in studies:
        files = study_files(results, study)
        render_study(study, files["parquet"], files, bundle)
    write_page(page, {s: study_files(results, s) for s in studies})


def index_section(files: Sequence[str], out_dir: str | os.PathLike) -> str:
    """The "What-if studies" section of results/index.html, from the what-if outputs `files`
    (the studies are those with a summary Parquet among them); links relative to `out_dir`."""
    out_dir = Path(out_dir)
    parquets = [Path(f) for f in files if str(f).endswith(".parquet")]
    if not parquets:
        return ""
    results = str(parquets[0].parent.parent)
    studies = [s for s in TITLES if any(p.stem == s for p in parquets)]
    parts = ["<h2 id='whatif'>What-if studies</h2>"]
    page = Path(results) / "whatif" / "index.html"
    parts.append(
        f"<p class='links'>All studies on one page: <a href='{html.escape(_rel(page, out_dir))}'>"
        "whatif/index.html</a></p>"
    )
    for study in studies:
        parts.append(section_html(study, study_files(results, study), out_dir))
    return "\n".join(parts)
