"""The compaction experiment of the RFC reply: fragment a ~250 GB node to 100% (half of every
2 MB region freed), then allocate `allocations` order-9 pages in a tight loop on one CPU;
every allocation goes through direct compaction. Four modes: vanilla kernel (CPU copy) or
DMA offload (dcbm), each alone on its CPU or against a CPU hog pinned to the same CPU.

The run is simulated page by page (``migsim.kernel.compaction``), then costed: all migrate_pages()
calls of the run in one vectorised ``cost_batches`` call (the same code as the throughput
experiment), the compaction work between calls with the platform's ``compaction`` costs, and
the CPU split with the timeline (``migsim.cost.timeline``). The published table is never read here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from migsim import limits
from migsim.cost.copiers import US, check_rfc, make_copier
from migsim.cost.platform import Platform
from migsim.cost.timeline import TimelineResult, run_timeline
from migsim.kernel.compaction import (
    CAPTURE_CONTEXTS,
    NR_WORK,
    VMSTAT_KEYS,
    W_ALLOC,
    W_ALLOC_PAGES,
    W_BUDDY_FREED,
    W_COMPACT_ZONE,
    W_DRAIN,
    W_FREE_ISOLATED,
    W_FREE_SCANNED,
    W_FREELIST,
    W_ISOLATE_FREE,
    W_ISOLATED,
    W_MIGRATE_SCANNED,
    W_SLOWPATH,
    CompactionLog,
    Compactor,
)
from migsim.kernel.fragment import FragmentConfig, fragment, load_state, metrics
from migsim.kernel.migrate import cost_batches
from migsim.kernel.vmstat import alloc_latency_us, percentiles
from migsim.kernel.zone import Zone
from migsim.output.schema import F64, I32, I64, LIST_F64, S, Schema, Table, _c, _signed
from migsim.units import COMPACT_CLUSTER_MAX, PAGE_SIZE, PAGEBLOCK_ORDER, format_size

if TYPE_CHECKING:
    import altair as alt
    import polars as pl

MODES = ("baseline", "dma", "busy-baseline", "busy-dma")
# dcbm's nr_dma_chan default; the reply does not say it was changed for the compaction runs
DEFAULT_CHANNELS = 1
# the reply's module calls alloc_pages_node() in a loop from module code: run from its init
# function that is the insmod task (a user task, not PF_KTHREAD), so task_capc() lets it
# capture; "kthread" is the other reading (a kthread_run() loop), where it never captures
DEFAULT_CAPTURE = "task"
CACHE_LINE = 64


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
    work counter (W_*), as charged in this run. migsim.formats.trace places events on this clock."""

    pre_s: np.ndarray
    run_s: np.ndarray
    sleep_s: np.ndarray
    move_s: np.ndarray
    tail_s: float
    unit_s: np.ndarray


@dataclass
class RunCost:
    """Cost of a logged run: per-call arrays and the timeline (seconds).

    ``work_s`` is the CPU time of the run by the kernel function that pays it (the compaction
    work around migrate_pages() and the phases of migrate_pages() itself); its values add up
    to ``migrate_s + compaction_s``."""

    timeline: TimelineResult
    dma_copies: int
    dma_fallbacks: int
    migrate_s: float  # migrate_pages() CPU work (unmap, flush, copy set-up or copy, move)
    compaction_s: float  # compaction work around it (scanners, isolation, frees, slow path)
    work_s: dict[str, float] = field(default_factory=dict)
    calls: CallCosts | None = None


