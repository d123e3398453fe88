"""Altair figure builders: pure functions from a summary DataFrame to a chart, and
``save_chart`` that writes a chart as offline HTML (Vega bundle inlined), SVG and PNG through
vl-convert.

Builders take the summary Parquet frames of ``migsim.output.tables`` (THROUGHPUT_SUMMARY,
COMPACTION_SUMMARY); folio sizes are ordered by size and labelled 4K..2M; every axis title
carries its unit.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable
from pathlib import Path

import altair as alt
import polars as pl

from migsim.atomic import atomic_write_bytes, atomic_write_text
from migsim.output.style import BASELINE_COLOUR, PALETTE, WHATIF_H, WHATIF_W  # noqa: F401
from migsim.output.tables import (
    COMPACTION_METRICS,
    COMPACTION_SUMMARY,
    THROUGHPUT_SUMMARY,
    throughput_mape,
)
from migsim.units import format_size

LEGEND_SPEEDUPS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0, 8.0)
PUBLISHED_DX = 7  # px: published marks beside the simulated ones of the same folio size
SOURCE_COLOURS = {"simulated": "#4c78a8", "published": "#9d9d9d"}

# Offline HTML: no "open in editor" action (the only link that would leave the page).
# Rendered as SVG (searchable text, crisp when zoomed).
EMBED_OPTIONS = {
    "renderer": "svg",
    "actions": {"export": True, "source": True, "compiled": False, "editor": False},
}


def _folio_order(df: pl.DataFrame) -> list[str]:
    sizes = df.select("folio_bytes").unique().sort("folio_bytes")["folio_bytes"].to_list()
    return [format_size(b) for b in sizes]


def _empty(title: str) -> alt.Chart:
    """A chart that says there is nothing to draw (keeps the pipeline's outputs complete)."""
    df = pl.DataFrame({"text": [f"{title}: no data in this configuration"]})
    return (
        alt.Chart(df, title=title)
        .mark_text(size=14)
        .encode(text="text:N")
        .properties(width=400, height=60)
    )


def _series(df: pl.DataFrame) -> pl.DataFrame:
    """Add series (legend key), panel and lane-count columns to a throughput summary."""
    return df.with_columns(
        pl.when(pl.col("mode") == "dma")
        .then(pl.col("channels"))
        .when(pl.col("mode") == "mt")
        .then(pl.col("threads"))
        .otherwise(None)
        .alias("lanes"),
    ).with_columns(
        pl.when(pl.col("mode") == "baseline")
        .then(pl.lit("baseline"))
        .otherwise(
            pl.col("lanes").cast(pl.String)
            + pl.when(pl.col("mode") == "dma").then(pl.lit(" ch")).otherwise(pl.lit(" thr"))
        )
        .alias("series"),
    )


LABEL_GAP_PX = 12  # px between two line-end labels (one line of 11 px text)


def _spread_labels(values: list[float], lo: float, hi: float, height: float) -> list[float]:
    """Positions (same log scale as `values`, in GB/s) for line-end labels at `values`, moved
    apart so that no two are closer than LABEL_GAP_PX on a log axis [lo, hi] of `height` px:
    labels that would overlap form a group centred on its lines' mean; a label clear of the
    others stays at its line."""
    if not values:
        return []
    gap = LABEL_GAP_PX / height * (math.log10(hi) - math.log10(lo))
    order = sorted(range(len(values)), key=lambda i: values[i])
    logs = [math.log10(values[i]) for i in order]
    groups = [[k] for k in range(len(logs))]  # indices into `logs`, bottom to top

    def place(g: list[int]) -> list[float]:
        centre = sum(logs[k] for k in g) / len(g)
        return [centre + gap * (j - (len(g) - 1) / 2) for j in range(len(g))]

    merged = True
    while merged:
        merged = False
        for j in range(len(groups) - 1):
            if place(groups[j])[-1] + gap > place(groups[j + 1])[0] + 1e-12:
                groups[j : j + 2] = [groups[j] + groups[j + 1]]
                merged = True
                break
    pos = [p for g in groups for p in place(g)]
    out = [0.0] * len(values)
    for rank, i in enumerate(order):
        out[i] = 10 ** pos[rank]
    return out


def _throughput_panel(
    data: pl.DataFrame, mode: str, folios: list[str], y_domain: tuple[float, float]
) -> alt.LayerChart:
    """One panel of the throughput figure: the baseline and one line per channel (dma) or
    thread (mt) count with its simulated 90% interval as a band, the published means as
    hollow diamonds with their sd, a label at each line's end; its own colour legend."""
    height = 300
    lanes_title = {"dma": "DMA channels", "mt": "copy threads"}[mode]
    d = data.filter(pl.col("mode").is_in(["baseline", mode]))
    keys = d.select("series", pl.col("lanes").fill_null(0)).unique().sort("lanes")
    domain = keys["series"].to_list()
    lanes = [n for n in keys["lanes"].to_list() if n]
    colour_of = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(lanes)}
    rng = [colour_of.get(n, BASELINE_COLOUR) for n in keys["lanes"].to_list()]
    sources = [s for s in ("simulated", "published") if s in d["source"].to_list()]
    ylog = alt.Scale(type="log", domain=list(y_domain), nice=False)
    x = alt.X("folio_size:O", sort=folios, title="folio size", axis=alt.Axis(labelAngle=0))
    colour = alt.Color(
        "series:N",
        scale=alt.Scale(domain=domain, range=rng),
        title=lanes_title,
        sort=domain,
        # the line's colour at full strength (the band's translucent fill would pale it)
        legend=alt.Legend(
            orient="right", symbolType="stroke", symbolOpacity=1, symbolStrokeWidth=3
        ),
    )
    tooltip = [
        alt.Tooltip("series:N", title=lanes_title),
        alt.Tooltip("folio_size:N", title="folio size"),
        alt.Tooltip("source:N"),
        alt.Tooltip("gbps:Q", title="GB/s", format=".2f"),
        alt.Tooltip("lo:Q", title="low (GB/s)", format=".2f"),
        alt.Tooltip("hi:Q", title="high (GB/s)", format=".2f"),
    ]
    base = alt.Chart(d).encode(x=x, color=colour)
    is_sim = alt.datum.source == "simulated"
    is_pub = alt.datum.source == "published"
    y_title = "throughput (GB/s, log scale)"
    y = alt.Y("gbps:Q", scale=ylog, title=y_title)
    band = (
        base.transform_filter(is_sim)
        .mark_area(opacity=0.18)
        .encode(y=alt.Y("lo:Q", scale=ylog, title=y_title), y2="hi:Q", detail="series:N")
    )
    lines = base.transform_filter(is_sim).mark_line(strokeWidth=1.6).encode(y=y, detail="series:N")
    shape = alt.Shape(
        "source:N",
        scale=alt.Scale(
            domain=sources,
            range=[{"simulated": "circle", "published": "diamond"}[s] for s in sources],
        ),
        title="source",
        legend=alt.Legend(orient="right") if len(sources) > 1 else None,
    )
    points = (
        base.transform_filter(is_sim)
        .mark_point(filled=True, size=36)
        .encode(y=y, shape=shape, tooltip=tooltip)
    )
    whiskers = (
        base.transform_filter(is_sim)
        .mark_rule(strokeWidth=1.2)
        .encode(y=alt.Y("lo:Q", scale=ylog), y2="hi:Q")
    )
    layers = [band, whiskers, lines, points]
    if "published" in sources:
        layers.append(
            base.transform_filter(is_pub)
            .mark_rule(strokeDash=[2, 2], opacity=0.8, xOffset=PUBLISHED_DX)
            .encode(y=alt.Y("lo:Q", scale=ylog), y2="hi:Q")
        )
        layers.append(
            base.transform_filter(is_pub)
            .mark_point(
                shape="diamond", filled=False, size=90, strokeWidth=1.5, xOffset=PUBLISHED_DX
            )
            .encode(y=y, shape=shape, tooltip=tooltip)
        )
    # line-end labels, moved apart where the lines end close together
    end = (
        d.filter((pl.col("source") == "simulated") & (pl.col("folio_size") == folios[-1]))
        .select("series", "gbps", "lanes")
        .sort(pl.col("lanes").fill_null(0))
    )
    if end.height:
        ys = _spread_labels(end["gbps"].to_list(), y_domain[0], y_domain[1], height)
        unit = {"dma": " ch", "mt": " thr"}[mode]
        labels = end.with_columns(
            pl.Series("label_y", ys),
            pl.lit(folios[-1]).alias("folio_size"),
            pl.when(pl.col("lanes").is_null())
            .then(pl.col("series"))
            .otherwise(pl.col("series") + unit)
            .alias("label"),
        )
        layers.append(
            alt.Chart(labels)
            .mark_text(align="left", dx=10 + PUBLISHED_DX, fontSize=11)
            .encode(
                x=x,
                y=alt.Y("label_y:Q", scale=ylog),
                text="label:N",
                color=alt.Color("series:N", scale=alt.Scale(domain=domain, range=rng), legend=None),
            )
        )
    title = {"dma": "DMA offload (dcbm)", "mt": "multi-threaded copy"}[mode]
    own = d.filter((pl.col("mode") == mode) & (pl.col("source") == "published"))
    if own.height == 0:
        title += " (not published)"
    return alt.layer(*layers).properties(width=330, height=height, title=title)


