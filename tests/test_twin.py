"""The host twin's compact_node on small hand-built snapshots: every expected count below is
worked out by hand from mm/compaction.c (v6.18), not by the code under test."""

from __future__ import annotations

import numpy as np
import pytest
from host_snapshot_util import DIRTY_PRIVATE, FREE, HEAD, LRU_ANON, LRU_FILE, TAIL, snapshot

from migsim.host import probe, twin

PB = 512


def _two_halves() -> np.ndarray:
    """4 pageblocks: block 0 = 256 anon pages then an order-8 free buddy; blocks 1, 2 free;
    block 3 = an order-8 free buddy then 256 anon pages."""
    f = np.full(4 * PB, FREE, dtype=np.uint64)
    f[:256] = LRU_ANON
    f[3 * PB + 256 :] = LRU_ANON
    return f


def test_two_halves_counted_as_the_kernel_counts():
    # zone start 0: pageblock_start(last_migrated_pfn = 0) equals that of the zone start, so
    # the first pass is a finish_pageblock pass: 256 pages isolated, 512 pfns scanned (256
    # pages plus nr_scanned += (1 << 8) - 1 for the buddy). The free scanner takes block 3's
    # order-8 buddy whole (256 scanned, 256 isolated) and stops. Blocks 1 and 2 are order-9
    # buddies (their pair blocks are not free): 512 each for the migration scanner, which
    # then meets the free scanner in block 3.
    nc = twin.compact_node(snapshot(_two_halves()))
    v = nc.vmstat
    assert v["pgmigrate_success"] == 256
    assert v["compact_migrate_scanned"] == 512 + 512 + 512
    assert v["compact_free_scanned"] == 256
    assert v["compact_isolated"] == 256 + 256
    assert nc.call_pages.tolist() == [256]


def test_min_watermark_stops_the_free_scanner():
    # __isolate_free_page(): NR_FREE_PAGES (1536) - 256 <= min (1436) fails: the scan stops
    # at the buddy head (1 scanned), compaction_alloc() returns NULL, migrate_pages() -ENOMEM
    # with the scanners apart: COMPACT_CONTENDED, nothing migrated
    nc = twin.compact_node(snapshot(_two_halves(), wmark_min=1436))
    v = nc.vmstat
    assert v["pgmigrate_success"] == 0
    assert v["compact_free_scanned"] == 1
    assert v["compact_migrate_scanned"] == 512
    assert v["compact_isolated"] == 256


def _folio_case(folio_flags: int) -> np.ndarray:
    """Block 0: 64 anon pages, an order-6 folio at pfn 64, then free; block 3: 64 free single
    pages (every other pfn of its first 128) among anon pages; blocks 1, 2 free."""
    f = np.full(4 * PB, FREE, dtype=np.uint64)
    f[:64] = LRU_ANON
    f[64:128] = folio_flags | TAIL
    f[64] = folio_flags | HEAD
    blk3 = 3 * PB
    f[blk3 : blk3 + PB] = LRU_ANON
    f[blk3 : blk3 + 128 : 2] = FREE
    return f


def test_unsplittable_large_folio_ends_the_zone():
    # the list is walked from its head (last isolated first): the order-6 folio asks for an
    # order-6 target; only order-0 pages are free (the free scanner takes all 64 of block 3,
    # scanning its 512 pfns, then meets the migration scanner), so compaction_alloc() gives
    # NULL; a dirty page-cache folio with private data cannot be split: -ENOMEM, nothing moves
    nc = twin.compact_node(snapshot(_folio_case(LRU_FILE | DIRTY_PRIVATE)))
    v = nc.vmstat
    assert v["pgmigrate_success"] == 0
    assert v["pgmigrate_fail"] == 64
    assert v["compact_free_scanned"] == 512
    assert v["compact_isolated"] == 128 + 64


def test_splittable_large_folio_is_retried_as_base_pages():
    # an anonymous large folio is split (try_split_folio) and its 64 pages retried after the
    # other 64: 64 targets for 128 pages, so 64 migrate and the 65th base page ends the call
    nc = twin.compact_node(snapshot(_folio_case(LRU_ANON)))
    assert nc.vmstat["pgmigrate_success"] == 64
    assert nc.vmstat["compact_isolated"] == 128 + 64


