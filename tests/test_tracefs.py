"""Real traces: `migsim probe trace` (root, tracefs) and the importer on kernel text layouts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import host_gate
import pytest

from migsim.formats.trace import parse_trace, vmstat_from_events
from migsim.host import tracefs

# captured by `migsim probe trace` on this project's CI host (kernel 6.18) during compact_memory
REAL_618 = """\
# tracer: nop
#
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
              sh-11617   [000] .....  1420.446061: mm_compaction_begin: zone_start=0x1 migrate_pfn=0x1 free_pfn=0xe00 zone_end=0x1000, mode=sync
              sh-11617   [000] .....  1420.446063: mm_compaction_finished: node=0 zone=DMA      order=-1 ret=continue
              sh-11617   [000] .....  1420.446067: mm_compaction_isolate_migratepages: range=(0x1 ~ 0x200) nr_scanned=511 nr_taken=0
              sh-11617   [000] .....  1420.449326: mm_compaction_isolate_freepages: range=(0x2afe00 ~ 0x2afe40) nr_scanned=64 nr_taken=12
              sh-11617   [000] .....  1420.449322: mm_migrate_pages_start: mode=MIGRATE_SYNC reason=compaction
              sh-11617   [000] .....  1420.449381: mm_migrate_pages: nr_succeeded=12 nr_failed=0 nr_thp_succeeded=0 nr_thp_failed=0 nr_thp_split=0 nr_split=0 mode=MIGRATE_SYNC reason=compaction
              sh-11617   [000] .....  1420.449382: mm_compaction_migratepages: nr_migrated=12 nr_failed=0
              sh-11617   [000] .....  1420.446077: mm_compaction_end: zone_start=0x1 migrate_pfn=0xe00 free_pfn=0xe00 zone_end=0x1000, mode=sync status=complete
"""
# kernel 6.1 (no nr_split in mm_migrate_pages), perf script layout, an unknown event, a
# kcompactd wake-up, and a mangled line of a known event
OTHER = """\
 kcompactd0    45 [001]   812.000001: compaction:mm_compaction_kcompactd_wake: nid=0 order=9 classzone_idx=Normal
 kcompactd0    45 [001]   812.000100: migrate:mm_migrate_pages: nr_succeeded=30 nr_failed=2 nr_thp_succeeded=0 nr_thp_failed=0 nr_thp_split=0 mode=MIGRATE_SYNC_LIGHT reason=compaction
 kcompactd0    45 [001]   812.000200: compaction:mm_compaction_isolate_migratepages: range=(0x10 ~ 0x200) nr_scanned=496 nr_taken=32
      my-task-7-900     [001] d..1.   812.000300: sched_switch: prev_comm=x prev_pid=1 prev_prio=120 prev_state=S ==> next_comm=y next_pid=2 next_prio=120
      bash-900     [001] .....   812.000400: mm_migrate_pages: nr_succeeded=oops
