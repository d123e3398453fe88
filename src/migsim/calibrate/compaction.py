"""Calibration, stage 2: the compaction-specific costs, fitted on the published *baseline*
compaction row only.

Everything from stage 1 (the throughput fit: CPU per-folio and per-PTE costs, copy and DMA
figures) stays fixed. The page-level simulation of a run does not depend on any cost, so the
full-scale run is simulated once and only re-costed while ``scipy.optimize.least_squares``
moves the free parameters. The baseline row gives two usable numbers: its wall time (its sys%
is ~100% for any cost) and the share of the CPU that is neither user, system nor idle
(100 - 0.00 - 99.40 - 0.29 = 0.31 points), which /proc/stat shows as irq + softirq. So two
parameters are free (``FREE``): ``compaction.unnamed_page_us``, the per-isolated-page CPU
that no named part pays (isolate_migratepages_block's isolation is named part by part:
folio_try_get, folio_test_clear_lru + lruvec_del_folio, the LRU size and NR_ISOLATED counters,
the lru_lock round trip per COMPACT_CLUSTER_MAX pfns, each a prior; the folio lock, the rmap
walks of try_to_migrate and remove_migration_ptes and mem_cgroup_migrate are the stage-1
cpu.folio_fixed_us and cpu.pte_us, paid inside migrate_pages() as in move_pages()), and
``sched.tick_irq_us``, the interrupt time of one scheduler tick.
Every other compaction and scheduler cost is a documented physical prior
(``STAGE2_PRIORS`` below, with its source and a plausible range in ``PRIOR_RANGES``), chosen
from the kernel code and the hardware, never from the dma / busy rows, which are then
*predictions*. The reference table is read here, by the fit, and never by the simulator.

The DMA channel count of the published compaction runs is not stated; dcbm's default
nr_dma_chan is 1 and the reply gives no other value, so the predictions use 1
(``studies.compaction.DEFAULT_CHANNELS``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from migsim.atomic import atomic_write_text
from migsim.cost.platform import Platform, save_platform
from migsim.studies.compaction import DEFAULT_CHANNELS, MODES, CompactionResult, simulate

# Priors: values the baseline row cannot determine, with the reason for each value.
STAGE2_PRIORS: dict[str, dict[str, float]] = {
    "compaction": {
        # one struct page per pfn, read sequentially (the memmap streams through the
        # prefetchers): flag tests and the loop, ~30 cycles
        "migrate_scan_pfn_us": 0.01,
        "free_scan_pfn_us": 0.01,
        # isolate_migratepages_block's per-folio isolation (mm/compaction.c), each part a prior:
        # folio_get_nontail_page -> folio_try_get: one locked increment (~30 cycles) on the
        # struct page line the scanner's PageLRU / PageCompound tests just brought in
        "folio_try_get_us": 0.01,
        # folio_test_clear_lru (a locked bit clear on that line), lruvec_del_folio's list_del
        # (writes folio->lru.prev->next and .next->prev: the struct pages of the folio's two LRU
        # neighbours, at random frames after the fragmenter's frees: ~1 DRAM miss each at
        # compaction.dram_us 0.1 us, overlapped in pairs by the out-of-order core) and
        # list_add to cc->migratepages (the folio's own line and the hot list head): 0.15 us,
        # from two L3 hits (0.03) to two serial DRAM misses (0.25)
        "isolate_lru_folio_us": 0.15,
        # update_lru_size (__mod_lruvec_state: the node's and the memcg's per-CPU LRU size
        # counters, mem_cgroup_update_lru_size) and node_stat_mod_folio(NR_ISOLATED_ANON): four
        # per-CPU counter updates with their threshold checks, ~25 cycles each
        "lru_stat_us": 0.03,
        # compact_lock_irqsave + lruvec_unlock_irqrestore: an uncontended spin lock round trip
        # with interrupts saved and restored (locked cmpxchg, store, pushf/popf): ~70 cycles,
        # once per COMPACT_CLUSTER_MAX pfns (the scan drops the lock at every such boundary)
        "lru_lock_us": 0.02,
        # fitted (start value): the per-isolated-page remainder no part above names
        "unnamed_page_us": 1.5,
        # __isolate_free_page: list_del from the order-0 free list touches two neighbouring
        # struct pages at random addresses (~2 DRAM misses of ~0.1 us), the watermark check
        "free_isolate_page_us": 0.2,
        # post_alloc_hook without zeroing: a handful of stores to the struct page and static
        # keys that are off (page owner, page table check, KASAN, alloc tags): ~100 cycles
        "post_alloc_hook_us": 0.03,
        # clear_page_erms (rep stosb) of a cold page: a 4 KiB store stream. Stage 1 fits the
        # vanilla folio_copy at 10.8 GB/s, which moves each byte twice (read + write); a clear
        # writes once: between 10.8 (stores that still read for ownership) and 21.6 GB/s
        # (none); the middle, 16 GB/s, is the prior
        "clear_page_gbps": 16.0,
        # init_on_alloc=0 on the published kernel (v7.0-rc2; Kconfig's default for
        # CONFIG_INIT_ON_ALLOC_DEFAULT_ON is n, the distributions' configs say y; the reply
        # does not say). The throughput table of the same kernel rules it out: move_pages'
        # targets come from alloc_migration_target -> post_alloc_hook, which would zero them
        # (kernel_init_pages, want_init_on_alloc) on the migrating CPU before their copy is
        # issued, and the 2M row with 16 channels moves 1 GiB in 16.1 ms (66.86 GB/s) where
        # zeroing 1 GiB at this platform's clear rate takes 50-99 ms (clear_page_gbps' range
        # 10.8-21.6 GB/s); the same machine and kernel ran the compaction table
        "init_on_alloc_switch": 0,
        # prep_compound_tail: one struct page (64 B) written per tail page, sequentially
        "compound_tail_us": 0.002,
        # free_pcppages_bulk -> __free_one_page, per page the check_drain flush (compact_zone:
        # lru_add_drain_cpu_zone -> drain_local_pages) or a pcp->high crossing
        # (free_frozen_page_commit) moves from the pcp list to the buddy lists: the pcp
        # list_del, then per merge find_buddy_page_pfn / page_is_buddy on the buddy's struct
        # page and del_page_from_free_list, ~2 merges per page in a half-free block (256 frees
        # make 511 free-list removals), all on struct pages of the block the migration scanner
        # has just read (16 KiB of memmap, L2 hits) and free-list neighbours freed next to them
        # by the fragmenter: ~75 cycles, 0.02 us at 3.7 GHz. The host's direct compaction
        # (config/host_compaction_profile_direct_run{1,2}.csv: THP faults, task context, with
        # check_drain, so every freed source page passes free_pcppages_bulk) spends 0.058 and
        # 0.073 us per migrated page under free_pcppages_bulk, 0.32% and 0.25% of its 17.8 and
        # 29.4 us of non-copy kernel CPU: 0.008-0.010 us of the published baseline's 3.05.
        # (Before: 0.15, "one or two cache misses", 15x the host's share.)
        "buddy_free_page_us": 0.02,
        # __alloc_pages_direct_compact / try_to_compact_pages: compaction_deferred, the
        # zonelist walk, compact_zone_order's capture set-up, psi_memstall_enter/leave and
        # the delayacct hooks around it: a few hundred cycles plus two clock reads
        "slowpath_us": 1.0,
        # get_page_from_freelist: zonelist walk, zone_watermark_fast -> __zone_watermark_ok
        # over free_area[9..10] of each migratetype (fails fast), rmqueue when it succeeds
        "freelist_us": 0.3,
        # compact_zone: compaction_suitable (fragmentation_index walks the 11 free areas),
        # lru_add_drain() of the CPU's folio batches, the scanners' set-up and release_free_list
        # at the end
        "compact_zone_us": 2.0,
        # check_drain: lru_add_drain_cpu_zone (folio batches) and drain_pages_zone's
        # zone->lock round trip; the per-page part is __free_one_page above
        "drain_us": 1.0,
        # isolate_freepages: set-up and fast_isolate_freepages' probes of the free lists
        # (cc->search_order down to 0, a few list heads each)
        "isolate_freepages_us": 0.5,
        # Zen 3 core (AMD Software Optimization Guide for AMD Family 19h Processors, #56665):
        # 512 KiB 8-way private L2, 12-cycle L2 hit, L3 (victim of L2) ~46 cycles; at the
        # 3.7 GHz boost clock (sched.hog_clock_ghz)
        "l2_kb": 512.0,
        "l2_ways_count": 8,
        "l2_hit_us": 12 / 3.7e3,
        "l3_hit_us": 46 / 3.7e3,
        # per folio, touched in migrate_folio_unmap and again in migrate_folio_move with
        # dependent loads: src struct page and folio (2), dst (2), the PTE line (1), the pmd
        # line of page_vma_mapped_walk (1), anon_vma and its root (2), the vma (2), the
        # anon_vma interval-tree node (1), the lruvec (1): 12
        "move_lines_count": 12,
        # The code between two migrate_pages() copies (studies.compaction.between_calls_refill_s):
        # the text of the functions it runs and the copy-and-move loop does not, summed from the
        # symbol sizes (address gaps) of /proc/kallsyms of a 6.18.44 x86-64 kernel (the host
        # this was written on; v7.0's are of the same code): __compact_zone 4208 B (with
        # isolate_migratepages, compact_finished and fast_find_migrateblock inlined),
        # isolate_migratepages_block 4944, get_page_from_freelist 6336,
        # __alloc_pages_slowpath 3632, __rmqueue_pcplist 2784, __free_one_page 2368,
        # __alloc_pages_direct_compact 912, __alloc_frozen_pages_noprof 832,
        # free_pcppages_bulk 672, try_to_compact_pages 624, and 19 smaller ones (drains,
        # compaction_suitable, fragmentation_index, watermarks, psi, vmstat): 31104 B; the
        # unmap-only part of migrate_pages_batch: compaction_alloc 4000 (isolate_freepages
        # and fast_isolate_freepages inlined), try_to_migrate_one 3184, isolate_freepages_block
        # 1104, __isolate_free_page 976, try_to_migrate 208, ptep_clear_flush 112: 9584 B;
        # 40688 B in all (39.7 KiB, 636 lines). A path runs part of each function: half of
        # it is the prior, from a quarter to all of it the range
        "between_code_kb": 19.9,
        # struct zone: free_area[0..10] (6 list heads and nr_free, 104 B each: 18 lines), the
        # lock, _watermark, lowmem_reserve and vm_stat lines (4), the compact_cached_* line (1);
        # the pageblock bitmap words at the two scanners (2); per_cpu_pages (lock, counts,
        # lists: 4) and the per-CPU zone and node stat diffs (3); the lruvec (lists, lru_lock,
        # sizes: 3) and the memcg/lruvec stats mem_cgroup_migrate and __mod_lruvec_state update
        # (4); compact_control (3) and capture_control (1); the stack frames from
        # __alloc_pages_slowpath down to migrate_pages_batch (8); the task's flags, psi and
        # delay-accounting fields (3); the per-CPU vm event counters (2): 56
        "between_data_lines_count": 56,
        # Zen 3 CCD: 32 MiB 16-way L3 shared by its 8 cores (#56665, as above); local DRAM
        # ~0.1 us load-to-use (AnandTech's EPYC Rome review, 2019: ~113-122 ns full random
        # at 128 MiB on Zen 2; Zen 3's is in the 90-110 ns the issue states)
        "l3_kb": 32768.0,
        "l3_ways_count": 16,
        "dram_us": 0.1,
        # published machine: 32-core EPYC per socket with SMT, one node per socket
        "node_cpus_count": 64,
    },
    "sched": {
        # schedule() + switch_to + return to the other task with Zen 3 mitigations
        "ctx_switch_us": 2.0,
        # PTDMA completion: hard irq entry/exit, status MMIO reads, the dmaengine callback,
        # complete() and try_to_wake_up() of the sleeping task
        "completion_irq_us": 5.0,
        # EEVDF base slice 0.75 ms x (1 + ilog2(min(nr_cpus, 8))) = 3 ms
        "slice_us": 3000.0,
        # EPYC 7543 (Zen 3, 32 cores) max boost clock, performance governor
        "hog_clock_ghz": 3.7,
        # counter++ with an empty asm barrier: one loop-carried add per cycle
        "hog_iters_per_cycle": 1.0,
        # CONFIG_IRQ_TIME_ACCOUNTING=y in the distribution configurations (as above); the
        # published rows' CPU split leaves 0.3-0.8 points to columns other than
        # user/sys/idle, which a tick-sampled kernel would not show for a non-interrupt load
        "irq_time_accounting_switch": 1,
        # CONFIG_HZ=1000 (Ubuntu since 24.04, Fedora)
        "tick_hz": 1000.0,
        # fitted (start value): one tick's interrupt time
        "tick_irq_us": 2.0,
        # half of it in the softirqs the tick raises (TIMER, RCU, SCHED): rough prior
        "tick_softirq_frac": 0.5,
        # Zen 3 EPYC idle states as ACPI _CST reports them (acpi_idle): C1 by MWAIT (FFH),
        # exit latency 1 us; C2 by an I/O-port read, the core's CC6, about 400 us (the _CST
        # latency FreeBSD review D47444 reports for an EPYC 7502P's I/O C-state)
        "c1_exit_us": 1.0,
        "c2_exit_us": 400.0,
        # after CC6 the L2 is empty: the woken kernel path refetches about half of it
        "cc6_refill_frac": 0.5,
        # the PTDMA vector's CPU is chosen at boot (irq_matrix_alloc: the CPU with the fewest
        # vectors) or by irqbalance, not by the taskset of the test: 63 in 64 it is another
        # CPU of the node
        "msi_on_cpu_switch": 0,
        # a remote wake-up: the call-function IPI's entry/exit and sched_ttwu_pending's enqueue
        # (~1-2 us with Zen 3 mitigations)
        "wakeup_ipi_us": 1.5,
    },
}

# plausible range of each prior (section, key) -> (low, high), for the intervals and the
# sensitivity table of ``migsim reproduce compaction``; the source of each is the comment of
# its value above (a factor of ~2 where the comment gives an order of magnitude)
PRIOR_RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("compaction", "migrate_scan_pfn_us"): (0.005, 0.02),
    ("compaction", "free_scan_pfn_us"): (0.005, 0.02),
    ("compaction", "folio_try_get_us"): (0.005, 0.03),
    ("compaction", "isolate_lru_folio_us"): (0.03, 0.25),
    ("compaction", "lru_stat_us"): (0.015, 0.06),
    ("compaction", "lru_lock_us"): (0.01, 0.04),
    ("compaction", "free_isolate_page_us"): (0.1, 0.4),
    ("compaction", "post_alloc_hook_us"): (0.015, 0.06),
    ("compaction", "clear_page_gbps"): (10.8, 21.6),
    ("compaction", "compound_tail_us"): (0.001, 0.004),
    ("compaction", "buddy_free_page_us"): (0.01, 0.05),
    ("compaction", "slowpath_us"): (0.5, 2.0),
    ("compaction", "freelist_us"): (0.15, 0.6),
    ("compaction", "compact_zone_us"): (1.0, 4.0),
    ("compaction", "drain_us"): (0.5, 2.0),
    ("compaction", "isolate_freepages_us"): (0.25, 1.0),
    ("compaction", "move_lines_count"): (6, 24),
    ("compaction", "l3_hit_us"): (40 / 3.7e3, 60 / 3.7e3),
    ("compaction", "between_code_kb"): (9.9, 39.7),
    ("compaction", "between_data_lines_count"): (28, 112),
    ("compaction", "dram_us"): (0.09, 0.122),
    ("cpu", "unmap_share_frac"): (0.3, 0.7),
    ("cpu", "tlb_flush_us"): (2.5, 10.0),
    ("dma", "call_setup_us"): (2.5, 10.0),
    ("sched", "c1_exit_us"): (0.5, 2.0),
    ("sched", "wakeup_ipi_us"): (0.75, 3.0),
    ("sched", "ctx_switch_us"): (1.0, 4.0),
    ("sched", "hog_clock_ghz"): (3.5, 3.8),
    ("sched", "tick_softirq_frac"): (0.25, 0.75),
}

# (section, key, lower bound, upper bound)
FREE: list[tuple[str, str, float, float]] = [
    ("compaction", "unnamed_page_us", 0.0, 50.0),
    ("sched", "tick_irq_us", 0.0, 100.0),
]


def with_stage2_priors(values: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """A copy of a platform's parameter dict with the compaction and sched sections filled
    from STAGE2_PRIORS where missing (for a stage-1 fit that builds its Platform first)."""
    out = {sec: dict(v) for sec, v in values.items()}
    for sec, params in STAGE2_PRIORS.items():
        out.setdefault(sec, {})
        for key, v in params.items():
            out[sec].setdefault(key, v)
    return out


def read_compaction_reference(path: str | Path) -> pl.DataFrame:
    """The published compaction table (one row per mode)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"reference: no such file {path}")
    df = pl.read_csv(path, comment_prefix="#")
    need = {"mode", "wall_ms", "pages_migrated", "user_pct", "sys_pct", "idle_pct"}
    if not need <= set(df.columns) or set(df["mode"].to_list()) != set(MODES):
        raise ValueError(f"reference: {path} is not the compaction table (modes {MODES})")
    return df


