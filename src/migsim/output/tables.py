"""Result tables: the Parquet schemas, Polars aggregation into summaries, Markdown tables.

This module is the one place that defines the column layout of every Parquet file the pipeline
writes (``SCHEMAS``): run files (one row per throughput trial or compaction run, exactly the row
contracts of ``migsim.studies``) and summaries (mean, sd, n, the published value where one
exists and the relative error). Files are written atomically (temporary name, then
``os.replace``), sorted explicitly, with key/value metadata: migsim version, configuration hash,
seed, schema name. No timestamp goes into the data or the metadata, so the same configuration
and seed give byte-identical files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence

import polars as pl

from migsim import __version__
from migsim.atomic import atomic_write_bytes, atomic_write_text
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
    markdown,
    number_text,
    read_metadata,
    table_page,
)
from migsim.units import COMPACT_CLUSTER_MAX, HPAGE_PUD_NR, format_size, parse_size

# ---------------------------------------------------------------------------------------------
# Schemas
# ---------------------------------------------------------------------------------------------

ALLOC_LATENCY_PERCENTILES = (5, 25, 50, 75, 90, 95, 99)  # migsim.kernel.vmstat.PERCENTILES
# /proc/vmstat counters of a move_pages() run (migsim.kernel.vmstat.move_pages_vmstat)
MOVE_PAGES_VMSTAT = (
    "pgmigrate_success",
    "pgmigrate_fail",
    "thp_migration_success",
    "thp_migration_fail",
    "thp_migration_split",
)

THROUGHPUT_RUNS = Schema(
    name="throughput_runs",
    doc="One row per trial of the move_pages() throughput experiment (run_throughput().rows()).",
    columns=(
        _c("experiment", S, "", "always 'throughput'"),
        _c("mode", S, "", "copy back-end: baseline (serial folio_copy), dma (dcbm), mt (threads)"),
        _c("channels", I32, "channels", "DMA channels (dma mode; null otherwise)"),
        _c("threads", I32, "threads", "copy threads (mt mode; null otherwise)"),
        _c("folio_size", S, "", "folio size label: 4K .. 2M"),
        _c("folio_bytes", I64, "B", "folio size"),
        _c("total_bytes", I64, "B", "bytes moved per trial"),
        _c("batch_limit_pages", I64, "pages", "migrate_pages batch limit (base pages)"),
        _c("fail_rate", F64, "fraction", "injected DMA descriptor failure probability"),
        _c("rfc", S, "", "version of the batch-copy series whose driver code ran: v2, v3, v4, v6"),
        _c("trial", I32, "", "trial index from 0"),
        _c("seed", I64, "", "seed of the cell's random generator"),
        _c("throughput_gbps", F64, "GB/s", "total_bytes / wall_s, 1e9 bytes per second"),
        _c(
            "lo_gbps",
            F64,
            "GB/s",
            "90% prediction interval of the cell's mean over its trials: low end",
        ),
        _c(
            "hi_gbps",
            F64,
            "GB/s",
            "90% prediction interval of the cell's mean over its trials: high end",
        ),
        _c("wall_s", F64, "s", "wall time of the move_pages() call"),
        _c(
            "call_s",
            F64,
            "s",
            "move_pages() work outside migrate_pages (syscall, lru drain, lookups)",
        ),
        _c("unmap_s", F64, "s", "unmap phase (try_to_migrate)"),
        _c("flush_s", F64, "s", "batched TLB flushes"),
        _c("copy_s", F64, "s", "copy phase"),
        _c("move_s", F64, "s", "move/remap phase (remove_migration_ptes)"),
        _c("fallback_s", F64, "s", "CPU copies of folios whose offloaded copy failed"),
        _c("sys_s", F64, "s", "migrating CPU busy in the kernel"),
        _c("idle_s", F64, "s", "migrating CPU asleep waiting for the copy"),
        _c("other_cpu_s", F64, "s", "CPU time on other CPUs (copy threads)"),
        _c(
            "irq_s", F64, "s", "CPU time of the DMA completion interrupts (on the engine's irq CPU)"
        ),
        _c("first_folio_s", F64, "s", "time until the first folio is usable again"),
        _c("nr_batches", I64, "batches", "migrate_pages batches"),
        _c("nr_folios", I64, "folios", "folios migrated"),
        _c("nr_pages", I64, "pages", "base pages migrated"),
        _c("dma_copies", I64, "folios", "folios copied by the DMA engine (dcbm folios_migrated)"),
        _c("fallbacks", I64, "folios", "offloaded copies that failed and fell back to the CPU"),
        _c("pgmigrate_success", I64, "pages", "/proc/vmstat pgmigrate_success"),
        _c("pgmigrate_fail", I64, "pages", "/proc/vmstat pgmigrate_fail"),
        _c("thp_migration_success", I64, "folios", "/proc/vmstat thp_migration_success (2M)"),
        _c("thp_migration_fail", I64, "folios", "/proc/vmstat thp_migration_fail"),
        _c("thp_migration_split", I64, "folios", "/proc/vmstat thp_migration_split"),
        _c("platform", S, "", "platform name"),
    ),
    sort_by=("mode", "channels", "threads", "folio_bytes", "trial"),
    # lo/hi: null where the rows were not made by the pipeline's throughput job (which costs
    # the interval of each cell) or where no interval exists (a host probe)
    nulls_allowed=frozenset({"channels", "threads", "lo_gbps", "hi_gbps"}),
)

COMPACTION_RUNS = Schema(
    name="compaction_runs",
    doc="One row per run of the direct-compaction experiment (run_compaction().row()).",
    columns=(
        _c("experiment", S, "", "always 'compaction'"),
        _c("mode", S, "", "baseline, dma, busy-baseline or busy-dma"),
        _c("channels", I32, "channels", "DMA channels used by dcbm"),
        _c("cluster_max", I32, "pages", "COMPACT_CLUSTER_MAX"),
        _c("node_bytes", I64, "B", "size of the NUMA node"),
        _c("allocations", I64, "allocations", "order-9 allocations requested"),
        _c("free_ratio", F64, "fraction", "fraction of each 2 MB region freed"),
        _c("pattern", S, "", "fragmentation pattern: even, random, clustered"),
        _c("seed", I64, "", "seed of the run"),
        _c("min_batch_bytes", I64, "B", "smallest batch offloaded to DMA (smaller: CPU copy)"),
        _c("wall_ms", F64, "ms", "wall time of the allocation loop"),
        _c("pages_migrated", I64, "pages", "base pages migrated"),
        _c("dma_copies", I64, "folios", "folios copied by the DMA engine"),
        _c("hog_iterations", I64, "iterations", "CPU-hog loop iterations (null in idle modes)"),
        _c("user_pct", F64, "%", "CPU time in user mode"),
        _c("sys_pct", F64, "%", "CPU time in the kernel"),
        _c("idle_pct", F64, "%", "CPU idle"),
        _c("irq_pct", F64, "%", "CPU in hard interrupts (/proc/stat irq: ticks, DMA completions)"),
        _c("softirq_pct", F64, "%", "CPU in softirqs (/proc/stat softirq)"),
        _c("alloc_success", I64, "allocations", "order-9 allocations that succeeded"),
        _c("alloc_fail", I64, "allocations", "order-9 allocations that failed"),
        _c("migrate_calls", I64, "calls", "migrate_pages() calls"),
        _c("compact_stall", I64, "events", "/proc/vmstat compact_stall"),
        _c("compact_success", I64, "events", "/proc/vmstat compact_success"),
        _c("compact_fail", I64, "events", "/proc/vmstat compact_fail"),
        _c("compact_migrate_scanned", I64, "pages", "/proc/vmstat compact_migrate_scanned"),
        _c("compact_free_scanned", I64, "pages", "/proc/vmstat compact_free_scanned"),
        _c("compact_isolated", I64, "pages", "/proc/vmstat compact_isolated"),
        _c("pgmigrate_success", I64, "pages", "/proc/vmstat pgmigrate_success"),
        _c("pgmigrate_fail", I64, "pages", "/proc/vmstat pgmigrate_fail"),
        # beyond the row contract: what the engine reports besides
        _c("order", I32, "", "allocation order"),
        _c("fail_rate", F64, "fraction", "injected DMA descriptor failure probability"),
        _c("rfc", S, "", "version of the batch-copy series whose dcbm code costed the run"),
        _c("wall_s", F64, "s", "wall time of the allocation loop"),
        _c("sys_s", F64, "s", "CPU time in the kernel"),
        _c("user_s", F64, "s", "CPU time in user mode (the CPU hog)"),
        _c("idle_s", F64, "s", "CPU idle"),
        _c("sleep_s", F64, "s", "time the allocating task slept waiting for DMA completions"),
        _c("context_switches", I64, "switches", "context switches on the CPU"),
        _c("dma_fallbacks", I64, "folios", "offloaded copies that fell back to the CPU"),
        _c("migrate_cpu_s", F64, "s", "CPU work in migrate_pages() (unmap, flush, copy, move)"),
        _c("compaction_cpu_s", F64, "s", "CPU work of compaction around migrate_pages()"),
        _c("capture_in_migrate", I64, "allocations", "blocks captured inside migrate_pages()"),
        _c("capture_in_drain", I64, "allocations", "blocks captured in the final drain"),
        _c("pages_after_capture", I64, "pages", "pages migrated after the block was captured"),
        _c("platform", S, "", "platform name"),
        *(
            _c(f"alloc_latency_p{p}_us", F64, "us", f"allocation latency, {p}th percentile")
            for p in ALLOC_LATENCY_PERCENTILES
        ),
        _c(
            "alloc_latency_us",
            LIST_F64,
            "us",
            "latency of each allocation that entered the slow path (entry to page returned)",
        ),
    ),
    sort_by=("mode", "channels", "cluster_max", "seed"),
    nulls_allowed=frozenset({"channels", "hog_iterations", "dma_copies", "dma_fallbacks"})
    | {f"alloc_latency_p{p}_us" for p in ALLOC_LATENCY_PERCENTILES},
)

THROUGHPUT_SUMMARY = Schema(
    name="throughput_summary",
    doc="One row per throughput cell (mode, channels or threads, folio size) over its trials.",
    columns=(
        _c("mode", S, "", "copy back-end"),
        _c("channels", I32, "channels", "DMA channels (dma mode)"),
        _c("threads", I32, "threads", "copy threads (mt mode)"),
        _c("folio_size", S, "", "folio size label"),
        _c("folio_bytes", I64, "B", "folio size"),
        _c("n", I64, "trials", "number of trials"),
        _c("mean_gbps", F64, "GB/s", "mean throughput over trials"),
        _c("sd_gbps", F64, "GB/s", "sample standard deviation over trials (null for n = 1)"),
        _c(
            "lo_gbps", F64, "GB/s", "90% prediction interval of the mean: low end (null if unknown)"
        ),
        _c(
            "hi_gbps",
            F64,
            "GB/s",
            "90% prediction interval of the mean: high end (null if unknown)",
        ),
        _c("mean_wall_s", F64, "s", "mean wall time"),
        _c("mean_sys_s", F64, "s", "mean CPU busy time"),
        _c("mean_idle_s", F64, "s", "mean CPU idle-wait time"),
        _c("mean_first_folio_s", F64, "s", "mean time to the first usable folio"),
        _c(
            "published_gbps",
            F64,
            "GB/s",
            "published mean (null where not measured or the setup differs from the published)",
        ),
        _c("published_sd_gbps", F64, "GB/s", "published standard deviation"),
        _c("rel_error", F64, "fraction", "mean_gbps / published_gbps - 1"),
        _c("speedup", F64, "x", "mean_gbps / baseline mean_gbps of the same folio size"),
        _c("published_speedup", F64, "x", "the same ratio of the published means"),
        _c("platform", S, "", "platform name"),
    ),
    sort_by=("mode", "channels", "threads", "folio_bytes"),
    nulls_allowed=frozenset(
        {
            "channels",
            "threads",
            "sd_gbps",
            "lo_gbps",
            "hi_gbps",
            "published_gbps",
            "published_sd_gbps",
            "rel_error",
            "speedup",
            "published_speedup",
        }
    ),
)

# Compaction metrics of the published table, in its column order, with units.
COMPACTION_METRICS: tuple[tuple[str, str], ...] = (
    ("wall_ms", "ms"),
    ("pages_migrated", "pages"),
    ("dma_copies", "folios"),
    ("hog_iterations", "iterations"),
    ("user_pct", "%"),
    ("sys_pct", "%"),
    ("idle_pct", "%"),
)
COMPACTION_MODES = ("baseline", "dma", "busy-baseline", "busy-dma")

COMPACTION_SUMMARY = Schema(
    name="compaction_summary",
    doc="One row per compaction mode and metric (long format).",
    columns=(
        _c("mode", S, "", "baseline, dma, busy-baseline or busy-dma"),
        _c("mode_order", I32, "", "position of the mode in the published table"),
        _c("channels", I32, "channels", "DMA channels"),
        _c("cluster_max", I32, "pages", "COMPACT_CLUSTER_MAX"),
        _c("metric", S, "", "wall_ms, pages_migrated, dma_copies, hog_iterations, *_pct"),
        _c("metric_order", I32, "", "position of the metric in the published table"),
        _c("unit", S, "", "unit of mean, sd and published"),
        _c("n", I64, "runs", "number of runs with a value"),
        _c("mean", F64, "unit", "mean over runs"),
        _c("sd", F64, "unit", "sample standard deviation (null for n = 1)"),
        _c(
            "published",
            F64,
            "unit",
            "published value (null where not measured or the setup differs from the published)",
        ),
        _c("abs_error", F64, "unit", "mean - published (percentage points for *_pct)"),
        _c("rel_error", F64, "fraction", "mean / published - 1 (null when published is 0)"),
        _c("platform", S, "", "platform name"),
    ),
    sort_by=("mode_order", "mode", "metric_order"),
    nulls_allowed=frozenset({"channels", "mean", "sd", "published", "abs_error", "rel_error", "n"}),
)

TRACE_EVENTS = Schema(
    name="trace_events",
    doc="One row per tracepoint event of a compaction run (simulated or imported).",
    columns=(
        _c("seq", I64, "", "position of the event in the trace, from 0"),
        _c("time_s", F64, "s", "timestamp (simulated: from the start of the run)"),
        _c("task", S, "", "task name (comm)"),
        _c("pid", I64, "", "task pid"),
        _c("cpu", I32, "", "CPU the event was recorded on"),
        _c("event", S, "", "tracepoint name"),
        _c("start_pfn", I64, "pfn", "isolate events: start of the scanned range"),
        _c("end_pfn", I64, "pfn", "isolate events: where the scan stopped"),
        _c("nr_scanned", I64, "pages", "isolate events: pfns scanned"),
        _c("nr_taken", I64, "pages", "isolate events: pages isolated"),
        _c("nr_succeeded", I64, "pages", "mm_migrate_pages nr_succeeded, migratepages nr_migrated"),
        _c("nr_failed", I64, "pages", "mm_migrate_pages / mm_compaction_migratepages nr_failed"),
        _c("order", I32, "", "allocation order (-1: compact_memory)"),
        _c("status", S, "", "compaction status or ret, migrate mode, or compaction mode"),
        _c("text", S, "", "the event's fields as printed (TP_printk)"),
    ),
    sort_by=("seq",),
    nulls_allowed=frozenset(
        {
            "start_pfn",
            "end_pfn",
            "nr_scanned",
            "nr_taken",
            "nr_succeeded",
            "nr_failed",
            "order",
            "status",
        }
    ),
)

ALLOC_LATENCY_SUMMARY = Schema(
    name="alloc_latency_summary",
    doc=(
        "Quantiles of the per-allocation latency (slow-path entry to page returned) of each "
        "compaction mode, pooled over its runs: 101 rows per mode (q = 0, 0.01, .., 1)."
    ),
    columns=(
        _c("mode", S, "", "baseline, dma, busy-baseline or busy-dma"),
        _c("mode_order", I32, "", "position of the mode in the published table"),
        _c("q", F64, "fraction", "quantile"),
        _c("latency_us", F64, "us", "latency at quantile q"),
        _c("n", I64, "allocations", "allocations that entered the slow path, over all runs"),
        _c("platform", S, "", "platform name"),
    ),
    sort_by=("mode_order", "mode", "q"),
)

SCHEMAS: dict[str, Schema] = {
    s.name: s
    for s in (
        THROUGHPUT_RUNS,
        COMPACTION_RUNS,
        THROUGHPUT_SUMMARY,
        COMPACTION_SUMMARY,
        ALLOC_LATENCY_SUMMARY,
        TRACE_EVENTS,
    )
}

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
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = schema.conform(df)
    meta = {
        "schema": schema.name,
        "schema_doc": schema.doc,
        "migsim_version": __version__,
        "config_hash": config_hash,
        "seed": str(int(seed)),
    }
    for key, value in (extra or {}).items():
        meta[str(key)] = str(value)
    table = out.to_arrow().cast(schema.arrow_schema()).replace_schema_metadata(meta)
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf, compression="zstd")
    atomic_write_bytes(path, buf.getvalue().to_pybytes())


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


def load_reference_throughput(path: str | os.PathLike) -> pl.DataFrame:
    """The published throughput table: mode, channels, folio_size, folio_bytes, GB/s mean, sd."""
    df = pl.read_csv(path, comment_prefix="#", infer_schema_length=None)
    return df.select(
        pl.col("mode").cast(pl.String),
        pl.col("channels").cast(pl.Int32),
        pl.col("folio_size").cast(pl.String),
        pl.col("folio_size")
        .map_elements(lambda s: parse_size(s), return_dtype=pl.Int64)
        .alias("folio_bytes"),
        pl.col("throughput_gbps").cast(pl.Float64).alias("published_gbps"),
        pl.col("stddev_gbps").cast(pl.Float64).alias("published_sd_gbps"),
    )


def load_reference_compaction(path: str | os.PathLike) -> pl.DataFrame:
    """The published compaction table in long form: mode, metric, published."""
    df = pl.read_csv(path, comment_prefix="#", infer_schema_length=None)
    metrics = [m for m, _ in COMPACTION_METRICS]
    df = df.select(pl.col("mode").cast(pl.String), *[pl.col(m).cast(pl.Float64) for m in metrics])
    return df.unpivot(index="mode", on=metrics, variable_name="metric", value_name="published")


# ---------------------------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------------------------

_CELL = ["mode", "channels", "threads", "folio_size", "folio_bytes"]


def summarise_throughput(runs: pl.DataFrame, reference: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per cell: n, mean and sd of GB/s over trials, phase means, the published value and the
    relative error, and the speed-up over the baseline of the same folio size."""
    runs = THROUGHPUT_RUNS.conform(runs).with_columns(
        published_setup("throughput").alias("_published_setup")
    )
    summary = runs.group_by(_CELL).agg(
        pl.col("_published_setup").all(),
        pl.len().cast(pl.Int64).alias("n"),
        pl.col("throughput_gbps").mean().alias("mean_gbps"),
        pl.col("throughput_gbps").std(ddof=1).alias("sd_gbps"),
        pl.col("lo_gbps").first(),
        pl.col("hi_gbps").first(),
        pl.col("wall_s").mean().alias("mean_wall_s"),
        pl.col("sys_s").mean().alias("mean_sys_s"),
        pl.col("idle_s").mean().alias("mean_idle_s"),
        pl.col("first_folio_s").mean().alias("mean_first_folio_s"),
        pl.col("platform").first(),
    )
    if reference is None:
        reference = pl.DataFrame(
            schema={
                "mode": pl.String,
                "channels": pl.Int32,
                "folio_bytes": pl.Int64,
                "published_gbps": pl.Float64,
                "published_sd_gbps": pl.Float64,
            }
        )
    ref = reference.select("mode", "channels", "folio_bytes", "published_gbps", "published_sd_gbps")
    # The published table has no thread counts: only rows without threads match it.
    summary = summary.join(
        ref.with_columns(pl.lit(None, pl.Int32).alias("threads")),
        on=["mode", "channels", "threads", "folio_bytes"],
        how="left",
        nulls_equal=True,
    )
    summary = summary.with_columns(
        [
            pl.when(pl.col("_published_setup")).then(pl.col(c)).otherwise(None).alias(c)
            for c in ("published_gbps", "published_sd_gbps")
        ]
    )
    base = summary.filter(pl.col("mode") == "baseline").select(
        "folio_bytes",
        pl.col("mean_gbps").alias("_base"),
        pl.col("published_gbps").alias("_pub_base"),
    )
    summary = summary.join(base, on="folio_bytes", how="left").with_columns(
        (pl.col("mean_gbps") / pl.col("published_gbps") - 1.0).alias("rel_error"),
        (pl.col("mean_gbps") / pl.col("_base")).alias("speedup"),
        (pl.col("published_gbps") / pl.col("_pub_base")).alias("published_speedup"),
    )
    return THROUGHPUT_SUMMARY.conform(summary)


