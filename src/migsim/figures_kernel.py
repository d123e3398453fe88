"""Figures in the kernel developers' terms: the order-9 allocation latency distribution per
compaction mode (beside the four-mode comparison), and a real trace beside a simulated one.
Pure builders from Polars frames to Altair charts (saved with ``figures.save_chart``)."""

from __future__ import annotations

import altair as alt
import polars as pl

from migsim.output.tables import ALLOC_LATENCY_SUMMARY, COMPACTION_MODES

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
