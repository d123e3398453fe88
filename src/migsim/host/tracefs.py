"""Capture a real trace of compaction and migration (root): `migsim probe trace -- COMMAND`.

Enables the compaction:* and migrate:mm_migrate_pages* tracepoints through tracefs
(Documentation/trace/ftrace.rst: ``events/<system>/<event>/enable``, ``buffer_size_kb``,
``tracing_on``, ``trace``), runs the command, saves the ``trace`` text and the /proc/vmstat
deltas over the command, and puts tracefs back as it found it -- the mount itself, each
event's enable file, the per-CPU buffer size and tracing_on -- also when the command fails
or the capture is interrupted (Ctrl-C, SIGTERM, SIGHUP). The ring buffer's old content is
cleared to start the capture and cannot be restored; a buffer never used reads
``7 (expanded: N)`` and is restored to N KiB.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from migsim.formats.trace import EVENTS
from migsim.host.probe import read_vmstat

TRACEFS = Path("/sys/kernel/tracing")
VMSTAT_TRACED = (
    "pgmigrate_success",
    "pgmigrate_fail",
    "compact_stall",
    "compact_fail",
    "compact_success",
    "compact_migrate_scanned",
    "compact_free_scanned",
    "compact_isolated",
    "compact_daemon_wake",
    "thp_migration_success",
    "thp_migration_fail",
    "thp_migration_split",
)
DEFAULT_BUFFER_KB = 65536  # per CPU


class TraceUnavailable(RuntimeError):
    """The capture cannot run here (not root, no tracefs); the reason is the message."""


def is_mounted(path: Path = TRACEFS) -> bool:
    """Is a tracefs mounted at `path` (/proc/mounts)?"""
    with open("/proc/mounts") as fh:
        return any(line.split()[1] == str(path) and line.split()[2] == "tracefs" for line in fh)


def _buffer_kb(text: str) -> str:
    """The value to write back to buffer_size_kb from what it read ('1408', '7 (expanded:
    1408)'); per-CPU sizes that differ read 'X' and are left alone (None)."""
    m = re.search(r"expanded:\s*(\d+)", text)
    return m.group(1) if m else text.strip()


@dataclass
class TracefsState:
    """What a capture changes, as found: mounted?, tracing_on, buffer_size_kb, enables."""

    mounted: bool
    tracing_on: str = ""
    buffer_size_kb: str = ""
    enable: dict[str, str] = field(default_factory=dict)  # "system/event" -> "0"/"1"


def snapshot(root: Path = TRACEFS, *, mounted: bool = True) -> TracefsState:
    """The state of the tracefs mounted at `root`; `mounted`: was it mounted before the
    capture mounted it (the kernel keeps the events and buffers across mounts)."""
    enable = {}
    for event, system in EVENTS.items():
        p = root / "events" / system / event / "enable"
        if p.exists():
            enable[f"{system}/{event}"] = p.read_text().strip()[:1]  # "0*": soft-disabled
    return TracefsState(
        mounted=mounted,
        tracing_on=(root / "tracing_on").read_text().strip(),
        buffer_size_kb=_buffer_kb((root / "buffer_size_kb").read_text()),
        enable=enable,
    )