def test_free_scanner_stride_grows_over_blocks_without_free_pages():
    # 8 pageblocks: block 0 has 32 anon pages (then free); blocks 4..7 are full of anon pages
    # except block 4's 32 free pages at its end. The free scanner starts at block 7 with stride
    # 1 (MIGRATE_SYNC): 512 visits, nothing, stride 2: 256 visits in block 6, stride 4: 128
    # in block 5; block 4 with stride 8 visits 64 pfns and finds the order-5 buddy head at
    # offset 480 (a multiple of 8): isolated whole, enough (32 >= 32), the scan stops there
    # after 60 visits + 32 (the buddy) = 92 -- total 512 + 256 + 128 + 92
    f = np.full(8 * PB, LRU_ANON, dtype=np.uint64)
    f[32:PB] = FREE
    f[PB : 4 * PB] = FREE
    f[4 * PB + 480 : 5 * PB] = FREE
    nc = twin.compact_node(snapshot(f))
    assert nc.vmstat["compact_free_scanned"] == 512 + 256 + 128 + 92
    assert nc.vmstat["pgmigrate_success"] == 32


def test_cost_fit_recovers_the_scales_it_was_given():
    from migsim.calibrate.host import fit_twin_costs

    # t = 3 * scan + 0.5 * other on runs whose scan share varies 10x: both scales come back;
    # the common scale is the geometric mean of t / (scan + other)
    rows = [(s, o, 3 * s + 0.5 * o) for s, o in ((0.1, 0.1), (0.02, 0.2), (0.05, 0.05))]
    a, b = fit_twin_costs(rows, split=True)
    assert abs(a - 3) < 1e-9 and abs(b - 0.5) < 1e-9
    k, k2 = fit_twin_costs([(1.0, 1.0, 4.0), (1.0, 3.0, 4.0)])
    assert k == k2 and abs(k - (2.0 * 1.0) ** 0.5) < 1e-12
    # the same scan share in every training run cannot separate the two: common scale
    assert fit_twin_costs([(1.0, 1.0, 2.0), (2.0, 2.0, 4.0)], split=True) == (1.0, 1.0)


def test_pages_freed_onto_the_pcp_list_start_on_the_pcp_list():
    # the twin's own freed pages that kpageflags shows blank sit on the per-CPU list; without
    # the hint they are allocated memory
    from migsim.kernel.zone import PCP

    f = _two_halves()
    f[3 * PB : 3 * PB + 256] = 0  # on a pcp list: no KPF bit
    f[PB : 3 * PB] = LRU_ANON  # nothing else free below
    snap = snapshot(f)
    assert twin.compact_node(snap).vmstat["pgmigrate_success"] == 0
    snap.pcp_pfns = np.arange(3 * PB, 3 * PB + 256)
    tz = twin.zone_from_snapshot(snap, snap.zones[0])
    # pcp->high is 1000 (zoneinfo): all 256 stay on the list at first
    assert tz.zone.pcp.count == 256 and tz.zone.nr_free == 256
    assert (tz.zone.state[3 * PB : 3 * PB + 256] == PCP).all()


def test_zoneinfo_gives_each_cpus_pcp_count_and_high():
    from host_snapshot_util import zoneinfo

    from migsim.host import snapshot as S

    (zi,) = S.parse_zoneinfo(zoneinfo(2048, 0, cpus=((5, 100), (256, 300))))
    assert zi.pcp_cpus == [[0, 5, 100], [1, 256, 300]]
    assert (zi.pcp_count, zi.pcp_high) == (261, 300)
    assert zi.cpu_pcp(1) == (256, 300) and zi.cpu_pcp(2) is None


