"""Direct compaction mechanisms on small zones: the allocation loop, the two scanners,
COMPACT_CLUSTER_MAX and the finish_pageblock pass, the capture and when it happens, cached
positions and skip bits, deferral, compact_memory, and the costing of the logged calls."""

from __future__ import annotations

import numpy as np
import pytest

# every test on both engines of the allocation loop (tests/engines.py)
from engines import loop_engine, pytest_generate_tests  # noqa: E402, F401

from migsim.cost.copiers import cpu_copy_seconds
from migsim.kernel.compaction import (
    COMPACT_DEFERRED,
    COMPACT_PRIO_SYNC_LIGHT,
    CompactControl,
    CompactionLog,
    Compactor,
)
from migsim.kernel.fragment import FragmentConfig, fragment, metrics
from migsim.kernel.zone import ALLOCATED, FREE, ISOLATED_FREE, ISOLATED_LRU, KERNEL, LRU, Zone
from migsim.studies.compaction import cost_log

MB = 1 << 20


def small_zone(mb: int = 64, **kw) -> Zone:
    return fragment(FragmentConfig(node_bytes=mb * MB, reserved_bytes=2 * MB, **kw))


def logged_run(mb: int, allocations: int) -> tuple[Compactor, CompactionLog]:
    """`allocations` order-9 allocations on a fragmented `mb` MiB zone: the compactor and its
    call log."""
    c = Compactor(small_zone(mb))
    for _ in range(allocations):
        c.alloc_pages_node(9)
    return c, c.log()


def lru_tags(z: Zone) -> np.ndarray:
    return np.sort(z.content_tag(np.flatnonzero(z.state == LRU)))


def steady(c: Compactor, n: int) -> list[int]:
    """Pages migrated by each of `n` allocations."""
    out = []
    for _ in range(n):
        before = c.vmstat["pgmigrate_success"]
        assert c.alloc_pages_node(9) is not None
        out.append(c.vmstat["pgmigrate_success"] - before)
    return out


def test_each_allocation_migrates_a_block_then_one_batch_of_the_next():
    z = small_zone(64)
    c = Compactor(z)
    steady(c, 2)  # the zone start has its own quirks (block 0 is never drained early)
    drains, extra, early = c.capture_in_drain, c.pages_after_capture, c.capture_in_migrate
    per_alloc = steady(c, 6)
    # 32 isolated, then the finish_pageblock pass takes the other 224; the freed pages sit on
    # the pcp list until the drain at the end of the block, where the block is captured; the
    # capture check comes before the drain, so one more batch of 32 is migrated first
    assert per_alloc == [288] * 6
    assert c.capture_in_drain - drains == 6 and c.capture_in_migrate == early
    assert c.pages_after_capture - extra == 6 * 32
    z.check()


def test_cluster_max_sets_the_extra_batch():
    z = small_zone(64)
    c = Compactor(z, cluster_max=64)
    steady(c, 2)
    assert steady(c, 4) == [256 + 64] * 4


def test_without_pcp_lists_the_capture_happens_inside_migrate_pages():
    z = small_zone(64)
    z.pcp.high, z.pcp.batch = 0, 1  # every freed page reaches the buddy lists at once
    c = Compactor(z)
    steady(c, 2)
    assert steady(c, 4) == [256] * 4
    assert c.capture_in_migrate >= 4
    z.check()


def test_allocated_blocks_are_whole_and_aligned():
    z = small_zone(64)
    c = Compactor(z)
    for _ in range(5):
        pfn = c.alloc_pages_node(9)
        assert pfn % 512 == 0 and np.all(z.state[pfn : pfn + 512] == ALLOCATED)
    assert len(set(c.allocated)) == 5 and c.alloc_success == 5