def summarise_compaction(runs: pl.DataFrame, reference: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per mode and metric: n, mean, sd over runs, the published value, absolute and relative
    error (the absolute error of a *_pct metric is in percentage points)."""
    runs = COMPACTION_RUNS.conform(runs)
    metrics = [m for m, _ in COMPACTION_METRICS]
    runs = runs.with_columns(published_setup("compaction").alias("_published_setup"))
    long = runs.with_columns(pl.col(metrics).cast(pl.Float64)).unpivot(
        index=["mode", "channels", "cluster_max", "platform", "_published_setup"],
        on=metrics,
        variable_name="metric",
        value_name="value",
    )
    summary = long.group_by(["mode", "channels", "cluster_max", "metric"]).agg(
        pl.col("value").count().cast(pl.Int64).alias("n"),
        pl.col("value").mean().alias("mean"),
        pl.col("value").std(ddof=1).alias("sd"),
        pl.col("platform").first(),
        pl.col("_published_setup").all(),
    )
    if reference is None:
        reference = pl.DataFrame(
            schema={"mode": pl.String, "metric": pl.String, "published": pl.Float64}
        )
    summary = summary.join(reference, on=["mode", "metric"], how="left").with_columns(
        pl.when(pl.col("_published_setup")).then(pl.col("published")).otherwise(None)
    )
    mode_order = {m: i for i, m in enumerate(COMPACTION_MODES)}
    metric_order = {m: i for i, (m, _) in enumerate(COMPACTION_METRICS)}
    units = dict(COMPACTION_METRICS)
    summary = summary.with_columns(
        pl.col("mode")
        .replace_strict(mode_order, default=len(mode_order), return_dtype=pl.Int32)
        .alias("mode_order"),
        pl.col("metric").replace_strict(metric_order, return_dtype=pl.Int32).alias("metric_order"),
        pl.col("metric").replace_strict(units, return_dtype=pl.String).alias("unit"),
        (pl.col("mean") - pl.col("published")).alias("abs_error"),
        pl.when(pl.col("published") != 0)
        .then(pl.col("mean") / pl.col("published") - 1.0)
        .otherwise(None)
        .alias("rel_error"),
    )
    return COMPACTION_SUMMARY.conform(summary)


def throughput_mape(summary: pl.DataFrame) -> tuple[float | None, int]:
    """Mean absolute percentage error (%) over the cells with a published value, and their count."""
    cells = summary.filter(pl.col("published_gbps").is_not_null())
    if cells.height == 0:
        return None, 0
    mape = (cells["rel_error"].abs().mean() or 0.0) * 100.0
    return float(mape), cells.height


# ---------------------------------------------------------------------------------------------
# Tables in the published layout
# ---------------------------------------------------------------------------------------------


def _signed(value: float, digits: int = 1) -> str:
    """`+1.5`, `-0.3`, never `-0.0`."""
    return f"{round(value, digits) + 0.0:+.{digits}f}"


def _pm(mean: float | None, sd: float | None, digits: int = 2) -> str:
    if mean is None:
        return "–"
    if sd is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f}±{sd:.{digits}f}"


def _row_label(mode: str, channels: int | None, threads: int | None) -> str:
    if mode == "dma":
        return f"DMA {channels} ch"
    if mode == "mt":
        return f"MT {threads} thr"
    return mode


def _folio_columns(summary: pl.DataFrame) -> list[tuple[int, str]]:
    cols = summary.select("folio_bytes").unique().sort("folio_bytes")["folio_bytes"].to_list()
    return [(b, format_size(b)) for b in cols]


def _row_keys(summary: pl.DataFrame) -> list[tuple[str, int | None, int | None]]:
    keys = (
        summary.select("mode", "channels", "threads")
        .unique()
        .sort(["mode", "channels", "threads"], nulls_last=False)
    )
    return [tuple(r) for r in keys.iter_rows()]


def throughput_table(summary: pl.DataFrame, *, with_published: bool = False) -> Table:
    """The published layout: folio sizes as columns, baseline and channel counts as rows,
    cells `mean±sd` in GB/s; with `with_published` also the published `mean±sd` and the
    relative error of the simulated mean beside each cell."""
    summary = THROUGHPUT_SUMMARY.conform(summary)
    folios = _folio_columns(summary)
    cell = {
        (r["mode"], r["channels"], r["threads"], r["folio_bytes"]): r
        for r in summary.iter_rows(named=True)
    }
    n_trials = sorted(set(summary["n"].to_list()))
    rows = []
    for mode, ch, th in _row_keys(summary):
        row = [_row_label(mode, ch, th)]
        for fb, _ in folios:
            r = cell.get((mode, ch, th, fb))
            if r is None:
                row.append("–")
                continue
            text = _pm(r["mean_gbps"], r["sd_gbps"])
            if with_published and r["published_gbps"] is not None:
                pub = _pm(r["published_gbps"], r["published_sd_gbps"])
                text += f" / {pub} ({_signed(r['rel_error'] * 100)}%)"
            row.append(text)
        rows.append(row)
    trials = ", ".join(str(n) for n in n_trials)
    if with_published:
        title = "move_pages() throughput, GB/s: simulated / published (error of the mean)"
        mape, cells = throughput_mape(summary)
        notes = [f"Simulated mean±sd over {trials} trials per cell / published mean±sd."]
        if mape is not None:
            notes.append(f"MAPE over {cells} cells with a published value: {mape:.2f}%.")
        notes.append("Cells without a published value show the simulated value only.")
    else:
        title = "move_pages() throughput, GB/s (mean±sd)"
        notes = [f"Simulated, mean±sd over {trials} trials per cell; 1 GB = 1e9 bytes."]
    header = ["rows \\ folio size"] + [label for _, label in folios]
    return Table(title, header, rows, notes)


_METRIC_TITLES = {
    "wall_ms": "wall (ms)",
    "pages_migrated": "pages migrated",
    "dma_copies": "DMA copies",
    "hog_iterations": "hog iterations",
    "user_pct": "user %",
    "sys_pct": "sys %",
    "idle_pct": "idle %",
}


def _metric_value(metric: str, value: float | None) -> str:
    if value is None:
        return "–"
    if metric.endswith("_pct"):
        return f"{value:.2f}"
    return f"{value:,.0f}"


def _metric_error(metric: str, r: Mapping) -> str:
    if metric.endswith("_pct"):
        return f"{_signed(r['abs_error'], 2)} pt"
    if r["rel_error"] is None:
        return f"{r['abs_error']:+,.0f}"
    return f"{_signed(r['rel_error'] * 100)}%"


def compaction_table(summary: pl.DataFrame, *, with_published: bool = False) -> Table:
    """The published compaction layout: one row per mode, the published columns (wall ms,
    pages migrated, DMA copies, hog iterations, user/sys/idle %); with `with_published` each
    cell is `simulated / published (error)`, the error of a percentage in points."""
    summary = COMPACTION_SUMMARY.conform(summary)
    metrics = [m for m, _ in COMPACTION_METRICS]
    cell = {(r["mode"], r["metric"]): r for r in summary.iter_rows(named=True)}
    modes = summary.select("mode", "mode_order").unique().sort(["mode_order", "mode"])["mode"]
    rows = []
    for mode in modes.to_list():
        row = [mode]
        for m in metrics:
            r = cell.get((mode, m))
            if r is None or r["mean"] is None:
                text = "–"
            else:
                text = _metric_value(m, r["mean"])
                if r["sd"] is not None and r["n"] and r["n"] > 1:
                    text += "±" + _metric_value(m, r["sd"])
            if with_published and r is not None:
                pub = r["published"]
                if pub is not None:
                    text += f" / {_metric_value(m, pub)}"
                    if r["mean"] is not None:
                        text += f" ({_metric_error(m, r)})"
            row.append(text)
        rows.append(row)
    runs = sorted({r["n"] for r in summary.iter_rows(named=True) if r["n"]})
    header = ["mode"] + [_METRIC_TITLES[m] for m in metrics]
    if with_published:
        title = "Direct compaction: simulated / published (error)"
        notes = [
            "Errors: relative for counts and times, percentage points for user/sys/idle %.",
            f"Runs per mode: {', '.join(map(str, runs)) or '0'}.",
        ]
    else:
        title = "Direct compaction (simulated)"
        notes = [f"Runs per mode: {', '.join(map(str, runs)) or '0'} (mean±sd when more than 1)."]
    return Table(title, header, rows, notes)


def per_page_us(row: Mapping) -> dict[str, float]:
    """Microseconds per migrated page of a compaction row (simulated or published): wall time,
    kernel CPU (sys), idle (the DMA waits of an idle machine) and user (the hog)."""
    us = row["wall_ms"] * 1e3 / row["pages_migrated"]
    out = {
        "wall_us": us,
        "sys_us": us * row["sys_pct"] / 100,
        "idle_us": us * row["idle_pct"] / 100,
        "user_us": us * row["user_pct"] / 100,
    }
    # /proc/stat irq + softirq: simulated rows give both columns, the published ones the
    # share left over by user, system and idle
    if "irq_pct" in row and "softirq_pct" in row:
        out["irq_softirq_us"] = us * (row["irq_pct"] + row["softirq_pct"]) / 100
    elif "irq_softirq_pct" in row:
        out["irq_softirq_us"] = us * row["irq_softirq_pct"] / 100
    return out


def offload_saving_per_page_us(rows: Mapping[str, Mapping]) -> dict[str, float]:
    """Kernel CPU per migrated page that DMA offload saves, idle and busy (us per page), from
    rows keyed by mode (baseline, dma, busy-baseline, busy-dma)."""
    sys_us = {m: per_page_us(r)["sys_us"] for m, r in rows.items()}
    return {
        "idle": sys_us["baseline"] - sys_us["dma"],
        "busy": sys_us["busy-baseline"] - sys_us["busy-dma"],
    }


PER_PAGE_METRICS = ("wall_ms", "pages_migrated", "user_pct", "sys_pct", "idle_pct")


def compaction_per_page_table(summary: pl.DataFrame) -> Table:
    """Every mode per migrated page (us), simulated / published, and the kernel CPU that
    offloading saves: where the DMA rows' time goes, comparable across page counts."""
    summary = COMPACTION_SUMMARY.conform(summary)
    sim: dict[str, dict] = {}
    pub: dict[str, dict] = {}
    for r in summary.filter(pl.col("metric").is_in(PER_PAGE_METRICS)).iter_rows(named=True):
        sim.setdefault(r["mode"], {})[r["metric"]] = r["mean"]
        pub.setdefault(r["mode"], {})[r["metric"]] = r["published"]

    def complete(rows: dict, mode: str) -> bool:
        row = rows.get(mode, {})
        return all(row.get(k) is not None for k in PER_PAGE_METRICS) and row["pages_migrated"] > 0

    keys = ("wall_us", "sys_us", "idle_us", "user_us")
    modes = summary.select("mode", "mode_order").unique().sort(["mode_order", "mode"])["mode"]
    rows = []
    for mode in modes.to_list():
        if not complete(sim, mode):
            continue
        ps = per_page_us(sim[mode])
        pp = per_page_us(pub[mode]) if complete(pub, mode) else None
        rows.append([mode] + [f"{ps[k]:.3f}" + (f" / {pp[k]:.3f}" if pp else "") for k in keys])
    notes = ["Microseconds per migrated page: simulated / published where a published row exists."]
    if all(complete(sim, m) for m in COMPACTION_MODES):
        ss = offload_saving_per_page_us(sim)
        text = (
            f"Kernel CPU saved by offload per page: idle {ss['idle']:.3f}, busy {ss['busy']:.3f} us"
        )
        if all(complete(pub, m) for m in COMPACTION_MODES):
            sp = offload_saving_per_page_us(pub)
            text += f" (published {sp['idle']:.3f} and {sp['busy']:.3f})"
        notes.append(text + ".")
    header = ["mode", "wall (us)", "sys (us)", "idle (us)", "user (us)"]
    return Table("Direct compaction per migrated page", header, rows, notes)


def write_table(
    table: Table | Sequence[Table], md_path: str | os.PathLike, html_path: str | os.PathLike
) -> None:
    """Write a table (or several, one page) as Markdown and as a standalone offline HTML page
    (atomically); the page takes the first table's title."""
    group = [table] if isinstance(table, Table) else list(table)
    atomic_write_text(md_path, "\n".join(t.markdown() for t in group))
    atomic_write_text(html_path, table_page(group[0].title, group))


def describe_schemas(schemas: Iterable[Schema] | None = None) -> str:
    """Markdown documentation of `schemas` (default: every schema of this module; for
    results/README.md and the report)."""
    out = []
    for s in SCHEMAS.values() if schemas is None else schemas:
        out.append(f"### {s.name}\n\n{s.doc} Sorted by {', '.join(s.sort_by)}.\n")
        out.append("| column | type | unit | meaning |\n|---|---|---|---|")
        for c in s.columns:
            kind = getattr(c.dtype, "__name__", None) or str(c.dtype)  # List(Float64): an instance
            out.append(f"| {c.name} | {kind} | {c.unit} | {c.doc} |")
        out.append("")
    return "\n".join(out)


def metadata_json(path: str | os.PathLike) -> str:
    """The metadata of a Parquet file as sorted JSON (for logs)."""
    return json.dumps(read_metadata(path), sort_keys=True)
