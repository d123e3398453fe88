"""Small cases of compaction's scanners, the work log and the zone's capture and free lists,
with expectations derived by hand (numbers in the docstrings) or counted by a second code
path (named in the docstring). They reject the wrong engines that mutation testing left
alive in Compactor's free and migration scanners and in Zone's capture and free-list code
(benchmarks/mutation.py, mutation_audit.txt)."""

from __future__ import annotations

import re

import numpy as np
import pytest

# every test on both engines of the allocation loop (tests/engines.py)
from engines import loop_engine, pytest_generate_tests  # noqa: E402, F401

from migsim.kernel.compaction import (
    COMPACT_PRIO_ASYNC,
    COMPACT_PRIO_SYNC_FULL,
    COMPACT_SKIPPED,
    COMPACT_SUCCESS,
    M_BEGIN,
    M_ISO_MIGRATE,
    M_SUITABLE,
    MARK_ARGS,
    MIGRATE_ASYNC,
    MIGRATE_SYNC_LIGHT,
    W_BUDDY_FREED,
    W_COMPACT_ZONE,
    W_DRAIN,
    W_FREE_ISOLATED,
    W_FREE_SCANNED,
    W_ISOLATED,
    W_MIGRATE_SCANNED,
    CompactControl,
    Compactor,
)
from migsim.kernel.zone import (
    ALLOCATED,
    FREE,
    ISOLATED_FREE,
    ISOLATED_LRU,
    KERNEL,
    LRU,
    MIGRATE_UNMOVABLE,
    CaptureControl,
    Zone,
)

PB = 512


def _zone(nr_blocks: int, fill: int = LRU) -> Zone:
    z = Zone(nr_blocks * PB)
    z.state[:] = fill
    return z


def _isolated(cc: CompactControl) -> list[int]:
    return np.concatenate(cc.migratepages).tolist() if cc.migratepages else []


def _marks(c: Compactor, kind: int) -> list[list[int]]:
    m = c.log().marks
    return m[m[:, 0] == kind][:, MARK_ARGS:].tolist()


# ------------------------------------------------------------------ the work log


def _log_totals(c: Compactor) -> np.ndarray:
    log = c.log()
    return log.work.sum(0, dtype=np.int64) + log.tail


@pytest.mark.parametrize("run", ["alloc", "compact_memory"])
def test_the_work_log_adds_up_to_the_vmstat_counters_drains_and_buddy_frees(run):
    """Every unit of work is in the log once: summed over the calls and the tail, the scanned
    pfns are /proc/vmstat's compact_migrate_scanned and compact_free_scanned, the isolated
    pages (sources plus targets) compact_isolated, the pages per call pgmigrate_success, the
    pages freed into the buddy lists the zone's own count (Zone.buddy_frees, kept by
    free_to_buddy), the drains the calls of Zone.drain_pages (counted by a wrapper), and no
    call has a negative count. A 64 MiB node with 30% of each 2 MiB region free (154 free
    pages per pageblock, so the targets of a batch of 32 come from two pageblocks now and
    then), eight order-9 allocations or one compact_memory."""
    from migsim.kernel.fragment import FragmentConfig, fragment

    z = fragment(FragmentConfig(node_bytes=64 << 20, free_ratio=0.3))
    c = Compactor(z)
    drains = []
    drain = z.drain_pages
    z.drain_pages = lambda: drains.append(1) or drain()
    frees0 = z.buddy_frees
    if run == "alloc":
        for _ in range(8):
            c.alloc_pages_node(9)
    else:
        c.compact_memory()
    t, v = _log_totals(c), c.vmstat
    assert v["pgmigrate_success"] > 0
    assert t[W_MIGRATE_SCANNED] == v["compact_migrate_scanned"] > 0
    assert t[W_FREE_SCANNED] == v["compact_free_scanned"] > 0
    assert t[W_ISOLATED] + t[W_FREE_ISOLATED] == v["compact_isolated"]
    assert int(c.log().pages.sum()) == v["pgmigrate_success"]
    assert t[W_BUDDY_FREED] == z.buddy_frees - frees0 > 0
    assert t[W_DRAIN] == len(drains)
    assert (c.log().work >= 0).all() and (c.log().tail >= 0).all()
    if run == "alloc":
        assert len(drains) > 0


def _two_target_blocks_scanned() -> tuple[Zone, Compactor]:
    """test_free_scanner_marks_a_fully_scanned_block_skip's case: 8 pageblocks of LRU
    pages, block 7 with 100 free pages at its start, block 6 with 100 from offset 200; the
    free scanner isolates 150 targets from the top down."""
    z = _zone(8)
    z.state[7 * PB : 7 * PB + 100] = FREE
    z.state[6 * PB + 200 : 6 * PB + 300] = FREE
    z.recount()
    c = Compactor(z)
    c.isolate_freepages(CompactControl(order=9, free_pfn=7 * PB, nr_migratepages=150))
    return z, c