def _with(platform: Platform, x: np.ndarray) -> Platform:
    return platform.replace(
        **{f"{s}__{k}": float(v) for (s, k, _, _), v in zip(FREE, x, strict=True)}
    )


def fit_compaction(
    platform: Platform,
    reference_csv_path: str | Path,
    *,
    seed: int = 1,
    channels: int = DEFAULT_CHANNELS,
    **sim_kwargs,
) -> tuple[Platform, pl.DataFrame]:
    """Fit FREE on the published baseline row's wall time (log residual); return the fitted
    platform and a residual table of all four rows (the other three are predictions).
    `sim_kwargs` (node_bytes, allocations, ...) change the simulated run from the published
    full-scale one (for tests)."""
    from scipy.optimize import least_squares  # scipy only inside a fit (~0.5 s import)

    ref = read_compaction_reference(reference_csv_path)
    base = ref.filter(pl.col("mode") == "baseline").row(0, named=True)
    if "compaction" not in platform.as_dict():
        raise ValueError("platform: has no compaction section; build it with with_stage2_priors")
    sim = simulate(platform, seed=seed, **sim_kwargs)  # the page-level run: no cost in it
    x0 = np.array([platform.as_dict()[s][k] for s, k, _, _ in FREE])
    lo = np.array([b for _, _, b, _ in FREE])
    hi = np.array([b for _, _, _, b in FREE])

    # the share /proc/stat shows in none of user, system, idle: irq + softirq (+ steal, 0)
    base_irq = _missing_pct(base)

    def residual(x: np.ndarray) -> np.ndarray:
        t = sim.result(_with(platform, x), mode="baseline").cost.timeline
        # wall time as a log ratio; the irq share in points, scaled to a comparable size
        return np.array(
            [
                np.log(t.wall_s * 1e3 / base["wall_ms"]),
                (t.missing_pct - base_irq) / 10.0,
            ]
        )

    sol = least_squares(residual, np.clip(x0, lo, hi), bounds=(lo, hi), x_scale=x0.clip(0.1))
    fitted = _with(platform, sol.x)
    rows = [sim.result(fitted, mode=m, channels=channels) for m in MODES]
    return fitted, residual_table(ref, rows)


