"""Hand cases for the edges of the zone, the content tags, batching and platform loading
(issue 18: the mutation sample's survivors in kernel/zone.py, kernel/tags.py,
kernel/migrate.py and cost/platform.py). Every expectation is derived by hand in the test's
docstring from the kernel function the code follows (or from the documented error format),
never from the code's own output. All zones are one or two pageblocks: milliseconds each."""

from __future__ import annotations

import numpy as np
import pytest

from migsim.cost.platform import DEFAULT_PLATFORM, PlatformError, load_platform
from migsim.kernel.migrate import batch_totals, split_batches
from migsim.kernel.tags import ContentTags
from migsim.kernel.zone import (
    FREE,
    LRU,
    PCP,
    STATE_U8,
    Zone,
    kernel_batchsize,
)


def _zone_with_allocated(nr: int, *, high: int, batch: int) -> Zone:
    """A 1024-frame zone (two pageblocks) whose frames 0..nr-1 are allocated (one
    alloc_block of order log2(nr): the lowest pfn of the only free block, the order-10 one)."""
    z = Zone(1024, pcp_high=high, pcp_batch=batch)
    order = nr.bit_length() - 1
    assert 1 << order == nr
    assert z.alloc_block(order) == 0
    return z


def test_pcp_free_returns_the_pages_its_bulk_free_moved_and_drain_the_rest():
    """pcp high 8, batch 2, eight allocated pages 0..7 freed as [0..4] then [5, 6, 7].

    free_unref_page_commit(): the first five stay on the list (5 < high): nothing moves, 0.
    The next three bring count to 8 = high, so free_pcppages_bulk() frees nr_pcp_free()
    pages: free_count (8 consecutive frees) clamped to [batch, high - batch] = [2, 6] -> 6,
    the oldest ones (0..5); pcp_free returns 6 and 2 pages (6, 7) stay, count 2.
    drain_local_pages() then moves those 2 (drain_pages returns 2); every frame is back in
    the buddy lists: 1024 free, 8 buddy frees in all, an empty list whose pfns index the
    state array."""
    z = _zone_with_allocated(8, high=8, batch=2)
    assert z.pcp_free(np.arange(0, 5, dtype=np.int64)) == 0
    assert (z.pcp.count, z.buddy_frees, z.nr_free) == (5, 0, 1016)
    assert z.pcp_free(np.arange(5, 8, dtype=np.int64)) == 6
    assert (z.pcp.count, z.buddy_frees, z.nr_free) == (2, 6, 1022)
    assert z.pcp.pfns().tolist() == [6, 7]
    assert z.state[:8].tolist() == [FREE] * 6 + [PCP] * 2
    z.check()
    assert z.drain_pages() == 2
    assert (z.pcp.count, z.buddy_frees, z.nr_free) == (0, 8, 1024)
    empty = z.pcp.pfns()
    assert len(empty) == 0 and z.state[empty].tolist() == []  # integer pfns, even when empty
    assert z.drain_pages() == 0
    z.check()


def test_free_to_buddy_counts_every_page_of_every_part():
    """__free_one_page() per page: parts of 3, 0 and 2 pages free 5 pages (buddy_frees and
    NR_FREE_PAGES both +5); an empty list frees nothing and returns None (no capture)."""
    z = _zone_with_allocated(8, high=100, batch=2)
    parts = [
        (np.array([0, 1, 2], dtype=np.int64), 0),
        (np.zeros(0, dtype=np.int64), 0),
        (np.array([3, 4], dtype=np.int64), 0),
    ]
    z.state[:5] = PCP  # as the pcp list leaves them before the bulk free
    assert z.free_to_buddy(parts) is None
    assert (z.buddy_frees, z.nr_free) == (5, 1016 + 5)
    assert z.free_to_buddy([]) is None and z.buddy_frees == 5
    z.state[5:8] = LRU
    z.check()


def test_recount_refuses_frames_on_a_per_cpu_list():
    """recount() rebuilds the buddy accounting from the frame states; a frame in the PCP
    state belongs to a per-CPU list the states do not describe, so it is refused with the
    documented message (and without one the recount succeeds)."""
    z = Zone(512)
    z.state[10] = PCP
    with pytest.raises(ValueError, match=r"^state: frames on a per-CPU list cannot be recounted$"):
        z.recount()
    z.state[10] = LRU
    z.recount()
    assert z.nr_free == 511
    z.check()