def test_the_free_scanners_work_over_two_pageblocks_is_logged_whole():
    """The case of test_free_scanner_marks_a_fully_scanned_block_skip: 150 targets, block 7
    scanned whole (512 pfns, 100 free), block 6 up to pfn 3322 (250 pfns): one
    isolate_freepages() call, 762 pfns scanned and 150 pages isolated in the log's tail."""
    _, c = _two_target_blocks_scanned()
    tail = c.log().tail
    assert (tail[W_FREE_SCANNED], tail[W_FREE_ISOLATED]) == (762, 150)


# ------------------------------------------------------------------ compact_zone


def test_cluster_max_of_one_isolates_one_page_per_batch():
    """Compactor(cluster_max=1) is the smallest COMPACT_CLUSTER_MAX allowed: a batch outside
    a finish_pageblock pass isolates one page (the first LRU page, pfn 0); 0 is refused."""
    z = _zone(8)
    z.recount()
    cc = CompactControl(order=9, free_pfn=7 * PB)
    Compactor(z, cluster_max=1).isolate_migratepages(cc)
    assert _isolated(cc) == [0]
    with pytest.raises(ValueError, match=r"^cluster_max: must be >= 1, got 0$"):
        Compactor(z, cluster_max=0)


def _few_free_pages(nr_free: int) -> Zone:
    """8 pageblocks of LRU pages but the first `nr_free` pfns of block 7 (wmark_min 128,
    wmark_low 160 for 4096 pages)."""
    z = _zone(8)
    z.state[7 * PB : 7 * PB + nr_free] = FREE
    z.recount()
    assert (z.wmark_min, z.wmark_low) == (128, 160)
    return z


def test_order_0_compaction_below_the_min_watermark_is_skipped():
    """compact_zone() of order 0 checks the watermarks like any order >= 0: with 100 free
    pages (below wmark_min 128) the order-0 watermark fails and __compaction_suitable()
    (100 <= 128 + compact_gap 2) too: COMPACT_SKIPPED, nothing scanned, no compact_zone()
    work logged. With 300 free pages the order-0 watermark holds: COMPACT_SUCCESS at once."""
    c = Compactor(_few_free_pages(100), trace=True)
    assert c.compact_zone_order(0, COMPACT_PRIO_ASYNC) == (COMPACT_SKIPPED, None)
    assert c.log().tail[W_COMPACT_ZONE] == 0 and _marks(c, M_BEGIN) == []
    assert _marks(c, M_SUITABLE) == [[0, COMPACT_SKIPPED, 0, 0]]
    c = Compactor(_few_free_pages(300), trace=True)
    assert c.compact_zone_order(0, COMPACT_PRIO_ASYNC) == (COMPACT_SUCCESS, None)
    assert c.log().tail[W_COMPACT_ZONE] == 0 and _marks(c, M_SUITABLE) == []


def test_the_suitable_mark_records_a_skipped_order_9_compaction():
    """trace_mm_compaction_suitable: 300 free pages are no order-9 block and not above
    wmark_low 160 + compact_gap 1024: compaction_suitable() fails, the mark says
    COMPACT_SKIPPED and compact_zone() returns it before any scan."""
    c = Compactor(_few_free_pages(300), trace=True)
    assert c.compact_zone_order(9, COMPACT_PRIO_ASYNC) == (COMPACT_SKIPPED, None)
    assert _marks(c, M_SUITABLE) == [[9, COMPACT_SKIPPED, 0, 0]]
    assert c.vmstat["compact_migrate_scanned"] == 0


def _unmovable_targets() -> Zone:
    """16 pageblocks: block 0 kernel memory; block 1 movable, its first 32 pfns LRU pages, the
    rest free (480 pages in buddy blocks of 32, 64, 128 and 256); blocks 2-15 UNMOVABLE,
    kernel pages at even pfns and free pages at odd ones (14 x 256 = 3584). 4064 free pages
    in 3588 blocks: above wmark_low 226 + compact_gap 1024, fragmentation index 1000 -
    (1000 + 4064000 // 512) // 3588 = 998 > 500: order 9 is suitable."""
    z = _zone(16, KERNEL)
    z.state[PB : PB + 32] = LRU
    z.state[PB + 32 : 2 * PB] = FREE
    z.state[2 * PB + 1 :: 2] = FREE
    z.migratetype[2:] = MIGRATE_UNMOVABLE
    z.recount()
    assert z.nr_free == 4064 and z.free_blocks_total() == 3588
    return z


def test_only_the_last_priority_takes_unmovable_pageblocks_as_targets():
    """compact_zone_order(): ignore_block_suitable only at MIN_COMPACT_PRIORITY (full sync).
    The only free pages outside block 1 lie in UNMOVABLE pageblocks: async compaction finds
    no target for block 1's 32 LRU pages (nothing migrated, block 1 still holds them); the
    full-sync priority migrates all 32 into them (to the highest free pfns first: block 15's
    odd pfns from 7681 up), after which block 1 is free."""
    z = _unmovable_targets()
    c = Compactor(z)
    status, page = c.compact_zone_order(9, COMPACT_PRIO_ASYNC)
    assert c.vmstat["pgmigrate_success"] == 0 and page is None
    assert (z.state[PB : PB + 32] == LRU).all()
    z = _unmovable_targets()
    c = Compactor(z)
    c.compact_zone_order(9, COMPACT_PRIO_SYNC_FULL)
    assert c.vmstat["pgmigrate_success"] == 32
    assert np.flatnonzero(z.state[15 * PB :] == LRU).tolist() == list(range(1, 64, 2))