def throughput_chart(summary: pl.DataFrame) -> alt.HConcatChart | alt.LayerChart | alt.Chart:
    """Throughput against folio size, one panel per offload mode (DMA channels, copy threads),
    each with its own colour legend: the baseline in black, one line per channel or thread
    count with the 90% prediction interval of each simulated mean as a shaded band and
    whisker (+- 1 sd where no interval was costed), the published means (hollow diamonds,
    with their sd) beside them, each line labelled at its end; log scale in GB/s."""
    s = THROUGHPUT_SUMMARY.conform(summary)
    if s.height == 0:
        return _empty("move_pages() throughput")
    folios = _folio_order(s)
    s = _series(s).with_columns(
        pl.when(pl.col("mode") == "baseline")
        .then(pl.lit("CPU copy"))
        .otherwise(pl.col("lanes").cast(pl.String))
        .alias("series")
    )
    mean, sd = pl.col("mean_gbps"), pl.col("sd_gbps").fill_null(0.0)
    keys = ("series", "lanes", "mode", "folio_size", "folio_bytes")
    sim = s.select(
        *keys,
        pl.lit("simulated").alias("source"),
        mean.alias("gbps"),
        pl.col("lo_gbps").fill_null(mean - sd).clip(lower_bound=1e-3).alias("lo"),
        pl.col("hi_gbps").fill_null(mean + sd).alias("hi"),
    )
    pub_sd = pl.col("published_sd_gbps").fill_null(0.0)
    pub = s.filter(pl.col("published_gbps").is_not_null()).select(
        *keys,
        pl.lit("published").alias("source"),
        pl.col("published_gbps").alias("gbps"),
        (pl.col("published_gbps") - pub_sd).clip(lower_bound=1e-3).alias("lo"),
        (pl.col("published_gbps") + pub_sd).alias("hi"),
    )
    data = pl.concat([sim, pub])
    y_domain = (0.8 * float(data["lo"].min()), 1.25 * float(data["hi"].max()))
    modes = [m for m in ("dma", "mt") if m in data["mode"].to_list()]
    if not modes:
        modes = ["dma"]
    panels = [_throughput_panel(data, m, folios, y_domain) for m in modes]
    chart = (
        panels[0]
        if len(panels) == 1
        else alt.hconcat(*panels).resolve_scale(color="independent", shape="independent")
    )
    return chart.properties(
        title=alt.Title(
            "move_pages() throughput of 1 GiB against folio size",
            subtitle=(
                "lines: simulated mean, band and whisker: its 90% interval; "
                "hollow diamonds: published mean ± sd"
            ),
        )
    )