@pytest.mark.parametrize(
    ("meta", "high", "on_list"),
    [
        # freed and compacted on CPU 1: its list, its high (300), the freed pages on it
        ({"free_cpu": 1, "writer_cpu": 1}, 300, True),
        # freed on CPU 0, compacted on CPU 1: the writer's high; the freed pages stay on CPU
        # 0's list (no drain in compact_memory), allocated memory to the twin
        ({"free_cpu": 0, "writer_cpu": 1}, 300, False),
        ({"free_cpu": 1, "writer_cpu": 0}, 1000, False),
        # neither recorded (saved raw files): the largest high, the freed pages on the list
        ({}, 1000, True),
    ],
)
def test_the_writers_per_cpu_list_takes_the_freed_pages_only_if_freed_there(meta, high, on_list):
    from migsim.kernel.zone import KERNEL, PCP

    f = _two_halves()
    f[3 * PB : 3 * PB + 256] = 0
    snap = snapshot(f, cpus=((0, 1000), (256, 300)))
    snap.pcp_pfns = np.arange(3 * PB, 3 * PB + 256)
    snap.meta.update(meta)
    assert twin.writer_pcp(snap, snap.zones[0]) == (high, on_list)
    tz = twin.zone_from_snapshot(snap, snap.zones[0])
    assert tz.zone.pcp.high == high
    assert tz.zone.pcp.count == (256 if on_list else 0)
    blank = tz.zone.state[3 * PB : 3 * PB + 256]
    assert (blank == (PCP if on_list else KERNEL)).all()


def test_busy_buffer_pages_fail_and_the_run_goes_on():
    # block-device metadata pages (file LRU, private buffers, folio not uptodate) are isolated
    # but fail to migrate (pgmigrate_fail); unlike -ENOMEM the compaction continues: the 256
    # anon pages of block 0 migrate as before and the 8 busy pages of block 1 fail
    from migsim.host import snapshot as S

    f = _two_halves()
    f[PB : PB + 8] = (1 << S.KPF_LRU) | (1 << S.KPF_PRIVATE)
    v = twin.compact_node(snapshot(f)).vmstat
    assert v["pgmigrate_success"] == 256 and v["pgmigrate_fail"] == 8


def test_misses_applies_both_tolerances():
    m = dict.fromkeys(twin.TOLERANCE, 5000)
    p = {**m, "pgmigrate_success": 5999}
    assert twin.misses(m, p) == []  # within 1,000 pages, though 20% off
    p["compact_isolated"] = 6001
    assert twin.misses(m, p) == ["compact_isolated measured 5,000 predicted 6,001 (+20.0%)"]


def test_drift_rule_reads_the_two_predictions_only():
    last = dict.fromkeys(twin.TOLERANCE, 100_000)
    assert twin.drift_reasons({**last, "compact_isolated": 104_999}, last) == []
    bad = twin.drift_reasons({**last, "compact_free_scanned": 94_000}, last)
    assert bad == [
        "compact_free_scanned 94,000 from the first snapshot, 100,000 from the second (-6.0%)"
    ]
    small = dict.fromkeys(twin.TOLERANCE, 2_000)
    assert twin.drift_reasons({**small, "pgmigrate_success": 2_300}, small) == []  # 300 pages
    assert twin.drift_reasons({**small, "pgmigrate_success": 2_301}, small) != []


def test_twin_bad_input_names_the_flag_and_the_range():
    import pytest

    from migsim.limits import LimitError

    with pytest.raises(LimitError, match=r"^--free-ratio: must be .*\(0, 1\), got 1.5$"):
        twin.host_twin("64M", 1.5, 1)
    with pytest.raises(LimitError, match=r"^--runs: must be a whole number >= 1, got 0$"):
        twin.host_twin("64M", 0.5, 0)
    with pytest.raises(LimitError, match=r"^--size: must be a size from 2M"):
        twin.host_twin("1M", 0.5, 1)


def test_pinned_runs_on_one_cpu_and_restores_the_mask_also_on_error():
    import os

    before = os.sched_getaffinity(0)
    with probe.pinned() as cpu:
        assert os.sched_getaffinity(0) == {cpu}
        assert probe.current_cpu() == cpu
    assert os.sched_getaffinity(0) == before
    with pytest.raises(RuntimeError), probe.pinned(min(before)):
        assert os.sched_getaffinity(0) == {min(before)}
        raise RuntimeError("boom")
    assert os.sched_getaffinity(0) == before
    with (
        pytest.raises(ValueError, match="cpu: 4096 is not in this task's CPU mask"),
        probe.pinned(4096),
    ):
        pass
    assert os.sched_getaffinity(0) == before