def test_direct_compaction_asks_for_a_skip_flush_when_the_scanners_meet():
    """compact_finished(): when the scanners meet, direct compaction sets
    zone->compact_blockskip_flush (kcompactd clears the skip bits later); compact_memory
    (not direct) leaves it clear. The async case of
    test_only_the_last_priority_takes_unmovable_pageblocks_as_targets ends so."""
    z = _unmovable_targets()
    Compactor(z).compact_zone_order(9, COMPACT_PRIO_ASYNC)
    assert z.compact_blockskip_flush is True
    z = _unmovable_targets()
    Compactor(z).compact_memory()
    assert z.compact_blockskip_flush is False


def test_a_cached_free_pfn_outside_the_zone_restarts_at_the_last_pageblock():
    """compact_zone(): a cached free pfn outside [zone start, zone end) (here -512, or the
    zone end 8192) is replaced by pageblock_start_pfn(zone end - 1) = 7680, for this run and
    in the cache; trace_mm_compaction_begin reports it."""
    for bad in (-PB, 16 * PB):
        z = _unmovable_targets()
        z.compact_cached_free_pfn = bad
        c = Compactor(z, trace=True)
        c.compact_zone_order(9, COMPACT_PRIO_ASYNC)
        assert _marks(c, M_BEGIN)[0][:2] == [0, 7680]


# ------------------------------------------------------------------ the migration scanner


def _mid_block_source(mode: int) -> tuple[CompactControl, Zone]:
    """8 pageblocks of LRU pages, block 2 UNMOVABLE; direct compaction of order 9 in `mode`
    resumes at pfn 1124 (inside block 2)."""
    z = _zone(8)
    z.recount()
    z.migratetype[2] = MIGRATE_UNMOVABLE
    cc = CompactControl(order=9, mode=mode, migrate_pfn=1124, free_pfn=7 * PB)
    Compactor(z).isolate_migratepages(cc)
    return cc, z


def test_a_migration_scan_resumed_inside_an_unmovable_block():
    """isolate_migratepages() from pfn 1124, inside the UNMOVABLE block 2: async direct
    compaction finds it unsuitable (suitable_migration_source), records the skip
    (update_cached_migrate(1536): async cached pfn 2048) and isolates the first 32 pages of
    block 3 (1536..1567); sync-light direct compaction takes any migratetype and isolates
    1124..1155."""
    cc, z = _mid_block_source(MIGRATE_ASYNC)
    assert _isolated(cc) == list(range(1536, 1568))
    assert z.compact_cached_migrate_pfn == [2048, 0]
    cc, z = _mid_block_source(MIGRATE_SYNC_LIGHT)
    assert _isolated(cc) == list(range(1124, 1156))
    assert z.compact_cached_migrate_pfn == [0, 0]


def test_a_scan_from_inside_a_pageblock_ignores_and_sets_no_skip_bit():
    """isolate_migratepages_block(): valid_page (the skip bit's page) is only the
    pageblock's first page. Block 0 is marked skip: a scan from pfn 0 passes it whole, one
    from pfn 1 (not aligned) isolates pfns 1..32 and leaves the bit as it is; in an unmarked
    block a scan from pfn 1 isolates 1..32 and sets no bit, neither by scanning (first
    batch) nor from the scan cache (second batch, 33..64)."""
    c = Compactor(z := _zone(8))
    z.recount()
    z.skip[0] = True
    cc = CompactControl(order=9, free_pfn=7 * PB)
    c.isolate_migratepages_block(cc, 0, PB)
    assert _isolated(cc) == [] and cc.migrate_pfn == PB
    cc = CompactControl(order=9, free_pfn=7 * PB)
    c.isolate_migratepages_block(cc, 1, PB)
    assert _isolated(cc) == list(range(1, 33))
    z.skip[0] = False
    c = Compactor(z := _zone(8))
    z.recount()
    cc = CompactControl(order=9, free_pfn=7 * PB)
    c.isolate_migratepages_block(cc, 1, PB)
    assert _isolated(cc) == list(range(1, 33)) and not z.skip.any()
    cc = CompactControl(order=9, free_pfn=7 * PB)
    c.isolate_migratepages_block(cc, 33, PB)
    assert _isolated(cc) == list(range(33, 65)) and not z.skip.any()


