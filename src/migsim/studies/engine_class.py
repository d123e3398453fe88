"""What-if 2: DMA engine class (low-latency engines).

The calibrated DMA engine against low-latency engines (the per-descriptor
ramp and the per-call costs scaled down) over channel counts, for the move_pages() throughput
table and for compaction.

The whole study (``STUDY``, see ``migsim.studies``): ``CONFIG``, ``SCHEMA``, ``study_engine_class``, its
table, figure and findings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import altair as alt
    import polars as pl

from migsim.cost.platform import Platform
from migsim.output.schema import F64, I32, I64, S, Schema, Table, count_noun
from migsim.output.style import BASELINE_COLOUR, PALETTE
from migsim.output.style import WHATIF_H as H
from migsim.output.style import WHATIF_W as W
from migsim.studies.common import (
    LOADS,
    CompactionSetup,
    _c,
    _check_choices,
    _check_ints,
    as_floats,
    as_size,
    as_strings,
    derive_seed,
    section_study,
)
from migsim.studies.throughput import run_throughput
from migsim.units import format_size, parse_size

NAME = "engine_class"
KEY = f"whatif.{NAME}"
TITLE = "What-if 2: DMA engine class (low-latency engines)"
CAPTION = (
    "The calibrated DMA engine against engine classes with lower start-up latency, over "
    "channel counts: move_pages() throughput and compaction wall time."
)
CONFIG: dict[str, Any] = {
    "description": "2: the calibrated DMA engine against low-latency engine classes",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "enabled",
        "latency_scales",
        "latency_params",
        "channels",
        "folio_sizes",
        "trials",
        "total_bytes",
        "compaction_channels",
        "loads",
    ],
    "properties": {
        "enabled": {"type": "boolean"},
        "latency_scales": {
            "description": "factors on the latency parameters (1 = calibrated), in (0, 1]",
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        },
        "latency_params": {
            "description": "DMA parameters scaled (rates divided "
            "by the factor, the others multiplied)",
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {
                "enum": [
                    "ramp_kb",
                    "ramp_gbps",
                    "desc_restart_us",
                    "call_setup_us",
                    "irq_wakeup_us",
                    "prep_us",
                ]
            },
        },
        "channels": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "integer", "minimum": 1, "maximum": 256},
        },
        "folio_sizes": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"$ref": "#/$defs/folio_size"},
        },
        "trials": {"type": "integer", "minimum": 1, "maximum": 1000},
        "total_bytes": {"$ref": "#/$defs/size"},
        "compaction_channels": {
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


# The DMA parameters that a "low-latency" engine class scales down (the default): the
# latency-bound rate of the head of every descriptor (a rate: divided by the scale, since the
# head moves one round trip at a time), the restart of each further descriptor from the
# completion interrupt, and the per-call costs (channel setup on the CPU, completion
# interrupt and wake-up). Streaming bandwidths, the head size and the per-folio CPU
# preparation (sg entries and IOMMU mapping) stay those of the calibrated machine.
# Note: a descriptor smaller than the head (a 64 KiB segment: the calibrated head is about
# 100 KiB) moves entirely at ramp_gbps, so scaling ramp_kb instead would not speed small
# folios up.
LATENCY_PARAMS = ("ramp_gbps", "desc_restart_us", "call_setup_us", "irq_wakeup_us")


SCALABLE_PARAMS = (
    "ramp_kb", "ramp_gbps", "desc_restart_us", "call_setup_us", "irq_wakeup_us", "prep_us",
)  # fmt: skip


FOLIO_SIZES = ("4K", "16K", "64K", "256K", "1M", "2M")


def low_latency_engine(
    platform: Platform, scale: float, params: Sequence[str] = LATENCY_PARAMS
) -> Platform:
    """`platform` with the DMA engine's latency parameters `params` scaled by `scale` (1 = the
    calibrated engine, 0.25 = a class with a quarter of the start-up cost): sizes and times
    are multiplied by `scale`, rates (``*_gbps``) divided by it."""
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"latency_scale: must be in (0, 1], got {scale!r}")
    _check_choices("latency_params", list(params), SCALABLE_PARAMS)
    d = platform.dma
    changes = {
        f"dma__{p}": getattr(d, p) / scale if p.endswith("_gbps") else getattr(d, p) * scale
        for p in params
    }
    return platform.replace(**changes)


def engine_label(scale: float) -> str:
    """`calibrated` for scale 1, else `latency x<scale>`."""
    return "calibrated" if scale == 1.0 else f"latency x{scale:g}"


def study_engine_class(
    platform: Platform,
    *,
    latency_scales: Sequence[float] = (1.0, 0.25, 0.1),
    latency_params: Sequence[str] = LATENCY_PARAMS,
    channels: Sequence[int] = (1, 2, 4, 8, 12, 16),
    folio_sizes: Sequence[str] = FOLIO_SIZES,
    trials: int = 3,
    total_bytes: int = 1 << 30,
    seed: int = 1,
    compaction_channels: Sequence[int] = (1, 2, 4, 8, 16),
    loads: Sequence[str] = LOADS,
    setup: CompactionSetup | None = None,
    compaction: bool = True,
) -> pl.DataFrame:
    """The calibrated DMA engine against low-latency classes: the DMA parameters
    `latency_params` scaled by each of `latency_scales` (see ``low_latency_engine``).

    Rows of part ``throughput``: one per engine, folio size and channel count (move_pages() of
    `total_bytes`, `trials` trials, the batch limit of the published benchmark, 1 GiB), with
    throughput_gbps (mean) and throughput_sd. Rows of part ``compaction``: one per engine,
    load and channel count, with wall_ms, CPU split and hog iterations. Both parts: speedup
    (baseline time / this time; > 1 = faster than the CPU copy) and gain (calibrated engine's
    time / this time in the same cell; > 1 = the low-latency class is faster), and
    no_slower_first (1 on the smallest channel count at which the engine is no slower than the
    baseline, per part, engine, folio size or load).
    """
    import polars as pl

    _check_ints("channels", channels, 1, platform.dma.max_channels_count)
    scales = sorted({float(s) for s in latency_scales}, reverse=True)
    if 1.0 not in scales:
        scales.insert(0, 1.0)  # the calibrated engine is the reference of every gain
    engines = {s: low_latency_engine(platform, s, latency_params) for s in scales}
    scaled = ",".join(latency_params)
    if trials < 1:
        raise ValueError(f"trials: must be >= 1, got {trials}")
    rows: list[dict] = []
    for label in folio_sizes:
        fb = parse_size(label, name="folio_sizes")
        cell_seed = derive_seed(seed, "engine_class", fb)
        base = run_throughput(
            platform,
            mode="baseline",
            folio_size=fb,
            total_bytes=total_bytes,
            trials=trials,
            seed=cell_seed,
        )
        for s in scales:
            for ch in sorted(set(channels)):
                r = run_throughput(
                    engines[s],
                    mode="dma",
                    folio_size=fb,
                    channels=ch,
                    total_bytes=total_bytes,
                    trials=trials,
                    seed=derive_seed(cell_seed, ch),
                )
                rows.append(
                    {
                        "part": "throughput",
                        "engine": engine_label(s),
                        "latency_scale": s,
                        "scaled_params": scaled,
                        "folio_size": format_size(fb),
                        "folio_bytes": fb,
                        "load": None,
                        "channels": ch,
                        "n": trials,
                        "throughput_gbps": r.mean_gbps,
                        "throughput_sd": r.sd_gbps,
                        "wall_ms": r.phases()["wall_s"] * 1e3,
                        "baseline_wall_ms": base.phases()["wall_s"] * 1e3,
                    }
                )
    if compaction:
        _check_ints("compaction_channels", compaction_channels, 1, platform.dma.max_channels_count)
        _check_choices("loads", loads, LOADS)
        setup = setup or CompactionSetup()
        for load in loads:
            b = setup.run(platform, copy="baseline", load=load)
            for s in scales:
                for ch in sorted(set(compaction_channels)):
                    row = setup.run(engines[s], copy="dma", load=load, channels=ch)
                    rows.append(
                        {
                            "part": "compaction",
                            "engine": engine_label(s),
                            "latency_scale": s,
                            "scaled_params": scaled,
                            "folio_size": None,
                            "folio_bytes": None,
                            "load": load,
                            "channels": ch,
                            "n": 1,
                            "wall_ms": row["wall_ms"],
                            "baseline_wall_ms": b["wall_ms"],
                            "sys_pct": row["sys_pct"],
                            "idle_pct": row["idle_pct"],
                            "hog_iterations": row["hog_iterations"],
                            "baseline_hog_iterations": b["hog_iterations"],
                        }
                    )
    schema = {
        "part": pl.String,
        "engine": pl.String,
        "latency_scale": pl.Float64,
        "scaled_params": pl.String,
        "folio_size": pl.String,
        "folio_bytes": pl.Int64,
        "load": pl.String,
        "channels": pl.Int32,
        "n": pl.Int64,
        "throughput_gbps": pl.Float64,
        "throughput_sd": pl.Float64,
        "wall_ms": pl.Float64,
        "baseline_wall_ms": pl.Float64,
        "sys_pct": pl.Float64,
        "idle_pct": pl.Float64,
        "hog_iterations": pl.Float64,
        "baseline_hog_iterations": pl.Float64,
    }
    df = pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema)
    cell = ["part", "folio_bytes", "load", "channels"]
    ref = df.filter(pl.col("latency_scale") == 1.0).select(
        *cell, pl.col("wall_ms").alias("_cal_wall")
    )
    df = df.join(ref, on=cell, how="left", nulls_equal=True).with_columns(
        (pl.col("baseline_wall_ms") / pl.col("wall_ms")).alias("speedup"),
        (pl.col("_cal_wall") / pl.col("wall_ms")).alias("gain"),
    )
    group = ["part", "latency_scale", "folio_bytes", "load"]
    ok = pl.col("wall_ms") <= pl.col("baseline_wall_ms")
    first = (
        df.filter(ok).group_by(group).agg(pl.col("channels").min().alias("_first"))
    )  # smallest channel count that is no slower than the CPU copy
    df = (
        df.join(first, on=group, how="left", nulls_equal=True)
        .with_columns(
            (ok & (pl.col("channels") == pl.col("_first")))
            .fill_null(False)
            .cast(pl.Int32)
            .alias("no_slower_first")
        )
        .drop("_first", "_cal_wall")
    )
    return df.sort(
        ["part", "latency_scale", "folio_bytes", "load", "channels"],
        descending=[False, True, False, False, False],
        nulls_last=False,
    )


def _params_text(joined: str) -> str:
    names = joined.split(",")
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def findings_engine_class(df: pl.DataFrame) -> str:
    """The study's answer as a paragraph; every number is a (rounded) value of `df`."""
    import polars as pl

    out = []
    tp = df.filter(pl.col("part") == "throughput")
    for s in sorted(tp["latency_scale"].unique().to_list(), reverse=True):
        if s == 1.0:
            continue
        cells = tp.filter(pl.col("latency_scale") == s)
        best = cells.sort(["gain", "folio_bytes", "channels"], descending=[True, False, False])
        b = best.row(0, named=True)
        cal = tp.filter(
            (pl.col("latency_scale") == 1.0)
            & (pl.col("folio_bytes") == b["folio_bytes"])
            & (pl.col("channels") == b["channels"])
        ).row(0, named=True)
        big = cells.filter(pl.col("folio_bytes") == cells["folio_bytes"].max()).sort(
            ["gain", "channels"], descending=[True, False]
        )
        g = big.row(0, named=True)
        out.append(
            f"In move_pages() throughput, the engine with {_params_text(b['scaled_params'])} "
            f"scaled by {s:g} gains up to {b['gain']:.2f}x over the calibrated engine ({b['folio_size']} "
            f"folios, {count_noun(b['channels'], 'channel')}: {b['throughput_gbps']:.2f} GB/s against "
            f"{cal['throughput_gbps']:.2f} GB/s), and at most {g['gain']:.2f}x for "
            f"{g['folio_size']} folios."
        )
    cp = df.filter(pl.col("part") == "compaction")
    for load in [x for x in LOADS if x in cp["load"].to_list()]:
        cells = cp.filter(pl.col("load") == load)
        ch0 = int(cells["channels"].min())
        parts = []
        for s in sorted(cells["latency_scale"].unique().to_list(), reverse=True):
            r = cells.filter((pl.col("latency_scale") == s) & (pl.col("channels") == ch0)).row(
                0, named=True
            )
            parts.append(f"{r['wall_ms']:.1f} ms with {r['engine']}")
        base_ms = cells["baseline_wall_ms"][0]
        s = (
            f"In compaction on a{'n' if load == 'idle' else ''} {load} machine with "
            f"{count_noun(ch0, 'channel')}, DMA takes {', '.join(parts)}, against {base_ms:.1f} ms for the "
            f"CPU copy."
        )
        best = cells.sort(["wall_ms", "latency_scale", "channels"], descending=[False, True, False])
        b = best.row(0, named=True)
        s += (
            f" The fastest cell is {b['engine']} with {count_noun(b['channels'], 'channel')}: "
            f"{b['wall_ms']:.1f} ms, {b['speedup']:.2f}x the CPU copy's speed."
        )
        firsts = cells.filter(pl.col("no_slower_first") == 1)
        for sc in sorted(cells["latency_scale"].unique().to_list(), reverse=True):
            f = firsts.filter(pl.col("latency_scale") == sc)
            label = engine_label(sc)
            if f.height:
                s += f" {label.capitalize()} is no slower than it from {count_noun(f['channels'][0], 'channel')}."
            else:
                s += f" {label.capitalize()} is slower at every channel count."
        out.append(s)
    return " ".join(out)


