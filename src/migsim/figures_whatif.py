"""Altair figures of the what-if studies: pure builders, summary DataFrame -> chart, one per
study (``BUILDERS``). Saved with ``migsim.output.figures.save_chart`` (offline HTML, SVG, PNG).
Every axis title carries its unit; sizes are labelled 4K..1G.
"""

from __future__ import annotations

from collections.abc import Callable

import altair as alt
import polars as pl

from migsim.output.figures import BASELINE_COLOUR, PALETTE, _empty
from migsim.tables_whatif import CLUSTER_MAX, ENGINE_CLASS, FRAGMENTATION, HYBRID, LATENCY, TITLES
from migsim.units import format_size

W, H = 260, 200


def _series_col(copy_col: str = "copy") -> pl.Expr:
    """`baseline` or `DMA <n> ch`."""
    return (
        pl.when(pl.col(copy_col) == "baseline")
        .then(pl.lit("baseline"))
        .otherwise(pl.lit("DMA ") + pl.col("channels").cast(pl.String) + pl.lit(" ch"))
        .alias("series")
    )


def _colour(series: list[str], title: str) -> alt.Color:
    """Baseline in black, the other series in the palette, in the given order."""
    others = [s for s in series if s != "baseline"]
    domain = (["baseline"] if "baseline" in series else []) + others
    rng = ([BASELINE_COLOUR] if "baseline" in series else []) + [
        PALETTE[i % len(PALETTE)] for i in range(len(others))
    ]
    return alt.Color("series:N", scale=alt.Scale(domain=domain, range=rng), title=title)


def _series_order(df: pl.DataFrame) -> list[str]:
    keys = df.select("series", pl.col("channels").fill_null(0)).unique().sort("channels")
    return list(dict.fromkeys(keys["series"].to_list()))


def _log2_x(field: str, title: str, values: list[int]) -> alt.X:
    return alt.X(
        f"{field}:Q",
        scale=alt.Scale(type="log", base=2),
        axis=alt.Axis(values=values, format="d", labelAngle=0),
        title=title,
    )


def cluster_max_chart(df: pl.DataFrame) -> alt.TopLevelMixin:
    """Wall time and sys % against COMPACT_CLUSTER_MAX, per load; the competing task's
    iterations on the busy machine."""
    df = CLUSTER_MAX.conform(df)
    if df.height == 0:
        return _empty(TITLES["cluster_max"])
    df = df.with_columns(_series_col())
    colour = _colour(_series_order(df), "copy")
    sizes = sorted(df["cluster_max"].unique().to_list())
    x = _log2_x("cluster_max", "COMPACT_CLUSTER_MAX (pages, log scale)", sizes)
    tip = [
        "load:N",
        "series:N",
        "cluster_max:Q",
        alt.Tooltip("wall_ms:Q", format=",.1f"),
        alt.Tooltip("vs_baseline_pct:Q", format="+.1f", title="vs baseline (%)"),
        alt.Tooltip("sys_pct:Q", format=".1f"),
        alt.Tooltip("idle_pct:Q", format=".1f"),
    ]

    def panel(y: str, title: str, data: pl.DataFrame, zero: bool = True) -> alt.Chart:
        return (
            alt.Chart(data)
            .mark_line(point=True)
            .encode(
                x=x,
                y=alt.Y(f"{y}:Q", title=title, scale=alt.Scale(zero=zero)),
                color=colour,
                tooltip=tip,
            )
            .properties(width=W, height=H)
        )

    rows = []
    for load in [x for x in ("idle", "busy") if x in df["load"].to_list()]:
        d = df.filter(pl.col("load") == load)
        charts = [
            panel("wall_ms", f"wall time, {load} (ms)", d, zero=False),
            panel("sys_pct", f"sys, {load} (% of CPU)", d),
        ]
        if load == "busy" and d["hog_iterations"].null_count() < d.height:
            charts.append(panel("hog_iterations", "hog iterations, busy", d, zero=False))
        else:
            charts.append(panel("idle_pct", f"idle, {load} (% of CPU)", d))
        rows.append(alt.hconcat(*charts))
    return alt.vconcat(*rows, title=alt.Title(TITLES["cluster_max"])).resolve_scale(color="shared")


