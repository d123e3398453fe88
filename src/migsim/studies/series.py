"""The series study: every published throughput number of the batch-copy series (all
reference tables, every version; ``migsim.calibrate.series``) beside its simulation with the
90% interval, fitted or predicted, the error and whether the published value lies inside
(results/series/published.*, ``migsim reproduce all``): its rows, its Markdown table, its
figure and the page job of rule ``series_page`` (Polars and Altair imported where used)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from migsim.calibrate.series import REFERENCE_DIR, read_series, simulate_cell
from migsim.cost.platform import Platform
from migsim.units import format_size

if TYPE_CHECKING:
    import altair as alt
    import polars as pl

SERIES_LABELS = 8  # the series figure labels its worst cells outside the tolerance, at most


def series_rows(
    platform: Platform, reference_dir: Path = REFERENCE_DIR, trials: int = 5, seed: int = 1
) -> list[dict]:
    """Every published throughput cell of every version's table, simulated with that
    version's code: one dict per cell with the 90% interval, the published value, whether
    the cell was fitted (calibrate FREE on the v4 table, MT_FREE on the v2 mt tables) or is
    a prediction, the error and whether the published value lies inside the interval."""
    from migsim.calibrate.intervals import result_interval
    from migsim.calibrate.throughput import mt_fit_cells

    cells = read_series(reference_dir)
    fitted = set(mt_fit_cells(cells)) | {c for c in cells if c.table == "move_pages_throughput"}
    rows = []
    for c in cells:
        r = simulate_cell(platform, c, trials=trials, seed=seed)
        iv = result_interval(platform, r)
        rows.append(
            {
                "rfc": c.rfc,
                "table": c.table,
                "mode": c.mode,
                "channels_or_threads": c.channels_or_threads,
                "folio_size": format_size(c.folio_bytes),
                "folios": c.folios,
                "placement": c.placement if c.mode == "mt" else None,
                "simulated_gbps": r.mean_gbps,
                "lo": iv.lo,
                "hi": iv.hi,
                "published_gbps": c.gbps,
                "published_sd_gbps": c.sd_gbps,
                "fitted": c in fitted,
                "error_pct": 100.0 * (r.mean_gbps / c.gbps - 1.0),
                "inside": bool(iv.lo <= c.gbps <= iv.hi),
            }
        )
    return rows


SERIES_COLUMNS = (
    "rfc", "table", "mode", "channels_or_threads", "folio_size", "folios", "placement",
    "simulated_gbps", "lo", "hi", "published_gbps", "published_sd_gbps", "fitted",
    "error_pct", "inside",
)  # fmt: skip


def series_markdown(rows: list[dict]) -> str:
    """The page of every published number as a Markdown table, with the summary per class."""
    head = "| version | table | mode | ch/thr | folio | folios | simulated | 90% interval | "
    head += "published | error | fitted | inside |\n|" + "---|" * 12 + "\n"
    lines = []
    for r in rows:
        k = "" if r["channels_or_threads"] is None else r["channels_or_threads"]
        mode = r["mode"] + (f" ({r['placement']})" if r["placement"] else "")
        lines.append(
            f"| {r['rfc']} | {r['table']} | {mode} | {k} | {r['folio_size']} | {r['folios']} | "
            f"{r['simulated_gbps']:.2f} | {r['lo']:.2f} .. {r['hi']:.2f} | "
            f"{r['published_gbps']:.2f} ± {r['published_sd_gbps']:.2f} | {r['error_pct']:+.1f}% | "
            f"{'fitted' if r['fitted'] else 'predicted'} | {'yes' if r['inside'] else 'no'} |"
        )
    tail = []
    for fitted in (True, False):
        sel = [r for r in rows if r["fitted"] is fitted]
        if sel:
            mape = sum(abs(r["error_pct"]) for r in sel) / len(sel)
            inside = 100.0 * sum(r["inside"] for r in sel) / len(sel)
            what = "fitted" if fitted else "predicted"
            tail.append(f"- {what}: {len(sel)} cells, MAPE {mape:.2f}%, {inside:.0f}% inside")
    return head + "\n".join(lines) + "\n\n" + "\n".join(tail) + "\n"


def series_chart(rows: pl.DataFrame) -> alt.LayerChart | alt.Chart:
    """Every published throughput number of the series (migsim.studies.series.series_rows) against
    its simulation, log-log: the simulated mean with its 90% prediction interval, colour by
    table, filled where the cell was fitted and hollow where it is a prediction."""
    import altair as alt
    import polars as pl

    from migsim.output.figures import (
        MISFIT_COLOUR,
        PARITY_TOLERANCE,
        _empty,
        _parity_axes,
        _spread_labels,
        _tolerance_band,
    )

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


def reference_files(basedir: str | os.PathLike) -> list[str]:
    """The reference CSVs the series page reads (config/reference beside the workflow)."""
    from migsim.calibrate.series import TABLES

    ref = Path(basedir) / "config" / "reference"
    return [str(ref / name) for name, _ in TABLES.values()]


def series_page(
    platform_path: str,
    reference_dir: str,
    out_csv: str,
    out_md: str,
    out_fig: str,
    out_parquet: str | None = None,
    bundle: str | None = None,
) -> None:
    """Every published throughput number of the series beside its simulation: a CSV and a
    Parquet file (sorted, the same rows), a Markdown table and a figure (HTML, SVG, PNG at
    `out_fig` without suffix). `bundle`: the prebuilt script the HTML figure inlines
    (figures.write_javascript_bundle; without it the figure builds it, seconds of CPU)."""
    import polars as pl

    from migsim.atomic import atomic_write_text
    from migsim.cost.platform import load_platform
    from migsim.output.figures import save_chart

    rows = series_rows(load_platform(platform_path), Path(reference_dir))
    df = pl.DataFrame(rows).select(SERIES_COLUMNS)
    keys = ["rfc", "table", "mode", "placement", "channels_or_threads", "folio_size", "folios"]
    table = df.sort(keys, nulls_last=True)
    atomic_write_text(out_csv, table.write_csv(float_precision=4))
    if out_parquet:
        import io

        from migsim.atomic import atomic_write_bytes

        buf = io.BytesIO()
        table.write_parquet(buf)
        atomic_write_bytes(out_parquet, buf.getvalue())
    atomic_write_text(out_md, "# Every published number of the series\n\n" + series_markdown(rows))
    save_chart(series_chart(df), out_fig, bundle=bundle)
