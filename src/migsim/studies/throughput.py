"""The move_pages() throughput experiment of the RFC: move `total_bytes` of folios of one size
between two NUMA nodes, `trials` times, and report GB/s per trial with the phase breakdown.

One trial is one move_pages() call (its per-call and per-address work, then one
migrate_pages() over the whole list (the benchmark kernel raised
NR_MAX_BATCHED_MIGRATION to HPAGE_PUD_NR, so 1 GiB is one batch)). Trial-to-trial variation is a
lognormal factor on every cost of the trial (platform noise.trial_sd_frac), drawn from the
seeded generator; the same seed gives the same numbers.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from migsim import limits
from migsim.cost.copiers import make_copier
from migsim.cost.platform import Platform
from migsim.kernel.migrate import MigrateResult, migrate_trials, uniform_batch_totals
from migsim.output.schema import F64, I32, I64, S, Schema, Table, _c, _pm, _signed
from migsim.output.style import BASELINE_COLOUR, PALETTE
from migsim.units import HPAGE_PUD_NR, PAGE_SIZE, format_size, parse_size

if TYPE_CHECKING:
    import altair as alt
    import polars as pl

MODES = ("baseline", "dma", "mt")


@dataclass
class ThroughputResult:
    """All trials of one cell (mode, folio size, channels or threads)."""

    mode: str
    folio_bytes: int
    channels: int | None
    threads: int | None
    total_bytes: int
    batch_limit: int
    fail_rate: float
    seed: int
    platform: str
    rfc: str = "v4"
    placement: str = "spread"
    min_batch_bytes: int = 0  # batches below it are copied by the CPU (make_copier)
    # 90% prediction interval of the mean (GB/s), when costed (migsim.calibrate.intervals)
    lo_gbps: float | None = None
    hi_gbps: float | None = None
    trials: list[MigrateResult] = field(default_factory=list)

    @property
    def gbps(self) -> list[float]:
        """Throughput of each trial in GB/s (1e9 bytes per second, as the RFC reports)."""
        return [self.total_bytes / t.wall_s / 1e9 for t in self.trials]

    @property
    def mean_gbps(self) -> float:
        return float(np.mean(self.gbps))

    @property
    def sd_gbps(self) -> float:
        """Sample standard deviation over trials (0 for one trial)."""
        g = self.gbps
        return float(np.std(g, ddof=1)) if len(g) > 1 else 0.0

    def phases(self) -> dict[str, float]:
        """Mean seconds per phase over trials, and CPU busy/idle seconds."""
        keys = ("wall_s", "unmap_s", "flush_s", "copy_s", "move_s", "fallback_s", "sys_s")
        keys += ("idle_s", "other_cpu_s", "irq_s", "call_s", "first_folio_s")
        return {k: float(np.mean([getattr(t, k) for t in self.trials])) for k in keys}

    def vmstat(self) -> dict[str, int]:
        """/proc/vmstat deltas of one trial (every trial moves the same folios)."""
        from migsim.kernel.vmstat import move_pages_vmstat

        t = self.trials[0]
        return move_pages_vmstat(t.nr_pages, t.nr_folios, self.folio_bytes // PAGE_SIZE)

    def first_folio_latency_us(self) -> dict[str, float | None]:
        """Percentiles over trials of the first-folio latency of move_pages(): from the
        call to the first folio usable at its destination (us)."""
        from migsim.kernel.vmstat import percentiles

        return percentiles(np.array([t.first_folio_s for t in self.trials]) * 1e6)

    def rows(self) -> list[dict]:
        """One dict per trial, in the throughput run row contract."""
        out = []
        vmstat = self.vmstat() if self.trials else {}
        for i, (t, g) in enumerate(zip(self.trials, self.gbps, strict=True)):
            row = {
                "experiment": "throughput",
                "mode": self.mode,
                "channels": self.channels,
                "threads": self.threads,
                "folio_size": format_size(self.folio_bytes),
                "folio_bytes": self.folio_bytes,
                "total_bytes": self.total_bytes,
                "batch_limit_pages": self.batch_limit,
                "fail_rate": self.fail_rate,
                "rfc": self.rfc,
                "trial": i,
                "seed": self.seed,
                "throughput_gbps": g,
                "lo_gbps": self.lo_gbps,
                "hi_gbps": self.hi_gbps,
            }
            row.update(t.as_dict())
            row.update(vmstat)
            row["platform"] = self.platform
            out.append(row)
        return out


def check_cell(mode: str, folio_bytes: int, total_bytes: int, channels, threads, platform) -> None:
    """Argument checks of one cell (ranges from migsim.limits); raises ValueError naming the
    argument."""
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {', '.join(MODES)}; got {mode!r}")
    limits.check_folio_size(folio_bytes, "folio_size")
    limits.TOTAL_BYTES.parse(total_bytes, "total_bytes")
    if total_bytes % folio_bytes:
        raise ValueError(
            f"total_bytes: must be a whole number of folios ({format_size(folio_bytes)}), "
            f"got {total_bytes}"
        )
    if mode == "dma":
        why = f"the DMA channels of platform {platform.name}"
        limits.CHANNELS.check(channels, "channels", hi=platform.dma.max_channels_count, why=why)
    if mode == "mt":
        why = f"the copy threads of platform {platform.name}"
        limits.THREADS.check(threads, "threads", hi=platform.mt.max_threads_count, why=why)


def run_throughput(
    platform: Platform,
    *,
    mode: str,
    folio_size: int,
    channels: int | None = None,
    threads: int | None = None,
    total_bytes: int = 1 << 30,
    batch_limit: int = HPAGE_PUD_NR,
    trials: int = 5,
    seed: int = 1,
    fail_rate: float = 0.0,
    min_batch_bytes: int = 0,
    rfc: str = "v4",
    fallback: str | None = None,
    placement: str = "spread",
) -> ThroughputResult:
    """Run one cell of the throughput table `trials` times; sizes in bytes, batch_limit in pages."""
    if mode == "dma" and channels is None:
        channels = 1
    if mode == "mt" and threads is None:
        threads = 4
    check_cell(mode, folio_size, total_bytes, channels, threads, platform)
    limits.TRIALS.check(trials, "trials")
    limits.BATCH_LIMIT.check(batch_limit, "batch_limit")
    limits.FAIL_RATE.check(fail_rate, "fail_rate")
    limits.MIN_BATCH_BYTES.check(min_batch_bytes, "min_batch_bytes")
    limits.check_memory(
        limits.throughput_memory(total_bytes, folio_size, batch_limit, trials),
        "total_bytes",
        f"moving {format_size(total_bytes)} of {format_size(folio_size)} folios in batches of "
        f"{batch_limit} base pages (batch_limit), {trials} trial(s)",
    )
    copier = make_copier(
        mode,
        channels=channels,
        threads=threads,
        fail_rate=fail_rate,
        min_batch_bytes=min_batch_bytes,
        rfc=rfc,
        fallback=fallback,
        placement=placement,
    )
    nr_folios = total_bytes // folio_size
    totals = uniform_batch_totals(nr_folios, folio_size // PAGE_SIZE, batch_limit)
    rng = np.random.default_rng(seed)
    result = ThroughputResult(
        mode=mode,
        folio_bytes=folio_size,
        channels=channels if mode == "dma" else None,
        threads=threads if mode == "mt" else None,
        total_bytes=total_bytes,
        batch_limit=batch_limit,
        fail_rate=fail_rate,
        seed=seed,
        platform=platform.name,
        rfc=rfc,
        placement=placement,
        min_batch_bytes=min_batch_bytes,
    )
    # the vanilla kernel copies inside the move loop; the series copies the batch first
    kw = dict(batch_copy=mode != "baseline", syscall=True)
    if fail_rate > 0:  # failures draw from rng after each trial's noise factor: trial by trial
        for _ in range(trials):
            scale = np.array([platform.trial_scale(rng)])
            result.trials += migrate_trials(totals, nr_folios, copier, platform, rng, scale, **kw)
    else:  # nothing else draws: all noise factors first, then every trial in one call
        scales = np.array([platform.trial_scale(rng) for _ in range(trials)])
        result.trials += migrate_trials(totals, nr_folios, copier, platform, rng, scales, **kw)
    return result


# ---------------------------------------------------------------------------------------------
# Results: the run and summary Parquet schemas, the summary, its tables
# ---------------------------------------------------------------------------------------------


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
            "move_pages() work outside migrate_pages (syscall, lru_cache_disable, lookups)",
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

# this experiment's Parquet schemas (migsim.studies.schemas)
SCHEMAS = (THROUGHPUT_RUNS, THROUGHPUT_SUMMARY)


def load_reference_throughput(path: str | os.PathLike) -> pl.DataFrame:
    """The published throughput table: mode, channels, folio_size, folio_bytes, GB/s mean, sd."""
    import polars as pl

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


_CELL = ["mode", "channels", "threads", "folio_size", "folio_bytes"]


def summarise_throughput(runs: pl.DataFrame, reference: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per cell: n, mean and sd of GB/s over trials, phase means, the published value and the
    relative error, and the speed-up over the baseline of the same folio size."""
    import polars as pl

    from migsim.output.tables import published_setup

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