def test_zone_batchsize_of_small_zones():
    """zone_batchsize() (mm/page_alloc.c): batch = min(pages >> 10, 1 MiB / 4 KiB = 256) / 4,
    at least 1, then rounddown_pow_of_two(batch + batch / 2) - 1; zone_set_pageset_high_and_
    batch() takes max(1, that) (the kernel's formula gives 0 for batch 1).
    512 pages: 0 -> 1 -> rounddown(1) - 1 = 0 -> 1. 8192: 8 / 4 = 2 -> rounddown(3) - 1 = 1.
    12288: 3 -> rounddown(4) - 1 = 3. 16384: 4 -> rounddown(6) - 1 = 3. 40960: 10 ->
    rounddown(15) - 1 = 7. 262144 (1 GiB): 64 -> rounddown(96) - 1 = 63. 2^24: 256 / 4 = 64
    -> 63."""
    pages = (512, 8192, 12288, 16384, 40960, 262144, 1 << 24)
    assert [kernel_batchsize(p) for p in pages] == [1, 1, 3, 3, 7, 63, 63]
    assert Zone(512).pcp.batch == 1


def test_the_shared_frame_state_values_are_read_only():
    """STATE_U8 holds the one value every hot-path scatter writes; a write through it would
    change the meaning of a state for every later scatter, so the arrays refuse writes."""
    with pytest.raises(ValueError):
        STATE_U8[LRU][()] = PCP
    assert [int(v) for v in STATE_U8[:3]] == [FREE, LRU, PCP]


def test_content_tags_above_8_tib_wrap_offsets_mod_2_32():
    """A node above 2^31 frames (8 TiB) stores an offset mod 2^32, as the dense int32 array
    did: 2^32 + 7 reads back as 7, -(2^31) - 5 as 2^31 - 5; a small offset is unchanged.
    The store is allocated zeroed, so the 2 GiB of codes cost only the pages written."""
    top = (1 << 31) + 64
    tags = ContentTags(top)
    pfns = np.array([(1 << 31) + 3, (1 << 31) + 40, 5], dtype=np.int64)
    tags.put(pfns.copy(), np.array([(1 << 32) + 7, -(1 << 31) - 5, -2], dtype=np.int64))
    assert tags.get(pfns).tolist() == [7, (1 << 31) - 5, -2]


def test_split_batches_by_hand():
    """migrate_pages_batch() fills a batch up to the limit in base pages; a folio at or over
    the limit gets a batch of its own. One 2 MiB folio, limit 512 -> [0]; five 4-page folios,
    limit 8 -> two per batch [0, 0, 1, 1, 2]; two 1024-page folios, limit 512 -> [0, 1];
    sizes 1, 1, 2, 4 with limit 4 -> running starts 0, 1, 2, 4 -> [0, 0, 0, 1]."""
    assert split_batches(np.array([512]), 512).tolist() == [0]
    assert split_batches(np.array([4] * 5), 8).tolist() == [0, 0, 1, 1, 2]
    assert split_batches(np.array([1024, 1024]), 512).tolist() == [0, 1]
    assert split_batches(np.array([1, 1, 2, 4]), 4).tolist() == [0, 0, 0, 1]
    assert split_batches(np.zeros(0, dtype=np.int64), 512).tolist() == []


def test_batch_totals_of_mixed_folio_sizes_by_hand():
    """Sizes 1, 1, 2, 4 and 512 pages, limit 4: batches {1, 1, 2}, {4}, {512} (start 8 // 4
    = 2), so folios [3, 1, 1], pages [4, 4, 512]; mapping entries: one PTE per base page
    below 2 MiB, one PMD for the 2 MiB folio -> [4, 4, 1]."""
    nr_folios, nr_pages, nr_ptes = batch_totals(np.array([1, 1, 2, 4, 512]), 4)
    assert nr_folios.tolist() == [3, 1, 1]
    assert nr_pages.tolist() == [4, 4, 512]
    assert nr_ptes.tolist() == [4.0, 4.0, 1.0]


def _platform_text() -> str:
    return DEFAULT_PLATFORM.read_text()