def _missing_pct(row: dict) -> float:
    """Points of a compaction row that are none of user, system and idle: /proc/stat's irq and
    softirq (the reply did not print them) and, on an idle CPU, the idle task's work after its
    idle state ended, which /proc/stat shows in no column (migsim.cost.timeline)."""
    return float(100.0 - row["user_pct"] - row["sys_pct"] - row["idle_pct"])


def residual_table(ref: pl.DataFrame, results: list[CompactionResult]) -> pl.DataFrame:
    """Published against simulated, per mode and metric; `fitted` marks the fitted cell."""
    pub = {r["mode"]: r for r in ref.iter_rows(named=True)}
    sim = {r.mode: r.row() for r in results}
    out = []
    for mode in MODES:
        p, s = pub[mode], sim[mode]
        for metric in ("wall_ms", "pages_migrated", "dma_copies", "hog_iterations"):
            if p.get(metric) is None or s.get(metric) is None:
                continue
            out.append(
                {
                    "mode": mode,
                    "metric": metric,
                    "published": float(p[metric]),
                    "model": float(s[metric]),
                    "error": 100.0 * (s[metric] / p[metric] - 1.0),
                    "unit": "pct",
                    "fitted": mode == "baseline" and metric == "wall_ms",
                }
            )
        for metric in ("user_pct", "sys_pct", "idle_pct"):
            out.append(
                {
                    "mode": mode,
                    "metric": metric,
                    "published": float(p[metric]),
                    "model": float(s[metric]),
                    "error": float(s[metric] - p[metric]),
                    "unit": "points",
                    "fitted": False,
                }
            )
        # the share that is none of user, system and idle, in both (_missing_pct)
        out.append(
            {
                "mode": mode,
                "metric": "missing_pct",
                "published": _missing_pct(p),
                "model": _missing_pct(s),
                "error": _missing_pct(s) - _missing_pct(p),
                "unit": "points",
                "fitted": mode == "baseline",
            }
        )
    if pub["busy-baseline"].get("hog_iterations") and sim["busy-baseline"]["hog_iterations"]:
        gp = pub["busy-dma"]["hog_iterations"] / pub["busy-baseline"]["hog_iterations"] - 1
        gs = sim["busy-dma"]["hog_iterations"] / sim["busy-baseline"]["hog_iterations"] - 1
        out.append(
            {
                "mode": "busy-dma",
                "metric": "hog_gain_pct",
                "published": 100 * gp,
                "model": 100 * gs,
                "error": 100 * (gs - gp),
                "unit": "points",
                "fitted": False,
            }
        )
    return pl.DataFrame(out).sort(["mode", "metric"])


