"""isolate_migratepages_block() against a second code path: a pfn-by-pfn scan written from
mm/compaction.c (v6.3+) isolate_migratepages_block(), and the Compactor's cached rest of a
block (Zone.mscan_*) against a scan with the cache dropped. Random two-pageblock zones of
free, LRU and unmovable frames (hypothesis, counts from the profile)."""

from __future__ import annotations

import numpy as np

# every test on both engines of the allocation loop (tests/engines.py)
from engines import loop_engine, pytest_generate_tests  # noqa: E402, F401
from hypothesis import given
from hypothesis import strategies as st

from migsim.kernel.compaction import (
    MIGRATE_ASYNC,
    MIGRATE_SYNC,
    MIGRATE_SYNC_LIGHT,
    W_ISOLATED,
    W_MIGRATE_SCANNED,
    CompactControl,
    Compactor,
)
from migsim.kernel.zone import FREE, ISOLATED_LRU, KERNEL, LRU, Zone

PB = 512


def reference_block(state, skip, cc, low_pfn, end_pfn, cluster_max):
    """The kernel's loop, one pfn at a time: (isolated pfns, where the scan stopped, skip bit
    set?). A free frame is stepped over, an LRU frame isolated, any other frame fails: in
    async direct compaction (skip_on_failure) the pages isolated in its cc->order aligned block
    are put back and the scan jumps to that block's end, and a completed order block holding
    isolated pages ends the scan; COMPACT_CLUSTER_MAX (or, in a finish_pageblock pass, the
    block's end) ends it too. The pageblock is marked skip when the scan started at its first
    pfn, hints are not ignored, and it isolated something or reached the end with nothing."""
    b = low_pfn // PB
    valid = low_pfn % PB == 0
    if valid and not cc.ignore_skip_hint and skip[b]:
        return [], end_pfn, True
    need = end_pfn - low_pfn if cc.finish_pageblock else max(cluster_max - cc.nr_migratepages, 1)
    skip_on_failure = cc.direct_compaction and cc.mode == MIGRATE_ASYNC
    size = 1 << min(max(cc.order, 0), 9)
    isolated: list[int] = []
    next_skip = (low_pfn // size + 1) * size if skip_on_failure else None
    pfn = low_pfn
    while pfn < end_pfn:
        if skip_on_failure and pfn >= next_skip:
            if isolated:
                break
            next_skip = (pfn // size + 1) * size
        s = state[pfn]
        if s == FREE:
            pfn += 1
            continue
        if s == LRU:
            isolated.append(pfn)
            pfn += 1
            if len(isolated) >= need:
                break
            continue
        if not skip_on_failure:  # isolate_fail: continue
            pfn += 1
            continue
        isolated = []  # putback_movable_pages of the order block
        pfn = next_skip
    low = min(pfn, end_pfn)
    skipped = (
        valid and not cc.ignore_skip_hint and (bool(isolated) or low == end_pfn)
    )  # test_and_set_skip / set_pageblock_skip at the block's end
    return isolated, low, skipped


def _zone(seed: int, p_free: float, p_bad: float) -> Zone:
    """Frames drawn free (p_free), unmovable (p_bad) or LRU; p_free = -1: every other frame
    free (the published pattern), the rest LRU but for p_bad of them."""
    rng = np.random.default_rng(seed)
    u = rng.random(2 * PB)
    if p_free < 0:
        state = np.where(np.arange(2 * PB) % 2 == 0, FREE, np.where(u < p_bad, KERNEL, LRU))
    else:
        state = np.where(u < p_free, FREE, np.where(u < p_free + p_bad, KERNEL, LRU))
    z = Zone(2 * PB)
    z.state[:] = state
    z.recount()
    return z


controls = st.fixed_dictionaries(
    {
        "order": st.integers(-1, 9),
        "mode": st.sampled_from([MIGRATE_ASYNC, MIGRATE_SYNC_LIGHT, MIGRATE_SYNC]),
        "direct_compaction": st.booleans(),
        "ignore_skip_hint": st.booleans(),
        "finish_pageblock": st.booleans(),
        "nr_migratepages": st.integers(0, 40),
    }
)


@given(
    seed=st.integers(0, 2**16),
    p_free=st.sampled_from([-1.0, 0.0, 0.3, 0.9, 0.99, 1.0]),
    p_bad=st.sampled_from([0.0, 0.0, 0.01, 0.2]),
    kw=controls,
    start=st.integers(0, PB - 1),
    aligned=st.booleans(),
    skip=st.booleans(),
    cluster_max=st.sampled_from([1, 7, 32, 512]),
)
def test_one_scan_matches_the_kernel_loop(
    seed, p_free, p_bad, kw, start, aligned, skip, cluster_max
):
    """One scan of pageblock 1 from its start or from a pfn inside it, no cache: the same
    pages isolated, the same stopping pfn (cc->migrate_pfn), pfns scanned and skip bit as the
    reference loop."""
    z = _zone(seed, p_free, p_bad)
    z.skip[1] = skip
    low = PB if aligned else PB + start
    c = Compactor(z, cluster_max=cluster_max)
    cc = CompactControl(**kw)
    state = z.state.copy()
    want, stop, skipped = reference_block(state, z.skip.copy(), cc, low, 2 * PB, cluster_max)
    before = cc.nr_migratepages
    c.isolate_migratepages_block(cc, low, 2 * PB)
    got = np.concatenate(cc.migratepages).tolist() if cc.migratepages else []
    assert got == want
    assert c.log().tail[W_ISOLATED] == len(want)
    assert cc.nr_migratepages - before == len(want)
    assert cc.migrate_pfn == stop and cc.total_migrate_scanned == stop - low
    assert bool(z.skip[1]) == (skip or skipped)
    assert (z.state[want] == ISOLATED_LRU).all() if want else True
    assert c.vmstat["compact_isolated"] == len(want)


@given(
    seed=st.integers(0, 2**16),
    p_free=st.sampled_from([-1.0, 0.0, 0.3, 0.9]),
    p_bad=st.sampled_from([0.0, 0.0, 0.01]),
    kws=st.lists(controls, min_size=2, max_size=6),
    cluster_max=st.sampled_from([1, 7, 32]),
)
def test_batches_from_the_cached_rest_match_a_fresh_scan(seed, p_free, p_bad, kws, cluster_max):
    """Consecutive batches from one pageblock (each starting where the last stopped), once
    with the Compactor's cache of the block's rest and once with the cache dropped before
    every batch (Zone.mscan_block = -1: the full scan): the same pages, stops and skip bits;
    the work log's tail counts every page isolated and pfn scanned (no migrate_pages() call
    in between)."""
    zones = [_zone(seed, p_free, p_bad) for _ in range(2)]
    comps = [Compactor(z, cluster_max=cluster_max) for z in zones]
    low, isolated, scanned = PB, 0, 0
    for kw in kws:
        if low >= 2 * PB:
            break
        out = []
        for z, c in zip(zones, comps, strict=True):
            if z is zones[1]:
                z.mscan_block = -1
            cc = CompactControl(**kw)
            c.isolate_migratepages_block(cc, low, 2 * PB)
            got = np.concatenate(cc.migratepages).tolist() if cc.migratepages else []
            out.append((got, cc.migrate_pfn, bool(z.skip[1]), list(z.compact_cached_migrate_pfn)))
        assert out[0] == out[1]
        isolated += len(out[0][0])
        scanned += out[0][1] - low
        low = out[0][1]
    for c in comps:
        tail = c.log().tail
        assert (tail[W_ISOLATED], tail[W_MIGRATE_SCANNED]) == (isolated, scanned)


def test_an_async_batch_from_the_cached_rest_stops_at_its_order_block():
    """Pageblock 1 with every other frame free (LRU at the odd pfns 513, 515, ...): a sync
    batch of 7 takes 513..525 and stops at 526, caching the rest; the next batch, async
    direct compaction for order 2 (skip_on_failure: order blocks of 4 pfns), takes only 527,
    the one LRU page of the order block 524..527, and stops at its end, 528 (then
    migrates): as the reference loop does."""
    z = _zone(0, -1.0, 0.0)
    c = Compactor(z, cluster_max=7)
    cc = CompactControl(order=9, mode=MIGRATE_SYNC)
    c.isolate_migratepages_block(cc, PB, 2 * PB)
    assert cc.migratepages[0].tolist() == list(range(513, 527, 2)) and cc.migrate_pfn == 526
    assert z.mscan_block == 1
    cc2 = CompactControl(order=2, mode=MIGRATE_ASYNC, direct_compaction=True)
    state = z.state.copy()
    want, stop, _ = reference_block(state, z.skip.copy(), cc2, 526, 2 * PB, 7)
    assert (want, stop) == ([527], 528)
    c.isolate_migratepages_block(cc2, 526, 2 * PB)
    assert cc2.migratepages[0].tolist() == [527] and cc2.migrate_pfn == 528