def test_realtime_restores_the_policy_also_on_error():
    """probe.realtime(): SCHED_FIFO inside (root), the task's own policy and priority after,
    also when the block raises; without CAP_SYS_NICE it runs the block at the task's own."""
    import os

    import pytest

    from migsim.host import probe

    before = (os.sched_getscheduler(0), os.sched_getparam(0), os.getpriority(os.PRIO_PROCESS, 0))
    with probe.realtime() as policy:
        inside = os.sched_getscheduler(0)
    if policy == "fifo":
        assert inside == os.SCHED_FIFO | os.SCHED_RESET_ON_FORK
    else:
        assert os.geteuid() != 0 and inside == before[0]
    with pytest.raises(RuntimeError), probe.realtime():
        raise RuntimeError("injected")
    after = (os.sched_getscheduler(0), os.sched_getparam(0), os.getpriority(os.PRIO_PROCESS, 0))
    assert after == before


def test_thread_times_counts_this_threads_cpu_only():
    """probe.thread_times(): CPU seconds grow by the work done (CLOCK_THREAD_CPUTIME_ID), not
    while the thread sleeps."""
    import time

    from migsim.host import probe

    c0, _ = probe.thread_times()
    time.sleep(0.2)
    c1, _ = probe.thread_times()
    t = time.thread_time()
    while time.thread_time() - t < 0.05:
        pass
    c2, d2 = probe.thread_times()
    assert c1 - c0 < 0.05  # asleep: next to nothing
    assert c2 - c1 >= 0.05  # 50 ms of spinning
    assert d2 >= 0.0


_TRACE = """\
# tracer: nop
          python-1234    [001] ..... 100.000100: mm_compaction_begin: zone_start=0x1000 migrate_pfn=0x1000 free_pfn=0xffe00 zone_end=0x100000, mode=sync
          python-1234    [001] ..... 100.000200: mm_compaction_end: zone_start=0x1000 migrate_pfn=0xffe00 free_pfn=0xffe00 zone_end=0x100000, mode=sync status=complete
          python-1234    [001] ..... 100.000300: mm_compaction_begin: zone_start=0x100000 migrate_pfn=0x100000 free_pfn=0x43fe00 zone_end=0x440000, mode=sync
          python-1234    [001] ..... 100.001000: mm_migrate_pages: nr_succeeded=32 nr_failed=0 nr_thp_succeeded=0 nr_thp_failed=0 nr_thp_split=0 nr_split=0 mode=MIGRATE_SYNC reason=compaction
      kcompactd0-40      [000] ..... 100.001100: mm_compaction_begin: zone_start=0x100000 migrate_pfn=0x100000 free_pfn=0x43fe00 zone_end=0x440000, mode=sync
          python-1234    [001] ..... 100.002000: mm_migrate_pages: nr_succeeded=200 nr_failed=24 nr_thp_succeeded=0 nr_thp_failed=0 nr_thp_split=0 nr_split=1 mode=MIGRATE_SYNC reason=compaction
          python-1234    [001] ..... 100.002100: mm_compaction_end: zone_start=0x100000 migrate_pfn=0x200600 free_pfn=0x43e000 zone_end=0x440000, mode=sync status=contended
"""  # noqa: E501


def test_parse_twin_trace_keeps_the_writers_zones_and_counts_the_others():
    # the lines above by hand: two zones of task 1234, two compaction calls in the second
    t = twin.parse_twin_trace(_TRACE, 1234)
    assert t["calls"] == [32, 200]
    assert t["failed"] == [0, 24]
    assert t["call_s"] == [100.001, 100.002]
    assert [z["status"] for z in t["zones"]] == ["complete", "contended"]
    z = t["zones"][1]
    assert (z["zone_start"], z["migrate_pfn"], z["free_pfn"]) == (0x100000, 0x200600, 0x43E000)
    assert (z["calls"], z["last_call_failed"]) == (2, 24)
    assert t["zones"][0]["calls"] == 0
    assert t["other"] == {"kcompactd0: mm_compaction_begin": 1}


