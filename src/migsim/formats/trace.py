"""Tracepoint events of a compaction run, in the kernel's text layout, and real traces read back.

A simulated run's events come from its work log (``CompactionLog``: the migrate_pages()
calls and the marks between them, migsim.kernel.compaction M_*) placed on the clock of the costed run
(``RunCost.calls``), so each mode of the same run has its own timestamps. The fields are those
of the kernel's TP_printk formats:

- ``include/trace/events/compaction.h``: mm_compaction_isolate_migratepages/_freepages
  (``range=(0x%lx ~ 0x%lx) nr_scanned=%lu nr_taken=%lu``), mm_compaction_migratepages,
  mm_compaction_begin/_end, mm_compaction_try_to_compact_pages, mm_compaction_finished,
  mm_compaction_suitable, mm_compaction_deferred/_defer_compaction/_defer_reset;
- ``include/trace/events/migrate.h``: mm_migrate_pages_start, mm_migrate_pages.

Lines are written as tracefs' ``trace`` file prints them (kernel/trace/trace_output.c,
trace_print_context: ``%16s-%-7d [%03d] flags %5lu.%06lu: event: fields``); ``parse_trace``
reads that layout and ``perf script``'s (``comm pid [cpu] time: system:event: fields``).

Where the model simplifies: the run is one task pinned to CPU 0 of node 0, zone Normal; the
GFP mask printed is that of the test module's alloc_pages_node(GFP_KERNEL | __GFP_THISNODE);
an event between two migrate_pages() calls is placed after the compaction work logged before
it, at the cost the run charges for that work.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from migsim.kernel.compaction import (
    COMPACT_CONTINUE,
    M_ALLOC_ENTER,
    M_ALLOC_EXIT,
    M_BEGIN,
    M_DEFER_COMPACTION,
    M_DEFER_RESET,
    M_DEFERRED,
    M_END,
    M_FINISHED,
    M_ISO_FREE,
    M_ISO_MIGRATE,
    M_MIGRATE_FAIL,
    M_SUITABLE,
    M_TRY,
    MARK_ARGS,
    MARK_CALL,
    RESULT_NAMES,
    CompactionLog,
)
from migsim.kernel.vmstat import mark_times, percentiles, run_clock
from migsim.output.schema import F64, I32, I64, S, Schema, _c
from migsim.units import PAGEBLOCK_NR_PAGES

TRACE_EVENTS = Schema(
    name="trace_events",
    doc="One row per tracepoint event of a compaction run (simulated or imported).",
    columns=(
        _c("seq", I64, "", "position of the event in the trace, from 0"),
        _c("time_s", F64, "s", "timestamp (simulated: from the start of the run)"),
        _c("task", S, "", "task name (comm)"),
        _c("pid", I64, "", "task pid"),
        _c("cpu", I32, "", "CPU the event was recorded on"),
        _c("event", S, "", "tracepoint name"),
        _c("start_pfn", I64, "pfn", "isolate events: start of the scanned range"),
        _c("end_pfn", I64, "pfn", "isolate events: where the scan stopped"),
        _c("nr_scanned", I64, "pages", "isolate events: pfns scanned"),
        _c("nr_taken", I64, "pages", "isolate events: pages isolated"),
        _c("nr_succeeded", I64, "pages", "mm_migrate_pages nr_succeeded, migratepages nr_migrated"),
        _c("nr_failed", I64, "pages", "mm_migrate_pages / mm_compaction_migratepages nr_failed"),
        _c("order", I32, "", "allocation order (-1: compact_memory)"),
        _c("status", S, "", "compaction status or ret, migrate mode, or compaction mode"),
        _c("text", S, "", "the event's fields as printed (TP_printk)"),
    ),
    sort_by=("seq",),
    nulls_allowed=frozenset(
        {
            "start_pfn",
            "end_pfn",
            "nr_scanned",
            "nr_taken",
            "nr_succeeded",
            "nr_failed",
            "order",
            "status",
        }
    ),
)

SIM_TASK, SIM_PID, SIM_CPU = "insmod", 1000, 0  # the test module's loop, pinned to CPU 0
SIM_NODE, SIM_ZONE = 0, "Normal"
SIM_GFP = "GFP_KERNEL|__GFP_THISNODE"
MIGRATE_MODE_NAMES = ("MIGRATE_ASYNC", "MIGRATE_SYNC_LIGHT", "MIGRATE_SYNC")

# the events this module writes and reads (system, event)
EVENTS = {
    "mm_compaction_isolate_migratepages": "compaction",
    "mm_compaction_isolate_freepages": "compaction",
    "mm_compaction_fast_isolate_freepages": "compaction",
    "mm_compaction_migratepages": "compaction",
    "mm_compaction_begin": "compaction",
    "mm_compaction_end": "compaction",
    "mm_compaction_try_to_compact_pages": "compaction",
    "mm_compaction_finished": "compaction",
    "mm_compaction_suitable": "compaction",
    "mm_compaction_deferred": "compaction",
    "mm_compaction_defer_compaction": "compaction",
    "mm_compaction_defer_reset": "compaction",
    "mm_compaction_kcompactd_sleep": "compaction",
    "mm_compaction_wakeup_kcompactd": "compaction",
    "mm_compaction_kcompactd_wake": "compaction",
    "mm_migrate_pages": "migrate",
    "mm_migrate_pages_start": "migrate",
}

# --------------------------------------------------------------------------------------------
# Events of a simulated run
# --------------------------------------------------------------------------------------------


def _defer_text(order: int, considered: int, shift: int, failed: int) -> str:
    return (
        f"node={SIM_NODE} zone={SIM_ZONE:<8} order={order} order_failed={failed} "
        f"consider={considered} limit={1 << shift}"
    )


def _scanners_text(zs: int, ze: int, mig: int, free: int, mode: int) -> str:
    sync = "async" if mode == 0 else "sync"
    return f"zone_start=0x{zs:x} migrate_pfn=0x{mig:x} free_pfn=0x{free:x} zone_end=0x{ze:x}, mode={sync}"


def _finished_ret(order: int, ret: int, migrate_pfn: int) -> int:
    """The value trace_mm_compaction_finished() prints: __compact_finished() returns
    COMPACT_NO_SUITABLE_PAGE where migsim's compact_finished() already gives the
    COMPACT_CONTINUE that compact_finished() turns it into."""
    if ret == COMPACT_CONTINUE and order >= 0 and not migrate_pfn % PAGEBLOCK_NR_PAGES:
        return RESULT_NAMES.index("no_suitable_page")
    return ret


def _mark_event(kind: int, a: tuple[int, int, int, int], zone: tuple[int, int]) -> tuple | None:
    """(event, order, status, text, start, end, scanned, taken) of one mark, or None."""
    a0, a1, a2, a3 = a
    if kind in (M_ISO_MIGRATE, M_ISO_FREE):
        name = "migratepages" if kind == M_ISO_MIGRATE else "freepages"
        text = f"range=(0x{a0:x} ~ 0x{a1:x}) nr_scanned={a2} nr_taken={a3}"
        return (f"mm_compaction_isolate_{name}", None, None, text, a0, a1, a2, a3)
    if kind in (M_FINISHED, M_SUITABLE):
        ret = _finished_ret(a0, a1, a2) if kind == M_FINISHED else a1
        name = "finished" if kind == M_FINISHED else "suitable"
        text = f"node={SIM_NODE} zone={SIM_ZONE:<8} order={a0} ret={RESULT_NAMES[ret]}"
        return (f"mm_compaction_{name}", a0, RESULT_NAMES[ret], text, None, None, None, None)
    if kind == M_TRY:
        text = f"order={a0} gfp_mask={SIM_GFP} priority={a1}"
        return ("mm_compaction_try_to_compact_pages", a0, None, text, None, None, None, None)
    if kind in (M_DEFERRED, M_DEFER_COMPACTION, M_DEFER_RESET):
        name = {M_DEFERRED: "deferred", M_DEFER_COMPACTION: "defer_compaction"}.get(
            kind, "defer_reset"
        )
        text = _defer_text(a0, a1, a2, a3)
        return (f"mm_compaction_{name}", a0, None, text, None, None, None, None)
    if kind == M_BEGIN:
        text = _scanners_text(*zone, a0, a1, a2)
        mode = "async" if a2 == 0 else "sync"
        return ("mm_compaction_begin", a3, mode, text, None, None, None, None)
    if kind == M_END:
        text = _scanners_text(*zone, a0, a1, a2) + f" status={RESULT_NAMES[a3]}"
        return ("mm_compaction_end", None, RESULT_NAMES[a3], text, None, None, None, None)
    return None


def simulated_events(
    log: CompactionLog, cost, *, zone_start: int, zone_end: int, max_events: int | None = None
) -> tuple[pl.DataFrame, int]:
    """The trace events of a costed run recorded with ``Compactor(trace=True)``, as a
    TRACE_EVENTS frame (at most `max_events` rows, the first ones), and the number of events
    the whole run has."""
    m = log.marks
    kinds = m[:, 0] if len(m) else np.zeros(0, np.int64)
    if not (kinds == M_BEGIN).any() and len(log.pages):
        raise ValueError("trace: the run was simulated without tracing (Compactor(trace=True))")
    t_mark = mark_times(log, cost)
    starts, call_start, _ = run_clock(cost)
    n = len(log.pages)
    # per call: its migrate mode (that of the compact_zone() it belongs to) and failures
    begins = np.flatnonzero(kinds == M_BEGIN)
    owner = np.searchsorted(m[begins, MARK_CALL], np.arange(n), side="right") - 1
    call_mode = m[begins, MARK_ARGS + 2][np.maximum(owner, 0)] if len(begins) else np.zeros(n)
    failed = np.zeros(n, np.int64)
    fails = kinds == M_MIGRATE_FAIL
    np.add.at(failed, m[fails, MARK_CALL], m[fails, MARK_ARGS])
    # order: marks keep their position; call k's three events follow the marks before it
    gap = 2 * np.searchsorted(m[:, MARK_CALL], np.arange(n), side="right") - 1 if n else []
    rows: list[tuple] = []
    zone = (zone_start, zone_end)
    for i in np.flatnonzero(~np.isin(kinds, (M_ALLOC_ENTER, M_ALLOC_EXIT, M_MIGRATE_FAIL))):
        ev = _mark_event(int(kinds[i]), tuple(int(x) for x in m[i, MARK_ARGS:]), zone)
        if ev is not None:
            rows.append((2 * int(i), 0, float(t_mark[i]), *ev, None, None))
    pages = log.pages
    for k in range(n):
        mode = MIGRATE_MODE_NAMES[int(call_mode[k])]
        s, f, g = int(pages[k]), int(failed[k]), int(gap[k])
        rows.append((g, 3 * k, float(call_start[k]), "mm_migrate_pages_start", None, mode,
                     f"mode={mode} reason=compaction", None, None, None, None, None, None))  # fmt: skip
        rows.append((g, 3 * k + 1, float(starts[k + 1]), "mm_migrate_pages", None, mode,
                     f"nr_succeeded={s} nr_failed={f} nr_thp_succeeded=0 nr_thp_failed=0 "
                     f"nr_thp_split=0 nr_split=0 mode={mode} reason=compaction",
                     None, None, None, None, s, f))  # fmt: skip
        rows.append((g, 3 * k + 2, float(starts[k + 1]), "mm_compaction_migratepages", None, None,
                     f"nr_migrated={s} nr_failed={f}", None, None, None, None, s, f))  # fmt: skip
    rows.sort(key=lambda r: (r[0], r[1]))
    total = len(rows)
    if max_events is not None:
        rows = rows[:max_events]
    cols = ("time_s", "event", "order", "status", "text", "start_pfn", "end_pfn", "nr_scanned",
            "nr_taken", "nr_succeeded", "nr_failed")  # fmt: skip
    data = {c: [r[j + 2] for r in rows] for j, c in enumerate(cols)}
    nrow = len(rows)
    data.update(
        seq=list(range(nrow)), task=[SIM_TASK] * nrow, pid=[SIM_PID] * nrow, cpu=[SIM_CPU] * nrow
    )
    return TRACE_EVENTS.conform(pl.DataFrame(data, schema_overrides=_POLARS, strict=False)), total


_POLARS = TRACE_EVENTS.polars_schema()


# --------------------------------------------------------------------------------------------
# Text layout
# --------------------------------------------------------------------------------------------

TRACE_HEADER = """# tracer: nop
#
# entries-in-buffer/entries-written: {n}/{n}   #P:1
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
"""


def format_lines(events: pl.DataFrame) -> Iterator[str]:
    """The events as tracefs prints them (trace_print_context), one line each, no newline."""
    cols = ("task", "pid", "cpu", "time_s", "event", "text")
    for task, pid, cpu, t, event, text in events.select(cols).iter_rows():
        us = int(round(t * 1e6))
        yield f"{task:>16}-{pid:<7} [{cpu:03d}] ..... {us // 1_000_000:5d}.{us % 1_000_000:06d}: {event}: {text}"


def write_trace_text(events: pl.DataFrame, path) -> None:
    """The events as a tracefs ``trace`` file at `path` (written atomically)."""
    from migsim.atomic import atomic_write_bytes

    body = "\n".join(format_lines(events))
    text = TRACE_HEADER.format(n=events.height) + body + ("\n" if body else "")
    atomic_write_bytes(path, text.encode())


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------

# tracefs: "  comm-pid  [cpu] flags  sec.usec: event: fields" (record-tgid adds "(tgid)")
_TRACEFS = re.compile(
    r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:[^\s\[\]]{4,6}\s+)?(?P<ts>\d+\.\d+):\s+(?P<event>\w+):\s?(?P<fields>.*)$"
)
# perf script: "  comm  pid [cpu] sec.usec: system:event: fields"
_PERF = re.compile(
    r"^\s*(?P<task>.+?)\s+(?P<pid>\d+)(?:/\d+)?\s+\[(?P<cpu>\d+)\]\s+(?P<ts>\d+\.\d+):\s+"
    r"(?:(?P<system>\w+):)?(?P<event>\w+):\s?(?P<fields>.*)$"
)
_HEX, _DEC = r"0x([0-9a-fA-F]+)", r"(-?\d+)"
_ISO = re.compile(rf"^range=\({_HEX} ~ {_HEX}\) nr_scanned={_DEC} nr_taken={_DEC}$")
# kernels 6.1..6.18: nr_split since 6.3; older ones stop at nr_thp_split
_MIGRATE = re.compile(
    rf"^nr_succeeded={_DEC} nr_failed={_DEC} nr_thp_succeeded={_DEC} nr_thp_failed={_DEC} "
    rf"nr_thp_split={_DEC}(?: nr_split={_DEC})? mode=(\w+) reason=(\w+)$"
)
_MIGRATE_START = re.compile(r"^mode=(\w+) reason=(\w+)$")
_MIGRATEPAGES = re.compile(rf"^nr_migrated={_DEC} nr_failed={_DEC}$")
_SCANNERS = re.compile(
    rf"^zone_start={_HEX} migrate_pfn={_HEX} free_pfn={_HEX} zone_end={_HEX}, mode=(a?sync)"
    r"(?: status=(\w+))?$"
)
_TRY = re.compile(rf"^order={_DEC} gfp_mask=(\S+) priority={_DEC}$")
_SUITABLE = re.compile(rf"^node={_DEC} zone=(\w+)\s+order={_DEC} ret=(\w+)$")
_DEFER = re.compile(
    rf"^node={_DEC} zone=(\w+)\s+order={_DEC} order_failed={_DEC} consider={_DEC} limit={_DEC}$"
)
_KCOMPACTD = re.compile(rf"^nid={_DEC}(?: order={_DEC} classzone_idx=(\w+)\s*)?$")


def _parse_fields(event: str, text: str) -> dict | None:
    """The schema columns of one event's fields, or None if they do not parse."""
    if event in (
        "mm_compaction_isolate_migratepages",
        "mm_compaction_isolate_freepages",
        "mm_compaction_fast_isolate_freepages",
    ):
        if mm := _ISO.match(text):
            s, e, n, t = mm.groups()
            return {"start_pfn": int(s, 16), "end_pfn": int(e, 16), "nr_scanned": int(n),
                    "nr_taken": int(t)}  # fmt: skip
    elif event == "mm_migrate_pages":
        if mm := _MIGRATE.match(text):
            g = mm.groups()
            return {"nr_succeeded": int(g[0]), "nr_failed": int(g[1]), "status": g[6]}
    elif event == "mm_migrate_pages_start":
        if mm := _MIGRATE_START.match(text):
            return {"status": mm.group(1)}
    elif event == "mm_compaction_migratepages":
        if mm := _MIGRATEPAGES.match(text):
            return {"nr_succeeded": int(mm.group(1)), "nr_failed": int(mm.group(2))}
    elif event in ("mm_compaction_begin", "mm_compaction_end"):
        if (mm := _SCANNERS.match(text)) and (mm.group(6) is None) == (event.endswith("begin")):
            return {"status": mm.group(6) or mm.group(5)}
    elif event == "mm_compaction_try_to_compact_pages":
        if mm := _TRY.match(text):
            return {"order": int(mm.group(1))}
    elif event in ("mm_compaction_finished", "mm_compaction_suitable"):
        if mm := _SUITABLE.match(text):
            return {"order": int(mm.group(3)), "status": mm.group(4)}
    elif event.startswith("mm_compaction_defer"):
        if mm := _DEFER.match(text):
            return {"order": int(mm.group(3))}
    elif "kcompactd" in event and (mm := _KCOMPACTD.match(text)):
        return {"order": int(mm.group(2)) if mm.group(2) else None}
    return None