def speedup_heatmap(summary: pl.DataFrame) -> alt.FacetChart | alt.Chart:
    """Speed-up over the baseline of the same folio size as a heat map, channel count x folio
    size, values printed in the cells; simulated and (where measured) published side by side,
    and the multi-threaded copier's simulated speed-up when it was run."""
    s = _series(THROUGHPUT_SUMMARY.conform(summary))
    s = s.filter(pl.col("mode").is_in(["dma", "mt"]) & pl.col("speedup").is_not_null())
    if s.height == 0:
        return _empty("Speed-up over baseline")
    folios = _folio_order(s)
    label = {"dma": "DMA", "mt": "MT"}
    parts = []
    for mode in ("dma", "mt"):
        m = s.filter(pl.col("mode") == mode)
        if m.height == 0:
            continue
        parts.append(
            m.select(
                "folio_size",
                "lanes",
                pl.col("speedup").alias("value"),
                pl.lit(f"{label[mode]}, simulated").alias("panel"),
            )
        )
        p = m.filter(pl.col("published_speedup").is_not_null())
        if p.height:
            parts.append(
                p.select(
                    "folio_size",
                    "lanes",
                    pl.col("published_speedup").alias("value"),
                    pl.lit(f"{label[mode]}, published").alias("panel"),
                )
            )
    data = pl.concat(parts)
    panels = list(dict.fromkeys(data["panel"].to_list()))
    lanes = sorted(set(data["lanes"].to_list()))
    vmax = max(float(data["value"].max()), 1.01)
    vmin = min(float(data["value"].min()), 0.99)
    x = alt.X("folio_size:O", sort=folios, title="folio size", axis=alt.Axis(labelAngle=0))
    y = alt.Y("lanes:O", sort=lanes, title="DMA channels / copy threads")
    rect = (
        alt.Chart()
        .mark_rect()
        .encode(
            x=x,
            y=y,
            color=alt.Color(
                "value:Q",
                title="speed-up (×)",
                legend=alt.Legend(values=[v for v in LEGEND_SPEEDUPS if vmin <= v <= vmax]),
                scale=alt.Scale(
                    type="log", scheme="redblue", domain=[vmin, vmax], domainMid=1.0, reverse=False
                ),
            ),
            tooltip=[
                alt.Tooltip("panel:N"),
                alt.Tooltip("lanes:O", title="channels / threads"),
                alt.Tooltip("folio_size:N", title="folio size"),
                alt.Tooltip("value:Q", title="speed-up (×)", format=".2f"),
            ],
        )
    )
    # Dark text on pale cells, white on saturated ones: the cell's position between 1x and the
    # end of the colour scale (log), as the diverging scheme saturates.
    lo, hi = math.log(vmin), math.log(vmax)
    text = (
        alt.Chart()
        .transform_calculate(
            far=f"log(datum.value) > 0 ? log(datum.value) / {hi!r} > 0.55"
            f" : log(datum.value) / {lo!r} > 0.55",
            text="format(datum.value, '.2f') + '×'",
        )
        .mark_text(fontSize=11)
        .encode(
            x=x,
            y=y,
            text="text:N",
            color=alt.condition("datum.far", alt.value("white"), alt.value("black")),
        )
    )
    return (
        alt.layer(rect, text, data=data)
        .properties(width=300, height=26 * max(len(lanes), 3))
        .facet(
            column=alt.Column("panel:N", title=None, sort=panels),
            title=alt.Title(
                "Throughput speed-up over the baseline (serial CPU copy) of the same folio size",
                subtitle="> 1: offload is faster; < 1: slower",
            ),
        )
    )