def _run(measured_status: str, predicted_status: str, other=None, lost=0) -> dict:
    t = twin.parse_twin_trace(_TRACE, 1234)
    t["zones"][1]["status"] = measured_status
    return {
        "zones": {
            "measured": t["zones"],
            "predicted": {
                "0:DMA32": {"zone_start": 0x1000, "migrate_pfn": 0xBFE00, "status": "complete"},
                "0:Normal": {
                    "zone_start": 0x100000,
                    "migrate_pfn": 0x300000,
                    "status": predicted_status,
                },
            },
        },
        "trace": {"traced": True, "other": other or {}, "lost": lost},
    }


def test_trace_rule_reads_statuses_and_tasks_only():
    # a zone stopped contended where the twin's ran to the end: discarded, naming the zone
    (why,) = twin.trace_reasons(_run("contended", "complete"))
    assert "0:Normal ended contended at migrate_pfn 0x200600" in why
    # both stopped (the twin found the unsplittable folio too) or both complete: kept
    assert twin.trace_reasons(_run("contended", "contended")) == []
    assert twin.trace_reasons(_run("complete", "complete")) == []
    # the twin stopped where the real run went on: a model miss, kept to be judged
    assert twin.trace_reasons(_run("complete", "contended")) == []
    # the snapshot holds a folio the twin cannot split where the real zone stopped: kept
    r = _run("contended", "complete")
    r["stop_context"] = {"0x100000": {"unsplittable_pages": 4}}
    assert twin.trace_reasons(r) == []
    r["stop_context"] = {"0x100000": {"unsplittable_pages": 0}}
    assert len(twin.trace_reasons(r)) == 1
    # another task's compact_zone meanwhile; other events of other tasks do not count
    busy = {"kcompactd0: mm_compaction_begin": 1, "kswapd0: mm_migrate_pages": 3}
    (why,) = twin.trace_reasons(_run("complete", "complete", busy))
    assert "kcompactd0: mm_compaction_begin x1" in why
    # no judgement where events were lost or nothing was traced
    assert twin.trace_reasons(_run("contended", "complete", lost=5)) == []
    r = _run("contended", "complete")
    r["trace"]["traced"] = False
    assert twin.trace_reasons(r) == []