def calibrate_stage2(
    platform: Platform,
    reference_csv_path: str | Path,
    platform_path: str | Path,
    residuals_path: str | Path,
    *,
    header: str = "",
) -> Platform:
    """Stage 2 of ``migsim calibrate``: fit, then write the platform (all sections) and the
    compaction residuals (CSV), each atomically. Returns the fitted platform."""
    fitted, resid = fit_compaction(platform, reference_csv_path)
    names = " and ".join(f"{s}.{k}" for s, k, _, _ in FREE)
    base = resid.filter(pl.col("mode") == "baseline")

    def err(metric: str) -> float:
        return float(base.filter(pl.col("metric") == metric)["error"][0])

    note = (
        f"# Stage 2 (migsim.calibrate.compaction): {names} fitted on the published\n"
        f"# baseline compaction row (wall {err('wall_ms'):+.2f}%, irq+softirq "
        f"{err('missing_pct'):+.2f} points); the dma and busy rows are predictions, see "
        "the residuals file."
    )
    save_platform(fitted, platform_path, header=(header + "\n" if header else "") + note)
    atomic_write_text(residuals_path, resid.write_csv(float_precision=4))
    return fitted


# -- intervals and sensitivity of the predicted rows (migsim reproduce compaction --json) ------

Z90 = 1.6449  # two-sided 90%: the normal quantile of 0.95
INTERVAL_METRICS = ("wall_ms", "sys_pct", "idle_pct", "hog_iterations")
THIN = 7  # every 7th migrate_pages() call: coprime with the 3 calls of each allocation


