"""Small cases of the engine core with expectations derived by hand (numbers in the comments),
on platforms with round parameter values, so that each test holds for the mechanism and not for
whatever the calibration fitted. Each test names the kernel behaviour it pins; these are the
tests that reject the wrong engines mutation testing found (benchmarks/mutation.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest

# every test on both engines of the allocation loop (tests/engines.py)
from engines import loop_engine, pytest_generate_tests  # noqa: E402, F401

from migsim.cost.copiers import CpuCopier, DmaCopier, MtCopier
from migsim.kernel.migrate import migrate_pages

US = 1e-6
PAGE = 4096


@pytest.fixture(scope="module")
def round_platform(request):
    """The committed platform with round copy, DMA and CPU costs (no noise):
    CPU copy 1 us per 4 KiB page (4.096 GB/s) and no fixed copy cost; folio work 1 us + 0.25 us
    per PTE, half in unmap; TLB flush 5 us. dcbm: call setup 10 us, per channel request 2,
    sg-table map 1, issue 0.5, terminate 0.5 us, per folio prep 1 us; PTDMA engine 1 GB/s
    shared by 2 channels, one channel per device, 1 us restart per further descriptor, 0.5 us
    interrupt per descriptor, no head ramp, no per-descriptor prep, no per-folio dma_map_page
    cost (v2, v6) and no segment merging (one descriptor per folio, as with the IOMMU in
    passthrough), the interconnect a hard cap; wake-up 20 us of which the completion
    interrupt is 5 us. mtcopy: 10 us to queue a thread, 4.096 GB/s per thread, 8.192 GB/s per
    CCD of 8 cores, 16.384 GB/s interconnect."""
    base = request.getfixturevalue("quiet_platform")
    return base.replace(
        copy__cpu_copy_gbps=4.096,
        copy__cpu_copy_fixed_us=0.0,
        cpu__folio_fixed_us=1.0,
        cpu__pte_us=0.25,
        cpu__unmap_share_frac=0.5,
        cpu__tlb_flush_us=5.0,
        dma__prep_us=1.0,
        dma__call_setup_us=10.0,
        dma__chan_request_us=2.0,
        dma__sgt_map_us=1.0,
        dma__issue_us=0.5,
        dma__terminate_us=0.5,
        dma__desc_restart_us=1.0,
        dma__desc_irq_us=0.5,
        dma__chans_per_device_count=1,
        dma__ramp_kb=0.0,
        dma__ramp_gbps=1.0,
        dma__desc_prep_us=0.0,
        dma__max_seg_kb=0.0,
        dma__chans_per_engine_count=2,
        dma__engine_gbps=1.0,
        dma__fabric_gbps=1000.0,
        dma__fabric_load_switch=0,
        dma__map_page_us=0.0,
        dma__irq_wakeup_us=20.0,
        sched__completion_irq_us=5.0,
        mt__thread_start_us=10.0,
        mt__thread_copy_gbps=4.096,
        mt__ccd_gbps=8.192,
        mt__mt_cap_gbps=16.384,
        mt__ccds_count=8,
        mt__cores_per_ccd_count=8,
    )


def _pages(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.array([n]), np.array([n * PAGE], dtype=float)


# ------------------------------------------------------------------ copiers (dcbm, mtcopy)


def test_dma_busiest_channel_copies_ceil_of_the_share(round_platform):
    """3 folios on 2 channels: one channel gets 2 descriptors (ceil(3/2)); both channels sit
    on one engine, so each moves 4096 B at 0.5 GB/s = 8.192 us, and the second descriptor
    waits 1 us for its restart: 17.384 us. 1 folio on 2 channels: one channel, alone on its
    engine, 4.096 us."""
    engine_s, active = DmaCopier(channels=2).engine_seconds(*_pages(3), round_platform)
    assert active[0] == 2
    assert engine_s[0] == pytest.approx(17.384 * US, rel=1e-12)
    engine_1, active_1 = DmaCopier(channels=2).engine_seconds(*_pages(1), round_platform)
    assert active_1[0] == 1 and engine_1[0] == pytest.approx(4.096 * US, rel=1e-12)


def test_dma_engines_fill_in_order_and_the_fabric_caps_the_batch(round_platform):
    """8 folios on 4 channels: two engines of 2 channels, each channel at 0.5 GB/s with 2
    descriptors: 2 x 8.192 + 1 = 17.384 us. An interconnect at 2 GB/s needs 16.384 us for the
    32 KiB (the engines bind); at 1 GB/s it needs 32.768 us and binds."""
    n, b = _pages(8)
    fast = round_platform.replace(dma__fabric_gbps=2.0)
    assert DmaCopier(channels=4).engine_seconds(n, b, fast)[0][0] == pytest.approx(
        17.384 * US, rel=1e-12
    )
    slow = round_platform.replace(dma__fabric_gbps=1.0)
    assert DmaCopier(channels=4).engine_seconds(n, b, slow)[0][0] == pytest.approx(
        32.768 * US, rel=1e-12
    )


def _loaded_us(stream_us: float, gap_us: float, nr_bytes: float, fabric_gbps: float) -> float:
    """Engine time (us) of a batch that streams for stream_us and idles gap_us between
    descriptors when unloaded, all of it reading across an interconnect of fabric_gbps
    (dma.fabric_load_switch 1): the streaming stretches by 1 / (1 - rho), rho = B / (T F), so
    T = gap + stream / (1 - B / (T F)), i.e. T^2 - (stream + gap + B/F) T + gap B/F = 0, the
    larger root (the other lies below gap)."""
    bf = nr_bytes / (fabric_gbps * 1e3)  # us
    b = stream_us + gap_us + bf
    return (b + (b * b - 4.0 * gap_us * bf) ** 0.5) / 2.0


def test_dma_fabric_load_stretches_the_streaming(round_platform):
    """dma.fabric_load_switch 1, 8 folios on 4 channels, no restarts: two engines of 2
    channels, each channel at 0.5 GB/s with 2 descriptors, 16.384 us unloaded. Without gaps
    the engines' and the interconnect's rates combine serially, T = stream + B / F: at
    2 GB/s the 32 KiB add 16.384 us (32.768 us, rho = 0.5; the hard cap gave 17.384 with its
    restart), at 1 GB/s 32.768 us (49.152 us)."""
    n, b = _pages(8)
    p = round_platform.replace(dma__fabric_load_switch=1, dma__desc_restart_us=0.0)
    for fabric, want in ((2.0, 32.768), (1.0, 49.152)):
        got = DmaCopier(channels=4).engine_seconds(n, b, p.replace(dma__fabric_gbps=fabric))
        assert got[0][0] == pytest.approx(want * US, rel=1e-12), fabric


def test_dma_fabric_load_spares_the_restarts(round_platform):
    """dma.fabric_load_switch 1, 2 folios on 1 channel at 4.096 GB/s: 2 us of streaming and
    one 1 us restart. At 3.2768 GB/s the 8 KiB take T = 5 us: rho = 8192 B / (5 us x
    3.2768 GB/s) = 0.5 and 1 + 2 / (1 - 0.5) = 5. Had the restart loaded the interconnect like
    the streaming, 3 + 2.5 = 5.5 us; with the hard cap (switch 0), max(3, 2.5) = 3 us."""
    p = round_platform.replace(dma__engine_gbps=4.096, dma__fabric_gbps=3.2768)
    on = p.replace(dma__fabric_load_switch=1)
    assert DmaCopier(channels=1).engine_seconds(*_pages(2), on)[0][0] == pytest.approx(
        5.0 * US, rel=1e-12
    )
    assert DmaCopier(channels=1).engine_seconds(*_pages(2), p)[0][0] == pytest.approx(
        3.0 * US, rel=1e-12
    )
    # the closed form of the docstring, with the restarts of a 3-folio 2-channel batch
    on = round_platform.replace(dma__fabric_load_switch=1)
    got = DmaCopier(channels=2).engine_seconds(*_pages(3), on)[0][0]
    assert got == pytest.approx(_loaded_us(16.384, 1.0, 3 * PAGE, 1000.0) * US, rel=1e-12)
    assert 17.384 * US < got < (17.384 + 0.012288) * US  # between unloaded and serial


def test_dma_descriptor_head_ramp(round_platform):
    """A 16 KiB descriptor with an 8 KiB head at 0.4096 GB/s (20 us), the remaining 8 KiB at
    the engine's 1 GB/s (8.192 us): 28.192 us."""
    p = round_platform.replace(dma__ramp_kb=8.0, dma__ramp_gbps=0.4096)
    n, b = np.array([1]), np.array([16384.0])
    assert DmaCopier(channels=1).engine_seconds(n, b, p)[0][0] == pytest.approx(
        28.192 * US, rel=1e-12
    )


@pytest.mark.parametrize(
    "rfc,channels,descs,engine_us,cpu_us",
    [
        # v4, 16 KiB segments: 10 pages -> segments of 4, 4, 2 pages; 40.96 KiB at 1 GB/s
        # (alone on its engine) = 40.96 us + 2 restarts; CPU 10 x 1 prep + 3 x 0.25
        # descriptor prep + (2 + 1 + 0.5 + 0.5) channel work + 10 call setup
        ("v4", 1, 3, 40.96 + 2, 10 + 0.75 + 4 + 10),
        # two channels of 5 folios each, 2 segments (4 + 1) each; the channels share one
        # engine (0.5 GB/s each): 20.48 KiB in 40.96 us + 1 restart
        ("v4", 2, 4, 40.96 + 1, 10 + 1.0 + 2 * 4 + 10),
        # v2 maps folio by folio: 10 descriptors, 9 restarts; request and issue per channel
        ("v2", 1, 10, 40.96 + 9, 10 + 2.5 + 2.5 + 10),
    ],
)
def test_dma_v4_descriptors_are_the_mapped_segments(round_platform, rng, rfc, channels, descs,
                                                    engine_us, cpu_us):  # fmt: skip
    """dma_map_sgtable through the IOMMU merges a channel's 4 KiB entries into segments of
    max_seg_kb (here 16 KiB), one descriptor each (v4 for_each_sgtable_dma_sg); every
    descriptor costs 0.25 us to prepare and submit and raises one 0.5 us interrupt."""
    p = round_platform.replace(dma__max_seg_kb=16.0, dma__desc_prep_us=0.25)
    d = DmaCopier(channels=channels, rfc=rfc)
    n, b = _pages(10)
    assert d.descriptors(n, b, p)[0][0] == descs
    assert d.engine_seconds(n, b, p)[0][0] == pytest.approx(engine_us * US, rel=1e-12)
    c = d.copy_batches(n, b, p, rng)
    assert c.cpu_s[0] == pytest.approx(cpu_us * US, rel=1e-12)
    assert c.irq_s[0] == pytest.approx(descs * 0.5 * US, rel=1e-12)


def test_dma_a_folio_larger_than_a_segment_is_one_descriptor(round_platform):
    """__finalise_sg never splits an entry: a 32 KiB folio with 16 KiB segments is one
    descriptor, and two such folios two (they do not merge: 32 > 16 - 32)."""
    p = round_platform.replace(dma__max_seg_kb=16.0)
    n, b = np.array([1, 2]), np.array([32768.0, 65536.0])
    np.testing.assert_array_equal(DmaCopier(channels=1).descriptors(n, b, p)[0], [1, 2])


@pytest.mark.parametrize(
    "rfc,cpu_us",
    [
        ("v4", 3 + 2 * (2 + 1 + 0.5 + 0.5) + 10),  # request, sg table, issue, terminate
        ("v2", 3 + 2 * (2 + 0.5) + 10),  # request and issue per channel
    ],
)
def test_dma_cpu_prepares_and_sleeps_for_engine_and_wakeup(round_platform, rng, rfc, cpu_us):
    """3 folios on 2 channels: the CPU does the driver's work (per folio prep 1 us, per
    channel its version's calls, one call setup of 10 us), then sleeps for the engine
    (17.384 us) plus the wake-up latency (20 us), of which all but the completion interrupt
    (20 - 5 = 15 us) is the idle-state exit; each descriptor's interrupt costs 0.5 us on the
    CPU the MSI targets."""
    c = DmaCopier(channels=2, rfc=rfc).copy_batches(*_pages(3), round_platform, rng)
    assert c.cpu_s[0] == pytest.approx(cpu_us * US, rel=1e-12)
    assert c.wait_s[0] == pytest.approx(37.384 * US, rel=1e-12)
    assert c.wall_s[0] == pytest.approx((cpu_us + 37.384) * US, rel=1e-12)
    assert c.wake_s[0] == pytest.approx(15.0 * US, rel=1e-12)
    assert c.irq_s[0] == pytest.approx(1.5 * US, rel=1e-12)
    assert c.offloaded[0] == 3 and c.failed[0] == 0 and c.other_cpu_s[0] == 0.0


