import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from migsim.cost.copiers import CpuCopier, DmaCopier, MtCopier
from migsim.kernel.migrate import batch_totals, migrate_pages, split_batches


def test_batches_respect_the_limit():
    nr_folios, nr_pages, _ = batch_totals(np.full(1000, 1), 512)
    assert list(nr_folios) == [512, 488]
    assert list(nr_pages) == [512, 488]
    # a folio larger than the limit is a batch of its own
    nr_folios, nr_pages, ptes = batch_totals(np.full(3, 512), 32)
    assert list(nr_folios) == [1, 1, 1] and list(ptes) == [1, 1, 1]  # PMD-mapped


def test_mixed_sizes_split():
    pages = np.array([1, 1, 4, 16, 512, 1, 256])
    batch = split_batches(pages, 512)
    assert np.all(np.diff(batch) >= 0)
    nr_folios, nr_pages, ptes = batch_totals(pages, 512)
    assert nr_folios.sum() == len(pages) and nr_pages.sum() == pages.sum()
    assert ptes.sum() == 1 + 1 + 4 + 16 + 1 + 1 + 256


@pytest.mark.parametrize(
    "copier", [CpuCopier(), DmaCopier(channels=1), DmaCopier(channels=16), MtCopier(threads=8)]
)
def test_migrate_pages_sums_its_batches(quiet_platform, rng, copier):
    """4096 folios of 16 pages with a limit of 512 pages: 128 batches of 32 folios, each
    costed by the copier alone (a separate call), one TLB flush per batch."""
    r = migrate_pages(np.full(4096, 16), copier, quiet_platform, batch_limit=512, rng=rng)
    assert (r.nr_batches, r.nr_folios, r.nr_pages) == (128, 4096, 4096 * 16)
    one = copier.copy_batches(np.array([32]), np.array([32 * 16 * 4096.0]), quiet_platform, rng)
    assert r.copy_s == pytest.approx(128 * one.wall_s[0], rel=1e-9)
    assert r.idle_s == pytest.approx(128 * one.wait_s[0], rel=1e-9)
    assert r.other_cpu_s == pytest.approx(128 * one.other_cpu_s[0], rel=1e-9)
    assert r.flush_s == pytest.approx(128 * quiet_platform.cpu.tlb_flush_us * 1e-6, rel=1e-9)
    assert 0 < r.first_folio_s < r.wall_s / 100  # the first of 128 batches


def test_cpu_copier_has_no_idle_wait(quiet_platform, rng):
    r = migrate_pages(np.full(1000, 1), CpuCopier(), quiet_platform, batch_limit=512, rng=rng)
    assert r.idle_s == 0.0 and r.dma_copies == 0


def test_one_tlb_flush_per_batch(quiet_platform, rng):
    small = migrate_pages(np.full(1024, 1), CpuCopier(), quiet_platform, batch_limit=32, rng=rng)
    big = migrate_pages(np.full(1024, 1), CpuCopier(), quiet_platform, batch_limit=1024, rng=rng)
    flush = quiet_platform.cpu.tlb_flush_us * 1e-6
    assert small.flush_s == pytest.approx(32 * flush)
    assert big.flush_s == pytest.approx(flush)


def test_unmap_cost_grows_with_ptes_not_for_pmd(quiet_platform, rng):
    """1M folios (256 PTEs) cost more CPU to unmap than 2M folios (one PMD), per byte."""
    one_m = migrate_pages(
        np.full(512, 256), DmaCopier(8), quiet_platform, batch_limit=1 << 18, rng=rng
    )
    two_m = migrate_pages(
        np.full(256, 512), DmaCopier(8), quiet_platform, batch_limit=1 << 18, rng=rng
    )
    assert one_m.unmap_s > 50 * two_m.unmap_s


def test_batch_copy_delays_the_first_folio(quiet_platform, rng):
    pages = np.full(4096, 1)
    vanilla = migrate_pages(
        pages, CpuCopier(), quiet_platform, batch_limit=4096, rng=rng, batch_copy=False
    )
    batched = migrate_pages(pages, CpuCopier(), quiet_platform, batch_limit=4096, rng=rng)
    assert vanilla.wall_s == pytest.approx(batched.wall_s)
    assert vanilla.first_folio_s < batched.first_folio_s


def test_bad_arguments(quiet_platform, rng):
    with pytest.raises(ValueError, match="batch_limit"):
        migrate_pages(np.ones(3, int), None, quiet_platform, batch_limit=0, rng=rng)
    with pytest.raises(ValueError, match="folio_pages"):
        migrate_pages(np.zeros(3, int), None, quiet_platform, batch_limit=4, rng=rng)


@given(
    orders=st.lists(st.integers(0, 9), min_size=1, max_size=200),
    limit=st.sampled_from([1, 32, 512, 4096, 1 << 18]),
    channels=st.integers(1, 16),
    fail=st.sampled_from([0.0, 0.1, 1.0]),
)
def test_every_page_migrates_and_costs_are_consistent(
    quiet_platform, orders, limit, channels, fail
):
    pages = np.left_shift(1, np.array(orders))
    rng = np.random.default_rng(0)
    r = migrate_pages(
        pages, DmaCopier(channels, fail_rate=fail), quiet_platform, batch_limit=limit, rng=rng
    )
    assert r.nr_pages == pages.sum() and r.nr_folios == len(pages)
    assert r.dma_copies + r.fallbacks == len(pages)
    assert min(r.unmap_s, r.flush_s, r.copy_s, r.move_s, r.idle_s) >= 0
    if fail == 0.0:
        assert r.fallbacks == 0 and r.fallback_s == 0 and r.idle_s > 0
    if fail == 1.0:  # v4: every batch aborted before it is issued, copied by the CPU
        assert r.dma_copies == 0 and r.idle_s == 0 and r.fallbacks == len(pages)
