"""Held against the real kernel: the host twin predicts, from a snapshot of this machine's
physical memory taken just before, what a real ``compact_memory`` does, counter by counter.

Why a snapshot: the pages a real compact_memory migrates vary more than tenfold from run to run
(where the fragmented region's pages physically lie, what other tasks' pages and large folios
surround them, where the first folio that cannot be migrated stops the zone). A simulator that
starts from its own synthetic layout cannot predict that; one that starts from the machine's
state (``migsim.host.snapshot``, ``migsim.host.twin``) can, so this test fails when the *model* is wrong,
not when the memory lies differently.

What can still make a single run miss: other tasks allocate and free while the snapshot is read
and while the scanners run (a second or two on a busy machine), so a page the snapshot shows
free may hold a new folio when the scanners get there. The twin reads the snapshot twice, back
to back, right before the trigger, and predicts from both; where the two predictions differ by
more than the drift rule allows (``twin.DRIFT_REL`` of a counter: memory moved, within one read
time, by amounts that change the compaction), the run is discarded with its reason printed, and
another is made (``twin.host_twin``, at most RUNS * MAX_ATTEMPTS_PER_RUN attempts). The model is
held to: EVERY accepted run predicts every counter within its tolerance (``twin.TOLERANCE``, the
issue's: pgmigrate_success, compact_migrate_scanned and compact_free_scanned within 15% or 1,000
pages, compact_isolated within 20%), and at least RUNS runs are accepted. The discarded runs
are printed and counted, never judged: the drift rule reads the two predictions only, never
the measured counters. The trace rule (``twin.trace_reasons``, session 4; where tracefs can be
mounted, as root it can) discards likewise a run whose trace shows what no snapshot can
predict: a zone the real compact_zone() ended ``contended`` (migrate_pages() -ENOMEM: a folio
that got no target and could not be split) where the twin's ran until its scanners met, or
another task's compact_zone() during the reads or the write; it reads the trace's statuses and
tasks, never the counters. A wrong model misses: the counters span 5,000 to 600,000 pages from run
to run.

Known limit (session 3, 2-core VM shared with 6 other jobs): what changes during the real
compaction itself no rule before the trigger can see. One loop of ten passes (load 6-15, 30
kept runs) passed ten in a row; the next loop of ten (load 11-21) failed 5 times, each time on
one kept run whose two snapshots agreed but whose real compaction stopped early
(pgmigrate_success +74.4%, +137.8%, +36.7%, +243.4% over-predicted; once
compact_migrate_scanned +16.9%). The twin's predictions from saved snapshots are the same with
the code of both loops. The compacting write runs under SCHED_FIFO (probe.realtime), so it is
not preempted, but the other CPU keeps running.

Session 4 (the per-zone trace and the trace rule): a loop of ten passes of the four host test
files at load 6.6-13.2 passed ten in a row (30 kept runs, every pgmigrate_success within
13.7%; 6 runs discarded, all by the drift rule). Three kept runs stopped early for real
(contended on a dirty page-cache large folio with buffers, order 4 to 6) and the twin stopped
with them (6,319 measured / 6,318 predicted, 50,688 / 50,651, 81,993 / 80,512). An earlier loop
of the same code without the progress note failed once in six passes (load 6.8-11.1): a kept
run whose real compaction stopped after 15 ms (3,685 pages measured, 138,814 predicted); its
trace details were not printed, so why the rule kept it is not known.

Session 5 (fresh VM, kernel 6.18 with deferred_init=lazy; the marker below stays): at load 0.1-0.7,
five `host twin --size 1G --runs 3 --seed 1` series kept 13 runs; 3 missed pgmigrate_success by
+25.5%, +29.5%, +28.2% (compact_isolated likewise; migrate_scanned within 4.1%). The per-zone trace
places every miss in the Normal zone: DMA and DMA32 end where the twin's do (no migrate_pages call;
the twin's DMA32 end 0xbfe00 against the kernel's 0xffe00 is the PCI hole, same counts), while in
Normal the kernel's scanners met 0x9e00-0xdc00 pfns below the twin's, its free scanner taking fewer
targets near the zone top than the snapshot shows. Later, at load 5-6 with the Normal zone grown
from 0xe0000 to 0x188000 managed pages, 12 single-run processes with the per-pageblock isolate
events traced all passed (worst -4.2%). The mechanism is not found.

Session 6 (fresh VM, same kernel; the xfail marker removed: this test is strict). The kernel's free
scanner traced per pageblock (mm_compaction_isolate_freepages: a pageblock it does not visit above
the meeting point is one suitable_migration_target() refused) against the twin's on the same
snapshot: the migratetype estimate was the mechanism of the over-predictions. Ranking blank pages
(no kpageflags bit) with slab and page tables as unmovable content, it called MOVABLE 133
pageblocks (11 runs) that the kernel skipped, slab pageblocks whose free pages the twin took as
targets, and made MOVABLE pageblocks of blank pages UNMOVABLE; from one saved snapshot of a later
run (its per-CPU pfns not saved) the old estimate predicts pgmigrate_success +126.7%, the new one
+0.2% (the real Normal zone ended contended; the new twin stops at the same migrate_pfn, the old
one had a target for that folio and went on). The new ranking
(snapshot.estimate_migratetypes: unmovable less LRU pages, then blank pages) misjudges 9 of them.
What the twin still cannot see: pages on the per-CPU lists that other tasks freed (blank in
kpageflags; zoneinfo gives their number, not their pfns) reach the buddy lists while the
compaction frees its sources; one kept run at load 6.7 under-predicted pgmigrate_success by
18.7%, its kernel free scanner taking 25,242 pages more than the snapshot showed in 813
pageblocks, with 21,193 such per-CPU pages in the snapshot. A loop of ten passes of the host tests
(load 5-9) then passed 9 times: 30 kept 1 GiB runs, pgmigrate_success -27.7%..+3.1%, the one miss
(pass 7) again an under-prediction (-27.7%: 209,109 measured); the per-pageblock test misjudged at
most 9 of 2,020 pageblocks. Tracing mm_page_pcpu_drain in 10 more runs (no miss among them), the
per-CPU lists gave the buddy lists 434 to 10,743 pages per run that the snapshot shows blank and
the region never held, with every kept run within 2.0%: what makes the under-predictions is not
found yet.

Session 6 also had a host test of the mechanism itself (56dfe36): the real free scanner, traced
per pageblock, visits a pageblock above where it stopped exactly when it is MOVABLE, so at most 1%
of those pageblocks may disagree with the snapshot's estimate. It held in 10 of 10 passes during
the session (at most 9 of 2,020) but failed in the lead's CI check of c8c9ed3, after the pipeline
and the rest of the suite had run on the same VM: 112 of 1,789 misjudged, then 101/1,657,
120/1,739 and 111/1,749 in three reruns (Normal zone; 97 of the 111 visited by the kernel but
estimated UNMOVABLE (69) or RECLAIMABLE (28): after that much churn pagetypeinfo's non-movable
budget goes to MOVABLE pageblocks). It is taken out until the estimate holds there (issue 15);
this test's counters passed in the same check (back in session 10, below).

Session 10 (same VM, load 1-4). Of 8 kept unpinned runs at 2 GiB, 3 over-predicted
pgmigrate_success by 14.6/21.2/28.2%: every migrate_pages() call agreed page for page until
the real free scanner met the migration scanner lower. The write had run on CPU 1 while the
region's freed pages sat on CPU 0's per-CPU list (zoneinfo's per-CPU counts): they never
reached the buddy lists, while CPU 1's list, other tasks' pages the snapshot shows allocated,
did and merged half-free pageblocks whole, which the free scanner refuses. The twin now pins
each run to one CPU (probe.pinned) and models that CPU's list (twin.writer_pcp): 8 pinned runs
within 1.5%, and the CPU mask is checked restored below. The per-pageblock test came back: its
misjudgements after churn (4.2-6.0% in the 8 runs) were wholly PG_reserved pageblocks (the
memory map of memory initialised late) ranked as unmovable; memmap_init_range() makes them
MOVABLE and no allocation claims them, so the estimate no longer counts PG_reserved pages
(7 of 19,789 pageblocks misjudged in the same runs).

Needs root (the probe writes compact_memory, /proc/kpageflags is root-only)."""