def test_dma_v6_uses_one_device_group_and_holds_its_channels(round_platform, rng):
    """v6 claims the channels of one DMA device group (here 2 per group; 4 asked) and does not
    request, terminate or release them per call: 3 folios x 1 + 2 x (sg map 1 + issue 0.5)
    + 10 = 16 us."""
    p = round_platform.replace(dma__chans_per_device_count=2)
    d = DmaCopier(channels=4, rfc="v6")
    assert d.used_channels(np.array([3]), p)[0] == 2
    assert d.copy_batches(*_pages(3), p, rng).cpu_s[0] == pytest.approx(16.0 * US, rel=1e-12)


def test_dma_offloads_a_batch_of_exactly_the_threshold(round_platform, rng):
    """should_batch-style policy: a batch of min_batch_bytes or more is offloaded, a smaller
    one is copied by the CPU (3 pages: 3 us of folio_copy, no sleep)."""
    n, b = _pages(3)
    at = DmaCopier(channels=2, min_batch_bytes=3 * PAGE).copy_batches(n, b, round_platform, rng)
    above = DmaCopier(channels=2, min_batch_bytes=3 * PAGE + 1).copy_batches(
        n, b, round_platform, rng
    )
    assert at.offloaded[0] == 3 and at.cpu_s[0] == pytest.approx(21.0 * US, rel=1e-12)
    assert above.offloaded[0] == 0 and above.wait_s[0] == 0.0 and above.wake_s[0] == 0.0
    assert above.cpu_s[0] == pytest.approx(3.0 * US, rel=1e-12) and above.irq_s[0] == 0.0


def test_dma_batch_and_folio_fallback(round_platform):
    """Every descriptor fails (fail_rate 1). v4 ("batch"): the batch is aborted before it is
    issued, no engine time, no sleep, no interrupts; all 3 folios fall back. v6 ("folio"): the
    engine runs and the CPU sleeps, then the 3 failed folios fall back."""
    rng = np.random.default_rng(0)
    v4 = DmaCopier(channels=2, fail_rate=1.0).copy_batches(*_pages(3), round_platform, rng)
    assert v4.failed[0] == 3 and v4.offloaded[0] == 0
    assert v4.wait_s[0] == 0.0 and v4.wake_s[0] == 0.0 and v4.irq_s[0] == 0.0
    v6 = DmaCopier(channels=2, fail_rate=1.0, fallback="folio").copy_batches(
        *_pages(3), round_platform, rng
    )
    assert v6.failed[0] == 3 and v6.wait_s[0] == pytest.approx(37.384 * US, rel=1e-12)


def test_dma_an_empty_batch_costs_nothing_on_the_cpu(round_platform, rng):
    c = DmaCopier(channels=2).copy_batches(np.array([0]), np.array([0.0]), round_platform, rng)
    assert c.cpu_s[0] == 0.0 and c.wait_s[0] == 0.0 and c.offloaded[0] == 0


def test_mtcopy_rate_per_placement(round_platform):
    """4 threads spread one per CCD: 4 x 4.096 = 16.384 GB/s of streams, in series with the
    16.384 GB/s interconnect: 16.384^2 / 32.768 = 8.192 GB/s. Filling one CCD: the CCD's link
    caps the streams at 8.192, 8.192 x 16.384 / 24.576 = 16.384 / 3 GB/s."""
    from migsim.cost.copiers import mt_copy_gbps, thread_ccds

    assert thread_ccds(4, "spread", round_platform).tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    assert thread_ccds(10, "fill-ccd", round_platform).tolist() == [8, 2, 0, 0, 0, 0, 0, 0]
    assert mt_copy_gbps(np.array([4]), "spread", round_platform)[0] == pytest.approx(8.192)
    assert mt_copy_gbps(np.array([4]), "fill-ccd", round_platform)[0] == pytest.approx(16.384 / 3)


def test_mtcopy_threads_split_whole_folios(round_platform, rng):
    """10 folios of 4 KiB on 4 spread threads: 8.192 GB/s shared, 2.048 GB/s (2 us per page)
    each; the busiest thread gets ceil(10/4) = 3 folios (6 us, plus 3 x 0.5 us fixed cost);
    the CPU queues 4 work items (40 us) and sleeps 7.5 us plus the kworkers' idle exit
    (irq_wakeup 20 less completion_irq 5: 15 us) plus its own wake-up (20 us); all threads
    together copy 10 folios: 10 x 0.5 + 20 = 25 us of other CPUs' time. One folio: one thread,
    4.096 x 16.384 / 20.48 = 3.2768 GB/s: 1.25 + 0.5 + 15 + 20 us."""
    p = round_platform.replace(copy__cpu_copy_fixed_us=0.5)
    c = MtCopier(threads=4).copy_batches(*_pages(10), p, rng)
    assert c.cpu_s[0] == pytest.approx(40.0 * US, rel=1e-12)
    assert c.wait_s[0] == pytest.approx(42.5 * US, rel=1e-12)
    assert c.wall_s[0] == pytest.approx(82.5 * US, rel=1e-12)
    assert c.other_cpu_s[0] == pytest.approx(25.0 * US, rel=1e-12)
    one = MtCopier(threads=4).copy_batches(*_pages(1), p, rng)
    assert one.cpu_s[0] == pytest.approx(10.0 * US, rel=1e-12)
    assert one.wait_s[0] == pytest.approx(36.75 * US, rel=1e-12)


def test_mt_thread_count_bounds(round_platform, rng):
    m = round_platform.mt.max_threads_count
    MtCopier(threads=m).copy_batches(*_pages(1), round_platform, rng)  # the maximum is allowed
    with pytest.raises(ValueError, match="threads"):
        MtCopier(threads=m + 1).copy_batches(*_pages(1), round_platform, rng)
    for bad in (0, 2.0):
        with pytest.raises(ValueError, match="threads"):
            MtCopier(threads=bad)


def test_dma_argument_bounds(round_platform):
    m = round_platform.dma.max_channels_count
    DmaCopier(channels=m).engine_seconds(*_pages(1), round_platform)  # the maximum is allowed
    with pytest.raises(ValueError, match="channels"):
        DmaCopier(channels=m + 1).engine_seconds(*_pages(1), round_platform)
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="channels"):
            DmaCopier(channels=bad)
    for ok in ({"fail_rate": 0.0}, {"fail_rate": 1.0}, {"min_batch_bytes": 0}):
        DmaCopier(**ok)
    for kwargs, key in (({"fail_rate": -0.1}, "fail_rate"), ({"min_batch_bytes": -1}, "min_b")):
        with pytest.raises(ValueError, match=key):
            DmaCopier(**kwargs)


# ------------------------------------------------------------------ migrate_pages()


def test_migrate_pages_phases_of_one_batch(round_platform, rng):
    """4 folios of one page, one batch: folio work 4 x (1 + 0.25) = 5 us, half in unmap and
    half in move; one TLB flush of 5 us; CPU copy 4 x 1 us."""
    r = migrate_pages(
        np.ones(4, dtype=np.int64), CpuCopier(), round_platform, batch_limit=512, rng=rng
    )
    assert (r.nr_batches, r.nr_folios, r.nr_pages) == (1, 4, 4)
    assert r.unmap_s == pytest.approx(2.5 * US, rel=1e-12)
    assert r.move_s == pytest.approx(2.5 * US, rel=1e-12)
    assert r.flush_s == pytest.approx(5.0 * US, rel=1e-12)
    assert r.copy_s == pytest.approx(4.0 * US, rel=1e-12)
    assert r.wall_s == pytest.approx(14.0 * US, rel=1e-12)
    assert r.sys_s == pytest.approx(14.0 * US, rel=1e-12) and r.idle_s == 0.0
    d = r.as_dict()  # the row the CLI prints
    assert d["nr_pages"] == 4 and d["flush_s"] == pytest.approx(5.0 * US, rel=1e-12)


def test_first_folio_latency_batched_and_vanilla(round_platform, rng):
    """Batch copy (the RFC): the first folio is mapped again after unmap (2.5) + flush (5) +
    the whole batch copy (4) + its own move (2.5 / 4): 12.125 us. Vanilla order: copy and move
    one folio at a time after the flush: 2.5 + 5 + (4 + 2.5) / 4 = 9.125 us."""
    kw = dict(batch_limit=512, rng=rng)
    folios = np.ones(4, dtype=np.int64)
    batched = migrate_pages(folios, CpuCopier(), round_platform, **kw)
    vanilla = migrate_pages(folios, CpuCopier(), round_platform, batch_copy=False, **kw)
    assert batched.first_folio_s == pytest.approx(12.125 * US, rel=1e-12)
    assert vanilla.first_folio_s == pytest.approx(9.125 * US, rel=1e-12)
    assert vanilla.wall_s == batched.wall_s  # the order changes latency, not the work
    # migrate_trials() (the throughput experiment's trials) copies in batches by default
    from migsim.kernel.migrate import batch_totals, migrate_trials

    trial = migrate_trials(batch_totals(folios, 512), 4, CpuCopier(), round_platform, rng, [1.0])
    assert trial[0].first_folio_s == pytest.approx(12.125 * US, rel=1e-12)


def test_migrate_pages_batches_and_flushes(round_platform, rng):
    """600 one-page folios with NR_MAX_BATCHED_MIGRATION 512: batches of 512 and 88, one TLB
    flush each (10 us); a 2M folio (PMD-mapped: one entry) larger than a limit of 256 pages
    gets a batch of its own."""
    r = migrate_pages(np.ones(600, dtype=np.int64), None, round_platform, batch_limit=512, rng=rng)
    assert r.nr_batches == 2 and r.flush_s == pytest.approx(10.0 * US, rel=1e-12)
    big = migrate_pages(np.array([1, 512, 1]), None, round_platform, batch_limit=256, rng=rng)
    assert big.nr_batches == 3 and big.nr_pages == 514
    # folio work: 3 folios x 1 us + PTEs (1 + 1 + 1) x 0.25 us = 3.75 us
    assert big.unmap_s + big.move_s == pytest.approx(3.75 * US, rel=1e-12)


def test_failed_offloads_are_copied_by_the_cpu_in_the_move_phase(round_platform):
    """fail_rate 1: every descriptor fails; each of the 4 folios is then copied by the CPU in
    the move phase (1 us each), after the engine time was spent anyway."""
    rng = np.random.default_rng(0)
    r = migrate_pages(
        np.ones(4, dtype=np.int64), DmaCopier(channels=1, fail_rate=1.0), round_platform,
        batch_limit=512, rng=rng,
    )  # fmt: skip
    assert r.fallbacks == 4 and r.dma_copies == 0
    assert r.fallback_s == pytest.approx(4.0 * US, rel=1e-12)
    assert r.move_s == pytest.approx((2.5 + 4.0) * US, rel=1e-12)


# ------------------------------------------------------------------ zone: pcp, watermarks


def test_pcp_bulk_free_starts_when_count_reaches_high():
    """free_unref_page_commit(): `if (pcp->count >= high) free_pcppages_bulk(...)`. With
    high 4 and batch 1, nr_pcp_free() = min(max(free_count 4, batch 1), high - batch 3) = 3:
    the 4th free sends the 3 oldest pages to the buddy lists and one stays."""
    from migsim.kernel.zone import PerCpuPages

    pcp = PerCpuPages(high=4, batch=1)
    for pfn in range(3):
        assert pcp.add(np.array([pfn])) == []
    assert pcp.count == 3
    bulk = pcp.add(np.array([3]))
    assert len(bulk) == 1
    assert np.concatenate([p for p, _ in bulk[0]]).tolist() == [0, 1, 2]
    assert pcp.count == 1 and pcp.pfns().tolist() == [3]


