"""Platform cost parameters: what each step of the modelled kernel paths costs on one machine.

A platform is a YAML file under ``config/platforms/``: sections of named parameters, each a
number in the unit its name ends with (``_us`` microseconds, ``_gbps`` 1e9 bytes per second,
``_ghz``, ``_hz``, ``_pct``, ``_frac`` a fraction, ``_count`` a whole number, ``_switch`` 0
(off) or 1 (on)). ``SPEC`` below is the single
list of parameters with their unit, range and one-line meaning; loading checks every value
against it and fails with a message naming the key and the allowed range.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

from migsim.atomic import atomic_write_text
from migsim.limits import CHANNELS, THREADS
from migsim.paths import DEFAULT_PLATFORM_FILE


@dataclass(frozen=True)
class Param:
    """One platform parameter: unit, allowed closed range, meaning, integer or real."""

    unit: str
    lo: float
    hi: float
    meaning: str
    integer: bool = False


# fmt: off
SPEC: dict[str, dict[str, Param]] = {
    "cpu": {
        "folio_fixed_us": Param("us", 0.0, 100.0, "CPU cost per migrated folio that does not depend on its size or mapping: destination allocation, folio lock, isolation bookkeeping, metadata copy, freeing the source (unmap and move phases together)"),
        "pte_us": Param("us", 0.0, 10.0, "CPU cost per page-table entry that maps the folio: install a migration entry in unmap (try_to_migrate) and restore it in move (remove_migration_ptes); a PMD-mapped 2M folio counts one"),
        "unmap_share_frac": Param("fraction", 0.0, 1.0, "share of the fixed and per-PTE costs spent in the unmap phase (the rest is the move phase); a documented prior, not fitted: only the sum is observable in the throughput table"),
        "tlb_flush_us": Param("us", 0.0, 1000.0, "one batched TLB flush (try_to_unmap_flush: IPIs to the CPUs that may cache the mappings), once per migrate_pages batch"),
        "syscall_us": Param("us", 0.0, 10000.0, "CPU cost per move_pages() call outside the folios: syscall entry and exit, kernel_move_pages (find_mm_struct, nodemask and permission checks), mmap_read_lock, the status copy-out; prior"),
        "lru_cache_disable_us": Param("us", 0.0, 10000.0, "wall time of lru_cache_disable() and lru_cache_enable() once per move_pages() call (do_pages_move): synchronize_rcu_expedited() (the caller sleeps while the rcu_exp_gp kthread worker, and per rcu_node leaf the par workers, run the expedited grace period) and __lru_add_drain_all(true) (drain work only on CPUs whose folio batches are not empty); charged as the caller's sys time (simplification: most of it is the caller asleep); prior (migsim probe move-pages-call measures it on a host)"),
        "addr_lookup_us": Param("us", 0.0, 100.0, "CPU cost per user address passed to move_pages(): get_user of the address and node, add_folio_for_migration (vma_lookup, folio_walk_start page-table walk); the benchmark passes one address per folio; prior"),
    },
    "copy": {
        "cpu_copy_gbps": Param("GB/s", 0.1, 200.0, "streaming bandwidth of a single-threaded folio_copy() across the interconnect"),
        "cpu_copy_fixed_us": Param("us", 0.0, 100.0, "fixed CPU cost of one folio_copy() call, independent of size (call, first cache misses)"),
    },
    "dma": {
        "prep_us": Param("us", 0.0, 100.0, "CPU cost per folio of an offloaded copy (dcbm folios_copy_dma): its two scatterlist entries (sg_set_folio) and their share of the IOMMU map and unmap (iommu_dma_map_sg / iommu_dma_unmap_sg page-table writes for its IOVA pages; in v2 and v6, which map each folio with dma_map_page, the same page-table writes, the rest of each dma_map_page being map_page_us); fitted"),
        "map_page_us": Param("us", 0.0, 100.0, "CPU cost of one dma_map_page of a folio beyond the page-table writes its entry in a mapped scatter-gather table also pays (prep_us): iommu_dma_map_page -> __iommu_dma_map with its own IOVA allocation (iommu_dma_alloc_iova -> alloc_iova_fast: the per-CPU rcache up to IOVA_RANGE_CACHE_MAX_SIZE, 32 pages, above it alloc_iova's rb-tree insert under iova_rbtree_lock) and its own iommu_map + iotlb_sync_map call. v2 (process_folio_dma_transfer) and v6 (map_folios) map each folio's source and destination on their own, two per folio; v3/v4 map one table per channel and side (sgt_map_us); prior"),
        "desc_prep_us": Param("us", 0.0, 100.0, "CPU cost per DMA descriptor: dmaengine_prep_dma_memcpy (pt_prep_dma_memcpy -> pt_create_desc: kmem_cache_zalloc of a pt_dma_desc, vchan_tx_prep under vc.lock) and dmaengine_submit (vchan_tx_submit: dma_cookie_assign, list_move_tail under vc.lock); one per mapped segment (v3/v4) or per folio (v2, v6); prior"),
        "max_seg_kb": Param("KiB", 0.0, 1048576.0, "largest DMA segment dma_map_sgtable builds for the PTDMA device: iommu_dma_map_sg maps a table into one IOVA range and __finalise_sg concatenates page-aligned, IOVA-contiguous entries while the segment stays within dma_get_max_seg_size(dev); PTDMA is a PCI device and keeps the 64 KiB pci_setup_device sets (ptdma-pci.c does not change it). Applies to the sg tables of v3/v4 (one descriptor per mapped segment, for_each_sgtable_dma_sg) with the IOMMU translating (the x86 default DMA domain); 0: no merging (IOMMU passthrough)"),
        "call_setup_us": Param("us", 0.0, 1000.0, "CPU cost per offloaded batch outside the channels: the migrator's static call under SRCU, kcalloc of the per-channel work array, the capability mask, the folios_migrated/folios_failures counters; prior"),
        "chan_request_us": Param("us", 0.0, 1000.0, "CPU cost per channel and call of dma_request_chan_by_mask (dma_list_mutex, walk of dma_device_list, dma_chan_get) plus dma_release_channel (dma_chan_put, vchan_free_chan_resources); v2..v4 request on every call, v6 once when offloading is enabled (then a mutex_trylock per channel); prior"),
        "sgt_map_us": Param("us", 0.0, 1000.0, "CPU cost per used channel and call of its scatter-gather tables apart from the per-folio entries (v3/v4 setup_sg_tables: two kmalloc + sg_alloc_table, the fixed part of two dma_map_sgtable and two dma_unmap_sgtable with their IOVA allocation and IOTLB flush, sg_free_table, kfree; v6 the kcalloc of the copies array); prior"),
        "issue_us": Param("us", 0.0, 1000.0, "CPU cost per used channel of dma_async_issue_pending: pt_issue_pending under vc.lock starts the first descriptor itself (pt_cmd_callback -> pt_dma_start_desc -> pt_core_execute_cmd: 32-byte copy into the queue, wmb, tail and run-bit MMIO writes); prior"),
        "terminate_us": Param("us", 0.0, 1000.0, "CPU cost per used channel of dmaengine_terminate_sync in cleanup_dma_work (v3/v4): pt_terminate_all (interrupt-status MMIO write, vchan_get_all_descriptors, free list) and pt_synchronize (vchan_synchronize, tasklet_kill); v2 and v6 do not terminate; prior"),
        "desc_restart_us": Param("us", 0.0, 100.0, "engine idle time between two descriptors of one PTDMA queue: the queue runs one descriptor at a time and the next is started from the completion interrupt (pt_core_irq_handler -> pt_check_status_trans -> pt_cmd_callback -> pt_handle_active_desc -> pt_dma_start_desc), so each descriptor after the first waits for the interrupt delivery plus the handler up to the doorbell; prior"),
        "desc_irq_us": Param("us", 0.0, 100.0, "CPU time of one PTDMA completion interrupt on the CPU its MSI targets: every descriptor raises one (the queue's int_en is set by the last prep before issue, and dcbm's last descriptor carries DMA_PREP_INTERRUPT), the handler reads the queue status (3 MMIO reads), acknowledges it and starts the next descriptor; prior"),
        "chans_per_device_count": Param("channels", 1, 256, "DMA channels one DMA device registers (PTDMA: one command queue and one channel per device, pt_dmaengine_register); a v6 batch uses the channels of one device group only", integer=True),
        "ramp_kb": Param("KiB", 0.0, 65536.0, "head of every descriptor that the engine moves at the latency-bound rate ramp_gbps while its read pipeline fills (reads cross the socket interconnect one round trip at a time)"),
        "ramp_gbps": Param("GB/s", 0.1, 400.0, "rate of the head (ramp_kb) of every descriptor on one channel"),
        "chans_per_engine_count": Param("channels", 1, 16, "channels that share one DMA engine; channels fill engines in order", integer=True),
        "engine_gbps": Param("GB/s", 0.1, 400.0, "streaming bandwidth of one engine, shared by its busy channels (one channel alone gets all of it)"),
        "fabric_gbps": Param("GB/s", 0.1, 2000.0, "interconnect bandwidth available to all DMA engines together: a hard cap on the batch (fabric_load_switch 0), or the capacity whose load rho raises the engines' read latency by 1 / (1 - rho) (1)"),
        "fabric_load_switch": Param("switch", 0, 1, "0: the interconnect caps the DMA engines' sum (min of the two); 1: each engine keeps a fixed number of outstanding AXI reads, so by Little's law it slows by (1 - rho) at interconnect load rho, the descriptor restarts excepted (copiers.loaded_fabric_seconds); a model form selected on the fitted v4 table (calibrate.throughput.fabric_form_criterion: AIC and leave-one-channel-count-out error), not fitted", integer=True),
        "irq_wakeup_us": Param("us", 0.0, 10000.0, "wake-up latency of the migrating task sleeping on an idle CPU, once per offloaded batch: the completion interrupt (sched.completion_irq_us) plus the CPU's exit from its idle state, which a CPU busy with another task does not pay; prior"),
        "max_channels_count": Param("channels", 1, CHANNELS.hi, "DMA channels the platform has (dcbm's nr_dma_chan upper bound)", integer=True),
    },
    "mt": {
        "thread_start_us": Param("us", 0.0, 1000.0, "queue_work_on of one copy work item plus the IPI that wakes its idle kworker, on the migrating CPU, per batch and thread (mtcopy copy_page_lists_mt); prior"),
        "thread_copy_gbps": Param("GB/s", 0.1, 200.0, "copy bandwidth of one copy thread (copy_mc_to_kernel of its folios across the interconnect) alone; fitted on the v2 mt tables (2M row, placement table)"),
        "ccd_gbps": Param("GB/s", 0.1, 2000.0, "bandwidth all copy threads of one CCD reach together (its link to the I/O die); fitted on the v2 placement table (fill one CCD first)"),
        "mt_cap_gbps": Param("GB/s", 0.1, 2000.0, "socket interconnect bandwidth for all copy threads, combined serially with the threads' own rate (loaded latency); fitted on the v2 mt tables"),
        "ccds_count": Param("CCDs", 1, 256, "CCDs of the machine (Zen 3 EPYC 32-core: 4 CCDs of 8 cores per socket, 2 sockets); mtcopy's spread list takes one CPU per CCD in turn", integer=True),
        "cores_per_ccd_count": Param("cores", 1, 64, "cores of one CCD (Zen 3: 8); the fill list takes them in order", integer=True),
        "max_threads_count": Param("threads", 1, THREADS.hi, "CPU threads available to the multi-threaded copier", integer=True),
    },
    "noise": {
        "trial_sd_frac": Param("fraction", 0.0, 0.5, "trial-to-trial standard deviation of a lognormal factor on every cost of one run (frequency, placement, interrupts)"),
    },
    "compaction": {
        "migrate_scan_pfn_us": Param("us", 0.0, 10.0, "CPU cost per pfn examined by the migration scanner (isolate_migratepages_block: struct page flags, PageBuddy/PageLRU tests); prior"),
        "free_scan_pfn_us": Param("us", 0.0, 10.0, "CPU cost per pfn examined by the free scanner (isolate_freepages_block); prior"),
        "folio_try_get_us": Param("us", 0.0, 100.0, "CPU cost per folio isolated by isolate_migratepages_block of folio_get_nontail_page / folio_try_get: one atomic increment of the refcount, on the struct page line the scanner's flag tests just read; prior"),
        "isolate_lru_folio_us": Param("us", 0.0, 100.0, "CPU cost per folio isolated by isolate_migratepages_block of the LRU removal itself (folio_isolate_lru's work as compaction does it inline): folio_test_clear_lru, lruvec_del_folio (list_del of folio->lru writes its two LRU neighbours' struct pages, elsewhere in memory) and list_add to cc->migratepages; prior"),
        "lru_stat_us": Param("us", 0.0, 100.0, "CPU cost per isolated folio of the counters isolate_migratepages_block updates: update_lru_size in lruvec_del_folio (__mod_lruvec_state: node and memcg per-CPU LRU sizes, mem_cgroup_update_lru_size) and node_stat_mod_folio(NR_ISOLATED_ANON); prior"),
        "lru_lock_us": Param("us", 0.0, 100.0, "one round trip of the lruvec's lru_lock in isolate_migratepages_block (compact_lock_irqsave, then lruvec_unlock_irqrestore, which the scan does every COMPACT_CLUSTER_MAX pfns): charged per COMPACT_CLUSTER_MAX pfns scanned; prior"),
        "unnamed_page_us": Param("us", 0.0, 100.0, "CPU cost per isolated page that no named part pays: the one compaction cost fitted on the published baseline compaction row (its wall time); what it holds is not known"),
        "free_isolate_page_us": Param("us", 0.0, 100.0, "CPU cost per free page isolated as a migration target (__isolate_free_page under zone->lock: del_page_from_free_list, the order-0 watermark check); prior"),
        "post_alloc_hook_us": Param("us", 0.0, 100.0, "CPU cost of one post_alloc_hook() call without the zeroing (set_page_private, page_table_check_alloc, page owner and KASAN hooks off): once per migration target in compaction_alloc and once per allocated block in prep_new_page; prior"),
        "clear_page_gbps": Param("GB/s", 0.1, 200.0, "rate of kernel_init_pages() -> clear_highpage() -> clear_page_erms (rep stosb) zeroing a page that is not in the cache; prior"),
        "init_on_alloc_switch": Param("switch", 0, 1, "init_on_alloc (CONFIG_INIT_ON_ALLOC_DEFAULT_ON or init_on_alloc=1): post_alloc_hook() zeroes every page it hands out, the migration targets of compaction_alloc and the captured block alike (want_init_on_alloc); 1 on, 0 off", integer=True),
        "compound_tail_us": Param("us", 0.0, 10.0, "CPU cost per tail page of prep_compound_page() (prep_compound_tail: one struct page store each, streamed); prior"),
        "buddy_free_page_us": Param("us", 0.0, 100.0, "CPU cost per page moved from the per-CPU lists into the buddy lists (free_pcppages_bulk, __free_one_page with merging); prior"),
        "slowpath_us": Param("us", 0.0, 10000.0, "CPU cost per __alloc_pages_direct_compact() attempt outside compact_zone: try_to_compact_pages (compaction_deferred, zonelist walk), compact_zone_order set-up and the psi/delay accounting around it; prior"),
        "freelist_us": Param("us", 0.0, 1000.0, "CPU cost per get_page_from_freelist() call of the allocation (zonelist walk, zone_watermark_fast / __zone_watermark_ok over the free areas, rmqueue when it succeeds); prior"),
        "compact_zone_us": Param("us", 0.0, 1000.0, "CPU cost per compact_zone() run past its suitability checks: compaction_suitable (fragmentation_index over the free areas), lru_add_drain(), scanner set-up and release_free_list at the end; prior"),
        "drain_us": Param("us", 0.0, 1000.0, "fixed CPU cost per check_drain flush: lru_add_drain_cpu_zone (the per-CPU folio batches) and drain_local_pages -> drain_pages_zone (zone->lock), without the per-page __free_one_page work; prior"),
        "isolate_freepages_us": Param("us", 0.0, 1000.0, "fixed CPU cost per isolate_freepages() call (compaction_alloc found cc->freepages empty): scanner set-up and the free-list probes of fast_isolate_freepages, whose target choice is not modelled; prior"),
        "l2_kb": Param("KiB", 1.0, 65536.0, "L2 cache per core (Zen 3: 512 KiB, 8-way; AMD Software Optimization Guide for family 19h)"),
        "l2_ways_count": Param("ways", 1, 64, "L2 associativity (Zen 3: 8)", integer=True),
        "l2_hit_us": Param("us", 0.0, 1.0, "load-to-use latency of an L2 hit (Zen 3: 12 cycles, about 0.003 us at 3.7 GHz)"),
        "l3_hit_us": Param("us", 0.0, 1.0, "load-to-use latency of an L3 hit, where a line evicted from L2 goes (Zen 3's L3 is the L2 victim cache: about 46 cycles, 0.012 us at 3.7 GHz)"),
        "move_lines_count": Param("lines", 0, 1000, "cache lines of one folio's state that the unmap phase touches and the move phase touches again with dependent loads (src and dst struct page/folio, the PTE line, anon_vma and the rmap walk's vma lines); whether they still sit in L2 decides the cache effect of the small-batch copy; prior", integer=True),
        "between_code_kb": Param("KiB", 0.0, 4096.0, "kernel text the code between two migrate_pages() copies executes and the copy-and-move loop does not (compact_zone's loop and scanners, folio_isolate_lru, the free scanner and compaction_alloc, the slow path, the pcp drain, the unmap-only part of migrate_pages_batch: try_to_migrate_one); refetched from L3 when the previous call's copy evicted it from L2 (Zen 3's L2 is inclusive of L1i); prior"),
        "between_data_lines_count": Param("lines", 0, 100000, "data lines the code between two migrate_pages() copies reuses from call to call (struct zone's free areas, lock and watermarks, the pageblock bitmap words, per_cpu_pages and the per-CPU stat diffs, the lruvec and memcg stats, compact_control and the slow path's stack); prior", integer=True),
        "l3_kb": Param("KiB", 1.0, 1048576.0, "L3 cache a core's L2 victims go to (Zen 3: 32 MiB per CCD, 16-way)"),
        "l3_ways_count": Param("ways", 1, 64, "L3 associativity (Zen 3: 16)", integer=True),
        "dram_us": Param("us", 0.0, 10.0, "load-to-use latency of a line from local DRAM, for a line evicted from L3 too; prior"),
        "node_cpus_count": Param("CPUs", 1, 4096, "CPUs of the node, among which zone_highsize() splits the low watermark to size pcp->high", integer=True),
    },
    "sched": {
        "ctx_switch_us": Param("us", 0.0, 1000.0, "one context switch on the pinned CPU (schedule, switch_to, return to the next task); prior"),
        "completion_irq_us": Param("us", 0.0, 1000.0, "CPU time of one DMA completion on the migrating CPU (hard irq, dmaengine callback, complete(), try_to_wake_up), charged to the interrupted task; part of dma.irq_wakeup_us; prior"),
        "slice_us": Param("us", 1.0, 100000.0, "scheduler slice: fair-share alternation period of two CPU-bound tasks (EEVDF base slice 0.75 ms x (1 + log2(min(CPUs, 8)))); prior"),
        "hog_clock_ghz": Param("GHz", 0.1, 10.0, "clock of the pinned CPU while it runs the hog loop (boost clock under the performance governor); prior"),
        "hog_iters_per_cycle": Param("iterations/cycle", 0.01, 8.0, "iterations of the hog's counter++ loop per CPU cycle (one loop-carried add per iteration); prior"),
        "irq_time_accounting_switch": Param("switch", 0, 1, "CONFIG_IRQ_TIME_ACCOUNTING: hard-irq and softirq time is measured (irqtime_account_irq) and shown in /proc/stat's irq and softirq columns; 0: the tick samples it into the interrupted task's user or system time", integer=True),
        "tick_hz": Param("Hz", 1.0, 10000.0, "CONFIG_HZ: scheduler ticks per second on a CPU that runs a task (NO_HZ_IDLE stops the tick on an idle CPU)"),
        "tick_irq_us": Param("us", 0.0, 1000.0, "interrupt time per tick on the pinned CPU, hard irq and softirq together (local APIC timer -> hrtimer_interrupt -> tick_sched_timer -> update_process_times, then the TIMER/RCU/SCHED softirqs it raises); fitted on the published baseline row's irq + softirq share"),
        "c1_exit_us": Param("us", 0.0, 10000.0, "exit latency of the idle state C1 (Zen 3: ACPI _CST C1, entered with MWAIT through FFH; its _CST latency); prior"),
        "c2_exit_us": Param("us", 0.0, 100000.0, "exit latency of the idle state C2 (Zen 3: ACPI _CST C2, I/O-port entry, the core's CC6 with its L2 flushed); the cpuidle governor takes it only for an expected sleep of latency_factor (2) x this (acpi_processor_setup_cstates: target_residency); prior"),
        "cc6_refill_frac": Param("fraction", 0.0, 1.0, "share of the L2 (compaction.l2_kb) the woken task refetches from L3 after a CC6 exit flushed it, at compaction.l3_hit_us - l2_hit_us per line; prior"),
        "msi_on_cpu_switch": Param("switch", 0, 1, "1: the PTDMA completion MSI targets the pinned CPU, so the copier's per-descriptor interrupt time (dma.desc_irq_us) is irq time there; 0: it targets another CPU (the vector's CPU is picked by the x86 vector allocator or irqbalance, not by the taskset), and the pinned CPU takes only the wake-up IPI (sched.wakeup_ipi_us)", integer=True),
        "wakeup_ipi_us": Param("us", 0.0, 1000.0, "interrupt time on the pinned CPU when a task sleeping there is woken from another CPU: try_to_wake_up -> ttwu_queue_wakelist -> the call-function IPI -> sysvec_call_function_single -> sched_ttwu_pending; an idle CPU in C1 polls (MWAIT) and gets no IPI, and its idle task runs the same sched_ttwu_pending after leaving C1 (in no /proc/stat column; the model keeps the whole time); prior"),
        "tick_softirq_frac": Param("fraction", 0.0, 1.0, "share of tick_irq_us spent in softirq (run_timer_softirq, rcu_core, the load balancer's SCHED_SOFTIRQ); prior"),
    },
}
# fmt: on


class PlatformError(ValueError):
    """A platform file or value is invalid; the message names the key and the allowed range."""


class Section:
    """Read-only attribute access to one section's parameters."""

    def __init__(self, name: str, values: dict[str, float]):
        self._name = name
        self._values = MappingProxyType(dict(values))

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"platform has no parameter {self._name}.{key}") from None

    def as_dict(self) -> dict[str, float]:
        return dict(self._values)


