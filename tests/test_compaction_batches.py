"""What one logged migrate_pages() call covers, checked against the kernel's batch bound.

mm/compaction.c, isolate_migratepages_block(): isolation stops once cc->nr_migratepages
reaches COMPACT_CLUSTER_MAX unless cc->finish_pageblock is set; compact_zone() sets it when
the iteration starts in the pageblock of last_migrated_pfn (pageblock_start_pfn of the last
isolating pass), and then the rest of that pageblock is isolated in one pass. compact_zone()
calls migrate_pages() once per isolating isolate_migratepages(). So a call holds at most
COMPACT_CLUSTER_MAX pages, or it is the finish_pageblock pass of the pageblock the previous
isolating pass stopped in, and that pass runs to the pageblock's end. The bound is computed
here from the traced scanner events (trace_mm_compaction_isolate_migratepages), not from the
compactor's own flag."""

from __future__ import annotations

import numpy as np
import pytest

from migsim.kernel import compaction
from migsim.kernel.compaction import (
    COMPACT_CONTINUE,
    M_BEGIN,
    M_FINISHED,
    M_ISO_MIGRATE,
    M_MIGRATE_FAIL,
    MARK_ARGS,
    MARK_CALL,
    Compactor,
)
from migsim.kernel.fragment import FragmentConfig, fragment
from migsim.units import COMPACT_CLUSTER_MAX, PAGEBLOCK_NR_PAGES

MB = 1 << 20


def traced_run(pattern: str, cluster_max: int, allocations: int, mb: int = 256) -> Compactor:
    zone = fragment(
        FragmentConfig(node_bytes=mb * MB, reserved_bytes=2 * MB, pattern=pattern, seed=3)
    )
    c = Compactor(zone, cluster_max=cluster_max, trace=True)
    for _ in range(allocations):
        c.alloc_pages_node(9)
    return c


@pytest.mark.parametrize(
    ("pattern", "cluster_max", "mb"),
    # 64 MiB: the scanners meet, calls fail for lack of targets, compact_zone() restarts
    [("even", 32, 256), ("random", 32, 256), ("even", 8, 256), ("even", 32, 64)],
)
def test_each_call_is_one_batch_within_the_kernels_bound(pattern, cluster_max, mb):
    c = traced_run(pattern, cluster_max, 12, mb)
    log = c.log()
    kind, call, args = log.marks[:, 0], log.marks[:, MARK_CALL], log.marks[:, MARK_ARGS:]
    failed = np.zeros(len(log.pages), np.int64)
    fails = kind == M_MIGRATE_FAIL
    np.add.at(failed, call[fails], args[fails, 0])
    taken_by_call = np.zeros(len(log.pages), np.int64)
    last_block = 0  # pageblock_start_pfn(last_migrated_pfn), in pageblocks
    finish = False
    counts = {True: 0, False: 0}
    for j in range(len(kind)):
        if kind[j] == M_BEGIN:
            last_block = 0  # compact_zone(): last_migrated_pfn = 0
        elif kind[j] == M_FINISHED and args[j, 1] == COMPACT_CONTINUE:
            # iteration_start_pfn = cc->migrate_pfn (the mark's third argument)
            finish = int(args[j, 2]) // PAGEBLOCK_NR_PAGES == last_block
        elif kind[j] == M_ISO_MIGRATE and args[j, 3] > 0:
            lo, hi, nr = int(args[j, 0]), int(args[j, 1]), int(args[j, 3])
            block_end = (lo // PAGEBLOCK_NR_PAGES + 1) * PAGEBLOCK_NR_PAGES
            if finish:  # the rest of the pageblock, in one pass
                assert hi == block_end and nr <= block_end - lo, j
            else:  # COMPACT_CLUSTER_MAX reached stops isolation
                assert nr <= cluster_max, j
            counts[finish] += 1
            taken_by_call[call[j]] += nr
            last_block = (hi - 1) // PAGEBLOCK_NR_PAGES
    # one isolating pass per migrate_pages() call; it migrates what it took, or marks the rest
    assert counts[True] + counts[False] == len(log.pages) > 12
    assert np.array_equal(taken_by_call, log.pages + failed)
    assert counts[True] > 0 and counts[False] > 0  # both bounds exercised
    assert int(log.pages.max()) <= PAGEBLOCK_NR_PAGES
    if mb == 64:
        assert failed.sum() > 0


def test_compiled_loop_logs_the_same_calls():
    """The compiled loop (no trace marks) logs the same call sizes as the traced Python one."""
    if compaction._compact is None:
        pytest.skip("migsim.kernel._compact is not built")
    traced = traced_run("random", COMPACT_CLUSTER_MAX, 12).log().pages
    zone = fragment(
        FragmentConfig(node_bytes=256 * MB, reserved_bytes=2 * MB, pattern="random", seed=3)
    )
    c = Compactor(zone, engine="c")
    for _ in range(12):
        c.alloc_pages_node(9)
    assert c.engine == "c"
    assert np.array_equal(c.log().pages, traced)
