"""What-if studies: the questions the published hardware experiment could not answer.

Five studies, each a function that runs the engine over a small matrix and returns one summary
DataFrame (one row per cell, sorted explicitly), and a ``findings_<study>(df)`` that fills a
template paragraph from that frame (every number in the text is a value of the frame, rounded):

1. ``study_cluster_max``: COMPACT_CLUSTER_MAX x copy back-end x idle/busy machine; the smallest
   cluster size at which DMA compaction is no slower than the CPU copy (or its absence).
2. ``study_engine_class``: the calibrated DMA engine against low-latency engines (the
   per-descriptor ramp and the per-call costs scaled down) over channel counts, for the
   move_pages() throughput table and for compaction.
3. ``study_hybrid``: offload a batch only if it holds at least T bytes (dcbm with a
   ``should_batch``-style threshold); the T that minimises compaction wall time, idle and busy,
   and the kernel CPU time it frees.
4. ``study_fragmentation``: free ratio x fragmentation pattern: pages migrated per allocation,
   wall time, allocation success rate.
5. ``study_latency``: move_pages() of 1 GiB with batch limits from 512 pages to 1 GiB: total
   time against the time until the first folio is usable again.

Common random numbers: the cells of one study share their seeds wherever the compared
mechanism is not what draws the random numbers (the same fragmented node for every compaction
cell, the same trial noise for every batch limit or engine class of a throughput cell), so a
difference between two cells comes from the mechanism, not from the noise.

Compaction scale: the studies run compaction on a node of ``setup.node_bytes`` with
``setup.allocations`` order-9 allocations (the published run, 250 GB and 16384 allocations, is
the default). A smaller node with the allocations scaled by the same factor keeps the
pageblock layout and the share of the node allocated, but not everything: the per-CPU page
lists are sized from the zone, and they decide whether the freed block is captured inside
migrate_pages() or only in the drain (which costs one more batch from the next pageblock).
Down to 1/4 of the published node the run keeps the full-scale mechanism (3 migrate_pages()
calls and ~288 pages per allocation, wall time per allocation within 0.1%); from 1/8 down the
capture moves into migrate_pages() (2 calls, 256 pages). The default configuration uses 1/4.
Times and counts scale with the node; percentages and ratios do not.

Kernel-model simplification (inherited): the page-level run does not depend on any cost, so
a study simulates it once per (cluster_max, free_ratio, pattern) and costs it for every copy
back-end, load, channel count, threshold and engine class.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from migsim.cost.platform import Platform
from migsim.studies.throughput import run_throughput
from migsim.units import COMPACT_CLUSTER_MAX, HPAGE_PUD_NR, PAGE_SIZE, format_size, parse_size

LOADS = ("idle", "busy")
COPIES = ("baseline", "dma")
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


def derive_seed(base: int, *key: Any) -> int:
    """A 32-bit seed derived from `base` and a cell key (stable across runs and machines)."""
    blob = json.dumps([int(base), *key], separators=(",", ":"), default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little")


def compaction_mode(copy: str, load: str) -> str:
    """run_compaction's mode of a copy back-end (baseline, dma) on an idle or busy machine."""
    if copy not in COPIES:
        raise ValueError(f"copy: must be one of {', '.join(COPIES)}; got {copy!r}")
    if load not in LOADS:
        raise ValueError(f"load: must be one of {', '.join(LOADS)}; got {load!r}")
    return copy if load == "idle" else f"busy-{copy}"


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


def _check_choices(name: str, values: Sequence, allowed: Sequence) -> None:
    if not values:
        raise ValueError(f"{name}: must list at least one value")
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ValueError(f"{name}: {bad!r} not allowed; choose from {list(allowed)}")


def _check_ints(name: str, values: Sequence[int], lo: int, hi: int | None = None) -> None:
    if not values:
        raise ValueError(f"{name}: must list at least one value")
    for v in values:
        if isinstance(v, bool) or int(v) != v or v < lo or (hi is not None and v > hi):
            top = "" if hi is None else f"..{hi}"
            raise ValueError(f"{name}: every value must be a whole number in {lo}{top}, got {v!r}")