from __future__ import annotations

import os
from pathlib import Path

import host_gate
import numpy as np
import pytest

from migsim.cost.platform import DEFAULT_PLATFORM, load_platform
from migsim.host import probe, twin

pytestmark = [pytest.mark.host, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def _host_lock():
    """Hold the host lock for the module (taken before the per-test settings check)."""
    with host_gate.host_lock():
        yield


# The criterion (issue 15, "Done when"): `migsim host twin --size 2G --free-ratio 0.5`.
# Session 6 ran this test at 1 GiB: 9 of 10 host passes at load 5-9 (one kept run -27.7%
# pgmigrate_success, unexplained: per-CPU list pages of other tasks, whose pfns no /proc file
# gives, or free page reporting are candidates); 12 of 12 kept 2 GiB runs within tolerance
# (worst +6.8%). The 1 GiB miss is reported in the issue, not tested here.
SIZE = 2 << 30
RATIO = 0.5
RUNS = 3


def _require() -> None:
    why = ""
    if os.geteuid() != 0:
        why = f"needs root (uid {os.geteuid()}): /proc/kpageflags and compact_memory"
    elif not Path("/proc/kpageflags").exists():
        why = "/proc/kpageflags is missing (kernel without CONFIG_PROC_PAGE_MONITOR)"
    else:
        try:
            probe.check_compaction_available()
        except probe.ProbeUnavailable as exc:
            why = str(exc)
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} (required in CI)")
        print(f"SKIP: {why}")
        pytest.skip(why)