def test_stop_context_counts_the_unsplittable_folio_where_a_zone_stopped():
    # pageblock 1 holds an order-2 page-cache folio with private data, dirty (4 pages the
    # twin cannot split) and an order-2 anonymous one; the zone stopped at pfn 1.5 pageblocks
    f = np.full(4 * PB, FREE, dtype=np.uint64)
    f[PB : PB + 4] = [LRU_FILE | HEAD | DIRTY_PRIVATE] + [LRU_FILE | TAIL | DIRTY_PRIVATE] * 3
    f[PB + 4 : PB + 8] = [LRU_ANON | HEAD] + [LRU_ANON | TAIL] * 3
    c = twin.stop_context(snapshot(f), PB + PB // 2)
    assert c["pageblock_pfn"] == PB
    assert c["unsplittable_pages"] == 4
    assert c["large_folio_pages"] == 8
    assert twin.stop_context(snapshot(f), 3 * PB)["unsplittable_pages"] == 0


def test_stop_note_names_the_contended_zone_and_an_unjudged_trace():
    r = _run("contended", "contended", lost=3)
    r["stop_context"] = {"0x100000": {"unsplittable_pages": 4}}
    note = twin.stop_note(r)
    assert "real zone 0x100000 ended contended at migrate_pfn 0x200600 after 2 calls" in note
    assert "the last failed 24 pages" in note and "'unsplittable_pages': 4" in note
    assert "the trace lost 3 events" in note
    assert twin.stop_note(_run("complete", "complete")) == ""


def _schedstat_tree(root, threads: dict[tuple[int, int], str]) -> None:
    """A synthetic /proc: for each (pid, tid) a task/<tid>/schedstat holding the given text."""
    for (pid, tid), text in threads.items():
        d = root / str(pid) / "task" / str(tid)
        d.mkdir(parents=True)
        (d / "schedstat").write_text(text)
    (root / "self").mkdir()  # not a pid: ignored


def test_task_times_sums_the_other_threads_schedstat(tmp_path):
    """Other threads' sum_exec_runtime and run_delay (ns) read, the writer left out, a
    malformed file skipped; the deltas summed per thread (a thread that exits in between no
    longer makes the sum negative: a twin run saw -3.56 s of others' CPU in a 0.51 s write)."""
    _schedstat_tree(
        tmp_path,
        {
            (10, 10): "1000000000 250000000 7\n",
            (10, 11): "500000000 0 3\n",  # the writer, excluded
            (20, 20): "2000000 3000000 1\n",
            (30, 30): "garbage\n",
        },
    )
    before = probe.task_schedstat(exclude_tid=11, proc=str(tmp_path))
    assert before == {10: (1_000_000_000, 250_000_000), 20: (2_000_000, 3_000_000)}
    # then: thread 10 ran 0.1 s more and waited 0.05 s, 20 exited, 40 started and ran 0.02 s
    after = {10: (1_100_000_000, 300_000_000), 40: (20_000_000, 1_000_000)}
    cpu, delay, n = probe.task_times(before, after)
    assert n == 2
    assert cpu == pytest.approx(0.12, abs=1e-12)
    assert delay == pytest.approx(0.051, abs=1e-12)


@pytest.mark.parametrize(
    ("cpu_ns", "delay_ns", "share"),
    [
        (300_000_000, 0, 1.0),  # alone, or SCHED_FIFO: never waits on the run queue
        (300_000_000, 300_000_000, 0.5),  # one CFS task of equal weight on its CPU
        (300_000_000, 600_000_000, 1 / 3),  # two
        (0, 5_000_000, 1.0),  # nothing ran: no share measured
    ],
)
def test_share_from_schedstat_maps_cpu_to_wall(tmp_path, cpu_ns, delay_ns, share):
    """The writer's share from its schedstat deltas, and the wall it gives for a predicted
    CPU time: cpu / share (+ sleeps); the fitted-seconds step writes both per run."""
    _schedstat_tree(tmp_path, {(5, 5): f"{cpu_ns} {delay_ns} 1\n"})
    cpu, delay, _ = probe.task_times({}, probe.task_schedstat(proc=str(tmp_path)))
    got = twin.writer_share(cpu, delay)
    assert got == pytest.approx(share, rel=1e-12)
    assert twin.wall_from_share(0.2, got, 0.01) == pytest.approx(0.2 / share + 0.01, rel=1e-12)
    counters = dict.fromkeys(twin.TOLERANCE, 1000)  # predicted exactly: both runs train
    runs = [
        {
            "measured": {**counters, "seconds": 0.4},
            "predicted": {**counters, "scan_seconds": 0.01, "other_seconds": 0.09},
            "cpu_seconds": c,
            "run_delay_seconds": d,
        }
        for c, d in ((0.3, 0.0), (cpu, delay))
    ]
    twin.add_fitted_seconds(runs)
    r = runs[1]
    assert r["cpu_share"] == pytest.approx(share, rel=1e-12)
    # the CPU scale is fitted on run 0 alone (0.3 s for 0.1 s predicted): 3x, then / share
    assert r["predicted"]["cpu_seconds_fitted"] == pytest.approx(0.3, rel=1e-9)
    assert r["predicted"]["seconds_fitted_share"] == pytest.approx(0.3 / share, rel=1e-9)


def test_wall_from_share_refuses_a_share_outside_0_1():
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="share"):
            twin.wall_from_share(0.1, bad)