def test_scanners_and_cached_positions():
    z = small_zone(64)
    c = Compactor(z)
    steady(c, 3)
    b = z.compact_cached_migrate_pfn[0] // 512
    # the block after the captured one had one batch migrated and is marked skip; the cached
    # position (pageblock_end_pfn of the block end) is past it
    prev = b - 1
    assert z.skip[prev] and np.count_nonzero(z.state[prev * 512 : b * 512] == LRU) == 224
    # migration targets come from the top of the zone, below the kernel's pageblock
    top = z.nr_blocks - 2
    assert np.count_nonzero(z.state[top * 512 : (top + 1) * 512] == LRU) == 512
    assert z.compact_cached_free_pfn < top * 512
    assert not np.any(np.isin(z.state, (ISOLATED_FREE, ISOLATED_LRU)))


def test_contents_survive_compaction():
    z = small_zone(64, pattern="random", seed=5)
    before = lru_tags(z)
    c = Compactor(z)
    for _ in range(6):
        c.alloc_pages_node(9)
    assert c.vmstat["pgmigrate_success"] > 0
    assert np.array_equal(lru_tags(z), before)
    z.check()


def test_counters_add_up():
    z = small_zone(64)
    c = Compactor(z)
    for _ in range(6):
        c.alloc_pages_node(9)
    v = c.vmstat
    log = c.log()
    assert v["pgmigrate_success"] == int(log.pages.sum())
    isolated = int(log.work[:, 2].sum() + log.work[:, 3].sum() + log.tail[2] + log.tail[3])
    assert v["compact_isolated"] == isolated
    assert v["compact_stall"] == v["compact_success"] + v["compact_fail"]
    assert v["compact_migrate_scanned"] == int(log.work[:, 0].sum() + log.tail[0])


def test_failing_allocations_defer_compaction():
    z = small_zone(64, free_ratio=0.25)  # not enough free pages to empty many blocks
    c = Compactor(z)
    for _ in range(12):
        c.alloc_pages_node(9)
    assert c.alloc_fail > 0 and c.vmstat["compact_fail"] > 0
    assert z.compact_defer_shift > 0
    z.check()
    assert not np.any(np.isin(z.state, (ISOLATED_FREE, ISOLATED_LRU)))


def test_deferral_skips_then_retries():
    z = small_zone(16)
    c = Compactor(z)
    c.defer_compaction(9)
    c.defer_compaction(9)  # shift 2: skip 3 attempts, then try
    got = [c.try_to_compact_pages(9, COMPACT_PRIO_SYNC_LIGHT)[0] for _ in range(4)]
    assert got[:3] == [COMPACT_DEFERRED] * 3 and got[3] != COMPACT_DEFERRED


def test_async_skip_on_failure_abandons_a_block_with_an_unmovable_page():
    z = Zone(8 * 512)
    z.state[: 4 * 512] = LRU
    z.state[0 : 4 * 512 : 2] = FREE
    z.state[100] = KERNEL  # in block 0, after the first 32 movable pages
    z.recount()
    c = Compactor(z)
    cc = CompactControl(order=9, migrate_pfn=0, free_pfn=7 * 512)
    c.isolate_migratepages_block(cc, 0, 512)
    assert cc.nr_migratepages == 32  # the 32 before the unmovable page
    c.migrate_pages(cc)
    cc.finish_pageblock = True
    c.isolate_migratepages_block(cc, cc.migrate_pfn, 512)
    assert cc.nr_migratepages == 0 and cc.migrate_pfn == 512 and z.skip[0]
    # sync compaction steps over the unmovable page instead
    z.skip[:] = False
    cc = CompactControl(order=9, mode=2, direct_compaction=False, finish_pageblock=True)
    c.isolate_migratepages_block(cc, 64, 512)
    assert cc.nr_migratepages == 224


def test_compact_memory_frees_high_order_blocks():
    z = small_zone(32)
    before = lru_tags(z)
    assert metrics(z)["unusable_index_9"] == 1.0
    c = Compactor(z)
    c.compact_memory()
    z.drain_pages()
    m = metrics(z)
    assert m["unusable_index_9"] < 0.15
    assert c.vmstat["pgmigrate_success"] >= 0.4 * before.size
    assert np.array_equal(lru_tags(z), before)
    z.check()


def test_compaction_is_skipped_below_the_watermark():
    z = small_zone(16, free_ratio=0.1)
    c = Compactor(z)
    assert not c.compaction_suitable(9)
    assert c.alloc_pages_node(9) is None
    assert c.vmstat["compact_stall"] == 0 and c.alloc_fail == 1