def engine_class_chart(df: pl.DataFrame) -> alt.TopLevelMixin:
    """Throughput against channel count per folio size, one line per engine class; compaction
    wall time against channel count per load, with the CPU copy as a dashed rule."""
    df = ENGINE_CLASS.conform(df)
    if df.height == 0:
        return _empty(TITLES["engine_class"])
    engines = (
        df.select("engine", "latency_scale")
        .unique()
        .sort("latency_scale", descending=True)["engine"]
        .to_list()
    )
    colour = alt.Color(
        "engine:N",
        scale=alt.Scale(domain=engines, range=list(PALETTE[: len(engines)])),
        title="DMA engine",
    )
    parts = []
    tp = df.filter(pl.col("part") == "throughput")
    if tp.height:
        chans = sorted(tp["channels"].unique().to_list())
        sizes = [format_size(b) for b in sorted(tp["folio_bytes"].unique().to_list())]
        parts.append(
            alt.Chart(tp)
            .mark_line(point=True)
            .encode(
                x=alt.X(
                    "channels:O", sort=chans, title="DMA channels", axis=alt.Axis(labelAngle=0)
                ),
                y=alt.Y("throughput_gbps:Q", title="throughput (GB/s)"),
                color=colour,
                tooltip=[
                    "engine:N",
                    "folio_size:N",
                    "channels:Q",
                    alt.Tooltip("throughput_gbps:Q", format=".2f", title="GB/s"),
                    alt.Tooltip("gain:Q", format=".3f", title="gain over calibrated (x)"),
                ],
            )
            .properties(width=170, height=160)
            .facet(
                facet=alt.Facet("folio_size:N", sort=sizes, title="move_pages() of 1 GiB"),
                columns=len(sizes),
            )
            .resolve_scale(y="independent")
        )
    cp = df.filter(pl.col("part") == "compaction")
    if cp.height:
        chans = sorted(cp["channels"].unique().to_list())
        charts = []
        for load in [x for x in ("idle", "busy") if x in cp["load"].to_list()]:
            d = cp.filter(pl.col("load") == load)
            line = (
                alt.Chart(d)
                .mark_line(point=True)
                .encode(
                    x=alt.X(
                        "channels:O", sort=chans, title="DMA channels", axis=alt.Axis(labelAngle=0)
                    ),
                    y=alt.Y(
                        "wall_ms:Q",
                        title=f"compaction wall time, {load} (ms)",
                        scale=alt.Scale(zero=False),
                    ),
                    color=colour,
                    tooltip=[
                        "engine:N",
                        "channels:Q",
                        alt.Tooltip("wall_ms:Q", format=",.1f"),
                        alt.Tooltip("speedup:Q", format=".3f", title="vs CPU copy (x)"),
                    ],
                )
            )
            rule = (
                alt.Chart(d.select(pl.col("baseline_wall_ms").first()))
                .mark_rule(color=BASELINE_COLOUR, strokeDash=[4, 3])
                .encode(
                    y="baseline_wall_ms:Q",
                    tooltip=[
                        alt.Tooltip("baseline_wall_ms:Q", title="CPU copy (ms)", format=",.1f")
                    ],
                )
            )
            charts.append(alt.layer(line, rule).properties(width=W + 60, height=H))
        parts.append(alt.hconcat(*charts))
    return alt.vconcat(
        *parts,
        title=alt.Title(
            TITLES["engine_class"],
            subtitle=f"scaled DMA parameters: {df['scaled_params'][0]}; dashed: CPU copy",
        ),
    )


def hybrid_chart(df: pl.DataFrame) -> alt.TopLevelMixin:
    """Wall time and kernel CPU time freed against the threshold T, per load, one line per DMA
    channel count; the best T marked, the CPU copy dashed."""
    df = HYBRID.conform(df)
    if df.height == 0:
        return _empty(TITLES["hybrid"])
    df = df.with_columns(
        (pl.lit("DMA ") + pl.col("channels").cast(pl.String) + pl.lit(" ch")).alias("series")
    )
    order = df.select("min_batch_bytes", "threshold").unique().sort("min_batch_bytes")
    x = alt.X(
        "threshold:O",
        sort=order["threshold"].to_list(),
        title="offload threshold T (batches below it: CPU copy)",
        axis=alt.Axis(labelAngle=0),
    )
    colour = _colour(_series_order(df), "DMA")
    tip = [
        "load:N",
        "series:N",
        "threshold:N",
        alt.Tooltip("wall_ms:Q", format=",.1f"),
        alt.Tooltip("cpu_freed_ms:Q", format=",.1f"),
        alt.Tooltip("dma_copies:Q", format=","),
        alt.Tooltip("hog_vs_baseline_pct:Q", format="+.2f", title="hog vs CPU copy (%)"),
    ]
    charts = []
    for load in [x for x in ("idle", "busy") if x in df["load"].to_list()]:
        d = df.filter(pl.col("load") == load)
        base = alt.Chart(d).encode(x=x, color=colour, tooltip=tip)
        wall = base.mark_line(point=True).encode(
            y=alt.Y("wall_ms:Q", title=f"wall time, {load} (ms)", scale=alt.Scale(zero=False))
        )
        best = (
            base.transform_filter(alt.datum.best == 1)
            .mark_point(shape="diamond", size=160, filled=False, strokeWidth=2)
            .encode(y="wall_ms:Q")
        )
        rule = (
            alt.Chart(d.select(pl.col("baseline_wall_ms").first()))
            .mark_rule(color=BASELINE_COLOUR, strokeDash=[4, 3])
            .encode(y="baseline_wall_ms:Q")
        )
        freed = base.mark_line(point=True).encode(
            y=alt.Y("cpu_freed_ms:Q", title=f"kernel CPU time freed, {load} (ms)")
        )
        charts.append(
            alt.vconcat(
                alt.layer(wall, best, rule).properties(width=W + 40, height=H),
                freed.properties(width=W + 40, height=H * 0.7),
            )
        )
    return alt.hconcat(
        *charts,
        title=alt.Title(
            TITLES["hybrid"],
            subtitle="diamond: best T (lowest wall time); dashed: CPU copy (no offload)",
        ),
    )


