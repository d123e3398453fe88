"""The what-if studies' tables: the Parquet schema of each study's summary (the frame its
``study_*`` function returns, column by column with unit and meaning) and its Markdown table.

Files are written with ``migsim.output.tables.write_parquet`` (atomic, sorted, with metadata), so a
what-if summary carries the same metadata as the published experiments' summaries.
"""

from __future__ import annotations

import polars as pl

from migsim.output.tables import Column, Schema, Table
from migsim.units import format_size

S, I32, I64, F64 = pl.String, pl.Int32, pl.Int64, pl.Float64


def _c(name: str, dtype: type[pl.DataType], unit: str, doc: str) -> Column:
    return Column(name, dtype, unit, doc)


_RUN = (
    _c("wall_ms", F64, "ms", "wall time of the allocation loop"),
    _c("user_pct", F64, "%", "migrating CPU in user mode (the competing task)"),
    _c("sys_pct", F64, "%", "migrating CPU in the kernel"),
    _c("idle_pct", F64, "%", "migrating CPU idle"),
    _c("hog_iterations", F64, "iterations", "competing-task iterations (null on an idle machine)"),
    _c("pages_migrated", I64, "pages", "base pages migrated"),
    _c("dma_copies", I64, "folios", "folios copied by the DMA engine"),
    _c("migrate_calls", I64, "calls", "migrate_pages() calls"),
    _c("alloc_success", I64, "allocations", "order-9 allocations that succeeded"),
    _c("alloc_fail", I64, "allocations", "order-9 allocations that failed"),
    _c("capture_in_drain", I64, "allocations", "blocks captured only in the pcp drain"),
    _c(
        "pages_after_capture",
        I64,
        "pages",
        "pages migrated after the allocation's block was already free (the batch from the "
        "next pageblock before the capture is seen)",
    ),
    _c("sys_ms", F64, "ms", "kernel CPU time: wall_ms x sys_pct / 100"),
    _c("us_per_page", F64, "us", "wall time per migrated page (null when none migrated)"),
)
_RUN_NULLS = {"hog_iterations", "dma_copies", "us_per_page"}

CLUSTER_MAX = Schema(
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

ENGINE_CLASS = Schema(
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

HYBRID = Schema(
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

FRAGMENTATION = Schema(
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

LATENCY = Schema(
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

SCHEMAS: dict[str, Schema] = {
    "cluster_max": CLUSTER_MAX,
    "engine_class": ENGINE_CLASS,
    "hybrid": HYBRID,
    "fragmentation": FRAGMENTATION,
    "latency": LATENCY,
}

TITLES = {
    "cluster_max": "What-if 1: compaction batch size (COMPACT_CLUSTER_MAX)",
    "engine_class": "What-if 2: DMA engine class (low-latency engines)",
    "hybrid": "What-if 3: hybrid offload threshold T",
    "fragmentation": "What-if 4: fragmentation level and pattern",
    "latency": "What-if 5: latency against throughput (batch limit)",
}


# ---------------------------------------------------------------------------------------------
# Markdown tables
# ---------------------------------------------------------------------------------------------


def _f(v, digits: int = 1, signed: bool = False) -> str:
    if v is None:
        return "–"
    return f"{v:+.{digits}f}" if signed else f"{v:,.{digits}f}"


def _n(v) -> str:
    return "–" if v is None else f"{v:,.0f}"


def _copy_label(copy: str, channels) -> str:
    return "baseline" if copy == "baseline" else f"DMA {channels} ch"


def cluster_max_table(df: pl.DataFrame) -> list[Table]:
    """One row per load, copy back-end and cluster size."""
    df = CLUSTER_MAX.conform(df)
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
                f"{r['load']}, {_copy_label(r['copy'], r['channels'])}, {r['cluster_max']}{mark}",
                _f(r["wall_ms"]),
                _f(r["vs_baseline_pct"], signed=True) + "%",
                _f(r["user_pct"], 2),
                _f(r["sys_pct"], 2),
                _f(r["idle_pct"], 2),
                _n(r["hog_iterations"]),
                _n(r["migrate_calls"]),
                _n(r["pages_migrated"]),
            ]
        )
    notes = ["vs baseline: wall time against the CPU copy at the same cluster size and load."]
    return [Table(TITLES["cluster_max"], header, rows, notes)]


def engine_class_table(df: pl.DataFrame) -> list[Table]:
    """Throughput (GB/s, gain over the calibrated engine) by engine and channels x folio size;
    compaction wall time by engine and load x channel count."""
    df = ENGINE_CLASS.conform(df)
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
        out.append(Table(TITLES["engine_class"] + ": move_pages() throughput", header, rows, notes))
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
        out.append(Table(TITLES["engine_class"] + ": compaction", header, rows, notes))
    return out


def hybrid_table(df: pl.DataFrame) -> list[Table]:
    """One row per load and threshold T."""
    df = HYBRID.conform(df)
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
                _f(r["wall_ms"]),
                _f(r["vs_baseline_pct"], signed=True) + "%",
                _n(r["dma_copies"]),
                _f(r["sys_pct"], 2),
                _f(r["idle_pct"], 2),
                _f(r["cpu_freed_ms"]),
                _f(r["cpu_freed_pct"], signed=True) + "%",
                "–" if hog is None else _f(hog, 2, signed=True) + "%",
            ]
        )
    notes = [
        "T: batches smaller than T bytes are copied by the CPU, the others offloaded; "
        "T = 0 offloads every batch. CPU freed: kernel CPU time saved against the CPU copy."
    ]
    return [Table(TITLES["hybrid"], header, rows, notes)]


def fragmentation_table(df: pl.DataFrame) -> list[Table]:
    """One row per pattern, free ratio and copy back-end."""
    df = FRAGMENTATION.conform(df)
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
            f"{r['pattern']}, {r['free_ratio']:g}, {_copy_label(r['copy'], r['channels'])}",
            _f(r["pages_per_alloc"]),
            _f(r["success_pct"]),
            _f(r["wall_ms"]),
            _f(r["ms_per_alloc"], 3),
            _n(r["pages_migrated"]),
            _n(r["migrate_calls"]),
        ]
        for r in df.iter_rows(named=True)
    ]
    allocs = ", ".join(str(a) for a in sorted(df["allocations"].unique().to_list()))
    notes = [f"{allocs} order-9 allocations per run; pages per successful allocation."]
    return [Table(TITLES["fragmentation"], header, rows, notes)]


def latency_table(df: pl.DataFrame) -> list[Table]:
    """Batch limits as rows; per folio size and mode: total ms / first-folio us."""
    df = LATENCY.conform(df)
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
        f"{fs} {_copy_label(m, ch)}" for _, fs, m, ch in series.iter_rows()
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
    return [Table(TITLES["latency"], header, rows, notes)]


TABLES = {
    "cluster_max": cluster_max_table,
    "engine_class": engine_class_table,
    "hybrid": hybrid_table,
    "fragmentation": fragmentation_table,
    "latency": latency_table,
}


def markdown(tables: list[Table]) -> str:
    """Markdown of several tables, one after the other."""
    return "\n".join(t.markdown() for t in tables)