@dataclass
class ImportedTrace:
    """A real trace read back: the events of EVENTS as TRACE_EVENTS rows, and what was not."""

    events: pl.DataFrame
    counts: dict[str, int]
    unparsed: int  # lines of EVENTS whose layout or fields do not parse
    skipped: dict[str, int] = field(default_factory=dict)  # other events, by name
    unparsed_examples: list[str] = field(default_factory=list)
    lines: int = 0  # lines that are not blank
    event_lines: int = 0  # lines in the tracefs or perf script layout (of any event)
    header: bool = False  # a tracefs "# tracer:" header line was seen


def parse_trace(lines: Iterable[str]) -> ImportedTrace:
    """Read tracefs ``trace`` text or ``perf script`` output (comment and blank lines, and
    the CPU-buffer notices, are ignored)."""
    rows: list[dict] = []
    counts: Counter = Counter()
    skipped: Counter = Counter()
    unparsed, examples = 0, []
    n_lines = n_event_lines = 0
    header = False
    for raw in lines:
        line = raw.rstrip("\n")
        if not line.strip():
            continue
        n_lines += 1
        if line.lstrip().startswith("#") or line.startswith("CPU:"):
            header = header or line.startswith("# tracer:")
            continue
        mm = _TRACEFS.match(line) or _PERF.match(line)
        if mm is not None:
            n_event_lines += 1
        if mm is None:
            if any(e in line for e in EVENTS):
                unparsed += 1
                examples = (examples + [line])[:5]
            else:
                skipped["(not an event line)"] += 1
            continue
        event = mm.group("event")
        if event not in EVENTS:
            skipped[event] += 1
            continue
        text = mm.group("fields")
        values = _parse_fields(event, text)
        if values is None:
            unparsed += 1
            examples = (examples + [line])[:5]
            continue
        counts[event] += 1
        rows.append({"task": mm.group("task").strip(), "pid": int(mm.group("pid")),
                     "cpu": int(mm.group("cpu")), "time_s": float(mm.group("ts")),
                     "event": event, "text": text, **values})  # fmt: skip
    for i, r in enumerate(rows):
        r["seq"] = i
    frame = (
        pl.DataFrame(rows, schema=_POLARS, strict=False) if rows else pl.DataFrame(schema=_POLARS)
    )
    return ImportedTrace(TRACE_EVENTS.conform(frame), dict(counts), unparsed, dict(skipped),
                         examples, n_lines, n_event_lines, header)  # fmt: skip