# ---------------------------------------------------------------------------------------------
# Compaction runs
# ---------------------------------------------------------------------------------------------


@dataclass
class CompactionSetup:
    """The fragmented node every compaction cell of a study starts from, and its scale.

    `node_bytes` bytes of node, `allocations` order-9 allocations per run, the fragmentation
    `free_ratio` and `pattern`, and one `seed` shared by every cell (common random numbers).

    The page-level run (what compaction isolates, migrates and captures) does not depend on
    any cost, so it is simulated once per (cluster_max, free_ratio, pattern) and costed for
    every copy back-end, load, channel count, threshold and engine class (as a fresh reboot
    before each published mode gives every mode the same run).
    """

    node_bytes: int = 250 * 2**30
    allocations: int = 16384
    free_ratio: float = 0.5
    pattern: str = "even"
    seed: int = 1
    _sims: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.node_bytes < 2**30 or self.node_bytes % (2 << 20):
            raise ValueError(
                f"node_bytes: must be a multiple of 2M and at least 1G, got {self.node_bytes}"
            )
        if self.allocations < 1:
            raise ValueError(f"allocations: must be >= 1, got {self.allocations}")
        if self.allocations * (2 << 20) >= self.node_bytes:
            raise ValueError(
                f"allocations: {self.allocations} order-9 allocations need "
                f"{format_size(self.allocations * (2 << 20))}, more than the node "
                f"({format_size(self.node_bytes)})"
            )

    def simulation(self, platform: Platform, cluster_max: int, free_ratio: float, pattern: str):
        """The page-level run of one (cluster_max, free_ratio, pattern), simulated once."""
        from migsim.studies.compaction import simulate

        key = (int(cluster_max), float(free_ratio), str(pattern))
        if key not in self._sims:
            self._sims[key] = simulate(
                platform,
                cluster_max=cluster_max,
                node_bytes=self.node_bytes,
                allocations=self.allocations,
                free_ratio=free_ratio,
                pattern=pattern,
                seed=self.seed,
            )
        return self._sims[key]

    def run(
        self,
        platform: Platform,
        *,
        copy: str,
        load: str,
        channels: int = 1,
        cluster_max: int = COMPACT_CLUSTER_MAX,
        min_batch_bytes: int = 0,
        free_ratio: float | None = None,
        pattern: str | None = None,
    ) -> dict:
        """One compaction cell costed on `platform`; returns its row (the compaction run row
        contract)."""
        free_ratio = self.free_ratio if free_ratio is None else free_ratio
        pattern = self.pattern if pattern is None else pattern
        sim = self.simulation(platform, cluster_max, free_ratio, pattern)
        result = sim.result(
            platform,
            mode=compaction_mode(copy, load),
            channels=channels,
            min_batch_bytes=min_batch_bytes,
        )
        return result.row()


_RUN_METRICS = (
    "wall_ms",
    "user_pct",
    "sys_pct",
    "idle_pct",
    "hog_iterations",
    "pages_migrated",
    "dma_copies",
    "migrate_calls",
    "alloc_success",
    "alloc_fail",
    "capture_in_drain",
    "pages_after_capture",
)


def _metrics(row: dict) -> dict:
    out = {k: row[k] for k in _RUN_METRICS}
    out["sys_ms"] = row["wall_ms"] * row["sys_pct"] / 100.0
    out["us_per_page"] = (
        row["wall_ms"] * 1e3 / row["pages_migrated"] if row["pages_migrated"] else None
    )
    return out


_COMPACTION_DTYPES = {
    "wall_ms": pl.Float64,
    "user_pct": pl.Float64,
    "sys_pct": pl.Float64,
    "idle_pct": pl.Float64,
    "hog_iterations": pl.Float64,
    "pages_migrated": pl.Int64,
    "dma_copies": pl.Int64,
    "migrate_calls": pl.Int64,
    "alloc_success": pl.Int64,
    "alloc_fail": pl.Int64,
    "capture_in_drain": pl.Int64,
    "pages_after_capture": pl.Int64,
    "sys_ms": pl.Float64,
    "us_per_page": pl.Float64,
}