def _parity_axes(lo: float, hi: float, simulated: str):
    """Log scale over [lo, hi], the published (x) and simulated (y, column `simulated`) axes
    and the dashed y = x line of a parity plot."""
    scale = alt.Scale(type="log", domain=[lo, hi])
    x = alt.X("published_gbps:Q", scale=scale, title="published throughput (GB/s, log)")
    y = alt.Y(f"{simulated}:Q", scale=scale, title="simulated throughput (GB/s, log)")
    diag = (
        alt.Chart(pl.DataFrame({"a": [lo, hi]}))
        .mark_line(color="#666666", strokeDash=[4, 4])
        .encode(x=alt.X("a:Q", scale=scale), y=alt.Y("a:Q", scale=scale))
    )
    return scale, x, y, diag


# A simulated throughput cell reproduces the published one when it lies within max(2 published
# sd, 25%) of it (the v4 reproduction criterion of issue 11)
PARITY_TOLERANCE = 0.25
MISFIT_COLOUR = "#c0392b"  # labels of the cells (bars) outside the tolerance
SERIES_LABELS = 8  # the series figure labels its worst cells outside the tolerance, at most


def _tolerance_band(lo: float, hi: float, scale: alt.Scale) -> alt.Chart:
    """The shaded band y = x · (1 ± PARITY_TOLERANCE) of a parity plot over [lo, hi]."""
    band = pl.DataFrame({"a": [lo, hi]}).with_columns(
        (pl.col("a") * (1 - PARITY_TOLERANCE)).alias("b_lo"),
        (pl.col("a") * (1 + PARITY_TOLERANCE)).alias("b_hi"),
    )
    return (
        alt.Chart(band)
        .mark_area(color="#4c78a8", opacity=0.08)
        .encode(x=alt.X("a:Q", scale=scale), y=alt.Y("b_lo:Q", scale=scale), y2="b_hi:Q")
    )