def read_trace(path) -> ImportedTrace:
    """parse_trace() of a text file; ValueError (one line naming the file) if it is empty,
    binary or has no line in the tracefs or perf script layout, so that a wrong file is not
    reported as a trace with 0 events. (A tracefs capture in which no event fired has its
    ``# tracer:`` header and imports as 0 events; an empty ``perf script`` output cannot be
    told from an empty file and is refused.)"""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if b"\0" in head:
        raise ValueError(
            f"{path}: a binary file, not a trace (for a perf.data file, import the text of "
            f"`perf script -i {path}`)"
        )
    with open(path, errors="replace") as fh:
        imp = parse_trace(fh)
    if imp.lines == 0:
        raise ValueError(f"{path}: empty file, not a trace (no tracefs or perf script lines)")
    if imp.event_lines == 0 and imp.unparsed == 0 and not imp.header:
        raise ValueError(
            f"{path}: not a trace: none of its {imp.lines} lines is in the tracefs `trace` or "
            "`perf script` layout"
        )
    return imp


# --------------------------------------------------------------------------------------------
# What a trace says
# --------------------------------------------------------------------------------------------


def _sum(events: pl.DataFrame, names: tuple[str, ...], col: str) -> int:
    return int(events.filter(pl.col("event").is_in(names))[col].sum() or 0)