def fragmentation_chart(df: pl.DataFrame) -> alt.TopLevelMixin:
    """Pages migrated per allocation, allocation success and wall time against the free
    ratio, one line per pattern (and copy back-end)."""
    df = FRAGMENTATION.conform(df)
    if df.height == 0:
        return _empty(TITLES["fragmentation"])
    df = df.with_columns(
        pl.when(pl.col("copy") == "baseline")
        .then(pl.col("pattern"))
        .otherwise(pl.col("pattern") + pl.lit(", DMA"))
        .alias("series")
    )
    x = alt.X("free_ratio:Q", title="free ratio (fraction of each 2 MB region freed)")
    colour = alt.Color("series:N", title="pattern")
    tip = [
        "pattern:N",
        "copy:N",
        "free_ratio:Q",
        alt.Tooltip("pages_per_alloc:Q", format=",.1f"),
        alt.Tooltip("success_pct:Q", format=".1f"),
        alt.Tooltip("wall_ms:Q", format=",.1f"),
    ]

    def panel(y: str, title: str) -> alt.Chart:
        return (
            alt.Chart(df)
            .mark_line(point=alt.OverlayMarkDef(size=60, filled=False))
            .encode(
                x=x,
                y=alt.Y(f"{y}:Q", title=title),
                color=colour,
                # patterns often coincide: dashes keep every line visible
                strokeDash=alt.StrokeDash("series:N", title="pattern"),
                tooltip=tip,
            )
            .properties(width=W, height=H)
        )

    return alt.hconcat(
        panel("pages_per_alloc", "pages migrated per successful allocation"),
        panel("success_pct", "allocations that succeed (%)"),
        panel("wall_ms", "wall time (ms)"),
        title=alt.Title(TITLES["fragmentation"]),
    )


def latency_chart(df: pl.DataFrame) -> alt.TopLevelMixin:
    """First-folio time against total time, one line per mode through the batch limits
    (log-log), one panel per folio size; the knee (smallest limit within knee_pct of the best
    throughput) marked."""
    df = LATENCY.conform(df)
    if df.height == 0:
        return _empty(TITLES["latency"])
    df = df.with_columns(
        pl.when(pl.col("mode") == "baseline")
        .then(pl.lit("baseline"))
        .otherwise(pl.lit("DMA ") + pl.col("channels").cast(pl.String) + pl.lit(" ch"))
        .alias("series"),
        pl.col("batch_bytes").map_elements(format_size, return_dtype=pl.String).alias("batch"),
    ).with_columns((pl.lit("batch ") + pl.col("batch")).alias("batch_label"))
    colour = _colour(_series_order(df), "copy")
    sizes = [format_size(b) for b in sorted(df["folio_bytes"].unique().to_list())]
    tip = [
        "series:N",
        "folio_size:N",
        alt.Tooltip("batch:N", title="batch limit"),
        alt.Tooltip("total_ms:Q", format=",.2f"),
        alt.Tooltip("first_folio_us:Q", format=",.1f"),
        alt.Tooltip("throughput_gbps:Q", format=".2f"),
    ]
    base = alt.Chart().encode(
        x=alt.X("total_ms:Q", scale=alt.Scale(type="log"), title="total time of 1 GiB (ms, log)"),
        y=alt.Y(
            "first_folio_us:Q",
            scale=alt.Scale(type="log"),
            title="time to first usable folio (us, log)",
        ),
        color=colour,
        tooltip=tip,
    )
    line = base.mark_line(point=True).encode(order="batch_limit_pages:Q")
    knee = base.transform_filter(alt.datum.knee == 1).mark_point(
        shape="diamond", size=150, filled=False, strokeWidth=2
    )
    labels = (
        base.transform_filter(
            (alt.datum.batch_limit_pages == int(df["batch_limit_pages"].min()))
            | (alt.datum.batch_limit_pages == int(df["batch_limit_pages"].max()))
        )
        .mark_text(align="left", dx=6, dy=-6, fontSize=10)
        .encode(text=alt.Text("batch_label:N"))
    )
    knee_pct = df["knee_pct"][0]
    return (
        alt.layer(line, knee, labels, data=df)
        .properties(width=W + 60, height=H + 60)
        .facet(
            column=alt.Column("folio_size:N", sort=sizes, title="folio size"),
            title=alt.Title(
                TITLES["latency"],
                subtitle=f"each point a batch limit (labelled: smallest, largest); diamond: "
                f"smallest limit reaching {knee_pct:g}% of the best throughput",
            ),
        )
        .resolve_scale(x="independent", y="independent")
    )


BUILDERS: dict[str, Callable[[pl.DataFrame], alt.TopLevelMixin]] = {
    "cluster_max": cluster_max_chart,
    "engine_class": engine_class_chart,
    "hybrid": hybrid_chart,
    "fragmentation": fragmentation_chart,
    "latency": latency_chart,
}