def parity_chart(summary: pl.DataFrame) -> alt.LayerChart | alt.Chart:
    """Simulated against published throughput for every cell with a published value, log-log,
    the simulated means with their 90% prediction interval, the published with their sd, and
    the y = x line and the mean absolute percentage error in the title."""
    s = _series(THROUGHPUT_SUMMARY.conform(summary)).filter(pl.col("published_gbps").is_not_null())
    if s.height == 0:
        return _empty("Simulated against published throughput")
    mape, cells = throughput_mape(s)
    folios = _folio_order(s)
    data = s.select(
        "series",
        "folio_size",
        "published_gbps",
        "mean_gbps",
        (pl.col("rel_error") * 100).alias("error_pct"),
        # the 90% prediction interval of the simulated mean where costed, else +- 1 sd
        pl.col("lo_gbps")
        .fill_null(pl.col("mean_gbps") - pl.col("sd_gbps").fill_null(0))
        .clip(lower_bound=1e-3)
        .alias("y_lo"),
        pl.col("hi_gbps")
        .fill_null(pl.col("mean_gbps") + pl.col("sd_gbps").fill_null(0))
        .alias("y_hi"),
        (pl.col("published_gbps") - pl.col("published_sd_gbps").fill_null(0))
        .clip(lower_bound=1e-3)
        .alias("x_lo"),
        (pl.col("published_gbps") + pl.col("published_sd_gbps").fill_null(0)).alias("x_hi"),
    )
    lo = 0.8 * float(min(data["x_lo"].min(), data["y_lo"].min()))
    hi = 1.2 * float(max(data["x_hi"].max(), data["y_hi"].max()))
    scale, x, y, diag = _parity_axes(lo, hi, "mean_gbps")
    colour = alt.Color("folio_size:O", sort=folios, title="folio size")
    base = alt.Chart(data)
    ybars = base.mark_rule(opacity=0.6).encode(
        x=x, y=alt.Y("y_lo:Q", scale=scale), y2="y_hi:Q", color=colour
    )
    xbars = base.mark_rule(opacity=0.6).encode(
        y=y, x=alt.X("x_lo:Q", scale=scale), x2="x_hi:Q", color=colour
    )
    points = base.mark_point(filled=True, size=55).encode(
        x=x,
        y=y,
        color=colour,
        shape=alt.Shape(
            "series:N", title="row", sort=data["series"].unique(maintain_order=True).to_list()
        ),
        tooltip=[
            alt.Tooltip("series:N", title="row"),
            alt.Tooltip("folio_size:N", title="folio size"),
            alt.Tooltip("published_gbps:Q", title="published GB/s", format=".2f"),
            alt.Tooltip("mean_gbps:Q", title="simulated GB/s", format=".2f"),
            alt.Tooltip("error_pct:Q", title="error (%)", format="+.1f"),
        ],
    )
    band = _tolerance_band(lo, hi, scale)
    outside = data.filter(
        (pl.col("mean_gbps") - pl.col("published_gbps")).abs()
        > pl.max_horizontal(
            2 * (pl.col("x_hi") - pl.col("published_gbps")),
            PARITY_TOLERANCE * pl.col("published_gbps"),
        )
    ).with_columns(
        pl.format(
            "{} {} ({}%)",
            pl.col("series"),
            pl.col("folio_size"),
            pl.col("error_pct").round(0).cast(pl.Int64),
        )
        .str.replace(r"\((\d)", "(+$1")
        .alias("label")
    )
    layers = [band, diag, ybars, xbars, points]
    if outside.height:
        layers.append(
            alt.Chart(outside)
            .mark_text(align="left", dx=7, dy=-7, fontSize=10, color=MISFIT_COLOUR)
            .encode(x=x, y=y, text="label:N")
        )
    title = f"Simulated against published throughput: MAPE {mape:.1f}% over {cells} cells"
    sub = (
        f"dashed: y = x; shaded: ±{PARITY_TOLERANCE:.0%} (the tolerance, with 2 published sd); "
        f"bars: simulated 90% interval, published ± sd; labelled: {outside.height} cells outside"
    )
    return alt.layer(*layers).properties(
        width=380, height=380, title=alt.Title(title, subtitle=sub)
    )


# Tolerances of the compaction reproduction (tests/compaction_tolerance.py, issue 12): a
# simulated bar outside them against its published one is a misfit, labelled in red.
COMPACTION_TOLERANCE_PCT = {"wall_ms": 10.0, "pages_migrated": 5.0}
FIT_COLOUR = "#333333"
CPU_STATES = ("user", "sys", "irq", "idle")
CPU_COLOURS = {"user": "#54a24b", "sys": "#e45756", "irq": "#f2a541", "idle": "#bab0ac"}
# stage 2 of the calibration fits the compaction costs on this cell only
# (migsim.calibrate.compaction.FREE on the published baseline row's wall time)
FITTED_CELL = ("baseline", "wall_ms")

_COMPACTION_PANELS = (
    ("wall_ms", "wall time (ms)", 1.0, ",.0f"),
    ("pages_migrated", "pages migrated (millions)", 1e-6, ".3f"),
    ("hog_iterations", "CPU-hog iterations (billions)", 1e-9, ".2f"),
)


