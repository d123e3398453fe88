"""What-if 3: hybrid offload threshold T.

Offload a batch only if it holds at least T bytes (dcbm with a ``should_batch``-style
threshold); the T that minimises compaction wall time, idle and busy, and the kernel CPU time
it frees.

The whole study (``STUDY``, see ``migsim.studies``): ``CONFIG``, ``SCHEMA``, ``study_hybrid``, its
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
    I64,
    S,
    Schema,
    Table,
    count_noun,
    count_text,
    number_text,
)
from migsim.output.style import BASELINE_COLOUR
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
    as_sizes_or_zero,
    section_study,
)
from migsim.units import format_size

NAME = "hybrid"
KEY = f"whatif.{NAME}"
TITLE = "What-if 3: hybrid offload threshold T"
CAPTION = (
    "Compaction that offloads a batch to DMA only when it holds at least T bytes: wall time "
    "and kernel CPU time freed for each threshold T."
)
CONFIG: dict[str, Any] = {
    "description": "3: offload a batch to DMA only if it holds at least T bytes",
    "type": "object",
    "additionalProperties": False,
    "required": ["enabled", "thresholds", "channels", "loads"],
    "properties": {
        "enabled": {"type": "boolean"},
        "thresholds": {
            "description": "thresholds T (0 or a size); T = 0 (offload every batch) is always run",
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {
                "oneOf": [
                    {"type": "integer", "minimum": 0},
                    {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?[KMGTkmgt]?$"},
                ]
            },
        },
        "channels": {
            "description": "DMA channel counts (a best T is sought for each)",
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


def study_hybrid(
    platform: Platform,
    *,
    thresholds: Sequence[int] = (0, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20),
    channels: Sequence[int] = (1,),
    loads: Sequence[str] = LOADS,
    setup: CompactionSetup | None = None,
) -> pl.DataFrame:
    """Compaction with DMA offload of batches of at least T bytes (smaller: CPU copy), for
    each load and DMA channel count.

    T = 0 (offload every batch) is always included. Columns: load, channels, min_batch_bytes
    (T, bytes), threshold (T as 0, 64K, ...), the run metrics, sys_ms (kernel CPU time, ms),
    baseline_wall_ms, baseline_sys_ms, baseline_hog_iterations, all_dma_wall_ms (T = 0),
    vs_baseline_pct (wall, %, positive = slower), cpu_freed_ms (baseline_sys_ms - sys_ms:
    kernel CPU time freed for other work), cpu_freed_pct (of baseline_sys_ms),
    hog_vs_baseline_pct, best (1 on the smallest T with the lowest wall time per load and
    channel count).
    """
    import polars as pl

    ts = sorted({int(t) for t in thresholds} | {0})
    for t in ts:
        if t < 0:
            raise ValueError(f"thresholds: every T must be >= 0 bytes, got {t}")
    _check_ints("channels", channels, 1, platform.dma.max_channels_count)
    _check_choices("loads", loads, LOADS)
    setup = setup or CompactionSetup()
    rows = []
    for load in loads:
        b = _metrics(setup.run(platform, copy="baseline", load=load))
        for ch in sorted(set(channels)):
            for t in ts:
                m = _metrics(
                    setup.run(platform, copy="dma", load=load, channels=ch, min_batch_bytes=t)
                )
                rows.append(
                    {
                        "load": load,
                        "channels": ch,
                        "min_batch_bytes": t,
                        "threshold": format_size(t) if t else "0",
                        **m,
                        "baseline_wall_ms": b["wall_ms"],
                        "baseline_sys_ms": b["sys_ms"],
                        "baseline_hog_iterations": b["hog_iterations"],
                    }
                )
    df = _frame(
        rows,
        {
            "load": pl.String,
            "channels": pl.Int32,
            "min_batch_bytes": pl.Int64,
            "threshold": pl.String,
            "baseline_wall_ms": pl.Float64,
            "baseline_sys_ms": pl.Float64,
            "baseline_hog_iterations": pl.Float64,
        },
    )
    key = ["load", "channels"]
    all_dma = df.filter(pl.col("min_batch_bytes") == 0).select(
        *key, pl.col("wall_ms").alias("all_dma_wall_ms")
    )
    df = df.join(all_dma, on=key, how="left").with_columns(
        _pct_change(pl.col("wall_ms"), pl.col("baseline_wall_ms")).alias("vs_baseline_pct"),
        (pl.col("baseline_sys_ms") - pl.col("sys_ms")).alias("cpu_freed_ms"),
        ((1.0 - pl.col("sys_ms") / pl.col("baseline_sys_ms")) * 100.0).alias("cpu_freed_pct"),
        _pct_change(pl.col("hog_iterations"), pl.col("baseline_hog_iterations")).alias(
            "hog_vs_baseline_pct"
        ),
    )
    best = (
        df.sort([*key, "wall_ms", "min_batch_bytes"])
        .group_by(key, maintain_order=True)
        .first()
        .select(*key, pl.col("min_batch_bytes").alias("_best"))
    )
    df = (
        df.join(best, on=key, how="left")
        .with_columns((pl.col("min_batch_bytes") == pl.col("_best")).cast(pl.Int32).alias("best"))
        .drop("_best")
    )
    return df.sort([*key, "min_batch_bytes"])


def findings_hybrid(df: pl.DataFrame) -> str:
    """The study's answer as a paragraph; every number is a (rounded) value of `df`."""
    import polars as pl

    out = []
    for load in [x for x in LOADS if x in df["load"].to_list()]:
        for ch in sorted(df.filter(pl.col("load") == load)["channels"].unique().to_list()):
            cells = df.filter((pl.col("load") == load) & (pl.col("channels") == ch))
            b = cells.filter(pl.col("best") == 1).row(0, named=True)
            s = (
                f"On a{'n' if load == 'idle' else ''} {load} machine with {count_noun(ch, 'DMA channel')}, "
                f"the threshold that minimises compaction wall time is T = {b['threshold']}: "
                f"{b['wall_ms']:.1f} ms, against {b['all_dma_wall_ms']:.1f} ms offloading "
                f"every batch and {b['baseline_wall_ms']:.1f} ms for the CPU copy"
            )
            if b["dma_copies"] == 0:
                s += "; no batch is offloaded at that threshold: the CPU copy is the best policy."
            else:
                s += (
                    f"; {b['dma_copies']} folios go to the DMA engine and the kernel spends "
                    f"{abs(b['cpu_freed_ms']):.1f} ms ({abs(b['cpu_freed_pct']):.1f}%) "
                    f"{'less' if b['cpu_freed_ms'] > 0 else 'more'} CPU time than with the "
                    f"CPU copy."
                )
                if b["hog_vs_baseline_pct"] is not None:
                    s += (
                        f" The competing task completes "
                        f"{_pct_word(b['hog_vs_baseline_pct'], 'more', 'fewer')} iterations."
                    )
            most = cells.sort(["cpu_freed_ms", "min_batch_bytes"], descending=[True, False])
            m = most.row(0, named=True)
            if m["min_batch_bytes"] != b["min_batch_bytes"]:
                s += (
                    f" Most CPU time, {m['cpu_freed_ms']:.1f} ms, is freed at T = "
                    f"{m['threshold']}, for a wall time of {m['wall_ms']:.1f} ms"
                )
                if m["hog_vs_baseline_pct"] is not None:
                    s += (
                        f" and {_pct_word(m['hog_vs_baseline_pct'], 'more', 'fewer')} "
                        f"iterations of the competing task"
                    )
                s += "."
            out.append(s)
    return " ".join(out)