def _refit(platform: Platform, log, base: dict, wall_target_s: float) -> Platform:
    """FREE refitted on the baseline row in closed form, on `log`: the tick from the row's
    irq + softirq share (the baseline never sleeps, so that share is the tick's share of the
    CPU), then unnamed_page_us from the wall time, which is linear in it."""
    from migsim.studies.compaction import cost_log

    share = max(_missing_pct(base), 0.0) / 100.0
    p = platform.replace(sched__tick_irq_us=share / platform.sched.tick_hz * 1e6)

    def wall(x: float) -> float:
        q = p.replace(compaction__unnamed_page_us=x)
        return cost_log(log, q, dma=False, busy=False).timeline.wall_s

    w0, w1 = wall(0.0), wall(1.0)
    x = max((wall_target_s - w0) / (w1 - w0), 0.0)
    return p.replace(compaction__unnamed_page_us=x)


def _rows(platform: Platform, log, channels: int, rfc: str = "v4") -> dict[str, dict[str, float]]:
    from migsim.studies.compaction import cost_log, mode_parts

    out = {}
    for mode in MODES:
        kind, busy = mode_parts(mode)
        t = cost_log(
            log, platform, dma=kind == "dma", busy=busy, channels=channels, rfc=rfc
        ).timeline
        out[mode] = {
            "wall_ms": t.wall_s * 1e3,
            "sys_pct": t.sys_pct,
            "idle_pct": t.idle_pct,
            "hog_iterations": float(t.hog_iterations or 0),
        }
    g = out["busy-dma"]["hog_iterations"] / max(out["busy-baseline"]["hog_iterations"], 1.0)
    out["busy-dma"]["hog_gain_pct"] = 100.0 * (g - 1.0)
    return out


