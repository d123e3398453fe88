"""Held against the real kernel: the host twin predicts, from a snapshot of this machine's
physical memory taken just before, what a real ``compact_memory`` does, counter by counter.

Why a snapshot: the pages a real compact_memory migrates vary more than tenfold from run to run
(where the fragmented region's pages physically lie, what other tasks' pages and large folios
surround them, where the first folio that cannot be migrated stops the zone). A simulator that
starts from its own synthetic layout cannot predict that; one that starts from the machine's
state (``migsim.host.snapshot``, ``migsim.host.twin``) can, so this test fails when the *model* is wrong,
not when the memory lies differently.

What can still make a single run miss: other tasks allocate and free while the snapshot is read
(up to a second or two on a busy machine), so a page the snapshot shows free may hold a new
folio when the scanners get there. Each run prints the pages allocated on the machine during
the read (``drift_pages``). The model is therefore held to: within ATTEMPTS runs, at least one
predicts every counter within its tolerance (the issue's: pgmigrate_success,
compact_migrate_scanned and compact_free_scanned within 15% or 1,000 pages, compact_isolated
within 20%); runs stop at the first that does. Every run is printed. A wrong model misses all
of them: the counters span 5,000 to 600,000 pages from run to run.

Needs root (the probe writes compact_memory, /proc/kpageflags is root-only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from migsim.cost.platform import DEFAULT_PLATFORM, load_platform
from migsim.host import probe, twin

pytestmark = [pytest.mark.host, pytest.mark.slow]

SIZE = 1 << 30
RATIO = 0.5
ATTEMPTS = 6
TOLERANCE = {
    "pgmigrate_success": (0.15, 1000),
    "compact_migrate_scanned": (0.15, 1000),
    "compact_free_scanned": (0.15, 1000),
    "compact_isolated": (0.20, 0),
}


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


def misses(run: dict) -> list[str]:
    """The counters of one twin run outside their tolerance (empty: the run is predicted)."""
    out = []
    for key, (rel, absolute) in TOLERANCE.items():
        m, p = run["measured"][key], run["predicted"][key]
        if abs(p - m) > max(rel * m, absolute):
            out.append(
                f"{key} measured {m:,} predicted {p:,} ({(p / m - 1) * 100 if m else 0:+.1f}%)"
            )
    return out


def test_misses_applies_both_tolerances():
    run = {
        "measured": dict.fromkeys(TOLERANCE, 5000),
        "predicted": {**dict.fromkeys(TOLERANCE, 5000), "pgmigrate_success": 5999},
    }
    assert misses(run) == []  # within 1,000 pages, though 20% off
    run["predicted"]["compact_isolated"] = 6001
    assert misses(run) == ["compact_isolated measured 5,000 predicted 6,001 (+20.0%)"]


def test_twin_predicts_a_real_compact_memory():
    _require()
    plat = load_platform(DEFAULT_PLATFORM)
    lines = []
    guard = probe.SettingsGuard()
    ok = False
    with probe.interrupt_guard(), probe.probe_settings(guard):
        for attempt in range(ATTEMPTS):
            run = twin.twin_run(SIZE, RATIO, 1 + attempt, plat)
            bad = misses(run)
            m, p = run["measured"], run["predicted"]
            lines.append(
                f"run {attempt}: drift {run['drift_pages']:,} pages; "
                + "; ".join(f"{k} {m[k]:,}/{p[k]:,}" for k in TOLERANCE)
                + (f" -> MISS {', '.join(bad)}" if bad else " -> ok")
            )
            if not bad:
                ok = True
                break
    report = "\n".join(lines)
    print(report)
    assert ok, f"no run of {ATTEMPTS} predicted within tolerance:\n{report}"


def test_twin_restores_settings_on_error_and_on_signal(monkeypatch):
    """A twin run that fails (or gets SIGTERM) in the middle, with tracing on and
    compaction_proactiveness at 0, leaves every setting and the trace event as it found them."""
    import signal

    _require()
    before = probe.snapshot_settings()
    trace_before = (
        (twin.MIGRATE_EVENT / "enable").read_text() if twin.TraceGuard().available else None
    )
    plat = load_platform(DEFAULT_PLATFORM)
    real = probe.trigger_compaction
    calls = {"n": 0}

    def failing():
        calls["n"] += 1
        if calls["n"] == 2:  # the measured run (the first call settles)
            raise RuntimeError("injected failure")
        return real()

    def signalled():
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real()

    for fn, exc in ((failing, RuntimeError), (signalled, probe.ProbeInterrupted)):
        calls["n"] = 0
        monkeypatch.setattr(probe, "trigger_compaction", fn)
        guard = probe.SettingsGuard()
        with pytest.raises(exc), probe.interrupt_guard(), probe.probe_settings(guard):
            assert probe.PROACTIVENESS.read_text().strip() == "0"
            twin.twin_run(64 << 20, RATIO, 1, plat)
        assert probe.snapshot_settings() == before
        if trace_before is not None:
            assert (twin.MIGRATE_EVENT / "enable").read_text() == trace_before
