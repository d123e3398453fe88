"""The zone: buddy free lists derived from the frames, splitting and merging, the per-CPU
lists (high/batch, FIFO bulk free, drain), compaction_capture, invariant checks."""

from __future__ import annotations

import numpy as np
import pytest

from migsim.kernel.zone import (
    ALLOCATED,
    FREE,
    LRU,
    PCP,
    CaptureControl,
    PerCpuPages,
    Zone,
    buddy_block_counts,
    kernel_batchsize,
    kernel_pcp_high,
)
from migsim.limits import LimitError


def brute_counts(free: np.ndarray) -> np.ndarray:
    """Maximal aligned free blocks of order 0..8 and the whole-block flag, by definition."""
    out = np.zeros(10, dtype=np.int64)
    for order in range(10):
        size = 1 << order
        groups = free.reshape(-1, size).all(1)
        if order < 9:
            parents = free.reshape(-1, 2 * size).all(1).repeat(2)
            out[order] = int((groups & ~parents).sum())
        else:
            out[order] = int(groups[0])
    return out


def test_buddy_counts_match_the_definition():
    rng = np.random.default_rng(3)
    masks = [rng.random(512) < p for p in (0.1, 0.5, 0.9, 0.99)]
    masks += [np.ones(512, bool), np.zeros(512, bool), np.arange(512) % 2 == 0]
    run = np.zeros(512, bool)
    run[64:256] = True  # an order-6 and an order-7 block
    masks.append(run)
    got = buddy_block_counts(np.array(masks))
    for m, g in zip(masks, got, strict=True):
        assert np.array_equal(g, brute_counts(m))
    assert got[-1][6] == 1 and got[-1][7] == 1