def test_platform_yaml_errors_name_the_parser_problem(tmp_path):
    """load_platform's YAML error: 'platform: <file> is not valid YAML at line N: <the
    parser's problem>' (an unclosed flow list is found at the end of the stream, line 2), and
    for a file that is not UTF-8 the decoder's message (no line)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nparameters: [1, 2\n")
    with pytest.raises(PlatformError) as err:
        load_platform(bad)
    msg = str(err.value)
    assert msg.startswith(f"platform: {bad} is not valid YAML at line ")
    assert "expected" in msg and not msg.endswith("None")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(PlatformError) as err:
        load_platform(binary)
    assert str(err.value).startswith(f"platform: {binary} is not valid YAML: ")
    assert "decode" in str(err.value)


def test_platform_value_errors_name_the_file_once(tmp_path):
    """A bad value's message is the validator's with the file named once after
    'platform: ': an infinite cpu.folio_fixed_us (range 0..100 us) reads 'platform: <file>:
    cpu.folio_fixed_us must be a finite number in [0, 100] us, got inf'; a string value that
    itself contains 'platform: ' is quoted as it is, not rewritten."""
    import yaml

    doc = yaml.safe_load(_platform_text())
    doc["parameters"]["cpu"]["folio_fixed_us"] = float("inf")
    path = tmp_path / "inf.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlatformError) as err:
        load_platform(path)
    assert str(err.value) == (
        f"platform: {path}: cpu.folio_fixed_us must be a finite number in [0, 100] us, got inf"
    )
    doc["parameters"]["cpu"]["folio_fixed_us"] = "platform: x"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlatformError) as err:
        load_platform(path)
    assert str(err.value) == (
        f"platform: {path}: cpu.folio_fixed_us must be a number in us, got 'platform: x'"
    )


def test_platform_replace_keeps_the_files_provenance():
    """Platform.replace() changes values only: the name and the metadata the file carries
    beside its parameters (its provenance, written back by save_platform) stay."""
    p = load_platform(DEFAULT_PLATFORM)
    assert p.meta  # the shipped file documents where its values come from
    q = p.replace(cpu__folio_fixed_us=p.cpu.folio_fixed_us + 1.0)
    assert q.name == p.name and q.meta == p.meta
    assert q.cpu.folio_fixed_us == p.cpu.folio_fixed_us + 1.0


# ------------------------------------------------------------------ per-CPU list, by hand


def test_one_large_free_triggers_a_bulk_free_each_time_the_list_reaches_high():
    """free_unref_page_commit() page by page: high 4, batch 1, ten pages 0..9 freed at once.
    The list reaches high after 4 pages; nr_pcp_free() = free_count clamped to
    [batch, high - batch] = [1, 3] -> 3: pages 0, 1, 2 go (oldest first), 1 stays. Then 3 more
    make 4 again -> 3, 4, 5 go; then 6, 7, 8; page 9 stays. Three bulk frees of 3 pages."""
    from migsim.kernel.zone import PerCpuPages

    pcp = PerCpuPages(4, 1)
    bulks = pcp.add(np.arange(10, dtype=np.int64))
    got = [np.concatenate([p for p, _ in bulk]).tolist() for bulk in bulks]
    assert got == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert pcp.count == 1 and pcp.pfns().tolist() == [9]
    assert all(b == 0 for bulk in bulks for _, b in bulk)  # all in pageblock 0


def test_pcp_free_count_is_capped_and_a_high_below_batch_frees_one_page():
    """nr_pcp_free(): free_count is capped at batch << CONFIG_PCP_BATCH_SCALE_MAX (5): batch 2
    -> 64, so 100 consecutive frees count 64, and with high 1000 the bulk free is
    min(max(64, 2), 998) = 64. With high (1) below batch (2) the kernel frees 1 page."""
    from migsim.kernel.zone import PerCpuPages

    pcp = PerCpuPages(1000, 2)
    pcp.add(np.arange(100, dtype=np.int64))
    assert pcp.free_count == 64 and pcp.nr_pcp_free() == 64
    assert PerCpuPages(1, 2).nr_pcp_free() == 1
    with pytest.raises(ValueError, match="batch >= 1"):
        PerCpuPages(4, 0)


def test_drain_after_a_partial_take_returns_the_rest_oldest_first():
    """take_oldest(3) of chunks [0, 1] and [2, 3, 4] takes 0, 1, 2 and leaves 3, 4 (the
    head of the second chunk moved by 1); drain_local_pages() then returns exactly 3, 4 and
    empties the list (count and free_count 0)."""
    from migsim.kernel.zone import PerCpuPages

    pcp = PerCpuPages(100, 2)
    pcp.add(np.array([0, 1], dtype=np.int64))
    pcp.add(np.array([2, 3, 4], dtype=np.int64))
    taken = pcp.take_oldest(3)
    assert np.concatenate([p for p, _ in taken]).tolist() == [0, 1, 2]
    assert pcp.count == 2 and pcp.pfns().tolist() == [3, 4]
    rest = pcp.drain()
    assert np.concatenate([p for p, _ in rest]).tolist() == [3, 4]
    assert (pcp.count, pcp.free_count, len(pcp.pfns())) == (0, 0, 0)
    assert pcp.take_oldest(5) == [] and pcp.count == 0


# ------------------------------------------------------------------ platform validation


def _write_doc(tmp_path, section: str, key: str, value, name: str = "p.yaml"):
    import yaml

    doc = yaml.safe_load(_platform_text())
    doc["parameters"][section][key] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def test_platform_range_is_inclusive_and_its_message_exact(tmp_path):
    """dma.engine_gbps is allowed in [0.1, 400] GB/s, both ends included (p.lo <= v <= p.hi);
    400.5 is refused with 'platform: <file>: dma.engine_gbps = 400.5 GB/s is outside the
    allowed range [0.1, 400] GB/s'."""
    for v in (0.1, 400.0):
        assert load_platform(_write_doc(tmp_path, "dma", "engine_gbps", v)).dma.engine_gbps == v
    path = _write_doc(tmp_path, "dma", "engine_gbps", 400.5)
    with pytest.raises(PlatformError) as err:
        load_platform(path)
    assert str(err.value) == (
        f"platform: {path}: dma.engine_gbps = 400.5 GB/s is outside the allowed range "
        "[0.1, 400] GB/s"
    )


