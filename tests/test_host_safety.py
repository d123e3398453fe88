"""The host probes leave the machine as they found it: MemAvailable back within tolerance, the
THP and compaction settings identical, the probe's memory unmapped -- after a normal run and
after a run interrupted by an exception, Ctrl-C or SIGTERM. The probe runs are marked
``host`` (tests/host_gate.py); the guard's own tests use stand-in files and always run."""

from __future__ import annotations

import os
import signal
import time

import pytest

from migsim.host import probe

SIZE = 512 << 20
# Other processes allocate and free while the test runs: MemAvailable is compared with a
# tolerance of 3/8 of the probe's region (waiting a few seconds for other tasks' transient
# allocations to go); a leak of the pages still mapped at free ratio 0.5 (half the region)
# would exceed it. The probe's own resident memory is checked tightly as well.
TOLERANCE = SIZE * 3 // 8
RSS_TOLERANCE = 32 << 20


def own_rss() -> int:
    """Resident memory of this process (VmRSS), bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def mem_available_settles(before: int, timeout_s: float = 10.0) -> int:
    """Poll mem_available() until it is within TOLERANCE of `before` or `timeout_s` passed;
    returns the last difference."""
    deadline = time.monotonic() + timeout_s
    while True:
        diff = mem_available() - before
        if abs(diff) < TOLERANCE or time.monotonic() > deadline:
            return diff
        time.sleep(0.5)


def mem_available() -> int:
    """MemAvailable plus the free pages parked on the per-CPU page lists (zoneinfo 'count:'):
    pages the probe freed last may sit there, outside NR_FREE_PAGES, until the lists drain."""
    pcp = 0
    with open("/proc/zoneinfo") as fh:
        for line in fh:
            parts = line.split()
            if parts and parts[0] == "count:":
                pcp += int(parts[1])
    return probe.mem_available_bytes() + pcp * 4096


def require_compaction_probe() -> None:
    try:
        probe.check_compaction_available()
    except probe.ProbeUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"compaction probe unavailable in CI: {exc}")
        pytest.skip(f"compaction probe unavailable here: {exc}")


def _mapped(addr: int) -> bool:
    """Whether any mapping of this process contains `addr` (VMAs may have merged)."""
    with open("/proc/self/maps") as fh:
        for line in fh:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= addr < hi:
                return True
    return False


class Recorder:
    """Hooks that record what the probe had changed while it held its memory."""

    def __init__(self, fail_at: str | None = None, exc: BaseException | None = None):
        self.addrs: list[int] = []
        self.rss_before = own_rss()
        self.during: dict[str, str] = {}
        self.fail_at, self.exc = fail_at, exc

    def hook(self, stage: str):
        def run(region):
            self.addrs.append(region.addr)
            assert _mapped(region.addr)
            self.during = probe.snapshot_settings()
            if stage == self.fail_at:
                if self.exc is None:
                    os.kill(os.getpid(), signal.SIGTERM)
                else:
                    raise self.exc

        return run

    def hooks(self):
        return {s: self.hook(s) for s in ("touched", "fragmented")}


def _check_restored(before: dict[str, str], avail_before: int, rec: Recorder) -> None:
    assert probe.snapshot_settings() == before
    assert rec.addrs, "the probe never reached its region"
    assert not any(_mapped(a) for a in rec.addrs)
    assert own_rss() - rec.rss_before < RSS_TOLERANCE
    diff = mem_available_settles(avail_before)
    assert abs(diff) < TOLERANCE, f"MemAvailable changed by {diff / 2**20:.0f} MiB"
    # the probe did change a setting while it ran (so the restore above is not vacuous)
    if before.get(str(probe.PROACTIVENESS), "0") != "0":
        assert rec.during[str(probe.PROACTIVENESS)] == "0"


@pytest.mark.host
def test_probe_run_restores_everything():
    require_compaction_probe()
    before, avail = probe.snapshot_settings(), mem_available()
    rec = Recorder()
    df = probe.probe_compaction(SIZE, ratios=(0.5,), repeats=1, hooks=rec.hooks())
    assert df.height == 1
    _check_restored(before, avail, rec)


@pytest.mark.host
@pytest.mark.parametrize(
    "stage,exc",
    [
        ("touched", RuntimeError("boom")),
        ("fragmented", RuntimeError("boom")),
        ("fragmented", KeyboardInterrupt()),
    ],
)
def test_probe_interrupted_by_exception_restores_everything(stage, exc):
    require_compaction_probe()
    before, avail = probe.snapshot_settings(), mem_available()
    rec = Recorder(stage, exc)
    with pytest.raises(type(exc)):
        probe.probe_compaction(SIZE, ratios=(0.5,), repeats=2, hooks=rec.hooks())
    _check_restored(before, avail, rec)


@pytest.mark.host
def test_probe_interrupted_by_sigterm_restores_everything():
    require_compaction_probe()
    old = signal.getsignal(signal.SIGTERM)
    before, avail = probe.snapshot_settings(), mem_available()
    rec = Recorder("fragmented", None)
    with pytest.raises(probe.ProbeInterrupted, match="SIGTERM"):
        probe.probe_compaction(SIZE, ratios=(0.5,), repeats=1, hooks=rec.hooks())
    _check_restored(before, avail, rec)
    assert signal.getsignal(signal.SIGTERM) is old


def test_size_cap_refused_before_any_work(monkeypatch):
    before = probe.snapshot_settings()
    avail = mem_available()
    too_big = (int(avail * 0.3) >> 21) << 21
    with pytest.raises(ValueError, match="25% of MemAvailable"):
        probe.probe_compaction(too_big, ratios=(0.5,), repeats=1)
    assert probe.snapshot_settings() == before


def test_settings_guard_restores_files(tmp_path):
    """SettingsGuard on stand-in files: sysfs choice files are restored to the selected word."""
    choice = tmp_path / "enabled"
    choice.write_text("always madvise [never]\n")
    plain = tmp_path / "proactiveness"
    plain.write_text("20\n")
    guard = probe.SettingsGuard()
    guard.set(choice, "madvise")
    guard.set(plain, "0")
    guard.set(plain, "5")  # a second change keeps the first original
    assert plain.read_text() == "5"
    guard.restore()
    assert choice.read_text() == "never" and plain.read_text() == "20"


def test_settings_guard_reports_unrestorable(tmp_path):
    f = tmp_path / "x"
    f.write_text("1")
    guard = probe.SettingsGuard()
    guard.set(f, "2")
    f.unlink()
    f.mkdir()  # now unwritable as a file
    with pytest.raises(RuntimeError, match="could not restore"):
        guard.restore()