def vmstat_from_events(events: pl.DataFrame) -> dict[str, int]:
    """The /proc/vmstat counters the events account for (kernel: pgmigrate_* from the same
    stats as mm_migrate_pages; COMPACTISOLATED and the scanned counts from the isolate
    events' nr_taken and nr_scanned; compact_stall/_success/_fail from the direct compactions,
    direct_compactions())."""
    iso_m = ("mm_compaction_isolate_migratepages",)
    iso_f = ("mm_compaction_isolate_freepages", "mm_compaction_fast_isolate_freepages")
    iso_counted = ("mm_compaction_isolate_migratepages", "mm_compaction_isolate_freepages")
    direct = direct_compactions(events)
    stall = int(direct["stall"].sum())
    success = int(direct["success"].sum())
    return {
        "pgmigrate_success": _sum(events, ("mm_migrate_pages",), "nr_succeeded"),
        "pgmigrate_fail": _sum(events, ("mm_migrate_pages",), "nr_failed"),
        "compact_isolated": _sum(events, iso_counted, "nr_taken"),
        "compact_migrate_scanned": _sum(events, iso_m, "nr_scanned"),
        "compact_free_scanned": _sum(events, iso_f, "nr_scanned"),
        "compact_stall": stall,
        "compact_success": success,
        "compact_fail": stall - success,
    }


