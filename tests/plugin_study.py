"""A tiny study added the way a user adds one: this module, outside the migsim package, named
in the configuration (``study_modules: [plugin_study]``), with its section ``whatif.plugin_study``.

It asks one small question of the engine: move_pages() of `total_bytes` in 2M folios with the
CPU copy and with DMA on each channel count -- the time and the speed-up over the CPU copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import altair as alt
import polars as pl

from migsim.cost.platform import Platform
from migsim.output.tables import Column, Schema, Table
from migsim.studies import Study, section
from migsim.studies.throughput import run_throughput
from migsim.units import parse_size

NAME = "plugin_study"
TITLE = "Plug-in: 2M folios, CPU copy against DMA"

CONFIG: dict[str, Any] = {
    "description": "a plug-in study (tests/plugin_study.py)",
    "type": "object",
    "additionalProperties": False,
    "required": ["channels"],
    "properties": {
        "enabled": {"type": "boolean"},
        "channels": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "integer", "minimum": 1, "maximum": 256},
        },
        "total_bytes": {"$ref": "#/$defs/size"},
    },
}

SCHEMA = Schema(
    name="plugin_study",
    doc="Plug-in study: move_pages() of 2M folios, CPU copy and DMA per channel count.",
    columns=(
        Column("copy", pl.String, "", "baseline (CPU copy) or dma"),
        Column("channels", pl.Int32, "channels", "DMA channels (0 for the CPU copy)"),
        Column("total_ms", pl.Float64, "ms", "mean wall time of move_pages()"),
        Column("speedup", pl.Float64, "x", "CPU-copy time / this time"),
    ),
    sort_by=("copy", "channels"),
)


def params(config: Mapping) -> dict[str, Any]:
    sec = section(config, NAME)
    sec["total_bytes"] = parse_size(sec.get("total_bytes", "64M"), name=f"whatif.{NAME}")
    return {"kwargs": sec}


def run(platform: Platform, params: Mapping) -> pl.DataFrame:
    kw = params["kwargs"]
    cells = [("baseline", 0)] + [("dma", int(c)) for c in kw["channels"]]
    rows = []
    for copy, ch in cells:
        r = run_throughput(
            platform,
            mode=copy,
            folio_size=2 << 20,
            channels=ch or None,
            total_bytes=kw["total_bytes"],
            trials=2,
            seed=params["seed"],
        )
        rows.append({"copy": copy, "channels": ch, "total_ms": r.trials[0].wall_s * 1e3})
    df = pl.DataFrame(rows)
    base = df.filter(pl.col("copy") == "baseline")["total_ms"][0]
    return df.with_columns((base / pl.col("total_ms")).alias("speedup"))


def table(df: pl.DataFrame) -> list[Table]:
    rows = [
        [r["copy"], str(r["channels"]), f"{r['total_ms']:.2f}", f"{r['speedup']:.2f}"]
        for r in df.iter_rows(named=True)
    ]
    return [Table(TITLE, ["copy", "channels", "time (ms)", "speed-up"], rows, [])]


def chart(df: pl.DataFrame) -> alt.Chart:
    return (
        alt.Chart(df, title=TITLE)
        .mark_bar()
        .encode(x=alt.X("channels:O", title="DMA channels (0: CPU copy)"), y="speedup:Q")
    )


def findings(df: pl.DataFrame) -> str:
    best = df.sort("speedup", descending=True).row(0, named=True)
    return (
        f"The fastest copy of 2M folios is {best['copy']} with {best['channels']} channels, "
        f"{best['speedup']:.1f} times the CPU copy."
    )


STUDY = Study(
    name=NAME,
    title=TITLE,
    config_schema=CONFIG,
    schema=SCHEMA,
    params=params,
    run=run,
    tables=table,
    figure=chart,
    findings=findings,
    caption="A plug-in study from tests/plugin_study.py.",
)