def test_small_orders_compact_too():
    z = small_zone(16)
    c = Compactor(z)
    for _ in range(20):
        pfn = c.alloc_pages_node(3)
        assert pfn is not None and pfn % 8 == 0
    z.check()


def test_cost_of_a_cpu_run_is_the_sum_of_its_parts(platform):
    # every compaction cost outside migrate_pages() off, no zeroing, no cache effect, no tick
    zero = {f"compaction__{k}": 0.0 for k in platform.compaction.as_dict() if k.endswith("_us")}
    p = platform.replace(
        **zero,
        compaction__move_lines_count=0,
        compaction__init_on_alloc_switch=0,
        sched__tick_irq_us=0.0,
        noise__trial_sd_frac=0.0,
    )
    _, log = logged_run(64, 5)
    cost = cost_log(log, p, dma=False, busy=False)
    n = log.pages.astype(float)
    per_page = (p.cpu.folio_fixed_us + p.cpu.pte_us) * 1e-6
    expect = float((n * per_page).sum()) + p.cpu.tlb_flush_us * 1e-6 * np.count_nonzero(n)
    expect += float(cpu_copy_seconds(n, n * 4096, p).sum())
    assert cost.timeline.wall_s == pytest.approx(expect)
    assert cost.timeline.idle_s == 0.0
    # with a unit cost on the isolation only, the run costs one unit per isolated page more
    q = p.replace(compaction__isolate_lru_folio_us=1.0)
    more = cost_log(log, q, dma=False, busy=False).timeline.wall_s - cost.timeline.wall_s
    assert more == pytest.approx(int(log.work[:, 2].sum() + log.tail[2]) * 1e-6)


def test_dma_run_sleeps_and_counts_offloaded_copies(platform):
    z = small_zone(64)
    c = Compactor(z)
    for _ in range(5):
        c.alloc_pages_node(9)
    log = c.log()
    cpu = cost_log(log, platform, dma=False, busy=False)
    dma = cost_log(log, platform, dma=True, busy=False, channels=1)
    assert dma.dma_copies == int(log.pages.sum())
    assert dma.timeline.idle_s > 0 and dma.timeline.nr_sleeps == np.count_nonzero(log.pages)
    assert dma.timeline.sys_s < cpu.timeline.sys_s  # the copy left the CPU
    two = cost_log(log, platform, dma=True, busy=False, channels=2)
    assert two.timeline.idle_s < dma.timeline.idle_s


# -- issue 12: the allocation side, the capture context, the cache effect -------------------


@pytest.mark.parametrize("capture", ["task", "kthread"])
def test_allocation_side_work_scales_with_allocations_not_pages(capture):
    """prep_new_page (post_alloc_hook, zeroing, prep_compound_page) is logged once per block
    handed out and once per base page of it, whatever the pages migrated."""
    from migsim.kernel.compaction import W_ALLOC, W_ALLOC_PAGES, W_FREELIST, W_SLOWPATH

    z = small_zone(256)
    c = Compactor(z, capture=capture)
    for _ in range(20):
        c.alloc_pages_node(9)
    log = c.log()
    work = log.work.sum(0) + log.tail
    assert work[W_ALLOC] == c.alloc_success == 20
    assert work[W_ALLOC_PAGES] == 512 * c.alloc_success
    # one fast-path get_page_from_freelist per allocation, one more after each direct
    # compaction that did not capture (only a task captures)
    direct = int(work[W_SLOWPATH])
    extra = direct if capture == "kthread" else 0
    assert work[W_FREELIST] == c.alloc_success + extra


