"""Tracepoint events of simulated runs: the kernel's TP_printk layout, re-import, vmstat,
allocation latency on the costed run's clock."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest

from migsim.cli import main
from migsim.formats.trace import (
    TRACE_EVENTS,
    format_lines,
    parse_trace,
    read_trace,
    simulated_events,
    vmstat_from_events,
    write_trace_text,
)
from migsim.kernel.compaction import M_ALLOC_ENTER, Compactor
from migsim.kernel.fragment import FragmentConfig, fragment
from migsim.kernel.vmstat import alloc_latency_us, mark_times, vmstat_from_log
from migsim.studies.compaction import COMPACTION_RUNS, simulate

# ---- regexes written from the kernel headers (TP_printk of each event), not from trace.py
# include/trace/events/compaction.h, include/trace/events/mmflags.h, include/trace/events/migrate.h
HEX = r"0x[0-9a-f]+"
STATUS = (
    r"(skipped|deferred|continue|success|partial_skipped|complete|no_suitable_page|"
    r"not_suitable_zone|contended)"
)
ZONE8 = r"(DMA     |DMA32   |Normal  |Movable |Device  )"  # %-8s of ZONE_TYPE
MODE = r"(MIGRATE_ASYNC|MIGRATE_SYNC_LIGHT|MIGRATE_SYNC)"
REASON = (
    r"(compaction|memory_failure|memory_hotplug|syscall_or_cpuset|mempolicy_mbind|"
    r"numa_misplaced|contig_range|longterm_pin|demotion|damon)"
)
GFP = r"(GFP_\w+|__GFP_\w+)(\|(GFP_\w+|__GFP_\w+))*"
SCANNERS = rf"zone_start={HEX} migrate_pfn={HEX} free_pfn={HEX} zone_end={HEX}, mode=(sync|async)"
DEFER = rf"node=\d+ zone={ZONE8} order=-?\d+ order_failed=-?\d+ consider=\d+ limit=\d+"
HEADER_FORMATS = {
    "mm_compaction_isolate_migratepages": rf"range=\({HEX} ~ {HEX}\) nr_scanned=\d+ nr_taken=\d+",
    "mm_compaction_isolate_freepages": rf"range=\({HEX} ~ {HEX}\) nr_scanned=\d+ nr_taken=\d+",
    "mm_compaction_migratepages": r"nr_migrated=\d+ nr_failed=\d+",
    "mm_compaction_begin": SCANNERS,
    "mm_compaction_end": SCANNERS + rf" status={STATUS}",
    "mm_compaction_try_to_compact_pages": rf"order=-?\d+ gfp_mask={GFP} priority=-?\d+",
    "mm_compaction_finished": rf"node=\d+ zone={ZONE8} order=-?\d+ ret={STATUS}",
    "mm_compaction_suitable": rf"node=\d+ zone={ZONE8} order=-?\d+ ret={STATUS}",
    "mm_compaction_deferred": DEFER,
    "mm_compaction_defer_compaction": DEFER,
    "mm_compaction_defer_reset": DEFER,
    "mm_migrate_pages": (
        r"nr_succeeded=\d+ nr_failed=\d+ nr_thp_succeeded=\d+ nr_thp_failed=\d+ "
        rf"nr_thp_split=\d+ nr_split=\d+ mode={MODE} reason={REASON}"
    ),
    "mm_migrate_pages_start": rf"mode={MODE} reason={REASON}",
}
# kernel/trace/trace_output.c trace_print_context: "%16s-%-7d [%03d] " + 5 flag chars +
# " %5lu.%06lu: " then the event name and its fields
CONTEXT = re.compile(r"^(?P<comm>.{16})-(?P<pid>[0-9 ]{7}) \[\d{3}\] [.\w]{5} +\d+\.\d{6}: "
                     r"(?P<event>\w+): (?P<fields>.*)$")  # fmt: skip


@pytest.fixture(scope="module")
def failing_run(platform):
    """A small node asked for more blocks than compaction can make: failures, deferrals."""
    return simulate(platform, node_bytes=64 << 20, allocations=24, trace=True)


def events_of(sim, platform, mode="baseline", **kw):
    res = sim.result(platform, mode=mode, **kw)
    ev, total = simulated_events(res.log, res.cost, zone_start=0, zone_end=sim.zone_pfns[1])
    return res, ev, total


def test_every_event_matches_its_kernel_format(failing_run, platform):
    _, ev, _ = events_of(failing_run, platform)
    seen = set()
    for line in format_lines(ev):
        m = CONTEXT.match(line)
        assert m, line
        assert m["comm"].lstrip() and m["comm"] == m["comm"].rjust(16)
        assert re.fullmatch(HEADER_FORMATS[m["event"]], m["fields"]), line
        seen.add(m["event"])
    # the run exercises every event the simulator writes
    assert seen == set(HEADER_FORMATS)


def test_defer_limit_is_a_power_of_two_and_finished_status(failing_run, platform):
    _, ev, _ = events_of(failing_run, platform)
    defer = ev.filter(pl.col("event").str.starts_with("mm_compaction_defer"))
    limits = [int(t.rsplit("limit=", 1)[1]) for t in defer["text"]]
    assert all(x & (x - 1) == 0 for x in limits)
    fin = ev.filter(pl.col("event") == "mm_compaction_finished")["status"].to_list()
    # the direct compactor continues at pageblock boundaries with no_suitable_page (kernel
    # __compact_finished) and inside a pageblock with continue
    assert {"no_suitable_page", "continue"} <= set(fin)


@pytest.mark.parametrize("mode", ["baseline", "busy-dma"])
def test_reimported_trace_gives_back_the_vmstat_counters(failing_run, platform, mode):
    res, ev, _ = events_of(failing_run, platform, mode=mode, channels=1)
    imp = parse_trace(format_lines(ev))
    assert imp.unparsed == 0 and not imp.skipped
    got = vmstat_from_events(imp.events)
    assert got == {k: res.vmstat[k] for k in got}
    assert res.vmstat["pgmigrate_fail"] > 0  # the run has failures to account for
    # and direct compactions of every outcome (compact_stall/_success/_fail from the events)
    assert min(res.vmstat[k] for k in ("compact_stall", "compact_success", "compact_fail")) > 0
    assert imp.events.height == ev.height
    assert imp.events["time_s"].diff().drop_nulls().min() >= 0


def test_cli_trace_round_trip_full_chain(tmp_path, failing_run, capsys):
    """`migsim compaction --trace` then `migsim trace import --json`: the counters agree. (Both
    through migsim.cli.main in-process, what `python -m migsim.cli` runs; the CLI as a real
    process: tests/test_cli_throughput.py, tests/test_vmstat.py.)"""
    trace = tmp_path / "run.trace"
    args = ["compaction", "--node-size", "64M", "--allocations", "24", "--json"]
    assert main([*args, "--trace", str(trace)]) == 0
    run = json.loads(capsys.readouterr().out)
    out = tmp_path / "ev.parquet"
    assert main(["trace", "import", str(trace), "--json", "--out", str(out)]) == 0
    imp = json.loads(capsys.readouterr().out)
    assert imp["unparsed"] == 0
    for key, value in imp["vmstat"].items():
        assert run["vmstat"][key] == value, key
    assert imp["migrate_calls"] == run["migrate_calls"]
    TRACE_EVENTS.check_file(out)
    assert set(run["alloc_latency_us"]) == {"p5", "p25", "p50", "p75", "p90", "p95", "p99"}


def test_trace_cap_says_so(tmp_path, capsys):
    trace = tmp_path / "run.trace"
    args = ["compaction", "--node-size", "64M"]
    args += ["--allocations", "4", "--trace", str(trace), "--trace-max-events", "10"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "wrote the first 10" in err and "--trace-max-events" in err
    assert read_trace(trace).events.height == 10


def test_trace_is_deterministic(platform):
    a = simulate(platform, node_bytes=64 << 20, allocations=8, trace=True, seed=3)
    b = simulate(platform, node_bytes=64 << 20, allocations=8, trace=True, seed=3)
    la = list(format_lines(events_of(a, platform)[1]))
    lb = list(format_lines(events_of(b, platform)[1]))
    assert la == lb and len(la) > 50


def test_tracing_changes_nothing_the_run_reports(platform):
    plain = simulate(platform, node_bytes=64 << 20, allocations=24)
    traced = simulate(platform, node_bytes=64 << 20, allocations=24, trace=True)
    assert plain.vmstat == traced.vmstat
    assert np.array_equal(plain.log.pages, traced.log.pages)
    assert np.array_equal(plain.log.work, traced.log.work)
    rp, rt = plain.result(platform, mode="dma"), traced.result(platform, mode="dma")
    assert np.array_equal(rp.alloc_latency_us, rt.alloc_latency_us)
    assert rp.wall_ms == rt.wall_ms


def test_vmstat_from_the_log_equals_the_counters(failing_run):
    got = vmstat_from_log(failing_run.log)
    assert got == {k: failing_run.vmstat[k] for k in got}


# ---- allocation latency ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["baseline", "dma", "busy-baseline", "busy-dma"])
def test_one_allocation_latency_is_the_whole_run(platform, mode):
    """One allocation from a fresh fragmented node: the fast path fails at once, so its
    slow path is the whole run and its latency the run's wall time. (The fast path's
    get_page_from_freelist comes before the slow path's entry: its cost is set to 0 here.)"""
    platform = platform.replace(compaction__freelist_us=0.0)
    sim = simulate(platform, node_bytes=64 << 20, allocations=1)
    res = sim.result(platform, mode=mode, channels=1)
    assert len(res.alloc_latency_us) == 1
    assert res.alloc_latency_us[0] == pytest.approx(res.cost.timeline.wall_s * 1e6, rel=1e-9)


