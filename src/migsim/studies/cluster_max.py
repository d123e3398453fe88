"""What-if 1: compaction batch size (COMPACT_CLUSTER_MAX).

COMPACT_CLUSTER_MAX x copy back-end x idle/busy machine: the smallest cluster
size at which DMA compaction is no slower than the CPU copy (or its absence).

The whole study (``STUDY``, see ``migsim.studies``): ``CONFIG``, ``SCHEMA``, ``study_cluster_max``, its
table, figure and findings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import altair as alt
    import polars as pl

from migsim.cost.platform import Platform
from migsim.output.schema import (
    F64,
    I32,
    S,
    Schema,
    Table,
    copy_label,
    count_noun,
    count_text,
    number_text,
)
from migsim.output.style import WHATIF_H as H
from migsim.output.style import WHATIF_W as W
from migsim.studies.common import (
    _RUN,
    _RUN_NULLS,
    LOADS,
    CompactionSetup,
    _c,
    _check_choices,
    _check_ints,
    _frame,
    _metrics,
    _pct_change,
    _pct_word,
    section_study,
)

NAME = "cluster_max"
KEY = f"whatif.{NAME}"
TITLE = "What-if 1: compaction batch size (COMPACT_CLUSTER_MAX)"
CAPTION = (
    "Direct compaction for each COMPACT_CLUSTER_MAX, with the CPU copy and with DMA, on an "
    "idle and on a busy machine: wall time, CPU split and the competing task's iterations."
)
CONFIG: dict[str, Any] = {
    "description": "1: COMPACT_CLUSTER_MAX x {baseline, dma} x {idle, busy}",
    "type": "object",
    "additionalProperties": False,
    "required": ["enabled", "cluster_max", "channels", "loads"],
    "properties": {
        "enabled": {"type": "boolean"},
        "cluster_max": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "integer", "minimum": 1, "maximum": 512},
        },
        "channels": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "integer", "minimum": 1, "maximum": 256},
        },
        "loads": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"enum": ["idle", "busy"]},
        },
    },
}


def study_cluster_max(
    platform: Platform,
    *,
    cluster_max: Sequence[int] = (32, 64, 128, 256, 512),
    channels: Sequence[int] = (1,),
    loads: Sequence[str] = LOADS,
    setup: CompactionSetup | None = None,
) -> pl.DataFrame:
    """Compaction wall time, CPU split and hog iterations for every COMPACT_CLUSTER_MAX, copy
    back-end (baseline; DMA with each channel count) and load.

    Columns: load, copy, channels (null for baseline), cluster_max, the run metrics, sys_ms
    (kernel CPU time, ms), us_per_page (wall us per migrated page), baseline_wall_ms,
    vs_baseline_pct (wall time against baseline at the same cluster size and load, %,
    positive = slower), hog_vs_baseline_pct (busy: competing-task iterations against
    baseline, %), break_even (1 on the smallest cluster size at which DMA is no slower than
    baseline, per load and channel count; 0 elsewhere).
    """
    import polars as pl

    _check_ints("cluster_max", cluster_max, 1, 512)
    _check_ints("channels", channels, 1, platform.dma.max_channels_count)
    _check_choices("loads", loads, LOADS)
    setup = setup or CompactionSetup()
    rows = []
    for load in loads:
        for cm in sorted(set(cluster_max)):
            rows.append(
                {
                    "load": load,
                    "copy": "baseline",
                    "channels": None,
                    "cluster_max": cm,
                    **_metrics(setup.run(platform, copy="baseline", load=load, cluster_max=cm)),
                }
            )
            for ch in sorted(set(channels)):
                row = setup.run(platform, copy="dma", load=load, channels=ch, cluster_max=cm)
                rows.append(
                    {
                        "load": load,
                        "copy": "dma",
                        "channels": ch,
                        "cluster_max": cm,
                        **_metrics(row),
                    }
                )
    df = _frame(
        rows, {"load": pl.String, "copy": pl.String, "channels": pl.Int32, "cluster_max": pl.Int32}
    )
    base = df.filter(pl.col("copy") == "baseline").select(
        "load",
        "cluster_max",
        pl.col("wall_ms").alias("baseline_wall_ms"),
        pl.col("hog_iterations").alias("_base_hog"),
    )
    df = df.join(base, on=["load", "cluster_max"], how="left").with_columns(
        _pct_change(pl.col("wall_ms"), pl.col("baseline_wall_ms")).alias("vs_baseline_pct"),
        _pct_change(pl.col("hog_iterations"), pl.col("_base_hog")).alias("hog_vs_baseline_pct"),
    )
    no_slower = (pl.col("copy") == "dma") & (pl.col("wall_ms") <= pl.col("baseline_wall_ms"))
    first = (
        df.filter(no_slower)
        .group_by("load", "channels")
        .agg(pl.col("cluster_max").min().alias("_first"))
    )
    df = (
        df.join(first, on=["load", "channels"], how="left", nulls_equal=True)
        .with_columns(
            (no_slower & (pl.col("cluster_max") == pl.col("_first")))
            .fill_null(False)
            .cast(pl.Int32)
            .alias("break_even")
        )
        .drop("_first", "_base_hog")
    )
    return df.sort(["load", "copy", "channels", "cluster_max"], nulls_last=False)


def _from_to(what: str, a: int, b: int) -> str:
    """`changes the <what> from a to b`, or `leaves the <what> at a` when they are equal."""
    return f"leaves the {what} at {a}" if a == b else f"changes the {what} from {a} to {b}"


def findings_cluster_max(df: pl.DataFrame) -> str:
    """The study's answer as a paragraph; every number is a (rounded) value of `df`."""
    import polars as pl

    out = []
    sizes = sorted(df["cluster_max"].unique().to_list())
    lo, hi = sizes[0], sizes[-1]
    dma = df.filter(pl.col("copy") == "dma")
    base = df.filter(pl.col("copy") == "baseline")
    for load in [x for x in LOADS if x in df["load"].to_list()]:
        for ch in sorted(dma.filter(pl.col("load") == load)["channels"].unique().to_list()):
            cells = dma.filter((pl.col("load") == load) & (pl.col("channels") == ch)).sort(
                "cluster_max"
            )
            r0, r1 = cells.row(0, named=True), cells.row(-1, named=True)
            s = (
                f"On a{'n' if load == 'idle' else ''} {load} machine, DMA compaction with "
                f"{count_noun(ch, 'channel')} is {_pct_word(r0['vs_baseline_pct'], 'slower', 'faster')} "
                f"than the CPU copy at COMPACT_CLUSTER_MAX = {lo} ({r0['wall_ms']:.1f} ms "
                f"against {r0['baseline_wall_ms']:.1f} ms)"
            )
            be = cells.filter(pl.col("break_even") == 1)
            if be.height:
                b = be.row(0, named=True)
                if b["cluster_max"] == lo:
                    s += f", so it is no slower already at the smallest size, {lo}."
                else:
                    s += (
                        f"; the smallest COMPACT_CLUSTER_MAX at which it is no slower is "
                        f"{b['cluster_max']} ({b['wall_ms']:.1f} ms against "
                        f"{b['baseline_wall_ms']:.1f} ms)."
                    )
            else:
                s += (
                    f"; it stays slower at every COMPACT_CLUSTER_MAX up to {hi} "
                    f"({_pct_word(r1['vs_baseline_pct'], 'slower', 'faster')} at {hi}): "
                    f"no break-even in the range."
                )
            if load == "busy" and r0["hog_vs_baseline_pct"] is not None:
                s += (
                    f" The competing task completes "
                    f"{_pct_word(r0['hog_vs_baseline_pct'], 'more', 'fewer')} iterations "
                    f"than with the CPU copy at {lo} and "
                    f"{_pct_word(r1['hog_vs_baseline_pct'], 'more', 'fewer')} at {hi}."
                )
            elif load == "idle":
                s += (
                    f" The migrating CPU is idle {r0['idle_pct']:.1f}% of the time at {lo} "
                    f"and {r1['idle_pct']:.1f}% at {hi}."
                )
            out.append(s)
    ref_load = "idle" if "idle" in base["load"].to_list() else "busy"
    b = base.filter(pl.col("load") == ref_load).sort("cluster_max")
    if b.height:
        b0, b1 = b.row(0, named=True), b.row(-1, named=True)
        fast = b.sort(["wall_ms", "cluster_max"]).row(0, named=True)
        slow = b.sort(["wall_ms", "cluster_max"], descending=[True, False]).row(0, named=True)
        after = (b0["pages_after_capture"], b1["pages_after_capture"])
        late = (
            "none of them after the allocation's block was already free"
            if after == (0, 0)
            else f"of which {after[0]} and {after[1]} after the allocation's block was "
            "already free, captured only in the drain"
        )
        out.append(
            f"With the CPU copy ({ref_load}), raising COMPACT_CLUSTER_MAX from {lo} to {hi} "
            f"{_from_to('migrate_pages() calls', b0['migrate_calls'], b1['migrate_calls'])} and "
            f"{_from_to('pages migrated', b0['pages_migrated'], b1['pages_migrated'])} ({late}); "
            f"its wall time is lowest at {fast['cluster_max']} ({fast['wall_ms']:.1f} ms) and "
            f"highest at {slow['cluster_max']} ({slow['wall_ms']:.1f} ms)."
        )
    return " ".join(out)