def cost_parts(platform: Platform) -> list[tuple[str, int, float]]:
    """The compaction costs outside migrate_pages(), each named after the kernel function that
    pays it: (name, logged W_* counter, seconds per counted unit). Several parts can share one
    counter (a migration target pays __isolate_free_page, post_alloc_hook and, under
    init_on_alloc, the zeroing of kernel_init_pages)."""
    c = platform.compaction
    clear_us = PAGE_SIZE / (c.clear_page_gbps * 1e3) if c.init_on_alloc_switch else 0.0
    parts = [
        ("isolate_migratepages_block: per pfn", W_MIGRATE_SCANNED, c.migrate_scan_pfn_us),
        ("isolate_freepages_block: per pfn", W_FREE_SCANNED, c.free_scan_pfn_us),
        ("folio_try_get (isolate_migratepages_block)", W_ISOLATED, c.folio_try_get_us),
        (
            "folio_test_clear_lru, lruvec_del_folio (isolate_migratepages_block)",
            W_ISOLATED,
            c.isolate_lru_folio_us,
        ),
        (
            "update_lru_size, node_stat_mod_folio (isolate_migratepages_block)",
            W_ISOLATED,
            c.lru_stat_us,
        ),
        # the scan drops the lru_lock at every COMPACT_CLUSTER_MAX pfns and takes it again at
        # the next LRU folio: a round trip per COMPACT_CLUSTER_MAX pfns (simplification: also
        # for a stretch without LRU folios, where the kernel takes none)
        (
            "compact_lock_irqsave (lru_lock, per COMPACT_CLUSTER_MAX pfns)",
            W_MIGRATE_SCANNED,
            c.lru_lock_us / COMPACT_CLUSTER_MAX,
        ),
        ("unnamed per-page work (fitted on the baseline row)", W_ISOLATED, c.unnamed_page_us),
        ("__isolate_free_page", W_FREE_ISOLATED, c.free_isolate_page_us),
        ("post_alloc_hook (compaction_alloc)", W_FREE_ISOLATED, c.post_alloc_hook_us),
        ("kernel_init_pages (compaction_alloc)", W_FREE_ISOLATED, clear_us),
        ("__free_one_page (free_pcppages_bulk)", W_BUDDY_FREED, c.buddy_free_page_us),
        ("drain_local_pages (check_drain)", W_DRAIN, c.drain_us),
        ("isolate_freepages", W_ISOLATE_FREE, c.isolate_freepages_us),
        ("compact_zone", W_COMPACT_ZONE, c.compact_zone_us),
        ("__alloc_pages_direct_compact", W_SLOWPATH, c.slowpath_us),
        ("get_page_from_freelist", W_FREELIST, c.freelist_us),
        ("post_alloc_hook (prep_new_page)", W_ALLOC, c.post_alloc_hook_us),
        ("prep_compound_page", W_ALLOC_PAGES, c.compound_tail_us),
        ("kernel_init_pages (prep_new_page)", W_ALLOC_PAGES, clear_us),
    ]
    return [(name, w, us * US) for name, w, us in parts]


def unit_costs(platform: Platform) -> np.ndarray:
    """Seconds per unit of each logged work counter (migsim.kernel.compaction W_*)."""
    unit = np.zeros(NR_WORK)
    for _, w, sec in cost_parts(platform):
        unit[w] += sec
    return unit


def l2_refill_s(nr_folios: np.ndarray, platform: Platform, *, cpu_copy: bool) -> np.ndarray:
    """Cache effect of the batch copy, per migrate_pages() batch of `nr_folios` order-0 folios
    (seconds, <= 0): the time saved against the stage-1 per-folio costs because a folio's
    state (``compaction.move_lines_count`` lines) is still in L2 when migrate_folio_move()
    touches it again after migrate_folio_unmap().

    Between folio i's unmap and its move the CPU touches the unmap state of the later folios
    (and zeroes their targets in compaction_alloc under init_on_alloc), then the move state of
    the earlier ones and, with the vanilla copy, the 4 KiB source and 4 KiB target of each
    earlier folio (folio_mc_copy inside the move loop); with the copy offloaded the engine
    moves the data without the CPU's caches. A line survives unless at least as many other
    lines as the L2 has ways fall into its set (least-recently-used replacement, lines spread
    evenly over the sets: Poisson). Stage 1 fits the per-folio costs on 1 GiB batches (262144
    folios), where no line survives in either mode, so the term is 0 there and the throughput
    table cannot observe it."""
    c = platform.compaction
    nr_folios = np.asarray(nr_folios, dtype=np.int64)
    out = np.zeros(len(nr_folios))
    if c.move_lines_count == 0 or not len(nr_folios):
        return out
    sets = c.l2_kb * 1024 / CACHE_LINE / c.l2_ways_count
    meta = c.move_lines_count * CACHE_LINE
    zero = PAGE_SIZE if c.init_on_alloc_switch else 0
    copy = 2 * PAGE_SIZE if cpu_copy else 0
    per_line = (c.l3_hit_us - c.l2_hit_us) * US
    # one value per batch size present (bincount: no sort), looked up for every batch
    table = np.zeros(int(nr_folios.max(initial=0)) + 1)
    for n in np.flatnonzero(np.bincount(np.maximum(nr_folios, 0))):
        if n == 0:
            continue
        i = np.arange(n)
        window = (n - 1 - i) * (meta + zero) + i * (meta + copy)  # bytes between the uses
        survive = poisson_cdf(c.l2_ways_count - 1, window / CACHE_LINE / sets)
        table[n] = -c.move_lines_count * per_line * float(survive.sum())
    return table[np.maximum(nr_folios, 0)]