def test_targets_are_counted_where_they_lie():
    # _two_halves: the one target is block 3's order-8 buddy (256 pages). Blocks 1 and 2 are
    # order-9 buddies free page reporting reported (PG_reported = KPF_UPTODATE on their
    # heads): suitable_migration_target() refuses them (a buddy of order >= pageblock_order
    # at the first page), so no target lies in a reported block and the same 256 pages move
    from migsim.host import snapshot as S

    up = 1 << S.KPF_UPTODATE
    f = _two_halves()
    f[PB] |= up
    f[2 * PB] |= up
    snap = snapshot(f)
    assert snap.reported_blocks().tolist() == [False, True, True, False]
    nc = twin.compact_node(snap)
    assert nc.vmstat["pgmigrate_success"] == 256
    assert nc.targets["targets"] == 256 and nc.targets["reported"] == 0
    # the twin did not free them: foreign; block 3 reported at the early read (split since):
    # 256 once-reported targets in one pageblock
    assert nc.targets["foreign"] == 256 and nc.targets["once_reported"] == 0
    snap.reported_before = np.array([False, False, False, True])
    nc = twin.compact_node(snap)
    assert (nc.targets["once_reported"], nc.targets["once_reported_blocks"]) == (256, 1)
    # the twin's own freed pages (its fill wrote them): neither foreign nor once reported
    snap.freed_pfns = np.arange(3 * PB, 3 * PB + 256)
    nc = twin.compact_node(snap)
    assert nc.targets["foreign"] == 0 and nc.targets["once_reported"] == 0
    assert nc.vmstat["pgmigrate_success"] == 256


def test_a_run_whose_counters_missed_trains_no_cost_fit():
    # three runs of 0.1 s predicted work: two took 0.2 s (scale 2), one 0.02 s -- and that one
    # migrated 7x fewer pages than predicted (a miss of the issue's tolerance). Run 0's fit
    # uses run 1 alone: 2x; the missed run is still predicted (from runs 0 and 1: 2x)
    def run(seed, measured_s, pages):
        return {
            "seed": seed,
            "measured": {**dict.fromkeys(twin.TOLERANCE, 60_000), "pgmigrate_success": pages,
                         "seconds": measured_s},
            "predicted": {**dict.fromkeys(twin.TOLERANCE, 60_000), "scan_seconds": 0.02,
                          "other_seconds": 0.08},
            "cpu_seconds": measured_s,
        }  # fmt: skip

    runs = [run(1, 0.2, 60_000), run(2, 0.2, 60_000), run(3, 0.02, 8_000)]
    twin.add_fitted_seconds(runs)
    assert [r["fit_seeds"] for r in runs] == [[2], [1], [1, 2]]
    for r in runs:
        assert r["predicted"]["seconds_fitted"] == pytest.approx(0.2, rel=1e-12)
        assert r["predicted"]["cpu_seconds_fitted"] == pytest.approx(0.2, rel=1e-12)


def test_the_hypervisors_steal_is_no_compaction_cost():
    # runs of 0.1 s predicted work: two took 0.2 s of wall and CPU; the third 0.35 s of wall,
    # 0.15 s of it stolen from the writer's CPU by the hypervisor (0.2 s of CPU). The wall fit
    # trains on wall less steal: 2x for every run (not pulled up by the third); the load-mapped
    # wall adds the run's own steal
    def run(seed, wall, steal):
        c = dict.fromkeys(twin.TOLERANCE, 60_000)
        return {"seed": seed, "measured": {**c, "seconds": wall},
                "predicted": {**c, "scan_seconds": 0.02, "other_seconds": 0.08},
                "cpu_seconds": 0.2, "run_delay_seconds": 0.0, "writer_steal_seconds": steal}  # fmt: skip

    runs = [run(1, 0.2, 0.0), run(2, 0.2, 0.0), run(3, 0.35, 0.15)]
    twin.add_fitted_seconds(runs)
    for r in runs:
        assert r["predicted"]["seconds_fitted"] == pytest.approx(0.2, rel=1e-12)
    assert runs[2]["predicted"]["seconds_fitted_share"] == pytest.approx(0.35, rel=1e-12)
    assert runs[0]["predicted"]["seconds_fitted_share"] == pytest.approx(0.2, rel=1e-12)


def test_the_writers_steal_is_its_cpus():
    assert twin._on_cpu([0.01, 0.18], 1) == 0.18
    assert twin._on_cpu([0.01], 3) == 0.0
