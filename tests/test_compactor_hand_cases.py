"""Hand cases of the Compactor's decisions (kernel/compaction.py, mm/compaction.c v6.3+):
compact_finished()'s outcomes, the source and target suitability tests (each against its
vectorised twin), compaction_alloc()'s hand-out and lowest target, the order migrate_pages()
walks its list in, compact_node()'s skip hints, the slow path's failure count and the trace
points' arguments. Expectations are derived by hand in the docstrings, or compared with a
second code path named there."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

# every test on both engines of the allocation loop (tests/engines.py)
from engines import loop_engine, pytest_generate_tests  # noqa: E402, F401

from migsim.kernel.compaction import (
    COMPACT_COMPLETE,
    COMPACT_CONTENDED,
    COMPACT_CONTINUE,
    COMPACT_PARTIAL_SKIPPED,
    COMPACT_SUCCESS,
    M_BEGIN,
    M_END,
    MARK_ARGS,
    MIGRATE_ASYNC,
    MIGRATE_SYNC,
    MIGRATE_SYNC_LIGHT,
    CompactControl,
    Compactor,
)
from migsim.kernel.fragment import FragmentConfig, fragment
from migsim.kernel.zone import (
    FREE,
    ISOLATED_FREE,
    ISOLATED_LRU,
    LRU,
    MIGRATE_MOVABLE,
    MIGRATE_UNMOVABLE,
    Zone,
)

PB = 512


def _zone(nr_blocks: int, fill: int = LRU) -> Zone:
    z = Zone(nr_blocks * PB)
    z.state[:] = fill
    z.recount()
    return z


# ------------------------------------------------------------------ compact_finished


@pytest.mark.parametrize(
    ("order", "migrate_pfn", "free_pfn", "free_order0", "contended", "direct", "whole", "want"),
    [
        # scanners met (free_pfn's block <= migrate_pfn's): complete for a whole-zone run,
        # partial_skipped otherwise
        (9, 2 * PB, 2 * PB + 5, True, False, True, True, COMPACT_COMPLETE),
        (9, 2 * PB + 7, 2 * PB, True, False, True, False, COMPACT_PARTIAL_SKIPPED),
        (-1, 3 * PB, 2 * PB, True, False, False, True, COMPACT_COMPLETE),
        # order -1 (compact_memory): never stops before the scanners meet
        (-1, 0, 3 * PB, True, False, False, True, COMPACT_CONTINUE),
        # a direct compactor always finishes its pageblock first
        (0, 5, 3 * PB, True, True, True, False, COMPACT_CONTINUE),
        # order 0 at a pageblock boundary with a free page: success (order 0 is a direct
        # compactor's order like any other; only -1 is is_via_compact_memory)
        (0, PB, 3 * PB, True, False, True, False, COMPACT_SUCCESS),
        (0, 0, 3 * PB, True, True, True, False, COMPACT_SUCCESS),  # success before contended
        # order 1 with only order-0 pages free: contended if contended, else continue
        (1, PB, 3 * PB, True, True, True, False, COMPACT_CONTENDED),
        (1, PB, 3 * PB, True, False, True, False, COMPACT_CONTINUE),
        (0, PB, 3 * PB, False, False, True, False, COMPACT_CONTINUE),  # nothing free at all
    ],
)
def test_compact_finished_outcomes(
    order, migrate_pfn, free_pfn, free_order0, contended, direct, whole, want
):
    """__compact_finished() on 4 pageblocks of LRU pages with pfn 3*512+1 free (an order-0
    block: its buddy 3*512 holds a page) or nothing free."""
    z = _zone(4)
    if free_order0:
        z.state[3 * PB + 1] = FREE
    z.recount()
    c = Compactor(z)
    cc = CompactControl(
        order=order, migrate_pfn=migrate_pfn, free_pfn=free_pfn, contended=contended,
        direct_compaction=direct, whole_zone=whole,
    )  # fmt: skip
    z.compact_blockskip_flush = False
    assert c.compact_finished(cc) == want
    met = (free_pfn >> 9) <= (migrate_pfn >> 9)
    # a direct compactor whose scanners met asks kswapd to flush the skip bits
    assert z.compact_blockskip_flush == (met and direct)
    if met:  # reset_cached_positions(): both scanners back to the zone's ends
        assert z.compact_cached_migrate_pfn == [0, 0]
        assert z.compact_cached_free_pfn == 3 * PB


# ------------------------------------------------------------------ suitability


@pytest.mark.parametrize(
    ("mode", "direct"), list(itertools.product((MIGRATE_ASYNC, MIGRATE_SYNC_LIGHT, MIGRATE_SYNC), (True, False)))
)  # fmt: skip
def test_suitable_migration_source(mode, direct):
    """suitable_migration_source(): only async direct compaction is picky, taking just the
    blocks of the requested migratetype; every other mode and kcompactd/compact_memory take
    any block. Blocks 0 and 2 movable, 1 and 3 unmovable; the vectorised _suitable_source
    and the per-block _suitable_source_block agree on each."""
    z = _zone(4)
    z.migratetype[[1, 3]] = MIGRATE_UNMOVABLE
    c = Compactor(z)
    cc = CompactControl(order=9, mode=mode, direct_compaction=direct)
    picky = mode == MIGRATE_ASYNC and direct
    want = [True, not picky, True, not picky]
    assert c._suitable_source(cc, np.arange(4)).tolist() == want
    assert [c._suitable_source_block(cc, b) for b in range(4)] == want
    cc.migratetype = MIGRATE_UNMOVABLE  # a picky scan for unmovable blocks takes 1 and 3
    want = [not picky, True, not picky, True]
    assert c._suitable_source(cc, np.arange(4)).tolist() == want


@pytest.mark.parametrize(
    ("ignore_skip", "ignore_suitable"), list(itertools.product((False, True), repeat=2))
)
def test_free_scanner_target_suitability(ignore_skip, ignore_suitable):
    """suitable_migration_target() + isolation_suitable(): never a wholly free pageblock;
    only movable blocks unless ignore_block_suitable; not a skip-marked block unless
    ignore_skip_hint. Block 0 wholly free, 1 unmovable, 2 marked skip, 3 and 4 usable
    targets (some free pages), 5 unmovable and skip. _target_ok (one block) and _target_mask
    (a range) must agree."""
    z = _zone(6)
    z.state[:PB] = FREE
    for b in (1, 2, 3, 4, 5):
        z.state[b * PB : b * PB + 10] = FREE
    z.migratetype[[1, 5]] = MIGRATE_UNMOVABLE
    z.skip[[2, 5]] = True
    z.recount()
    c = Compactor(z)
    cc = CompactControl(
        order=9, ignore_skip_hint=ignore_skip, ignore_block_suitable=ignore_suitable
    )
    want = [
        False,
        ignore_suitable,
        ignore_skip,
        True,
        True,
        ignore_skip and ignore_suitable,
    ]
    assert [bool(c._target_ok(cc, b)) for b in range(6)] == want
    assert c._target_mask(cc, 0, 5).tolist() == want


# ------------------------------------------------------------------ compaction_alloc


def _alloc_zone() -> tuple[Zone, Compactor]:
    """4 pageblocks of LRU pages; pfns 0, 1 and 1536..1538 isolated free targets; block 2 has
    free pages the free scanner could take (pfns 1024..1099)."""
    z = _zone(4)
    z.state[1024:1100] = FREE
    z.state[[0, 1, 1536, 1537, 1538]] = ISOLATED_FREE
    z.recount()
    return z, Compactor(z)


@pytest.mark.parametrize(
    ("chunks", "n", "want", "lowest", "left"),
    [
        # the head of the list first; the lowest target whatever its chunk's place
        ([[1536, 1537, 1538], [0, 1]], 4, [1536, 1537, 1538, 0], 0, [[1]]),
        ([[0, 1], [1536, 1537, 1538]], 4, [0, 1, 1536, 1537], 0, [[1538]]),
        ([[0, 1], [1536, 1537, 1538]], 2, [0, 1], 0, [[1536, 1537, 1538]]),
        ([[1536, 1537, 1538], [0, 1]], 2, [1536, 1537], 1536, [[1538], [0, 1]]),
        ([[1536, 1537, 1538], [0, 1]], 5, [1536, 1537, 1538, 0, 1], 0, []),
    ],
)
def test_compaction_alloc_hands_out_the_head_of_the_list(chunks, n, want, lowest, left):
    """compaction_alloc(): each target comes off the head of cc->freepages (FIFO chunks); the
    free scanner runs only when the list is empty (here it never is before the last page),
    so block 2's free pages stay where they are and nothing is scanned."""
    z, c = _alloc_zone()
    cc = CompactControl(order=9, migrate_pfn=0, free_pfn=2 * PB, nr_migratepages=n)
    cc.freepages = [np.array(ch, dtype=np.int64) for ch in chunks]
    cc.nr_freepages = sum(len(ch) for ch in chunks)
    dst, lo = c.compaction_alloc(cc, n)
    assert dst.tolist() == want and lo == lowest
    assert [ch.tolist() for ch in cc.freepages] == left
    assert cc.nr_freepages == sum(len(ch) for ch in left)
    assert cc.total_free_scanned == 0 and (z.state[1024:1100] == FREE).all()