SCHEMA = Schema(
    name="whatif_hybrid",
    doc="What-if 3: compaction offloading only batches of at least T bytes to DMA.",
    columns=(
        _c("load", S, "", "idle or busy"),
        _c("channels", I32, "channels", "DMA channels"),
        _c("min_batch_bytes", I64, "B", "threshold T: smaller batches are copied by the CPU"),
        _c("threshold", S, "", "T as a size label"),
        *_RUN,
        _c("baseline_wall_ms", F64, "ms", "wall time with the CPU copy (no offload)"),
        _c("baseline_sys_ms", F64, "ms", "kernel CPU time with the CPU copy"),
        _c("baseline_hog_iterations", F64, "iterations", "hog iterations with the CPU copy"),
        _c("all_dma_wall_ms", F64, "ms", "wall time offloading every batch (T = 0)"),
        _c("vs_baseline_pct", F64, "%", "wall_ms / baseline_wall_ms - 1 (positive: slower)"),
        _c("cpu_freed_ms", F64, "ms", "baseline_sys_ms - sys_ms: kernel CPU time freed"),
        _c("cpu_freed_pct", F64, "%", "cpu_freed_ms / baseline_sys_ms"),
        _c("hog_vs_baseline_pct", F64, "%", "hog iterations against baseline (busy only)"),
        _c("best", I32, "", "1 on the smallest T with the lowest wall time (per load, channels)"),
    ),
    sort_by=("load", "channels", "min_batch_bytes"),
    nulls_allowed=frozenset(_RUN_NULLS | {"baseline_hog_iterations", "hog_vs_baseline_pct"}),
)


def hybrid_table(df: pl.DataFrame) -> list[Table]:
    """One row per load and threshold T."""
    df = SCHEMA.conform(df)
    header = [
        "load, DMA channels, T",
        "wall (ms)",
        "vs baseline",
        "DMA copies",
        "sys %",
        "idle %",
        "CPU freed (ms)",
        "CPU freed %",
        "hog vs baseline",
    ]
    rows = []
    for r in df.iter_rows(named=True):
        mark = " (best)" if r["best"] else ""
        hog = r["hog_vs_baseline_pct"]
        rows.append(
            [
                f"{r['load']}, {r['channels']} ch, T = {r['threshold']}{mark}",
                number_text(r["wall_ms"]),
                number_text(r["vs_baseline_pct"], signed=True) + "%",
                count_text(r["dma_copies"]),
                number_text(r["sys_pct"], 2),
                number_text(r["idle_pct"], 2),
                number_text(r["cpu_freed_ms"]),
                number_text(r["cpu_freed_pct"], signed=True) + "%",
                "–" if hog is None else number_text(hog, 2, signed=True) + "%",
            ]
        )
    notes = [
        "T: batches smaller than T bytes are copied by the CPU, the others offloaded; "
        "T = 0 offloads every batch. CPU freed: kernel CPU time saved against the CPU copy."
    ]
    return [Table(TITLE, header, rows, notes)]


def hybrid_chart(df: pl.DataFrame) -> alt.TopLevelMixin:
    """Wall time and kernel CPU time freed against the threshold T, per load, one line per DMA
    channel count; the best T marked, the CPU copy dashed."""
    import altair as alt
    import polars as pl

    from migsim.output.figures import _empty, series_colour, series_order

    df = SCHEMA.conform(df)
    if df.height == 0:
        return _empty(TITLE)
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
    colour = series_colour(series_order(df), "DMA")
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
            TITLE,
            subtitle="diamond: best T (lowest wall time); dashed: CPU copy (no offload)",
        ),
    )


STUDY = section_study(
    name=NAME,
    title=TITLE,
    config_schema=CONFIG,
    schema=SCHEMA,
    study=study_hybrid,
    tables=hybrid_table,
    figure=hybrid_chart,
    findings=findings_hybrid,
    caption=CAPTION,
    convert={"thresholds": as_sizes_or_zero},
)