def test_platform_refuses_nan_and_booleans_and_keeps_whole_numbers_integers(tmp_path):
    """A NaN is no finite number ('... must be a finite number in [0, 10] us, got nan' for
    cpu.pte_us); a YAML boolean is no number even though Python's bool is an int; a whole
    2.0 for an integer parameter (dma.chans_per_engine_count) is taken as the int 2; the
    {value, unit} form without a unit is taken as the value."""
    path = _write_doc(tmp_path, "cpu", "pte_us", float("nan"))
    with pytest.raises(PlatformError) as err:
        load_platform(path)
    assert str(err.value) == (
        f"platform: {path}: cpu.pte_us must be a finite number in [0, 10] us, got nan"
    )
    path = _write_doc(tmp_path, "cpu", "pte_us", True)
    with pytest.raises(PlatformError) as err:
        load_platform(path)
    assert str(err.value) == f"platform: {path}: cpu.pte_us must be a number in us, got True"
    p = load_platform(_write_doc(tmp_path, "dma", "chans_per_engine_count", 2.0))
    assert p.dma.chans_per_engine_count == 2 and type(p.dma.chans_per_engine_count) is int
    p = load_platform(_write_doc(tmp_path, "cpu", "pte_us", {"value": 0.25}))
    assert p.cpu.pte_us == 0.25


def test_platform_structure_errors(tmp_path):
    """A file without a 'parameters' mapping, an unknown section, a missing section and a
    replace() of an unknown parameter are each refused with a message naming what is wrong."""
    import yaml

    bare = tmp_path / "bare.yaml"
    bare.write_text("name: x\n")
    with pytest.raises(PlatformError, match=r"^platform: .*bare\.yaml must have a 'parameters'"):
        load_platform(bare)
    doc = yaml.safe_load(_platform_text())
    doc["parameters"]["gpu"] = {}
    path = tmp_path / "extra.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlatformError, match=r"unknown section\(s\) \['gpu'\]"):
        load_platform(path)
    doc = yaml.safe_load(_platform_text())
    del doc["parameters"]["noise"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlatformError, match=r"missing section 'noise'"):
        load_platform(path)
    p = load_platform(DEFAULT_PLATFORM)
    with pytest.raises(PlatformError, match=r"^unknown platform parameter cpu\.nope_us$"):
        p.replace(cpu__nope_us=1.0)
    with pytest.raises(PlatformError, match=r"^unknown platform parameter gpu\.x$"):
        p.replace(gpu__x=1.0)