SCHEMA = Schema(
    name="whatif_engine_class",
    doc="What-if 2: the calibrated DMA engine against low-latency classes, for move_pages() "
    "throughput and for compaction.",
    columns=(
        _c("part", S, "", "throughput (move_pages of 1 GiB) or compaction"),
        _c("engine", S, "", "calibrated or 'latency x<scale>'"),
        _c("latency_scale", F64, "x", "factor on the scaled DMA parameters (1 = calibrated)"),
        _c("scaled_params", S, "", "the DMA parameters scaled (rates divided, others multiplied)"),
        _c("folio_size", S, "", "folio size label (throughput part)"),
        _c("folio_bytes", I64, "B", "folio size (throughput part)"),
        _c("load", S, "", "idle or busy (compaction part)"),
        _c("channels", I32, "channels", "DMA channels"),
        _c("n", I64, "trials", "trials (throughput) or runs (compaction)"),
        _c("throughput_gbps", F64, "GB/s", "mean throughput over trials (throughput part)"),
        _c("throughput_sd", F64, "GB/s", "sample sd of the throughput (null for one trial)"),
        _c("wall_ms", F64, "ms", "mean wall time"),
        _c("baseline_wall_ms", F64, "ms", "wall time of the CPU copy in the same cell"),
        _c("sys_pct", F64, "%", "migrating CPU in the kernel (compaction part)"),
        _c("idle_pct", F64, "%", "migrating CPU idle (compaction part)"),
        _c("hog_iterations", F64, "iterations", "competing-task iterations (busy compaction)"),
        _c("baseline_hog_iterations", F64, "iterations", "the same with the CPU copy"),
        _c("speedup", F64, "x", "baseline_wall_ms / wall_ms (> 1: faster than the CPU copy)"),
        _c("gain", F64, "x", "calibrated engine's wall time / this one's, same cell"),
        _c("no_slower_first", I32, "", "1 on the smallest channel count no slower than baseline"),
    ),
    sort_by=("part", "latency_scale", "folio_bytes", "load", "channels"),
    nulls_allowed=frozenset(
        {
            "folio_size",
            "folio_bytes",
            "load",
            "throughput_gbps",
            "throughput_sd",
            "sys_pct",
            "idle_pct",
            "hog_iterations",
            "baseline_hog_iterations",
        }
    ),
)