def test_compaction_alloc_refills_from_the_free_scanner_when_empty():
    """An empty list: the free scanner isolates from block 2 (the pageblock below free_pfn's
    block 3 holding free pages is block 2 ... scanned from its start): the n lowest free pfns
    1024.. in ascending order, the lowest 1024; no request, no scan."""
    z, c = _alloc_zone()
    cc = CompactControl(order=9, migrate_pfn=0, free_pfn=2 * PB, nr_migratepages=3)
    dst, lo = c.compaction_alloc(cc, 0)
    assert dst.tolist() == [] and lo == -1 and cc.total_free_scanned == 0
    dst, lo = c.compaction_alloc(cc, 3)
    assert dst.tolist() == [1024, 1025, 1026] and lo == 1024
    assert cc.nr_freepages == 0 and (z.state[[1024, 1025, 1026]] == ISOLATED_FREE).all()


# ------------------------------------------------------------------ migrate_pages


def test_migrate_pages_walks_the_list_from_its_head():
    """isolate_migratepages_block() adds each folio at the head of cc->migratepages
    (list_add), migrate_pages() walks it from the head and compaction_alloc() hands out the
    ascending targets from the head of cc->freepages: so the highest source gets the lowest
    target. Sources pfns 0..3 (tags 1..4), targets 1536..1539: 1536 gets pfn 3's content."""
    z = _zone(4, FREE)
    z.state[0:4] = LRU
    z.recount()
    c = Compactor(z)
    cc = CompactControl(order=-1, mode=MIGRATE_SYNC, migrate_pfn=0, free_pfn=3 * PB)
    cc.migratepages = [np.arange(4, dtype=np.int64)]
    cc.nr_migratepages = 4
    z.state[0:4] = ISOLATED_LRU
    cc.freepages = [np.arange(1536, 1540, dtype=np.int64)]
    cc.nr_freepages = 4
    z.state[1536:1540] = ISOLATED_FREE
    z.recount()
    assert c.migrate_pages(cc) == 0
    assert z.content_tag(np.arange(1536, 1540)).tolist() == [4, 3, 2, 1]
    assert (z.state[1536:1540] == LRU).all()
    assert c.vmstat["pgmigrate_success"] == 4 and c.log().pages.tolist() == [4]