def test_async_skip_on_failure_by_order_8_blocks():
    """Async direct compaction of order 8 aborts an order-8 aligned block (256 pfns) at a
    page it cannot isolate (skip_on_failure). Block 0: pfn 5 is kernel memory, the other
    frames LRU pages: the first order-8 block is given up, the batch is the first 32 pages of
    the second (256..287); the next batch comes from the scan cache: 288..319. Block 1: its
    first order-8 block free, 10 LRU pages at 768..777 in the second: those 10 (an isolated
    order block is migrated at once). Sync-light direct compaction does not skip on failure:
    pfns 0..4 and 6..32."""
    z = _zone(8)
    z.state[5] = KERNEL
    z.state[PB : PB + 256] = FREE
    z.state[PB + 266 : 2 * PB] = FREE
    z.recount()
    c = Compactor(z)
    cc = CompactControl(order=8, free_pfn=7 * PB)
    c.isolate_migratepages_block(cc, 0, PB)
    assert _isolated(cc) == list(range(256, 288)) and cc.migrate_pfn == 288
    cc2 = CompactControl(order=8, free_pfn=7 * PB)
    c.isolate_migratepages_block(cc2, 288, PB)
    assert _isolated(cc2) == list(range(288, 320))
    cc3 = CompactControl(order=8, free_pfn=7 * PB)
    c.isolate_migratepages_block(cc3, PB, 2 * PB)
    assert _isolated(cc3) == list(range(768, 778))
    z = _zone(8)
    z.state[5] = KERNEL
    z.recount()
    cc = CompactControl(order=8, mode=MIGRATE_SYNC_LIGHT, free_pfn=7 * PB)
    Compactor(z).isolate_migratepages_block(cc, 0, PB)
    assert _isolated(cc) == [*range(5), *range(6, 33)]


def test_the_isolate_migratepages_mark_has_start_end_scanned_and_taken():
    """trace_mm_compaction_isolate_migratepages(start_pfn, end_pfn, nr_scanned,
    nr_taken): a batch of 32 from pfn 512 of a block of LRU pages: (512, 544, 32, 32)."""
    z = _zone(8)
    z.recount()
    c = Compactor(z, trace=True)
    c.isolate_migratepages_block(CompactControl(order=9, free_pfn=7 * PB), PB, 2 * PB)
    assert _marks(c, M_ISO_MIGRATE) == [[512, 544, 32, 32]]


# ------------------------------------------------------------------ migrate_pages, contents


def test_a_target_migrated_again_keeps_the_content_it_received():
    """migrate_pages() twice: pages 512..543 (content tags 513..544) move to 3584..3615, then
    those pages (now the tags 513..544) move on to 2048..2079. The second move reads the
    first one's result (move_content flushes the queue before a source that may be a queued
    target), so 2048..2079 hold 513..544, not the 3585..3616 the frames held first."""
    z = _zone(8)
    z.state[PB : PB + 32] = ISOLATED_LRU
    z.state[7 * PB : 7 * PB + 32] = ISOLATED_FREE
    z.state[4 * PB : 4 * PB + 32] = ISOLATED_FREE
    z.recount()
    c = Compactor(z)

    def move(src: int, dst: int) -> None:
        cc = CompactControl(order=9, free_pfn=7 * PB)
        cc.migratepages = [np.arange(src, src + 32, dtype=np.int64)]
        cc.nr_migratepages = 32
        cc.freepages = [np.arange(dst, dst + 32, dtype=np.int64)]
        cc.nr_freepages = 32
        assert c.migrate_pages(cc) == 0

    move(PB, 7 * PB)
    z.state[7 * PB : 7 * PB + 32] = ISOLATED_LRU
    move(7 * PB, 4 * PB)
    assert z.content_tag(np.arange(2048, 2080)).tolist() == list(range(513, 545))


# ------------------------------------------------------------------ the free scanner's cache


def test_a_block_whose_free_count_changed_is_rescanned():
    """isolate_freepages_block() caches the free pfns of a block it left (Zone.fscan_*)
    until the block's free count changes. Block 7 has free pages 3584..3683: 50 are taken
    (3584..3633); then pfn 3700 is freed into the buddy lists: the next scan from 3634 with
    100 to take finds 3634..3683 and 3700 (51), not the 50 the cache held."""
    z = _zone(8)
    z.state[7 * PB : 7 * PB + 100] = FREE
    z.recount()
    c = Compactor(z)
    cc = CompactControl(order=9, nr_migratepages=50)
    assert c.isolate_freepages_block(cc, 7 * PB, 8 * PB) == 3634
    z.state[3700] = KERNEL  # a page of another user, freed
    z.free_to_buddy(np.array([3700]))
    cc = CompactControl(order=9, nr_migratepages=100)
    assert c.isolate_freepages_block(cc, 3634, 8 * PB) == 8 * PB
    assert np.concatenate(cc.freepages).tolist() == [*range(3634, 3684), 3700]


# ------------------------------------------------------------------ zone: capture, free lists


def test_an_order_10_capture_needs_the_buddy_pageblock():
    """compaction_capture() of order 10 in a zone of 3 pageblocks: the last pageblock (2)
    has no buddy inside the zone, so freeing all of it completes no order-10 block (nothing
    captured, 512 free pages); freeing all of pageblocks 0 and 1 completes the block at 0."""
    z = _zone(3, ALLOCATED)
    z.recount()
    z.capture_control = capc = CaptureControl(order=10)
    assert z.free_to_buddy(np.arange(2 * PB, 3 * PB)) is None
    assert capc.page is None and z.nr_free == PB
    assert z.free_to_buddy(np.arange(0, 2 * PB)) == 0
    assert capc.page == 0