def _trace_state() -> tuple:
    """Is tracefs mounted, and if so the enable flag of each TWIN_EVENTS event, buffer_size_kb
    and tracing_on."""
    from migsim.host import tracefs

    if not tracefs.is_mounted(twin.TRACEFS):
        return (False,)
    root = twin.TRACEFS
    files = [root / "events" / e / "enable" for e in twin.TWIN_EVENTS]
    files += [root / "buffer_size_kb", root / "tracing_on"]
    return (True, *(f.read_text() if f.exists() else None for f in files))


def test_twin_predicts_every_real_compact_memory():
    _require()
    plat = load_platform(DEFAULT_PLATFORM)
    lines: list[str] = []
    doc = twin.host_twin(SIZE, RATIO, RUNS, 1, plat, progress=lines.append)
    report = "\n".join(lines)
    print(report)
    print(
        f"{len(doc['runs'])} runs accepted, {len(doc['discarded'])} discarded "
        f"({doc['discarded_by']}) in {doc['attempts']} attempts"
    )
    assert len(doc["runs"]) == RUNS, (
        f"only {len(doc['runs'])} of {doc['attempts']} runs free of drift (need {RUNS}):\n{report}"
    )
    bad = [(r["seed"], twin.misses(r["measured"], r["predicted"])) for r in doc["runs"]]
    bad = [(s, b) for s, b in bad if b]
    assert not bad, f"accepted runs predicted outside tolerance: {bad}\n{report}"


def _free_scanner_blocks(text: str, pid: int) -> tuple[set[int], dict[int, int]]:
    """From a trace text: the pageblocks task `pid`'s free scanner visited
    (mm_compaction_isolate_freepages: isolate_freepages_block() runs only on a pageblock
    suitable_migration_target() accepts), and per zone start the free_pfn of its
    mm_compaction_end (where the free scanner stopped)."""
    import re

    iso = re.compile(
        r"-(\d+)\s+\[\d+\].*: mm_compaction_isolate_freepages: range=\((0x[0-9a-f]+) ~"
    )
    end = re.compile(
        r"-(\d+)\s+\[\d+\].*: mm_compaction_end: zone_start=(0x[0-9a-f]+) migrate_pfn=0x[0-9a-f]+ "
        r"free_pfn=(0x[0-9a-f]+)"
    )
    visited, stops = set(), {}
    for line in text.splitlines():
        if (m := iso.search(line)) and int(m.group(1)) == pid:
            visited.add(int(m.group(2), 16) >> 9)
        elif (m := end.search(line)) and int(m.group(1)) == pid:
            stops[int(m.group(2), 16)] = int(m.group(3), 16)
    return visited, stops


# of the pageblocks judged; session 6, 19 runs: at most 0.6% per run; the old estimate 0.4-3.8%,
# above 1% in 15 of the 19. Session 10 (the test back, see the module docstring): 8 pinned runs
# 0-0.24% (7 of 19,789), 4.2-6.0% with PG_reserved pages ranked as unmovable content
MISJUDGED_MAX = 0.01