def test_latencies_one_per_slow_path_entry_and_sum_within_wall(failing_run, platform):
    res = failing_run.result(platform, mode="busy-baseline")
    entries = int((failing_run.log.marks[:, 0] == M_ALLOC_ENTER).sum())
    assert len(res.alloc_latency_us) == entries == 24
    assert (res.alloc_latency_us > 0).all()
    assert res.alloc_latency_us.sum() <= res.cost.timeline.wall_s * 1e6 * (1 + 1e-9)
    # marks are in time order on the costed clock
    t = mark_times(res.log, res.cost)
    assert (np.diff(t) >= -1e-12).all() and t[-1] <= res.cost.timeline.wall_s * (1 + 1e-9)


def test_busy_mode_stretches_latency(failing_run, platform):
    idle = failing_run.result(platform, mode="baseline").alloc_latency_us
    busy = failing_run.result(platform, mode="busy-baseline").alloc_latency_us
    # the hog's fair share doubles the work (plus switches): more than 1.9x each
    slow = idle > 100
    assert (busy[slow] > 1.9 * idle[slow]).all()


def test_latency_in_run_row_and_parquet_schema(failing_run, platform):
    row = failing_run.result(platform, mode="baseline").row()
    df = COMPACTION_RUNS.frame([row])
    assert df["alloc_latency_us"].list.len()[0] == 24
    assert df["alloc_latency_p50_us"][0] == pytest.approx(
        float(np.percentile(row["alloc_latency_us"], 50))
    )


