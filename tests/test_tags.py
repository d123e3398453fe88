"""The one-byte content-tag store (migsim.kernel.tags) against the dense int32 array it
replaces: any sequence of writes reads back the same offsets, including offsets far apart in
one pageblock (a wide row), zero offsets, and values that wrap as int32 does."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from migsim.kernel.tags import GROUP_FRAMES, ContentTags
from migsim.units import PAGEBLOCK_NR_PAGES

NR_PAGES = 4 * PAGEBLOCK_NR_PAGES


def _reference_put(dense: np.ndarray, pfns: np.ndarray, delta: np.ndarray) -> None:
    dense[pfns] = delta  # int64 stored as int32, as Zone's dense array did


def _same(tags: ContentTags, dense: np.ndarray) -> None:
    every = np.arange(NR_PAGES, dtype=np.int64)
    assert np.array_equal(tags.get(every), dense.astype(np.int64))
    pfns, delta = tags.nonzero()
    assert np.array_equal(pfns, np.flatnonzero(dense))
    assert np.array_equal(delta, dense[pfns]) and delta.dtype == np.int32
    assert np.array_equal(tags.dense(), dense)


writes = st.lists(
    st.tuples(
        st.sets(st.integers(0, NR_PAGES - 1), min_size=1, max_size=40),
        # near values (one base fits), far ones (a wide row), zero, int32's ends
        st.lists(
            st.one_of(
                st.integers(-40_000_000, -39_990_000),
                st.integers(-(2**31), 2**31 - 1),
                st.just(0),
            ),
            min_size=40,
            max_size=40,
        ),
    ),
    max_size=12,
)


@given(writes)
def test_reads_back_what_a_dense_int32_array_holds(ops):
    tags = ContentTags(NR_PAGES)
    dense = np.zeros(NR_PAGES, dtype=np.int32)
    for pfn_set, values in ops:
        pfns = np.array(sorted(pfn_set), dtype=np.int64)
        delta = np.array(values[: len(pfns)], dtype=np.int64)
        _reference_put(dense, pfns, delta)
        tags.put(pfns, delta.copy())
    _same(tags, dense)


def test_a_group_of_far_apart_offsets_gets_a_wide_row():
    tags = ContentTags(NR_PAGES)
    dense = np.zeros(NR_PAGES, dtype=np.int32)
    pfns = np.array([PAGEBLOCK_NR_PAGES + 1, PAGEBLOCK_NR_PAGES + 7], dtype=np.int64)
    delta = np.array([-50_000_000, 3], dtype=np.int64)
    _reference_put(dense, pfns, delta)
    tags.put(pfns, delta.copy())
    assert len(tags.wide) == 1 and tags.wide_row.tolist().count(1) == 1  # one group alone
    _reference_put(dense, pfns[:1], np.array([0]))
    tags.put(pfns[:1], np.array([0], dtype=np.int64))
    _same(tags, dense)


def test_near_offsets_share_one_base_in_one_byte():
    """Offsets within 127 of the first one written to a group of 64 frames need no wide row."""
    tags = ContentTags(NR_PAGES)
    pfns = np.arange(PAGEBLOCK_NR_PAGES, dtype=np.int64)
    delta = -40_000_000 + (pfns % GROUP_FRAMES) * 2
    tags.put(pfns, delta.copy())
    assert len(tags.wide) == 0 and tags.code.dtype == np.uint8
    assert tags.get(pfns).tolist() == delta.tolist()


def test_an_initial_dense_array_is_taken_as_it_is():
    dense = np.zeros(NR_PAGES, dtype=np.int32)
    dense[[3, 600, 601, 2000]] = [5, -7, 2**31 - 1, -(2**31)]
    _same(ContentTags(NR_PAGES, dense), dense)