def test_free_scanner_takes_targets_where_the_snapshot_says_movable(monkeypatch):
    """The mechanism behind the counters: the real free scanner, traced per pageblock
    (mm_compaction_isolate_freepages), visits a pageblock above where it stopped exactly when
    suitable_migration_target() accepts it, i.e. (compact_node() leaves ignore_block_suitable
    unset) when the pageblock is MOVABLE and its first page is no free buddy of order >= 9.
    Every valid, not wholly free pageblock of every zone between the free scanner's start and
    stop is judged: visited, and the snapshot's estimate (snapshot.estimate_migratetypes) not
    MOVABLE, or not visited and estimated MOVABLE, is misjudged. At most MISJUDGED_MAX of them
    may be (what other tasks change meanwhile); the estimate of sessions 1-5, which ranked blank
    pages with slab pages, misjudged 0.4-3.8% per run on the saved traces of session 6 (above
    1% in 15 of 19 runs) and fails this."""
    from migsim.host import snapshot as S

    _require()
    if not twin.TraceGuard().available:
        pytest.skip("tracefs is not available")
    plat = load_platform(DEFAULT_PLATFORM)
    events = ("compaction/mm_compaction_isolate_freepages",)
    monkeypatch.setattr(twin, "TWIN_EVENTS", twin.TWIN_EVENTS + events)
    texts: list[tuple[str, int]] = []
    parse = twin.parse_twin_trace

    def keep(text, pid):
        texts.append((text, pid))
        return parse(text, pid)

    monkeypatch.setattr(twin, "parse_twin_trace", keep)
    snaps: list = []
    build = S.RawReader.build

    def keep_snap(self, *a, **kw):
        snaps.append(build(self, *a, **kw))
        return snaps[-1]

    monkeypatch.setattr(S.RawReader, "build", keep_snap)
    with probe.interrupt_guard(), probe.probe_settings(probe.SettingsGuard()):
        run = twin.twin_run(SIZE, RATIO, 1, plat)
    assert run["trace"]["traced"] and not run["trace"]["lost"], run["trace"]
    # pinned (probe.pinned): the writer's events all on the CPU the run was pinned to
    assert run["trace_cpus"] == [run["cpu"]], (run["trace_cpus"], run["cpu"])
    snap = snaps[0]  # the second read's, the one the prediction uses
    visited, stops = _free_scanner_blocks(*texts[-1])
    free = (snap.kind[: len(snap.block_valid) * twin.PB] == S.FREE).reshape(-1, twin.PB)
    judged = misjudged = 0
    for z in snap.zones:
        if z.start_pfn not in stops:
            continue
        lo = stops[z.start_pfn] // twin.PB + 1
        hi = twin.effective_end_pfn(snap, z) // twin.PB
        b = np.arange(lo, hi)
        b = b[snap.block_valid[b] & ~free[b].all(1)]
        seen = np.isin(b, list(visited))
        movable = snap.block_migratetype[b] == S.MIGRATE_MOVABLE
        judged += len(b)
        misjudged += int((seen != movable).sum())
    print(f"{misjudged} of {judged} pageblocks misjudged")
    assert judged > 100, f"only {judged} pageblocks judged: the free scanner hardly ran"
    assert misjudged <= MISJUDGED_MAX * judged, (
        f"{misjudged} of {judged} pageblocks misjudged (the snapshot's migratetype estimate "
        f"against the real free scanner), more than {MISJUDGED_MAX:.0%}"
    )


def test_twin_restores_settings_on_error_and_on_signal(monkeypatch):
    """A twin run that fails (or gets SIGTERM) in the middle, with tracing on,
    compaction_proactiveness at 0 and the task under SCHED_FIFO, leaves every setting, the trace
    event and the task's scheduling policy and nice value as it found them."""
    import signal

    _require()
    before = probe.snapshot_settings()
    sched = (os.sched_getscheduler(0), os.sched_getparam(0), os.getpriority(os.PRIO_PROCESS, 0))
    cpus = os.sched_getaffinity(0)
    trace_before = _trace_state()
    plat = load_platform(DEFAULT_PLATFORM)
    real = probe.trigger_compaction
    calls = {"n": 0}

    def failing(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # the measured run (the first call settles), under SCHED_FIFO
            raise RuntimeError("injected failure")
        return real(*args, **kw)

    def signalled(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kw)

    for fn, exc in ((failing, RuntimeError), (signalled, probe.ProbeInterrupted)):
        calls["n"] = 0
        monkeypatch.setattr(probe, "trigger_compaction", fn)
        guard = probe.SettingsGuard()
        with pytest.raises(exc), probe.interrupt_guard(), probe.probe_settings(guard):
            assert probe.PROACTIVENESS.read_text().strip() == "0"
            twin.twin_run(64 << 20, RATIO, 1, plat)
        assert probe.snapshot_settings() == before
        # the FIFO policy of the write and the nice value of the reads are the task's again
        assert (
            os.sched_getscheduler(0),
            os.sched_getparam(0),
            os.getpriority(os.PRIO_PROCESS, 0),
        ) == sched
        assert os.sched_getaffinity(0) == cpus  # the run's pinning (probe.pinned) undone
        # tracefs mounted as before (the twin mounts it for its run and unmounts it), and
        # every event it enabled, the buffer size and tracing_on as found
        assert _trace_state() == trace_before
