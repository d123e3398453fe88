"""The pages of the studies (generic over the registry, ``migsim.studies``): per study the
figure (offline HTML, SVG, PNG), the Markdown and HTML table, the findings paragraph and the
study's own page with figure, table and findings once (``render_study``), and
results/whatif/index.html with every study on one offline page (``write_page``)."""

from __future__ import annotations

import html
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from migsim.atomic import atomic_write_text
from migsim.output.html import CSS, inline_svg
from migsim.output.html import rel as _rel
from migsim.studies import Study, load_study, registry, study_files, summary_study


def _findings_text(md_path: str) -> str:
    """The paragraph of a findings Markdown file (its heading dropped)."""
    lines = Path(md_path).read_text().splitlines()
    return " ".join(ln for ln in lines if ln.strip() and not ln.startswith("#")).strip()


def _table_body(page: str) -> str:
    """The tables of a table page without its findings paragraph (a section shows it once,
    above its figure)."""
    m = re.search(r"<body>(.*)</body>", page, flags=re.S)
    body = m.group(1) if m else ""
    return re.sub(r"<p class='findings'>.*?</p>\n?", "", body, count=1, flags=re.S)


def section_html(
    study: str, title: str, files: Mapping[str, str], out_dir: Path, *, figure: bool = True
) -> str:
    """One study: heading `title`, findings, (inline figure,) table and links."""
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
            ("page", "own page"),
        )
        if k in files
    )
    parts = [
        f"<section id='whatif-{esc(study)}'>",
        f"<h3>{esc(title)}</h3>",
        f"<p class='findings'>{esc(_findings_text(files['findings']))}</p>",
    ]
    if figure and "svg" in files:
        svg = inline_svg(Path(files["svg"]).read_text(), f"whatif-{study}")
        parts.append(f"<figure class='chart'><div class='embed'>{svg}</div></figure>")
    if "table_html" in files:
        parts.append(_table_body(Path(files["table_html"]).read_text()))
    parts.append(f"<p class='links'>{links}</p></section>")
    return "\n".join(parts)


def _page(title: str, intro: str, body: Sequence[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            "<html lang='en'>",
            "<head>",
            "<meta charset='utf-8'>",
            f"<title>{html.escape(title)}</title>",
            f"<style>{CSS}</style>",
            "</head>",
            "<body>",
            f"<h1>{html.escape(title)}</h1>",
            f"<p class='meta'>{intro}</p>",
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )


def build_page(
    out_path: str | os.PathLike,
    studies: Mapping[str, Mapping[str, str]],
    titles: Mapping[str, str] | None = None,
) -> str:
    """The HTML text of the what-if page (links relative to its folder); `titles`: heading of
    each study (default: the registry's)."""
    out_dir = Path(out_path).parent
    titles = titles or {name: s.title for name, s in registry().items()}
    return _page(
        "What-if studies",
        "Questions the published hardware experiment could not answer; every number in a "
        "findings paragraph is computed from the study's summary Parquet.",
        [section_html(s, titles.get(s, s), files, out_dir) for s, files in studies.items()],
    )


def write_page(
    out_path: str | os.PathLike,
    studies: Mapping[str, Mapping[str, str]],
    titles: Mapping[str, str] | None = None,
) -> None:
    """Write results/whatif/index.html atomically."""
    atomic_write_text(out_path, build_page(out_path, studies, titles))


def render_study(study: Study, outputs: Mapping[str, str], bundle: str | None = None) -> None:
    """Figure (html, svg, png beside `outputs['svg']`), Markdown table, HTML table page (with
    the findings paragraph above the table, for Snakemake's report), the findings paragraph and
    the study's own page (figure, table and findings once) of one study, from its summary
    `outputs['parquet']`. `outputs`: ``migsim.studies.study_files``; `bundle`: the prebuilt
    script the HTML figure inlines (figures.write_javascript_bundle)."""
    import polars as pl

    from migsim.output.figures import save_chart
    from migsim.output.tables import markdown, table_page

    df = study.schema.conform(pl.read_parquet(outputs["parquet"]))
    text = study.findings(df)
    save_chart(study.figure(df), str(Path(outputs["svg"]).with_suffix("")), bundle=bundle)
    tables = study.tables(df)
    atomic_write_text(outputs["md"], markdown(tables))
    page = table_page(study.title, tables).replace(
        "<body>\n", f"<body>\n<p class='findings'>{html.escape(text)}</p>\n", 1
    )
    atomic_write_text(outputs["table_html"], page)
    atomic_write_text(outputs["findings"], f"## {study.title}: findings\n\n{text}\n")
    own = Path(outputs["page"])
    body = section_html(study.name, study.title, outputs, own.parent)
    atomic_write_text(own, _page(study.title, html.escape(study.caption), [body]))


def render_studies(
    modules: Mapping[str, str],
    files: Mapping[str, Mapping[str, str]],
    page: str | os.PathLike,
    bundle: str | None = None,
) -> None:
    """Render every study of `modules` (its name -> its module, ``Study.module``) into its
    files `files[name]` (``migsim.studies.study_files`` with its summary) in one process, so
    that the figure renderer and Altair start once; then write the what-if page `page`."""
    studies = {name: load_study(module) for name, module in modules.items()}
    for name, study in studies.items():
        render_study(study, files[name], bundle)
    write_page(page, files, {name: study.title for name, study in studies.items()})


def index_section(
    files: Sequence[str], out_dir: str | os.PathLike, config: Mapping | None = None
) -> str:
    """The "What-if studies" section of results/index.html, from the what-if outputs `files`
    (the studies are those of the registry of `config` with a summary Parquet among them);
    links relative to `out_dir`."""
    out_dir = Path(out_dir)
    summaries = {summary_study(f): str(f) for f in files if summary_study(f)}
    if not summaries:
        return ""
    results = str(Path(next(iter(summaries.values()))).parents[3])  # <results>/runs/whatif/<s>/
    reg = registry(config)
    studies = [s for s in reg if s in summaries]
    parts = ["<h2 id='whatif'>What-if studies</h2>"]
    page = Path(results) / "whatif" / "index.html"
    parts.append(
        f"<p class='links'>All studies on one page: <a href='{html.escape(_rel(page, out_dir))}'>"
        "whatif/index.html</a></p>"
    )
    for study in studies:
        files_of = study_files(results, study, summaries[study])
        parts.append(section_html(study, reg[study].title, files_of, out_dir))
    return "\n".join(parts)