def test_an_order_9_capture_from_an_array_of_frees():
    """free_to_buddy() of a plain pfn array (its pageblock not given): pageblock 1 freed
    whole completes an order-9 block, which the capture takes (pfn 512); the other frames
    stay allocated, no page is left free."""
    z = _zone(4, ALLOCATED)
    z.recount()
    z.capture_control = capc = CaptureControl(order=9)
    assert z.free_to_buddy(np.arange(PB, 2 * PB)) == PB
    assert capc.page == PB and z.nr_free == 0


def test_free_lists_of_pageblocks_with_gaps_between_them():
    """free_list(0) and buddyinfo of three partly free pageblocks that are not adjacent
    (0, 2, 4 of 6; the others allocated): each holds one free page at offset 1, so
    free_area[0] is pfns 1, 1025, 2049 and the counts are 3 order-0 blocks."""
    z = _zone(6, ALLOCATED)
    z.state[[1, 1025, 2049]] = FREE
    z.recount()
    assert z.block_free_mask(np.array([0, 2, 4])).sum(1).tolist() == [1, 1, 1]
    assert z.free_list(0).tolist() == [1, 1025, 2049]
    assert z.free_area_counts().tolist() == [3] + [0] * 10


def test_the_check_of_a_large_zone_with_far_apart_pcp_pages():
    """Zone.check() of a 512 MiB zone (131072 pages) with two pages on the per-CPU list far
    apart (pfns 5 and 131000, past the bitmap test's range): distinct, the check passes; the
    same page twice on the list fails it."""
    z = _zone(256, ALLOCATED)
    z.recount()
    z.pcp_free(np.array([5, 131000]))
    z.check()
    z.pcp.add(np.array([131000], dtype=np.int64))
    with pytest.raises(AssertionError, match="^a frame is twice on the pcp list$"):
        z.check()


def test_pcp_free_takes_a_list_of_pfns():
    """pcp_free() of order-0 pfns given as a Python list: the two pages are on the per-CPU
    list (pcp->count 2, state PCP), below pcp->high."""
    from migsim.kernel.zone import PCP

    z = _zone(8, ALLOCATED)
    z.recount()
    z.pcp_free([7, 9])
    assert z.pcp.count == 2 and z.state[[7, 9]].tolist() == [PCP, PCP]


def test_a_zone_refuses_a_state_array_of_the_wrong_size():
    """Zone(state=...) must be one uint8 per frame: a 10-frame array for a 1024-frame zone
    is refused naming the array, the count and the type."""
    with pytest.raises(ValueError, match=r"^state: expected 1024 frames of uint8$"):
        Zone(1024, state=np.zeros(10, dtype=np.uint8))


# ------------------------------------------------------------------ fragmenting


def test_a_partial_last_region_is_freed_up_to_the_allocation():
    """fragment(): 2 MiB + 40 KiB allocated (522 pages), 50% freed evenly: region 0 frees
    offsets 0, 2, .., 510 (256 pages); the partial region 1 frees only the offsets below the
    allocation's end, 0, 2, 4, 6, 8 (pfns 512..520 even); the other 5 of its pages stay
    mapped. 8 MiB node, 2 MiB kernel memory: 261 + the 1014 frames never allocated free."""
    from migsim.kernel.fragment import FragmentConfig, fragment

    z = fragment(
        FragmentConfig(node_bytes=8 << 20, alloc_bytes=(2 << 20) + 40960, reserved_bytes=2 << 20)
    )
    assert z.state[512:522].tolist() == [FREE, LRU] * 5
    assert z.nr_free == 261 + (3 * PB - 522)


def test_too_much_memory_to_allocate_is_named_in_units():
    """FragmentConfig.resolved(): an allocation larger than the node gives (8 MiB node, 2
    MiB kernel memory: at most 6M) is named as a size when it is whole pageblocks (8M) and in
    bytes otherwise (6295552 = 6M + 1 page)."""
    from migsim.kernel.fragment import FragmentConfig

    cfg = dict(node_bytes=8 << 20, reserved_bytes=2 << 20)
    for alloc, shown in ((8 << 20, "8M"), ((6 << 20) + 4096, "6295552")):
        why = (
            f"alloc_bytes: {shown} is more memory than the node can give (at most 6M of the "
            "8M node; the rest is kernel memory)"
        )
        with pytest.raises(ValueError, match=f"^{re.escape(why)}$"):
            FragmentConfig(alloc_bytes=alloc, **cfg).resolved()