SCHEMA = Schema(
    name="whatif_cluster_max",
    doc="What-if 1: direct compaction for each COMPACT_CLUSTER_MAX, copy back-end and load.",
    columns=(
        _c("load", S, "", "idle or busy (a CPU hog shares the compacting CPU)"),
        _c("copy", S, "", "baseline (CPU folio_copy) or dma (dcbm)"),
        _c("channels", I32, "channels", "DMA channels (null for baseline)"),
        _c("cluster_max", I32, "pages", "COMPACT_CLUSTER_MAX"),
        *_RUN,
        _c("baseline_wall_ms", F64, "ms", "baseline wall time at the same cluster size and load"),
        _c("vs_baseline_pct", F64, "%", "wall_ms / baseline_wall_ms - 1 (positive: slower)"),
        _c("hog_vs_baseline_pct", F64, "%", "hog iterations against baseline (busy only)"),
        _c("break_even", I32, "", "1 on the smallest cluster size where DMA is no slower"),
    ),
    sort_by=("load", "copy", "channels", "cluster_max"),
    nulls_allowed=frozenset(_RUN_NULLS | {"channels", "hog_vs_baseline_pct"}),
)


def cluster_max_table(df: pl.DataFrame) -> list[Table]:
    """One row per load, copy back-end and cluster size."""
    df = SCHEMA.conform(df)
    header = [
        "load, copy, COMPACT_CLUSTER_MAX",
        "wall (ms)",
        "vs baseline",
        "user %",
        "sys %",
        "idle %",
        "hog iterations",
        "migrate_pages calls",
        "pages migrated",
    ]
    rows = []
    for r in df.iter_rows(named=True):
        mark = " (break-even)" if r["break_even"] else ""
        rows.append(
            [
                f"{r['load']}, {copy_label(r['copy'], r['channels'])}, {r['cluster_max']}{mark}",
                number_text(r["wall_ms"]),
                number_text(r["vs_baseline_pct"], signed=True) + "%",
                number_text(r["user_pct"], 2),
                number_text(r["sys_pct"], 2),
                number_text(r["idle_pct"], 2),
                count_text(r["hog_iterations"]),
                count_text(r["migrate_calls"]),
                count_text(r["pages_migrated"]),
            ]
        )
    notes = ["vs baseline: wall time against the CPU copy at the same cluster size and load."]
    return [Table(TITLE, header, rows, notes)]