def throughput_mape(summary: pl.DataFrame) -> tuple[float | None, int]:
    """Mean absolute percentage error (%) over the cells with a published value, and their count."""
    import polars as pl

    cells = summary.filter(pl.col("published_gbps").is_not_null())
    if cells.height == 0:
        return None, 0
    mape = (cells["rel_error"].abs().mean() or 0.0) * 100.0
    return float(mape), cells.height


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


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


LEGEND_SPEEDUPS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0, 8.0)


def _series(df: pl.DataFrame) -> pl.DataFrame:
    """Add series (legend key), panel and lane-count columns to a throughput summary."""
    import polars as pl

    return df.with_columns(
        pl.when(pl.col("mode") == "dma")
        .then(pl.col("channels"))
        .when(pl.col("mode") == "mt")
        .then(pl.col("threads"))
        .otherwise(None)
        .alias("lanes"),
    ).with_columns(
        pl.when(pl.col("mode") == "baseline")
        .then(pl.lit("baseline"))
        .otherwise(
            pl.col("lanes").cast(pl.String)
            + pl.when(pl.col("mode") == "dma").then(pl.lit(" ch")).otherwise(pl.lit(" thr"))
        )
        .alias("series"),
    )


def _throughput_panel(
    data: pl.DataFrame, mode: str, folios: list[str], y_domain: tuple[float, float]
) -> alt.LayerChart:
    """One panel of the throughput figure: the baseline and one line per channel (dma) or
    thread (mt) count with its simulated 90% interval as a band, the published means as
    hollow diamonds with their sd, a label at each line's end; its own colour legend."""
    import altair as alt
    import polars as pl

    from migsim.output.figures import PUBLISHED_DX, _spread_labels

    height = 300
    lanes_title = {"dma": "DMA channels", "mt": "copy threads"}[mode]
    d = data.filter(pl.col("mode").is_in(["baseline", mode]))
    keys = d.select("series", pl.col("lanes").fill_null(0)).unique().sort("lanes")
    domain = keys["series"].to_list()
    lanes = [n for n in keys["lanes"].to_list() if n]
    colour_of = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(lanes)}
    rng = [colour_of.get(n, BASELINE_COLOUR) for n in keys["lanes"].to_list()]
    sources = [s for s in ("simulated", "published") if s in d["source"].to_list()]
    ylog = alt.Scale(type="log", domain=list(y_domain), nice=False)
    x = alt.X("folio_size:O", sort=folios, title="folio size", axis=alt.Axis(labelAngle=0))
    colour = alt.Color(
        "series:N",
        scale=alt.Scale(domain=domain, range=rng),
        title=lanes_title,
        sort=domain,
        # the line's colour at full strength (the band's translucent fill would pale it)
        legend=alt.Legend(
            orient="right", symbolType="stroke", symbolOpacity=1, symbolStrokeWidth=3
        ),
    )
    tooltip = [
        alt.Tooltip("series:N", title=lanes_title),
        alt.Tooltip("folio_size:N", title="folio size"),
        alt.Tooltip("source:N"),
        alt.Tooltip("gbps:Q", title="GB/s", format=".2f"),
        alt.Tooltip("lo:Q", title="low (GB/s)", format=".2f"),
        alt.Tooltip("hi:Q", title="high (GB/s)", format=".2f"),
    ]
    base = alt.Chart(d).encode(x=x, color=colour)
    is_sim = alt.datum.source == "simulated"
    is_pub = alt.datum.source == "published"
    y_title = "throughput (GB/s, log scale)"
    y = alt.Y("gbps:Q", scale=ylog, title=y_title)
    band = (
        base.transform_filter(is_sim)
        .mark_area(opacity=0.18)
        .encode(y=alt.Y("lo:Q", scale=ylog, title=y_title), y2="hi:Q", detail="series:N")
    )
    lines = base.transform_filter(is_sim).mark_line(strokeWidth=1.6).encode(y=y, detail="series:N")
    shape = alt.Shape(
        "source:N",
        scale=alt.Scale(
            domain=sources,
            range=[{"simulated": "circle", "published": "diamond"}[s] for s in sources],
        ),
        title="source",
        legend=alt.Legend(orient="right") if len(sources) > 1 else None,
    )
    points = (
        base.transform_filter(is_sim)
        .mark_point(filled=True, size=36)
        .encode(y=y, shape=shape, tooltip=tooltip)
    )
    whiskers = (
        base.transform_filter(is_sim)
        .mark_rule(strokeWidth=1.2)
        .encode(y=alt.Y("lo:Q", scale=ylog), y2="hi:Q")
    )
    layers = [band, whiskers, lines, points]
    if "published" in sources:
        layers.append(
            base.transform_filter(is_pub)
            .mark_rule(strokeDash=[2, 2], opacity=0.8, xOffset=PUBLISHED_DX)
            .encode(y=alt.Y("lo:Q", scale=ylog), y2="hi:Q")
        )
        layers.append(
            base.transform_filter(is_pub)
            .mark_point(
                shape="diamond", filled=False, size=90, strokeWidth=1.5, xOffset=PUBLISHED_DX
            )
            .encode(y=y, shape=shape, tooltip=tooltip)
        )
    # line-end labels, moved apart where the lines end close together
    end = (
        d.filter((pl.col("source") == "simulated") & (pl.col("folio_size") == folios[-1]))
        .select("series", "gbps", "lanes")
        .sort(pl.col("lanes").fill_null(0))
    )
    if end.height:
        ys = _spread_labels(end["gbps"].to_list(), y_domain[0], y_domain[1], height)
        unit = {"dma": " ch", "mt": " thr"}[mode]
        labels = end.with_columns(
            pl.Series("label_y", ys),
            pl.lit(folios[-1]).alias("folio_size"),
            pl.when(pl.col("lanes").is_null())
            .then(pl.col("series"))
            .otherwise(pl.col("series") + unit)
            .alias("label"),
        )
        layers.append(
            alt.Chart(labels)
            .mark_text(align="left", dx=10 + PUBLISHED_DX, fontSize=11)
            .encode(
                x=x,
                y=alt.Y("label_y:Q", scale=ylog),
                text="label:N",
                color=alt.Color("series:N", scale=alt.Scale(domain=domain, range=rng), legend=None),
            )
        )
    title = {"dma": "DMA offload (dcbm)", "mt": "multi-threaded copy"}[mode]
    own = d.filter((pl.col("mode") == mode) & (pl.col("source") == "published"))
    if own.height == 0:
        title += " (not published)"
    return alt.layer(*layers).properties(width=330, height=height, title=title)


