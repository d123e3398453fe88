"""The host probes leave the machine as they found it: the THP and compaction settings
identical, the probe's memory unmapped and this process's resident memory back where it was --
after a normal run and after a run interrupted by an exception, Ctrl-C or SIGTERM; while it runs
the probe holds no more than the region it was asked for. The probe runs are marked ``host``
(tests/host_gate.py); the guard's own tests use stand-in files and always run.

Memory is checked against this process's own accounting (/proc/self/status), never against the
whole machine's MemAvailable, which other processes move by hundreds of MiB: the checks fail
only if migsim itself keeps or takes more than it states."""

from __future__ import annotations

import os
import signal

import host_gate
import pytest

from migsim.host import probe

SIZE = 512 << 20
# Slack for this process's own allocations besides the region (the probe's numpy arrays of
# pfns and masks: 8 bytes per page of the region = 1 MiB at 512 MiB, the interpreter's heap):
# far below a leak of the region's pages still mapped at free ratio 0.5 (256 MiB).
RSS_TOLERANCE = 32 << 20


def own_status(field: str) -> int:
    """A memory line of /proc/self/status (VmRSS, VmLck, VmPin, ...), bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/self/status")


def own_rss() -> int:
    """Resident memory of this process (VmRSS), bytes."""
    return own_status("VmRSS")


@pytest.fixture(scope="module", autouse=True)
def _host_lock(request):
    """The probe runs change kernel settings and compact real memory: where they run, the
    module holds the host lock (one process at a time touches the kernel; module scope: taken
    before conftest's per-test settings snapshot). Where they are skipped nothing waits."""
    config = request.config
    enabled, _ = host_gate.host_tests_enabled(
        dict(os.environ), os.geteuid(), config.getoption("markexpr"), config.getoption("--host")
    )
    if not enabled:
        yield
        return
    with host_gate.host_lock():
        yield


def require_compaction_probe() -> None:
    try:
        probe.check_compaction_available()
    except probe.ProbeUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"compaction probe unavailable in CI: {exc}")
        pytest.skip(f"compaction probe unavailable here: {exc}")


def _mapped(addr: int, nbytes: int) -> bool:
    """Whether one mapping of this process covers all of [addr, addr + nbytes) (the region's
    VMA, perhaps merged with a neighbour). Not "contains addr": once the probe has unmapped
    its region, the process may map something new at the freed address (Polars and NumPy
    allocate between the probe's munmap and this check; seen in CI on a fresh VM), and that
    says nothing about the probe. The probe's madvise calls change no VMA flags on part of the
    region, so while it runs one VMA covers it all (checked in the hook)."""
    with open("/proc/self/maps") as fh:
        for line in fh:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= addr and addr + nbytes <= hi:
                return True
    return False


class Recorder:
    """Hooks that record what the probe had changed while it held its memory."""

    def __init__(self, fail_at: str | None = None, exc: BaseException | None = None):
        self.addrs: list[tuple[int, int]] = []  # (addr, nbytes) of the region at each stage
        self.rss_before = own_rss()
        self.locked_before = own_status("VmLck") + own_status("VmPin")
        self.rss_during: list[int] = []  # this process's VmRSS at each stage
        self.resident: list[int] = []  # the region's present pages at each stage, bytes
        self.during: dict[str, str] = {}
        self.fail_at, self.exc = fail_at, exc

    def hook(self, stage: str):
        def run(region):
            self.addrs.append((region.addr, region.nbytes))
            assert _mapped(region.addr, region.nbytes)
            self.rss_during.append(own_rss())
            self.resident.append(int(region.present().sum()) * 4096)
            self.during = probe.snapshot_settings()
            if stage == self.fail_at:
                if self.exc is None:
                    os.kill(os.getpid(), signal.SIGTERM)
                else:
                    raise self.exc

        return run

    def hooks(self):
        return {s: self.hook(s) for s in ("touched", "fragmented")}


def _check_restored(before: dict[str, str], rec: Recorder, size: int = SIZE) -> None:
    """Settings as before; while the probe ran, its region held at most `size` bytes and this
    process grew by no more than that (plus RSS_TOLERANCE); after it, the region is unmapped,
    this process is back within RSS_TOLERANCE and nothing stayed locked or pinned."""
    assert probe.snapshot_settings() == before
    assert rec.addrs, "the probe never reached its region"
    assert max(rec.resident) <= size
    assert max(rec.resident) > 0  # the region was really faulted in (the checks see it)
    grew = max(rec.rss_during) - rec.rss_before
    assert grew < size + RSS_TOLERANCE, (
        f"the probe took {grew >> 20} MiB for a {size >> 20}M region"
    )
    assert not any(_mapped(a, n) for a, n in rec.addrs)
    kept = own_rss() - rec.rss_before
    assert kept < RSS_TOLERANCE, f"this process kept {kept >> 20} MiB after the probe"
    assert own_status("VmLck") + own_status("VmPin") <= rec.locked_before
    # the probe did change a setting while it ran (so the restore above is not vacuous)
    if before.get(str(probe.PROACTIVENESS), "0") != "0":
        assert rec.during[str(probe.PROACTIVENESS)] == "0"


@pytest.mark.host
def test_probe_run_restores_everything():
    require_compaction_probe()
    before = probe.snapshot_settings()
    rec = Recorder()
    df = probe.probe_compaction(SIZE, ratios=(0.5,), repeats=1, hooks=rec.hooks())
    assert df.height == 1
    _check_restored(before, rec)


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
    before = probe.snapshot_settings()
    rec = Recorder(stage, exc)
    with pytest.raises(type(exc)):
        probe.probe_compaction(SIZE, ratios=(0.5,), repeats=2, hooks=rec.hooks())
    _check_restored(before, rec)


@pytest.mark.host
def test_probe_interrupted_by_sigterm_restores_everything():
    require_compaction_probe()
    old = signal.getsignal(signal.SIGTERM)
    before = probe.snapshot_settings()
    rec = Recorder("fragmented", None)
    with pytest.raises(probe.ProbeInterrupted, match="SIGTERM"):
        probe.probe_compaction(SIZE, ratios=(0.5,), repeats=1, hooks=rec.hooks())
    _check_restored(before, rec)
    assert signal.getsignal(signal.SIGTERM) is old


def test_size_cap_refused_before_any_work(monkeypatch):
    before = probe.snapshot_settings()
    too_big = (int(probe.mem_available_bytes() * 0.3) >> 21) << 21
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