def test_pcp_bulk_free_keeps_at_least_a_batch():
    """nr_pcp_free() clamps to [batch, high - batch]: high 8, batch 2, 8 frees in one call
    (free_count 8) frees min(8, 6) = 6 and keeps 2; with high < batch every free goes on."""
    from migsim.kernel.zone import PerCpuPages

    pcp = PerCpuPages(high=8, batch=2)
    bulk = pcp.add(np.arange(8))
    assert sum(len(p) for part in bulk for p, _ in part) == 6 and pcp.count == 2
    assert pcp.pfns().tolist() == [6, 7]
    tiny = PerCpuPages(high=1, batch=2)
    assert tiny.nr_pcp_free() == 1


def test_watermark_check_is_strictly_above_the_mark():
    """__zone_watermark_ok(): `if (free_pages <= min) return false`, with free_pages less
    (1 << order) - 1 for an order-`order` request."""
    from migsim.kernel.zone import Zone

    z = Zone(4 * 512)
    n = z.nr_free
    assert z.zone_watermark_ok(0, n - 1) and not z.zone_watermark_ok(0, n)
    assert z.zone_watermark_ok(1, n - 2) and not z.zone_watermark_ok(1, n - 1)
    assert z.zone_watermark_ok(9, n - 512) and not z.zone_watermark_ok(9, n - 511)


def test_kernel_watermarks_of_a_4_gib_zone():
    """__setup_per_zone_wmarks() for 4 GiB (1048576 pages, 4194304 KiB): min_free_kbytes =
    sqrt(16 x 4194304) = 8192 KiB = 2048 pages; gap = max(2048 / 4, 1048576 x 10 / 10000)
    = 1048; low = 3096, high = 4144. zone_batchsize(): min(1048576 >> 10, 256) / 4 = 64,
    rounded to 2^floor(log2(96)) - 1 = 63; pcp high = max(3096 / 64 CPUs, 4 x 63) = 252."""
    from migsim.kernel.zone import kernel_batchsize, kernel_pcp_high, kernel_watermarks

    assert kernel_watermarks(1 << 20) == (2048, 3096, 4144)
    assert kernel_batchsize(1 << 20) == 63
    assert kernel_pcp_high(1 << 20, 64) == 252
    assert kernel_pcp_high(1 << 20, 4) == 774  # 3096 // 4


# ------------------------------------------------------------------ zone: free-list counts


def _one_page_in_every_8th_block(nr_blocks: int):
    """A zone of `nr_blocks` pageblocks, all free but the first frame of every 8th block."""
    from migsim.kernel.zone import ALLOCATED, Zone

    z = Zone(nr_blocks * 512)
    z.state[:: 8 * 512] = ALLOCATED
    z.recount()
    return z


@pytest.mark.parametrize("nr_blocks", [64, 16384 + 64])
def test_free_area_counts_by_hand(nr_blocks):
    """Each 8th pageblock holds one allocated frame at its start: its 511 free frames are one
    free block of each order 0..8 (1 + 2 + ... + 256). The other pageblocks are free; those
    paired with a broken one are order-9 blocks, the other pairs order-10 blocks. The large
    zone (32 GiB + 128 MiB: 16448 pageblocks) has every chunk of the recount more than once
    and the recount must cover them all."""
    z = _one_page_in_every_8th_block(nr_blocks)
    broken = nr_blocks // 8
    counts = z.free_area_counts()
    assert counts[:9].tolist() == [broken] * 9
    assert counts[9] == broken  # the partner of each broken block
    assert counts[10] == nr_blocks // 2 - broken
    assert z.free_blocks_total() == 11 * broken + nr_blocks // 2 - broken - broken
    z.check()


@pytest.mark.parametrize("nr_blocks", [64, 16384 + 64])
def test_free_area_counts_after_a_bulk_free_by_hand(nr_blocks):
    """The same layout reached through the buddy allocator instead of recount(): every frame
    allocated, then all but the first frame of every 8th pageblock freed in one
    free_to_buddy() call. Every pageblock is then dirty, so free_area_counts() recounts them
    all in _refresh_lo's chunks (RECOUNT_CHUNK_BLOCKS = 8192 pageblocks; the large zone has
    three), and must find the counts of test_free_area_counts_by_hand."""
    from migsim.kernel.zone import ALLOCATED, PCP, Zone

    z = Zone(nr_blocks * 512)
    z.state[:] = ALLOCATED
    z.recount()
    keep = np.zeros(nr_blocks * 512, dtype=bool)
    keep[:: 8 * 512] = True
    pfns = np.flatnonzero(~keep)
    z.state[pfns] = PCP  # as free_block() hands them over
    z.free_to_buddy(pfns)
    broken = nr_blocks // 8
    counts = z.free_area_counts()
    assert counts[:9].tolist() == [broken] * 9
    assert counts[9] == broken
    assert counts[10] == nr_blocks // 2 - broken
    z.check()


# ------------------------------------------------------------------ compaction


def _compactor(z):
    from migsim.kernel.compaction import Compactor

    return Compactor(z)


def _zone_with_free_runs(runs: list[int], nr_blocks: int = 32):
    """A zone of `nr_blocks` pageblocks, all LRU pages but free runs of the given sizes (each a
    naturally aligned buddy block), one run per pageblock from block 0 up."""
    from migsim.kernel.zone import FREE, LRU, Zone

    z = Zone(nr_blocks * 512)
    z.state[:] = LRU
    for b, size in enumerate(runs):
        z.state[b * 512 : b * 512 + size] = FREE
    z.recount()
    return z


def test_fragmentation_index_and_the_extfrag_threshold():
    """fragmentation_index() = 1000 - (1000 + free_pages * 1000 / requested) / free_blocks
    (integer division). Ten free blocks holding 2048 pages, order 9 (512): 1000 - 5000 / 10
    = 500: at sysctl_extfrag_threshold 500 compaction is not suitable (the failure is lack of
    memory); ten blocks more of one page each: 1000 - 5020 / 20 = 749 > 500, suitable."""
    runs = [256] * 7 + [128, 64, 64]
    z = _zone_with_free_runs(runs)
    c = _compactor(z)
    assert z.nr_free == 2048 and z.free_blocks_total() == 10
    assert c.fragmentation_index(9) == 500
    assert not c.compaction_suitable(9)
    z2 = _zone_with_free_runs(runs + [1] * 10)
    c2 = _compactor(z2)
    assert c2.fragmentation_index(9) == 1000 - 5019 // 20  # 2058 pages: 1000 + 4019
    assert c2.compaction_suitable(9)
    # a free order-9 block: -1000 (the allocation would succeed), compaction not needed
    z3 = _zone_with_free_runs([512] + [256] * 7)
    assert _compactor(z3).fragmentation_index(9) == -1000


def test_compaction_suitable_needs_free_pages_above_watermark_plus_gap():
    """__compaction_suitable(): order-0 watermark check of low (costly orders) plus
    compact_gap(order) = 2 << order; strictly above."""
    z = _zone_with_free_runs([1] * 32)
    c = _compactor(z)
    mark = z.wmark_low + (2 << 9)
    assert z.nr_free <= mark and not c.compaction_suitable(9)
    # non-costly order 3: min watermark plus 16
    assert c.compaction_suitable(3) == (z.nr_free > z.wmark_min + 16)


def test_only_sync_compaction_defers():
    """try_to_compact_pages(): a failed (COMPACT_COMPLETE) run defers compaction only when its
    priority is not async; defer_compaction() then zeroes compact_considered and raises
    compact_defer_shift; the next attempt is deferred until 1 << shift have been considered.
    Zone: every pageblock has an unmovable page at its start, so no order-9 block can form."""
    from migsim.kernel.compaction import (
        COMPACT_COMPLETE,
        COMPACT_DEFERRED,
        COMPACT_PRIO_ASYNC,
        COMPACT_PRIO_SYNC_LIGHT,
    )
    from migsim.kernel.zone import FREE, KERNEL, LRU, Zone

    z = Zone(32 * 512)
    z.state[:] = LRU
    z.state[1::2] = FREE
    z.state[::512] = KERNEL
    z.recount()
    c = _compactor(z)
    assert c.try_to_compact_pages(9, COMPACT_PRIO_ASYNC) == (COMPACT_COMPLETE, None)
    assert z.compact_defer_shift == 0  # async failure: not deferred
    assert c.try_to_compact_pages(9, COMPACT_PRIO_SYNC_LIGHT) == (COMPACT_COMPLETE, None)
    assert (z.compact_defer_shift, z.compact_considered) == (1, 0)
    # shift 1: the next attempt (considered 1 < 2) is deferred, the one after runs
    assert c.try_to_compact_pages(9, COMPACT_PRIO_SYNC_LIGHT) == (COMPACT_DEFERRED, None)
    assert c.try_to_compact_pages(9, COMPACT_PRIO_SYNC_LIGHT) == (COMPACT_COMPLETE, None)
    assert (z.compact_defer_shift, z.compact_considered) == (2, 0)
    # an order below compact_order_failed is never deferred (it is 0 here: not below)
    assert z.compact_order_failed == 0


def test_async_direct_compaction_takes_only_movable_source_blocks():
    """suitable_migration_source(): async direct compaction skips a pageblock whose
    migratetype is not the request's (MOVABLE) and records the skip in the async cached
    migrate pfn (update_cached_migrate(cc, block_end_pfn) -> pageblock_end_pfn(512) = 1024);
    sync-light and non-direct (kcompactd, compact_memory) compaction take it. Either way the
    first COMPACT_CLUSTER_MAX (32) LRU pages of the block are isolated."""
    from migsim.kernel.compaction import MIGRATE_ASYNC, MIGRATE_SYNC_LIGHT, CompactControl
    from migsim.kernel.zone import LRU, MIGRATE_UNMOVABLE, Zone

    def isolated(mode: int, direct: bool):
        z = Zone(8 * 512)
        z.state[: 4 * 512] = LRU
        z.recount()
        z.migratetype[0] = MIGRATE_UNMOVABLE
        cc = CompactControl(order=9, mode=mode, direct_compaction=direct, free_pfn=7 * 512)
        _compactor(z).isolate_migratepages(cc)
        return np.concatenate(cc.migratepages).tolist(), z.compact_cached_migrate_pfn

    pfns, cached = isolated(MIGRATE_ASYNC, True)
    assert sorted(pfns) == list(range(512, 544)) and cached == [1024, 0]
    for mode, direct in ((MIGRATE_SYNC_LIGHT, True), (MIGRATE_ASYNC, False)):
        pfns, cached = isolated(mode, direct)
        assert sorted(pfns) == list(range(32)) and cached == [0, 0]


def test_free_scanner_marks_a_fully_scanned_block_skip():
    """isolate_freepages(): from the top pageblock down, free pages are isolated until there
    are as many as pages to migrate (150). Block 7 has 100 free pages: scanned whole (512
    pfns), so update_pageblock_skip() sets its skip bit and moves compact_cached_free_pfn to
    the block below (3072); block 6 has 100 free pages from offset 200: the scan takes 50 and
    stops at pfn 3072 + 250 = 3322 (250 pfns), leaving no skip bit."""
    from migsim.kernel.compaction import CompactControl
    from migsim.kernel.zone import FREE, LRU, Zone

    z = Zone(8 * 512)
    z.state[:] = LRU
    z.state[7 * 512 : 7 * 512 + 100] = FREE
    z.state[6 * 512 + 200 : 6 * 512 + 300] = FREE
    z.recount()
    cc = CompactControl(order=9, free_pfn=7 * 512, nr_migratepages=150)
    _compactor(z).isolate_freepages(cc)
    got = np.concatenate(cc.freepages)
    assert cc.nr_freepages == 150
    assert sorted(got.tolist()) == list(range(3272, 3322)) + list(range(3584, 3684))
    assert z.skip.nonzero()[0].tolist() == [7]
    assert z.compact_cached_free_pfn == 3072
    assert cc.free_pfn == 3322 and cc.total_free_scanned == 512 + 250
    # the isolated targets left the buddy lists
    assert z.nr_free == 200 - 150 and z.nr_free_pb[6:8].tolist() == [50, 0]