"""


def test_real_618_lines_parse_and_account():
    imp = parse_trace(REAL_618.splitlines())
    assert imp.unparsed == 0 and not imp.skipped
    assert imp.events.height == 8
    v = vmstat_from_events(imp.events)
    assert v == {
        "pgmigrate_success": 12,
        "pgmigrate_fail": 0,
        "compact_isolated": 12,
        "compact_migrate_scanned": 511,
        "compact_free_scanned": 64,
        # compact_memory is not a direct compaction (no mm_compaction_try_to_compact_pages)
        "compact_stall": 0,
        "compact_success": 0,
        "compact_fail": 0,
    }
    end = imp.events.filter(imp.events["event"] == "mm_compaction_end")
    assert end["status"].to_list() == ["complete"]
    assert set(imp.events["task"]) == {"sh"} and set(imp.events["pid"]) == {11617}


def test_perf_script_61_layout_unknown_and_broken_lines():
    imp = parse_trace(OTHER.splitlines())
    assert imp.counts == {
        "mm_compaction_kcompactd_wake": 1,
        "mm_migrate_pages": 1,
        "mm_compaction_isolate_migratepages": 1,
    }
    assert imp.skipped == {"sched_switch": 1}
    assert imp.unparsed == 1 and "oops" in imp.unparsed_examples[0]
    v = vmstat_from_events(imp.events)
    assert (v["pgmigrate_success"], v["pgmigrate_fail"], v["compact_isolated"]) == (30, 2, 32)
    assert imp.events.filter(imp.events["event"] == "mm_migrate_pages")["status"][0] == (
        "MIGRATE_SYNC_LIGHT"
    )


# ---- snapshot and restore against a fake tracefs tree (no root needed) -----------------------


def _fake_tree(root: Path) -> None:
    (root / "per_cpu" / "cpu0").mkdir(parents=True)
    (root / "per_cpu" / "cpu0" / "stats").write_text("entries: 3\noverrun: 2\ndropped events: 1\n")
    (root / "tracing_on").write_text("1\n")
    (root / "buffer_size_kb").write_text("7 (expanded: 1408)\n")
    for system, event in (("compaction", "mm_compaction_begin"), ("migrate", "mm_migrate_pages")):
        d = root / "events" / system / event
        d.mkdir(parents=True)
        (d / "enable").write_text("0\n")


def test_restore_puts_back_what_snapshot_read(tmp_path, monkeypatch):
    _fake_tree(tmp_path)
    monkeypatch.setattr(tracefs, "is_mounted", lambda root=None: True)
    before = tracefs.snapshot(tmp_path)
    assert before.buffer_size_kb == "1408" and before.tracing_on == "1"
    assert before.enable == {"compaction/mm_compaction_begin": "0", "migrate/mm_migrate_pages": "0"}
    for p in tmp_path.glob("events/*/*/enable"):
        p.write_text("1")
    (tmp_path / "tracing_on").write_text("0")
    (tmp_path / "buffer_size_kb").write_text("65536")
    tracefs.restore(before, tmp_path)
    after = tracefs.snapshot(tmp_path)
    assert after == before
    assert tracefs._lost_events(tmp_path) == 3


def test_restore_reports_what_it_could_not_write(tmp_path, monkeypatch):
    _fake_tree(tmp_path)
    monkeypatch.setattr(tracefs, "is_mounted", lambda root=None: True)
    state = tracefs.snapshot(tmp_path)
    (tmp_path / "tracing_on").unlink()
    (tmp_path / "tracing_on").mkdir()  # unwritable
    with pytest.raises(RuntimeError, match="tracing_on"):
        tracefs.restore(state, tmp_path)
    # the other files were still restored
    assert (tmp_path / "buffer_size_kb").read_text() == "1408"


def test_probe_trace_needs_a_command():
    p = subprocess.run([sys.executable, "-m", "migsim.cli", "probe", "trace", "--"],
                       capture_output=True, text=True)  # fmt: skip
    assert p.returncode == 2 and "COMMAND" in p.stderr


# ---- the real host ----------------------------------------------------------------------------


@pytest.fixture
def host_lock():
    """Hold /tmp/host.lock: one process at a time touches the real kernel."""
    with host_gate.host_lock():
        yield


def tracefs_state():
    """Mounted?, and what a capture changes (read through a temporary mount if needed)."""
    mounted = tracefs.is_mounted()
    if not mounted:
        tracefs.mount()
    try:
        return tracefs.snapshot(mounted=mounted)
    finally:
        if not mounted:
            subprocess.run(["umount", str(tracefs.TRACEFS)], check=True)


def probe(out: Path, *command: str, **kw) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "migsim.cli", "probe", "trace", "--out", str(out), "--json"]
    return subprocess.run([*cmd, "--", *command], capture_output=True, text=True, **kw)


@pytest.mark.host
def test_real_compact_memory_trace_imports_and_matches_vmstat(tmp_path, host_lock):
    before = tracefs_state()
    out = tmp_path / "real.trace"
    p = probe(out, "sh", "-c", "echo 1 > /proc/sys/vm/compact_memory")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["lost_events"] == 0
    assert res["events"].get("mm_migrate_pages", 0) > 0, "compact_memory migrated nothing"
    imp = json.loads(subprocess.check_output(
        [sys.executable, "-m", "migsim.cli", "trace", "import", str(out), "--json"]))  # fmt: skip
    assert imp["unparsed"] == 0
    assert imp["vmstat"]["pgmigrate_success"] == res["vmstat_delta"]["pgmigrate_success"]
    assert tracefs_state() == before


@pytest.mark.host
def test_tracefs_restored_after_a_failing_command(tmp_path, host_lock):
    before = tracefs_state()
    p = probe(tmp_path / "t", "sh", "-c", "exit 3")
    assert p.returncode == 1 and json.loads(p.stdout)["returncode"] == 3
    assert tracefs_state() == before


@pytest.mark.host
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_tracefs_restored_after_an_interrupt(tmp_path, host_lock, sig):
    before = tracefs_state()
    cmd = [sys.executable, "-m", "migsim.cli", "probe", "trace", "--out", str(tmp_path / "t")]
    child = subprocess.Popen([*cmd, "--", "sleep", "30"], start_new_session=True)
    on = tracefs.TRACEFS / "tracing_on"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until the capture is running
        if tracefs.is_mounted() and on.read_text().strip() == "1" and _sleeping(child.pid):
            break
        time.sleep(0.05)
    else:
        child.kill()
        pytest.fail("the capture never started")
    os.killpg(child.pid, sig)  # as Ctrl-C does: the whole foreground group
    assert child.wait(timeout=30) != 0
    assert tracefs_state() == before


def _sleeping(pid: int) -> bool:
    """Has `pid` started its traced command (a child named sleep)?"""
    kids = Path(f"/proc/{pid}/task/{pid}/children")
    return any(
        Path(f"/proc/{k}/comm").read_text().strip() == "sleep"
        for k in kids.read_text().split()
        if Path(f"/proc/{k}/comm").exists()
    )


class _Umount:
    """subprocess.run stand-in for umount: EBUSY for the first `busy` calls (or forever)."""

    def __init__(self, busy: int | None):
        self.busy, self.calls = busy, []

    def __call__(self, cmd, **kw):
        self.calls.append(cmd)
        lazy = "-l" in cmd
        ok = lazy or (self.busy is not None and len(self.calls) > self.busy)
        msg = "" if ok else f"umount: {cmd[-1]}: target is busy."
        return subprocess.CompletedProcess(cmd, 0 if ok else 32, "", msg)


@pytest.mark.parametrize("busy", [0, 3])
def test_unmount_retries_while_busy(monkeypatch, tmp_path, busy):
    """A tracefs another task holds open for a moment is unmounted after retries (a twin run
    once left it mounted: umount exit 32, 'target is busy')."""
    fake = _Umount(busy)
    monkeypatch.setattr(tracefs.subprocess, "run", fake)
    monkeypatch.setattr(tracefs, "is_mounted", lambda root: True)
    monkeypatch.setattr(tracefs, "UMOUNT_WAIT_S", 0.0)
    assert tracefs.unmount(tmp_path) == ""
    assert fake.calls == [["umount", str(tmp_path)]] * (busy + 1)


def test_unmount_detaches_lazily_when_still_busy(monkeypatch, tmp_path):
    """Busy on every try: after UMOUNT_TRIES attempts it is detached with umount -l."""
    fake = _Umount(None)
    monkeypatch.setattr(tracefs.subprocess, "run", fake)
    monkeypatch.setattr(tracefs, "is_mounted", lambda root: True)
    monkeypatch.setattr(tracefs, "UMOUNT_WAIT_S", 0.0)
    assert tracefs.unmount(tmp_path) == ""
    assert fake.calls[-1] == ["umount", "-l", str(tmp_path)]
    assert len(fake.calls) == tracefs.UMOUNT_TRIES + 1