class Platform:
    """Validated, immutable platform parameters: ``platform.dma.chan_gbps``."""

    def __init__(self, name: str, values: dict[str, dict[str, float]], meta: dict | None = None):
        self.name = name
        self.meta = dict(meta or {})
        self._values = validate_values(values)
        for sec, params in self._values.items():
            setattr(self, sec, Section(sec, params))

    def as_dict(self) -> dict[str, dict[str, float]]:
        """Nested plain dict of every parameter value."""
        return {sec: dict(params) for sec, params in self._values.items()}

    def replace(self, **changes: float) -> Platform:
        """A copy with some values changed, given as ``section__name=value``."""
        values = self.as_dict()
        for key, value in changes.items():
            sec, _, name = key.partition("__")
            if sec not in values or name not in values[sec]:
                raise PlatformError(f"unknown platform parameter {sec}.{name}")
            values[sec][name] = value
        return Platform(self.name, values, self.meta)

    def trial_scale(self, rng: np.random.Generator) -> float:
        """The noise factor of one trial: lognormal with sd noise.trial_sd_frac, drawn from
        `rng` (1.0, and nothing drawn, when the noise is off)."""
        import numpy as np

        sd = self.noise.trial_sd_frac
        return float(np.exp(rng.normal(0.0, sd))) if sd > 0 else 1.0

    def digest(self) -> str:
        """Short hash of the parameter values (for Parquet metadata and cache keys)."""
        blob = json.dumps(self.as_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def validate_values(values: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Check every section and key against SPEC: presence, type, range. Return plain numbers."""
    if not isinstance(values, dict):
        raise PlatformError("platform: expected a mapping of sections")
    unknown = sorted(set(values) - set(SPEC))
    if unknown:
        raise PlatformError(f"platform: unknown section(s) {unknown}; allowed: {sorted(SPEC)}")
    out: dict[str, dict[str, float]] = {}
    for sec, params in SPEC.items():
        given = values.get(sec)
        if not isinstance(given, dict):
            raise PlatformError(f"platform: missing section '{sec}'")
        extra = sorted(set(given) - set(params))
        if extra:
            raise PlatformError(
                f"platform: unknown key(s) {sec}.{extra}; allowed: {sorted(params)}"
            )
        out[sec] = {}
        for key, p in params.items():
            if key not in given:
                raise PlatformError(f"platform: missing key {sec}.{key} ({p.unit}: {p.meaning})")
            v = given[key]
            if isinstance(v, dict):  # {value: .., unit: ..} form, as written by save_platform
                if "unit" in v and v["unit"] != p.unit:
                    raise PlatformError(
                        f"platform: {sec}.{key} must be given in {p.unit}, got unit {v['unit']!r}"
                    )
                v = v.get("value")
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise PlatformError(
                    f"platform: {sec}.{key} must be a number in {p.unit}, got {v!r}"
                )
            if not math.isfinite(v):  # YAML .inf / .nan: no range holds them
                raise PlatformError(
                    f"platform: {sec}.{key} must be a finite number in [{p.lo:g}, {p.hi:g}] "
                    f"{p.unit}, got {v!r}"
                )
            if p.integer and not float(v).is_integer():
                raise PlatformError(f"platform: {sec}.{key} must be a whole number, got {v!r}")
            if not (p.lo <= v <= p.hi):
                raise PlatformError(
                    f"platform: {sec}.{key} = {v} {p.unit} is outside the allowed range "
                    f"[{p.lo:g}, {p.hi:g}] {p.unit}"
                )
            out[sec][key] = int(v) if p.integer else float(v)
    return out


def load_platform(path: str | os.PathLike) -> Platform:
    """Load and validate a platform YAML file; PlatformError names the file and the key."""
    import yaml  # here, not at import: `migsim ... --help` never loads a platform

    path = Path(path)
    if not path.is_file():
        raise PlatformError(f"platform: no such file {path}")
    try:
        # libyaml's loader when built in: the same documents, ten times faster
        doc = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        why = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise PlatformError(f"platform: {path} is not valid YAML{where}: {why}") from None
    if not isinstance(doc, dict) or "parameters" not in doc:
        raise PlatformError(f"platform: {path} must have a 'parameters' mapping")
    meta = {k: v for k, v in doc.items() if k not in ("parameters", "name")}
    try:
        return Platform(str(doc.get("name", path.stem)), doc["parameters"], meta)
    except PlatformError as exc:
        raise PlatformError(str(exc).replace("platform: ", f"platform: {path}: ", 1)) from None


# Significant digits of a written real value: far below the standard errors of the fitted
# ones (a few percent), and enough to keep the last bits of a fit, which vary with the machine's
# BLAS and CPU, out of the file, so `migsim calibrate` writes the same file on any machine.
WRITTEN_DIGITS = 6


def written_value(value: float | int) -> float | int:
    """A parameter value as save_platform writes it (integers as they are)."""
    return value if isinstance(value, int) else float(f"{value:.{WRITTEN_DIGITS}g}")


def save_platform(platform: Platform, path: str | os.PathLike, header: str = "") -> None:
    """Write a platform YAML with unit and meaning beside every value (atomic rename); real
    values rounded to WRITTEN_DIGITS significant digits."""
    import yaml

    path = Path(path)
    doc: dict[str, Any] = {"name": platform.name, **platform.meta, "parameters": {}}
    values = platform.as_dict()
    for sec, params in SPEC.items():
        doc["parameters"][sec] = {
            key: {"value": written_value(values[sec][key]), "unit": p.unit, "meaning": p.meaning}
            for key, p in params.items()
        }
    text = (header + "\n" if header else "") + yaml.safe_dump(doc, sort_keys=False, width=100)
    atomic_write_text(path, text)


DEFAULT_PLATFORM = Path(DEFAULT_PLATFORM_FILE)