def prediction_spread(
    platform: Platform,
    sim,
    reference_csv_path: str | Path,
    *,
    channels: int = DEFAULT_CHANNELS,
    rfc: str = "v4",
) -> dict:
    """90% intervals of a single run's predicted values and the sensitivity table.

    Every source moves one at a time, and the baseline row is refitted each time (only it
    may be fitted): each prior across its stated range (``PRIOR_RANGES``, read as a 90%
    range), each stage-1 parameter by 1.645 of its standard error (``stage1.parameter_sd``),
    the published baseline run's own noise and the predicted run's noise (``noise.
    trial_sd_frac``, one lognormal factor on every cost). The changes combine in quadrature,
    each side apart (a linearised propagation, not a Monte Carlo). The runs are costed on
    every THIN-th migrate_pages() call of `sim` and applied as relative changes (walls, hog
    iterations) or point changes (percentages) to the full run's nominal values."""
    from migsim.kernel.compaction import CompactionLog
    from migsim.studies.compaction import mode_parts

    ref = read_compaction_reference(reference_csv_path)
    base = ref.filter(pl.col("mode") == "baseline").row(0, named=True)
    full, thin = sim.log, CompactionLog(sim.log.pages[::THIN], sim.log.work[::THIN], sim.log.tail)
    nominal_full = _rows(platform, full, channels, rfc)
    ratio = (
        nominal_full["baseline"]["wall_ms"]
        / _rows(platform, thin, channels, rfc)["baseline"]["wall_ms"]
    )
    target = base["wall_ms"] * 1e-3 / ratio

    def run(p: Platform, target_s: float = target) -> dict:
        return _rows(_refit(p, thin, base, target_s), thin, channels, rfc)

    nominal = run(platform)
    moves: list[tuple[str, float, float, dict, dict]] = []  # name, lo, hi, rows at lo/hi
    values = platform.as_dict()
    for (sec, key), (lo, hi) in PRIOR_RANGES.items():
        at = [run(platform.replace(**{f"{sec}__{key}": v})) for v in (lo, hi)]
        moves.append((f"{sec}.{key}", lo, hi, *at))
    for name, sd in platform.meta.get("stage1", {}).get("parameter_sd", {}).items():
        sec, key = name.split(".")
        v = values[sec][key]
        lo, hi = max(v - Z90 * sd, 1e-9), v + Z90 * sd
        at = [run(platform.replace(**{f"{sec}__{key}": x})) for x in (lo, hi)]
        moves.append((name, lo, hi, *at))
    sd = platform.noise.trial_sd_frac
    f_lo, f_hi = float(np.exp(-Z90 * sd)), float(np.exp(Z90 * sd))
    at = [run(platform, target * f) for f in (f_lo, f_hi)]
    moves.append(("published baseline run (noise.trial_sd_frac)", f_lo, f_hi, *at))

    def delta(rows: dict, mode: str, metric: str) -> float:
        """Change against nominal: relative for walls and counts, points for percentages."""
        a, b = rows[mode][metric], nominal[mode][metric]
        if metric.endswith("_pct"):
            return a - b
        return a / b - 1.0 if b else 0.0

    interval: dict[str, dict[str, list[float]]] = {}
    for mode in MODES:
        interval[mode] = {}
        _, busy = mode_parts(mode)
        for metric in INTERVAL_METRICS:
            if metric == "hog_iterations" and not busy:
                continue
            ds = [(delta(a, mode, metric), delta(b, mode, metric)) for *_, a, b in moves]
            if not metric.endswith("_pct"):  # the predicted run's own noise
                ds.append((f_lo - 1.0, f_hi - 1.0))
            down = float(np.sqrt(sum(min(a, b, 0.0) ** 2 for a, b in ds)))
            up = float(np.sqrt(sum(max(a, b, 0.0) ** 2 for a, b in ds)))
            v = nominal_full[mode][metric]
            if metric.endswith("_pct"):
                interval[mode][metric] = [max(v - down, 0.0), min(v + up, 100.0)]
            else:
                interval[mode][metric] = [v * (1.0 - down), v * (1.0 + up)]
    rows_of = {
        "dma wall %": ("dma", "wall_ms"),
        "busy-baseline wall %": ("busy-baseline", "wall_ms"),
        "busy-dma wall %": ("busy-dma", "wall_ms"),
        "dma sys points": ("dma", "sys_pct"),
        "dma idle points": ("dma", "idle_pct"),
        "hog gain points": ("busy-dma", "hog_gain_pct"),
    }
    table = []
    for name, lo, hi, a, b in moves:
        entry = {"source": name, "low": lo, "high": hi}
        for col, (mode, metric) in rows_of.items():
            scale = 1.0 if metric.endswith("_pct") else 100.0
            entry[col] = [scale * delta(a, mode, metric), scale * delta(b, mode, metric)]
        entry["largest"] = max(abs(x) for col in rows_of for x in entry[col])
        table.append(entry)
    table.sort(key=lambda e: -e["largest"])
    return {"interval": interval, "sensitivity": table, "thin": THIN}