def test_a_kernel_thread_never_captures_and_migrates_one_block_per_allocation():
    """task_capc() returns NULL for PF_KTHREAD: the freed block merges in the drain and is
    found on the free list, without the extra COMPACT_CLUSTER_MAX batch of a task."""
    pages = {}
    for capture in ("task", "kthread"):
        c = Compactor(small_zone(1024), capture=capture)
        for _ in range(40):
            c.alloc_pages_node(9)
        assert c.alloc_success == 40
        pages[capture] = c.vmstat["pgmigrate_success"] / c.alloc_success
        captured = c.capture_in_drain + c.capture_in_migrate
        assert captured == (40 if capture == "task" else 0)
    assert pages["kthread"] == pytest.approx(256, abs=1)
    # a task that captures in the drain has migrated a batch of the next block first (at
    # full scale every allocation: 288 pages, tests/test_compaction_reproduce.py)
    assert pages["task"] > pages["kthread"]
    with pytest.raises(ValueError, match="capture: must be one of task, kthread"):
        Compactor(small_zone(16), capture="irq")


def test_small_batch_cache_effect_is_invisible_to_a_1gib_batch(platform):
    """The L2 term is 0 for the throughput table's 262144-folio batches in both modes, so
    stage 1 cannot observe it; for a COMPACT_CLUSTER_MAX batch the offloaded copy keeps more
    of the folios' state in L2 than the vanilla copy that streams 8 KiB per folio."""
    from migsim.studies.compaction import l2_refill_s, poisson_cdf

    big = np.array([262144])
    for cpu_copy in (True, False):
        assert abs(l2_refill_s(big, platform, cpu_copy=cpu_copy)[0]) < 1e-12
    small = np.array([32])
    vanilla = l2_refill_s(small, platform, cpu_copy=True)[0]
    offload = l2_refill_s(small, platform, cpu_copy=False)[0]
    c = platform.compaction
    bound = 32 * c.move_lines_count * (c.l3_hit_us - c.l2_hit_us) * 1e-6
    assert -bound <= offload < vanilla <= 0.0  # at most every line kept, offload keeps more
    # by hand, the first folio of an offloaded batch: 31 later unmaps of 12 lines + a zeroed
    # 4 KiB target = 31 x 4864 B = 2356 lines over 1024 sets of 8 ways: Poisson(2.30) < 8
    from scipy.stats import poisson

    sets = c.l2_kb * 1024 / 64 / c.l2_ways_count
    first = poisson.cdf(7, 31 * (12 * 64 + 4096) / 64 / sets)
    one = l2_refill_s(np.array([1]), platform, cpu_copy=False)[0]
    assert one == pytest.approx(-12 * (c.l3_hit_us - c.l2_hit_us) * 1e-6)  # nothing between
    assert first == pytest.approx(poisson.cdf(7, 2356 / 1024), rel=1e-3)
    lam = np.array([0.0, 0.5, 2.3, 8.0, 40.0])
    assert poisson_cdf(7, lam) == pytest.approx(poisson.cdf(7, lam), rel=1e-12, abs=1e-15)


def test_init_on_alloc_zeroes_the_targets_and_the_block(platform):
    """With init_on_alloc every migration target (compaction_alloc) and every page of the
    captured block (prep_new_page) is zeroed at clear_page_gbps; without it neither is."""
    c, log = logged_run(256, 10)
    on = cost_log(log, platform.replace(compaction__init_on_alloc_switch=1), dma=False, busy=False)
    off = cost_log(log, platform.replace(compaction__init_on_alloc_switch=0), dma=False, busy=False)
    clear = 4096 / (platform.compaction.clear_page_gbps * 1e9)
    targets = c.vmstat["pgmigrate_success"]  # one target per migrated page here
    assert on.work_s["kernel_init_pages (compaction_alloc)"] == pytest.approx(targets * clear)
    assert on.work_s["kernel_init_pages (prep_new_page)"] == pytest.approx(10 * 512 * clear)
    assert off.work_s["kernel_init_pages (prep_new_page)"] == 0.0
    # and the zeroing widens the window of the L2 refill after each call (tested on its own in
    # tests/test_compaction_cache.py): the rest of the compaction work is the same
    from migsim.studies.compaction import BETWEEN_REFILL

    refill = on.work_s[BETWEEN_REFILL] - off.work_s[BETWEEN_REFILL]
    assert refill > 0
    assert on.compaction_s - off.compaction_s == pytest.approx((targets + 5120) * clear + refill)
