"""Parquet files and the tables every study shares: writing (atomic, sorted, with metadata)
and reading run files, the setups of the published measurements (``PUBLISHED_SETUPS``: a
summary compares a cell with its published value only for a run of that setup), and the
re-exported declarations of ``migsim.output.schema``. Each published experiment declares its
own schemas, summary and tables in its study module (``migsim.studies.throughput``,
``.compaction``, ``.kernel_formats``; the trace events' schema is the trace format's,
``migsim.formats.trace.TRACE_EVENTS``; every schema: ``migsim.studies.schemas()``).

Files are written atomically (temporary name, then ``os.replace``), sorted explicitly, with
key/value metadata: migsim version, configuration hash, seed, schema name. No timestamp goes
into the data or the metadata, so the same configuration and seed give byte-identical files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

import polars as pl

from migsim.atomic import atomic_write_text
from migsim.output.arrow import conformed_arrow, file_metadata, write_arrow
from migsim.output.schema import (  # noqa: F401  (the declarations, re-exported here)
    F64,
    I32,
    I64,
    LIST_F64,
    TABLE_CSS,
    Column,
    S,
    Schema,
    Table,
    _c,
    copy_label,
    count_noun,
    count_text,
    describe_schemas,
    markdown,
    number_text,
    read_metadata,
    table_page,
)
from migsim.units import COMPACT_CLUSTER_MAX, HPAGE_PUD_NR

# ---------------------------------------------------------------------------------------------
# Parquet I/O
# ---------------------------------------------------------------------------------------------


def write_parquet(
    df: pl.DataFrame,
    path: str | os.PathLike,
    schema: Schema,
    *,
    config_hash: str,
    seed: int,
    extra: Mapping[str, str] | None = None,
) -> None:
    """Conform `df` to `schema`, sort it and write it atomically with metadata (no timestamps)."""
    meta = file_metadata(schema, config_hash=config_hash, seed=seed, extra=extra)
    write_arrow(conformed_arrow(df, schema), path, meta)


def read_runs(paths: Sequence[str | os.PathLike], schema: Schema) -> pl.DataFrame:
    """Concatenate run files (each checked against `schema`) into one sorted DataFrame."""
    frames = []
    for p in paths:
        schema.check_file(p)
        frames.append(pl.read_parquet(p))
    if not frames:
        return pl.DataFrame(schema=schema.polars_schema())
    return schema.conform(pl.concat(frames, how="vertical"))


# ---------------------------------------------------------------------------------------------
# Published reference tables (read by the aggregation only, never by the simulator)
# ---------------------------------------------------------------------------------------------

# The setups of the published measurements: a cell is compared with a published value only
# when every run of it used this setup (a smoke run on a 2 GB node has no published value).
PUBLISHED_SETUPS: dict[str, dict[str, object]] = {
    "throughput": {
        "total_bytes": 1 << 30,  # move_pages() of 1 GiB
        "batch_limit_pages": HPAGE_PUD_NR,  # NR_MAX_BATCHED_MIGRATION raised to 1 GiB
        "fail_rate": 0.0,
    },
    "compaction": {
        "allocations": 16384,  # 32 GB of order-9 allocations on a ~250 GB node
        "cluster_max": COMPACT_CLUSTER_MAX,
        "free_ratio": 0.5,
        "pattern": "even",
        "min_batch_bytes": 0,
        "rfc": "v4",  # the published compaction table ran v4's dcbm
    },
}


def published_setup(kind: str) -> pl.Expr:
    """Per-row expression: the run used the setup of the published `kind` measurement."""
    cond = pl.lit(True)
    for col, value in PUBLISHED_SETUPS[kind].items():
        cond = cond & (pl.col(col) == value)
    return cond


# ---------------------------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Tables in the published layout
# ---------------------------------------------------------------------------------------------


def write_table(
    table: Table | Sequence[Table], md_path: str | os.PathLike, html_path: str | os.PathLike
) -> None:
    """Write a table (or several, one page) as Markdown and as a standalone offline HTML page
    (atomically); the page takes the first table's title."""
    group = [table] if isinstance(table, Table) else list(table)
    atomic_write_text(md_path, "\n".join(t.markdown() for t in group))
    atomic_write_text(html_path, table_page(group[0].title, group))


def metadata_json(path: str | os.PathLike) -> str:
    """The metadata of a Parquet file as sorted JSON (for logs)."""
    return json.dumps(read_metadata(path), sort_keys=True)
