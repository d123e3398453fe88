"""What-if 5: latency against throughput (batch limit).

A move_pages() of 1 GiB with batch limits from 512 pages to 1 GiB: total time
against the time until the first folio is usable again.

The whole study (``STUDY``, see ``migsim.studies``): ``CONFIG``, ``SCHEMA``, ``study_latency``, its
table, figure and findings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import altair as alt
    import polars as pl

from migsim.cost.platform import Platform
from migsim.output.schema import F64, I32, I64, S, Schema, Table, copy_label, count_noun
from migsim.output.style import WHATIF_H as H
from migsim.output.style import WHATIF_W as W
from migsim.studies.common import (
    _c,
    _check_ints,
    _pct_change,
    _pct_word,
    as_float,
    as_size,
    derive_seed,
    section_study,
)
from migsim.studies.throughput import run_throughput
from migsim.units import HPAGE_PUD_NR, PAGE_SIZE, format_size, parse_size

NAME = "latency"
KEY = f"whatif.{NAME}"
TITLE = "What-if 5: latency against throughput (batch limit)"
CAPTION = (
    "move_pages() with each batch limit: total time against the time until the first folio is"
    " usable again."
)
CONFIG: dict[str, Any] = {
    "description": "5: move_pages() for each batch limit: total against first-folio time",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "enabled",
        "batch_limits",
        "folio_sizes",
        "channels",
        "trials",
        "total_bytes",
        "knee_pct",
    ],
    "properties": {
        "enabled": {"type": "boolean"},
        "batch_limits": {
            "description": "NR_MAX_BATCHED_MIGRATION values (base pages), up to a batch of 1T",
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "integer", "minimum": 1, "maximum": 268435456},
        },
        "folio_sizes": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"$ref": "#/$defs/folio_size"},
        },
        "channels": {
            "description": "DMA channel counts (the baseline always runs)",
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "integer", "minimum": 1, "maximum": 256},
        },
        "trials": {"type": "integer", "minimum": 1, "maximum": 1000},
        "total_bytes": {"$ref": "#/$defs/size"},
        "knee_pct": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
    },
}


def power_of_two_limits(lo: int = 512, hi: int = HPAGE_PUD_NR) -> list[int]:
    """Batch limits lo, 2 lo, ..., hi (base pages)."""
    if lo < 1 or hi < lo:
        raise ValueError(f"batch_limits: need 1 <= lo <= hi, got {lo}..{hi}")
    out, v = [], lo
    while v <= hi:
        out.append(v)
        v *= 2
    return out


def study_latency(
    platform: Platform,
    *,
    batch_limits: Sequence[int] = tuple(power_of_two_limits()),
    folio_sizes: Sequence[str] = ("4K", "2M"),
    channels: Sequence[int] = (1, 16),
    total_bytes: int = 1 << 30,
    trials: int = 3,
    seed: int = 1,
    knee_pct: float = 95.0,
) -> pl.DataFrame:
    """move_pages() of `total_bytes` with each batch limit (NR_MAX_BATCHED_MIGRATION, base
    pages): total time against the time until the first folio is usable again.

    The baseline copies each folio inside the move loop (vanilla order); DMA copies the whole
    batch first (the RFC's order). The trial noise of a (folio size, mode) cell is the same for
    every batch limit. Columns: folio_size, folio_bytes, mode, channels (null for baseline),
    batch_limit_pages, batch_bytes, n, nr_batches, total_ms (mean), total_sd_ms,
    first_folio_us (mean), first_folio_sd_us, throughput_gbps (mean), total_vs_smallest_pct
    (total time against the smallest batch limit, %), first_folio_x (first-folio time / that at
    the smallest batch limit), knee_pct, knee (1 on the smallest batch limit whose throughput is
    at least knee_pct % of the cell's best).
    """
    import polars as pl

    _check_ints("batch_limits", batch_limits, 1, HPAGE_PUD_NR)
    _check_ints("channels", channels, 1, platform.dma.max_channels_count)
    if not 0.0 < knee_pct <= 100.0:
        raise ValueError(f"knee_pct: must be in (0, 100], got {knee_pct!r}")
    if trials < 1:
        raise ValueError(f"trials: must be >= 1, got {trials}")
    rows = []
    modes: list[tuple[str, int | None]] = [("baseline", None)] + [
        ("dma", c) for c in sorted(set(channels))
    ]
    for label in folio_sizes:
        fb = parse_size(label, name="folio_sizes")
        for mode, ch in modes:
            cell_seed = derive_seed(seed, "latency", fb, mode, ch)
            for bl in sorted(set(batch_limits)):
                r = run_throughput(
                    platform,
                    mode=mode,
                    folio_size=fb,
                    channels=ch,
                    total_bytes=total_bytes,
                    batch_limit=bl,
                    trials=trials,
                    seed=cell_seed,
                )
                walls = [t.wall_s for t in r.trials]
                firsts = [t.first_folio_s for t in r.trials]
                rows.append(
                    {
                        "folio_size": format_size(fb),
                        "folio_bytes": fb,
                        "mode": mode,
                        "channels": ch,
                        "batch_limit_pages": bl,
                        "batch_bytes": bl * PAGE_SIZE,
                        "n": trials,
                        "nr_batches": r.trials[0].nr_batches,
                        "total_ms": _mean(walls) * 1e3,
                        "total_sd_ms": _sd(walls) * 1e3,
                        "first_folio_us": _mean(firsts) * 1e6,
                        "first_folio_sd_us": _sd(firsts) * 1e6,
                        "throughput_gbps": r.mean_gbps,
                    }
                )
    df = pl.DataFrame(
        rows,
        schema={
            "folio_size": pl.String,
            "folio_bytes": pl.Int64,
            "mode": pl.String,
            "channels": pl.Int32,
            "batch_limit_pages": pl.Int64,
            "batch_bytes": pl.Int64,
            "n": pl.Int64,
            "nr_batches": pl.Int64,
            "total_ms": pl.Float64,
            "total_sd_ms": pl.Float64,
            "first_folio_us": pl.Float64,
            "first_folio_sd_us": pl.Float64,
            "throughput_gbps": pl.Float64,
        },
    )
    cell = ["folio_bytes", "mode", "channels"]
    first = pl.col("batch_limit_pages") == pl.col("batch_limit_pages").min().over(cell)
    ok = pl.col("throughput_gbps") >= pl.col("throughput_gbps").max().over(cell) * knee_pct / 100
    df = df.with_columns(
        _pct_change(pl.col("total_ms"), pl.col("total_ms").filter(first).first().over(cell)).alias(
            "total_vs_smallest_pct"
        ),
        (
            pl.col("first_folio_us") / pl.col("first_folio_us").filter(first).first().over(cell)
        ).alias("first_folio_x"),
        pl.lit(float(knee_pct)).alias("knee_pct"),
    )
    knee = pl.col("batch_limit_pages") == pl.col("batch_limit_pages").filter(ok).min().over(cell)
    df = df.with_columns(knee.cast(pl.Int32).alias("knee"))
    return df.sort(["folio_bytes", "mode", "channels", "batch_limit_pages"], nulls_last=False)


def _mean(xs: Iterable[float]) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


def _sd(xs: Iterable[float]) -> float | None:
    xs = list(xs)
    if len(xs) < 2:
        return None
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _mode_label(mode: str, channels: int | None) -> str:
    return "the CPU copy" if mode == "baseline" else f"DMA with {count_noun(channels, 'channel')}"


def findings_latency(df: pl.DataFrame) -> str:
    """The study's answer as a paragraph; every number is a (rounded) value of `df`."""
    import polars as pl

    out = []
    keys = (
        df.select("folio_bytes", "folio_size", "mode", "channels")
        .unique()
        .sort(["folio_bytes", "mode", "channels"], nulls_last=False)
    )
    for fb, fs, mode, ch in keys.iter_rows():
        cells = df.filter(
            (pl.col("folio_bytes") == fb)
            & (pl.col("mode") == mode)
            & (pl.col("channels").eq_missing(ch))
        ).sort("batch_limit_pages")
        a, z = cells.row(0, named=True), cells.row(-1, named=True)
        k = cells.filter(pl.col("knee") == 1).row(0, named=True)
        out.append(
            f"{fs} folios, {_mode_label(mode, ch)}: raising the batch limit from "
            f"{a['batch_limit_pages']} to {z['batch_limit_pages']} pages changes the total "
            f"time from {a['total_ms']:.1f} ms to {z['total_ms']:.1f} ms "
            f"({_pct_word(z['total_vs_smallest_pct'], 'more', 'less')}) and the first-folio "
            f"time from {a['first_folio_us']:.0f} us to {z['first_folio_us']:.0f} us "
            f"({z['first_folio_x']:.{2 if z['first_folio_x'] < 2 else 1}f}x); {k['knee_pct']:g}% of the best throughput is "
            f"reached at {k['batch_limit_pages']} pages ({k['throughput_gbps']:.2f} GB/s), "
            f"with the first folio back after {k['first_folio_us']:.0f} us."
        )
    return " ".join(out)


SCHEMA = Schema(
    name="whatif_latency",
    doc="What-if 5: move_pages() of 1 GiB for each batch limit: total against first-folio time.",
    columns=(
        _c("folio_size", S, "", "folio size label"),
        _c("folio_bytes", I64, "B", "folio size"),
        _c("mode", S, "", "baseline or dma"),
        _c("channels", I32, "channels", "DMA channels (null for baseline)"),
        _c("batch_limit_pages", I64, "pages", "NR_MAX_BATCHED_MIGRATION (base pages)"),
        _c("batch_bytes", I64, "B", "the batch limit in bytes"),
        _c("n", I64, "trials", "trials"),
        _c("nr_batches", I64, "batches", "migrate_pages batches"),
        _c("total_ms", F64, "ms", "mean wall time of the move"),
        _c("total_sd_ms", F64, "ms", "sample sd of the wall time (null for one trial)"),
        _c("first_folio_us", F64, "us", "mean time until the first folio is usable again"),
        _c("first_folio_sd_us", F64, "us", "sample sd of the first-folio time"),
        _c("throughput_gbps", F64, "GB/s", "mean throughput"),
        _c("total_vs_smallest_pct", F64, "%", "total_ms against the smallest batch limit"),
        _c("first_folio_x", F64, "x", "first_folio_us / that at the smallest batch limit"),
        _c("knee_pct", F64, "%", "share of the best throughput that defines the knee"),
        _c("knee", I32, "", "1 on the smallest batch limit reaching knee_pct of the best"),
    ),
    sort_by=("folio_bytes", "mode", "channels", "batch_limit_pages"),
    nulls_allowed=frozenset({"channels", "total_sd_ms", "first_folio_sd_us"}),
)


def latency_table(df: pl.DataFrame) -> list[Table]:
    """Batch limits as rows; per folio size and mode: total ms / first-folio us."""
    df = SCHEMA.conform(df)
    series = (
        df.select("folio_bytes", "folio_size", "mode", "channels")
        .unique()
        .sort(["folio_bytes", "mode", "channels"], nulls_last=False)
    )
    cell = {
        (r["folio_bytes"], r["mode"], r["channels"], r["batch_limit_pages"]): r
        for r in df.iter_rows(named=True)
    }
    header = ["batch limit (pages)"] + [
        f"{fs} {copy_label(m, ch)}" for _, fs, m, ch in series.iter_rows()
    ]
    rows = []
    for bl in sorted(df["batch_limit_pages"].unique().to_list()):
        row = [f"{bl} ({format_size(bl * 4096)})"]
        for fb, _, m, ch in series.iter_rows():
            r = cell.get((fb, m, ch, bl))
            if r is None:
                row.append("–")
            else:
                knee = " *" if r["knee"] else ""
                row.append(f"{r['total_ms']:.2f} ms / {r['first_folio_us']:,.1f} us{knee}")
        rows.append(row)
    knee = df["knee_pct"][0] if df.height else 0
    notes = [
        "Cells: total wall time of move_pages() / time until the first folio is usable again. "
        f"*: smallest batch limit reaching {knee:g}% of the best throughput of that column."
    ]
    return [Table(TITLE, header, rows, notes)]


def latency_chart(df: pl.DataFrame) -> alt.TopLevelMixin:
    """First-folio time against total time, one line per mode through the batch limits
    (log-log), one panel per folio size; the knee (smallest limit within knee_pct of the best
    throughput) marked."""
    import altair as alt
    import polars as pl

    from migsim.output.figures import _empty, series_colour, series_order

    df = SCHEMA.conform(df)
    if df.height == 0:
        return _empty(TITLE)
    df = df.with_columns(
        pl.when(pl.col("mode") == "baseline")
        .then(pl.lit("baseline"))
        .otherwise(pl.lit("DMA ") + pl.col("channels").cast(pl.String) + pl.lit(" ch"))
        .alias("series"),
        pl.col("batch_bytes").map_elements(format_size, return_dtype=pl.String).alias("batch"),
    ).with_columns((pl.lit("batch ") + pl.col("batch")).alias("batch_label"))
    colour = series_colour(series_order(df), "copy")
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
                TITLE,
                subtitle=f"each point a batch limit (labelled: smallest, largest); diamond: "
                f"smallest limit reaching {knee_pct:g}% of the best throughput",
            ),
        )
        .resolve_scale(x="independent", y="independent")
    )


STUDY = section_study(
    name=NAME,
    title=TITLE,
    config_schema=CONFIG,
    schema=SCHEMA,
    study=study_latency,
    tables=latency_table,
    figure=latency_chart,
    findings=findings_latency,
    caption=CAPTION,
    convert={"total_bytes": as_size, "knee_pct": as_float},
    setup=False,
    seed=True,
    total_bytes=True,
)