# the per-zone outcome events of a direct compaction, and what each says of the zone
_ZONE_EVENTS = (
    "mm_compaction_try_to_compact_pages",
    "mm_compaction_deferred",
    "mm_compaction_suitable",
    "mm_compaction_end",
    "mm_compaction_defer_reset",
)
_SKIPPED = ("skipped", "not_suitable_zone")


def direct_compactions(events: pl.DataFrame) -> pl.DataFrame:
    """One row per direct compaction (__alloc_pages_direct_compact(), one
    mm_compaction_try_to_compact_pages event): pid, time_s, order, the outcome of
    try_to_compact_pages() (`result`: the highest zone status seen), whether the kernel
    counted COMPACTSTALL (`stall`) and COMPACTSUCCESS (`success`; COMPACTFAIL = stall and not
    success).

    mm/page_alloc.c __alloc_pages_direct_compact(): no stall if try_to_compact_pages()
    returned COMPACT_SKIPPED (every zone skipped: mm_compaction_suitable ret=skipped or
    not_suitable_zone; a deferred zone, mm_compaction_deferred, is COMPACT_DEFERRED and counts
    as a stall). A page, captured or from the free lists, is COMPACTSUCCESS and calls
    compaction_defer_reset(zone, order, true); try_to_compact_pages() itself calls it (false)
    when a zone returns COMPACT_SUCCESS, which it does with mm_compaction_end status=success,
    with mm_compaction_suitable ret=success (kernels before 6.6) or, from 6.6, silently
    (watermark already met in compact_zone()). Each call traces mm_compaction_defer_reset, so
    a success leaves one more reset than its zones' SUCCESS. One ambiguity the tracepoints
    leave: one reset after zone events none of which says success is either a silent 6.6+
    SUCCESS (of a later zone) whose allocation then failed or a page found on the free lists
    after an unsuccessful compaction; both are races, and it is counted as the latter (a
    success). (With no zone event at all there is no such choice: a zone always traces
    something unless it returns a silent SUCCESS, or the cpuset excludes it.)

    The events of a task from one try_to_compact_pages event to its next belong to that
    compaction (a task that also writes compact_memory in between would mix them in); the
    counts need the five events above enabled (``migsim probe trace`` enables them)."""
    ev = events.filter(pl.col("event").is_in(_ZONE_EVENTS)).sort("seq")
    rows: list[tuple] = []
    open_: dict[int, list] = {}  # pid -> [time_s, order, zone outcomes, resets]

    def close(pid: int) -> None:
        time_s, order, zones, resets = open_.pop(pid)
        # the reset of try_to_compact_pages(): after a zone's SUCCESS, seen or (no zone
        # event: every zone returns one, so only a silent 6.6+ SUCCESS) inferred
        in_loop = "success" in zones or (resets > 0 and not zones) or resets > 1
        success = resets - int(in_loop) > 0
        rank = {name: i for i, name in enumerate(RESULT_NAMES)}
        result = max(zones, key=lambda z: rank.get(z, -1)) if zones else "skipped"
        if in_loop:
            result = "success"
        stall = bool(resets) or any(z not in _SKIPPED for z in zones)
        rows.append((pid, time_s, order, result, stall, success))

    for pid, event, status, time_s, order in ev.select(
        "pid", "event", "status", "time_s", "order"
    ).iter_rows():
        if event == "mm_compaction_try_to_compact_pages":
            if pid in open_:
                close(pid)
            open_[pid] = [time_s, order, [], 0]
            continue
        cur = open_.get(pid)
        if cur is None:  # kcompactd, compact_memory, proactive compaction: not direct
            continue
        if event == "mm_compaction_deferred":
            cur[2].append("deferred")
        elif event == "mm_compaction_suitable":
            if status != "continue":  # continue: compact_zone() runs, its end says how
                cur[2].append(status)
        elif event == "mm_compaction_end":
            cur[2].append(status)
        else:
            cur[3] += 1
    for pid in list(open_):
        close(pid)
    schema = {"pid": pl.Int64, "time_s": pl.Float64, "order": pl.Int32, "result": pl.String,
              "stall": pl.Boolean, "success": pl.Boolean}  # fmt: skip
    return pl.DataFrame(rows, schema=schema, orient="row").sort("time_s", "pid")


