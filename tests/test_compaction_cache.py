"""The batch copy's cache effect between migrate_pages() calls (between_calls_refill_s):
checked against the Poisson set-conflict reading written out here, against the two copy paths
(the offloaded copy leaves L2 alone), against a 1 GiB move_pages() (the throughput table
cannot observe it), and in cost_log's accounting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from migsim.cost.copiers import make_copier
from migsim.kernel.compaction import W_BUDDY_FREED, Compactor
from migsim.kernel.fragment import FragmentConfig, fragment
from migsim.kernel.migrate import cost_batches
from migsim.studies import compaction as study

MB = 1 << 20


def evicted(window_lines: float, sets: float, ways: int) -> float:
    """P(at least `ways` of the other lines fall into a line's set): 1 - Poisson cdf."""
    lam = window_lines / sets
    return 1.0 - sum(math.exp(-lam) * lam**j / math.factorial(j) for j in range(ways))


def by_hand(n: int, reused: int, platform, cpu_copy: bool) -> float:
    c = platform.compaction
    lines = c.between_code_kb * 1024 / 64 + c.between_data_lines_count + reused
    per_folio = c.move_lines_count * 64 + (8192 if cpu_copy else 0)  # init_on_alloc off
    window = n * per_folio / 64
    l2 = evicted(window, c.l2_kb * 1024 / 64 / c.l2_ways_count, c.l2_ways_count)
    l3 = evicted(window, c.l3_kb * 1024 / 64 / c.l3_ways_count, c.l3_ways_count)
    return lines * (l2 * (c.l3_hit_us - c.l2_hit_us) + l3 * (c.dram_us - c.l3_hit_us)) * 1e-6


def test_the_priors_are_those_documented(quiet_platform):
    c = quiet_platform.compaction
    assert c.init_on_alloc_switch == 0
    assert (c.l2_kb, c.l2_ways_count, c.l3_kb, c.l3_ways_count) == (512.0, 8, 32768.0, 16)
    assert (c.between_code_kb, c.between_data_lines_count, c.dram_us) == (19.9, 56, 0.1)


@pytest.mark.parametrize("cpu_copy", [True, False])
def test_each_call_against_the_poisson_reading(quiet_platform, cpu_copy):
    n = np.array([32, 224, 256, 1, 0])
    reused = np.array([0, 256, 7, 0, 5])
    got = study.between_calls_refill_s(n, reused, quiet_platform, cpu_copy=cpu_copy)
    want = [
        by_hand(int(a), int(b), quiet_platform, cpu_copy)
        for a, b in zip(n[:-1], reused[:-1], strict=True)
    ]
    assert got[:-1] == pytest.approx(want, rel=1e-9)
    assert got[-1] == 0.0  # no call, no copy


def test_the_cpu_copy_evicts_and_the_offload_does_not(quiet_platform):
    """The finish_pageblock call (224 folios): the CPU copy streams 224 x 8 KiB = 1.75 MiB
    through a 512 KiB L2, so every reused line is refetched from L3 (and none from DRAM: the
    window is 6% of the 32 MiB L3); offloaded, only the folios' 12 lines each (168 KiB) pass,
    and < 1% of the lines go."""
    c = quiet_platform.compaction
    lines = c.between_code_kb * 1024 / 64 + c.between_data_lines_count + 256
    full = lines * (c.l3_hit_us - c.l2_hit_us) * 1e-6
    n, reused = np.array([224]), np.array([256])
    cpu = study.between_calls_refill_s(n, reused, quiet_platform, cpu_copy=True)[0]
    dma = study.between_calls_refill_s(n, reused, quiet_platform, cpu_copy=False)[0]
    assert cpu == pytest.approx(full, rel=1e-6)
    assert 0 < dma < 0.01 * full
    # (318 code + 56 data + 256 struct-page lines) x 34 cycles at 3.7 GHz: 5.8 us per call
    assert 5.5e-6 < cpu < 6.0e-6


def test_a_1gib_move_pages_cannot_observe_it(quiet_platform):
    """move_pages() of 1 GiB, 4K or 2M folios: one migrate_pages() batch and no scanner,
    free-list or drain work between copies. The CPU copy's 1 GiB window evicts the reused lines
    from L3 too, so the one refetch after it comes from DRAM (374 lines x 0.1 us = 37 us), but
    that is 1.4e-4 of the batch's stage-1 time (0.26 s), 300x below the throughput fit's 4.4%
    error; offloaded, nothing is evicted."""
    rng = np.random.default_rng(0)
    for folios, pages in ((262144, 262144), (512, 262144)):
        n, p = np.array([folios]), np.array([pages])
        for kind, cpu_copy in (("baseline", True), ("dma", False)):
            bc = cost_batches(n, p, n, make_copier(kind, channels=1), quiet_platform, rng)
            total = float(bc.sys_s[0] + bc.copy_wait_s[0])
            refill = study.between_calls_refill_s(n, [0], quiet_platform, cpu_copy=cpu_copy)[0]
            # (offloaded, the folios' own 12 lines each, 192 MiB for 262144, evict them too)
            assert 0 <= refill < 1e-3 * total, (folios, kind)


def test_cost_log_charges_it_after_each_call(quiet_platform, monkeypatch):
    """cost_log() adds call k's refill to the CPU burst after call k (its move_s), with the
    pages logged reaching the buddy lists after call k as the reused struct-page lines, and
    reports it in work_s (with the compaction work, not migrate_pages())."""
    zone = fragment(FragmentConfig(node_bytes=64 * MB, reserved_bytes=2 * MB))
    comp = Compactor(zone)
    for _ in range(4):
        comp.alloc_pages_node(9)
    log = comp.log()
    freed_after = np.append(log.work[1:, W_BUDDY_FREED], log.tail[W_BUDDY_FREED])
    # the pages reaching the buddy lists after the block's last call (its drain, then the bulk
    # frees of the next call): most of the block's 288
    assert freed_after.max() >= 200
    for dma in (False, True):
        expect = study.between_calls_refill_s(
            log.pages, freed_after, quiet_platform, cpu_copy=not dma
        )
        cost = study.cost_log(log, quiet_platform, dma=dma, busy=False)
        assert cost.work_s[study.BETWEEN_REFILL] == pytest.approx(expect.sum(), rel=1e-12)
        total = sum(cost.work_s.values())
        assert total == pytest.approx(cost.migrate_s + cost.compaction_s, rel=1e-12)
        with monkeypatch.context() as m:
            m.setattr(study, "between_calls_refill_s", lambda n, *a, **k: np.zeros(len(n)))
            off = study.cost_log(log, quiet_platform, dma=dma, busy=False)
        assert cost.calls.move_s - off.calls.move_s == pytest.approx(expect, rel=1e-9)
        assert cost.compaction_s - off.compaction_s == pytest.approx(expect.sum(), rel=1e-9)
        assert cost.migrate_s == off.migrate_s