def _write(path: Path, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt while the capture runs (Ctrl-C does)."""

    def handler(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    try:
        old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    except ValueError:  # not the main thread: leave the signals alone
        old = {}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def restore(state: TracefsState, root: Path = TRACEFS) -> None:
    """Put tracefs back to `state` (tracing_on, enables, buffer size; unmount if it was not
    mounted). Tries everything, then raises RuntimeError naming what failed."""
    failed = []
    if is_mounted(root):
        writes = [(root / "tracing_on", state.tracing_on)]
        writes += [(root / "events" / k / "enable", v) for k, v in state.enable.items()]
        if state.buffer_size_kb.isdigit():
            writes.append((root / "buffer_size_kb", state.buffer_size_kb))
        for path, value in writes:
            try:
                _write(path, value)
            except OSError as exc:
                failed.append(f"{path}={value!r}: {exc}")
        if not state.mounted and (msg := unmount(root)):
            failed.append(f"umount {root}: {msg}")
    if failed:
        raise RuntimeError("could not restore tracefs: " + "; ".join(failed))


@dataclass
class Capture:
    """A finished capture: the trace text, vmstat before/after, the command's exit code."""

    text: str
    vmstat_before: dict[str, int]
    vmstat_after: dict[str, int]
    returncode: int
    wall_s: float
    lost_events: int

    @property
    def vmstat_delta(self) -> dict[str, int]:
        return {k: self.vmstat_after[k] - self.vmstat_before[k] for k in self.vmstat_after}


def _lost_events(root: Path) -> int:
    """Events the ring buffer overwrote or dropped during the capture (per_cpu stats)."""
    lost = 0
    for stats in (root / "per_cpu").glob("cpu*/stats"):
        for line in stats.read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() in ("overrun", "dropped events"):
                with contextlib.suppress(ValueError):
                    lost += int(value.strip().split()[0])
    return lost


def mount(root: Path = TRACEFS) -> None:
    """mount -t tracefs nodev `root`; TraceUnavailable if that fails."""
    p = subprocess.run(["mount", "-t", "tracefs", "nodev", str(root)], capture_output=True,
                       text=True)  # fmt: skip
    if p.returncode:
        raise TraceUnavailable(f"probe trace: cannot mount tracefs on {root}: {p.stderr.strip()}")


UMOUNT_TRIES = 20  # umount attempts, UMOUNT_WAIT_S apart, while another reader keeps it busy
UMOUNT_WAIT_S = 0.05


def unmount(root: Path = TRACEFS) -> str:
    """umount `root`; '' when done, else umount's message. A tracefs that another task holds
    open for a moment (EBUSY: a `cat` of a trace file, a scan of /sys) is retried up to
    UMOUNT_TRIES times; still busy then, it is detached lazily (umount -l: gone from the mount
    table now, released when the last reader closes it), so the mount table is as found."""
    msg = ""
    for _ in range(UMOUNT_TRIES):
        p = subprocess.run(["umount", str(root)], capture_output=True, text=True)
        if p.returncode == 0 or not is_mounted(root):
            return ""
        msg = p.stderr.strip()
        time.sleep(UMOUNT_WAIT_S)
    p = subprocess.run(["umount", "-l", str(root)], capture_output=True, text=True)
    return "" if p.returncode == 0 else f"{msg}; umount -l: {p.stderr.strip()}"


def check_available(root: Path = TRACEFS) -> None:
    """Raise TraceUnavailable unless this process can trace (root, tracefs supported)."""
    if os.geteuid() != 0:
        raise TraceUnavailable("probe trace: needs root (tracefs and /proc/vmstat deltas)")
    with open("/proc/filesystems") as fh:
        if not any(line.split()[-1] == "tracefs" for line in fh if line.strip()):
            raise TraceUnavailable("probe trace: this kernel has no tracefs")
    if not root.is_dir():
        raise TraceUnavailable(f"probe trace: {root} does not exist")


def capture(
    command: Sequence[str], *, buffer_kb: int = DEFAULT_BUFFER_KB, root: Path = TRACEFS
) -> Capture:
    """Run `command` with the EVENTS tracepoints on; return the trace and vmstat deltas.
    tracefs is restored as found whatever happens (restore())."""
    if not command:
        raise ValueError("COMMAND: give the command to trace after --")
    if not 64 <= buffer_kb <= 1 << 22:
        raise ValueError(f"--buffer-kb: must be in 64..{1 << 22} KiB per CPU, got {buffer_kb}")
    check_available(root)
    with _signals_raise():
        was_mounted = is_mounted(root)
        if not was_mounted:
            mount(root)
        try:
            state = snapshot(root, mounted=was_mounted)
        except BaseException:
            if not was_mounted:
                unmount(root)
            raise
        try:
            _write(root / "tracing_on", "0")
            _write(root / "buffer_size_kb", str(buffer_kb))
            _write(root / "trace", "")  # clear the ring buffer (and the overrun counters)
            for event, system in EVENTS.items():
                p = root / "events" / system / event / "enable"
                if p.exists():
                    _write(p, "1")
            before = read_vmstat(VMSTAT_TRACED)
            _write(root / "tracing_on", "1")
            t0 = time.perf_counter()
            rc = subprocess.run(list(command)).returncode
            wall = time.perf_counter() - t0
            _write(root / "tracing_on", "0")
            after = read_vmstat(VMSTAT_TRACED)
            text = (root / "trace").read_text(errors="replace")
            lost = _lost_events(root)
        finally:
            restore(state, root)
    return Capture(text, before, after, rc, wall, lost)
