"""Host probes: measure this machine and its running kernel, for comparison with the simulator.

Two probes, each returning Polars rows in the same contract as the simulated runs plus a
``source`` column (``"measured"`` here, ``"simulated"`` for the engine's rows):

- :func:`probe_copy` (unprivileged): folio_copy()-like copy bandwidth per folio size, 4K..2M,
  blocks copied in address order or in random order, over a working set far beyond the
  caches. Rows follow the throughput run contract with ``experiment="copy"`` (only the copy
  step is timed: the unmap/flush/move columns are null).
- :func:`probe_compaction` (root): build real fragmentation in anonymous memory with exactly
  the per-pageblock offsets of the simulator's fragmentation setups
  (``migsim.kernel.fragment.free_offsets``, same ratio, pattern and seed), trigger a
  whole-machine compaction (``/proc/sys/vm/compact_memory``) and record the wall time and the
  /proc/vmstat deltas. Rows follow the compaction run contract with ``mode="baseline"``.

How the compaction probe makes the kernel migrate *its* pages (measured on a 6.18 VM):

1. The region is backed by transparent huge pages (``MADV_HUGEPAGE``): each 2 MiB of the
   region is then exactly one aligned pageblock (an order-9 buddy page), so a pattern applied
   to virtual offsets inside a 2 MiB region is the same pattern inside a physical pageblock --
   as in the simulator. With 4 KiB faults the pages of one 2 MiB region scatter over several
   pageblocks shared with other tasks.
2. Each THP is split into 512 order-0 pages with ``MADV_COLD`` on its first page (the kernel
   splits a partially covered large folio there, keeping every page mapped). ``MADV_DONTNEED``
   on part of an unsplit THP would only queue it for a deferred split: nothing is freed.
3. ``MADV_NOHUGEPAGE`` afterwards keeps khugepaged from collapsing the holes again, and
   ``vm.compaction_proactiveness`` is set to 0 during the probe so that kcompactd does not
   compact the region before the trigger (restored afterwards).
4. ``MADV_DONTNEED`` frees the pattern's pages (batched with process_madvise() where the
   kernel allows it, 1024 runs per call).
5. Whole-zone compaction (``compact_node``, order -1) runs the migration scanner up from the
   zone start and the free scanner down from the zone end until they meet. The free scanner
   never takes a whole free pageblock as a target (``suitable_migration_target``), so the
   targets are the holes of partly used pageblocks: free memory elsewhere, however large, is
   not used. On a quiet machine the holes are mostly the probe's own, and the run migrates
   about ``r * (1 - r)`` of the region's pages at free ratio ``r`` (the scanners meet where
   the live pages below equal the holes above), as the simulator does. Other tasks' partly
   used pageblocks above the region add targets (more pages migrate), their pages below it
   add sources; ``probe_pages_migrated`` (the probe's pages whose pfn changed, from
   /proc/self/pagemap) and ``probe_pages_into_region`` show how much, beside the
   machine-wide ``pgmigrate_success``.
6. The rate that characterises the kernel is pages per second of the compacting task's CPU
   time (``with_rates``): compaction runs synchronously in the task writing compact_memory,
   and on a shared machine other tasks stretch the wall time, not the work. On an idle
   machine both rates agree. The whole-machine scan adds a few milliseconds (all zones'
   pfns) that a 1 GiB region's migrations dwarf.

Safety: the region never exceeds ``size`` nor 25% of MemAvailable; memory is unmapped and
every changed setting restored in ``finally`` blocks, also on an exception, Ctrl-C or SIGTERM
(converted to an exception while a probe runs). Only a SIGKILL can leave
``vm.compaction_proactiveness`` at 0; the kernel frees the memory in every case.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform as _pyplatform
import resource
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from migsim.kernel import compaction
from migsim.kernel.fragment import PATTERNS
from migsim.output.tables import Column, Schema
from migsim.studies.compaction import COMPACTION_RUNS
from migsim.studies.throughput import MOVE_PAGES_VMSTAT, THROUGHPUT_RUNS
from migsim.units import PAGE_SIZE, PAGEBLOCK_NR_PAGES, format_size, parse_size

# --------------------------------------------------------------------------------------------
# Row schemas: the run contracts of migsim.output.tables plus `source` and a few measured-only columns
# (null in simulated rows), so that simulated and measured rows share one file and one query.
# --------------------------------------------------------------------------------------------

SOURCES = ("simulated", "measured")
_SOURCE = Column("source", pl.String, "", "simulated (migsim engine) or measured (host probe)")

COPY_RUNS = Schema(
    name="copy_runs",
    doc=(
        "One row per repetition of the host copy probe (source=measured) or of the simulated "
        "folio_copy() of the same blocks (source=simulated): the throughput run contract with "
        "experiment='copy', mode='cpu'; only the copy step is timed (unmap/flush/move null)."
    ),
    columns=THROUGHPUT_RUNS.columns
    + (
        _SOURCE,
        Column("access", pl.String, "", "in-order or random: order in which blocks are read"),
    ),
    sort_by=("source", "access", "folio_bytes", "trial"),
    nulls_allowed=frozenset(
        {"channels", "threads", "batch_limit_pages", "unmap_s", "flush_s", "move_s"}
        | {"fallback_s", "sys_s", "idle_s", "other_cpu_s", "first_folio_s", "nr_batches"}
        | set(MOVE_PAGES_VMSTAT)
        | {"rfc", "call_s", "irq_s", "lo_gbps", "hi_gbps"}  # a host probe: no driver, no syscall
    ),
)

# Columns every host compaction row has, measured or simulated; the rest of the compaction
# run contract (allocation counters, capture statistics, ...) may be null here.
_HOST_REQUIRED = frozenset(
    {"experiment", "mode", "cluster_max", "node_bytes", "free_ratio", "pattern", "seed"}
    | {"wall_ms", "pages_migrated", "user_pct", "sys_pct", "idle_pct", "platform", "source"}
    | {"compact_migrate_scanned", "compact_free_scanned", "compact_isolated"}
    | {"pgmigrate_success", "pgmigrate_fail", "trial"}
)

_HOST_COLUMNS = COMPACTION_RUNS.columns + (
    _SOURCE,
    Column("trial", pl.Int32, "", "repetition index of the cell from 0"),
    Column("probe_pages_live", pl.Int64, "pages", "probe pages mapped when compaction starts"),
    Column("probe_pages_migrated", pl.Int64, "pages", "probe pages whose pfn changed"),
    Column(
        "probe_pages_into_region", pl.Int64, "pages",
        "probe pages that moved into the probe's own pageblocks (the rest went to other "
        "tasks' partly used pageblocks)",
    ),
    Column("probe_block_frac", pl.Float64, "fraction", "2 MiB regions backed by one pageblock"),
    Column("baseline_wall_ms", pl.Float64, "ms", "settling compact_memory just before"),
    Column("baseline_pages_migrated", pl.Int64, "pages", "pgmigrate_success of that run"),
)  # fmt: skip

HOST_COMPACTION_RUNS = Schema(
    name="host_compaction_runs",
    doc=(
        "One row per whole-machine compaction (compact_memory, order -1) of a fragmented "
        "region: measured by the host probe or simulated with the host platform; the "
        "compaction run contract plus source, trial and the probe's own page counts (null "
        "when simulated). Measured wall_ms is the time of the write to compact_memory."
    ),
    columns=_HOST_COLUMNS,
    sort_by=("source", "pattern", "free_ratio", "trial"),
    nulls_allowed=frozenset(c.name for c in _HOST_COLUMNS) - _HOST_REQUIRED,
)


def host_compaction_row(**values) -> dict:
    """A HOST_COMPACTION_RUNS row: `values`, every other column null."""
    unknown = set(values) - set(HOST_COMPACTION_RUNS.names)
    if unknown:
        raise ValueError(f"host_compaction_row: unknown columns {sorted(unknown)}")
    return {name: values.get(name) for name in HOST_COMPACTION_RUNS.names}


COPY_SIZES = ("4K", "8K", "16K", "32K", "64K", "128K", "256K", "512K", "1M", "2M")
ACCESS_ORDERS = ("in-order", "random")

# the simulator's counters, and what the probe reads besides (kcompactd wake-ups, THP splits)
VMSTAT_KEYS = (*compaction.VMSTAT_KEYS, "compact_daemon_wake", "thp_split_page")

COMPACT_MEMORY = Path("/proc/sys/vm/compact_memory")
PROACTIVENESS = Path("/proc/sys/vm/compaction_proactiveness")
THP_DIR = Path("/sys/kernel/mm/transparent_hugepage")
MAX_MEM_FRAC = 0.25  # never more than this share of MemAvailable

# madvise advice values (include/uapi/asm-generic/mman-common.h)
MADV_DONTNEED = 4
MADV_HUGEPAGE = 14
MADV_NOHUGEPAGE = 15
MADV_COLD = 20
UIO_MAXIOV = 1024


class ProbeUnavailable(RuntimeError):
    """The probe cannot run here (not root, compact_memory not writable, ...): the message
    says precisely why."""


class ProbeInterrupted(KeyboardInterrupt):
    """A termination signal arrived while a probe held memory or changed settings."""


def host_platform_name() -> str:
    """Name of this machine in the `platform` column of measured rows."""
    return f"host:{_pyplatform.node()}:{_pyplatform.release()}"


# --------------------------------------------------------------------------------------------
# Kernel interfaces: /proc/vmstat, /proc/meminfo, pagemap, settings.
# --------------------------------------------------------------------------------------------


def read_vmstat(keys: Sequence[str] = VMSTAT_KEYS) -> dict[str, int]:
    """The /proc/vmstat counters `keys` (missing ones read as 0)."""
    vals: dict[str, int] = {}
    with open("/proc/vmstat") as fh:
        for line in fh:
            name, _, value = line.partition(" ")
            vals[name] = int(value)
    return {k: vals.get(k, 0) for k in keys}


def meminfo_bytes(key: str) -> int:
    """One /proc/meminfo field (``MemAvailable``, ``MemFree``, ...), in bytes."""
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise ProbeUnavailable(f"/proc/meminfo has no {key} line")


def mem_available_bytes() -> int:
    """MemAvailable from /proc/meminfo, in bytes."""
    return meminfo_bytes("MemAvailable")


def check_size_cap(size: int, *, name: str = "size") -> int:
    """`size` rounded down to whole pageblocks; refuse more than 25% of MemAvailable."""
    if size < PAGEBLOCK_NR_PAGES * PAGE_SIZE:
        raise ValueError(f"{name}: at least 2M (one pageblock), got {format_size(size)}")
    avail = mem_available_bytes()
    if size > MAX_MEM_FRAC * avail:
        raise ValueError(
            f"{name}: {format_size(size)} is more than {MAX_MEM_FRAC:.0%} of MemAvailable "
            f"({avail / 2**30:.2f} GiB); use at most {int(MAX_MEM_FRAC * avail) >> 20}M"
        )
    block = PAGEBLOCK_NR_PAGES * PAGE_SIZE
    return size - size % block


def settings_paths() -> list[Path]:
    """Every setting a probe may change or that changes how the probe behaves (THP, khugepaged,
    compaction sysctls): snapshot these before and compare after."""
    paths = [
        THP_DIR / "enabled",
        THP_DIR / "defrag",
        THP_DIR / "khugepaged" / "defrag",
        THP_DIR / "khugepaged" / "max_ptes_none",
        PROACTIVENESS,
        Path("/proc/sys/vm/extfrag_threshold"),
        Path("/proc/sys/vm/compact_unevictable_allowed"),
        Path("/proc/sys/vm/watermark_scale_factor"),
        Path("/proc/sys/vm/min_free_kbytes"),
    ]
    paths += sorted(THP_DIR.glob("hugepages-*kB/enabled"))
    return [p for p in paths if p.exists()]


def snapshot_settings() -> dict[str, str]:
    """Current content of every readable setting in settings_paths()."""
    return read_settings(map(str, settings_paths()))


def read_settings(paths: Iterable[str]) -> dict[str, str]:
    """The stripped text of each readable file of `paths` (one os.read of a sysfs/procfs
    setting, a few bytes), by path; unreadable ones are left out."""
    out = {}
    for name in paths:
        try:
            fd = os.open(name, os.O_RDONLY)
        except OSError:
            continue
        try:
            out[name] = os.read(fd, 1 << 16).decode().strip()
        except OSError:
            pass
        finally:
            os.close(fd)
    return out


def _selected(text: str) -> str:
    """The bracketed choice of a sysfs multiple-choice file ('always [madvise] never')."""
    if "[" in text:
        return text[text.index("[") + 1 : text.index("]")]
    return text.strip()


class SettingsGuard:
    """Change kernel settings for the duration of a probe and restore every one of them.

    ``set(path, value)`` records the original content the first time a path is touched;
    ``restore()`` writes the originals back in reverse order and raises if any of them could
    not be restored (after trying all of them).
    """

    def __init__(self) -> None:
        self._saved: list[tuple[Path, str]] = []

    def set(self, path: Path, value: str) -> None:
        original = path.read_text().strip()
        if not any(p == path for p, _ in self._saved):
            self._saved.append((path, _selected(original) if "[" in original else original))
        path.write_text(value)

    def restore(self) -> None:
        failed = []
        for path, value in reversed(self._saved):
            try:
                path.write_text(value)
            except OSError as exc:
                failed.append(f"{path}={value!r}: {exc}")
        self._saved.clear()
        if failed:
            raise RuntimeError("could not restore settings: " + "; ".join(failed))


@contextlib.contextmanager
def interrupt_guard() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into ProbeInterrupted while the block runs (main thread only),
    so that the probe's ``finally`` blocks release memory and restore settings."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise ProbeInterrupted(f"probe interrupted by signal {signal.Signals(signum).name}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# --------------------------------------------------------------------------------------------
# Anonymous memory through libc (exact size, 2 MiB aligned, raw address for madvise/pagemap).
# --------------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.syscall.restype = ctypes.c_long

_PROT_RW = 0x1 | 0x2
_MAP_PRIVATE_ANON = 0x02 | 0x20
_MAP_FAILED = ctypes.c_void_p(-1).value
_SYS_PIDFD_OPEN = 434  # x86_64
_SYS_PROCESS_MADVISE = 440  # x86_64


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


def _oserror(what: str) -> OSError:
    e = ctypes.get_errno()
    return OSError(e, f"{what}: {os.strerror(e)}")


class AnonRegion:
    """`nbytes` of private anonymous memory at a 2 MiB aligned address (exactly `nbytes`
    mapped: the alignment slack is unmapped at once). Use as a context manager; ``close()``
    unmaps it and is idempotent."""

    ALIGN = PAGEBLOCK_NR_PAGES * PAGE_SIZE

    def __init__(self, nbytes: int):
        if nbytes <= 0 or nbytes % self.ALIGN:
            raise ValueError(f"size: must be a positive multiple of 2M, got {nbytes}")
        raw = _libc.mmap(None, nbytes + self.ALIGN, _PROT_RW, _MAP_PRIVATE_ANON, -1, 0)
        if raw in (None, _MAP_FAILED):
            raise _oserror("mmap")
        start = (raw + self.ALIGN - 1) // self.ALIGN * self.ALIGN
        head, tail = start - raw, raw + nbytes + self.ALIGN - (start + nbytes)
        if head:
            _libc.munmap(raw, head)
        if tail:
            _libc.munmap(start + nbytes, tail)
        self.addr: int | None = start
        self.nbytes = nbytes

    @property
    def nr_pages(self) -> int:
        return self.nbytes // PAGE_SIZE

    def array(self) -> np.ndarray:
        """A uint8 view of the region (do not keep it past close())."""
        assert self.addr is not None
        buf = (ctypes.c_uint8 * self.nbytes).from_address(self.addr)
        return np.ctypeslib.as_array(buf)

    def madvise(self, advice: int, offset: int = 0, length: int | None = None) -> None:
        assert self.addr is not None
        length = self.nbytes - offset if length is None else length
        if _libc.madvise(self.addr + offset, length, advice) != 0:
            raise _oserror(f"madvise({advice})")

    def touch(self) -> None:
        """Fault in every page (one write per page)."""
        a = self.array()
        a[::PAGE_SIZE] = 1
        del a

    def fill_order0(self) -> None:
        """Fault the region in as THPs (MADV_HUGEPAGE), split every THP into order-0 pages
        that all stay mapped (MADV_COLD on each pageblock's first page), then keep khugepaged
        away (MADV_NOHUGEPAGE): the probe's, the twin's and the profile's starting layout."""
        self.madvise(MADV_HUGEPAGE)
        self.touch()
        self.madvise_pages(_first_page_mask(self.nr_pages), MADV_COLD)
        self.madvise(MADV_NOHUGEPAGE)

    def _pagemap(self) -> np.ndarray:
        assert self.addr is not None
        with open("/proc/self/pagemap", "rb") as fh:
            fh.seek(self.addr // PAGE_SIZE * 8)
            raw = fh.read(self.nr_pages * 8)
        return np.frombuffer(raw, dtype=np.uint64)

    def present(self) -> np.ndarray:
        """Boolean per page: mapped to a page frame now (visible without privileges)."""
        return ((self._pagemap() >> np.uint64(63)) & np.uint64(1)).astype(bool)

    def pfns(self) -> np.ndarray:
        """Page frame number of every page of the region (-1 where not present); the kernel
        shows pfns in /proc/self/pagemap to CAP_SYS_ADMIN only (0 otherwise)."""
        ent = self._pagemap()
        present = ((ent >> np.uint64(63)) & np.uint64(1)).astype(bool)
        pfn = (ent & np.uint64((1 << 55) - 1)).astype(np.int64)
        return np.where(present, pfn, -1)

    def madvise_pages(self, mask: np.ndarray, advice: int) -> int:
        """Apply `advice` to every page whose entry in the boolean `mask` is set, one call per
        run of consecutive pages, batched by process_madvise() (1024 runs a call) where the
        kernel accepts it for the calling process. Returns the number of system calls."""
        assert self.addr is not None
        m = np.concatenate(([False], np.asarray(mask, dtype=bool).ravel(), [False]))
        edges = np.flatnonzero(m[1:] != m[:-1])
        starts, ends = edges[0::2], edges[1::2]
        if len(starts) == 0:
            return 0
        bases = self.addr + starts.astype(np.uint64) * PAGE_SIZE
        lens = (ends - starts).astype(np.uint64) * PAGE_SIZE
        calls = _process_madvise_runs(bases, lens, advice)
        if calls is not None:
            return calls
        for b, n in zip(bases.tolist(), lens.tolist(), strict=True):
            if _libc.madvise(b, n, advice) != 0:
                raise _oserror(f"madvise({advice})")
        return len(bases)

    def close(self) -> None:
        if self.addr is not None:
            addr, self.addr = self.addr, None
            if _libc.munmap(addr, self.nbytes) != 0:
                raise _oserror("munmap")

    def __enter__(self) -> AnonRegion:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_PIDFD: dict[int, int] = {}


def _process_madvise_runs(bases: np.ndarray, lens: np.ndarray, advice: int) -> int | None:
    """process_madvise() on our own pidfd, UIO_MAXIOV runs per call; None if the kernel refuses
    (before 6.13 only a few advice values are accepted), so the caller loops over madvise()."""
    pid = os.getpid()
    if pid not in _PIDFD:
        fd = _libc.syscall(_SYS_PIDFD_OPEN, pid, 0)
        if fd < 0:
            return None
        _PIDFD.clear()
        _PIDFD[pid] = fd
    fd = _PIDFD[pid]
    calls = 0
    for i in range(0, len(bases), UIO_MAXIOV):
        b, n = bases[i : i + UIO_MAXIOV], lens[i : i + UIO_MAXIOV]
        iov = (_Iovec * len(b))()
        arr = np.ctypeslib.as_array(
            ctypes.cast(iov, ctypes.POINTER(ctypes.c_uint64)), (len(b) * 2,)
        )
        arr[0::2], arr[1::2] = b, n
        want = int(n.sum())
        done = _libc.syscall(_SYS_PROCESS_MADVISE, fd, iov, len(b), advice, 0)
        calls += 1
        if done < 0:
            if i == 0 and ctypes.get_errno() in (errno.EINVAL, errno.ENOSYS, errno.EPERM):
                return None
            raise _oserror(f"process_madvise({advice})")
        if done != want:  # partial: finish the rest one run at a time
            for bb, nn in zip(b.tolist(), n.tolist(), strict=True):
                if _libc.madvise(bb, nn, advice) != 0:
                    raise _oserror(f"madvise({advice})")
                calls += 1
    return calls


# --------------------------------------------------------------------------------------------
# The copy probe.
# --------------------------------------------------------------------------------------------


# move_pages(2) by architecture (arch/x86/entry/syscalls/syscall_64.tbl,
# include/uapi/asm-generic/unistd.h)
_SYS_MOVE_PAGES = {"x86_64": 279, "aarch64": 239}


def probe_move_pages_call(calls: int = 20000, repeats: int = 5) -> dict:
    """Wall time of one move_pages() call on this kernel that migrates nothing, us per call.

    One address, a resident page of this process, passed twice per repeat in `calls` calls
    each: with ``nodes`` NULL (kernel_move_pages -> do_pages_stat: status only) and with
    ``nodes`` naming the node the page is on (do_pages_move: lru_cache_disable(), i.e.
    synchronize_rcu_expedited() and __lru_add_drain_all(true) -- drain work queued on every
    online CPU whose folio batches are not empty --, then add_page_for_migration finds the
    page on its node and stores the node in status; lru_cache_enable() at the end). The
    difference is what every move_pages() call that migrates pays beyond the syscall and
    status copy: the prior of ``cpu.lru_cache_disable_us`` (migsim.calibrate.throughput).
    Returns medians and ranges over the repeats (the two loops alternate within a repeat),
    the page's node, the kernel release and the online CPUs."""
    nr = _SYS_MOVE_PAGES.get(_pyplatform.machine())
    if nr is None:
        raise ProbeUnavailable(f"move_pages: no syscall number known for {_pyplatform.machine()}")
    page = _libc.mmap(None, PAGE_SIZE, _PROT_RW, _MAP_PRIVATE_ANON, -1, 0)
    if page in (None, _MAP_FAILED):
        raise _oserror("mmap")
    try:
        ctypes.memset(page, 1, 1)  # fault it in
        pages = (ctypes.c_void_p * 1)(page)
        status = (ctypes.c_int * 1)(-1)
        syscall = _libc.syscall

        def stat_only() -> int:
            return syscall(nr, 0, 1, pages, None, status, 0)

        if stat_only() != 0 or status[0] < 0:
            raise ProbeUnavailable(f"move_pages: {os.strerror(ctypes.get_errno() or -status[0])}")
        node = int(status[0])
        nodes = (ctypes.c_int * 1)(node)
        stat_us, move_us = [], []
        for _ in range(repeats):
            for out, args in ((stat_us, None), (move_us, nodes)):
                t0 = time.perf_counter_ns()
                for _ in range(calls):
                    syscall(nr, 0, 1, pages, args, status, 0)
                out.append((time.perf_counter_ns() - t0) / 1e3 / calls)
            if status[0] != node:
                raise RuntimeError(f"move_pages: status {status[0]}, expected node {node}")
    finally:
        _libc.munmap(page, PAGE_SIZE)
    diff = np.subtract(move_us, stat_us)
    return {
        "calls": calls,
        "repeats": repeats,
        "node": node,
        "kernel": _pyplatform.release(),
        "online_cpus": os.cpu_count(),
        "stat_us": float(np.median(stat_us)),
        "move_us": float(np.median(move_us)),
        "lru_cache_disable_us": float(np.median(diff)),
        "lru_cache_disable_us_min": float(diff.min()),
        "lru_cache_disable_us_max": float(diff.max()),
    }


def _copy_once(src: np.ndarray, dst: np.ndarray, index: np.ndarray) -> float:
    """Copy block index[i] of `src` to block i of `dst` (one memcpy per block inside numpy's
    take; mode="clip" because with the default mode="raise" numpy buffers `out`, a second
    copy); seconds."""
    t0 = time.perf_counter()
    np.take(src, index, axis=0, out=dst, mode="clip")
    return time.perf_counter() - t0


def probe_copy(
    sizes: Sequence[str | int] = COPY_SIZES,
    orders: Sequence[str] = ACCESS_ORDERS,
    working_set: int | str = "1G",
    repeats: int = 5,
    seed: int = 1,
    platform_name: str | None = None,
) -> pl.DataFrame:
    """Copy bandwidth of this machine per folio size: half of `working_set` is the source, half
    the destination, both faulted in first; one pass copies every block of the folio size once
    (numpy take: one memcpy per block, no Python loop per block). ``in-order`` reads the source
    blocks in address order, ``random`` in a seeded random permutation (writes stay in order).
    One row per (size, order, repetition), in the throughput run contract with
    ``experiment="copy"``, ``mode="cpu"``, ``source="measured"``; throughput in GB/s (1e9 B/s).
    """
    ws = parse_size(working_set, name="working_set")
    if repeats < 1:
        raise ValueError(f"repeats: must be >= 1, got {repeats}")
    for o in orders:
        if o not in ACCESS_ORDERS:
            raise ValueError(f"order: must be one of {', '.join(ACCESS_ORDERS)}; got {o!r}")
    folio_sizes = [parse_size(s, name="sizes") for s in sizes]
    for fb in folio_sizes:
        if fb % PAGE_SIZE or fb & (fb - 1) or fb > PAGEBLOCK_NR_PAGES * PAGE_SIZE:
            raise ValueError(f"sizes: each must be a power of two from 4K to 2M, got {fb}")
    half = ws // 2
    top = max(folio_sizes)
    if half < top:
        raise ValueError(f"working_set: at least twice the largest size ({format_size(2 * top)})")
    half -= half % top
    if 2 * half > MAX_MEM_FRAC * mem_available_bytes():
        raise ValueError(
            f"working_set: {format_size(2 * half)} is more than {MAX_MEM_FRAC:.0%} of MemAvailable"
        )
    name = platform_name or host_platform_name()
    rng = np.random.default_rng(seed)
    src = np.empty(half, dtype=np.uint8)
    dst = np.empty(half, dtype=np.uint8)
    src.reshape(-1, PAGE_SIZE)[:] = rng.integers(0, 256, size=PAGE_SIZE, dtype=np.uint8)
    dst[:] = 0  # fault in the destination before timing
    rows = []
    try:
        for fb in folio_sizes:
            n = half // fb
            s2, d2 = src.reshape(n, fb), dst.reshape(n, fb)
            for order in orders:
                for trial in range(repeats):
                    index = np.arange(n) if order == "in-order" else rng.permutation(n)
                    wall = _copy_once(s2, d2, index)
                    rows.append(_copy_row(fb, n, order, trial, seed, wall, name))
        ok = np.array_equal(d2[0], s2[index[0]])
        if not ok:
            raise RuntimeError("copy probe: destination does not hold the copied data")
    finally:
        del src, dst
    return COPY_RUNS.conform(COPY_RUNS.frame(rows))


def _copy_row(fb: int, n: int, order: str, trial: int, seed: int, wall: float, name: str):
    total = n * fb
    return {
        "experiment": "copy",
        "mode": "cpu",
        "channels": None,
        "threads": 1,
        "folio_size": format_size(fb),
        "folio_bytes": fb,
        "total_bytes": total,
        "batch_limit_pages": None,
        "fail_rate": 0.0,
        "rfc": None,
        "trial": trial,
        "seed": seed,
        "throughput_gbps": total / wall / 1e9,
        "lo_gbps": None,
        "hi_gbps": None,
        "wall_s": wall,
        "call_s": None,
        "unmap_s": None,
        "flush_s": None,
        "copy_s": wall,
        "move_s": None,
        "fallback_s": None,
        "sys_s": None,
        "idle_s": None,
        "other_cpu_s": None,
        "irq_s": None,
        "first_folio_s": None,
        "nr_batches": None,
        "nr_folios": n,
        "nr_pages": total // PAGE_SIZE,
        "dma_copies": 0,
        "fallbacks": 0,
        **dict.fromkeys(MOVE_PAGES_VMSTAT),  # a copy, not a migration: no counter read
        "platform": name,
        "source": "measured",
        "access": order,
    }


def copy_summary(df: pl.DataFrame) -> pl.DataFrame:
    """Median, min and max GB/s and microseconds per block over repetitions, per size and order."""
    return (
        df.with_columns(us_per_folio=pl.col("wall_s") / pl.col("nr_folios") * 1e6)
        .group_by("folio_size", "folio_bytes", "access")
        .agg(
            gbps_median=pl.col("throughput_gbps").median(),
            gbps_min=pl.col("throughput_gbps").min(),
            gbps_max=pl.col("throughput_gbps").max(),
            us_per_folio=pl.col("us_per_folio").median(),
            repeats=pl.len(),
        )
        .sort("folio_bytes", "access")
    )


# --------------------------------------------------------------------------------------------
# Fragmentation patterns (per 2 MiB pageblock, the simulator's fragmentation setups).
# --------------------------------------------------------------------------------------------


def free_mask(pattern: str, ratio: float, nr_blocks: int, seed: int) -> np.ndarray:
    """Boolean (nr_blocks, 512) array: the pages to free in each 2 MiB region, exactly the
    offsets of the simulator's fragmentation setup (``migsim.kernel.fragment.free_offsets``: even,
    random with the same seed, clustered runs)."""
    from migsim.kernel.fragment import FragmentConfig, free_offsets

    if pattern not in PATTERNS:
        raise ValueError(f"pattern: must be one of {', '.join(PATTERNS)}; got {pattern!r}")
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio: must be in [0, 1), got {ratio}")
    cfg = FragmentConfig(free_ratio=ratio, pattern=pattern, seed=seed)
    offs = free_offsets(cfg, np.random.default_rng(seed), nr_blocks).astype(np.intp)
    mask = np.zeros((nr_blocks, PAGEBLOCK_NR_PAGES), dtype=bool)
    np.put_along_axis(mask, offs, True, axis=1)
    return mask


# --------------------------------------------------------------------------------------------
# The compaction probe.
# --------------------------------------------------------------------------------------------


def compact_trigger_path(node: int | None = None) -> Path:
    """/proc/sys/vm/compact_memory (all nodes) or /sys/devices/system/node/node<N>/compact."""
    if node is None:
        return COMPACT_MEMORY
    return Path(f"/sys/devices/system/node/node{node}/compact")


def check_compaction_available(node: int | None = None) -> None:
    """Raise ProbeUnavailable with the precise reason when the compaction probe cannot run:
    not root, no trigger file, pfns hidden in pagemap. (Writability is proven by the first,
    settling, write of the probe itself.)"""
    if os.geteuid() != 0:
        raise ProbeUnavailable(
            "compaction probe needs root: it writes /proc/sys/vm/compact_memory and reads pfns "
            f"from /proc/self/pagemap (running as uid {os.geteuid()})"
        )
    if node is not None and not Path(f"/sys/devices/system/node/node{node}").is_dir():
        nodes = sorted(p.name[4:] for p in Path("/sys/devices/system/node").glob("node[0-9]*"))
        raise ValueError(f"node: no NUMA node {node} here (nodes: {', '.join(nodes) or 'none'})")
    trig = compact_trigger_path(node)
    if not trig.exists():
        raise ProbeUnavailable(f"{trig} does not exist (kernel built without CONFIG_COMPACTION?)")
    if not os.access(trig, os.W_OK):
        raise ProbeUnavailable(f"{trig} is not writable here")
    if not (THP_DIR / "enabled").exists():
        raise ProbeUnavailable(f"{THP_DIR} missing: the probe needs transparent huge pages")


SCHEDSTAT = Path("/proc/thread-self/schedstat")
RT_PRIORITY = 1  # SCHED_FIFO priority of the compacting write (realtime): above every CFS task


def thread_times() -> tuple[float, float]:
    """(CPU seconds, run-queue wait seconds) of the calling thread so far: the CPU seconds from
    ``time.thread_time()`` (CLOCK_THREAD_CPUTIME_ID: task_sched_runtime(), sum_exec_runtime
    plus the running slice; where the steal clock is paravirtual, as on KVM with
    CONFIG_PARAVIRT_TIME_ACCOUNTING, the time the hypervisor stole is not in it), the wait
    from run_delay of /proc/thread-self/schedstat (kernel/sched/stats.h, CONFIG_SCHED_INFO;
    0 without it)."""
    cpu = time.thread_time()
    try:
        return cpu, int(SCHEDSTAT.read_text().split()[1]) * 1e-9
    except (OSError, IndexError, ValueError):
        return cpu, 0.0


def task_schedstat(
    exclude_tid: int | None = None, proc: str = "/proc"
) -> dict[int, tuple[int, int]]:
    """Per thread of the machine but `exclude_tid`: (sum_exec_runtime, run_delay) in ns, from
    /proc/<pid>/task/<tid>/schedstat (CONFIG_SCHED_INFO; /proc/schedstat's per-CPU
    rq_cpu_time needs CONFIG_SCHEDSTATS, off on the test VM). Kernel threads (kworkers,
    kcompactd) count. About 3 ms for 90 threads (per task, not per page)."""
    out: dict[int, tuple[int, int]] = {}
    for p in os.scandir(proc):
        if not p.name.isdigit():
            continue
        try:
            tids = [t.name for t in os.scandir(f"{proc}/{p.name}/task")]
        except OSError:
            continue
        for tid in tids:
            if exclude_tid is not None and tid == str(exclude_tid):
                continue
            try:
                with open(f"{proc}/{p.name}/task/{tid}/schedstat") as fh:
                    f = fh.read().split()
                out[int(tid)] = (int(f[0]), int(f[1]))
            except (OSError, IndexError, ValueError):
                continue
    return out


def task_times(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]
) -> tuple[float, float, int]:
    """(CPU seconds, run-queue wait seconds, threads) the other threads spent between two
    task_schedstat() scans: per thread its delta, a thread new in `after` with all it has (it
    started in between); a thread that exited in between is lost (its time is gone with it)."""
    run = delay = 0
    for tid, (r1, d1) in after.items():
        r0, d0 = before.get(tid, (0, 0))
        run += r1 - r0
        delay += d1 - d0
    return run * 1e-9, delay * 1e-9, len(after)


def procs_running() -> int:
    """Runnable tasks on the machine now (/proc/stat procs_running: nr_running(), the caller
    included)."""
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith("procs_running"):
                return int(line.split()[1])
    return 0


def cpu_ticks() -> np.ndarray:
    """Per CPU, seconds (USER_HZ ticks) busy (user, nice, system, irq, softirq) and stolen by
    the hypervisor (steal), from /proc/stat: rows (busy, steal)."""
    hz = os.sysconf("SC_CLK_TCK")
    rows = []
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith("cpu") and line[3].isdigit():
                v = [int(x) for x in line.split()[1:9]]
                rows.append((v[0] + v[1] + v[2] + v[5] + v[6], v[7]))
    return np.array(rows, dtype=float).reshape(-1, 2) / hz


@contextlib.contextmanager
def realtime(priority: int = RT_PRIORITY) -> Iterator[str]:
    """Run the block under SCHED_FIFO at `priority` (root: CAP_SYS_NICE) and restore the task's
    policy and priority after, also on error or signal (interrupt_guard turns SIGTERM/SIGINT
    into an exception; the kernel drops the policy with the task on SIGKILL); yields "fifo", or
    the policy in force where FIFO cannot be set (EPERM). SCHED_RESET_ON_FORK: a child would not
    inherit it. Why: ``echo 1 > compact_memory`` compacts in the writing task
    (sysctl_compaction_handler -> compact_nodes), and a CFS task on a loaded machine waits
    on the run queue between its slices, so its wall time grows with the load; a FIFO task is
    not preempted by CFS tasks (it still sleeps where the kernel waits: lru_add_drain_all()'s
    per-CPU work, folio locks, RT throttling past sched_rt_runtime_us)."""
    try:
        old_policy = os.sched_getscheduler(0)
        old_param = os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    except (OSError, AttributeError):
        yield "other"
        return
    try:
        yield "fifo"
    finally:
        os.sched_setscheduler(0, old_policy & ~os.SCHED_RESET_ON_FORK, old_param)


def current_cpu() -> int:
    """The CPU the calling thread runs on now (sched_getcpu(3); os has none before 3.12)."""
    cpu = _libc.sched_getcpu()
    if cpu < 0:
        raise _oserror("sched_getcpu")
    return int(cpu)


@contextlib.contextmanager
def pinned(cpu: int | None = None) -> Iterator[int]:
    """Run the calling thread on one CPU (`cpu`, default the one it is running on) and restore
    its CPU mask after, also on error or signal; yields the CPU. Why: an order-0 page freed by
    a task goes to the per-CPU list of the CPU it runs on (mm/page_alloc.c
    ``__free_frozen_pages()``: ``pcp_spin_trylock(zone->per_cpu_pageset)``, this CPU's; then
    ``free_frozen_page_commit()`` -> ``free_pcppages_bulk()`` of that list only, oldest pages
    first), and ``compact_memory`` never drains the lists (mm/compaction.c ``compact_zone()``:
    ``lru_add_drain_cpu_zone()`` only for ``cc->order > 0``). Pinned, the pages the twin frees
    before the snapshot and the sources the compaction frees share one list, the one whose
    count and high the snapshot's zoneinfo gives for that CPU."""
    old = os.sched_getaffinity(0)
    target = current_cpu() if cpu is None else int(cpu)
    if target not in old:
        raise ValueError(f"cpu: {target} is not in this task's CPU mask {sorted(old)}")
    os.sched_setaffinity(0, {target})
    try:
        yield target
    finally:
        os.sched_setaffinity(0, old)


def trigger_compaction(node: int | None = None, times: dict | None = None) -> float:
    """Write 1 to the compaction trigger; seconds the write took (compaction runs synchronously
    in the writing task: compact_nodes() / compact_node()). With `times`, also fill it with the
    writing thread's ``cpu_s`` (CPU seconds it ran: the compaction's kernel work) and
    ``run_delay_s`` (seconds it waited runnable for a CPU) during the write (thread_times);
    the rest of the wall time, ``wait_s``, it slept (locks, per-CPU work, throttling) or
    the hypervisor ran something else on its virtual CPU; and what the machine's CPUs did
    meanwhile (cpu_ticks, 10 ms resolution): ``busy_s`` (all of them, the writer included),
    ``steal_s`` and per CPU ``steal_cpus_s``."""
    trig = compact_trigger_path(node)
    tid = threading.get_native_id()
    if times is not None:
        r0 = procs_running()
        s0 = time.perf_counter()
        o0 = task_schedstat(tid)
        k0 = cpu_ticks()
    c0, d0 = thread_times()
    t0 = time.perf_counter()
    try:
        with open(trig, "w") as fh:
            fh.write("1")
    except OSError as exc:
        raise ProbeUnavailable(f"cannot write {trig}: {exc.strerror}") from None
    wall = time.perf_counter() - t0
    if times is not None:
        c1, d1 = thread_times()
        k = cpu_ticks() - k0
        o1 = task_times(o0, task_schedstat(tid))
        s1 = time.perf_counter()
        times.update(
            cpu_s=c1 - c0,
            run_delay_s=d1 - d0,
            wait_s=max(0.0, wall - (c1 - c0) - (d1 - d0)),
            busy_s=float(k[:, 0].sum()),
            steal_s=float(k[:, 1].sum()),
            steal_cpus_s=k[:, 1].tolist(),
            # the other threads meanwhile (task_schedstat, task_times; the window holds the write and the two
            # scans, a few ms): their CPU seconds and run-queue wait, and the runnable tasks
            # just before the write and right after it (procs_running, the writer included)
            others_cpu_s=o1[0],
            others_run_delay_s=o1[1],
            others_window_s=s1 - s0,
            procs_running=(r0, procs_running()),
            nr_cpus=len(k),
        )
    return wall


@dataclass
class CompactionSample:
    """One measured compaction run (seconds, pages, counter deltas)."""

    wall_s: float
    user_s: float
    sys_s: float
    vmstat: dict[str, int]
    pages_live: int
    pages_migrated: int
    pages_into_region: int
    block_frac: float
    baseline_wall_s: float
    baseline_migrated: int


def _measure_once(
    size: int,
    ratio: float,
    pattern: str,
    seed: int,
    node: int | None,
    hooks: dict[str, Callable[[AnonRegion], None]] | None = None,
) -> CompactionSample:
    """Settle, build the fragmented region, compact once, release. `hooks` (tests) are called
    with the region at the stages 'touched' (THPs split) and 'fragmented' (pattern freed)."""
    hooks = hooks or {}
    # settle: compact what other tasks left, so that the measured run sees mostly our pages
    v0 = read_vmstat()
    base_wall = trigger_compaction(node)
    base_migr = read_vmstat()["pgmigrate_success"] - v0["pgmigrate_success"]
    with AnonRegion(size) as region:
        region.madvise(MADV_HUGEPAGE)
        region.touch()
        pf = region.pfns()
        blocks = pf.reshape(-1, PAGEBLOCK_NR_PAGES)
        whole = (blocks[:, 0] % PAGEBLOCK_NR_PAGES == 0) & (np.diff(blocks, axis=1) == 1).all(1)
        # split every THP into order-0 pages (all stay mapped), then keep khugepaged away
        region.madvise_pages(_first_page_mask(region.nr_pages), MADV_COLD)
        region.madvise(MADV_NOHUGEPAGE)
        if "touched" in hooks:
            hooks["touched"](region)
        mask = free_mask(pattern, ratio, len(blocks), seed)
        region.madvise_pages(mask, MADV_DONTNEED)
        before = region.pfns()
        live = before >= 0
        if "fragmented" in hooks:
            hooks["fragmented"](region)
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        v0 = read_vmstat()
        wall = trigger_compaction(node)
        v1 = read_vmstat()
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        after = region.pfns()
    moved_mask = (after != before) & live
    moved = int(moved_mask.sum())
    own_blocks = np.unique(before[live] // PAGEBLOCK_NR_PAGES)
    into_region = int(np.isin(after[moved_mask] // PAGEBLOCK_NR_PAGES, own_blocks).sum())
    return CompactionSample(
        wall_s=wall,
        user_s=r1.ru_utime - r0.ru_utime,
        sys_s=r1.ru_stime - r0.ru_stime,
        vmstat={k: v1[k] - v0[k] for k in v0},
        pages_live=int(live.sum()),
        pages_migrated=moved,
        pages_into_region=into_region,
        block_frac=float(whole.mean()),
        baseline_wall_s=base_wall,
        baseline_migrated=int(base_migr),
    )


def _first_page_mask(nr_pages: int) -> np.ndarray:
    m = np.zeros(nr_pages, dtype=bool)
    m[::PAGEBLOCK_NR_PAGES] = True
    return m


@contextlib.contextmanager
def probe_settings(guard: SettingsGuard) -> Iterator[None]:
    """Settings for the compaction probe: THP at least 'madvise' (so MADV_HUGEPAGE works), no
    proactive compaction by kcompactd; all restored on exit."""
    try:
        enabled = THP_DIR / "enabled"
        if _selected(enabled.read_text()) == "never":
            guard.set(enabled, "madvise")
        if PROACTIVENESS.exists() and PROACTIVENESS.read_text().strip() != "0":
            guard.set(PROACTIVENESS, "0")
        yield
    finally:
        guard.restore()


def probe_compaction(
    size: int | str = "1G",
    ratios: Sequence[float] = (0.25, 0.5, 0.75),
    patterns: Sequence[str] = ("even",),
    repeats: int = 5,
    seed: int = 1,
    node: int | None = None,
    platform_name: str | None = None,
    hooks: dict[str, Callable[[AnonRegion], None]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> pl.DataFrame:
    """Measure whole-machine compaction of a fragmented region of `size` bytes (root only),
    `repeats` times per (ratio, pattern). One row per run in the compaction run contract with
    ``mode="baseline"``, ``source="measured"``, ``node_bytes`` = the region's size,
    ``pages_migrated`` = pgmigrate_success delta (the whole machine), ``wall_ms`` = time of the
    write to the trigger; ``sys_pct``/``user_pct`` = the writing task's CPU time over the wall
    time. Raises ProbeUnavailable (with the reason) where it cannot run."""
    nbytes = parse_size(size, name="size")
    if repeats < 1:
        raise ValueError(f"repeats: must be >= 1, got {repeats}")
    for r in ratios:
        if not 0.0 < r < 1.0:
            raise ValueError(f"ratios: each must be in (0, 1), got {r}")
    for p in patterns:
        if p not in PATTERNS:
            raise ValueError(f"pattern: must be one of {', '.join(PATTERNS)}; got {p!r}")
    nbytes = check_size_cap(nbytes)
    check_compaction_available(node)
    name = platform_name or host_platform_name()
    rows = []
    guard = SettingsGuard()
    with interrupt_guard(), probe_settings(guard):
        for pattern in patterns:
            for ratio in ratios:
                for trial in range(repeats):
                    run_seed = seed + trial
                    s = _measure_once(nbytes, ratio, pattern, run_seed, node, hooks)
                    rows.append(_compaction_row(s, nbytes, ratio, pattern, run_seed, trial, name))
                    if progress:
                        progress(
                            f"ratio {ratio} {pattern} #{trial}: {s.vmstat['pgmigrate_success']}"
                            f" pages in {s.wall_s * 1e3:.1f} ms"
                        )
    return HOST_COMPACTION_RUNS.conform(HOST_COMPACTION_RUNS.frame(rows))


def _compaction_row(s: CompactionSample, nbytes, ratio, pattern, seed, trial, name) -> dict:
    v = s.vmstat
    wall = max(s.wall_s, 1e-9)
    user = min(100.0, 100.0 * s.user_s / wall)
    sys_ = min(100.0 - user, 100.0 * s.sys_s / wall)
    return host_compaction_row(
        experiment="compaction",
        mode="baseline",
        cluster_max=32,
        node_bytes=nbytes,
        free_ratio=ratio,
        pattern=pattern,
        seed=seed,
        wall_ms=s.wall_s * 1e3,
        pages_migrated=v["pgmigrate_success"],
        dma_copies=0,
        user_pct=user,
        sys_pct=sys_,
        idle_pct=100.0 - user - sys_,
        **{k: v[k] for k in COMPACTION_VMSTAT},
        order=-1,
        fail_rate=0.0,
        wall_s=s.wall_s,
        sys_s=s.sys_s,
        user_s=s.user_s,
        platform=name,
        source="measured",
        trial=trial,
        probe_pages_live=s.pages_live,
        probe_pages_migrated=s.pages_migrated,
        probe_pages_into_region=s.pages_into_region,
        probe_block_frac=s.block_frac,
        baseline_wall_ms=s.baseline_wall_s * 1e3,
        baseline_pages_migrated=s.baseline_migrated,
    )


# the /proc/vmstat counters of a compaction run, as the simulator reports them
COMPACTION_VMSTAT = compaction.VMSTAT_KEYS


def with_rates(df: pl.DataFrame) -> pl.DataFrame:
    """Add ``cpu_s`` (the compacting task's CPU time: its user + sys share of the wall time),
    ``pages_per_s`` (pages migrated per second of wall time) and ``pages_per_cpu_s`` (per
    second of that CPU time). On an
    idle machine the two agree; when other tasks compete for the CPU, the wall time grows and
    only the CPU-time rate measures compaction itself."""
    wall_s = pl.col("wall_ms") / 1e3
    cpu_s = wall_s * (pl.col("user_pct") + pl.col("sys_pct")) / 100.0
    return df.with_columns(
        cpu_s=cpu_s,
        pages_per_s=pl.col("pages_migrated") / wall_s,
        pages_per_cpu_s=pl.col("pages_migrated") / cpu_s,
    )


def compaction_summary(df: pl.DataFrame) -> pl.DataFrame:
    """Per (source, pattern, free_ratio): median and spread (min, max, coefficient of
    variation) of the migration rate (per wall second and per CPU second), of the pages
    migrated and of the wall time; and the pooled rates, all pages over all seconds of the
    cell's runs (a run that migrated little weighs little)."""

    def spread(col: str) -> list[pl.Expr]:
        c = pl.col(col)
        return [
            c.median().alias(col),
            c.min().alias(f"{col}_min"),
            c.max().alias(f"{col}_max"),
            (c.std() / c.mean()).alias(f"{col}_cv"),
        ]

    return (
        with_rates(df)
        .group_by("source", "pattern", "free_ratio")
        .agg(
            pl.len().alias("runs"),
            *spread("pages_per_s"),
            *spread("pages_per_cpu_s"),
            *spread("pages_migrated"),
            (pl.col("pages_migrated").sum() / pl.col("cpu_s").sum()).alias(
                "pages_per_cpu_s_pooled"
            ),
            (pl.col("pages_migrated").sum() / (pl.col("wall_ms").sum() / 1e3)).alias(
                "pages_per_s_pooled"
            ),
            pl.col("wall_ms").median(),
            pl.col("sys_pct").median(),
        )
        .sort("source", "pattern", "free_ratio")
    )
