"""/proc/vmstat counters and allocation latencies of a simulated run, from its work log.

The counters are those mm/vmstat.c names (vmstat_text): ``pgmigrate_success``,
``pgmigrate_fail``, ``compact_stall``, ``compact_fail``, ``compact_success``,
``compact_migrate_scanned``, ``compact_free_scanned``, ``compact_isolated``,
``thp_migration_success``, ``thp_migration_fail``, ``thp_migration_split``. The latency of an
allocation runs from its entry into the slow path (__alloc_pages_slowpath, after the fast
path failed) to the page returned, on the clock of the costed run (``RunCost.calls``).
"""

from __future__ import annotations

import numpy as np

from migsim.kernel.compaction import (
    M_ALLOC_ENTER,
    M_ALLOC_EXIT,
    MARK_CALL,
    MARK_WORK,
    NR_WORK,
    W_FREE_ISOLATED,
    W_FREE_SCANNED,
    W_ISOLATED,
    W_MIGRATE_SCANNED,
    CompactionLog,
)

PERCENTILES = (5, 25, 50, 75, 90, 95, 99)
THP_KEYS = ("thp_migration_success", "thp_migration_fail", "thp_migration_split")


def move_pages_vmstat(nr_pages: int, nr_folios: int, folio_pages: int) -> dict[str, int]:
    """The counters one move_pages() run of `nr_folios` folios of `folio_pages` base pages
    changes (mm/migrate.c migrate_pages(): PGMIGRATE_SUCCESS counts base pages,
    THP_MIGRATION_SUCCESS the PMD-mappable folios; the model's migrations never fail nor
    split a folio)."""
    from migsim.units import HPAGE_PMD_NR

    thp = nr_folios if folio_pages >= HPAGE_PMD_NR else 0
    return {
        "pgmigrate_success": int(nr_pages),
        "pgmigrate_fail": 0,
        "thp_migration_success": int(thp),
        "thp_migration_fail": 0,
        "thp_migration_split": 0,
    }


def vmstat_from_log(log: CompactionLog) -> dict[str, int]:
    """The counters a work log accounts for by itself: pages migrated by the calls and the
    scanners' and isolations' work (the compact_stall family is counted per attempt by the
    Compactor)."""
    w = log.work.sum(0) + log.tail
    return {
        "pgmigrate_success": int(log.pages.sum()),
        "compact_migrate_scanned": int(w[W_MIGRATE_SCANNED]),
        "compact_free_scanned": int(w[W_FREE_SCANNED]),
        "compact_isolated": int(w[W_ISOLATED] + w[W_FREE_ISOLATED]),
    }


# --------------------------------------------------------------------------------------------
# The clock of a costed run
# --------------------------------------------------------------------------------------------


def run_clock(cost) -> tuple[np.ndarray, np.ndarray, float]:
    """Start of each interval of the run (interval k: the work before call k, then call k;
    (ncalls + 1,) seconds, the last one the start of the work after the last call), the
    start of each migrate_pages() call, and the wall seconds per CPU second of compaction
    work. Idle modes: 1. Busy modes: the hog's fair share and the context switches of the
    closed-form timeline (migsim.cost.timeline), spread over the run in proportion to the work."""
    c = cost.calls
    if c is None:
        raise ValueError("cost: the run was costed without per-call costs")
    cpu = float(c.pre_s.sum() + c.run_s.sum() + c.move_s.sum() + c.tail_s)
    slept = float(c.sleep_s.sum())
    wall = cost.timeline.wall_s
    f = (wall - slept) / cpu if cpu > 0 else 1.0
    step = f * (c.pre_s + c.run_s + c.move_s) + c.sleep_s
    starts = np.concatenate(([0.0], np.cumsum(step)))
    return starts, starts[:-1] + f * c.pre_s, f


def mark_times(log: CompactionLog, cost) -> np.ndarray:
    """Simulated time (s) of every mark of `log` in the costed run."""
    starts, _, f = run_clock(cost)
    m = log.marks
    if not len(m):
        return np.zeros(0)
    work = m[:, MARK_WORK : MARK_WORK + NR_WORK].astype(np.float64)
    return starts[m[:, MARK_CALL]] + f * (work @ cost.calls.unit_s)


def alloc_latency_us(log: CompactionLog, cost) -> np.ndarray:
    """Latency of every allocation that entered the slow path (entry to page returned or
    failure), in microseconds, in allocation order."""
    t = mark_times(log, cost)
    kind = log.marks[:, 0] if len(log.marks) else np.zeros(0, np.int64)
    enter, leave = t[kind == M_ALLOC_ENTER], t[kind == M_ALLOC_EXIT]
    return (leave - enter[: len(leave)]) * 1e6


def percentiles(values: np.ndarray) -> dict[str, float | None]:
    """p5, p25, p50, p75, p90, p95, p99 of `values` (None for each when empty)."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return {f"p{p}": None for p in PERCENTILES}
    return {
        f"p{p}": float(v)
        for p, v in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True)
    }
