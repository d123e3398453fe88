"""results/index.html: one offline page that shows every figure (inline SVG) and table, and
links each figure's interactive HTML, SVG and PNG, each table's Markdown and HTML, and the
summary Parquet files. No script, stylesheet or font is loaded from the network."""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from migsim import __version__
from migsim.atomic import atomic_write_text
from migsim.output.html import CSS
from migsim.output.html import rel as _rel


def _plain(obj):
    """Nested mappings and lists as plain dicts and lists (for yaml.safe_dump)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _study_entries(
    figures: Sequence[str],
    tables: Sequence[str],
    summaries: Sequence[str],
    whatif: Sequence[str],
    series: Sequence[str],
    config: Mapping,
) -> list:
    """The front page's studies, from the files the index job is given (what-if studies:
    those of the registry of `config`)."""
    from migsim.output.front import StudyEntry
    from migsim.studies import experiments, registry, study_files, summary_study

    # by folder and name: figures/throughput.html and tables/throughput.html both exist
    by_name = {
        f"{Path(f).parent.name}/{Path(f).name}": f
        for f in [*figures, *summaries, *whatif, *series, *tables]
    }
    summary = {Path(s).stem: s for s in summaries}

    def files(figs: Sequence[str], tabs: Sequence[str]) -> tuple[tuple[str, str], ...]:
        out = [
            (f"{fig} {ext.upper()}", by_name[f"figures/{fig}.{ext}"])
            for fig in figs
            for ext in ("html", "svg", "png")
            if f"figures/{fig}.{ext}" in by_name
        ]
        out += [
            (f"{tab} ({'Markdown' if ext == 'md' else 'HTML'})", by_name[f"tables/{tab}.{ext}"])
            for tab in tabs
            for ext in ("html", "md")
            if f"tables/{tab}.{ext}" in by_name
        ]
        return tuple(out)

    entries = []
    for exp in experiments().values():  # the published experiments, then the series
        figs = tuple(exp.figures)
        if f"figures/{figs[0]}.html" in by_name:
            entries.append(
                StudyEntry(
                    exp.name,
                    exp.title,
                    page=by_name[f"figures/{figs[0]}.html"],
                    thumbnail=by_name.get(f"figures/{figs[0]}.png"),
                    summary=summary.get(exp.name),
                    files=files(figs, exp.tables),
                )
            )
    if "series/published.html" in by_name:
        entries.append(
            StudyEntry(
                "series",
                "Every published number of the series",
                page=by_name["series/published.html"],
                thumbnail=by_name.get("series/published.png"),
                summary=by_name.get("series/published.parquet"),
            )
        )
    # the what-if studies of the registry (plug-ins included), each linking its own page
    summaries_of = {summary_study(f): f for f in whatif if summary_study(f)}
    for name, study in registry(config).items():
        if name not in summaries_of:
            continue
        out = {k: v.rsplit("/", 1)[1] for k, v in study_files("", name).items()}
        got = {k: by_name.get(f"whatif/{v}") for k, v in out.items()}
        got["parquet"] = summaries_of[name]
        entries.append(
            StudyEntry(
                name,
                study.title,
                page=got["page"] or got["table_html"] or got["parquet"],
                thumbnail=got["png"],
                summary=got["parquet"],
                findings=got["findings"],
            )
        )
    return entries


def build_index(
    out_dir: Path,
    *,
    figures: Sequence[str],
    tables: Sequence[str],
    summaries: Sequence[str],
    config: Mapping,
    whatif: Sequence[str] = (),
    runs: Sequence[str] = (),
    series: Sequence[str] = (),
    answer_svg: str | None = None,
    answer_from: str | None = None,
) -> str:
    """The HTML text of results/index.html (paths in it are relative to `out_dir`): the
    answer, one section per study, the reproduction tables, the data, the configuration;
    `whatif`: the what-if studies' output files, `runs`: the run files the summaries were
    built from (listed under Data), `series`: the series page's files; `answer_svg`: where to
    write the answer's figure (SVG); `answer_from`: the answer's figure drawn already (its SVG
    file, front.answer_figure_svg's), read instead of drawn."""
    from migsim.output.answer import ANSWER_CSS
    from migsim.output.front import FRONT_CSS, answer_figure_svg, front_page
    from migsim.output.html import inline_svg
    from migsim.output.tables import read_metadata

    esc = html.escape
    meta = read_metadata(summaries[0]) if summaries else {}
    head = [
        "<!DOCTYPE html>",
        "<html lang='en'>",
        "<head>",
        "<meta charset='utf-8'>",
        "<title>migsim results</title>",
        f"<style>{CSS}{ANSWER_CSS}{FRONT_CSS}</style>",
        "</head>",
        "<body>",
        "<h1>migsim results</h1>",
        f"<p class='meta'>migsim {esc(__version__)} · seed {esc(str(config.get('seed')))} · "
        f"platform {esc(str(config.get('platform')))} · configuration hash "
        f"{esc(meta.get('config_hash', '?'))}</p>",
    ]
    from migsim.studies import summary_study

    files = {Path(f).name: f for f in [*summaries, *whatif, *series]}
    study_summaries = {summary_study(f): f for f in whatif if summary_study(f)}
    answer_paths = {
        "throughput": files.get("throughput.parquet"),
        "compaction": files.get("compaction.parquet"),
        "series": files.get("published.parquet"),
        "cluster_max": study_summaries.get("cluster_max"),
        "hybrid": study_summaries.get("hybrid"),
    }
    if answer_from:
        svg = inline_svg(Path(answer_from).read_text(), "answer")
    else:
        svg = answer_figure_svg(answer_paths["throughput"], answer_svg)
    links = [
        (label, files[n])
        for label, n in (
            ("Every published number of the series beside its simulation", "published.html"),
            ("All what-if studies on one page", "index.html"),
        )
        if n in files
    ]
    repro = [
        t
        for t in tables
        if Path(t).name in ("throughput_vs_published.html", "compaction_vs_published.html")
    ]
    data = []
    for s in summaries:
        m = read_metadata(s)
        data.append(
            f"<a href='{esc(_rel(s, out_dir))}'>{esc(Path(s).name)}</a> "
            f"(schema {esc(m.get('schema', '?'))}, configuration hash "
            f"{esc(m.get('config_hash', '?'))}, seed {esc(m.get('seed', '?'))})"
        )
    data.append(
        "Every table: "
        + " ".join(
            f"<a href='{esc(_rel(t, out_dir))}'>{esc(Path(t).stem)}</a>"
            for t in tables
            if t.endswith(".html")
        )
    )
    data.append(
        "Run files (layout: README.md in this folder):<ul class='runs'>"
        + "".join(
            f"<li><a href='{esc(_rel(r, out_dir))}'>{esc(_rel(r, out_dir))}</a></li>" for r in runs
        )
        + "</ul>"
    )
    body = front_page(
        out_dir,
        head=head,
        answer_paths=answer_paths,
        answer_svg=svg,
        studies=_study_entries(figures, tables, summaries, whatif, series, config),
        tables=repro,
        data=data,
        links=links,
        # keys sorted: the same configuration gives the same page however --config ordered it
        config_yaml=yaml.safe_dump(_plain(config), sort_keys=True),
    )
    return body + "\n</body>\n</html>\n"


def write_index(
    out_path: str | os.PathLike,
    *,
    figures: Sequence[str],
    tables: Sequence[str],
    summaries: Sequence[str],
    config: Mapping,
    whatif: Sequence[str] = (),
    runs: Sequence[str] = (),
    series: Sequence[str] = (),
    answer_svg: str | None = None,
    answer_from: str | None = None,
) -> None:
    """Write results/index.html atomically (and the answer's figure to `answer_svg`; read from
    `answer_from` if drawn already)."""
    out_path = Path(out_path)
    text = build_index(
        out_path.parent,
        figures=figures,
        tables=tables,
        summaries=summaries,
        config=config,
        whatif=whatif,
        runs=runs,
        series=series,
        answer_svg=answer_svg,
        answer_from=answer_from,
    )
    atomic_write_text(out_path, text)