def test_compactor_without_trace_marks_only_the_slow_path(platform):
    zone = fragment(FragmentConfig(node_bytes=64 << 20), node_cpus=4)
    comp = Compactor(zone)
    for _ in range(4):
        comp.alloc_pages_node(9)
    kinds = set(comp.log().marks[:, 0].tolist())
    assert kinds <= {0, 1, 2}  # M_ALLOC_ENTER, M_ALLOC_EXIT, M_MIGRATE_FAIL
    with pytest.raises(ValueError, match="trace"):
        res = simulate(platform, node_bytes=64 << 20, allocations=2).result(
            platform, mode="baseline"
        )
        simulated_events(res.log, res.cost, zone_start=0, zone_end=1)


def test_alloc_latency_us_needs_costed_calls(failing_run, platform):
    res = failing_run.result(platform, mode="baseline")
    res.cost.calls = None
    with pytest.raises(ValueError, match="per-call"):
        alloc_latency_us(res.log, res.cost)


def test_a_tracefs_capture_with_no_events_imports_as_zero_events(tmp_path):
    """Only a file that is not a trace is refused: a capture with its header and no event."""
    f = tmp_path / "quiet.trace"
    write_trace_text(pl.DataFrame(schema=TRACE_EVENTS.polars_schema()), f)
    imp = read_trace(f)
    assert imp.events.height == 0 and imp.header and imp.unparsed == 0


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "empty file"),
        (b"\n  \n", "empty file"),
        (b"PK\x03\x04\x00\x00binary", "binary file"),
        (b"mode,channels\nbaseline,1\n", "not a trace: none of its 2 lines"),
    ],
)
def test_a_file_that_is_not_a_trace_is_refused(tmp_path, content, why):
    f = tmp_path / "x.trace"
    f.write_bytes(content)
    with pytest.raises(ValueError, match=why):
        read_trace(f)