def compaction_chart(summary: pl.DataFrame) -> alt.HConcatChart | alt.Chart:
    """Compaction modes side by side with the published ones: wall time (ms, as the tables),
    pages migrated, the CPU-hog's iterations (busy modes) and the CPU split (user / sys /
    irq + softirq / idle, %, each bar 100%). Above each simulated bar its error against the
    published one, red beyond the reproduction's tolerance; the fitted cell is labelled
    'fitted'; every axis leaves room above its largest bar."""
    s = COMPACTION_SUMMARY.conform(summary)
    if s.height == 0:
        return _empty("Direct compaction")
    modes = s.select("mode", "mode_order").unique().sort(["mode_order", "mode"])["mode"].to_list()
    rows = []
    for r in s.iter_rows(named=True):
        if r["mean"] is not None:
            rows.append((r["mode"], r["metric"], "simulated", r["mean"], r["sd"], r["rel_error"]))
        if r["published"] is not None:
            rows.append((r["mode"], r["metric"], "published", r["published"], None, None))
    long = pl.DataFrame(
        rows,
        schema={
            "mode": pl.String,
            "metric": pl.String,
            "source": pl.String,
            "value": pl.Float64,
            "sd": pl.Float64,
            "rel_error": pl.Float64,
        },
        orient="row",
    )
    sources = [x for x in ("simulated", "published") if x in long["source"].to_list()]
    src_colour = alt.Color(
        "source:N",
        title="source",
        scale=alt.Scale(domain=sources, range=[SOURCE_COLOURS[k] for k in sources]),
    )
    x = alt.X("mode:N", sort=modes, title="mode", axis=alt.Axis(labelAngle=-30))
    offset = alt.XOffset("source:N", sort=sources)
    panels = []
    for metric, title, factor, fmt in _COMPACTION_PANELS:
        d = long.filter(pl.col("metric") == metric).with_columns(
            (pl.col("value") * factor).alias("v"),
            ((pl.col("value") - pl.col("sd").fill_null(0)) * factor).alias("lo"),
            ((pl.col("value") + pl.col("sd").fill_null(0)) * factor).alias("hi"),
        )
        if d.height == 0:
            continue
        tol = COMPACTION_TOLERANCE_PCT.get(metric)
        top = float(d["hi"].max())
        d = d.with_columns(
            pl.when(pl.col("rel_error").is_not_null())
            .then(pl.format("{}%", (pl.col("rel_error") * 100).round(1)))
            .otherwise(None)
            .str.replace(r"^(\d)", "+$1")
            .alias("error"),
            (pl.lit(tol is not None) & ((pl.col("rel_error").abs() * 100) > (tol or 0.0))).alias(
                "misfit"
            ),
            ((pl.col("mode") == FITTED_CELL[0]) & pl.lit(metric == FITTED_CELL[1])).alias("fitted"),
        )
        tip = [
            alt.Tooltip("mode:N"),
            alt.Tooltip("source:N"),
            alt.Tooltip("v:Q", title=title, format=fmt),
            alt.Tooltip("error:N", title="error vs published"),
        ]
        y = alt.Y("v:Q", title=title, scale=alt.Scale(domain=[0, top * 1.18], nice=False))
        base = alt.Chart(d)
        bars = base.mark_bar().encode(
            x=x,
            xOffset=offset,
            y=y,
            color=src_colour if not panels else src_colour.legend(None),
            tooltip=tip,
        )
        layers = [bars]
        if d.filter(pl.col("source") == "simulated")["sd"].drop_nulls().len():
            layers.append(
                base.transform_filter(alt.datum.source == "simulated")
                .mark_rule()
                .encode(x=x, xOffset=offset, y="lo:Q", y2="hi:Q")
            )
        labelled = d.filter(pl.col("error").is_not_null()).with_columns(
            pl.when(pl.col("fitted"))
            .then(pl.lit("fitted"))
            .otherwise(pl.col("error"))
            .alias("error")
        )
        if labelled.height:
            layers.append(
                alt.Chart(labelled)
                .mark_text(dy=-4, baseline="bottom", fontSize=10)
                .encode(
                    x=x,
                    xOffset=offset,
                    y=alt.Y("hi:Q"),
                    text="error:N",
                    color=alt.condition(
                        "datum.misfit", alt.value(MISFIT_COLOUR), alt.value(FIT_COLOUR)
                    ),
                )
            )
        panels.append(alt.layer(*layers).properties(width=170, height=220, title=title))
    cpu = _cpu_split(long, modes, sources)
    if cpu is not None:
        panels.append(cpu)
    sub = "bars: simulated (blue, ± sd where several runs)"
    if "published" in sources:
        sub += " and published (grey); above a bar: its error, red beyond the tolerance"
    return (
        alt.hconcat(*panels)
        .resolve_scale(color="independent")
        .properties(
            title=alt.Title(
                "Direct compaction: simulated modes beside the published ones", subtitle=sub
            )
        )
    )