def _series_col(copy_col: str = "copy") -> pl.Expr:
    """`baseline` or `DMA <n> ch`."""
    import polars as pl

    return (
        pl.when(pl.col(copy_col) == "baseline")
        .then(pl.lit("baseline"))
        .otherwise(pl.lit("DMA ") + pl.col("channels").cast(pl.String) + pl.lit(" ch"))
        .alias("series")
    )


def _log2_x(field: str, title: str, values: list[int]) -> alt.X:
    import altair as alt

    return alt.X(
        f"{field}:Q",
        scale=alt.Scale(type="log", base=2),
        axis=alt.Axis(values=values, format="d", labelAngle=0),
        title=title,
    )


def cluster_max_chart(df: pl.DataFrame) -> alt.TopLevelMixin:
    """Wall time and sys % against COMPACT_CLUSTER_MAX, per load; the competing task's
    iterations on the busy machine."""
    import altair as alt
    import polars as pl

    from migsim.output.figures import _empty, series_colour, series_order

    df = SCHEMA.conform(df)
    if df.height == 0:
        return _empty(TITLE)
    df = df.with_columns(_series_col())
    colour = series_colour(series_order(df), "copy")
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
    return alt.vconcat(*rows, title=alt.Title(TITLE)).resolve_scale(color="shared")


STUDY = section_study(
    name=NAME,
    title=TITLE,
    config_schema=CONFIG,
    schema=SCHEMA,
    study=study_cluster_max,
    tables=cluster_max_table,
    figure=cluster_max_chart,
    findings=findings_cluster_max,
    caption=CAPTION,
)