def test_chunk_tables_match_the_definition_for_every_mask():
    """The 16-frame lookup tables (built with bit operations) against the definition, for
    all 65536 masks: maximal free aligned groups of 1, 2, 4 and 8 frames, and all 16 free."""
    from migsim.kernel.zone import _COUNT16, _FULL16

    x = np.arange(1 << 16, dtype=np.uint32)
    free = ((x[:, None] >> np.arange(16, dtype=np.uint32)) & 1).astype(bool)
    for order in range(4):
        size = 1 << order
        groups = free.reshape(-1, 16 // size, size).all(2)
        parents = free.reshape(-1, 8 // size, 2 * size).all(2).repeat(2, axis=1)
        assert np.array_equal(_COUNT16[order], (groups & ~parents).sum(1)), order
    assert np.array_equal(_FULL16, free.all(1))


def test_fresh_zone_is_order10_blocks():
    z = Zone(8 * 512)
    counts = z.free_area_counts()
    assert counts[10] == 4 and counts[:10].sum() == 0
    assert z.nr_free == 8 * 512
    z.check()


def test_allocation_splits_and_free_merges():
    z = Zone(2 * 512, pcp_high=0, pcp_batch=1)  # pcp disabled: frees reach the buddy at once
    pfn = z.alloc_block(0)
    assert pfn == 0 and z.state[0] == ALLOCATED
    # 1023 free pages: one block of each order 0..9 (expand() of an order-10 block)
    assert list(z.free_area_counts()) == [1] * 10 + [0]
    assert list(z.free_list(3)) == [8]
    z.check()
    z.free_block(pfn, 0)
    assert list(z.free_area_counts()) == [0] * 10 + [1]
    z.check()


def test_higher_order_allocation_takes_smallest_fitting_block():
    z = Zone(4 * 512)
    a = z.alloc_block(9)  # splits an order-10 block
    b = z.alloc_block(9)  # takes the remaining order-9 half, not the other order-10 block
    assert {a, b} == {0, 512}
    assert z.free_area_counts()[10] == 1
    z.check()


def test_pcp_keeps_batch_and_frees_oldest_first():
    pcp = PerCpuPages(high=10, batch=3)
    bulks = pcp.add(np.arange(12, dtype=np.int64), block=0)
    freed = np.concatenate([p for bulk in bulks for p, _ in bulk])
    # nr_pcp_free: the run of consecutive frees clamped to [batch, high - batch]
    assert list(freed) == list(range(7))  # count hit 10 -> 7 oldest freed, 3 stay
    assert pcp.count == 5 and list(pcp.pfns()) == [7, 8, 9, 10, 11]
    drained = np.concatenate([p for p, _ in pcp.drain()])
    assert list(drained) == [7, 8, 9, 10, 11] and pcp.count == 0


def test_pcp_disabled_frees_each_page_at_once():
    pcp = PerCpuPages(high=0, batch=1)
    bulks = pcp.add(np.array([5, 6, 7], dtype=np.int64), block=0)
    assert [list(np.concatenate([p for p, _ in b])) for b in bulks] == [[5], [6], [7]]
    assert pcp.count == 0


def _half_used_block_zone() -> Zone:
    z = Zone(4 * 512, pcp_high=1000, pcp_batch=10)
    z.state[:] = LRU
    z.state[0:512:2] = FREE  # block 0: every other page free
    z.recount()
    return z


def test_capture_takes_the_block_completed_by_a_drain():
    z = _half_used_block_zone()
    used = np.arange(1, 512, 2, dtype=np.int64)
    z.pcp_free(used)
    assert z.nr_free_pb[0] == 256  # still on the pcp list: no merge yet
    capc = CaptureControl(order=9)
    z.capture_control = capc
    z.drain_pages()
    z.capture_control = None
    assert capc.page == 0
    assert np.all(z.state[:512] == ALLOCATED)
    assert z.nr_free_pb[0] == 0 and z.free_area_counts()[9] == 0
    z.check()


def test_without_capture_the_block_merges_into_the_free_lists():
    z = _half_used_block_zone()
    z.pcp_free(np.arange(1, 512, 2, dtype=np.int64))
    z.drain_pages()
    assert z.nr_full_blocks == 1 and z.free_area_counts()[9] == 1
    assert z.alloc_block(9) == 0
    z.check()


def test_capture_of_a_small_order_is_the_first_group_completed():
    z = _half_used_block_zone()
    capc = CaptureControl(order=1)
    z.capture_control = capc
    z.free_to_buddy(np.array([7, 3, 5], dtype=np.int64))  # 7 completes [6, 8) first
    assert capc.page == 6
    assert z.state[3] == FREE and z.state[5] == FREE and z.state[6] == ALLOCATED
    z.capture_control = None
    z.check()


def test_check_catches_corruption():
    z = _half_used_block_zone()
    z.check()
    z.nr_free_pb[1] += 1
    with pytest.raises(AssertionError, match="free counts"):
        z.check()
    z = _half_used_block_zone()
    z.move_content(np.array([1]), np.array([3]))  # page 3 now claims page 1's content
    with pytest.raises(AssertionError, match="held by two frames"):
        z.check()
    z = _half_used_block_zone()
    z.state[9] = PCP  # a PCP frame that is not on the pcp list
    with pytest.raises(AssertionError, match="pcp"):
        z.check()


def test_content_moves_with_the_page():
    z = _half_used_block_zone()
    before = int(z.content_tag(np.array([1]))[0])
    z.move_content(np.array([1]), np.array([2]))
    z.state[2], z.state[1] = LRU, FREE
    z.recount()
    assert int(z.content_tag(np.array([2]))[0]) == before
    assert int(z.content_tag(np.array([1]))[0]) == 0
    z.check()


def test_double_free_is_refused():
    z = Zone(2 * 512)
    with pytest.raises(ValueError, match="double free"):
        z.free_block(0, 0)


def test_kernel_pcp_sizes_of_the_published_zone():
    nr = (250 << 30) // 4096
    assert kernel_batchsize(nr) == 63  # zone_batchsize(): 1 MB / 4 worth, 2^n - 1
    high = kernel_pcp_high(nr, 64)
    assert 1000 < high < 1500  # the low watermark split among 64 CPUs


@pytest.mark.parametrize("nr_pages", [0, -512, 1000, True, "512", float("nan"), 1 << 35])
def test_zone_size_must_be_whole_pageblocks(nr_pages):
    # Zone(0) is no zone; the range is migsim.limits.ZONE_PAGES (one pageblock up to a 64T node)
    with pytest.raises(LimitError) as err:
        Zone(nr_pages)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("nr_pages: must be a whole number in 512..")
    assert msg.endswith(f"got {nr_pages!r}")
    assert Zone(512).nr_pages == 512  # the smallest zone: one pageblock
