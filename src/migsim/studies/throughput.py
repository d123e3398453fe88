"""The move_pages() throughput experiment of the RFC: move `total_bytes` of folios of one size
between two NUMA nodes, `trials` times, and report GB/s per trial with the phase breakdown.

One trial is one move_pages() call (its per-call and per-address work, then one
migrate_pages() over the whole list (the benchmark kernel raised
NR_MAX_BATCHED_MIGRATION to HPAGE_PUD_NR, so 1 GiB is one batch)). Trial-to-trial variation is a
lognormal factor on every cost of the trial (platform noise.trial_sd_frac), drawn from the
seeded generator; the same seed gives the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from migsim import limits
from migsim.cost.copiers import make_copier
from migsim.cost.platform import Platform
from migsim.kernel.migrate import MigrateResult, migrate_trials, uniform_batch_totals
from migsim.units import HPAGE_PUD_NR, PAGE_SIZE, format_size

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
