"""The zone at full scale (250 GB node, 65.5 M frames, 128000 pageblocks: more than one chunk of
every chunked recount and scan): its invariants hold on the fragmented node and after the
published run of 16384 order-9 allocations. Small zones cannot show a bug that only appears
once a loop takes a second chunk (the cached order-0..8 counts of half the pageblocks were
once never recounted above 16 GiB)."""

from __future__ import annotations

import numpy as np
import pytest

from migsim.kernel.zone import FREE, RECOUNT_CHUNK_BLOCKS, buddy_block_counts
from migsim.units import PAGEBLOCK_NR_PAGES

pytestmark = pytest.mark.slow

NODE_PAGES = 250 << 18  # 250 GiB of 4 KiB frames
# default_reserved_bytes(): 0.8% of the node, 2 GiB of kernel memory at its end
RESERVED_PAGES = 1024 * PAGEBLOCK_NR_PAGES


def test_the_node_spans_several_recount_chunks(full_scale):
    assert full_scale.zone.nr_blocks > 2 * RECOUNT_CHUNK_BLOCKS


def test_fragmented_node_passes_check(full_scale):
    assert full_scale.fragmented_check is None, full_scale.fragmented_check


def test_fragmented_buddyinfo_is_every_other_frame_alone(full_scale):
    """Half of each 2 MB region freed at even offsets: every free frame is an order-0 block
    whose buddy is mapped, so buddyinfo is (free frames, 0, ..., 0)."""
    free = (NODE_PAGES - RESERVED_PAGES) // 2
    assert free == 32_505_856
    assert full_scale.fragmented["free_pages"] == free
    assert full_scale.fragmented["buddyinfo"] == [free] + [0] * 10


def test_zone_after_the_full_run_passes_check(full_scale):
    assert full_scale.sim.alloc_success == 16384
    full_scale.zone.check()


def test_buddyinfo_after_the_full_run_is_the_exact_recount(full_scale):
    """The cached free-list counts equal a recount of every pageblock from its frames, and
    they tile exactly the free frames (order 9 and 10 from the whole-free pageblocks)."""
    z = full_scale.zone
    counts = z.free_area_counts()
    view = z.state.reshape(z.nr_blocks, PAGEBLOCK_NR_PAGES)
    exact = np.zeros(11, dtype=np.int64)
    for lo in range(0, z.nr_blocks, 20_000):  # an independent chunking of the same recount
        exact[:10] += buddy_block_counts(view[lo : lo + 20_000] == FREE).sum(0)
    full = (view == FREE).all(1)
    pairs = int((full[0::2] & full[1::2]).sum())
    exact[9] -= 2 * pairs
    exact[10] = pairs
    assert counts.tolist() == exact.tolist()
    assert int((counts * (1 << np.arange(11))).sum()) == int((z.state == FREE).sum())
