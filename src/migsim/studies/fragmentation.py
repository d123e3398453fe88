"""What-if 4: fragmentation level and pattern.

Free ratio x fragmentation pattern: pages migrated per allocation, wall time,
allocation success rate.

The whole study (``STUDY``, see ``migsim.studies``): ``CONFIG``, ``SCHEMA``, ``study_fragmentation``, its
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
    copy_label,
    count_text,
    number_text,
)
from migsim.output.style import WHATIF_H as H
from migsim.output.style import WHATIF_W as W
from migsim.studies.common import (
    _RUN,
    _RUN_NULLS,
    COPIES,
    CompactionSetup,
    _c,
    _check_choices,
    _frame,
    _metrics,
    as_floats,
    section_study,
)

NAME = "fragmentation"
KEY = f"whatif.{NAME}"
TITLE = "What-if 4: fragmentation level and pattern"
CAPTION = (
    "Direct compaction for each free ratio and fragmentation pattern: pages migrated per "
    "allocation, wall time, allocation success."
)
CONFIG: dict[str, Any] = {
    "description": "4: free ratio x fragmentation pattern",
    "type": "object",
    "additionalProperties": False,
    "required": ["enabled", "free_ratios", "patterns", "copies", "channels"],
    "properties": {
        "enabled": {"type": "boolean"},
        "free_ratios": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        },
        "patterns": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"enum": ["even", "random", "clustered"]},
        },
        "copies": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"enum": ["baseline", "dma"]},
        },
        "channels": {"type": "integer", "minimum": 1, "maximum": 256},
    },
}


def study_fragmentation(
    platform: Platform,
    *,
    free_ratios: Sequence[float] = (0.125, 0.25, 0.5, 0.75),
    patterns: Sequence[str] = ("even", "random", "clustered"),
    copies: Sequence[str] = ("baseline",),
    channels: int = 1,
    load: str = "idle",
    setup: CompactionSetup | None = None,
) -> pl.DataFrame:
    """Compaction from nodes fragmented to each free ratio with each pattern.

    Columns: pattern, free_ratio, copy, channels (null for baseline), the run metrics,
    allocations, success_pct (allocations that succeeded, %), pages_per_alloc (pages migrated
    per successful allocation; null when none succeeded), ms_per_alloc (wall time per
    requested allocation).
    """
    import polars as pl

    for r in free_ratios:
        if not 0.0 < r < 1.0:
            raise ValueError(f"free_ratios: every value must be in (0, 1), got {r!r}")
    if not free_ratios:
        raise ValueError("free_ratios: must list at least one value")
    _check_choices("copies", copies, COPIES)
    setup = setup or CompactionSetup()
    rows = []
    for pattern in patterns:
        for fr in sorted(set(free_ratios)):
            for copy in copies:
                ch = channels if copy == "dma" else None
                row = setup.run(
                    platform,
                    copy=copy,
                    load=load,
                    channels=channels,
                    free_ratio=fr,
                    pattern=pattern,
                )
                rows.append(
                    {
                        "pattern": pattern,
                        "free_ratio": fr,
                        "copy": copy,
                        "channels": ch,
                        "allocations": setup.allocations,
                        **_metrics(row),
                    }
                )
    df = _frame(
        rows,
        {
            "pattern": pl.String,
            "free_ratio": pl.Float64,
            "copy": pl.String,
            "channels": pl.Int32,
            "allocations": pl.Int64,
        },
    ).with_columns(
        (pl.col("alloc_success") / pl.col("allocations") * 100.0).alias("success_pct"),
        pl.when(pl.col("alloc_success") > 0)
        .then(pl.col("pages_migrated") / pl.col("alloc_success"))
        .otherwise(None)
        .alias("pages_per_alloc"),
        (pl.col("wall_ms") / pl.col("allocations")).alias("ms_per_alloc"),
    )
    return df.sort(["pattern", "free_ratio", "copy"])


def _range(lo: float, hi: float, fmt: str) -> str:
    """`lo` or `lo to hi` when they differ once rounded."""
    a, b = format(lo, fmt), format(hi, fmt)
    return a if a == b else f"{a} to {b}"


def findings_fragmentation(df: pl.DataFrame) -> str:
    """The study's answer as a paragraph; every number is a (rounded) value of `df` or the
    spread (max - min) of one of its columns."""
    import polars as pl

    copy = "baseline" if "baseline" in df["copy"].to_list() else df["copy"][0]
    cells = df.filter(pl.col("copy") == copy)
    patterns = cells["pattern"].unique(maintain_order=True).to_list()
    parts = []
    for fr in sorted(cells["free_ratio"].unique().to_list()):
        c = cells.filter(pl.col("free_ratio") == fr)
        ppa = c["pages_per_alloc"].drop_nulls()
        text = f"at free ratio {fr:g}, "
        if ppa.len():
            text += f"{_range(ppa.min(), ppa.max(), '.0f')} pages are migrated per allocation, "
        else:
            text += "no allocation succeeds, "
        text += (
            f"{_range(c['success_pct'].min(), c['success_pct'].max(), '.1f')}% of allocations "
            f"succeed and a run takes {_range(c['wall_ms'].min(), c['wall_ms'].max(), '.1f')} ms"
        )
        parts.append(text)
    out = [
        f"With the {copy} copy and the {', '.join(patterns)} patterns: " + "; ".join(parts) + "."
    ]
    spread = cells.group_by("free_ratio").agg(
        (pl.col("pages_per_alloc").max() - pl.col("pages_per_alloc").min()).alias("ppa"),
        ((pl.col("wall_ms").max() / pl.col("wall_ms").min() - 1) * 100).alias("wall"),
    )
    if len(patterns) > 1:
        ppa_spread, wall_spread = spread["ppa"].max() or 0.0, spread["wall"].max()
        same_pages, same_wall = round(ppa_spread) == 0, round(wall_spread, 1) == 0
        pages = (
            "migrate the same number of pages per allocation"
            if same_pages
            else f"differ by at most {ppa_spread:.0f} pages per allocation"
        )
        wall = (
            "take the same wall time to within a tenth of a percent"
            if same_wall
            else f"{'differ' if same_pages else 'by'} at most {wall_spread:.1f}% in wall time"
        )
        s = f"At the same free ratio the patterns {pages} and {wall}"
        # wording only: a spread below one page and one percent counts as no difference
        if ppa_spread < 1.0 and wall_spread < 1.0:
            s += ": the number of pages left in a pageblock, not where they sit, sets the cost."
        else:
            s += ": where the free pages sit matters as well as how many there are."
        out.append(s)
    ok = cells.filter(pl.col("pages_per_alloc").is_not_null())
    if ok.height:
        w = ok.sort(["pages_per_alloc", "pattern", "free_ratio"], descending=[True, False, False])
        r = w.row(0, named=True)
        out.append(
            f"The costliest cell is the {r['pattern']} pattern at free ratio "
            f"{r['free_ratio']:g}: {r['pages_per_alloc']:.0f} pages and "
            f"{r['wall_ms'] / r['alloc_success']:.2f} ms per successful allocation."
        )
    return " ".join(out)


SCHEMA = Schema(
    name="whatif_fragmentation",
    doc="What-if 4: compaction from nodes fragmented to each free ratio and pattern.",
    columns=(
        _c("pattern", S, "", "fragmentation pattern: even, random, clustered"),
        _c("free_ratio", F64, "fraction", "fraction of each 2 MB region freed"),
        _c("copy", S, "", "baseline or dma"),
        _c("channels", I32, "channels", "DMA channels (null for baseline)"),
        _c("allocations", I64, "allocations", "order-9 allocations requested"),
        *_RUN,
        _c("success_pct", F64, "%", "alloc_success / allocations"),
        _c("pages_per_alloc", F64, "pages", "pages migrated per successful allocation"),
        _c("ms_per_alloc", F64, "ms", "wall time per requested allocation"),
    ),
    sort_by=("pattern", "free_ratio", "copy"),
    nulls_allowed=frozenset(_RUN_NULLS | {"channels", "pages_per_alloc"}),
)


def fragmentation_table(df: pl.DataFrame) -> list[Table]:
    """One row per pattern, free ratio and copy back-end."""
    df = SCHEMA.conform(df)
    header = [
        "pattern, free ratio, copy",
        "pages / allocation",
        "success %",
        "wall (ms)",
        "ms / allocation",
        "pages migrated",
        "migrate_pages calls",
    ]
    rows = [
        [
            f"{r['pattern']}, {r['free_ratio']:g}, {copy_label(r['copy'], r['channels'])}",
            number_text(r["pages_per_alloc"]),
            number_text(r["success_pct"]),
            number_text(r["wall_ms"]),
            number_text(r["ms_per_alloc"], 3),
            count_text(r["pages_migrated"]),
            count_text(r["migrate_calls"]),
        ]
        for r in df.iter_rows(named=True)
    ]
    allocs = ", ".join(str(a) for a in sorted(df["allocations"].unique().to_list()))
    notes = [f"{allocs} order-9 allocations per run; pages per successful allocation."]
    return [Table(TITLE, header, rows, notes)]


def fragmentation_chart(df: pl.DataFrame) -> alt.TopLevelMixin:
    """Pages migrated per allocation, allocation success and wall time against the free
    ratio, one line per pattern (and copy back-end)."""
    import altair as alt
    import polars as pl

    from migsim.output.figures import _empty

    df = SCHEMA.conform(df)
    if df.height == 0:
        return _empty(TITLE)
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
        title=alt.Title(TITLE),
    )


STUDY = section_study(
    name=NAME,
    title=TITLE,
    config_schema=CONFIG,
    schema=SCHEMA,
    study=study_fragmentation,
    tables=fragmentation_table,
    figure=fragmentation_chart,
    findings=findings_fragmentation,
    caption=CAPTION,
    convert={"free_ratios": as_floats},
)