def test_fragmentation_index_shortcut_agrees_with_the_exact_count():
    """compaction_suitable(9) must follow the exact fragmentation index, whether or not the
    changed pageblocks were recounted. 400 pageblocks, 390 of them with an order-8 free block
    (99840 free pages, 390 free blocks: 1000 - (1000 + 195000) // 390 = 498, not suitable);
    one page freed into a clean block: 391 blocks, 99841 pages, 1000 - 196001 // 391 = 499
    <= 500: still not suitable. Unrecounted, the bounds are (134, 646): indices -462 and
    697, both outside [0, 500]."""
    from migsim.kernel.fragment import fragmentation_index

    z = _zone(400)
    for b in range(390):
        z.state[b * PB + 256 : (b + 1) * PB] = FREE
    z.recount()
    c = Compactor(z)
    assert fragmentation_index(z.free_area_counts(), 9) == 498
    z.state[395 * PB + 7] = KERNEL
    z.free_to_buddy(np.array([395 * PB + 7]))
    assert z.free_blocks_total_range() == (134, 646)
    assert not c.compaction_suitable(9)
    assert fragmentation_index(z.free_area_counts(), 9) == 499


def test_async_compaction_stops_syncing_the_sync_cached_pfn_after_it_isolated():
    """compact_zone(): async compaction copies the async cached migrate pfn into the sync one
    after an ISOLATE_NONE pass (update_cached) only until it has isolated something. 16
    pageblocks: block 0 kernel memory, blocks 1 and 2 hold 32 LRU pages each at their start
    and are free otherwise, blocks 3-7 kernel memory, blocks 8-15 free at odd pfns (2048
    targets; 3008 free pages in 2056 blocks: suitable for order 9). Pass 1: block 0 isolates
    nothing, skip -> cached [1024, 1024]. Pass 2: block 1's 32 pages, migrated. Pass 3: the
    rest of block 1, nothing: cached async pfn 1536, the sync one stays 1024; the scanner
    left the order-9 block, so the drain frees block 1 whole and the capture takes it (pfn
    512). Pass 4: block 2's 32 pages, migrated, then COMPACT_SUCCESS."""
    z = _zone(16, KERNEL)
    for b in (1, 2):
        z.state[b * PB : b * PB + 32] = LRU
        z.state[b * PB + 32 : (b + 1) * PB] = FREE
    z.state[8 * PB + 1 :: 2] = FREE
    z.recount()
    assert (z.nr_free, z.free_blocks_total()) == (3008, 2056)
    c = Compactor(z)
    assert c.compact_zone_order(9, COMPACT_PRIO_ASYNC) == (COMPACT_SUCCESS, PB)
    assert (c.capture_in_drain, c.batches_after_capture) == (1, 1)
    assert c.vmstat["pgmigrate_success"] == 64
    assert z.compact_cached_migrate_pfn == [1536, 1024]


def test_the_twins_free_scanner_stops_where_the_watermark_check_fails():
    """The host twin (whose Compactor subclass isolates whole buddies and applies
    __isolate_free_page()'s watermark check) reports where compact_zone() ended, as
    mm_compaction_end does. 4 pageblocks: blocks 0 and 3 hold 256 anon pages each, block 0
    then an order-8 free buddy, block 3 one at pfn 1792; blocks 1 and 2 free (1536 free
    pages). min watermark 1300: the free scanner, from block 3, visits its 256 anon pages and
    the buddy at 1792, where NR_FREE_PAGES - 256 = 1280 <= 1300 fails; it stops there
    (free_pfn 1792, 257 pfns scanned), compaction_alloc() has no target for block 0's 256
    pages: -ENOMEM with the scanners apart, COMPACT_CONTENDED ("contended"), nothing migrated."""
    from host_snapshot_util import FREE as F_FREE
    from host_snapshot_util import LRU_ANON, snapshot

    from migsim.host import twin

    f = np.full(4 * PB, F_FREE, dtype=np.uint64)
    f[:256] = LRU_ANON
    f[3 * PB : 3 * PB + 256] = LRU_ANON
    nc = twin.compact_node(snapshot(f, wmark_min=1300))
    (end,) = nc.ends.values()
    assert (end["free_pfn"], end["status"]) == (1792, "contended")
    assert nc.vmstat["compact_free_scanned"] == 257
    assert nc.vmstat["pgmigrate_success"] == 0


# ------------------------------------------------------------------ a fresh sample's survivors


def test_a_skipped_odd_pageblock_is_passed_without_scanning():
    """isolate_migratepages(): a pageblock-aligned start is aligned whether the block number
    is even or odd. Blocks 1 and 3 marked skip: from pfn 512 the scanner passes block 1
    without scanning it and isolates 1024..1055 from block 2 (32 pfns scanned); from 1536
    it passes block 3 and takes 2048..2079."""
    for start, first in ((PB, 2 * PB), (3 * PB, 4 * PB)):
        z = _zone(8)
        z.recount()
        z.skip[[1, 3]] = True
        cc = CompactControl(order=9, migrate_pfn=start, free_pfn=7 * PB)
        Compactor(z).isolate_migratepages(cc)
        assert _isolated(cc) == list(range(first, first + 32))
        assert cc.total_migrate_scanned == 32