def _frame(rows: list[dict], keys: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={**keys, **_COMPACTION_DTYPES}, strict=False)


def _pct_change(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """(a / b - 1) in percent."""
    return (a / b - 1.0) * 100.0


# ---------------------------------------------------------------------------------------------
# 1. Compaction batch size (COMPACT_CLUSTER_MAX)
# ---------------------------------------------------------------------------------------------


def study_cluster_max(
    platform: Platform,
    *,
    cluster_max: Sequence[int] = (32, 64, 128, 256, 512),
    channels: Sequence[int] = (1,),
    loads: Sequence[str] = LOADS,
    setup: CompactionSetup | None = None,
) -> pl.DataFrame:
    """Compaction wall time, CPU split and hog iterations for every COMPACT_CLUSTER_MAX, copy
    back-end (baseline; DMA with each channel count) and load.

    Columns: load, copy, channels (null for baseline), cluster_max, the run metrics, sys_ms
    (kernel CPU time, ms), us_per_page (wall us per migrated page), baseline_wall_ms,
    vs_baseline_pct (wall time against baseline at the same cluster size and load, %,
    positive = slower), hog_vs_baseline_pct (busy: competing-task iterations against
    baseline, %), break_even (1 on the smallest cluster size at which DMA is no slower than
    baseline, per load and channel count; 0 elsewhere).
    """
    _check_ints("cluster_max", cluster_max, 1, 512)
    _check_ints("channels", channels, 1, platform.dma.max_channels_count)
    _check_choices("loads", loads, LOADS)
    setup = setup or CompactionSetup()
    rows = []
    for load in loads:
        for cm in sorted(set(cluster_max)):
            rows.append(
                {
                    "load": load,
                    "copy": "baseline",
                    "channels": None,
                    "cluster_max": cm,
                    **_metrics(setup.run(platform, copy="baseline", load=load, cluster_max=cm)),
                }
            )
            for ch in sorted(set(channels)):
                row = setup.run(platform, copy="dma", load=load, channels=ch, cluster_max=cm)
                rows.append(
                    {
                        "load": load,
                        "copy": "dma",
                        "channels": ch,
                        "cluster_max": cm,
                        **_metrics(row),
                    }
                )
    df = _frame(
        rows, {"load": pl.String, "copy": pl.String, "channels": pl.Int32, "cluster_max": pl.Int32}
    )
    base = df.filter(pl.col("copy") == "baseline").select(
        "load",
        "cluster_max",
        pl.col("wall_ms").alias("baseline_wall_ms"),
        pl.col("hog_iterations").alias("_base_hog"),
    )
    df = df.join(base, on=["load", "cluster_max"], how="left").with_columns(
        _pct_change(pl.col("wall_ms"), pl.col("baseline_wall_ms")).alias("vs_baseline_pct"),
        _pct_change(pl.col("hog_iterations"), pl.col("_base_hog")).alias("hog_vs_baseline_pct"),
    )
    no_slower = (pl.col("copy") == "dma") & (pl.col("wall_ms") <= pl.col("baseline_wall_ms"))
    first = (
        df.filter(no_slower)
        .group_by("load", "channels")
        .agg(pl.col("cluster_max").min().alias("_first"))
    )
    df = (
        df.join(first, on=["load", "channels"], how="left", nulls_equal=True)
        .with_columns(
            (no_slower & (pl.col("cluster_max") == pl.col("_first")))
            .fill_null(False)
            .cast(pl.Int32)
            .alias("break_even")
        )
        .drop("_first", "_base_hog")
    )
    return df.sort(["load", "copy", "channels", "cluster_max"], nulls_last=False)


def _pct_word(pct: float, more: str, less: str) -> str:
    return f"{abs(pct):.1f}% {more if pct > 0 else less}"


def findings_cluster_max(df: pl.DataFrame) -> str:
    """The study's answer as a paragraph; every number is a (rounded) value of `df`."""
    out = []
    sizes = sorted(df["cluster_max"].unique().to_list())
    lo, hi = sizes[0], sizes[-1]
    dma = df.filter(pl.col("copy") == "dma")
    base = df.filter(pl.col("copy") == "baseline")
    for load in [x for x in LOADS if x in df["load"].to_list()]:
        for ch in sorted(dma.filter(pl.col("load") == load)["channels"].unique().to_list()):
            cells = dma.filter((pl.col("load") == load) & (pl.col("channels") == ch)).sort(
                "cluster_max"
            )
            r0, r1 = cells.row(0, named=True), cells.row(-1, named=True)
            s = (
                f"On a{'n' if load == 'idle' else ''} {load} machine, DMA compaction with "
                f"{ch} channel(s) is {_pct_word(r0['vs_baseline_pct'], 'slower', 'faster')} "
                f"than the CPU copy at COMPACT_CLUSTER_MAX = {lo} ({r0['wall_ms']:.1f} ms "
                f"against {r0['baseline_wall_ms']:.1f} ms)"
            )
            be = cells.filter(pl.col("break_even") == 1)
            if be.height:
                b = be.row(0, named=True)
                if b["cluster_max"] == lo:
                    s += f", so it is no slower already at the smallest size, {lo}."
                else:
                    s += (
                        f"; the smallest COMPACT_CLUSTER_MAX at which it is no slower is "
                        f"{b['cluster_max']} ({b['wall_ms']:.1f} ms against "
                        f"{b['baseline_wall_ms']:.1f} ms)."
                    )
            else:
                s += (
                    f"; it stays slower at every COMPACT_CLUSTER_MAX up to {hi} "
                    f"({_pct_word(r1['vs_baseline_pct'], 'slower', 'faster')} at {hi}): "
                    f"no break-even in the range."
                )
            if load == "busy" and r0["hog_vs_baseline_pct"] is not None:
                s += (
                    f" The competing task completes "
                    f"{_pct_word(r0['hog_vs_baseline_pct'], 'more', 'fewer')} iterations "
                    f"than with the CPU copy at {lo} and "
                    f"{_pct_word(r1['hog_vs_baseline_pct'], 'more', 'fewer')} at {hi}."
                )
            elif load == "idle":
                s += (
                    f" The migrating CPU is idle {r0['idle_pct']:.1f}% of the time at {lo} "
                    f"and {r1['idle_pct']:.1f}% at {hi}."
                )
            out.append(s)
    ref_load = "idle" if "idle" in base["load"].to_list() else "busy"
    b = base.filter(pl.col("load") == ref_load).sort("cluster_max")
    if b.height:
        b0, b1 = b.row(0, named=True), b.row(-1, named=True)
        fast = b.sort(["wall_ms", "cluster_max"]).row(0, named=True)
        slow = b.sort(["wall_ms", "cluster_max"], descending=[True, False]).row(0, named=True)
        out.append(
            f"With the CPU copy ({ref_load}), raising COMPACT_CLUSTER_MAX from {lo} to {hi} "
            f"changes the migrate_pages() calls from {b0['migrate_calls']} to "
            f"{b1['migrate_calls']} and the pages migrated from {b0['pages_migrated']} to "
            f"{b1['pages_migrated']} (of which {b0['pages_after_capture']} and "
            f"{b1['pages_after_capture']} after the allocation's block was already free, "
            f"captured only in the drain); its wall time is lowest at {fast['cluster_max']} "
            f"({fast['wall_ms']:.1f} ms) and highest at {slow['cluster_max']} "
            f"({slow['wall_ms']:.1f} ms)."
        )
    return " ".join(out)


# ---------------------------------------------------------------------------------------------
# 2. DMA engine class
# ---------------------------------------------------------------------------------------------


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
            f"folios, {b['channels']} channel(s): {b['throughput_gbps']:.2f} GB/s against "
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
            f"In compaction on a{'n' if load == 'idle' else ''} {load} machine with {ch0} "
            f"channel(s), DMA takes {', '.join(parts)}, against {base_ms:.1f} ms for the "
            f"CPU copy."
        )
        best = cells.sort(["wall_ms", "latency_scale", "channels"], descending=[False, True, False])
        b = best.row(0, named=True)
        s += (
            f" The fastest cell is {b['engine']} with {b['channels']} channel(s): "
            f"{b['wall_ms']:.1f} ms, {b['speedup']:.3f}x the CPU copy's speed."
        )
        firsts = cells.filter(pl.col("no_slower_first") == 1)
        for sc in sorted(cells["latency_scale"].unique().to_list(), reverse=True):
            f = firsts.filter(pl.col("latency_scale") == sc)
            label = engine_label(sc)
            if f.height:
                s += f" {label.capitalize()} is no slower than it from {f['channels'][0]} channel(s)."
            else:
                s += f" {label.capitalize()} is slower at every channel count."
        out.append(s)
    return " ".join(out)


