"""Pipeline jobs and CLI helpers in the kernel developers' formats: the allocation latency
summary, table and figure of the compaction modes, the mmtests compare report of the modes,
and a real trace beside a simulated one (``migsim compare``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import altair as alt
import numpy as np
import polars as pl

from migsim.formats import mmtests
from migsim.output.schema import F64, I32, I64, S, Schema, _c
from migsim.output.tables import Table, read_runs, write_parquet, write_table
from migsim.studies.compaction import ALLOC_LATENCY_PERCENTILES, COMPACTION_MODES, COMPACTION_RUNS

ALLOC_LATENCY_SUMMARY = Schema(
    name="alloc_latency_summary",
    doc=(
        "Quantiles of the per-allocation latency (slow-path entry to page returned) of each "
        "compaction mode, pooled over its runs: 101 rows per mode (q = 0, 0.01, .., 1)."
    ),
    columns=(
        _c("mode", S, "", "baseline, dma, busy-baseline or busy-dma"),
        _c("mode_order", I32, "", "position of the mode in the published table"),
        _c("q", F64, "fraction", "quantile"),
        _c("latency_us", F64, "us", "latency at quantile q"),
        _c("n", I64, "allocations", "allocations that entered the slow path, over all runs"),
        _c("platform", S, "", "platform name"),
    ),
    sort_by=("mode_order", "mode", "q"),
)

# this experiment's Parquet schemas (migsim.studies.schemas; the trace events' schema is the
# trace format's, migsim.formats.trace.TRACE_EVENTS)
SCHEMAS = (ALLOC_LATENCY_SUMMARY,)

QUANTILES = np.linspace(0.0, 1.0, 101)


def summarise_alloc_latency(runs: pl.DataFrame) -> pl.DataFrame:
    """ALLOC_LATENCY_SUMMARY of compaction run rows: each mode's latencies pooled over its
    runs, at the quantiles 0, 0.01, .., 1."""
    order = {m: i for i, m in enumerate(COMPACTION_MODES)}
    rows = []
    for (mode,), g in runs.group_by(["mode"], maintain_order=True):
        lat = np.concatenate([np.asarray(x, dtype=np.float64) for x in g["alloc_latency_us"]])
        if not len(lat):
            continue
        qs = np.quantile(lat, QUANTILES)
        for q, v in zip(QUANTILES, qs, strict=True):
            rows.append({"mode": mode, "mode_order": order.get(mode, len(order)),
                         "q": round(float(q), 2), "latency_us": float(v), "n": len(lat),
                         "platform": g["platform"][0]})  # fmt: skip
    return (
        ALLOC_LATENCY_SUMMARY.frame(rows)
        if rows
        else pl.DataFrame(schema=ALLOC_LATENCY_SUMMARY.polars_schema())
    )


def alloc_latency_table(summary: pl.DataFrame) -> Table:
    """Percentiles p5..p99 of each mode (us), the layout of the proactive-compaction
    series' order-9 latency tables."""
    s = ALLOC_LATENCY_SUMMARY.conform(summary)
    header = ["mode", "allocations"] + [f"p{p}" for p in ALLOC_LATENCY_PERCENTILES]
    rows = []
    for (mode,), g in s.group_by(["mode"], maintain_order=True):
        at = dict(zip(g["q"].round(2).to_list(), g["latency_us"].to_list(), strict=True))
        rows.append([mode, str(g["n"][0])] + [f"{at[p / 100]:.1f}" for p in
                                              ALLOC_LATENCY_PERCENTILES])  # fmt: skip
    return Table(
        "Order-9 allocation latency, us (slow-path entry to page returned)",
        header,
        rows,
        ["Simulated; quantiles over every allocation of every run of the mode."],
    )