def test_a_state_saved_after_compaction_has_boolean_skip_bits(tmp_path):
    """save_state() after a compaction that set skip bits (the free scanner's on block 7 as
    in test_free_scanner_marks_a_fully_scanned_block_skip, the migration scanner's on block
    0 after isolating from it): the saved skip array is a NumPy bool array of 0 and 1 bytes
    (a byte 2 would be no valid bool), and loads back with the same bits."""
    from migsim.kernel.fragment import load_state, save_state

    z, c = _two_target_blocks_scanned()
    c.isolate_migratepages_block(CompactControl(order=9, free_pfn=7 * PB), 0, PB)
    path = tmp_path / "z.npz"
    save_state(z, path)
    with np.load(path) as npz:
        assert npz["skip"].view(np.uint8).tolist() == [1, 0, 0, 0, 0, 0, 0, 1]
    assert load_state(path)[0].skip.nonzero()[0].tolist() == [0, 7]


def test_a_fresh_zone_of_an_odd_number_of_pageblocks():
    """A new zone is all free: 3 pageblocks are one order-10 block (0-1) and one order-9
    block (2), both in buddyinfo and in the free lists, without a recount."""
    z = Zone(3 * PB)
    assert z.free_area_counts().tolist() == [0] * 9 + [1, 1]
    assert z.free_list(9).tolist() == [1024] and z.free_list(10).tolist() == [0]
    z.check()


def test_free_block_bounds_are_exact_right_after_a_recount():
    """recount() counts every pageblock: free_blocks_total_range() is then exact. 4
    pageblocks, frame 0 allocated: block 0's 511 free frames are 9 blocks (orders 0-8),
    block 1 an order-9 block, blocks 2-3 an order-10 block: (11, 11)."""
    z = Zone(4 * PB)
    z.state[0] = ALLOCATED
    z.recount()
    assert z.free_blocks_total_range() == (11, 11)


def test_an_order_10_capture_of_several_groups_takes_the_first_completed():
    """compaction_capture() of order 10 when one free call completes two order-10 blocks
    (pageblocks 0-3 freed in order): the first completed, at pfn 0, is captured; the other
    (1024) stays in the buddy lists."""
    z = _zone(4, ALLOCATED)
    z.recount()
    z.capture_control = capc = CaptureControl(order=10)
    assert z.free_to_buddy(np.arange(0, 4 * PB)) == 0
    assert capc.page == 0 and z.nr_free == 2 * PB
    assert z.free_area_counts()[10] == 1
    z.check()


def test_an_order_10_capture_takes_the_frames_already_free():
    """An order-10 block completed by freeing pageblock 1 while pageblock 0 is already free:
    the capture takes all 1024 frames, the 512 that were free leave the free count too (none
    is left)."""
    z = _zone(2, ALLOCATED)
    z.state[:PB] = FREE
    z.recount()
    z.capture_control = capc = CaptureControl(order=10)
    assert z.free_to_buddy(np.arange(PB, 2 * PB)) == 0
    assert capc.page == 0 and z.nr_free == 0
    z.check()


def test_a_work_counter_past_int32_widens_the_log():
    """The work log is int32 until a value does not fit (_widen): a call that scanned 3e9
    pfns (as a 12 TB zone could) is kept exactly, in an int64 log, beside the earlier call."""
    c = Compactor(Zone(8 * PB))
    c._log_call(1)
    c._acc[W_FREE_SCANNED] = 3_000_000_000
    c._log_call(2)
    log = c.log()
    assert log.work.dtype == np.int64
    assert log.work[:, W_FREE_SCANNED].tolist() == [0, 3_000_000_000]
    assert log.pages.tolist() == [1, 2]


def test_every_compaction_stall_ends_in_a_success_or_a_failure():
    """/proc/vmstat: each compact_stall is followed by compact_success or compact_fail. The
    zone of test_only_sync_compaction_defers (no order-9 block can form), two order-9
    allocations, each trying async then sync-light compaction: the first stalls twice (both
    COMPACT_COMPLETE; the sync-light failure defers, shift 1); the second's async attempt is
    deferred (considered 1 < 2: a stall too, DEFERRED is not SKIPPED), its sync-light one runs
    (considered 2) and fails: 4 stalls, 4 failures, no success."""
    z = _zone(32)
    z.state[1::2] = FREE
    z.state[::PB] = KERNEL
    z.recount()
    c = Compactor(z)
    assert c.alloc_pages_node(9) is None and c.alloc_pages_node(9) is None
    v = c.vmstat
    assert (v["compact_stall"], v["compact_fail"], v["compact_success"]) == (4, 4, 0)


def test_compaction_is_not_finished_inside_a_pageblock():
    """compact_finished(): a direct compactor only stops for a free suitable page at a
    pageblock boundary (always finish a pageblock): with a free order-9 block in the zone it
    returns COMPACT_CONTINUE at migrate pfn 513 and 514, COMPACT_SUCCESS at 1024."""
    from migsim.kernel.compaction import COMPACT_CONTINUE

    z = _zone(8)
    z.state[7 * PB :] = FREE
    z.recount()
    c = Compactor(z)
    for pfn, want in ((513, COMPACT_CONTINUE), (514, COMPACT_CONTINUE), (2 * PB, COMPACT_SUCCESS)):
        assert c.compact_finished(CompactControl(order=9, migrate_pfn=pfn, free_pfn=6 * PB)) == want