# ------------------------------------------------------------------ compact_node, slow path


def test_compact_memory_ignores_the_skip_hints():
    """compact_node() sets ignore_skip_hint: echo 1 > compact_memory migrates the same 15 x 256
    pages of a 64 MiB node fragmented 50% (evenly) whether or not every pageblock is marked
    skip (test_engine_hand_cases derives the 3840)."""
    moved = []
    for skip in (False, True):
        z = fragment(FragmentConfig(node_bytes=64 << 20))
        z.skip[:] = skip
        c = Compactor(z)
        assert c.compact_memory() == COMPACT_COMPLETE
        moved.append(c.vmstat["pgmigrate_success"])
    assert moved == [3840, 3840]


def test_every_failed_allocation_is_counted():
    """A zone with no free page: compaction is not suitable (no free memory above the
    watermark), so each of three order-9 allocations fails and is counted once."""
    c = Compactor(_zone(8))
    for _ in range(3):
        assert c.alloc_pages_node(9) is None
    assert (c.alloc_fail, c.alloc_success) == (3, 0)


def test_compaction_begin_and_end_trace_points():
    """trace_mm_compaction_begin prints migrate_pfn, free_pfn, the migrate mode and (here) the
    order; trace_mm_compaction_end the status. compact_memory on a 64 MiB node (32
    pageblocks): begins at pfn 0 with the free scanner at the last pageblock (31 x 512 =
    15872), sync, order -1; ends complete."""
    z = fragment(FragmentConfig(node_bytes=64 << 20))
    c = Compactor(z, trace=True)
    c.compact_memory()
    marks = c.log().marks
    begin = marks[marks[:, 0] == M_BEGIN][:, MARK_ARGS:].tolist()
    end = marks[marks[:, 0] == M_END][:, MARK_ARGS:].tolist()
    assert begin == [[0, 15872, MIGRATE_SYNC, -1]]
    assert len(end) == 1 and end[0][2:] == [MIGRATE_SYNC, COMPACT_COMPLETE]
    assert z.migratetype[0] == MIGRATE_MOVABLE