def test_costing_of_a_logged_run_by_hand(round_platform):
    """cost_log() on a hand-made log of two migrate_pages() calls of 32 order-0 pages, on the
    CPU, alone: every counter costs its unit (migrate scan 0.01, free scan 0.02, folio
    isolation 1, free isolate 0.5, buddy free 0.25, slow path 5 us; the other compaction
    costs, the zeroing, the cache term and the tick off). Work before call 0: 512 pfns
    scanned, 32 + 32 isolated, one slow path = 58.12 us; before call 1: 100 + 200 pfns, 32 +
    32, 16 buddy frees = 57 us; after the last call (tail): 48 buddy frees (the drain) and a
    slow path = 17 us. Each call: folio work 32 x 1.25 = 40 us, flush 5 us, copy 32 us = 77 us."""
    from migsim.kernel.compaction import NR_WORK, CompactionLog
    from migsim.studies.compaction import cost_log

    off = {
        f"compaction__{k}": 0.0 for k in round_platform.compaction.as_dict() if k.endswith("_us")
    }
    p = round_platform.replace(
        **off,
        compaction__init_on_alloc_switch=0,
        compaction__move_lines_count=0,
        sched__tick_irq_us=0.0,
    ).replace(
        compaction__migrate_scan_pfn_us=0.01,
        compaction__free_scan_pfn_us=0.02,
        compaction__isolate_lru_folio_us=1.0,
        compaction__free_isolate_page_us=0.5,
        compaction__buddy_free_page_us=0.25,
        compaction__slowpath_us=5.0,
    )
    assert NR_WORK == 12
    six = np.zeros(6, dtype=np.int64)  # the counters of the allocation side, unused here
    log = CompactionLog(
        pages=np.array([32, 32]),
        work=np.array([[512, 0, 32, 32, 0, 1, *six], [100, 200, 32, 32, 16, 0, *six]]),
        tail=np.array([0, 0, 0, 0, 48, 1, *six]),
    )
    cost = cost_log(log, p, dma=False, busy=False)
    assert cost.compaction_s == pytest.approx((58.12 + 57 + 17) * US, rel=1e-12)
    assert cost.work_s["__free_one_page (free_pcppages_bulk)"] == pytest.approx(16.0 * US)
    assert cost.work_s["__alloc_pages_direct_compact"] == pytest.approx(10.0 * US, rel=1e-12)
    assert cost.work_s["isolate_migratepages_block: per pfn"] == pytest.approx(6.12 * US)
    assert cost.migrate_s == pytest.approx(154.0 * US, rel=1e-12)
    t = cost.timeline
    assert t.wall_s == pytest.approx((132.12 + 154.0) * US, rel=1e-12)
    assert t.sys_s == t.wall_s and t.idle_s == 0.0 and t.nr_sleeps == 0


# ------------------------------------------------------------------ saved zones and platforms


