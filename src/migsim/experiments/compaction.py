"""The compaction experiment of the RFC reply: fragment a ~250 GB node to 100% (half of every
2 MB region freed), then allocate `allocations` order-9 pages in a tight loop on one CPU;
every allocation goes through direct compaction. Four modes: vanilla kernel (CPU copy) or
DMA offload (dcbm), each alone on its CPU or against a CPU hog pinned to the same CPU.

The run is simulated page by page (``migsim.compaction``), then costed: all migrate_pages()
calls of the run in one vectorised ``cost_batches`` call (the same code as the throughput
experiment), the compaction work between calls with the platform's ``compaction`` costs, and
the CPU split with the timeline (``migsim.timeline``). The published table is never read here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from .. import limits
from ..compaction import (
    NR_WORK,
    VMSTAT_KEYS,
    W_BUDDY_FREED,
    W_FREE_ISOLATED,
    W_FREE_SCANNED,
    W_ISOLATED,
    W_MIGRATE_SCANNED,
    W_SLOWPATH,
    CompactionLog,
    Compactor,
)
from ..copiers import US, check_rfc, make_copier
from ..fragment import FragmentConfig, fragment, load_state, metrics
from ..migrate import cost_batches
from ..platform import Platform
from ..timeline import TimelineResult, run_timeline
from ..units import PAGE_SIZE, PAGEBLOCK_ORDER, format_size
from ..vmstat import alloc_latency_us, percentiles
from ..zone import Zone

MODES = ("baseline", "dma", "busy-baseline", "busy-dma")
# dcbm's nr_dma_chan default; the reply does not say it was changed for the compaction runs
DEFAULT_CHANNELS = 1


def mode_parts(mode: str) -> tuple[str, bool]:
    """('baseline' or 'dma', busy?) of a compaction mode."""
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {', '.join(MODES)}; got {mode!r}")
    return mode.removeprefix("busy-"), mode.startswith("busy-")


@dataclass
class CallCosts:
    """Per-call costs of a run (seconds), in the order the CPU meets them: ``pre_s[k]`` the
    compaction work before call k, ``run_s[k]`` its unmap, flush and copy set-up (DMA) or copy
    (CPU), ``sleep_s[k]`` the wait on its copy as this mode's CPU sees it, ``move_s[k]`` its
    move phase; ``tail_s`` the work after the last call; ``unit_s`` seconds per unit of each
    work counter (W_*), as charged in this run. migsim.trace places events on this clock."""

    pre_s: np.ndarray
    run_s: np.ndarray
    sleep_s: np.ndarray
    move_s: np.ndarray
    tail_s: float
    unit_s: np.ndarray


@dataclass
class RunCost:
    """Cost of a logged run: per-call arrays and the timeline (seconds)."""

    timeline: TimelineResult
    dma_copies: int
    dma_fallbacks: int
    migrate_s: float  # migrate_pages() CPU work (unmap, flush, copy set-up or copy, move)
    compaction_s: float  # compaction work around it (scanners, isolation, frees, slow path)
    work_s: dict[str, float] = field(default_factory=dict)
    calls: CallCosts | None = None


def unit_costs(platform: Platform) -> np.ndarray:
    """Seconds per unit of each logged work counter (migsim.compaction W_*)."""
    c = platform.compaction
    unit = np.zeros(NR_WORK)
    unit[W_MIGRATE_SCANNED] = c.migrate_scan_pfn_us
    unit[W_FREE_SCANNED] = c.free_scan_pfn_us
    unit[W_ISOLATED] = c.isolate_page_us
    unit[W_FREE_ISOLATED] = c.free_isolate_page_us
    unit[W_BUDDY_FREED] = c.buddy_free_page_us
    unit[W_SLOWPATH] = c.slowpath_us
    return unit * US


def cost_log(
    log: CompactionLog,
    platform: Platform,
    *,
    dma: bool,
    busy: bool,
    channels: int = DEFAULT_CHANNELS,
    fail_rate: float = 0.0,
    min_batch_bytes: int = 0,
    rng: np.random.Generator | None = None,
    scale: float = 1.0,
    rfc: str = "v4",
) -> RunCost:
    """Cost every migrate_pages() call of `log` at once and account the CPU timeline.

    Order of one call k: compaction work since call k-1, unmap + batched TLB flush, copy set-up
    (DMA) or copy (CPU), the sleep on the DMA completion, then the move phase, which belongs
    to the next CPU burst."""
    rng = rng or np.random.default_rng(0)
    copier = make_copier(
        "dma" if dma else "baseline",
        channels=channels,
        fail_rate=fail_rate,
        min_batch_bytes=min_batch_bytes,
        rfc=rfc,
    )
    pages = log.pages
    # order-0 anonymous pages: one folio and one PTE each
    bc = cost_batches(pages, pages, pages, copier, platform, rng, scale)
    unit = unit_costs(platform) * scale
    pre = log.work @ unit if len(pages) else np.zeros(0)
    tail = float(log.tail @ unit)
    before = pre + bc.unmap_s + bc.flush_s + bc.copy_cpu_s
    bursts = np.empty(len(pages) + 1)
    bursts[0] = before[0] if len(pages) else 0.0
    if len(pages):
        bursts[1:-1] = bc.move_s[:-1] + before[1:]
        bursts[-1] = bc.move_s[-1] + tail
    else:
        bursts[-1] = tail
    timeline = run_timeline(bursts, bc.copy_wait_s, platform, busy=busy, wake_s=bc.copy_wake_s)
    sleep = bc.copy_wait_s
    if busy:  # the part of a wake-up only an idle CPU pays (run_timeline)
        sleep = np.maximum(sleep - bc.copy_wake_s, 0.0)
    calls = CallCosts(pre, bc.unmap_s + bc.flush_s + bc.copy_cpu_s, sleep, bc.move_s, tail, unit)
    per_counter = (log.work.sum(0) + log.tail) * unit
    names = ("migrate_scan", "free_scan", "isolate", "free_isolate", "buddy_free", "slowpath")
    return RunCost(
        timeline=timeline,
        dma_copies=int(bc.dma_copies.sum()),
        dma_fallbacks=int(bc.fallbacks.sum()),
        migrate_s=float((bc.sys_s).sum()),
        compaction_s=float(pre.sum() + tail),
        work_s={n: float(v) for n, v in zip(names, per_counter, strict=True)},
        calls=calls,
    )


# the Compactor's per-run counters that a result reports beside the vmstat ones
RUN_COUNTERS = (
    "alloc_success",
    "alloc_fail",
    "migrate_calls",
    "capture_in_migrate",
    "capture_in_drain",
    "batches_after_capture",
    "pages_after_capture",
)


@dataclass
class CompactionResult:
    """One compaction run: configuration, counters and the CPU timeline."""

    mode: str
    channels: int | None
    cluster_max: int
    node_bytes: int
    allocations: int
    order: int
    free_ratio: float
    pattern: str
    seed: int
    fail_rate: float
    min_batch_bytes: int
    platform: str
    vmstat: dict[str, int]
    alloc_success: int
    alloc_fail: int
    migrate_calls: int
    capture_in_migrate: int
    capture_in_drain: int
    batches_after_capture: int
    pages_after_capture: int
    cost: RunCost
    fragmentation: dict = field(default_factory=dict)
    # per allocation that entered the slow path: entry to page returned, us (migsim.trace)
    alloc_latency_us: np.ndarray = field(default_factory=lambda: np.zeros(0))
    log: CompactionLog | None = None
    zone_pfns: tuple[int, int] = (0, 0)  # zone_start_pfn, zone_end_pfn

    @property
    def wall_ms(self) -> float:
        return self.cost.timeline.wall_s * 1e3

    @property
    def pages_migrated(self) -> int:
        return self.vmstat["pgmigrate_success"]

    def row(self) -> dict:
        """One dict in the compaction run row contract (plus a few extra columns)."""
        t = self.cost.timeline
        dma = self.mode.endswith("dma")
        row = {
            "experiment": "compaction",
            "mode": self.mode,
            "channels": self.channels,
            "cluster_max": self.cluster_max,
            "node_bytes": self.node_bytes,
            "allocations": self.allocations,
            "free_ratio": self.free_ratio,
            "pattern": self.pattern,
            "seed": self.seed,
            "min_batch_bytes": self.min_batch_bytes,
            "wall_ms": self.wall_ms,
            "pages_migrated": self.pages_migrated,
            "dma_copies": self.cost.dma_copies if dma else None,
            "hog_iterations": t.hog_iterations,
            "user_pct": t.user_pct,
            "sys_pct": t.sys_pct,
            "idle_pct": t.idle_pct,
            "alloc_success": self.alloc_success,
            "alloc_fail": self.alloc_fail,
            "migrate_calls": self.migrate_calls,
        }
        row.update({k: self.vmstat[k] for k in VMSTAT_KEYS if k != "pgmigrate_success"})
        row["pgmigrate_success"] = self.vmstat["pgmigrate_success"]
        row.update(
            {
                "order": self.order,
                "fail_rate": self.fail_rate,
                "wall_s": t.wall_s,
                "sys_s": t.sys_s,
                "user_s": t.user_s,
                "idle_s": t.idle_s,
                "sleep_s": t.sleep_s,
                "context_switches": t.context_switches,
                "dma_fallbacks": self.cost.dma_fallbacks if dma else None,
                "migrate_cpu_s": self.cost.migrate_s,
                "compaction_cpu_s": self.cost.compaction_s,
                "capture_in_migrate": self.capture_in_migrate,
                "capture_in_drain": self.capture_in_drain,
                "pages_after_capture": self.pages_after_capture,
                "platform": self.platform,
            }
        )
        lat = self.alloc_latency_us
        row.update({f"alloc_latency_{k}_us": v for k, v in percentiles(lat).items()})
        row["alloc_latency_us"] = lat.tolist()
        return row

    def summary(self) -> dict:
        """What ``--json`` prints besides the row: vmstat deltas and latency percentiles."""
        return {
            "vmstat": dict(self.vmstat),
            "alloc_latency_us": percentiles(self.alloc_latency_us),
        }


def check_args(
    platform: Platform,
    *,
    mode: str,
    channels: int | None,
    cluster_max: int,
    node_bytes: int,
    allocations: int,
    order: int,
    free_ratio: float,
    pattern: str,
    fail_rate: float,
    min_batch_bytes: int,
    state,
) -> tuple[str, bool]:
    """All argument checks of a run, before any work; raises ValueError naming the argument."""
    kind, busy = mode_parts(mode)
    if kind == "dma":
        why = f"the DMA channels of platform {platform.name}"
        limits.CHANNELS.check(channels, "channels", hi=platform.dma.max_channels_count, why=why)
    limits.CLUSTER_MAX.check(cluster_max, "cluster_max")
    limits.ORDER.check(order, "order")
    limits.ALLOCATIONS.check(allocations, "allocations")
    limits.FAIL_RATE.check(fail_rate, "fail_rate")
    limits.MIN_BATCH_BYTES.check(min_batch_bytes, "min_batch_bytes")
    if state is None:
        FragmentConfig(node_bytes=node_bytes, free_ratio=free_ratio, pattern=pattern).resolved()
        request = allocations * (PAGE_SIZE << order)
        if request > node_bytes:
            raise ValueError(
                f"allocations: {allocations} x {format_size(PAGE_SIZE << order)} = "
                f"{format_size(request)} is more memory than the {format_size(node_bytes)} node"
            )
        limits.check_memory(
            limits.compaction_memory(node_bytes),
            "node_bytes",
            f"simulating a {format_size(node_bytes)} node",
        )
    return kind, busy


@dataclass
class Simulation:
    """The page-level run (independent of every cost): what compaction did, call by call.
    The same run is costed for any mode and platform with :meth:`result` (a fresh reboot
    before each published mode gives each mode this same run)."""

    cluster_max: int
    node_bytes: int
    allocations: int
    order: int
    free_ratio: float
    pattern: str
    seed: int
    log: CompactionLog
    vmstat: dict[str, int]
    alloc_success: int
    alloc_fail: int
    migrate_calls: int
    capture_in_migrate: int
    capture_in_drain: int
    batches_after_capture: int
    pages_after_capture: int
    fragmentation: dict
    zone_pfns: tuple[int, int] = (0, 0)  # zone_start_pfn, zone_end_pfn (trace lines)

    def result(
        self,
        platform: Platform,
        *,
        mode: str,
        channels: int | None = DEFAULT_CHANNELS,
        fail_rate: float = 0.0,
        min_batch_bytes: int = 0,
        noise: bool = False,
        rfc: str = "v4",
        seed: int | None = None,
    ) -> CompactionResult:
        """Cost this run in `mode` on `platform`, with the dcbm of series version `rfc`.
        `seed` (default: the run's own) seeds the costing (noise, DMA failures) and is the
        result's seed: a run simulated from a saved state does not depend on its seed, so one
        simulation serves runs of other seeds."""
        kind, busy = mode_parts(mode)
        seed = self.seed if seed is None else int(seed)
        rng = np.random.default_rng(seed)
        scale = platform.trial_scale(rng) if noise else 1.0
        cost = cost_log(
            self.log,
            platform,
            dma=kind == "dma",
            busy=busy,
            channels=channels or DEFAULT_CHANNELS,
            fail_rate=fail_rate,
            min_batch_bytes=min_batch_bytes,
            rng=rng,
            scale=scale,
            rfc=rfc,
        )
        # everything the page-level run knows carries over unchanged
        shared = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "log"}
        return CompactionResult(
            mode=mode,
            channels=channels if kind == "dma" else None,
            fail_rate=fail_rate,
            min_batch_bytes=min_batch_bytes,
            platform=platform.name,
            cost=cost,
            alloc_latency_us=alloc_latency_us(self.log, cost),
            log=self.log,
            **{**shared, "vmstat": dict(self.vmstat), "seed": seed},
        )


def fragmented_zone(
    platform: Platform,
    state: Zone | str | os.PathLike | None,
    node_bytes: int,
    free_ratio: float,
    pattern: str,
    seed: int,
) -> tuple[Zone, FragmentConfig | None]:
    """The zone a run starts from: `state` itself, the state saved in that file (with the
    configuration that made it), or a node fragmented now from the arguments."""
    if state is None:
        cfg = FragmentConfig(
            node_bytes=node_bytes, free_ratio=free_ratio, pattern=pattern, seed=seed
        )
        return fragment(cfg, node_cpus=platform.compaction.node_cpus_count), None
    if isinstance(state, Zone):
        return state, None
    return load_state(Path(state))


def simulate(
    platform: Platform,
    *,
    cluster_max: int = 32,
    node_bytes: int = 250 * 2**30,
    allocations: int = 16384,
    free_ratio: float = 0.5,
    pattern: str = "even",
    seed: int = 1,
    state: Zone | str | os.PathLike | None = None,
    progress: bool = False,
    order: int = PAGEBLOCK_ORDER,
    trace: bool = False,
) -> Simulation:
    """Fragment a node (or take `state`: a fragmented Zone, which is consumed, or a saved state
    file) and run `allocations` alloc_pages_node(order) calls on one CPU (`trace`: mark every
    tracepoint event in the log, for migsim.trace)."""
    check_args(
        platform,
        mode="baseline",
        channels=None,
        cluster_max=cluster_max,
        node_bytes=node_bytes,
        allocations=allocations,
        order=order,
        free_ratio=free_ratio,
        pattern=pattern,
        fail_rate=0.0,
        min_batch_bytes=0,
        state=state,
    )
    zone, cfg = fragmented_zone(platform, state, node_bytes, free_ratio, pattern, seed)
    if cfg is not None:
        free_ratio, pattern = cfg.free_ratio, cfg.pattern
    frag = metrics(zone)
    comp = Compactor(zone, cluster_max=cluster_max, trace=trace)
    _allocate(comp, allocations, order, progress)
    return Simulation(
        cluster_max=cluster_max,
        node_bytes=zone.nr_pages * PAGE_SIZE,
        allocations=allocations,
        order=order,
        free_ratio=free_ratio,
        pattern=pattern,
        seed=seed,
        log=comp.log(),
        vmstat=dict(comp.vmstat),
        **{k: getattr(comp, k) for k in RUN_COUNTERS},
        fragmentation=frag,
        zone_pfns=(zone.zone_start_pfn, zone.zone_end_pfn),
    )


def run_compaction(
    platform: Platform,
    *,
    mode: str,
    channels: int | None = DEFAULT_CHANNELS,
    cluster_max: int = 32,
    node_bytes: int = 250 * 2**30,
    allocations: int = 16384,
    free_ratio: float = 0.5,
    pattern: str = "even",
    seed: int = 1,
    fail_rate: float = 0.0,
    min_batch_bytes: int = 0,
    state: Zone | str | os.PathLike | None = None,
    progress: bool = False,
    order: int = PAGEBLOCK_ORDER,
    noise: bool = False,
    trace: bool = False,
    rfc: str = "v4",
) -> CompactionResult:
    """Fragment a node (or take `state`), run `allocations` alloc_pages_node(order) calls on
    one CPU and cost the run in `mode`. Sizes in bytes. `noise` multiplies every cost of the
    run by one lognormal factor (platform noise.trial_sd_frac); off by default, the published
    table being one run per mode. `rfc` selects the series version whose dcbm runs."""
    check_rfc(rfc)
    check_args(
        platform,
        mode=mode,
        channels=channels,
        cluster_max=cluster_max,
        node_bytes=node_bytes,
        allocations=allocations,
        order=order,
        free_ratio=free_ratio,
        pattern=pattern,
        fail_rate=fail_rate,
        min_batch_bytes=min_batch_bytes,
        state=state,
    )
    sim = simulate(
        platform,
        cluster_max=cluster_max,
        node_bytes=node_bytes,
        allocations=allocations,
        free_ratio=free_ratio,
        pattern=pattern,
        seed=seed,
        state=state,
        progress=progress,
        order=order,
        trace=trace,
    )
    return sim.result(
        platform,
        mode=mode,
        channels=channels,
        fail_rate=fail_rate,
        min_batch_bytes=min_batch_bytes,
        noise=noise,
        rfc=rfc,
    )


def _allocate(comp: Compactor, allocations: int, order: int, progress: bool) -> None:
    """The test module's loop: alloc_pages_node(order) `allocations` times."""
    if not progress:
        for _ in range(allocations):
            comp.alloc_pages_node(order)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    cols = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn())
    with Progress(*cols, TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("alloc_pages_node", total=allocations)
        step = 256
        for i in range(0, allocations, step):
            for _ in range(min(step, allocations - i)):
                comp.alloc_pages_node(order)
            bar.update(task, completed=min(i + step, allocations))


def reproduce_compaction(
    platform: Platform,
    seed: int = 1,
    *,
    channels: int = DEFAULT_CHANNELS,
    progress: bool = False,
    rfc: str = "v4",
) -> list[dict]:
    """The four published modes at full scale (250 GB node, 16384 order-9 allocations):
    one row each. The page-level run is the same in every mode (nothing in it depends on
    time), so it is simulated once and costed four times."""
    sim = simulate(platform, seed=seed, progress=progress)
    return mode_rows(sim, platform, channels=channels, rfc=rfc)


def mode_rows(
    sim: Simulation, platform: Platform, *, channels: int = DEFAULT_CHANNELS, rfc: str = "v4"
) -> list:
    """One row per published mode, all costed from the one page-level run `sim`."""
    check_rfc(rfc)
    return [sim.result(platform, mode=m, channels=channels, rfc=rfc).row() for m in MODES]


def run_compact_memory(
    platform: Platform,
    *,
    node_bytes: int = 1 << 30,
    free_ratio: float = 0.5,
    pattern: str = "even",
    seed: int = 1,
    mode: str = "baseline",
    channels: int = DEFAULT_CHANNELS,
    state: Zone | str | os.PathLike | None = None,
) -> dict:
    """Whole-zone compaction of a fragmented node, as ``echo 1 > /proc/sys/vm/compact_memory``
    (synchronous, order -1, skip hints ignored). Returns pages migrated, wall time (s) and the
    /proc/vmstat counters, for comparison with a host measurement."""
    kind, busy = mode_parts(mode)
    zone, _ = fragmented_zone(platform, state, node_bytes, free_ratio, pattern, seed)
    before = metrics(zone)
    comp = Compactor(zone)
    comp.compact_memory()
    zone.drain_pages()  # the pcp lists are drained soon after (vmstat_update); count it
    cost = cost_log(comp.log(), platform, dma=kind == "dma", busy=busy, channels=channels)
    after = metrics(zone)
    t = cost.timeline
    return {
        "mode": mode,
        "node_bytes": zone.nr_pages * PAGE_SIZE,
        "pages_migrated": comp.vmstat["pgmigrate_success"],
        "wall_s": t.wall_s,
        "sys_s": t.sys_s,
        "idle_s": t.idle_s,
        "migrate_calls": comp.migrate_calls,
        **{k: comp.vmstat[k] for k in VMSTAT_KEYS},
        "buddyinfo_before": before["buddyinfo"],
        "buddyinfo_after": after["buddyinfo"],
        "unusable_index_9_before": before["unusable_index_9"],
        "unusable_index_9_after": after["unusable_index_9"],
    }
