"""Property tests on small zones: after any sequence of allocations, frees and compactions
no frame is lost or owned twice, the buddy free lists match the frame states, and every
page's content tag survives migration.

Every chunked code path (the recount of the cached free-list counts, the scanners' vectorised
steps over blocks they do not scan, the random fragmenter) runs with a chunk size drawn
smaller than the zone, so that each takes more than one chunk: a bug that only shows from the
second chunk on (as the recount's once did above 16 GiB) cannot hide behind small zones. The
real chunk sizes are covered at full scale in test_full_scale.py.
"""

from __future__ import annotations

from contextlib import ExitStack
from unittest import mock

import numpy as np

# every test on both engines of the allocation loop (tests/engines.py)
from engines import loop_engine, pytest_generate_tests  # noqa: E402, F401
from hypothesis import given
from hypothesis import strategies as st

from migsim.kernel import compaction as compaction_mod
from migsim.kernel import fragment as fragment_mod
from migsim.kernel import zone as zone_mod
from migsim.kernel.compaction import Compactor
from migsim.kernel.fragment import FragmentConfig, fragment, free_offsets
from migsim.kernel.zone import ALLOCATED, LRU, NR_STATES, Zone, buddy_block_counts

MB = 1 << 20

zones = st.builds(
    lambda blocks, ratio, pattern, seed, pcp_high: (
        FragmentConfig(
            node_bytes=blocks * 2 * MB,
            reserved_bytes=2 * MB,
            free_ratio=ratio,
            pattern=pattern,
            seed=seed,
        ),
        pcp_high,
    ),
    blocks=st.integers(6, 24),  # > every drawn chunk size, with the reserved block
    ratio=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 0.9]),
    pattern=st.sampled_from(["even", "random", "clustered"]),
    seed=st.integers(0, 1000),
    pcp_high=st.sampled_from([None, 0, 7, 300]),
)

# (module, constant) of every chunk size in the engine
CHUNKS = (
    (zone_mod, "RECOUNT_CHUNK_BLOCKS"),
    (compaction_mod, "MIGRATE_SKIP_WINDOW_BLOCKS"),
    (compaction_mod, "FREE_SKIP_WINDOW_BLOCKS"),
    (fragment_mod, "RANDOM_CHUNK_REGIONS"),
)
chunk_sizes = st.tuples(*[st.integers(1, 4) for _ in CHUNKS])


def small_chunks(sizes: tuple[int, ...]) -> ExitStack:
    """Patch every chunk size of the engine to `sizes` (all below the zones' block counts)."""
    stack = ExitStack()
    for (mod, name), k in zip(CHUNKS, sizes, strict=True):
        stack.enter_context(mock.patch.object(mod, name, k))
    return stack


def test_chunk_sizes_patched_are_the_ones_the_engine_has():
    for mod, name in CHUNKS:
        assert isinstance(getattr(mod, name), int) and getattr(mod, name) > 4


ops = st.lists(
    st.one_of(
        st.tuples(st.just("alloc_pages_node"), st.integers(0, 10)),
        st.tuples(st.just("alloc_block"), st.integers(0, 10)),
        st.tuples(st.just("free"), st.integers(0, 10_000)),
        st.tuples(st.just("drain"), st.just(0)),
        st.tuples(st.just("compact_memory"), st.just(0)),
    ),
    min_size=1,
    max_size=12,
)


def lru_tags(z: Zone) -> np.ndarray:
    return np.sort(z.content_tag(np.flatnonzero(z.state == LRU)))


def owned_once(z: Zone, held: dict[int, int]) -> None:
    """Every frame is in exactly one state, and each block handed out is whole and is held
    once (no overlap between handed-out blocks)."""
    assert z.state.max() < NR_STATES
    claimed = np.zeros(z.nr_pages, dtype=np.int64)
    for pfn, order in held.items():
        claimed[pfn : pfn + (1 << order)] += 1
        assert np.all(z.state[pfn : pfn + (1 << order)] == ALLOCATED)
    assert claimed.max(initial=0) <= 1
    assert np.array_equal(claimed == 1, z.state == ALLOCATED)


@given(zones, ops, chunk_sizes)
def test_any_sequence_keeps_the_zone_consistent(zone_cfg, sequence, chunks):
    with small_chunks(chunks):
        run_sequence(zone_cfg, sequence)


def run_sequence(zone_cfg, sequence) -> None:
    cfg, pcp_high = zone_cfg
    z = fragment(cfg, pcp_high=pcp_high, pcp_batch=None if pcp_high is None else 3)
    assert z.nr_blocks - 1 > max(getattr(mod, name) for mod, name in CHUNKS)  # >1 chunk each
    tags = lru_tags(z)
    c = Compactor(z)
    held: dict[int, int] = {}
    for op, arg in sequence:
        if op == "alloc_pages_node":
            pfn = c.alloc_pages_node(arg)
            if pfn is not None:
                held[pfn] = arg
        elif op == "alloc_block":
            pfn = z.alloc_block(arg)
            if pfn is not None:
                held[pfn] = arg
        elif op == "free" and held:
            pfn = sorted(held)[arg % len(held)]
            z.free_block(pfn, held.pop(pfn))
        elif op == "drain":
            z.drain_pages()
        elif op == "compact_memory":
            c.compact_memory()
        z.check()  # frames, counters, free lists, pcp list, tags held once
        owned_once(z, held)
        assert np.array_equal(lru_tags(z), tags)  # contents arrive intact


# The 512 frame bits as 64 drawn bytes: every 512-frame mask can be drawn, as with a list of
# 512 booleans, at one hypothesis draw per example instead of 512 (27.7 -> 2.3 ms CPU per
# example; the suite runs 2,000 under the thorough profile).
@given(st.binary(min_size=64, max_size=64))
def test_free_lists_are_the_canonical_buddy_decomposition(frame_bytes):
    free = np.unpackbits(np.frombuffer(frame_bytes, dtype=np.uint8)).astype(bool)
    assert free.shape == (512,)
    counts = buddy_block_counts(free[None, :])[0]
    # the blocks tile exactly the free frames
    assert int((counts[:9] * (1 << np.arange(9))).sum() + 512 * counts[9]) == int(free.sum())
    # no two free buddies of the same order both exist (they would have merged)
    for order in range(9):
        size = 1 << order
        whole = free.reshape(-1, size).all(1)
        pairs = whole.reshape(-1, 2).all(1)
        parent = free.reshape(-1, 2 * size).all(1)
        assert np.array_equal(pairs, parent)


@given(
    st.integers(1, 40),
    st.integers(1, 7),
    st.sampled_from([0.1, 0.5, 0.9]),
    st.integers(0, 1000),
)
def test_random_pattern_does_not_depend_on_the_chunk(nregions, chunk, ratio, seed):
    cfg = FragmentConfig(node_bytes=64 * MB, pattern="random", free_ratio=ratio, seed=seed)
    whole = free_offsets(cfg, np.random.default_rng(seed), nregions)
    with mock.patch.object(fragment_mod, "RANDOM_CHUNK_REGIONS", chunk):
        chunked = free_offsets(cfg, np.random.default_rng(seed), nregions)
    assert np.array_equal(whole, chunked)