def between_calls_refill_s(
    nr_folios: np.ndarray, reused_lines: np.ndarray, platform: Platform, *, cpu_copy: bool
) -> np.ndarray:
    """Cache effect of the batch copy *between* migrate_pages() calls (seconds, >= 0, per call
    k): what the code after call k pays to refetch the lines it last used before call k and
    call k pushed out of L2.

    Those lines are the code and data the work between copies reuses from call to call
    (``compaction.between_code_kb`` of text, ``between_data_lines_count`` lines: the scanners,
    folio_isolate_lru, the free scanner and compaction_alloc, the allocation slow path, the pcp
    drain, the unmap loop of migrate_pages_batch, and the zone, lruvec, pcp and stat lines they
    use), plus `reused_lines[k]` lines of this run: the struct pages of the source pageblock's
    free frames, read by isolate_migratepages_block before call k and read again by
    __free_one_page's buddy merges (find_buddy_page_pfn) when the pages freed by call k reach
    the buddy lists (one line per page; cost_log passes the W_BUDDY_FREED logged after call k:
    the check_drain flush after it and the bulk frees of the next call, which the log counts
    at that call's end). Between the two uses call k streams its folios' state through the core
    (``move_lines_count`` lines each), the zeroing of its targets under init_on_alloc and,
    with the vanilla copy (folio_mc_copy in the move loop), each folio's 4 KiB source and
    4 KiB target; with the copy offloaded the engine moves the data without the CPU's caches.
    A line is evicted from L2 (then L3) when at least as many other lines as the cache has
    ways fall into its set (the Poisson reading of l2_refill_s) and costs l3_hit - l2_hit
    (then dram - l3_hit) to refetch, one dependent miss at a time.

    Simplifications: one window per call for all these lines (the unmap loop's code sees only
    the copy-and-move loop of the call, the code before the call all of it); the work between
    calls touches the lines often enough to keep them once refetched; the L3 holds the CCD's
    other cores' lines too (idle in these runs); code fetch is costed as dependent misses (no
    next-line prefetch). A 1 GiB move_pages() (the throughput table) has no scanner, free-list
    or drain work between its copies and makes one call per 262144 folios: one refetch, a few
    microseconds against ~0.1 s."""
    c = platform.compaction
    nr_folios = np.maximum(np.asarray(nr_folios, dtype=np.int64), 0)
    lines = c.between_code_kb * 1024 / CACHE_LINE + c.between_data_lines_count
    lines = lines + np.asarray(reused_lines, dtype=np.float64)
    if not len(nr_folios):
        return np.zeros(0)
    zero = PAGE_SIZE if c.init_on_alloc_switch else 0
    copy = 2 * PAGE_SIZE if cpu_copy else 0
    # seconds per reused line, one value per batch size present (a run has a few), looked up
    n = np.flatnonzero(np.bincount(nr_folios))
    window = n * (c.move_lines_count * CACHE_LINE + zero + copy) / CACHE_LINE
    l2_sets = c.l2_kb * 1024 / CACHE_LINE / c.l2_ways_count
    l3_sets = c.l3_kb * 1024 / CACHE_LINE / c.l3_ways_count
    out_l2 = 1.0 - poisson_cdf(c.l2_ways_count - 1, window / l2_sets)
    out_l3 = 1.0 - poisson_cdf(c.l3_ways_count - 1, window / l3_sets)
    per_line = out_l2 * (c.l3_hit_us - c.l2_hit_us) + out_l3 * (c.dram_us - c.l3_hit_us)
    table = np.zeros(int(n[-1]) + 1)
    table[n] = np.where(n > 0, per_line * US, 0.0)
    return lines * table[nr_folios]