def test_zone_state_round_trip_and_a_tag_index_past_the_zone(tmp_path):
    """save_state()/load_state(): a zone saved without its config loads with config None and
    the same frames, pageblock data and content tags; a file whose content-tag index is the
    zone's size (one past its last frame) is refused."""
    from migsim.kernel.fragment import load_state, save_state
    from migsim.kernel.zone import LRU, MIGRATE_UNMOVABLE, Zone

    z = Zone(4 * 512)
    z.state[:700] = LRU
    z.recount()
    z.move_content(np.array([5]), np.array([1500]))  # a moved page: a sparse tag entry
    z.migratetype[3] = MIGRATE_UNMOVABLE
    z.skip[2] = True
    path = tmp_path / "z.npz"
    save_state(z, path)
    back, cfg = load_state(path)
    assert cfg is None
    assert np.array_equal(back.state, z.state) and np.array_equal(back.tag_delta, z.tag_delta)
    assert back.migratetype.tolist() == [1, 1, 1, 0] and back.skip.tolist() == [0, 0, 1, 0]
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["tag_idx"] = np.array([z.nr_pages])
    arrays["tag_val"] = np.array([1], dtype=np.int32)
    bad = tmp_path / "bad.npz"
    with open(bad, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(ValueError, match="content tags do not fit"):
        load_state(bad)


def test_saved_platform_keeps_unit_and_meaning(platform, tmp_path):
    """save_platform() writes each parameter with its value, unit and one-line meaning (the
    file is read by people), and load_platform() gives back the same values."""
    import yaml

    from migsim.cost.platform import SPEC, load_platform, save_platform

    path = tmp_path / "p.yaml"
    save_platform(platform, path)
    doc = yaml.safe_load(path.read_text())["parameters"]
    for sec, params in SPEC.items():
        for key, p in params.items():
            assert doc[sec][key]["unit"] == p.unit and doc[sec][key]["meaning"] == p.meaning
    assert load_platform(path).as_dict() == platform.as_dict()


def test_a_compaction_run_is_quiet_unless_asked(platform, capsys):
    """run_compaction() prints no progress unless progress=True (a library call in a
    pipeline job writes nothing on its own)."""
    from migsim.studies.compaction import run_compaction

    r = run_compaction(platform, mode="baseline", node_bytes=64 << 20, allocations=2)
    assert r.alloc_success == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


# ------------------------------------------- survivors of the second mutation run (issue 18)


@pytest.mark.parametrize(
    "copier", [CpuCopier(), DmaCopier(channels=2), DmaCopier(channels=2, rfc="v6"), MtCopier(4)]
)
def test_the_trial_factor_scales_every_copy_cost(round_platform, copier):
    """A trial's noise factor multiplies every cost of the copy step (cost_batches' `scale`):
    at 2.0 each of the CPU, wait, wall, other-CPU, interrupt and wake-up times doubles."""
    n, b = np.array([32, 224]), np.array([32, 224]) * float(PAGE)
    one = copier.copy_batches(n, b, round_platform, np.random.default_rng(0), 1.0)
    two = copier.copy_batches(n, b, round_platform, np.random.default_rng(0), 2.0)
    for key in ("cpu_s", "wait_s", "wall_s", "other_cpu_s", "irq_s", "wake_s"):
        np.testing.assert_allclose(getattr(two, key), 2 * getattr(one, key), rtol=1e-12)
    assert one.wall_s.min() > 0


def test_mtcopier_names_the_placements_it_accepts():
    with pytest.raises(
        ValueError, match=r"^placement: must be one of spread, fill-ccd; got 'pack'$"
    ):
        MtCopier(placement="pack")


def test_timeline_row_percentages_by_hand(round_platform):
    """10 + 20 + 30 ms of work around sleeps of 4 and 6 ms, alone, no tick and no irq time
    accounting: 70 ms, of which 60 system (85.71%) and 10 idle (14.29%)."""
    from migsim.cost.timeline import run_timeline

    p = round_platform.replace(sched__tick_irq_us=0.0, sched__irq_time_accounting_switch=0)
    t = run_timeline(np.array([0.010, 0.020, 0.030]), np.array([0.004, 0.006]), p, busy=False)
    d = t.as_dict()
    assert d["wall_s"] == pytest.approx(0.070, rel=1e-12)
    assert d["sys_pct"] == pytest.approx(600 / 7, rel=1e-12)
    assert d["idle_pct"] == pytest.approx(100 / 7, rel=1e-12)
    assert (d["user_pct"], d["irq_pct"], d["softirq_pct"]) == (0.0, 0.0, 0.0)


def test_defer_marks_carry_the_fields_of_the_kernel_trace_event(round_platform):
    """defer_compaction() (mm/compaction.c) resets compact_considered, raises
    compact_defer_shift and lowers compact_order_failed to the order; the
    mm_compaction_defer_compaction event prints order, considered, defer_shift, order_failed:
    order 9 from order_failed 11 gives (9, 0, 1, 9), then order 3 gives (3, 0, 2, 3)."""
    from migsim.kernel.compaction import M_DEFER_COMPACTION, MARK_ARGS, Compactor
    from migsim.kernel.zone import Zone

    z = Zone(8 * 512)
    z.compact_order_failed = 11
    c = Compactor(z, trace=True)
    c.defer_compaction(9)
    first = c.log().marks  # a log taken in the middle of a run keeps what it saw
    c.defer_compaction(3)
    marks = c.log().marks
    rows = marks[marks[:, 0] == M_DEFER_COMPACTION][:, MARK_ARGS:]
    assert rows.tolist() == [[9, 0, 1, 9], [3, 0, 2, 3]]
    assert first[:, MARK_ARGS:].tolist() == [[9, 0, 1, 9]]


def test_a_log_taken_during_a_run_keeps_its_calls_and_the_run_goes_on():
    """log() in the middle of a run, then more allocations: the later log starts with the
    earlier one's migrate_pages() calls, the earlier one is unchanged, and the calls add up
    to pgmigrate_success."""
    from migsim.kernel.compaction import Compactor
    from migsim.kernel.fragment import FragmentConfig, fragment

    c = Compactor(fragment(FragmentConfig(node_bytes=64 << 20, reserved_bytes=2 << 20)))
    c.alloc_pages_node(9)
    first = c.log()
    kept = first.pages.copy(), first.work.copy()
    c.alloc_pages_node(9)
    second = c.log()
    n = len(kept[0])
    assert 0 < n < len(second.pages)
    assert second.pages[:n].tolist() == kept[0].tolist() == first.pages.tolist()
    assert second.work[:n].tolist() == kept[1].tolist() == first.work.tolist()
    assert int(second.pages.sum()) == c.vmstat["pgmigrate_success"]


def _restart_zone(layout: str = "even"):
    """16 pageblocks: 0 unmovable kernel memory; 1 with 32 pages in use and 480 free; 6 with
    its first 100 pages free; 7-15 in use; "even": 2-5 every other page free; "sparse": 2-5 in
    use, the last 300 pages of block 0 and the first 480 of block 6 free (so the blocks with
    free pages are 0, 1 and 6 only)."""
    from migsim.kernel.zone import FREE, KERNEL, LRU, MIGRATE_UNMOVABLE, Zone

    z = Zone(16 * 512)
    z.state[:] = LRU
    z.state[:512] = KERNEL
    z.migratetype[0] = MIGRATE_UNMOVABLE
    z.state[512 + 32 : 1024] = FREE
    if layout == "even":
        for b in range(2, 6):
            z.state[b * 512 : (b + 1) * 512 : 2] = FREE
        z.state[6 * 512 : 6 * 512 + 100] = FREE
    else:
        z.state[212:512] = FREE
        z.state[6 * 512 : 6 * 512 + 480] = FREE
    z.recount()
    # a finished compaction left every skip bit set and the scanners past each other
    z.skip[:] = True
    z.compact_cached_migrate_pfn = [10 * 512, 10 * 512]
    z.compact_cached_free_pfn = 12 * 512
    return z


@pytest.mark.parametrize("layout", ["even", "sparse"])
def test_compaction_restart_clears_the_skip_bits_and_restarts_the_scanners(layout):
    """compaction_restarting() (defer shift at COMPACT_MAX_DEFER_SHIFT and as many attempts
    considered): compact_zone() calls __reset_isolation_suitable(), which clears every skip
    bit and restarts the migration scanner at the first pageblock with pages to move (block
    1, pfn 512) and the free scanner at the last one with free pages (block 6, pfn 3072). The
    order-9 allocation then moves block 1's 32 pages to block 6, captures block 1 (pfn 512),
    and, as the capture comes in the drain, one batch of 32 from block 2 first: 64 pages
    migrated, 64 free pfns scanned (block 6's first 64, all free). Without the restart every
    block is skipped and the allocation fails. The same with free pages in blocks 0, 1 and 6
    only ("sparse": the first block to migrate from lies below the last with free pages, not
    below the one before it)."""
    from migsim.kernel.compaction import COMPACT_MAX_DEFER_SHIFT, Compactor

    z = _restart_zone(layout)
    z.compact_defer_shift = COMPACT_MAX_DEFER_SHIFT
    z.compact_considered = 1 << COMPACT_MAX_DEFER_SHIFT
    z.compact_order_failed = 0
    c = Compactor(z)
    assert c.alloc_pages_node(9) == 512
    assert (z.compact_init_migrate_pfn, z.compact_init_free_pfn) == (512, 3072)
    assert c.vmstat["pgmigrate_success"] == 64 and c.vmstat["compact_free_scanned"] == 64
    assert not z.skip[3:].any()  # cleared; only the blocks scanned since are marked again
    z.check()
    stale = Compactor(_restart_zone(layout))
    assert stale.alloc_pages_node(9) is None
    assert stale.vmstat["pgmigrate_success"] == 0 and stale.zone.skip.all()


def test_compact_memory_run_of_a_64m_node_by_hand(round_platform):
    """echo 1 > compact_memory on 64 MiB fragmented evenly at 50%: 31 movable pageblocks (the
    last is the kernel's), 256 order-0 free pages each. The migration scanner empties blocks
    0-14 (15 x 256 = 3840 pages) into the free halves of blocks 30 down to 15, where the
    scanners meet: 15 free pageblocks (7 order-10 pairs and one order-9 block) and block 15's
    256 free pages, unusable index 256 / 7936. The offloaded copy sleeps, the CPU copy
    never."""
    from migsim.studies.compaction import run_compact_memory

    rows = {
        m: run_compact_memory(round_platform, node_bytes=64 << 20, mode=m)
        for m in ("baseline", "dma")
    }
    r = rows["baseline"]
    assert (r["mode"], r["node_bytes"]) == ("baseline", 64 << 20)
    assert r["buddyinfo_before"] == [31 * 256] + [0] * 10
    assert r["unusable_index_9_before"] == 1.0
    assert r["pages_migrated"] == r["pgmigrate_success"] == 15 * 256
    assert r["buddyinfo_after"] == [256] + [0] * 8 + [1, 7]
    assert r["unusable_index_9_after"] == pytest.approx(256 / 7936, rel=1e-12)
    assert r["idle_s"] == 0.0 and rows["dma"]["idle_s"] > 0
    assert rows["dma"]["pages_migrated"] == 15 * 256
    clustered = run_compact_memory(round_platform, node_bytes=64 << 20, pattern="clustered")
    assert clustered["buddyinfo_before"][4] == 31 * 16  # runs of 16 free pages, 16 per block


def test_a_costing_has_its_own_seed_and_defaults_to_the_runs(round_platform):
    """Simulation.result(seed=s) seeds the costing (noise, DMA failures) and is the row's
    seed; without one the run's own seed is used. Same seed, same numbers."""
    from migsim.studies.compaction import simulate

    sim = simulate(round_platform, node_bytes=64 << 20, allocations=4, seed=7)

    def row(**kw):
        return sim.result(round_platform.replace(noise__trial_sd_frac=0.05), mode="dma",
                          fail_rate=0.1, noise=True, **kw).row()  # fmt: skip

    a, b, other, own = row(seed=5), row(seed=5), row(seed=6), row()
    assert a["seed"] == 5 and own["seed"] == 7
    assert a["wall_ms"] == b["wall_ms"] and a["dma_fallbacks"] == b["dma_fallbacks"]
    assert other["wall_ms"] != a["wall_ms"] and own["wall_ms"] != a["wall_ms"]
    assert own["wall_ms"] == row(seed=7)["wall_ms"]


def _small_simulate(monkeypatch):
    """Make the full-scale reproduction functions simulate 64 MiB (4 allocations) instead of
    250 GB, recording what they asked for."""
    import migsim.studies.compaction as ec

    asked = []
    real = ec.simulate

    def small(platform, **kw):
        asked.append(kw)
        return real(platform, node_bytes=64 << 20, allocations=4, **kw)

    monkeypatch.setattr(ec, "simulate", small)
    return ec, asked


def test_reproduce_compaction_passes_seed_channels_and_version(round_platform, monkeypatch):
    """One row per published mode in the published order, from one simulation with the given
    seed; the dma rows costed with the given channels and dcbm version (v6 holds its channels
    from enable time: less kernel time per call than v4), the CPU rows with none; by default
    dcbm's one channel (nr_dma_chan) and v4."""
    ec, asked = _small_simulate(monkeypatch)
    rows = ec.reproduce_compaction(round_platform, seed=3, channels=2, rfc="v6")
    assert asked == [{"seed": 3, "progress": False}]
    assert [r["mode"] for r in rows] == list(ec.MODES)
    assert [r["channels"] for r in rows] == [None, 2, None, 2]
    assert {r["seed"] for r in rows} == {3}
    v4 = {r["mode"]: r for r in ec.reproduce_compaction(round_platform, seed=3, channels=2)}
    v6 = {r["mode"]: r for r in rows}
    assert v6["dma"]["sys_s"] < v4["dma"]["sys_s"]
    assert v6["baseline"]["wall_ms"] == v4["baseline"]["wall_ms"]
    default = ec.mode_rows(ec.simulate(round_platform, seed=3), round_platform)
    assert [r["channels"] for r in default] == [None, 1, None, 1]
    again = ec.reproduce_compaction(round_platform, seed=3)
    assert [r["channels"] for r in again] == [None, 1, None, 1]
    assert again[1]["sys_s"] == default[1]["sys_s"]


def test_reproduce_results_passes_seed_capture_and_version(round_platform, monkeypatch):
    ec, asked = _small_simulate(monkeypatch)
    sim, results = ec.reproduce_results(
        round_platform, seed=4, channels=2, capture="kthread", rfc="v6"
    )
    assert asked == [{"seed": 4, "progress": False, "capture": "kthread"}]
    assert [r.mode for r in results] == list(ec.MODES)
    assert [r.channels for r in results] == [None, 2, None, 2]
    assert sim.capture_in_drain + sim.capture_in_migrate == 0  # a kthread never captures
    v4 = ec.reproduce_results(round_platform, seed=4, channels=2, capture="kthread")[1]
    assert results[1].cost.timeline.sys_s < v4[1].cost.timeline.sys_s


def test_set_content_is_read_back_by_content_tag():
    """Zone.set_content() records the tag a page carries; content_tag() reads it back (the
    zone stores it as the offset from pfn + 1, so an untouched page reads pfn + 1); a free
    frame holds no content (0)."""
    from migsim.kernel.zone import FREE, LRU, Zone

    z = Zone(2 * 512)
    z.state[:] = LRU
    z.state[9] = FREE
    z.set_content(np.array([5, 700]), np.array([100, 3]))
    assert z.content_tag(np.array([5, 700, 6, 9])).tolist() == [100, 3, 7, 0]


# ------------------------------------------- survivors of the third mutation run (issue 18)


def test_saved_platform_starts_with_its_header(platform, tmp_path):
    from migsim.cost.platform import load_platform, save_platform

    path = tmp_path / "p.yaml"
    save_platform(platform, path, header="# fitted by test")
    assert path.read_text().startswith("# fitted by test\nname: ")
    assert load_platform(path).as_dict() == platform.as_dict()


def test_an_empty_timeline_has_no_percentages(round_platform):
    """No work and no sleep: a zero wall time, and 0% in every column (no division by 0)."""
    from migsim.cost.timeline import run_timeline

    t = run_timeline(np.array([0.0]), np.array([]), round_platform, busy=False)
    assert t.wall_s == 0.0
    assert (t.user_pct, t.sys_pct, t.idle_pct, t.irq_pct, t.softirq_pct) == (0.0,) * 5


def test_reserved_kernel_memory_is_0_8_percent_in_whole_pageblocks():
    """0.8% of a 250 GiB node is 2 GiB, 1024 pageblocks; 0.8% of 64 MiB (0.5 MiB) rounds up
    to one 2 MiB pageblock."""
    from migsim.kernel.fragment import default_reserved_bytes

    assert default_reserved_bytes(250 << 30) == 1024 * (2 << 20)
    assert default_reserved_bytes(64 << 20) == 2 << 20
    assert default_reserved_bytes(1000 * (2 << 20)) == 8 * (2 << 20)  # 16 MiB exactly


def test_a_dma_wake_up_scales_with_the_trial_factor(platform):
    """test_timeline's wake-up with every time doubled (the trial factor 2): the copier's wait
    is 2 x (100 us of engine + the lumped 15 us), the engine part 200 us, the last interrupt
    2 x 0.5 and the wake-up (an IPI against the hog) 2 x 1.5 us; the idle CPU's C1 exit is the state's own 1 us (C2 needs
    800 us) plus the switch from idle 2 x 2 us."""
    from types import SimpleNamespace

    from migsim.studies.compaction import wake_up

    q = platform.replace(
        dma__irq_wakeup_us=15.0, dma__desc_irq_us=0.5, sched__c1_exit_us=1.0,
        sched__c2_exit_us=400.0, sched__ctx_switch_us=2.0, sched__wakeup_ipi_us=1.5,
        sched__msi_on_cpu_switch=0,
    )  # fmt: skip
    bc = SimpleNamespace(copy_wait_s=np.array([0.0, 230e-6]), copy_irq_s=np.array([0.0, 32e-6]))
    wait, idle_only, here, hidden = wake_up(bc, q, scale=2.0, busy=True)
    assert wait * 1e6 == pytest.approx([0.0, 200.0 + 1.0 + 3.0 + 1.0 + 4.0])
    assert idle_only * 1e6 == pytest.approx([0.0, 5.0])
    assert here * 1e6 == pytest.approx([0.0, 3.0])
    assert hidden * 1e6 == pytest.approx([0.0, 0.0])
    # alone on its CPU (C1 polls: no IPI) the wake-up and the switch from idle run in the
    # idle task after its idle state: 2 x 1.5 + 2 x 2 us in no /proc/stat column
    idle_wait, _, idle_here, idle_hidden = wake_up(bc, q, scale=2.0)
    assert idle_wait * 1e6 == pytest.approx(wait * 1e6)
    assert idle_here * 1e6 == pytest.approx([0.0, 0.0])
    assert idle_hidden * 1e6 == pytest.approx([0.0, 7.0])


@pytest.fixture(scope="module")
def small_sim(round_platform):
    """A 64 MiB node fragmented evenly at 50%, 8 order-9 allocations from a task."""
    from migsim.studies.compaction import simulate

    return simulate(round_platform, node_bytes=64 << 20, allocations=8, seed=7)


def test_the_costing_scales_with_the_trial_factor_and_uses_its_generator(round_platform, small_sim):
    """cost_log(scale=2) doubles every kernel function's time; with DMA failures the costing
    draws them from the generator it is given (the same seed, the same fallbacks). The
    allocation fast path is get_page_from_freelist, one per allocation here (every allocation
    of a task captures its block)."""
    from migsim.kernel.compaction import W_FREELIST
    from migsim.studies.compaction import cost_log

    log = small_sim.log
    one = cost_log(log, round_platform, dma=False, busy=False)
    two = cost_log(log, round_platform, dma=False, busy=False, scale=2.0)
    assert one.work_s.keys() == two.work_s.keys()
    for name, sec in one.work_s.items():
        assert two.work_s[name] == pytest.approx(2 * sec, rel=1e-12), name
    freelist = int(log.work[:, W_FREELIST].sum() + log.tail[W_FREELIST])
    assert freelist == small_sim.alloc_success == 8
    assert one.work_s["get_page_from_freelist"] == pytest.approx(
        8 * round_platform.compaction.freelist_us * US, rel=1e-12
    )

    def failing(seed):
        return cost_log(log, round_platform, dma=True, busy=False, fail_rate=0.5,
                        rng=np.random.default_rng(seed))  # fmt: skip

    a, b = failing(1), failing(1)
    assert a.dma_fallbacks == b.dma_fallbacks > 0


def test_a_result_costs_offload_without_failures_by_default(round_platform, small_sim):
    """Simulation.result(): no DMA failures unless asked (every migrated page offloaded, no
    fallback), a threshold above every batch keeps every copy on the CPU; the row reports the
    sleeps (none on the CPU copy) and where each block was captured (a task captures every
    block it compacted for)."""
    dma = small_sim.result(round_platform, mode="dma").row()
    assert dma["dma_fallbacks"] == 0 and dma["dma_copies"] == dma["pages_migrated"] > 0
    assert dma["sleep_s"] > 0
    never = small_sim.result(round_platform, mode="dma", min_batch_bytes=1 << 40).row()
    assert never["dma_copies"] == 0 and never["sleep_s"] == 0.0
    base = small_sim.result(round_platform, mode="baseline").row()
    assert base["sleep_s"] == 0.0
    assert base["capture_in_drain"] + base["capture_in_migrate"] == base["alloc_success"] == 8


def test_the_fragmented_layout_before_the_run_is_reported(round_platform, small_sim):
    """The run keeps the metrics of the node it started from: 31 movable pageblocks with 256
    order-0 free pages each (the last pageblock is the kernel's); a random layout depends on
    the seed."""
    from migsim.studies.compaction import simulate

    assert small_sim.fragmentation["buddyinfo"] == [31 * 256] + [0] * 10
    assert small_sim.fragmentation["movable_blocks"] == 31
    kw = dict(node_bytes=64 << 20, allocations=1, pattern="random")
    a, b = (simulate(round_platform, seed=s, **kw).fragmentation for s in (1, 2))
    assert a["free_pages"] == b["free_pages"] == 31 * 256  # half of every region, any seed
    assert a["buddyinfo"] != b["buddyinfo"]


def test_run_compaction_passes_order_threshold_and_progress(round_platform, capsys, monkeypatch):
    """run_compaction(): the requested order, the offload threshold and, with progress on, a
    bar of the alloc_pages_node() calls on a terminal (FORCE_COLOR makes rich draw it into
    the captured output), ending at 4/4, and the same run (a bar changes nothing it does)."""
    from migsim.studies.compaction import run_compaction

    kw = dict(mode="dma", node_bytes=64 << 20, allocations=4)
    small = run_compaction(round_platform, order=3, **kw).row()
    assert small["order"] == 3 and small["alloc_success"] == 4
    never = run_compaction(round_platform, min_batch_bytes=1 << 40, **kw).row()
    assert never["dma_copies"] == 0 and never["pages_migrated"] > 0
    quiet = run_compaction(round_platform, **kw).row()
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("FORCE_COLOR", "1")
    shown = run_compaction(round_platform, progress=True, **kw).row()
    bar = capsys.readouterr().out
    lines = re.split(r"[\r\n]", re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", bar))  # drop ANSI codes
    assert any(ln.startswith("alloc_pages_node ") and ln.split()[-2] == "4/4" for ln in lines)
    assert shown["alloc_success"] == 4 and shown["wall_ms"] == quiet["wall_ms"]


def test_a_run_too_big_for_the_node_names_the_numbers(round_platform):
    from migsim.studies.compaction import run_compaction

    msg = r"^allocations: 40 x 2M = 80M is more memory than the 64M node$"
    with pytest.raises(ValueError, match=msg):
        run_compaction(round_platform, mode="baseline", node_bytes=64 << 20, allocations=40)
    with pytest.raises(ValueError, match=r"^allocations: "):
        run_compaction(round_platform, mode="baseline", node_bytes=64 << 20, allocations=0)


def test_a_platform_is_named_by_its_file(platform, tmp_path):
    """load_platform(): the name the file states, else the file's stem."""
    import yaml

    from migsim.cost.platform import DEFAULT_PLATFORM, load_platform, save_platform

    assert (
        load_platform(DEFAULT_PLATFORM).name == yaml.safe_load(DEFAULT_PLATFORM.read_text())["name"]
    )
    path = tmp_path / "my-box.yaml"
    save_platform(platform.replace(), path)
    doc = yaml.safe_load(path.read_text())
    assert load_platform(path).name == platform.name
    del doc["name"]
    path.write_text(yaml.safe_dump(doc))
    assert load_platform(path).name == "my-box"


def test_run_arguments_refused_by_name(round_platform, monkeypatch):
    """More DMA channels than the platform has, or a node larger than the memory available
    (MIGSIM_MEMORY_AVAILABLE stands in for MemAvailable), is refused before any work, naming
    the argument."""
    from migsim.studies.compaction import run_compaction

    kw = dict(node_bytes=64 << 20, allocations=4)
    msg = r"^channels: .* 1\.\.16 \(the DMA channels of platform epyc-zen3-ptdma\), got 17$"
    with pytest.raises(ValueError, match=msg):
        run_compaction(round_platform, mode="dma", channels=17, **kw)
    monkeypatch.setenv("MIGSIM_MEMORY_AVAILABLE", "1000")
    with pytest.raises(ValueError, match=r"^node_bytes: simulating a 64M node needs about"):
        run_compaction(round_platform, mode="baseline", **kw)


def test_a_simulation_starts_from_a_saved_state(round_platform, tmp_path):
    """simulate(state=file): the saved node (32 MiB, clustered), not a freshly fragmented one
    of the default size and pattern."""
    from migsim.kernel.fragment import FragmentConfig, fragment, save_state
    from migsim.studies.compaction import simulate

    cfg = FragmentConfig(node_bytes=32 << 20, pattern="clustered")
    path = tmp_path / "z.npz"
    save_state(fragment(cfg), path, cfg)
    sim = simulate(round_platform, state=path, allocations=2)
    assert (sim.node_bytes, sim.pattern) == (32 << 20, "clustered")
    assert sim.fragmentation["buddyinfo"][4] == 15 * 16  # 15 movable regions, runs of 16


def test_the_fragmented_node_has_the_platforms_cpus_on_its_pcp_lists(round_platform):
    """fragmented_zone() sizes the per-CPU lists for the platform's CPUs: a 4 GiB zone's low
    watermark 3096 split among 4 CPUs gives pcp high 774 (64 CPUs: 252, see
    test_kernel_watermarks_of_a_4_gib_zone)."""
    from migsim.studies.compaction import fragmented_zone

    four = round_platform.replace(compaction__node_cpus_count=4)
    zone, cfg = fragmented_zone(four, None, 4 << 30, 0.5, "even", 1)
    assert cfg is None and zone.nr_pages == 1 << 20
    assert zone.pcp.high == 774


def test_an_unknown_mode_names_the_modes():
    from migsim.studies.compaction import mode_parts

    msg = r"^mode: must be one of baseline, dma, busy-baseline, busy-dma; got 'gpu'$"
    with pytest.raises(ValueError, match=msg):
        mode_parts("gpu")
    assert mode_parts("busy-dma") == ("dma", True) and mode_parts("baseline") == ("baseline", False)


def test_no_folios_make_no_batches():
    from migsim.kernel.migrate import batch_totals, split_batches

    empty = np.zeros(0, dtype=np.int64)
    assert split_batches(empty, 512).tolist() == []
    assert [len(x) for x in batch_totals(empty, 512)] == [0, 0, 0]


def test_the_driver_sets_up_nothing_for_an_empty_batch(round_platform):
    """dcbm's setup (call setup 10 us, per channel and per folio work) is paid only by a batch
    that has folios: 3 folios on 2 channels cost 21 us (test_dma_offloads_a_batch_of_exactly_
    the_threshold), none cost 0."""
    s = DmaCopier(channels=2).setup_seconds(
        np.array([0, 3]), round_platform, np.array([0.0, 3 * PAGE])
    )
    assert s[0] == 0.0 and s[1] == pytest.approx(21.0 * US, rel=1e-12)


def test_make_copier_takes_cpu_for_the_baseline():
    from migsim.cost.copiers import make_copier

    assert make_copier("cpu").name == make_copier("baseline").name == "cpu"


def test_an_unpaired_last_pageblock_is_no_order_10_block():
    """A zone of 3 pageblocks has one aligned pair (0, 1) and a lone pageblock 2: freed
    together, the three give buddyinfo order 9: 1 and order 10: 1 (MAX_PAGE_ORDER blocks are
    aligned pairs inside the zone; pageblock 2 has no buddy). The frees span two pageblocks, so
    they take the vectorised accounting (Zone._account with several pageblocks)."""
    from migsim.kernel.zone import ALLOCATED, Zone

    state = np.zeros(3 * 512, dtype=np.uint8)
    state[512] = ALLOCATED  # one page of pageblock 1
    state[1024:] = ALLOCATED  # all of pageblock 2
    z = Zone(3 * 512, state=state)
    z.recount()
    assert z.free_area_counts()[9:].tolist() == [1, 0]  # pageblock 0 alone: order 9
    z.free_to_buddy(np.r_[512, np.arange(1024, 1536)])
    assert z.free_area_counts().tolist() == [0] * 9 + [1, 1]
    z.check()


@pytest.mark.parametrize("init_on_alloc", [1, 0])
def test_l2_refill_of_a_64_folio_batch_by_hand(platform, init_on_alloc):
    """l2_refill_s for one batch of 64 order-0 folios, line by line from its docstring: between
    folio i's unmap and its move the CPU touches 63 - i later unmaps (12 lines = 768 B each,
    plus a 4096 B zeroed target each under init_on_alloc) and i earlier moves (768 B, plus the
    4096 B source and 4096 B target with the CPU copy, nothing with the offloaded copy). Zen 3's
    L2: 512 KiB of 8 ways = 1024 sets; a line survives if at most 7 other lines fall in its
    set, Poisson with lines / 1024. E.g. the last folio of the CPU copy sees 63 x 8960 B =
    8820 lines (lam 8.61, survives with p 0.38). Each surviving line saves l3 - l2 hit."""
    from scipy.stats import poisson

    from migsim.studies.compaction import l2_refill_s

    p = platform.replace(compaction__init_on_alloc_switch=init_on_alloc)
    c = p.compaction
    assert (c.l2_kb, c.l2_ways_count, c.move_lines_count) == (512.0, 8, 12)
    saved = (c.l3_hit_us - c.l2_hit_us) * 1e-6
    unmap = 768 + 4096 * init_on_alloc
    for cpu_copy, move in ((True, 768 + 8192), (False, 768)):
        lines = [((63 - i) * unmap + i * move) / 64 for i in range(64)]
        kept = sum(poisson.cdf(7, n / 1024) for n in lines)
        got = l2_refill_s(np.array([64, 0, 64]), p, cpu_copy=cpu_copy)
        assert got[0] == pytest.approx(-12 * saved * kept, rel=1e-9)
        assert got.tolist() == [got[0], 0.0, got[0]]
    last = poisson.cdf(7, 63 * 8960 / 64 / 1024)
    assert last == pytest.approx(0.38, abs=0.01)


def test_run_compaction_sizes_the_node_and_costs_noise_only_when_asked(platform):
    """run_compaction(): the node it fragments is `node_bytes` (64 MiB: 16384 frames, zone end
    pfn 16384, half the frames of 31 movable pageblocks free: 7936), and the lognormal trial
    factor (noise.trial_sd_frac, 3.4% on the committed platform) applies only with noise=True:
    the default run equals noise=False exactly, a noisy one differs in wall time but migrates
    the same pages (the factor scales costs, not the kernel's work)."""
    from migsim.studies.compaction import run_compaction

    assert platform.noise.trial_sd_frac > 0
    kw = dict(mode="dma", node_bytes=64 << 20, allocations=2)
    plain = run_compaction(platform, **kw)
    assert plain.zone_pfns == (0, 16384)
    assert plain.fragmentation["free_pages"] == 31 * 256
    off = run_compaction(platform, noise=False, **kw).row()
    noisy = run_compaction(platform, noise=True, **kw).row()
    assert plain.row()["wall_ms"] == off["wall_ms"]
    assert noisy["wall_ms"] != off["wall_ms"]
    assert noisy["pages_migrated"] == off["pages_migrated"] > 0


def test_the_json_summary_has_the_vmstat_deltas_and_latency_percentiles(round_platform):
    """CompactionResult.summary(): what --json prints besides the row, under the keys
    "vmstat" (the run's counters, e.g. compact_stall = one per allocation that compacted)
    and "alloc_latency_us" (percentiles of the per-allocation latency)."""
    from migsim.studies.compaction import run_compaction

    res = run_compaction(round_platform, mode="baseline", node_bytes=64 << 20, allocations=2)
    s = res.summary()
    assert sorted(s) == ["alloc_latency_us", "vmstat"]
    assert s["vmstat"]["compact_stall"] == 2 == res.alloc_success
    assert s["vmstat"]["pgmigrate_success"] == res.row()["pages_migrated"] > 0


def test_pageblock_start_and_end_pfn():
    """pageblock_start_pfn() / pageblock_end_pfn() (ALIGN(pfn + 1, 512)) of a 512-page
    pageblock: pfns 0 and 511 lie in [0, 512), pfn 512 in [512, 1024)."""
    from migsim.kernel.zone import Zone

    assert [Zone.pageblock_start(p) for p in (0, 511, 512, 1500)] == [0, 0, 512, 1024]
    assert [Zone.pageblock_end_pfn(p) for p in (0, 511, 512, 1500)] == [512, 512, 1024, 1536]


def test_unknown_platform_parameter_is_named(platform):
    """Platform.replace() with a key the SPEC does not have: one error naming section.key."""
    from migsim.cost.platform import PlatformError

    with pytest.raises(PlatformError, match=r"^unknown platform parameter dma\.no_such_us$"):
        platform.replace(dma__no_such_us=1.0)


def test_platform_digest_is_16_hex_digits_of_the_values(platform):
    """Platform.digest(): 16 hex digits (64 bits of SHA-256 over the values), the same for
    the same values and different when one value changes."""
    d = platform.digest()
    assert len(d) == 16 and int(d, 16) >= 0
    assert platform.replace().digest() == d
    assert platform.replace(dma__prep_us=platform.dma.prep_us + 0.5).digest() != d


def test_restart_with_nothing_to_move_below_a_free_block_resets_the_scanners():
    """__reset_isolation_suitable(): when the first pageblock with pages to migrate is not
    below the last with free pages (here both are pageblock 10: blocks 2-9 hold every other
    page free between kernel pages, block 10 every other page on the LRU, the rest is kernel
    memory), a migration scanner starting there has no free page above it: the scanners are
    reset to the zone's ends (reset_cached_positions) and no restart pfn is recorded, where a
    restart at block 10 would record pfn 5120 for both."""
    from migsim.kernel.compaction import COMPACT_MAX_DEFER_SHIFT, Compactor
    from migsim.kernel.zone import FREE, KERNEL, LRU, Zone

    z = Zone(16 * 512)
    z.state[:] = KERNEL
    z.state[2 * 512 : 10 * 512 : 2] = FREE
    z.state[10 * 512 : 11 * 512] = FREE
    z.state[10 * 512 : 11 * 512 : 2] = LRU
    z.recount()
    z.skip[:] = True
    z.compact_cached_migrate_pfn = [12 * 512, 12 * 512]
    z.compact_cached_free_pfn = 14 * 512
    z.compact_defer_shift = COMPACT_MAX_DEFER_SHIFT
    z.compact_considered = 1 << COMPACT_MAX_DEFER_SHIFT
    c = Compactor(z)
    c.alloc_pages_node(9)
    assert c.vmstat["compact_stall"] > 0  # compaction ran (and restarted)
    assert (z.compact_init_migrate_pfn, z.compact_init_free_pfn) == (0, 0)
    z.check()


def test_a_run_from_a_state_is_the_states_node_and_the_wall_is_the_allocations(
    round_platform, tmp_path
):
    """simulate(state=...): the node is the saved zone (64 MiB), so node_bytes is neither used
    nor checked (8 MiB could not hold 6 order-9 allocations: 12 MiB). The run's wall time is
    the allocations' latencies (from each entry into the slow path to the page returned) plus
    the one get_page_from_freelist() attempt before each (freelist_us 0.3 us), stretched by the
    tick's share of the CPU (irq + softirq, 0.31% of the CPU copy's wall). A
    CPU copy has no DMA fallbacks column value (None), an offloaded one counts them (0)."""
    from migsim.kernel.fragment import FragmentConfig, fragment, save_state
    from migsim.studies.compaction import run_compaction

    path = tmp_path / "z.npz"
    save_state(fragment(FragmentConfig(node_bytes=64 << 20)), path)
    kw = dict(node_bytes=8 << 20, allocations=6, state=path)
    rows = {m: run_compaction(round_platform, mode=m, **kw).row() for m in ("baseline", "dma")}
    for r in rows.values():
        assert r["alloc_success"] == 6 and len(r["alloc_latency_us"]) == 6
    r = rows["baseline"]
    task = 1 - (r["irq_pct"] + r["softirq_pct"]) / 100
    outside = r["wall_s"] * 1e6 - sum(r["alloc_latency_us"])
    assert outside == pytest.approx(6 * 0.3 / task, rel=1e-6)
    r = rows["dma"]  # the completion interrupts take their share too (under 1% here)
    assert r["wall_s"] * 1e6 - sum(r["alloc_latency_us"]) == pytest.approx(6 * 0.3, rel=0.01)
    assert round_platform.compaction.freelist_us == 0.3
    assert rows["baseline"]["dma_fallbacks"] is None and rows["dma"]["dma_fallbacks"] == 0


def test_costing_of_a_run_without_migrations_is_its_tail(round_platform):
    """cost_log() of a log with no migrate_pages() call (an allocation that compaction could
    not help, or that needed none): the whole run is the tail work. Here one slow-path attempt
    (5 us) and one order-9 block handed out, prep_new_page's post_alloc_hook (2 us) and its
    512 base pages' prep_compound_page tails (0.01 us each: 5.12 us), every other cost off:
    12.12 us, and two isolate_freepages() calls (0.5 us each): 13.12 us of kernel time on one
    CPU, no sleep, nothing in migrate_pages."""
    from migsim.kernel.compaction import (
        NR_WORK,
        W_ALLOC,
        W_ALLOC_PAGES,
        W_ISOLATE_FREE,
        W_SLOWPATH,
        CompactionLog,
    )
    from migsim.studies.compaction import cost_log

    off = {
        f"compaction__{k}": 0.0 for k in round_platform.compaction.as_dict() if k.endswith("_us")
    }
    p = round_platform.replace(
        **off, compaction__init_on_alloc_switch=0, sched__tick_irq_us=0.0
    ).replace(
        compaction__slowpath_us=5.0,
        compaction__post_alloc_hook_us=2.0,
        compaction__compound_tail_us=0.01,
        compaction__isolate_freepages_us=0.5,
    )
    tail = np.zeros(NR_WORK, dtype=np.int64)
    tail[[W_SLOWPATH, W_ALLOC, W_ALLOC_PAGES, W_ISOLATE_FREE]] = (1, 1, 512, 2)
    log = CompactionLog(
        pages=np.zeros(0, dtype=np.int64), work=np.zeros((0, NR_WORK), np.int64), tail=tail
    )
    cost = cost_log(log, p, dma=False, busy=False)
    assert cost.work_s["post_alloc_hook (prep_new_page)"] == pytest.approx(2.0 * US)
    assert cost.work_s["prep_compound_page"] == pytest.approx(5.12 * US)
    assert cost.work_s["isolate_freepages"] == pytest.approx(1.0 * US)
    assert cost.compaction_s == pytest.approx(13.12 * US, rel=1e-12) and cost.migrate_s == 0.0
    t = cost.timeline
    assert t.wall_s == pytest.approx(13.12 * US, rel=1e-12)
    assert t.sys_s == t.wall_s and t.nr_sleeps == 0


def test_fragmentation_metrics_of_a_64m_node_by_hand():
    """metrics() of 64 MiB fragmented evenly at 50%: 31 movable pageblocks (the last is the
    kernel's) with 256 free order-0 pages each: 7936 free pages = 32505856 bytes, all
    unusable for order 9."""
    from migsim.kernel.fragment import FragmentConfig, fragment, metrics

    m = metrics(fragment(FragmentConfig(node_bytes=64 << 20)))
    assert (m["free_pages"], m["free_bytes"]) == (7936, 32505856)
    assert m["buddyinfo"] == [7936] + [0] * 10 and m["unusable_index_9"] == 1.0
    assert m["movable_blocks"] == 31


def test_platform_file_errors_name_the_file_and_line(platform, tmp_path):
    """load_platform(): broken YAML names the file and the line (libyaml's problem mark), a
    bad value the file and the key; the file's other top-level keys (its fit record) are
    kept as the platform's meta, the parameters and the name are not."""
    import yaml

    from migsim.cost.platform import DEFAULT_PLATFORM, PlatformError, load_platform

    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nparameters:\n  dma: [unclosed\n")
    with pytest.raises(PlatformError, match=rf"^platform: {broken} is not valid YAML at line 4"):
        load_platform(broken)
    doc = yaml.safe_load(DEFAULT_PLATFORM.read_text())
    doc["parameters"]["dma"]["prep_us"]["value"] = -1.0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlatformError, match=rf"^platform: {bad}: .*dma\.prep_us"):
        load_platform(bad)
    assert "stage1" in platform.meta
    assert "parameters" not in platform.meta and "name" not in platform.meta


def test_busy_timeline_with_the_tick_by_hand(platform):
    """run_timeline(busy=True): 10 us of compaction, a 100 us DMA sleep, 10 us more, against
    the hog, switches 1 us, completion interrupt 5 us, no slice boundary (slice 1 ms), a tick
    taking 1% of the CPU (1000 Hz x 10 us), irq time accounted. In the sleep: switch to the hog,
    the interrupt, switch back, so the hog runs 100 - 2 - 5 = 93 us there and its fair share 20
    us of the compaction's time: 113 us of user time; sys = 20 + 2 switches = 22 us; with the
    interrupt 140 us of task and irq time, stretched by the tick to 140 / (1 - 1%) = 141.41 us
    (the tick's 1.41 us split half hard irq, half softirq: irq 5.71 us)."""
    from migsim.cost.timeline import run_timeline

    p = platform.replace(
        sched__ctx_switch_us=1.0, sched__completion_irq_us=5.0, sched__slice_us=1000.0,
        sched__tick_hz=1000.0, sched__tick_irq_us=10.0, sched__irq_time_accounting_switch=1,
        sched__tick_softirq_frac=0.5,
    )  # fmt: skip
    t = run_timeline(np.array([10e-6, 10e-6]), np.array([100e-6]), p, busy=True)
    assert t.wall_s == pytest.approx(140e-6 / 0.99, rel=1e-12)
    assert (t.sys_s, t.user_s, t.hog_run_s) == pytest.approx((22e-6, 113e-6, 113e-6), rel=1e-12)
    tick = 140e-6 / 0.99 - 140e-6
    assert (t.irq_s, t.softirq_s) == pytest.approx((5e-6 + tick / 2, tick / 2), rel=1e-12)
    assert t.idle_s == 0.0 and t.context_switches == 2


def test_a_busy_runs_sleeps_are_the_waits_less_the_idle_only_wake_up(round_platform):
    """cost_log(busy=True) of one offloaded migrate_pages() call of 32 pages: against the hog
    there is no idle state, so the sleep each call sees (CallCosts.sleep_s, which the latency
    trace uses) is the idle run's sleep less the part only an idle CPU pays (its exit from the
    idle state and the switch from the idle task), and it is the sleep the timeline accounts
    (run_timeline subtracts the same part itself from the wake_s it is given)."""
    from migsim.kernel.compaction import NR_WORK, CompactionLog
    from migsim.studies.compaction import cost_log

    log = CompactionLog(
        pages=np.array([32]), work=np.zeros((1, NR_WORK), np.int64), tail=np.zeros(NR_WORK, int)
    )
    idle = cost_log(log, round_platform, dma=True, busy=False)
    busy = cost_log(log, round_platform, dma=True, busy=True)
    assert idle.dma_copies == busy.dma_copies == 32
    c = round_platform.sched
    idle_only = (c.c1_exit_us + c.ctx_switch_us) * US
    assert idle.calls.sleep_s[0] - busy.calls.sleep_s[0] == pytest.approx(idle_only, rel=1e-9)
    assert busy.timeline.sleep_s == pytest.approx(busy.calls.sleep_s.sum(), rel=1e-12)
    assert idle.timeline.sleep_s == pytest.approx(idle.calls.sleep_s.sum(), rel=1e-12)


def test_a_saved_zone_keeps_its_pcp_sizes(tmp_path):
    """save_state()/load_state(): the per-CPU list's high and batch (here 100 and 7, not the
    kernel's formulas for 2048 frames) come back with the zone."""
    from migsim.kernel.fragment import load_state, save_state
    from migsim.kernel.zone import Zone, kernel_batchsize, kernel_pcp_high

    assert (kernel_pcp_high(2048, 64), kernel_batchsize(2048)) != (100, 7)
    save_state(Zone(4 * 512, pcp_high=100, pcp_batch=7), tmp_path / "z.npz")
    back, _ = load_state(tmp_path / "z.npz")
    assert (back.pcp.high, back.pcp.batch) == (100, 7)


def test_compact_memory_of_a_saved_state_is_the_states_node(round_platform, tmp_path):
    """run_compact_memory(state=...): the zone is the saved 64 MiB node whatever node_bytes
    says (16 MiB here), so the run is test_compact_memory_run_of_a_64m_node_by_hand's: 3840
    pages migrated. With the CPU copy and no tick the whole run is system time."""
    from migsim.kernel.fragment import FragmentConfig, fragment, save_state
    from migsim.studies.compaction import run_compact_memory

    path = tmp_path / "z.npz"
    save_state(fragment(FragmentConfig(node_bytes=64 << 20)), path)
    p = round_platform.replace(sched__tick_irq_us=0.0)
    r = run_compact_memory(p, node_bytes=16 << 20, state=path)
    assert (r["node_bytes"], r["pages_migrated"]) == (64 << 20, 15 * 256)
    assert r["sys_s"] == pytest.approx(r["wall_s"], rel=1e-12) and r["wall_s"] > 0
    assert r["idle_s"] == 0.0


def test_split_batches_of_one_folio_size_by_hand():
    """split_batches() with every folio the same size: 2 MiB folios (512 pages) under a limit
    of 1024 pages go two to a batch; folios larger than the limit get one batch each."""
    from migsim.kernel.migrate import split_batches

    assert split_batches(np.full(5, 512), 1024).tolist() == [0, 0, 1, 1, 2]
    assert split_batches(np.full(3, 512), 256).tolist() == [0, 1, 2]


def test_run_compaction_defaults_to_the_configs_seed_and_costs_dma_failures(round_platform):
    """run_compaction(): without a seed the run is config/config.yaml's base seed (1); a
    descriptor failure rate of 1 fails every offloaded batch, which the CPU copies instead
    (dma_copies 0, every folio a fallback), the same pages migrated."""
    from pathlib import Path

    import yaml

    from migsim.studies.compaction import run_compaction

    config = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
    base = yaml.safe_load(config.read_text())["seed"]
    kw = dict(node_bytes=64 << 20, allocations=2)
    default = run_compaction(round_platform, mode="baseline", **kw).row()
    assert default["seed"] == base == 1
    assert default == run_compaction(round_platform, mode="baseline", seed=base, **kw).row()
    ok = run_compaction(round_platform, mode="dma", **kw).row()
    failed = run_compaction(round_platform, mode="dma", fail_rate=1.0, **kw).row()
    assert ok["dma_copies"] == ok["pages_migrated"] and ok["dma_fallbacks"] == 0
    assert failed["dma_copies"] == 0 and failed["dma_fallbacks"] == ok["pages_migrated"] > 0
    assert failed["pages_migrated"] == ok["pages_migrated"]


def test_a_rows_capture_counts_and_platform(round_platform):
    """CompactionResult.row(): a capture in the drain (the block completed by the pcp drain
    after a migrate_pages() call) comes after one more COMPACT_CLUSTER_MAX batch of 32 pages
    (test_compaction_reproduce's relation, on a small run): pages_after_capture = 32 per
    capture in the drain; and the row names the platform by its file's name."""
    from migsim.studies.compaction import run_compaction

    r = run_compaction(round_platform, mode="dma", node_bytes=64 << 20, allocations=4).row()
    assert r["capture_in_drain"] > 0
    assert r["pages_after_capture"] == 32 * r["capture_in_drain"]
    assert r["platform"] == round_platform.name == "epyc-zen3-ptdma"


def test_the_trial_factor_scales_a_dma_sleep_but_not_the_idle_states_exit(round_platform):
    """cost_log(scale=2) of one offloaded call of 32 pages: the engine's time, the interrupt
    and the switch from idle all take twice as long (the trial factor is the machine running
    slower or faster), the exit from the idle state is the state's own latency (C1: 1 us,
    not scaled; test_a_dma_wake_up_scales_with_the_trial_factor): sleep(2) = 2 x sleep(1) - 1 us.
    """
    from migsim.kernel.compaction import NR_WORK, CompactionLog
    from migsim.studies.compaction import cost_log

    log = CompactionLog(
        pages=np.array([32]), work=np.zeros((1, NR_WORK), np.int64), tail=np.zeros(NR_WORK, int)
    )
    one = cost_log(log, round_platform, dma=True, busy=False).calls.sleep_s[0]
    two = cost_log(log, round_platform, dma=True, busy=False, scale=2.0).calls.sleep_s[0]
    assert round_platform.sched.c1_exit_us == 1.0
    assert two == pytest.approx(2 * one - 1.0 * US, rel=1e-9)


def test_make_copier_passes_the_fallback_and_counts_whole_folios(round_platform):
    """make_copier("dma", fallback=...): with half of the descriptors failing, "batch" (v3/v4:
    a failure aborts the batch, cleanup_dma_work) sends all 100 folios of the batch back to
    the CPU (P(no failure) = 2^-100), "folio" only the failed ones (binomial(100, 0.5));
    the counts are whole folios (int64), also without failures."""
    from migsim.cost.copiers import make_copier

    nr, nbytes = np.array([100, 0]), np.array([100 * 4096.0, 0.0])
    out = {}
    for mode in ("batch", "folio"):
        c = make_copier("dma", channels=1, fail_rate=0.5, fallback=mode)
        assert c.fallback_mode == mode
        out[mode] = c.copy_batches(nr, nbytes, round_platform, np.random.default_rng(1))
    assert out["batch"].failed.tolist() == [100, 0]
    assert 0 < out["folio"].failed[0] < 100
    assert out["folio"].offloaded[0] == 100 - out["folio"].failed[0]
    ok = make_copier("dma", channels=1).copy_batches(nr, nbytes, round_platform, None)
    assert ok.failed.tolist() == [0, 0] and ok.offloaded.tolist() == [100, 0]
    for r in (*out.values(), ok):
        assert r.failed.dtype == np.int64 and r.offloaded.dtype == np.int64


def test_idle_timeline_switches_and_the_ticks_bound(round_platform):
    """run_timeline() alone on its CPU: each DMA sleep is two context switches (to the idle
    task and back): 3 sleeps, 6 switches; a tick taking half the CPU or more (1000 Hz x 500
    us) is refused with the numbers."""
    from migsim.cost.timeline import run_timeline

    t = run_timeline(np.full(4, 10e-6), np.full(3, 50e-6), round_platform, busy=False)
    assert (t.nr_sleeps, t.context_switches) == (3, 6)
    bad = round_platform.replace(sched__tick_hz=1000.0, sched__tick_irq_us=500.0)
    with pytest.raises(ValueError, match=r"the tick takes 50\.0% of the CPU; must be below 50%"):
        run_timeline(np.full(2, 10e-6), np.full(1, 50e-6), bad, busy=False)


def test_a_platform_without_a_section_is_refused_naming_it(tmp_path):
    """load_platform(): a file without the dma section names the file and the section."""
    import yaml

    from migsim.cost.platform import DEFAULT_PLATFORM, PlatformError, load_platform

    doc = yaml.safe_load(DEFAULT_PLATFORM.read_text())
    del doc["parameters"]["dma"]
    path = tmp_path / "nodma.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlatformError, match=rf"^platform: {path}: missing section 'dma'$"):
        load_platform(path)


def test_free_block_bounds_widen_by_256_per_changed_pageblock():
    """free_blocks_total_range(): the bounds on the free block count without a recount widen
    by 256 (the most free blocks of order 0-8 one pageblock can hold) per pageblock changed
    since the last exact count. 16 pageblocks, pfns 1526..2057 allocated: block 2 keeps its
    first 502 pages free (7 buddy blocks: 256+128+64+32+16+4+2), block 3 none, block 4 its last
    502 (7); 13 whole pageblocks, 6 of them in aligned pairs: 7 order-9/10 blocks; 21 in all.
    Freeing pfns 1526..1545 (block 2's last 10, block 3's first 10) through the vectorised
    accounting makes block 2 whole (14 whole, still 6 pairs: 8) and dirties two pageblocks:
    (max(14 + 8 - 512, 8), 14 + 8 + 512) = (8, 534); the exact count is 8 + 2 (block 3: 8 + 2
    pages) + 7 = 17."""
    from migsim.kernel.zone import ALLOCATED, Zone

    z = Zone(16 * 512)
    z.state[1526:2058] = ALLOCATED
    z.recount()
    assert z.free_area_counts().sum() == 21 and z.free_blocks_total_range() == (21, 21)
    z.free_to_buddy(np.arange(1526, 1546))
    assert z.free_blocks_total_range() == (8, 534)
    assert z.free_area_counts().sum() == 17 and z.free_blocks_total_range() == (17, 17)


def test_a_skipped_block_does_not_move_the_cached_migrate_pfn():
    """isolate_migratepages(): a pageblock marked skip is passed before its migratetype is
    looked at (isolation_suitable() fails first: `continue` without update_cached_migrate), so
    an unmovable block 0 that is also marked skip leaves the async cached migrate pfn at 0,
    where test_async_direct_compaction_takes_only_movable_source_blocks' unmarked one moves it
    to 1024; block 1's first 32 LRU pages are isolated either way. reset_cached_positions()
    puts the free scanner at the zone's last pageblock (pageblock_start_pfn(zone_end - 1))."""
    from migsim.kernel.compaction import MIGRATE_ASYNC, CompactControl
    from migsim.kernel.zone import LRU, MIGRATE_UNMOVABLE, Zone

    z = Zone(8 * 512)
    z.state[: 4 * 512] = LRU
    z.recount()
    z.migratetype[0] = MIGRATE_UNMOVABLE
    z.skip[0] = True
    cc = CompactControl(order=9, mode=MIGRATE_ASYNC, direct_compaction=True, free_pfn=7 * 512)
    c = _compactor(z)
    c.isolate_migratepages(cc)
    assert sorted(np.concatenate(cc.migratepages).tolist()) == list(range(512, 544))
    assert z.compact_cached_migrate_pfn == [0, 0]
    c.reset_cached_positions()
    assert z.compact_cached_free_pfn == 7 * 512 and z.compact_cached_migrate_pfn == [0, 0]


def test_the_free_scanner_passes_an_unmovable_block():
    """isolate_freepages() -> suitable_migration_target(): a pageblock that is not MOVABLE is
    no migration target (unless the last priority ignores block suitability). Block 7 is
    UNMOVABLE with 100 free pages, block 6 MOVABLE with 100 free from offset 200: the 100
    targets for 100 pages to migrate are all block 6's (pfns 3272..3371), none of block 7's."""
    from migsim.kernel.compaction import CompactControl
    from migsim.kernel.zone import FREE, LRU, MIGRATE_UNMOVABLE, Zone

    z = Zone(8 * 512)
    z.state[:] = LRU
    z.state[7 * 512 : 7 * 512 + 100] = FREE
    z.migratetype[7] = MIGRATE_UNMOVABLE
    z.state[6 * 512 + 200 : 6 * 512 + 300] = FREE
    z.recount()
    cc = CompactControl(order=9, free_pfn=7 * 512, nr_migratepages=100)
    _compactor(z).isolate_freepages(cc)
    got = np.concatenate(cc.freepages)
    assert sorted(got.tolist()) == list(range(3272, 3372))


def test_zone_check_names_the_invariant_broken_and_free_lists_of_a_whole_zone():
    """Zone.check() raises AssertionError naming the first invariant broken: a per-pageblock
    free count, the count of free order-10 blocks, the pcp count. A zone of 4 whole free
    pageblocks has no free block below order 9 (free_list(3) is empty) and two order-10
    blocks at pfns 0 and 1024."""
    from migsim.kernel.zone import Zone

    z = Zone(4 * 512)
    assert z.free_list(3).tolist() == [] and z.free_list(10).tolist() == [0, 1024]
    z.check()
    for broken, why in (
        (lambda z: z.nr_free_pb.__setitem__(0, 511), "per-pageblock free counts out of sync"),
        (lambda z: setattr(z, "_nr_pairs", 1), "count of free order-10 blocks out of sync"),
        (lambda z: setattr(z.pcp, "count", 1), "pcp->count out of sync"),
    ):
        z = Zone(4 * 512)
        broken(z)
        with pytest.raises(AssertionError, match=f"^{re.escape(why)}$"):
            z.check()


def test_deferred_and_defer_reset_marks_by_hand():
    """compaction_deferred() (mm_compaction_deferred) after one defer_compaction(9) on a fresh
    zone: shift 1, order_failed stays 0 (defer_compaction only lowers it), so the first call
    of order 9 is deferred (considered 1 < limit 2: fields (9, 1, 1, 0)) and
    the second is not (considered reaches 2: no event); compaction_defer_reset(9, success)
    (mm_compaction_defer_reset) clears considered and shift and raises order_failed to 10:
    (9, 0, 0, 10). Each event is marked under its own kind."""
    from migsim.kernel.compaction import M_DEFER_RESET, M_DEFERRED, MARK_ARGS, Compactor
    from migsim.kernel.zone import Zone

    c = Compactor(Zone(8 * 512), trace=True)
    c.defer_compaction(9)
    assert c.compaction_deferred(9) and not c.compaction_deferred(9)
    c.compaction_defer_reset(9, True)
    marks = c.log().marks
    assert marks[marks[:, 0] == M_DEFERRED][:, MARK_ARGS:].tolist() == [[9, 1, 1, 0]]
    assert marks[marks[:, 0] == M_DEFER_RESET][:, MARK_ARGS:].tolist() == [[9, 0, 0, 10]]