def _cpu_split(long: pl.DataFrame, modes: list[str], sources: list[str]) -> alt.Chart | None:
    """The CPU split panel: user, sys, irq + softirq (the share none of the other three
    take, as /proc/stat's irq and softirq columns) and idle, each bar 100%."""
    wide = (
        long.filter(pl.col("metric").is_in(["user_pct", "sys_pct", "idle_pct"]))
        .pivot(on="metric", index=["mode", "source"], values="value")
        .drop_nulls()
    )
    if wide.height == 0:
        return None
    rest = (100.0 - pl.col("user_pct") - pl.col("sys_pct") - pl.col("idle_pct")).clip(
        lower_bound=0.0
    )
    cpu = (
        wide.with_columns(rest.alias("irq_pct"))
        .unpivot(index=["mode", "source"], on=[f"{k}_pct" for k in CPU_STATES], value_name="value")
        .with_columns(
            pl.col("variable").str.replace("_pct", "").alias("state"),
            pl.format("{} · {}", pl.col("mode"), pl.col("source")).alias("bar"),
        )
        .with_columns(
            pl.col("state")
            .replace_strict({k: i for i, k in enumerate(CPU_STATES)}, return_dtype=pl.Int32)
            .alias("state_order")
        )
    )
    cpu = cpu.filter(pl.col("value") > 0)  # no legend entry without a visible mark
    present = [k for k in CPU_STATES if k in cpu["state"].to_list()]
    bar_order = [f"{m} · {src}" for m in modes for src in sources]
    names = {"user": "user", "sys": "sys", "irq": "irq + softirq", "idle": "idle"}
    cpu = cpu.with_columns(pl.col("state").replace_strict(names).alias("state"))
    return (
        alt.Chart(cpu)
        .mark_bar()
        .encode(
            y=alt.Y("bar:N", sort=bar_order, title="mode · source"),
            x=alt.X(
                "value:Q",
                title="CPU time (%)",
                stack="zero",
                scale=alt.Scale(domain=[0, 100], nice=False, clamp=True),
            ),
            color=alt.Color(
                "state:N",
                title="CPU state",
                scale=alt.Scale(
                    domain=[names[k] for k in present], range=[CPU_COLOURS[k] for k in present]
                ),
            ),
            order=alt.Order("state_order:Q"),
            tooltip=[
                alt.Tooltip("mode:N"),
                alt.Tooltip("source:N"),
                alt.Tooltip("state:N", title="CPU state"),
                alt.Tooltip("value:Q", title="CPU time (%)", format=".2f"),
            ],
        )
        .properties(width=220, height=220, title="CPU split: user / sys / irq + softirq / idle (%)")
    )


def series_chart(rows: pl.DataFrame) -> alt.LayerChart | alt.Chart:
    """Every published throughput number of the series (migsim.studies.series.series_rows) against
    its simulation, log-log: the simulated mean with its 90% prediction interval, colour by
    table, filled where the cell was fitted and hollow where it is a prediction."""
    if rows.height == 0:
        return _empty("Every published number of the series")
    data = rows.with_columns(
        pl.when(pl.col("fitted"))
        .then(pl.lit("fitted"))
        .otherwise(pl.lit("predicted"))
        .alias("use"),
        pl.col("channels_or_threads").cast(pl.String).fill_null("").alias("k"),
    )
    lo = 0.8 * float(min(data["lo"].min(), data["published_gbps"].min()))
    hi = 1.2 * float(max(data["hi"].max(), data["published_gbps"].max()))
    scale, x, y, diag = _parity_axes(lo, hi, "simulated_gbps")
    colour = alt.Color("table:N", title="table")
    base = alt.Chart(data)
    bars = base.mark_rule(opacity=0.5).encode(
        x=x, y=alt.Y("lo:Q", scale=scale), y2="hi:Q", color=colour
    )
    tooltip = [alt.Tooltip(f"{c}:N") for c in ("rfc", "table", "mode", "k", "folio_size", "use")]
    tooltip += [alt.Tooltip("folios:Q"), alt.Tooltip("published_gbps:Q", format=".2f")]
    tooltip += [alt.Tooltip(f"{c}:Q", format=".2f") for c in ("simulated_gbps", "lo", "hi")]
    tooltip += [alt.Tooltip("error_pct:Q", format="+.1f", title="error %")]
    points = base.mark_point(size=45).encode(
        x=x,
        y=y,
        color=colour,
        # the fill repeats the colour (fitted) or leaves the mark hollow: no second legend
        fill=alt.condition(
            alt.datum.use == "fitted", colour.legend(None), alt.value("transparent")
        ),
        shape=alt.Shape("use:N", title="cell"),
        tooltip=tooltip,
    )
    worst = (
        data.filter(pl.col("error_pct").abs() > 100 * PARITY_TOLERANCE)
        .sort(pl.col("error_pct").abs(), descending=True)
        .head(SERIES_LABELS)
        .with_columns(
            pl.format(
                "{} {} {} {} ({}%)",
                pl.col("rfc"),
                pl.col("mode"),
                pl.col("k"),
                pl.col("folio_size"),
                pl.col("error_pct").round(0).cast(pl.Int64),
            )
            .str.replace(r"\((\d)", "(+$1")
            .str.replace("  ", " ")
            .alias("label")
        )
    )
    # labels to the right of their points, moved apart where the points crowd
    worst = worst.with_columns(
        pl.Series("label_y", _spread_labels(worst["simulated_gbps"].to_list(), lo, hi, 440))
    )
    layers = [_tolerance_band(lo, hi, scale), diag, bars, points]
    if worst.height:
        layers.append(
            alt.Chart(worst)
            .mark_text(align="left", dx=9, fontSize=10, color=MISFIT_COLOUR)
            .encode(x=x, y=alt.Y("label_y:Q", scale=scale), text="label:N")
        )
    n_in = int(data["inside"].sum())
    n_out = data.filter(pl.col("error_pct").abs() > 100 * PARITY_TOLERANCE).height
    title = alt.Title(
        f"Every published number of the series: {data.height} cells, "
        f"{n_in} inside the simulated 90% interval",
        subtitle=(
            f"shaded: ±{PARITY_TOLERANCE:.0%} of the published value; {n_out} cells outside it, "
            f"the {worst.height} worst labelled (version, mode, channels or threads, error)"
        ),
    )
    return alt.layer(*layers).properties(title=title, width=440, height=440)