def test_trial_scale_is_one_lognormal_draw_or_none_at_all():
    """trial_scale(): exp(N(0, sd)) from the generator, the same draw numpy's own
    exp(normal(0, sd)) makes from an identical generator; with sd 0 it is 1.0 and the
    generator is not advanced (the next draw equals a fresh generator's first)."""
    p = load_platform(DEFAULT_PLATFORM).replace(noise__trial_sd_frac=0.2)
    rng, twin = np.random.default_rng(7), np.random.default_rng(7)
    assert p.trial_scale(rng) == float(np.exp(twin.normal(0.0, 0.2)))
    quiet = p.replace(noise__trial_sd_frac=0.0)
    rng = np.random.default_rng(7)
    assert quiet.trial_scale(rng) == 1.0
    assert rng.random() == np.random.default_rng(7).random()


# ------------------------------------------------------------------ batches and descriptors


def test_uniform_batches_by_hand():
    """One folio size: whole batches of limit // size folios plus a remainder. Ten 4-page
    folios, limit 16 -> 4 per batch: folios [4, 4, 2], pages [16, 16, 8], one PTE per base
    page; three 2 MiB folios, limit 256 -> one per batch (max(1, 0)), one PMD each; two
    4 MiB folios, limit 512 -> one per batch, two PMD pieces each."""
    f, p, e = batch_totals(np.full(10, 4), 16)
    assert (f.tolist(), p.tolist(), e.tolist()) == ([4, 4, 2], [16, 16, 8], [16.0, 16.0, 8.0])
    f, p, e = batch_totals(np.full(3, 512), 256)
    assert (f.tolist(), p.tolist(), e.tolist()) == ([1, 1, 1], [512] * 3, [1.0] * 3)
    f, p, e = batch_totals(np.full(2, 1024), 512)
    assert (f.tolist(), p.tolist(), e.tolist()) == ([1, 1], [1024, 1024], [2.0, 2.0])
    f, p, e = batch_totals(np.zeros(0, dtype=np.int64), 512)
    assert (len(f), len(p), len(e)) == (0, 0, 0)


@pytest.mark.parametrize(
    ("rfc", "nr", "kib", "total", "busiest"),
    [
        # v4, 4 channels, 64 KiB segments: 4K folios 16 to a descriptor, 16K 4, 64K one
        ("v4", 5, 4, 4, 1),  # channels get 2, 1, 1, 1 folios: one descriptor each
        ("v4", 5, 64, 5, 2),  # 2 + 1 + 1 + 1 descriptors, the busiest channel 2
        ("v4", 10, 16, 4, 1),  # 3, 3, 2, 2 folios: ceil(3/4) = ceil(2/4) = 1 each
        ("v4", 3, 4, 3, 1),  # 3 folios use 3 of the 4 channels
        ("v4", 0, 4, 0, 0),  # an empty batch has no descriptor
        ("v2", 10, 16, 10, 3),  # dma_map_page: one descriptor per folio, 3 on the busiest
        ("v6", 10, 16, 10, 10),  # one device group of 1 channel, one descriptor per folio
    ],
)
def test_dma_descriptors_by_hand(rfc, nr, kib, total, busiest):
    """folios_copy_dma splits n folios over min(channels, n) channels, n mod channels of
    them one more; a v3/v4 descriptor copies floor(64 KiB / folio) merged folios (at least
    one), v2 and v6 one folio each; v6 uses one device group (chans_per_device_count 1)."""
    from migsim.cost.copiers import DmaCopier

    p = load_platform(DEFAULT_PLATFORM).replace(dma__max_seg_kb=64.0, dma__chans_per_device_count=1)
    n = np.array([nr], dtype=np.float64)
    got = DmaCopier(channels=4, rfc=rfc).descriptors(n, n * kib * 1024.0, p)
    assert (got[0].tolist(), got[1].tolist()) == ([float(total)], [float(busiest)])