def poisson_cdf(k: int, lam: np.ndarray) -> np.ndarray:
    """P(X <= k) for X ~ Poisson(lam), elementwise (small k; numpy only, no scipy import)."""
    lam = np.asarray(lam, dtype=np.float64)
    term = np.exp(-lam)
    total = term.copy()
    for j in range(1, k + 1):
        term = term * lam / j
        total += term
    return np.minimum(total, 1.0)


def wake_up(
    bc, platform: Platform, scale: float = 1.0, *, busy: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The end of each DMA sleep of compaction on the pinned CPU, from its parts: (sleep, the
    part of it only an idle CPU pays, the interrupt time on this CPU, the part an idle CPU
    spends in the idle task after leaving its idle state), seconds per call.

    The copier's wait (`bc.copy_wait_s`) is the engine's time plus the one lumped wake-up
    latency of the throughput model (``dma.irq_wakeup_us``); here that latency is rebuilt as
    the kernel and the machine pay it: the completion interrupt of the last descriptor
    (``dma.desc_irq_us``) on the CPU the PTDMA MSI targets, which wakes the task; if that is
    another CPU (``sched.msi_on_cpu_switch`` 0) the wake-up's sched_ttwu_pending here
    (``sched.wakeup_ipi_us``), else every descriptor's interrupt here (`bc.copy_irq_s`); then,
    on an idle CPU only, the exit from the idle state the governor chose for a wait that long
    (timeline.idle_exit_s: C1 for every wait below C2's 800 us target residency) and the
    switch from the idle task (``sched.ctx_switch_us``).

    Where the wake-up work runs decides its /proc/stat column. Against the hog (`busy`) the
    remote wake-up is an IPI (the hog's CPU does not poll): irq time. An idle CPU in C1
    (MWAIT on its thread flags, acpi_processor_ffh_cstate_enter -> mwait_idle_with_hints with
    TIF_POLLING_NRFLAG set) gets no IPI: send_call_function_single_ipi ->
    call_function_single_prep_ipi -> set_nr_if_polling only sets TIF_NEED_RESCHED, and the idle
    task runs sched_ttwu_pending itself (do_idle -> flush_smp_call_function_queue) after
    tick_nohz_idle_exit, then schedule_idle: both in no /proc/stat column (timeline). C2 (I/O
    port entry) does not poll and takes the IPI. With the MSI here the last handler wakes the
    task locally (no IPI either way)."""
    from migsim.cost.timeline import LATENCY_FACTOR, idle_exit_s

    s, d = platform.sched, platform.dma
    slept = bc.copy_wait_s > 0
    lumped = d.irq_wakeup_us * US * scale
    engine = np.where(slept, np.maximum(bc.copy_wait_s - lumped, 0.0), 0.0)
    switch = np.where(slept, s.ctx_switch_us * US * scale, 0.0)
    last = np.where(slept, d.desc_irq_us * US * scale, 0.0)  # the last handler, MSI's CPU
    if s.msi_on_cpu_switch:
        here = np.where(slept, bc.copy_irq_s, 0.0)
        latency = last
        ttwu = np.zeros(len(engine))
    else:
        ttwu = np.where(slept, s.wakeup_ipi_us * US * scale, 0.0)
        latency = last + ttwu
        here = ttwu
    idle_only = np.where(slept, idle_exit_s(engine, platform), 0.0) + switch
    if busy:
        return engine + latency + idle_only, idle_only, here, np.zeros(len(engine))
    polls = engine < LATENCY_FACTOR * s.c2_exit_us * US  # the governor's C1: MWAIT polls
    here = np.where(polls, here - ttwu, here)  # ttwu is 0 with the MSI here
    hidden = switch + np.where(polls, ttwu, 0.0)
    return engine + latency + idle_only, idle_only, here, hidden


# the phases of migrate_pages() (mm/migrate.c) as the per-page decomposition names them
MIGRATE_PARTS = (
    "migrate_folio_unmap",
    "try_to_unmap_flush",
    "folio_mc_copy / dcbm prep and submit",
    "migrate_folio_move",
    "L2 still warm at migrate_folio_move",
)
# the compaction work's share of the batch copy's cache effect (between_calls_refill_s)
BETWEEN_REFILL = "L2 refill after the copy (code and data between migrate_pages() calls)"


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
    # a batch below the offload threshold (or a failed one) is copied by the CPU
    cpu_copied = (bc.dma_copies == 0) if dma else np.ones(len(pages), dtype=bool)
    cache_s = np.zeros(len(pages))
    if len(pages):
        cache_s[cpu_copied] = l2_refill_s(pages[cpu_copied], platform, cpu_copy=True)
        cache_s[~cpu_copied] = l2_refill_s(pages[~cpu_copied], platform, cpu_copy=False)
        cache_s *= scale
    unit = unit_costs(platform) * scale
    # the lines reused across call k: the code between calls, and the source block's free
    # frames merged by __free_one_page after it (the buddy frees logged before call k + 1)
    between_s = np.zeros(len(pages))
    if len(pages):
        freed_after = np.append(log.work[1:, W_BUDDY_FREED], log.tail[W_BUDDY_FREED])
        for mask, cpu in ((cpu_copied, True), (~cpu_copied, False)):
            between_s[mask] = between_calls_refill_s(
                pages[mask], freed_after[mask], platform, cpu_copy=cpu
            )
        between_s *= scale
    # paid by the code that runs right after call k: it ends call k's burst
    move_s = bc.move_s + cache_s + between_s
    # one column at a time: numpy's int64 x float64 matmul takes no BLAS path and is slow
    pre = np.zeros(len(pages))
    for j in np.flatnonzero(unit):
        pre += log.work[:, j] * unit[j]
    tail = float(log.tail @ unit)
    before = pre + bc.unmap_s + bc.flush_s + bc.copy_cpu_s
    bursts = np.empty(len(pages) + 1)
    bursts[0] = before[0] if len(pages) else 0.0
    if len(pages):
        bursts[1:-1] = move_s[:-1] + before[1:]
        bursts[-1] = move_s[-1] + tail
    else:
        bursts[-1] = tail
    wait_s, wake_s, irq_s, hidden_s = wake_up(bc, platform, scale, busy=busy)
    timeline = run_timeline(
        bursts, wait_s, platform, busy=busy, wake_s=wake_s, irq_s=irq_s, unaccounted_s=hidden_s
    )
    sleep = wait_s
    if busy:  # the part of a wake-up only an idle CPU pays (run_timeline)
        sleep = np.maximum(sleep - wake_s, 0.0)
    calls = CallCosts(pre, bc.unmap_s + bc.flush_s + bc.copy_cpu_s, sleep, move_s, tail, unit)
    counts = log.work.sum(0) + log.tail
    work_s = {name: float(counts[w] * sec * scale) for name, w, sec in cost_parts(platform)}
    migrate_parts = (bc.unmap_s, bc.flush_s, bc.copy_cpu_s, bc.move_s, cache_s)
    work_s.update({n: float(a.sum()) for n, a in zip(MIGRATE_PARTS, migrate_parts, strict=True)})
    work_s[BETWEEN_REFILL] = float(between_s.sum())
    return RunCost(
        timeline=timeline,
        dma_copies=int(bc.dma_copies.sum()),
        dma_fallbacks=int(bc.fallbacks.sum()),
        migrate_s=float(bc.sys_s.sum() + cache_s.sum()),
        compaction_s=float(pre.sum() + tail + between_s.sum()),
        work_s=work_s,
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
    capture: str
    alloc_success: int
    alloc_fail: int
    migrate_calls: int
    capture_in_migrate: int
    capture_in_drain: int
    batches_after_capture: int
    pages_after_capture: int
    cost: RunCost
    fragmentation: dict = field(default_factory=dict)
    # per allocation that entered the slow path: entry to page returned, us (migsim.formats.trace)
    alloc_latency_us: np.ndarray = field(default_factory=lambda: np.zeros(0))
    log: CompactionLog | None = None
    zone_pfns: tuple[int, int] = (0, 0)  # zone_start_pfn, zone_end_pfn
    rfc: str = "v4"  # version of the batch-copy series whose dcbm costed the run

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
            "irq_pct": t.irq_pct,
            "softirq_pct": t.softirq_pct,
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
                "rfc": self.rfc,
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
    capture: str
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
            rfc=rfc,
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
    capture: str = DEFAULT_CAPTURE,
) -> Simulation:
    """Fragment a node (or take `state`: a fragmented Zone, which is consumed, or a saved state
    file) and run `allocations` alloc_pages_node(order) calls on one CPU, from a task or a
    kernel thread (`capture`: only a task captures, task_capc()); `trace`: mark every
    tracepoint event in the log, for migsim.formats.trace."""
    if capture not in CAPTURE_CONTEXTS:
        raise ValueError(f"capture: must be one of {', '.join(CAPTURE_CONTEXTS)}, got {capture!r}")
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
    comp = Compactor(zone, cluster_max=cluster_max, trace=trace, capture=capture)
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
        capture=capture,
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
    capture: str = DEFAULT_CAPTURE,
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
        capture=capture,
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


def reproduce_results(
    platform: Platform,
    seed: int = 1,
    *,
    channels: int = DEFAULT_CHANNELS,
    progress: bool = False,
    capture: str = DEFAULT_CAPTURE,
    rfc: str = "v4",
) -> tuple[Simulation, list[CompactionResult]]:
    """The four published modes at full scale (250 GB node, 16384 order-9 allocations):
    the page-level run and one result per mode, with the dcbm of series version `rfc`. The
    page-level run is the same in every mode (nothing in it depends on time), so it is
    simulated once and costed four times."""
    check_rfc(rfc)
    sim = simulate(platform, seed=seed, progress=progress, capture=capture)
    return sim, [sim.result(platform, mode=m, channels=channels, rfc=rfc) for m in MODES]


def reproduce_compaction(
    platform: Platform,
    seed: int = 1,
    *,
    channels: int = DEFAULT_CHANNELS,
    progress: bool = False,
    rfc: str = "v4",
) -> list[dict]:
    """:func:`reproduce_results` as one row per mode."""
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


# ---------------------------------------------------------------------------------------------
# Results: the run and summary Parquet schemas, the summary, its tables
# ---------------------------------------------------------------------------------------------


ALLOC_LATENCY_PERCENTILES = (5, 25, 50, 75, 90, 95, 99)  # migsim.kernel.vmstat.PERCENTILES


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

# this experiment's Parquet schemas (migsim.studies.schemas)
SCHEMAS = (COMPACTION_RUNS, COMPACTION_SUMMARY)


def load_reference_compaction(path: str | os.PathLike) -> pl.DataFrame:
    """The published compaction table in long form: mode, metric, published."""
    import polars as pl

    df = pl.read_csv(path, comment_prefix="#", infer_schema_length=None)
    metrics = [m for m, _ in COMPACTION_METRICS]
    df = df.select(pl.col("mode").cast(pl.String), *[pl.col(m).cast(pl.Float64) for m in metrics])
    return df.unpivot(index="mode", on=metrics, variable_name="metric", value_name="published")


def summarise_compaction(runs: pl.DataFrame, reference: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per mode and metric: n, mean, sd over runs, the published value, absolute and relative
    error (the absolute error of a *_pct metric is in percentage points)."""
    import polars as pl

    from migsim.output.tables import published_setup

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
    import polars as pl

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


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


# Tolerances of the compaction reproduction (tests/compaction_tolerance.py, issue 12): a
# simulated bar outside them against its published one is a misfit, labelled in red.
COMPACTION_TOLERANCE_PCT = {"wall_ms": 10.0, "pages_migrated": 5.0}


FIT_COLOUR = "#333333"


CPU_STATES = ("user", "sys", "irq", "idle")


CPU_COLOURS = {"user": "#54a24b", "sys": "#e45756", "irq": "#f2a541", "idle": "#bab0ac"}


# stage 2 of the calibration fits the compaction costs on this cell only
# (migsim.calibrate.compaction.FREE on the published baseline row's wall time)
FITTED_CELL = ("baseline", "wall_ms")


_COMPACTION_PANELS = (
    ("wall_ms", "wall time (ms)", 1.0, ",.0f"),
    ("pages_migrated", "pages migrated (millions)", 1e-6, ".3f"),
    ("hog_iterations", "CPU-hog iterations (billions)", 1e-9, ".2f"),
)


def compaction_chart(summary: pl.DataFrame) -> alt.HConcatChart | alt.Chart:
    """Compaction modes side by side with the published ones: wall time (ms, as the tables),
    pages migrated, the CPU-hog's iterations (busy modes) and the CPU split (user / sys /
    irq, softirq and other / idle, %, each bar 100%). Above each simulated bar its error against the
    published one, red beyond the reproduction's tolerance; the fitted cell is labelled
    'fitted'; every axis leaves room above its largest bar."""
    import altair as alt
    import polars as pl

    from migsim.output.figures import MISFIT_COLOUR, SOURCE_COLOURS, _empty

    s = COMPACTION_SUMMARY.conform(summary)
    if s.height == 0:
        return _empty("Direct compaction")
    modes = s.select("mode", "mode_order").unique().sort(["mode_order", "mode"])["mode"].to_list()
    rows = []
    for r in s.iter_rows(named=True):
        if r["mean"] is not None:
            rows.append((r["mode"], r["metric"], "simulated", r["mean"], r["sd"], r["rel_error"]))
        if r["published"] is not None:
            rows.append((r["mode"], r["metric"], "published", r["published"], None, None))
    long = pl.DataFrame(
        rows,
        schema={
            "mode": pl.String,
            "metric": pl.String,
            "source": pl.String,
            "value": pl.Float64,
            "sd": pl.Float64,
            "rel_error": pl.Float64,
        },
        orient="row",
    )
    sources = [x for x in ("simulated", "published") if x in long["source"].to_list()]
    src_colour = alt.Color(
        "source:N",
        title="source",
        scale=alt.Scale(domain=sources, range=[SOURCE_COLOURS[k] for k in sources]),
    )
    x = alt.X("mode:N", sort=modes, title="mode", axis=alt.Axis(labelAngle=-30))
    offset = alt.XOffset("source:N", sort=sources)
    panels = []
    for metric, title, factor, fmt in _COMPACTION_PANELS:
        d = long.filter(pl.col("metric") == metric).with_columns(
            (pl.col("value") * factor).alias("v"),
            ((pl.col("value") - pl.col("sd").fill_null(0)) * factor).alias("lo"),
            ((pl.col("value") + pl.col("sd").fill_null(0)) * factor).alias("hi"),
        )
        if d.height == 0:
            continue
        tol = COMPACTION_TOLERANCE_PCT.get(metric)
        top = float(d["hi"].max())
        d = d.with_columns(
            pl.when(pl.col("rel_error").is_not_null())
            .then(pl.format("{}%", (pl.col("rel_error") * 100).round(1)))
            .otherwise(None)
            .str.replace(r"^(\d)", "+$1")
            .alias("error"),
            (pl.lit(tol is not None) & ((pl.col("rel_error").abs() * 100) > (tol or 0.0))).alias(
                "misfit"
            ),
            ((pl.col("mode") == FITTED_CELL[0]) & pl.lit(metric == FITTED_CELL[1])).alias("fitted"),
        )
        tip = [
            alt.Tooltip("mode:N"),
            alt.Tooltip("source:N"),
            alt.Tooltip("v:Q", title=title, format=fmt),
            alt.Tooltip("error:N", title="error vs published"),
        ]
        y = alt.Y("v:Q", title=title, scale=alt.Scale(domain=[0, top * 1.18], nice=False))
        base = alt.Chart(d)
        bars = base.mark_bar().encode(
            x=x,
            xOffset=offset,
            y=y,
            color=src_colour if not panels else src_colour.legend(None),
            tooltip=tip,
        )
        layers = [bars]
        if d.filter(pl.col("source") == "simulated")["sd"].drop_nulls().len():
            layers.append(
                base.transform_filter(alt.datum.source == "simulated")
                .mark_rule()
                .encode(x=x, xOffset=offset, y="lo:Q", y2="hi:Q")
            )
        labelled = d.filter(pl.col("error").is_not_null()).with_columns(
            pl.when(pl.col("fitted"))
            .then(pl.lit("fitted"))
            .otherwise(pl.col("error"))
            .alias("error")
        )
        if labelled.height:
            layers.append(
                alt.Chart(labelled)
                .mark_text(dy=-4, baseline="bottom", fontSize=10)
                .encode(
                    x=x,
                    xOffset=offset,
                    y=alt.Y("hi:Q"),
                    text="error:N",
                    color=alt.condition(
                        "datum.misfit", alt.value(MISFIT_COLOUR), alt.value(FIT_COLOUR)
                    ),
                )
            )
        panels.append(alt.layer(*layers).properties(width=170, height=220, title=title))
    cpu = _cpu_split(long, modes, sources)
    if cpu is not None:
        panels.append(cpu)
    sub = "bars: simulated (blue, ± sd where several runs)"
    if "published" in sources:
        sub += " and published (grey); above a bar: its error, red beyond the tolerance"
    return (
        alt.hconcat(*panels)
        .resolve_scale(color="independent")
        .properties(
            title=alt.Title(
                "Direct compaction: simulated modes beside the published ones", subtitle=sub
            )
        )
    )


def _cpu_split(long: pl.DataFrame, modes: list[str], sources: list[str]) -> alt.Chart | None:
    """The CPU split panel: user, sys, idle and the share none of those three take, each bar
    100%. That share is /proc/stat's irq and softirq (the published rows left them out of
    their split) and, for a simulated idle row, the idle task's work after its idle state
    ended, which /proc/stat shows in no column (migsim.cost.timeline): labelled "irq, softirq
    and other"."""
    import altair as alt
    import polars as pl

    wide = (
        long.filter(pl.col("metric").is_in(["user_pct", "sys_pct", "idle_pct"]))
        .pivot(on="metric", index=["mode", "source"], values="value")
        .drop_nulls()
    )
    if wide.height == 0:
        return None
    rest = (100.0 - pl.col("user_pct") - pl.col("sys_pct") - pl.col("idle_pct")).clip(
        lower_bound=0.0
    )
    cpu = (
        wide.with_columns(rest.alias("irq_pct"))
        .unpivot(index=["mode", "source"], on=[f"{k}_pct" for k in CPU_STATES], value_name="value")
        .with_columns(
            pl.col("variable").str.replace("_pct", "").alias("state"),
            pl.format("{} · {}", pl.col("mode"), pl.col("source")).alias("bar"),
        )
        .with_columns(
            pl.col("state")
            .replace_strict({k: i for i, k in enumerate(CPU_STATES)}, return_dtype=pl.Int32)
            .alias("state_order")
        )
    )
    cpu = cpu.filter(pl.col("value") > 0)  # no legend entry without a visible mark
    present = [k for k in CPU_STATES if k in cpu["state"].to_list()]
    bar_order = [f"{m} · {src}" for m in modes for src in sources]
    names = {"user": "user", "sys": "sys", "irq": "irq, softirq and other", "idle": "idle"}
    cpu = cpu.with_columns(pl.col("state").replace_strict(names).alias("state"))
    return (
        alt.Chart(cpu)
        .mark_bar()
        .encode(
            y=alt.Y("bar:N", sort=bar_order, title="mode · source"),
            x=alt.X(
                "value:Q",
                title="CPU time (%)",
                stack="zero",
                scale=alt.Scale(domain=[0, 100], nice=False, clamp=True),
            ),
            color=alt.Color(
                "state:N",
                title="CPU state",
                scale=alt.Scale(
                    domain=[names[k] for k in present], range=[CPU_COLOURS[k] for k in present]
                ),
            ),
            order=alt.Order("state_order:Q"),
            tooltip=[
                alt.Tooltip("mode:N"),
                alt.Tooltip("source:N"),
                alt.Tooltip("state:N", title="CPU state"),
                alt.Tooltip("value:Q", title="CPU time (%)", format=".2f"),
            ],
        )
        .properties(
            width=220, height=220, title="CPU split: user / sys / irq, softirq, other / idle (%)"
        )
    )