# ---------------------------------------------------------------------------------------------
# 3. Hybrid offload threshold
# ---------------------------------------------------------------------------------------------


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
    out = []
    for load in [x for x in LOADS if x in df["load"].to_list()]:
        for ch in sorted(df.filter(pl.col("load") == load)["channels"].unique().to_list()):
            cells = df.filter((pl.col("load") == load) & (pl.col("channels") == ch))
            b = cells.filter(pl.col("best") == 1).row(0, named=True)
            s = (
                f"On a{'n' if load == 'idle' else ''} {load} machine with {ch} DMA channel(s), "
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


# ---------------------------------------------------------------------------------------------
# 4. Fragmentation level
# ---------------------------------------------------------------------------------------------


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
    copy = "baseline" if "baseline" in df["copy"].to_list() else df["copy"][0]
    cells = df.filter(pl.col("copy") == copy)
    patterns = cells["pattern"].unique(maintain_order=True).to_list()
    parts = []
    for fr in sorted(cells["free_ratio"].unique().to_list()):
        c = cells.filter(pl.col("free_ratio") == fr)
        ppa = c["pages_per_alloc"].drop_nulls()
        text = f"at free ratio {fr:g}, "
        if ppa.len():
            text += f"{_range(ppa.min(), ppa.max(), '.1f')} pages are migrated per allocation, "
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
        s = (
            f"At the same free ratio the patterns differ by at most {ppa_spread:.1f} pages "
            f"per allocation and {wall_spread:.1f}% in wall time"
        )
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
            f"{r['free_ratio']:g}: {r['pages_per_alloc']:.1f} pages and "
            f"{r['wall_ms'] / r['alloc_success']:.3f} ms per successful allocation."
        )
    return " ".join(out)