BUILDERS: dict[str, Callable[[pl.DataFrame], alt.TopLevelMixin]] = {
    "throughput": throughput_chart,
    "speedup": speedup_heatmap,
    "parity": parity_chart,
    "compaction": compaction_chart,
}


def _bundle_key() -> str:
    """The first line of a bundle file: the versions the bundle was built for."""
    import vl_convert as vlc
    from altair.utils._importers import vl_version_for_vl_convert

    return f"// vega-embed bundle: vl-convert {vlc.__version__}, vega-lite {vl_version_for_vl_convert()}\n"


def write_javascript_bundle(path: str | os.PathLike) -> None:
    """Build vega-embed with Vega and Vega-Lite as one script (what an offline HTML figure
    inlines; vl-convert takes seconds to build it, once per process) and write it to `path`,
    headed by the versions it is for. The pipeline builds it once for all its figures."""
    import vl_convert as vlc
    from altair.utils._importers import vl_version_for_vl_convert

    script = vlc.javascript_bundle(vl_version=vl_version_for_vl_convert())
    atomic_write_text(path, _bundle_key() + script)


class _InlineWithBundle:
    """Altair's inline HTML template with a prebuilt bundle (the template argument of
    Chart.save takes any object with a jinja-style render())."""

    def __init__(self, script: str):
        self.script = script

    def render(self, **kwargs) -> str:
        from altair.utils.html import TEMPLATES

        return TEMPLATES["inline"].render(vegaembed_script=self.script, **kwargs)


def _bundle_template(path: str | os.PathLike) -> _InlineWithBundle | None:
    """The template of a bundle file built for the running versions (None if it is not)."""
    text = Path(path).read_text()
    key = _bundle_key()
    return _InlineWithBundle(text[len(key) :]) if text.startswith(key) else None


def save_chart(
    chart: alt.TopLevelMixin,
    stem: str | os.PathLike,
    *,
    png_scale: float = 2.0,
    bundle: str | os.PathLike | None = None,
) -> None:
    """Write `stem`.html (Vega, Vega-Lite and vega-embed inlined: opens offline), `stem`.svg and
    `stem`.png, each through a temporary file renamed into place. `bundle`: a file written by
    write_javascript_bundle() to inline instead of building the script again (the same HTML;
    ignored when it was built for other versions)."""
    stem = Path(stem)
    buf = io.StringIO()
    template = None if bundle is None else _bundle_template(bundle)
    if template is None:
        chart.save(buf, format="html", inline=True, embed_options=EMBED_OPTIONS)
    else:
        chart.save(buf, format="html", template=template, embed_options=EMBED_OPTIONS)
    atomic_write_text(stem.with_suffix(".html"), buf.getvalue())
    buf = io.StringIO()
    chart.save(buf, format="svg")
    atomic_write_text(stem.with_suffix(".svg"), buf.getvalue())
    raw = io.BytesIO()
    chart.save(raw, format="png", scale_factor=png_scale)
    atomic_write_bytes(stem.with_suffix(".png"), raw.getvalue())


__all__ = [
    "BUILDERS",
    "COMPACTION_METRICS",
    "compaction_chart",
    "parity_chart",
    "save_chart",
    "series_chart",
    "write_javascript_bundle",
    "speedup_heatmap",
    "throughput_chart",
]


# ---------------------------------------------------------------------------------------------
# Shared by the what-if studies' figures
# ---------------------------------------------------------------------------------------------


def series_colour(series: list[str], title: str) -> alt.Color:
    """Colour of field ``series``: the baseline in black, the other series in the palette, in
    the given order."""
    others = [s for s in series if s != "baseline"]
    domain = (["baseline"] if "baseline" in series else []) + others
    rng = ([BASELINE_COLOUR] if "baseline" in series else []) + [
        PALETTE[i % len(PALETTE)] for i in range(len(others))
    ]
    return alt.Color("series:N", scale=alt.Scale(domain=domain, range=rng), title=title)


def series_order(df: pl.DataFrame) -> list[str]:
    """The values of ``series`` ordered by channel count (the baseline, null channels, first)."""
    keys = df.select("series", pl.col("channels").fill_null(0)).unique().sort("channels")
    return list(dict.fromkeys(keys["series"].to_list()))