def test_a_cached_migrate_pfn_outside_the_zone_restarts_at_the_zone_start():
    """compact_zone(): a cached migrate pfn outside the zone (8192 = the zone end) starts the
    migration scanner at the zone start and resets both cached pfns to it;
    trace_mm_compaction_begin reports migrate pfn 0. The async run then passes block 0 (kernel
    memory) as test_async_compaction_stops_syncing_the_sync_cached_pfn_after_it_isolated's
    does."""
    z = _unmovable_targets()
    z.compact_cached_migrate_pfn = [16 * PB, 16 * PB]
    c = Compactor(z, trace=True)
    c.compact_zone_order(9, COMPACT_PRIO_ASYNC)
    assert _marks(c, M_BEGIN)[0][:2] == [0, 7680]


def test_a_page_count_that_is_no_whole_page_is_refused():
    """FragmentConfig.resolved(): alloc_bytes must be a whole number of 4K pages >= 0: 4097
    and -4096 are refused, naming the value."""
    from migsim.kernel.fragment import FragmentConfig

    for bad in (4097, -4096):
        with pytest.raises(
            ValueError, match=rf"^alloc_bytes: must be a whole number of 4K pages >= 0, got {bad}$"
        ):
            FragmentConfig(node_bytes=8 << 20, alloc_bytes=bad).resolved()


def test_a_64_gib_node_has_the_kernels_watermarks_and_pcp_high_for_64_cpus():
    """A 64 GiB node (16777216 pages; nothing allocated), fragment()'s defaults: the published
    node's 64 CPUs. min_free_kbytes = isqrt(64 GiB in KB x 16) = 32768: wmark_min 8192 pages;
    watermark_scale_factor 10: gap max(8192 // 4, 16777216 x 10 // 10000 = 16777) = 16777, so
    low 24969 and high 41746; pcp->batch 63 (zone_batchsize: 256 // 4 = 64 -> 2^6 - 1);
    pcp->high = max(24969 // 64 CPUs = 390, 4 batches = 252) = 390."""
    from migsim.kernel.fragment import FragmentConfig, fragment

    z = fragment(FragmentConfig(node_bytes=64 << 30, alloc_bytes=0))
    assert (z.wmark_min, z.wmark_low, z.wmark_high) == (8192, 24969, 41746)
    assert (z.pcp.high, z.pcp.batch) == (390, 63)


def test_the_zone_check_names_free_lists_out_of_step_with_nr_free():
    """Zone.check(): free lists that do not add up to NR_FREE_PAGES are named: a zone of 4
    free pageblocks whose cached order-0 count is one too high (as a missed update would
    leave it; the frames and the page counts agree)."""
    z = Zone(4 * PB)
    z._lo_total[0] += 1
    with pytest.raises(AssertionError, match="^free lists do not add up to NR_FREE_PAGES$"):
        z.check()


def test_make_copier_passes_the_mtcopy_placement():
    """make_copier("mt", placement=...): the MtCopier gets the placement asked for (each of
    versions.PLACEMENTS), not its default."""
    from migsim.cost.copiers import make_copier
    from migsim.versions import PLACEMENTS

    for placement in PLACEMENTS:
        assert make_copier("mt", threads=8, placement=placement).placement == placement


def test_a_compaction_rows_idle_time_is_zero_for_the_cpu_copy_only(quiet_platform):
    """CompactionResult.row()["idle_s"]: the CPU copy (baseline) never sleeps, the offloaded
    copy waits for the engine: 0.0 and > 0 on a 64 MiB node, 4 allocations."""
    from migsim.studies.compaction import run_compaction

    rows = {
        m: run_compaction(quiet_platform, mode=m, node_bytes=64 << 20, allocations=4).row()
        for m in ("baseline", "dma")
    }
    assert rows["baseline"]["idle_s"] == 0.0 and rows["dma"]["idle_s"] > 0.0


def test_a_costing_draws_its_dma_failures_from_the_generator_it_is_given(quiet_platform):
    """cost_log(rng=...): the DMA descriptor failures come from the generator passed; without
    one from np.random.default_rng(0). At fail_rate 0.01 a batch of 32 folios fails (and falls
    back whole) with probability 1 - 0.99^32 = 27%, so which batches fall back depends on the
    draws: rng=None and default_rng(0) cost alike, default_rng(7) gives another fallback count
    on the same log of 8 order-9 allocations of a 64 MiB node."""
    from migsim.kernel.fragment import FragmentConfig, fragment
    from migsim.studies.compaction import cost_log

    c = Compactor(fragment(FragmentConfig(node_bytes=64 << 20, free_ratio=0.3)))
    for _ in range(8):
        c.alloc_pages_node(9)

    def fallbacks(rng):
        kw = dict(dma=True, busy=False, channels=2, fail_rate=0.01)
        return cost_log(c.log(), quiet_platform, rng=rng, **kw).dma_fallbacks

    assert fallbacks(None) == fallbacks(np.random.default_rng(0)) > 0
    assert fallbacks(np.random.default_rng(7)) != fallbacks(None)