def throughput_chart(summary: pl.DataFrame) -> alt.HConcatChart | alt.LayerChart | alt.Chart:
    """Throughput against folio size, one panel per offload mode (DMA channels, copy threads),
    each with its own colour legend: the baseline in black, one line per channel or thread
    count with the 90% prediction interval of each simulated mean as a shaded band and
    whisker (+- 1 sd where no interval was costed), the published means (hollow diamonds,
    with their sd) beside them, each line labelled at its end; log scale in GB/s."""
    import altair as alt
    import polars as pl

    from migsim.output.figures import _empty, _folio_order

    s = THROUGHPUT_SUMMARY.conform(summary)
    if s.height == 0:
        return _empty("move_pages() throughput")
    folios = _folio_order(s)
    s = _series(s).with_columns(
        pl.when(pl.col("mode") == "baseline")
        .then(pl.lit("CPU copy"))
        .otherwise(pl.col("lanes").cast(pl.String))
        .alias("series")
    )
    mean, sd = pl.col("mean_gbps"), pl.col("sd_gbps").fill_null(0.0)
    keys = ("series", "lanes", "mode", "folio_size", "folio_bytes")
    sim = s.select(
        *keys,
        pl.lit("simulated").alias("source"),
        mean.alias("gbps"),
        pl.col("lo_gbps").fill_null(mean - sd).clip(lower_bound=1e-3).alias("lo"),
        pl.col("hi_gbps").fill_null(mean + sd).alias("hi"),
    )
    pub_sd = pl.col("published_sd_gbps").fill_null(0.0)
    pub = s.filter(pl.col("published_gbps").is_not_null()).select(
        *keys,
        pl.lit("published").alias("source"),
        pl.col("published_gbps").alias("gbps"),
        (pl.col("published_gbps") - pub_sd).clip(lower_bound=1e-3).alias("lo"),
        (pl.col("published_gbps") + pub_sd).alias("hi"),
    )
    data = pl.concat([sim, pub])
    y_domain = (0.8 * float(data["lo"].min()), 1.25 * float(data["hi"].max()))
    modes = [m for m in ("dma", "mt") if m in data["mode"].to_list()]
    if not modes:
        modes = ["dma"]
    panels = [_throughput_panel(data, m, folios, y_domain) for m in modes]
    chart = (
        panels[0]
        if len(panels) == 1
        else alt.hconcat(*panels).resolve_scale(color="independent", shape="independent")
    )
    return chart.properties(
        title=alt.Title(
            "move_pages() throughput of 1 GiB against folio size",
            subtitle=(
                "lines: simulated mean, band and whisker: its 90% interval; "
                "hollow diamonds: published mean ± sd"
            ),
        )
    )