# ------------------------------------------------------------------ buddy lists by hand


def _zone_without_frame_0() -> Zone:
    """Two pageblocks, all free but frame 0: the buddy decomposition of 1..1023 is one
    block of each order 0..9 at pfn 2^order (1, 2, 4, ..., 512) and no order-10 block."""
    from migsim.kernel.zone import ALLOCATED

    z = Zone(1024)
    z.state[0] = ALLOCATED
    z.recount()
    return z


def test_free_lists_of_a_zone_missing_its_first_frame():
    """free_area[order] holds the one block at 2^order for orders 0..9 (order 0 at pfn 1),
    none at order 10; /proc/buddyinfo reads 1 x10 then 0; free_blocks_total 10."""
    z = _zone_without_frame_0()
    assert [z.free_list(o).tolist() for o in range(11)] == [[1], [2], [4], [8], [16], [32],
                                                             [64], [128], [256], [512], []]  # fmt: skip
    assert z.free_area_counts().tolist() == [1] * 10 + [0]
    assert z.free_blocks_total() == 10
    assert (z.nr_free, z.nr_full_blocks) == (1023, 1)
    with pytest.raises(ValueError, match=r"order: must be in 0\.\.10, got 11"):
        z.free_list(11)


def test_allocation_takes_the_smallest_order_that_fits_lowest_pfn_first():
    """__rmqueue_smallest(): order 3 takes the order-3 block at 8; a second order 3 splits
    the order-4 block at 16 (expand() leaves 24..31 as an order-3 block); order 0, 1 and 2
    take 1, 2 and 4. Afterwards free_area[3] is [24] and order 0..2 are empty."""
    from migsim.kernel.zone import ALLOCATED

    z = _zone_without_frame_0()
    assert [z.alloc_block(o) for o in (3, 3, 0, 1, 2)] == [8, 16, 1, 2, 4]
    assert z.free_list(3).tolist() == [24]
    assert [len(z.free_list(o)) for o in range(3)] == [0, 0, 0]
    assert z.count_state(ALLOCATED) == 1 + 8 + 8 + 1 + 2 + 4
    assert z.nr_free == 1024 - 24
    z.check()


def test_watermark_check_counts_the_request_as_used():
    """__zone_watermark_ok(): free_pages = NR_FREE_PAGES - (2^order - 1) must exceed the
    mark, and for order > 0 a free block of that order must exist. 1023 free pages: order 0
    passes mark 1022 and fails 1023; order 9 has 512 usable pages: passes mark 511, fails
    512."""
    z = _zone_without_frame_0()
    assert z.zone_watermark_ok(0, 1022) and not z.zone_watermark_ok(0, 1023)
    assert z.zone_watermark_ok(9, 511) and not z.zone_watermark_ok(9, 512)


def test_an_order_10_request_needs_a_whole_free_buddy_pair():
    """__zone_watermark_ok() for order 10 looks in free_area[10] only: the zone missing frame 0
    has a whole free pageblock (order 9 at 512) but no order-10 block, so order 9 passes and
    order 10 fails, at any mark; frame 0 freed (to the pcp list) and drained merges the pair
    into one order-10 block."""
    z = _zone_without_frame_0()
    assert z.has_free_order(9) and not z.has_free_order(10)
    assert z.zone_watermark_ok(9, 0) and not z.zone_watermark_ok(10, 0)
    assert z.alloc_block(10) is None
    z.free_block(0, 0)
    assert not z.has_free_order(10)  # frame 0 sits on the pcp list, not in the buddy
    z.drain_pages()
    assert z.has_free_order(10) and z.zone_watermark_ok(10, 0)
    assert z.alloc_block(10) == 0


def test_free_block_refuses_a_misaligned_or_outside_frame():
    """__free_pages() of an order-2 block must start at a multiple of 4 inside the zone."""
    z = Zone(512)
    with pytest.raises(ValueError, match=r"pfn: 2 is not an order-2 aligned frame"):
        z.free_block(2, 2)
    with pytest.raises(ValueError, match=r"pfn: 512 is not an order-0 aligned frame"):
        z.free_block(512, 0)