def kernel_outputs(run_paths: Sequence[str], outputs: Mapping[str, str], *, seed: int,
                   digest: str, bundle: str | None = None) -> None:  # fmt: skip
    """The compaction modes in the kernel developers' formats: latency summary (Parquet),
    latency table and mmtests report (md, html; the report also as text), latency figure.
    `outputs` keys: summary, latency_md, latency_html, mmtests_txt, mmtests_md, mmtests_html,
    figure (a stem: .html, .svg, .png). `bundle`: the prebuilt script the HTML figure inlines
    (figures.write_javascript_bundle; without it the figure builds it, seconds of CPU)."""
    from migsim.output.figures import save_chart

    runs = read_runs(run_paths, COMPACTION_RUNS)
    summary = summarise_alloc_latency(runs)
    write_parquet(summary, outputs["summary"], ALLOC_LATENCY_SUMMARY, config_hash=digest,
                  seed=seed)  # fmt: skip
    write_table(alloc_latency_table(summary), outputs["latency_md"], outputs["latency_html"])
    modes = [m for m in COMPACTION_MODES if m in set(runs["mode"])]
    stats = [mmtests.stats_from_compaction_runs(runs.filter(pl.col("mode") == m), m)
             for m in modes]  # fmt: skip
    title = "migsim compaction: the modes compared (mmtests layout)"
    if len(stats) >= 2:
        from migsim.atomic import atomic_write_text

        atomic_write_text(outputs["mmtests_txt"], mmtests.format_text(stats, title))
        write_table(mmtests.to_table(stats, title), outputs["mmtests_md"], outputs["mmtests_html"])
    else:
        from migsim.atomic import atomic_write_text

        msg = f"{title}: fewer than two modes in this configuration\n"
        atomic_write_text(outputs["mmtests_txt"], msg)
        write_table(Table(title, ["stat"], [], [msg.strip()]), outputs["mmtests_md"],
                    outputs["mmtests_html"])  # fmt: skip
    save_chart(alloc_latency_chart(summary), outputs["figure"], bundle=bundle)


def compare(paths: Sequence[str | Path], names: Sequence[str] | None = None,
            ) -> list[mmtests.RunStats]:  # fmt: skip
    """RunStats of every file (traces, event Parquet, compaction run Parquet), named."""
    stats: list[mmtests.RunStats] = []
    for i, p in enumerate(paths):
        name = names[i] if names and i < len(names) else None
        stats += mmtests.load_stats(Path(p), name)
    return stats


def compare_figure(paths: Sequence[str | Path], names: Sequence[str], stem: str | Path,
                   bundle: str | None = None) -> None:  # fmt: skip
    """Traces side by side (compare_chart) as HTML, SVG and PNG at `stem`. `bundle`: the
    prebuilt script the HTML figure inlines (figures.write_javascript_bundle; without it the
    figure builds it, seconds of CPU)."""
    from migsim.formats.trace import call_table
    from migsim.output.figures import save_chart

    series, calls = [], []
    for p, name in zip(paths, names, strict=True):
        ct = call_table(mmtests.load_events(Path(p)))
        t0 = ct["time_s"].min() if ct.height else 0.0
        series.append(ct.select(pl.lit(name).alias("source"), (pl.col("time_s") - t0),
                                pl.col("pages").cum_sum().alias("pages_cum")))  # fmt: skip
        calls.append(ct.select(pl.lit(name).alias("source"), "pages", "latency_us"))
    save_chart(compare_chart(pl.concat(series), pl.concat(calls)), stem, bundle=bundle)


def write_trace(res, path: str | Path, max_events: int, *, text: bool | None = None
                ) -> tuple[int, int]:  # fmt: skip
    """A traced CompactionResult's events into `path`: tracefs text, or Parquet (TRACE_EVENTS)
    when `text` is False or the name ends in .parquet; at most `max_events`. Returns the
    events written and the events of the whole run."""
    from migsim.formats.trace import TRACE_EVENTS, simulated_events, write_trace_text

    start, end = res.zone_pfns
    events, total = simulated_events(
        res.log, res.cost, zone_start=start, zone_end=end, max_events=max_events
    )
    if text is None:
        text = not str(path).endswith(".parquet")
    if text:
        write_trace_text(events, path)
    else:
        write_parquet(events, path, TRACE_EVENTS, config_hash="", seed=res.seed,
                      extra={"mode": res.mode, "events_total": total})  # fmt: skip
    return events.height, total


def trace_modes(platform_path: str, state_path: str, runs: Sequence[Mapping],
                text_paths: Sequence[str], events_paths: Sequence[str], max_events: int
                ) -> None:  # fmt: skip
    """The first run of each compaction mode (`runs`: one job's parameters per mode),
    simulated and costed as rule compaction does, traced: its events as tracefs text and as
    Parquet. As there, the page-level run is simulated once per distinct
    pipeline.COMPACTION_CONTROL_FLOW key and costed for every mode that shares it (the
    control flow of the modes is the same: tests/test_one_simulation.py)."""
    from migsim.cost.platform import load_platform
    from migsim.pipeline import cost_mode_run, simulations_by_control_flow

    platform = load_platform(platform_path)
    shared = simulations_by_control_flow(platform, state_path, runs, trace=True)
    for (params, sim), text_path, events_path in zip(shared, text_paths, events_paths, strict=True):
        res = cost_mode_run(sim, platform, params, 0)
        n, total = write_trace(res, text_path, max_events, text=True)
        write_trace(res, events_path, max_events, text=False)
        if total > n:
            print(f"trace {params['mode']}: the run has {total} events, wrote the first {n} "
                  "(trace.max_events)")  # fmt: skip