def speedup_heatmap(summary: pl.DataFrame) -> alt.FacetChart | alt.Chart:
    """Speed-up over the baseline of the same folio size as a heat map, channel count x folio
    size, values printed in the cells; simulated and (where measured) published side by side,
    and the multi-threaded copier's simulated speed-up when it was run."""
    import altair as alt
    import polars as pl

    from migsim.output.figures import _empty, _folio_order

    s = _series(THROUGHPUT_SUMMARY.conform(summary))
    s = s.filter(pl.col("mode").is_in(["dma", "mt"]) & pl.col("speedup").is_not_null())
    if s.height == 0:
        return _empty("Speed-up over baseline")
    folios = _folio_order(s)
    label = {"dma": "DMA", "mt": "MT"}
    parts = []
    for mode in ("dma", "mt"):
        m = s.filter(pl.col("mode") == mode)
        if m.height == 0:
            continue
        parts.append(
            m.select(
                "folio_size",
                "lanes",
                pl.col("speedup").alias("value"),
                pl.lit(f"{label[mode]}, simulated").alias("panel"),
            )
        )
        p = m.filter(pl.col("published_speedup").is_not_null())
        if p.height:
            parts.append(
                p.select(
                    "folio_size",
                    "lanes",
                    pl.col("published_speedup").alias("value"),
                    pl.lit(f"{label[mode]}, published").alias("panel"),
                )
            )
    data = pl.concat(parts)
    panels = list(dict.fromkeys(data["panel"].to_list()))
    lanes = sorted(set(data["lanes"].to_list()))
    vmax = max(float(data["value"].max()), 1.01)
    vmin = min(float(data["value"].min()), 0.99)
    x = alt.X("folio_size:O", sort=folios, title="folio size", axis=alt.Axis(labelAngle=0))
    y = alt.Y("lanes:O", sort=lanes, title="DMA channels / copy threads")
    rect = (
        alt.Chart()
        .mark_rect()
        .encode(
            x=x,
            y=y,
            color=alt.Color(
                "value:Q",
                title="speed-up (×)",
                legend=alt.Legend(values=[v for v in LEGEND_SPEEDUPS if vmin <= v <= vmax]),
                scale=alt.Scale(
                    type="log", scheme="redblue", domain=[vmin, vmax], domainMid=1.0, reverse=False
                ),
            ),
            tooltip=[
                alt.Tooltip("panel:N"),
                alt.Tooltip("lanes:O", title="channels / threads"),
                alt.Tooltip("folio_size:N", title="folio size"),
                alt.Tooltip("value:Q", title="speed-up (×)", format=".2f"),
            ],
        )
    )
    # Dark text on pale cells, white on saturated ones: the cell's position between 1x and the
    # end of the colour scale (log), as the diverging scheme saturates.
    lo, hi = math.log(vmin), math.log(vmax)
    text = (
        alt.Chart()
        .transform_calculate(
            far=f"log(datum.value) > 0 ? log(datum.value) / {hi!r} > 0.55"
            f" : log(datum.value) / {lo!r} > 0.55",
            text="format(datum.value, '.2f') + '×'",
        )
        .mark_text(fontSize=11)
        .encode(
            x=x,
            y=y,
            text="text:N",
            color=alt.condition("datum.far", alt.value("white"), alt.value("black")),
        )
    )
    return (
        alt.layer(rect, text, data=data)
        .properties(width=300, height=26 * max(len(lanes), 3))
        .facet(
            column=alt.Column("panel:N", title=None, sort=panels),
            title=alt.Title(
                "Throughput speed-up over the baseline (serial CPU copy) of the same folio size",
                subtitle="> 1: offload is faster; < 1: slower",
            ),
        )
    )