def engine_class_table(df: pl.DataFrame) -> list[Table]:
    """Throughput (GB/s, gain over the calibrated engine) by engine and channels x folio size;
    compaction wall time by engine and load x channel count."""
    import polars as pl

    df = SCHEMA.conform(df)
    out = []
    tp = df.filter(pl.col("part") == "throughput")
    if tp.height:
        sizes = tp.select("folio_bytes").unique().sort("folio_bytes")["folio_bytes"].to_list()
        cell = {(r["engine"], r["channels"], r["folio_bytes"]): r for r in tp.iter_rows(named=True)}
        keys = tp.select("engine", "latency_scale", "channels").unique()
        keys = keys.sort(["latency_scale", "channels"], descending=[True, False])
        rows = []
        for eng, _, ch in keys.iter_rows():
            row = [f"{eng}, {ch} ch"]
            for fb in sizes:
                r = cell.get((eng, ch, fb))
                row.append("–" if r is None else f"{r['throughput_gbps']:.2f} ({r['gain']:.2f}x)")
            rows.append(row)
        header = ["engine, channels \\ folio size"] + [format_size(b) for b in sizes]
        notes = [
            "move_pages() throughput in GB/s (gain over the calibrated engine, same cell); "
            f"scaled DMA parameters: {tp['scaled_params'][0]}."
        ]
        out.append(Table(TITLE + ": move_pages() throughput", header, rows, notes))
    cp = df.filter(pl.col("part") == "compaction")
    if cp.height:
        chans = sorted(cp["channels"].unique().to_list())
        cell = {(r["engine"], r["load"], r["channels"]): r for r in cp.iter_rows(named=True)}
        keys = cp.select("load", "engine", "latency_scale", "baseline_wall_ms").unique()
        keys = keys.sort(["load", "latency_scale"], descending=[False, True])
        rows = []
        for load, eng, _, base in keys.iter_rows():
            row = [f"{load}, {eng} (baseline {base:,.1f} ms)"]
            for ch in chans:
                r = cell.get((eng, load, ch))
                row.append("–" if r is None else f"{r['wall_ms']:,.1f} ({r['speedup']:.3f}x)")
            rows.append(row)
        header = ["load, engine \\ channels"] + [str(c) for c in chans]
        notes = ["Compaction wall time in ms (speed against the CPU copy of the same load)."]
        out.append(Table(TITLE + ": compaction", header, rows, notes))
    return out


def engine_class_chart(df: pl.DataFrame) -> alt.TopLevelMixin:
    """Throughput against channel count per folio size, one line per engine class; compaction
    wall time against channel count per load, with the CPU copy as a dashed rule."""
    import altair as alt
    import polars as pl

    from migsim.output.figures import _empty

    df = SCHEMA.conform(df)
    if df.height == 0:
        return _empty(TITLE)
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
            TITLE,
            subtitle=f"scaled DMA parameters: {df['scaled_params'][0]}; dashed: CPU copy",
        ),
    )


STUDY = section_study(
    name=NAME,
    title=TITLE,
    config_schema=CONFIG,
    schema=SCHEMA,
    study=study_engine_class,
    tables=engine_class_table,
    figure=engine_class_chart,
    findings=findings_engine_class,
    caption=CAPTION,
    convert={"folio_sizes": as_strings, "total_bytes": as_size, "latency_scales": as_floats},
    seed=True,
    total_bytes=True,
)