# ---------------------------------------------------------------------------------------------
# 5. Latency against throughput
# ---------------------------------------------------------------------------------------------


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
    return "the CPU copy" if mode == "baseline" else f"DMA with {channels} channel(s)"


def findings_latency(df: pl.DataFrame) -> str:
    """The study's answer as a paragraph; every number is a (rounded) value of `df`."""
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
            f"time from {a['total_ms']:.2f} ms to {z['total_ms']:.2f} ms "
            f"({_pct_word(z['total_vs_smallest_pct'], 'more', 'less')}) and the first-folio "
            f"time from {a['first_folio_us']:.1f} us to {z['first_folio_us']:.1f} us "
            f"({z['first_folio_x']:.1f}x); {k['knee_pct']:g}% of the best throughput is "
            f"reached at {k['batch_limit_pages']} pages ({k['throughput_gbps']:.2f} GB/s), "
            f"with the first folio back after {k['first_folio_us']:.1f} us."
        )
    return " ".join(out)


STUDIES = ("cluster_max", "engine_class", "hybrid", "fragmentation", "latency")
FINDINGS = {
    "cluster_max": findings_cluster_max,
    "engine_class": findings_engine_class,
    "hybrid": findings_hybrid,
    "fragmentation": findings_fragmentation,
    "latency": findings_latency,
}