def parity_chart(summary: pl.DataFrame) -> alt.LayerChart | alt.Chart:
    """Simulated against published throughput for every cell with a published value, log-log,
    the simulated means with their 90% prediction interval, the published with their sd, and
    the y = x line and the mean absolute percentage error in the title."""
    import altair as alt
    import polars as pl

    from migsim.output.figures import (
        MISFIT_COLOUR,
        PARITY_TOLERANCE,
        _empty,
        _folio_order,
        _parity_axes,
        _tolerance_band,
    )

    s = _series(THROUGHPUT_SUMMARY.conform(summary)).filter(pl.col("published_gbps").is_not_null())
    if s.height == 0:
        return _empty("Simulated against published throughput")
    mape, cells = throughput_mape(s)
    folios = _folio_order(s)
    data = s.select(
        "series",
        "folio_size",
        "published_gbps",
        "mean_gbps",
        (pl.col("rel_error") * 100).alias("error_pct"),
        # the 90% prediction interval of the simulated mean where costed, else +- 1 sd
        pl.col("lo_gbps")
        .fill_null(pl.col("mean_gbps") - pl.col("sd_gbps").fill_null(0))
        .clip(lower_bound=1e-3)
        .alias("y_lo"),
        pl.col("hi_gbps")
        .fill_null(pl.col("mean_gbps") + pl.col("sd_gbps").fill_null(0))
        .alias("y_hi"),
        (pl.col("published_gbps") - pl.col("published_sd_gbps").fill_null(0))
        .clip(lower_bound=1e-3)
        .alias("x_lo"),
        (pl.col("published_gbps") + pl.col("published_sd_gbps").fill_null(0)).alias("x_hi"),
    )
    lo = 0.8 * float(min(data["x_lo"].min(), data["y_lo"].min()))
    hi = 1.2 * float(max(data["x_hi"].max(), data["y_hi"].max()))
    scale, x, y, diag = _parity_axes(lo, hi, "mean_gbps")
    colour = alt.Color("folio_size:O", sort=folios, title="folio size")
    base = alt.Chart(data)
    ybars = base.mark_rule(opacity=0.6).encode(
        x=x, y=alt.Y("y_lo:Q", scale=scale), y2="y_hi:Q", color=colour
    )
    xbars = base.mark_rule(opacity=0.6).encode(
        y=y, x=alt.X("x_lo:Q", scale=scale), x2="x_hi:Q", color=colour
    )
    points = base.mark_point(filled=True, size=55).encode(
        x=x,
        y=y,
        color=colour,
        shape=alt.Shape(
            "series:N", title="row", sort=data["series"].unique(maintain_order=True).to_list()
        ),
        tooltip=[
            alt.Tooltip("series:N", title="row"),
            alt.Tooltip("folio_size:N", title="folio size"),
            alt.Tooltip("published_gbps:Q", title="published GB/s", format=".2f"),
            alt.Tooltip("mean_gbps:Q", title="simulated GB/s", format=".2f"),
            alt.Tooltip("error_pct:Q", title="error (%)", format="+.1f"),
        ],
    )
    band = _tolerance_band(lo, hi, scale)
    outside = data.filter(
        (pl.col("mean_gbps") - pl.col("published_gbps")).abs()
        > pl.max_horizontal(
            2 * (pl.col("x_hi") - pl.col("published_gbps")),
            PARITY_TOLERANCE * pl.col("published_gbps"),
        )
    ).with_columns(
        pl.format(
            "{} {} ({}%)",
            pl.col("series"),
            pl.col("folio_size"),
            pl.col("error_pct").round(0).cast(pl.Int64),
        )
        .str.replace(r"\((\d)", "(+$1")
        .alias("label")
    )
    layers = [band, diag, ybars, xbars, points]
    if outside.height:
        layers.append(
            alt.Chart(outside)
            .mark_text(align="left", dx=7, dy=-7, fontSize=10, color=MISFIT_COLOUR)
            .encode(x=x, y=y, text="label:N")
        )
    title = f"Simulated against published throughput: MAPE {mape:.1f}% over {cells} cells"
    sub = (
        f"dashed: y = x; shaded: ±{PARITY_TOLERANCE:.0%} (the tolerance, with 2 published sd); "
        f"bars: simulated 90% interval, published ± sd; labelled: {outside.height} cells outside"
    )
    return alt.layer(*layers).properties(
        width=380, height=380, title=alt.Title(title, subtitle=sub)
    )