def call_table(events: pl.DataFrame) -> pl.DataFrame:
    """One row per migrate_pages() call: end time (s), pages migrated and failed, and its
    latency (us) from the task's mm_migrate_pages_start, where that event was recorded."""
    ev = events.filter(pl.col("event").is_in(("mm_migrate_pages_start", "mm_migrate_pages")))
    ev = ev.sort("seq").with_columns(
        pl.when(pl.col("event") == "mm_migrate_pages_start")
        .then(pl.col("time_s"))
        .otherwise(None)
        .forward_fill()
        .over("pid")
        .alias("_start"),
        (pl.col("event") == "mm_migrate_pages_start").shift(1).over("pid").alias("_paired"),
    )
    calls = ev.filter(pl.col("event") == "mm_migrate_pages")
    return calls.select(
        pl.col("time_s"),
        pl.col("nr_succeeded").alias("pages"),
        pl.col("nr_failed").alias("failed"),
        pl.when(pl.col("_paired").fill_null(False))
        .then((pl.col("time_s") - pl.col("_start")) * 1e6)
        .otherwise(None)
        .alias("latency_us"),
    )


def compaction_table(events: pl.DataFrame) -> pl.DataFrame:
    """One row per compact_zone() run (mm_compaction_begin .. _end of one task): duration
    (us) and status."""
    ev = events.filter(pl.col("event").is_in(("mm_compaction_begin", "mm_compaction_end")))
    ev = ev.sort("seq").with_columns(
        pl.col("time_s").shift(1).over("pid").alias("_begin"),
        pl.col("event").shift(1).over("pid").alias("_prev"),
    )
    ends = ev.filter(pl.col("event") == "mm_compaction_end")
    return ends.select(
        pl.col("time_s"),
        pl.col("status"),
        pl.when(pl.col("_prev") == "mm_compaction_begin")
        .then((pl.col("time_s") - pl.col("_begin")) * 1e6)
        .otherwise(None)
        .alias("duration_us"),
    )


def summarise_events(events: pl.DataFrame) -> dict:
    """Per-call and per-compaction summaries of a trace: counts, pages per call, latencies."""
    calls = call_table(events)
    comps = compaction_table(events)
    lat = calls["latency_us"].drop_nulls().to_numpy()
    dur = comps["duration_us"].drop_nulls().to_numpy()
    pages = calls["pages"].to_numpy()
    span = float(events["time_s"].max() - events["time_s"].min()) if events.height else 0.0
    return {
        "migrate_calls": calls.height,
        "pages_per_call": {
            "mean": float(pages.mean()) if len(pages) else None,
            **percentiles(pages),
        },  # fmt: skip
        "call_latency_us": percentiles(lat),
        "compactions": comps.height,
        "compaction_us": percentiles(dur),
        "status": dict(Counter(comps["status"].drop_nulls().to_list())),
        "span_s": span,
    }