# ---- compact_stall/_success/_fail of real traces: sequences as mm/page_alloc.c and
# mm/compaction.c emit them (one task; Z: a zone's fields, R: a defer_reset)
Z = "node=0 zone=Normal   order=9"
SCAN = "zone_start=0x1000 migrate_pfn=0x1000 free_pfn=0x9000 zone_end=0xa000, mode=async"
TRY = ("mm_compaction_try_to_compact_pages", "order=9 gfp_mask=GFP_TRANSHUGE priority=2")
R = ("mm_compaction_defer_reset", f"{Z} order_failed=10 consider=0 limit=1")
BEGIN = ("mm_compaction_begin", SCAN)


def suitable(ret):
    return ("mm_compaction_suitable", f"{Z} ret={ret}")


def end(status):
    return ("mm_compaction_end", f"{SCAN} status={status}")


DEFERRED = ("mm_compaction_deferred", f"{Z} order_failed=9 consider=1 limit=2")


def counters(*events) -> tuple[int, int, int]:
    lines = [
        f"            a.out-4242    [000] .....   {100 + i / 1e3:.6f}: {e}: {f}"
        for i, (e, f) in enumerate(events)
    ]
    imp = parse_trace(lines)
    assert imp.unparsed == 0, imp.unparsed_examples
    v = vmstat_from_events(imp.events)
    return v["compact_stall"], v["compact_success"], v["compact_fail"]


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        # every zone skipped (COMPACT_SKIPPED): no stall
        ((TRY, suitable("skipped")), (0, 0, 0)),
        ((TRY, suitable("not_suitable_zone")), (0, 0, 0)),
        # deferred: try_to_compact_pages returns COMPACT_DEFERRED, a stall, no page
        ((TRY, DEFERRED), (1, 0, 1)),
        # compacted, page captured or on the free lists: the zone's reset and the alloc's
        ((TRY, suitable("continue"), BEGIN, end("success"), R, R), (1, 1, 0)),
        # compacted to success, the allocation then failed: only the zone's reset
        ((TRY, suitable("continue"), BEGIN, end("success"), R), (1, 0, 1)),
        # compacted without success, nothing on the free lists
        ((TRY, suitable("continue"), BEGIN, end("complete")), (1, 0, 1)),
        # ... or a page on the free lists all the same (only the allocation's reset)
        ((TRY, suitable("continue"), BEGIN, end("partial_skipped"), R), (1, 1, 0)),
        # before 6.6: watermark met, suitable says success; 6.6+: nothing but the resets
        ((TRY, suitable("success"), R, R), (1, 1, 0)),
        ((TRY, R, R), (1, 1, 0)),
        ((TRY, R), (1, 0, 1)),
        # two zones: one skipped, the next deferred
        ((TRY, suitable("skipped"), DEFERRED), (1, 0, 1)),
        # two direct compactions of one allocation (async, then sync-light)
        ((TRY, suitable("continue"), BEGIN, end("complete"), TRY, DEFERRED), (2, 0, 2)),
    ],
)
def test_direct_compaction_counters_from_kernel_sequences(events, expected):
    assert counters(*events) == expected


def test_compactions_of_other_tasks_are_not_direct():
    """kcompactd's or compact_memory's compact_zone() (no try_to_compact_pages) is no stall."""
    assert counters(BEGIN, end("complete"), R) == (0, 0, 0)