def compare_outputs(real: str, sim: str, *, txt: str, md: str, figure: str,
                    bundle: str | None = None) -> None:  # fmt: skip
    """A real trace beside a simulated one: the mmtests report (text, Markdown) and the
    figure (compare_figure; `bundle` as there)."""
    from migsim.atomic import atomic_write_text

    names = ["real", "simulated"]
    stats = compare([real, sim], names)
    title = f"real trace ({Path(real).name}) beside the simulated baseline"
    atomic_write_text(txt, mmtests.format_text(stats, title))
    atomic_write_text(md, mmtests.format_markdown(stats, title))
    compare_figure([real, sim], names, figure, bundle=bundle)


# ---------------------------------------------------------------------------------------------
# Figures: the allocation latency per mode, a real trace beside a simulated one
# ---------------------------------------------------------------------------------------------


MODE_COLOURS = ("#000000", "#4c78a8", "#e45756", "#f58518")


def alloc_latency_chart(summary: pl.DataFrame) -> alt.LayerChart | alt.Chart:
    """CDF of the per-allocation latency (slow-path entry to page returned), one line per
    mode, log latency axis, with the p50 and p99 of each mode marked."""
    from migsim.output.figures import _empty

    s = ALLOC_LATENCY_SUMMARY.conform(summary)
    title = "Order-9 allocation latency (slow-path entry to page returned)"
    if s.is_empty():
        return _empty(title)
    modes = [m for m in COMPACTION_MODES if m in set(s["mode"])] + sorted(
        set(s["mode"]) - set(COMPACTION_MODES)
    )
    colour = alt.Color(
        "mode:N",
        scale=alt.Scale(domain=modes, range=list(MODE_COLOURS) * 3),
        title="mode",
    )
    base = alt.Chart(s.with_columns((pl.col("q") * 100).alias("pct")), title=title)
    line = base.mark_line(interpolate="step-after").encode(
        x=alt.X(
            "latency_us:Q",
            scale=alt.Scale(type="log"),
            title="latency (us, log)",
            axis=alt.Axis(labelOverlap="greedy"),
        ),
        y=alt.Y("pct:Q", title="allocations at or below (%)"),
        color=colour,
        tooltip=[
            "mode:N",
            alt.Tooltip("pct:Q", format=".0f"),
            alt.Tooltip("latency_us:Q", format=".1f"),
            "n:Q",
        ],  # fmt: skip
    )
    marks = (
        base.transform_filter(alt.FieldOneOfPredicate(field="pct", oneOf=[50.0, 99.0]))
        .mark_point(filled=True, size=50)
        .encode(x="latency_us:Q", y="pct:Q", color=colour, shape=alt.Shape("pct:O", title="pct"))
    )
    return (line + marks).properties(width=520, height=300)


def compare_chart(series: pl.DataFrame, calls: pl.DataFrame) -> alt.HConcatChart:
    """A real trace beside a simulated one: cumulative pages migrated against time since the
    first event, pages per migrate_pages() call, and per-call latency (CDFs). `series` has
    source, time_s, pages_cum; `calls` has source, pages, latency_us."""
    colour = alt.Color("source:N", title="trace")
    ts = (
        alt.Chart(series, title="pages migrated over time")
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("time_s:Q", title="time since the first event (s)"),
            y=alt.Y("pages_cum:Q", title="pages migrated (cumulative)"),
            color=colour,
        )
        .properties(width=320, height=240)
    )

    def cdf(col: str, title: str, axis: str, log: bool) -> alt.Chart:
        scale = alt.Scale(type="log") if log else alt.Scale()
        d = (
            calls.drop_nulls(col)
            .sort(["source", col])
            .with_columns(
                (
                    100.0 * (pl.int_range(1, pl.len() + 1).over("source")) / pl.len().over("source")
                ).alias("pct")
            )
        )
        return (
            alt.Chart(d.select("source", col, "pct"), title=title)
            .mark_line(interpolate="step-after")
            .encode(
                x=alt.X(f"{col}:Q", title=axis, scale=scale),
                y=alt.Y("pct:Q", title="calls at or below (%)"),
                color=colour,
                order=alt.Order("pct:Q"),
            )
            .properties(width=320, height=240)
        )

    return alt.hconcat(
        ts,
        cdf("pages", "pages per migrate_pages() call", "pages", False),
        cdf("latency_us", "migrate_pages() latency", "latency (us, log)", True),
    )