def test_compact_zone_releases_its_unused_targets():
    """compact_zone()'s out: release_free_list() frees the targets isolated but not used and
    sets cc->nr_freepages = 0: afterwards the list is empty, its count 0, and no frame of
    the zone is still an isolated free page (compact_memory on 64 MiB fragmented 30%)."""
    z = fragment(FragmentConfig(node_bytes=64 << 20, free_ratio=0.3))
    c = Compactor(z)
    cc = CompactControl(
        order=-1, mode=MIGRATE_SYNC, direct_compaction=False, whole_zone=True,
        ignore_skip_hint=True,
    )  # fmt: skip
    assert c.compact_zone(cc, None) == COMPACT_COMPLETE
    assert (cc.nr_freepages, cc.freepages) == (0, [])
    assert not (z.state == ISOLATED_FREE).any()
    z.drain_pages()
    z.check()


def test_the_log_widens_to_int64_and_keeps_negative_values():
    """The log arrays are int32 until a value needs int64 (Compactor._widen): a migrate call
    of 2**40 pages (beyond any zone, but the log must not wrap) and a mark argument of 2**40
    after trace marks holding -1 (compaction_begin's order of compact_memory) come back
    exactly, the earlier values with them."""
    z = fragment(FragmentConfig(node_bytes=16 << 20))
    c = Compactor(z, trace=True)
    c.compact_memory()
    before = c.log()
    pages0, marks0 = before.pages.tolist(), before.marks.tolist()
    assert before.marks.dtype == np.int32 and (before.marks == -1).any()
    c._log_call(2**40)
    c._mark(M_END, 2**40, -1, 0, 0)
    log = c.log()
    assert log.pages.dtype == np.int64 and log.marks.dtype == np.int64
    assert log.pages.tolist() == [*pages0, 2**40]
    assert log.marks.tolist()[: len(marks0)] == marks0
    assert log.marks[-1, 0] == M_END and log.marks[-1, MARK_ARGS:].tolist() == [2**40, -1, 0, 0]
