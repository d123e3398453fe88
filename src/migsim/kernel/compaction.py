"""Direct compaction, modelled on mm/compaction.c (v6.3 and later) and the allocation slow path.

The control flow follows the kernel function by function so the two can be read side by
side: ``alloc_pages_node`` -> ``__alloc_pages_direct_compact`` (async priority, then
sync-light) -> ``try_to_compact_pages`` (deferral) -> ``compact_zone_order`` (capture control)
-> ``compact_zone``: the migration scanner (``isolate_migratepages`` /
``isolate_migratepages_block``: COMPACT_CLUSTER_MAX pages, then the ``finish_pageblock``
pass), ``migrate_pages`` with ``compaction_alloc`` as the target allocator fed by the free
scanner (``isolate_freepages``), the capture check right after migrate_pages() and *before*
the drain of the per-CPU lists (``check_drain``), the cached scanner positions, skip bits and
deferral counters that persist in the zone between calls.

Every page really moves: the source's content tag is copied to the target frame, the source
goes to the per-CPU list and from there (free_pcppages_bulk, drain) to the buddy allocator,
where the capture can happen. So *when* a block is captured, and hence how many pages a run
migrates, comes out of the mechanism.

Cost is not computed here page by page: each migrate_pages() call is logged with the
compaction work done since the previous call (pfns scanned by each scanner, pages isolated,
pages freed into the buddy lists, slow-path entries) and :func:`cost_log` costs all calls of
a run at once, migrating "through the same code" as the throughput experiment
(``migsim.kernel.migrate.cost_batches``).

Simplifications (the kernel does more): fast_find_migrateblock(), fast_isolate_freepages()
and the async free scanner's stride (isolate_freepages() starts each call at stride
COMPACT_CLUSTER_MAX, back to 1 after a pageblock that gave pages) are not run: the free
scanner is the stride-1 linear scan, and free buddy blocks are isolated page by page. What
they would do depends on state the model does not have. The stride marks a target pageblock
skip once sampled to its end (16 of its 256 free pages taken under the even pattern), so the
free scanner uses ~2 pageblocks per call and the rest come back only when the skip bits are
cleared (kswapd's reset_isolation_suitable() in kswapd_try_to_sleep, not modelled, or
compaction_restarting() after the deferrals): a 64 MB zone then fails its allocations once the
scanners meet (at full scale alone it leaves the pages migrated as they
are and cuts the free pfns scanned from 14.1M to 8.9M). fast_isolate_freepages() walks each
free list from its tail, the lowest pfns when the node was freed in ascending order
(__free_one_page adds at the head), so it finds nothing in the top quarter; while
compact_init_free_pfn is still 0 after boot (only __reset_isolation_suitable() sets it) each
failed search moves cc->free_pfn to the middle of the scan space. Together with the stride
that reading gives 331 pages per allocation at full scale against the published 278.5-282,
so the published machine was not in that state (an earlier reset, another free-list order,
kcompactd); a trace of a real run (mm_compaction_fast_isolate_freepages) would settle it.
Migration of an isolated anonymous page never fails except for lack of a target; no direct
reclaim, no kswapd, no kcompactd, no lock contention.
"""

from __future__ import annotations

import hashlib
import os
import sys
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from migsim.kernel.zone import (
    ALLOCATED,
    FREE,
    ISOLATED_FREE,
    ISOLATED_LRU,
    LRU,
    MIGRATE_MOVABLE,
    MOVE_FLUSH_PAGES,
    PCP,
    PCP_BATCH_SCALE_MAX,
    STATE_U8,
    CaptureControl,
    PerCpuPages,
    Zone,
)
from migsim.units import COMPACT_CLUSTER_MAX, MAX_PAGE_ORDER, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER

try:  # compact_zone()'s allocation loop compiled (_compact.c; setup.py builds it)
    from migsim.kernel import _compact
except ImportError:  # not built: the Python below runs (engine "python"), with a warning
    _compact = None

# migrate modes
MIGRATE_ASYNC, MIGRATE_SYNC_LIGHT, MIGRATE_SYNC = 0, 1, 2
# compact priorities (enum compact_priority)
COMPACT_PRIO_SYNC_FULL, COMPACT_PRIO_SYNC_LIGHT, COMPACT_PRIO_ASYNC = 0, 1, 2
MIN_COMPACT_PRIORITY = COMPACT_PRIO_SYNC_FULL
# enum compact_result (ordered as in the kernel)
(
    COMPACT_NOT_SUITABLE_ZONE,
    COMPACT_SKIPPED,
    COMPACT_DEFERRED,
    COMPACT_NO_SUITABLE_PAGE,
    COMPACT_CONTINUE,
    COMPACT_COMPLETE,
    COMPACT_PARTIAL_SKIPPED,
    COMPACT_CONTENDED,
    COMPACT_SUCCESS,
) = range(9)
RESULT_NAMES = (
    "not_suitable_zone",
    "skipped",
    "deferred",
    "no_suitable_page",
    "continue",
    "complete",
    "partial_skipped",
    "contended",
    "success",
)
# the migrate mode of each compact priority (compact_zone_order; the rest: MIGRATE_SYNC)
PRIO_MIGRATE_MODE = {COMPACT_PRIO_ASYNC: MIGRATE_ASYNC, COMPACT_PRIO_SYNC_LIGHT: MIGRATE_SYNC_LIGHT}
ISOLATE_ABORT, ISOLATE_NONE, ISOLATE_SUCCESS = 0, 1, 2
BLOCK_MASK = ~(PAGEBLOCK_NR_PAGES - 1)  # pageblock_start_pfn(pfn) = pfn & BLOCK_MASK
# the frame states the migration scanner steps over or isolates, as bytes (bytes.translate)
_FREE_OR_LRU = bytes((FREE, LRU))
if (FREE, LRU) != (0, 1):  # the scanners find free and LRU frames as the bytes of a bool array
    raise ImportError("migsim.kernel.compaction: the FREE and LRU frame states must be 0 and 1")
COMPACT_MAX_DEFER_SHIFT = 6
PAGE_ALLOC_COSTLY_ORDER = 3
EXTFRAG_THRESHOLD = 500  # sysctl_extfrag_threshold
# pageblocks looked at per vectorised step where a scanner steps over blocks it would not scan
# (model chunking only, no kernel counterpart: the result does not depend on them)
MIGRATE_SKIP_WINDOW_BLOCKS = 4096  # isolate_migratepages() over skipped/unsuitable blocks
FREE_SKIP_WINDOW_BLOCKS = 256  # isolate_freepages() over unsuitable target blocks

# Work counters logged per migrate_pages() call (columns of CompactionLog.work)
W_MIGRATE_SCANNED = 0  # pfns examined by the migration scanner
W_FREE_SCANNED = 1  # pfns examined by the free scanner
W_ISOLATED = 2  # pages isolated from the LRU for migration
W_FREE_ISOLATED = 3  # free pages isolated as migration targets
W_BUDDY_FREED = 4  # pages moved from the pcp lists into the buddy lists (bulk free, drain)
W_SLOWPATH = 5  # direct-compaction attempts (__alloc_pages_direct_compact)
W_FREELIST = 6  # get_page_from_freelist() calls of the allocation (fast path and retries)
W_ALLOC = 7  # allocations handed out (prep_new_page of the order-`order` block)
W_ALLOC_PAGES = 8  # base pages of those blocks (post_alloc_hook, prep_compound_page)
W_COMPACT_ZONE = 9  # compact_zone() runs past compaction_suitable() (lru_add_drain, set-up)
W_DRAIN = 10  # check_drain flushes (lru_add_drain_cpu_zone -> drain_local_pages)
W_ISOLATE_FREE = 11  # isolate_freepages() calls (compaction_alloc found cc->freepages empty)
NR_WORK = 12
WORK_NAMES = (
    "migrate_scanned",
    "free_scanned",
    "isolated",
    "free_isolated",
    "buddy_freed",
    "slowpath",
    "freelist",
    "alloc",
    "alloc_pages",
    "compact_zone",
    "drain",
    "isolate_free",
)
# capture contexts of the allocating code: task_capc() (mm/page_alloc.c) returns the capture
# control only when !(current->flags & PF_KTHREAD), so a kernel thread never captures
CAPTURE_CONTEXTS = ("task", "kthread")

# Marks (CompactionLog.marks): the events between migrate_pages() calls that the kernel's
# tracepoints report, each with the call it precedes and the work done since the previous call,
# so that a costed run gives each one a simulated time (migsim.formats.trace). The slow-path entry and
# exit of each allocation (allocation latency) and migration failures are always marked; the
# rest only with Compactor(trace=True): a few per allocation, one per scanned block.
(
    M_ALLOC_ENTER,  # __alloc_pages_slowpath entry (fast path failed): order
    M_ALLOC_EXIT,  # the slow path returns: order, page found (0/1)
    M_MIGRATE_FAIL,  # migrate_pages() call k could not migrate a0 pages
    M_TRY,  # trace_mm_compaction_try_to_compact_pages: order, prio
    M_DEFERRED,  # trace_mm_compaction_deferred: order, considered, defer_shift, order_failed
    M_DEFER_COMPACTION,  # trace_mm_compaction_defer_compaction: the same fields
    M_DEFER_RESET,  # trace_mm_compaction_defer_reset: the same fields
    M_SUITABLE,  # trace_mm_compaction_suitable: order, ret
    M_BEGIN,  # trace_mm_compaction_begin: migrate_pfn, free_pfn, migrate mode, order
    M_END,  # trace_mm_compaction_end: migrate_pfn, free_pfn, migrate mode, status
    M_FINISHED,  # trace_mm_compaction_finished: order, ret, migrate_pfn
    M_ISO_MIGRATE,  # trace_mm_compaction_isolate_migratepages: start, end, scanned, taken
    M_ISO_FREE,  # trace_mm_compaction_isolate_freepages: start, end, scanned, taken
) = range(13)
# columns of CompactionLog.marks: kind, call index, the NR_WORK work counters, 4 arguments
MARK_CALL, MARK_WORK, MARK_ARGS = 1, 2, 2 + NR_WORK
NR_MARK_COLS = MARK_ARGS + 4

# The engines of compact_zone()'s migrate_pages() loop: "c", the compiled loop of
# migsim.kernel._compact (_compact.c, the same functions in the same order), and "python", the
# reference below. Both give the same counters, per-call logs, marks and zone state
# (tests/test_engines.py). Chosen by Compactor(engine=...), else by MIGSIM_ENGINE, else "c" if
# the extension is built. Compactor(trace=True) (every tracepoint mark) and subclasses that
# replace a step of the loop (the host twin's TwinCompactor) always run the Python loop.
ENGINES = ("c", "python")
ENGINE_ENV = "MIGSIM_ENGINE"
_MISSING_WARNED = False
# compact_zone() loops run in this process, per engine that ran them (a Compactor asked for "c"
# runs the Python loop when a step is replaced): tests/engines.py records it for every test
LOOP_RUNS = dict.fromkeys(ENGINES, 0)
# the Compactor and Zone methods the compiled loop does in C: a subclass that replaces one of
# them runs the Python loop
_C_COMPACTOR_STEPS = frozenset(
    (
        "compact_finished",
        "reset_cached_positions",
        "compact_scanners_met",
        "isolate_migratepages",
        "_source_ok",
        "_suitable_source_block",
        "_suitable_source",
        "_next_source_block",
        "update_cached_migrate",
        "isolate_migratepages_block",
        "isolate_freepages",
        "_target_ok",
        "_target_mask",
        "_next_target_block",
        "isolate_freepages_block",
        "compaction_alloc",
        "migrate_pages",
        "_log_call",
        "_mark",
    )
)
_C_ZONE_STEPS = frozenset(
    (
        "move_content",
        "pcp_free",
        "drain_pages",
        "free_to_buddy",
        "_find_capture",
        "_account_block",
        "_account",
        "has_free_order",
        "flush_moves",
    )
)


def _check_compiled_constants() -> None:
    """The compiled loop's constants must be this module's (a stale build fails loudly)."""
    ours = {
        "PAGEBLOCK_ORDER": PAGEBLOCK_ORDER,
        "COMPACT_CLUSTER_MAX": COMPACT_CLUSTER_MAX,
        "MOVE_FLUSH_PAGES": MOVE_FLUSH_PAGES,
        "PCP_BATCH_SCALE_MAX": PCP_BATCH_SCALE_MAX,
        "FREE": FREE,
        "LRU": LRU,
        "PCP": PCP,
        "ISOLATED_FREE": ISOLATED_FREE,
        "ISOLATED_LRU": ISOLATED_LRU,
        "ALLOCATED": ALLOCATED,
        "MIGRATE_ASYNC": MIGRATE_ASYNC,
        "MIGRATE_MOVABLE": MIGRATE_MOVABLE,
        "COMPACT_CONTINUE": COMPACT_CONTINUE,
        "COMPACT_COMPLETE": COMPACT_COMPLETE,
        "COMPACT_PARTIAL_SKIPPED": COMPACT_PARTIAL_SKIPPED,
        "COMPACT_CONTENDED": COMPACT_CONTENDED,
        "COMPACT_SUCCESS": COMPACT_SUCCESS,
        "ISOLATE_NONE": ISOLATE_NONE,
        "ISOLATE_SUCCESS": ISOLATE_SUCCESS,
        "M_MIGRATE_FAIL": M_MIGRATE_FAIL,
        "NR_WORK": NR_WORK,
        "W_MIGRATE_SCANNED": W_MIGRATE_SCANNED,
        "W_FREE_SCANNED": W_FREE_SCANNED,
        "W_ISOLATED": W_ISOLATED,
        "W_FREE_ISOLATED": W_FREE_ISOLATED,
        "W_BUDDY_FREED": W_BUDDY_FREED,
        "W_DRAIN": W_DRAIN,
        "W_ISOLATE_FREE": W_ISOLATE_FREE,
    }
    if _compact is not None and ours != _compact.CONSTANTS:
        bad = sorted(k for k in ours if _compact.CONSTANTS.get(k) != ours[k])
        raise ImportError(
            f"migsim.kernel._compact: built from another version (constants differ: "
            f"{', '.join(bad)}); rebuild it with `python setup.py build_ext --inplace`"
        )
    # a checkout's build must be of the _compact.c beside it (setup.py compiles the file's
    # sha256 in); an installed package has no source to compare with
    src = Path(__file__).with_name("_compact.c")
    if _compact is not None and src.is_file():
        built = getattr(_compact, "SOURCE_SHA256", "")
        if built != hashlib.sha256(src.read_bytes()).hexdigest():
            raise ImportError(
                "migsim.kernel._compact: built from another version of _compact.c (its sha256 "
                "differs); rebuild it with `python setup.py build_ext --inplace` or "
                "`pip install -e .`"
            )


def resolve_engine(engine: str | None = None) -> str:
    """The engine of the allocation loop: `engine` ("c" or "python"), else $MIGSIM_ENGINE,
    else "c" when the extension is built and "python" (with a one-line warning on stderr, once
    per process) when it is not."""
    global _MISSING_WARNED
    name = "engine"
    if engine is None and os.environ.get(ENGINE_ENV):
        engine, name = os.environ[ENGINE_ENV], ENGINE_ENV
    if engine is None:
        if _compact is not None:
            return "c"
        if not _MISSING_WARNED:
            _MISSING_WARNED = True
            print(
                "migsim: the compiled allocation loop (migsim.kernel._compact) is not built; "
                "running the Python reference (slower): build it with `pip install -e .`",
                file=sys.stderr,
            )
        return "python"
    if engine not in ENGINES:
        raise ValueError(f"{name}: must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "c" and _compact is None:
        raise ValueError(
            f"{name}: the compiled engine c is not built (migsim.kernel._compact); build it "
            "with `pip install -e .` or `python setup.py build_ext --inplace`, or use python"
        )
    return engine


VMSTAT_KEYS = (
    "pgmigrate_success",
    "pgmigrate_fail",
    "compact_stall",
    "compact_success",
    "compact_fail",
    "compact_migrate_scanned",
    "compact_free_scanned",
    "compact_isolated",
)


@dataclass(slots=True)
class CompactControl:
    """struct compact_control for one compact_zone() run."""

    order: int
    mode: int = MIGRATE_ASYNC
    migratetype: int = MIGRATE_MOVABLE
    direct_compaction: bool = True
    whole_zone: bool = False
    ignore_skip_hint: bool = False
    ignore_block_suitable: bool = False
    migrate_pfn: int = 0
    free_pfn: int = 0
    finish_pageblock: bool = False
    contended: bool = False
    nr_migratepages: int = 0
    migratepages: list[np.ndarray] = field(default_factory=list)
    freepages: list[np.ndarray] = field(default_factory=list)  # FIFO chunks
    nr_freepages: int = 0
    total_migrate_scanned: int = 0
    total_free_scanned: int = 0


@dataclass
class CompactionLog:
    """What a run did, for costing: one row per migrate_pages() call.

    ``pages[k]``: pages migrated by call k; ``work[k]``: compaction work done before call k
    (and after call k-1); ``tail``: work after the last call; ``marks``: (nmarks,
    NR_MARK_COLS), the M_* events in order (kind, the call they precede, the work done
    since the previous call, arguments). ``pages``, ``work`` and ``marks`` are int32, or int64
    once a value needs it (Compactor.log); their sums are int64 either way.
    """

    pages: np.ndarray
    work: np.ndarray  # (ncalls, NR_WORK) int32 or int64
    tail: np.ndarray  # (NR_WORK,) int64
    marks: np.ndarray = field(default_factory=lambda: np.zeros((0, NR_MARK_COLS), np.int64))


class Compactor:
    """Runs the allocation slow path and compaction on one zone, from one CPU.

    ``cluster_max`` is COMPACT_CLUSTER_MAX (pages isolated per migrate_pages() call outside a
    finish_pageblock pass). Counters are in ``vmstat`` (as /proc/vmstat) and
    ``alloc_success``/``alloc_fail``.
    """

    def __init__(
        self,
        zone: Zone,
        *,
        cluster_max: int = COMPACT_CLUSTER_MAX,
        trace: bool = False,
        capture: str = "task",
        engine: str | None = None,
    ):
        if cluster_max < 1:
            raise ValueError(f"cluster_max: must be >= 1, got {cluster_max}")
        if capture not in CAPTURE_CONTEXTS:
            raise ValueError(
                f"capture: must be one of {', '.join(CAPTURE_CONTEXTS)}, got {capture!r}"
            )
        self.zone = zone
        self.cluster_max = int(cluster_max)
        self.capture = capture
        self.vmstat = dict.fromkeys(VMSTAT_KEYS, 0)
        self.alloc_success = 0
        self.alloc_fail = 0
        self.allocated: list[int] = []  # pfns of the blocks handed out by alloc_pages_node
        # where compaction_capture() took the block: inside migrate_pages() (a
        # free_pcppages_bulk), or in the drain at the end of the block -- then the loop went
        # round once more and migrated a batch from the next pageblock first
        self.capture_in_migrate = 0
        self.capture_in_drain = 0
        self.batches_after_capture = 0  # migrate_pages() calls made after a drain capture
        self.pages_after_capture = 0
        self._acc = [0] * NR_WORK
        # the log as flat int32 arrays (a list of lists costs ~250 bytes a call, 12 MB at
        # full scale; int32 halves the 10 MB of int64), each widened to int64 the first time
        # a value does not fit (_widen): pages per call, NR_WORK counters per call,
        # NR_MARK_COLS per mark
        self._calls_pages = array("i")
        self._calls_work = array("i")
        self._buddy_frees_seen = zone.buddy_frees
        self.trace = bool(trace)  # mark every tracepoint event, not only the slow path
        # the engine of compact_zone()'s loop (ENGINES): the compiled one unless the marks of
        # every tracepoint are wanted or a subclass replaces a step of the loop
        self.engine = resolve_engine(engine)
        if self.engine == "c" and (
            self.trace
            or any(getattr(type(self), m) is not getattr(Compactor, m) for m in _C_COMPACTOR_STEPS)
            or any(getattr(type(zone), m) is not getattr(Zone, m) for m in _C_ZONE_STEPS)
        ):
            self.engine = "python"
        self._marks = array("i")
        self._log_shared = False  # log() handed out views of the three arrays above

    # -- the work log -----------------------------------------------------------------------
    def _sync_buddy(self) -> None:
        now = self.zone.buddy_frees
        self._acc[W_BUDDY_FREED] += now - self._buddy_frees_seen
        self._buddy_frees_seen = now

    def _unshare_log(self) -> None:
        """Copy the log arrays before they grow: log() handed out views of them (an exported
        buffer cannot be resized), which keep what was logged up to then."""
        self._calls_pages = array(self._calls_pages.typecode, self._calls_pages)
        self._calls_work = array(self._calls_work.typecode, self._calls_work)
        self._marks = array(self._marks.typecode, self._marks)
        self._log_shared = False

    def _widen(self, name: str, values: list[int]) -> None:
        """Append `values` to the log array `name` after widening it to int64 (a value did
        not fit in int32; fromlist() leaves the array unchanged when it fails)."""
        wide = array("q", getattr(self, name))
        wide.fromlist(values)
        setattr(self, name, wide)

    def _log_call(self, nr_pages: int) -> None:
        now = self.zone.buddy_frees  # _sync_buddy(), inline: once per migrate_pages() call
        self._acc[W_BUDDY_FREED] += now - self._buddy_frees_seen
        self._buddy_frees_seen = now
        if self._log_shared:
            self._unshare_log()
        try:
            self._calls_pages.append(nr_pages)
        except OverflowError:
            self._widen("_calls_pages", [nr_pages])
        try:
            self._calls_work.fromlist(self._acc)  # (fromlist: no iterator protocol per item)
        except OverflowError:
            self._widen("_calls_work", self._acc)
        self._acc = [0] * NR_WORK

    def _mark(self, kind: int, a0: int = 0, a1: int = 0, a2: int = 0, a3: int = 0) -> None:
        """Mark an event at this point of the work log (before the next migrate_pages())."""
        self._sync_buddy()
        if self._log_shared:
            self._unshare_log()
        row = [kind, len(self._calls_pages), *self._acc, a0, a1, a2, a3]
        try:
            self._marks.fromlist(row)
        except OverflowError:
            self._widen("_marks", row)

    def log(self) -> CompactionLog:
        """The calls logged so far and the work since the last one."""
        self._sync_buddy()
        self._log_shared = True  # views, not copies: at full scale the log is ~10 MB

        def view(buf: array) -> np.ndarray:  # int32 or int64, as the array holds them
            if not len(buf):
                return np.zeros(0, np.int64)
            return np.frombuffer(buf, dtype=np.intc if buf.typecode == "i" else np.int64)

        return CompactionLog(
            pages=view(self._calls_pages),
            work=view(self._calls_work).reshape(-1, NR_WORK),
            tail=np.array(self._acc, dtype=np.int64),
            marks=view(self._marks).reshape(-1, NR_MARK_COLS),
        )

    @property
    def migrate_calls(self) -> int:
        return len(self._calls_pages)

    # -- the allocation loop ----------------------------------------------------------------
    def alloc_pages_node(self, order: int) -> int | None:
        """alloc_pages_node(nid, GFP_KERNEL | __GFP_THISNODE, order): the fast path, then
        direct compaction at async priority and once more at sync-light priority (costly
        orders give up after that, smaller ones try the full-sync priority too; direct reclaim
        is not modelled). Returns the pfn or None."""
        if not 0 <= order <= MAX_PAGE_ORDER:
            raise ValueError(f"order: must be in 0..{MAX_PAGE_ORDER}, got {order}")
        page = self.get_page_from_freelist(order, self.zone.wmark_low)
        if page is not None:
            self._prep_new_page(order)
        prios = [COMPACT_PRIO_ASYNC, COMPACT_PRIO_SYNC_LIGHT]
        if order <= PAGE_ALLOC_COSTLY_ORDER:
            # should_compact_retry(): non-costly orders escalate to the full-sync priority,
            # which ignores the skip hints (simplified: one more attempt, no retry loop)
            prios.append(COMPACT_PRIO_SYNC_FULL)
        if page is None:
            self._mark(M_ALLOC_ENTER, order)
            for prio in prios:
                page = self.__alloc_pages_direct_compact(order, prio)
                if page is not None:
                    self._prep_new_page(order)
                    break
            self._mark(M_ALLOC_EXIT, order, int(page is not None))
        if page is None:
            self.alloc_fail += 1
        else:
            self.alloc_success += 1
            self.allocated.append(page)
        return page

    def _prep_new_page(self, order: int) -> None:
        """prep_new_page() of the block handed out, inside the allocation (before it returns):
        post_alloc_hook() (under init_on_alloc the zeroing of every base page) and
        prep_compound_page(); counted for costing."""
        self._acc[W_ALLOC] += 1
        self._acc[W_ALLOC_PAGES] += 1 << order

    def get_page_from_freelist(self, order: int, mark: int) -> int | None:
        """Watermark check and rmqueue() from the buddy lists (no high-order pcp lists)."""
        self._acc[W_FREELIST] += 1
        if not self.zone.zone_watermark_ok(order, mark):
            return None
        return self.zone.alloc_block(order)

    def __alloc_pages_direct_compact(self, order: int, prio: int) -> int | None:
        self._acc[W_SLOWPATH] += 1
        result, page = self.try_to_compact_pages(order, prio)
        if result == COMPACT_SKIPPED:
            return None
        self.vmstat["compact_stall"] += 1
        if page is None:
            page = self.get_page_from_freelist(order, self.zone.wmark_min)
        if page is not None:
            self.compaction_defer_reset(order, True)
            self.vmstat["compact_success"] += 1
            return page
        self.vmstat["compact_fail"] += 1
        return None

    # -- deferral (defer_compaction & co) ---------------------------------------------------
    def defer_compaction(self, order: int) -> None:
        z = self.zone
        z.compact_considered = 0
        z.compact_defer_shift = min(z.compact_defer_shift + 1, COMPACT_MAX_DEFER_SHIFT)
        z.compact_order_failed = min(z.compact_order_failed, order)
        if self.trace:
            self._mark_defer(M_DEFER_COMPACTION, order)

    def _mark_defer(self, kind: int, order: int) -> None:
        z = self.zone
        self._mark(kind, order, z.compact_considered, z.compact_defer_shift, z.compact_order_failed)

    def compaction_deferred(self, order: int) -> bool:
        z = self.zone
        if order < z.compact_order_failed:
            return False
        limit = 1 << z.compact_defer_shift
        z.compact_considered += 1
        if z.compact_considered >= limit:
            z.compact_considered = limit
            return False
        if self.trace:
            self._mark_defer(M_DEFERRED, order)
        return True

    def compaction_defer_reset(self, order: int, alloc_success: bool) -> None:
        z = self.zone
        if alloc_success:
            z.compact_considered = 0
            z.compact_defer_shift = 0
        if order >= z.compact_order_failed:
            z.compact_order_failed = order + 1
        if self.trace:
            self._mark_defer(M_DEFER_RESET, order)

    def compaction_restarting(self, order: int) -> bool:
        z = self.zone
        if order < z.compact_order_failed:
            return False
        return (
            z.compact_defer_shift == COMPACT_MAX_DEFER_SHIFT
            and z.compact_considered >= 1 << z.compact_defer_shift
        )

    def try_to_compact_pages(self, order: int, prio: int) -> tuple[int, int | None]:
        """try_to_compact_pages() for the one zone of the node."""
        if self.trace:
            self._mark(M_TRY, order, prio)
        if prio > MIN_COMPACT_PRIORITY and self.compaction_deferred(order):
            return COMPACT_DEFERRED, None
        status, page = self.compact_zone_order(order, prio)
        if status == COMPACT_SUCCESS:
            self.compaction_defer_reset(order, False)
        elif prio != COMPACT_PRIO_ASYNC and status in (COMPACT_COMPLETE, COMPACT_PARTIAL_SKIPPED):
            self.defer_compaction(order)
        return status, page

    def compact_zone_order(self, order: int, prio: int) -> tuple[int, int | None]:
        cc = CompactControl(
            order=order,
            mode=PRIO_MIGRATE_MODE.get(prio, MIGRATE_SYNC),
            whole_zone=prio == MIN_COMPACT_PRIORITY,
            ignore_skip_hint=prio == MIN_COMPACT_PRIORITY,
            ignore_block_suitable=prio == MIN_COMPACT_PRIORITY,
        )
        capc = CaptureControl(order=order, migratetype=cc.migratetype)
        # current->capture_control; task_capc() ignores it in a kernel thread (PF_KTHREAD),
        # so there the freed block is only found on the free lists (compact_finished, then
        # get_page_from_freelist in __alloc_pages_direct_compact)
        self.zone.capture_control = capc if self.capture == "task" else None
        try:
            ret = self.compact_zone(cc, capc)
        finally:
            self.zone.capture_control = None
        if capc.page is not None:
            ret = COMPACT_SUCCESS
        return ret, capc.page

    # -- /proc/sys/vm/compact_memory --------------------------------------------------------
    def compact_memory(self) -> int:
        """compact_node(): whole-zone synchronous compaction (order -1, skip hints ignored),
        as ``echo 1 > /proc/sys/vm/compact_memory``. Returns the compact_result."""
        cc = CompactControl(
            order=-1,
            mode=MIGRATE_SYNC,
            direct_compaction=False,
            whole_zone=True,
            ignore_skip_hint=True,
        )
        return self.compact_zone(cc, None)

    # -- suitability ------------------------------------------------------------------------
    def compaction_suitable(self, order: int) -> bool:
        """__compaction_suitable() (order-0 watermark plus compact_gap) and, for costly
        orders, the fragmentation index against sysctl_extfrag_threshold."""
        z = self.zone
        watermark = (z.wmark_low if order > PAGE_ALLOC_COSTLY_ORDER else z.wmark_min) + (2 << order)
        if z.nr_free <= watermark:
            return False
        if order > PAGE_ALLOC_COSTLY_ORDER:
            fragindex = self.fragmentation_index(order)
            if 0 <= fragindex <= EXTFRAG_THRESHOLD:
                return False
        return True

    def fragmentation_index(self, order: int) -> int:
        """fragmentation_index() x 1000 of the zone, as compaction_suitable() reads it: the
        free-block total is recounted only when the pageblocks changed since the last count
        could move the index across sysctl_extfrag_threshold. Without a recount the value is
        the upper bound's index, on the same side of [0, threshold] as the exact one (the
        index grows with the total, so the bounds' indices enclose it)."""
        z = self.zone
        if z.has_free_order(order):
            return -1000
        lo, hi = z.free_blocks_total_range()
        wanted = 1000 + z.nr_free * 1000 // (1 << order)
        if lo > 0:
            f_lo, f_hi = 1000 - wanted // lo, 1000 - wanted // hi
            # decided only when the whole range [f_lo, f_hi] is on one side: both below 0,
            # both above the threshold, or both within [0, threshold]
            if f_hi < 0 or f_lo > EXTFRAG_THRESHOLD or (f_lo >= 0 and f_hi <= EXTFRAG_THRESHOLD):
                return f_hi
        from migsim.kernel.fragment import fragmentation_index

        return fragmentation_index(z.free_area_counts(), order)

    # -- compact_zone -----------------------------------------------------------------------
    def compact_zone(self, cc: CompactControl, capc: CaptureControl | None) -> int:
        z = self.zone
        start_pfn, end_pfn = z.zone_start_pfn, z.zone_end_pfn
        sync = cc.mode != MIGRATE_ASYNC
        if cc.order >= 0:
            if z.zone_watermark_ok(cc.order, z.wmark_min):
                return COMPACT_SUCCESS
            suitable = self.compaction_suitable(cc.order)
            if self.trace:
                self._mark(M_SUITABLE, cc.order, COMPACT_CONTINUE if suitable else COMPACT_SKIPPED)
            if not suitable:
                return COMPACT_SKIPPED
            if self.compaction_restarting(cc.order):
                self.__reset_isolation_suitable()
        if cc.whole_zone:
            cc.migrate_pfn = start_pfn
            cc.free_pfn = z.pageblock_start(end_pfn - 1)
        else:
            cc.migrate_pfn = z.compact_cached_migrate_pfn[int(sync)]
            cc.free_pfn = z.compact_cached_free_pfn
            if cc.free_pfn < start_pfn or cc.free_pfn >= end_pfn:
                cc.free_pfn = z.pageblock_start(end_pfn - 1)
                z.compact_cached_free_pfn = cc.free_pfn
            if cc.migrate_pfn < start_pfn or cc.migrate_pfn >= end_pfn:
                cc.migrate_pfn = start_pfn
                z.compact_cached_migrate_pfn = [start_pfn, start_pfn]
            if cc.migrate_pfn <= z.compact_init_migrate_pfn:
                cc.whole_zone = True
        if self.trace:
            self._mark(M_BEGIN, cc.migrate_pfn, cc.free_pfn, cc.mode, cc.order)
        last_migrated_pfn = 0
        update_cached = (
            not sync and z.compact_cached_migrate_pfn[0] == z.compact_cached_migrate_pfn[1]
        )
        # lru_add_drain(): its cost is counted per run; the LRU batches are not modelled
        self._acc[W_COMPACT_ZONE] += 1
        if (
            self.engine == "c"
            and type(z.pcp) is PerCpuPages
            # a step replaced on the instance (a test's wrapper) runs in Python
            and not (vars(self).keys() & _C_COMPACTOR_STEPS or vars(z).keys() & _C_ZONE_STEPS)
        ):
            # the loop below, compiled: migsim.kernel._compact.compact_zone_loop (_compact.c)
            LOOP_RUNS["c"] += 1
            # the skip window read at each call (a chunk size the tests shrink)
            ret = _compact.compact_zone_loop(
                self, cc, capc, update_cached, MIGRATE_SKIP_WINDOW_BLOCKS
            )
        else:
            LOOP_RUNS["python"] += 1
            while True:
                ret = self.compact_finished(cc)
                if self.trace:
                    self._mark(M_FINISHED, cc.order, ret, cc.migrate_pfn)
                if ret != COMPACT_CONTINUE:
                    break
                iteration_start_pfn = cc.migrate_pfn
                cc.finish_pageblock = (last_migrated_pfn & BLOCK_MASK) == (
                    iteration_start_pfn & BLOCK_MASK
                )
                isolated = self.isolate_migratepages(cc)
                if isolated == ISOLATE_NONE:
                    if update_cached:
                        z.compact_cached_migrate_pfn[1] = z.compact_cached_migrate_pfn[0]
                else:
                    update_cached = False
                    last_migrated_pfn = (cc.migrate_pfn - 1) & BLOCK_MASK  # max(start_pfn, ...)
                    if last_migrated_pfn < start_pfn:  # (no builtin min/max in the hot loop:
                        last_migrated_pfn = start_pfn  # they parse their arguments each call)
                    captured_before = capc is not None and capc.page is not None
                    if captured_before:
                        self.batches_after_capture += 1
                        self.pages_after_capture += cc.nr_migratepages
                    nr_failed = self.migrate_pages(cc)
                    if capc is not None and capc.page is not None and not captured_before:
                        self.capture_in_migrate += 1
                    if nr_failed and not self.compact_scanners_met(cc):  # -ENOMEM, no target left
                        ret = COMPACT_CONTENDED
                        break
                    # v6.3+: stop if a page has been captured -- before the drain below
                    if capc is not None and capc.page is not None:
                        ret = COMPACT_SUCCESS
                        break
                # check_drain: has the migration scanner moved away from the cc->order aligned
                # block it migrated from? Then flush the freed pages so that they can merge.
                if cc.order > 0 and last_migrated_pfn:
                    current_block_start = cc.migrate_pfn & ~((1 << cc.order) - 1)
                    if last_migrated_pfn < current_block_start:
                        had = capc is not None and capc.page is not None
                        z.drain_pages()  # lru_add_drain_cpu_zone -> drain_local_pages
                        self._acc[W_DRAIN] += 1
                        if capc is not None and capc.page is not None and not had:
                            self.capture_in_drain += 1
                        last_migrated_pfn = 0
        # out: release the unused targets and move the cached free pfn back to them
        if cc.nr_freepages > 0:
            free = np.concatenate(cc.freepages)
            cc.freepages, cc.nr_freepages = [], 0
            z.pcp_free(free)  # release_free_list(): __free_pages() of each page
            free_pfn = z.pageblock_start(int(free.max()))
            if free_pfn > z.compact_cached_free_pfn:
                z.compact_cached_free_pfn = free_pfn
        self.vmstat["compact_migrate_scanned"] += cc.total_migrate_scanned
        self.vmstat["compact_free_scanned"] += cc.total_free_scanned
        if self.trace:
            self._mark(M_END, cc.migrate_pfn, cc.free_pfn, cc.mode, ret)
        return ret

    def compact_scanners_met(self, cc: CompactControl) -> bool:
        return (cc.free_pfn >> PAGEBLOCK_ORDER) <= (cc.migrate_pfn >> PAGEBLOCK_ORDER)

    def reset_cached_positions(self) -> None:
        z = self.zone
        z.compact_cached_migrate_pfn = [z.zone_start_pfn, z.zone_start_pfn]
        z.compact_cached_free_pfn = z.pageblock_start(z.zone_end_pfn - 1)

    def __reset_isolation_suitable(self) -> None:
        """Clear the skip bits and restart the scanners at the first pageblock with LRU pages
        and the last with free pages (the kernel samples each block; here exact)."""
        z = self.zone
        z.compact_blockskip_flush = False
        z.skip[:] = False
        view = z.state.reshape(z.nr_blocks, PAGEBLOCK_NR_PAGES)
        src = np.flatnonzero((view == LRU).any(1))
        dst = np.flatnonzero(z.nr_free_pb > 0)
        if len(src) and len(dst) and src[0] < dst[-1]:
            m, f = int(src[0]) * PAGEBLOCK_NR_PAGES, int(dst[-1]) * PAGEBLOCK_NR_PAGES
            z.compact_init_migrate_pfn = m
            z.compact_cached_migrate_pfn = [m, m]
            z.compact_init_free_pfn = f
            z.compact_cached_free_pfn = f
        else:
            self.reset_cached_positions()

    def compact_finished(self, cc: CompactControl) -> int:
        """compact_finished() / __compact_finished()."""
        z = self.zone
        if (cc.free_pfn >> PAGEBLOCK_ORDER) <= (cc.migrate_pfn >> PAGEBLOCK_ORDER):
            # compact_scanners_met()
            self.reset_cached_positions()
            if cc.direct_compaction:
                z.compact_blockskip_flush = True
            return COMPACT_COMPLETE if cc.whole_zone else COMPACT_PARTIAL_SKIPPED
        if cc.order < 0:  # is_via_compact_memory
            return COMPACT_CONTINUE
        if cc.migrate_pfn & (PAGEBLOCK_NR_PAGES - 1):  # always finish a pageblock
            return COMPACT_CONTINUE
        # direct compactor: is a suitable page free? (free_area[order..MAX] or a fallback)
        if z.has_free_order(cc.order):
            return COMPACT_SUCCESS
        if cc.contended:
            return COMPACT_CONTENDED
        return COMPACT_CONTINUE

    # -- the migration scanner --------------------------------------------------------------
    def _suitable_source(self, cc: CompactControl, blocks: np.ndarray) -> np.ndarray:
        """suitable_migration_source(): async direct compaction only takes blocks of the
        requested (movable) migratetype."""
        if cc.mode != MIGRATE_ASYNC or not cc.direct_compaction:
            return np.ones(len(blocks), dtype=bool)
        return self.zone.migratetype[blocks] == cc.migratetype

    def isolate_migratepages(self, cc: CompactControl) -> int:
        """Isolate the pages of the first suitable pageblock from cc->migrate_pfn up, without
        crossing the free scanner (fast_find_migrateblock() not modelled)."""
        z = self.zone
        low_pfn = cc.migrate_pfn
        block_end = (low_pfn + PAGEBLOCK_NR_PAGES) & BLOCK_MASK  # pageblock_end_pfn()
        while block_end <= cc.free_pfn:
            b = (block_end - 1) >> PAGEBLOCK_ORDER
            aligned = not (low_pfn & (PAGEBLOCK_NR_PAGES - 1)) or low_pfn == z.zone_start_pfn
            if aligned and self._source_ok(cc, b):
                pass  # the common case: the next pageblock is a suitable source
            elif aligned:
                # skip runs of skipped/unsuitable pageblocks at once (vectorised)
                nb_max = (cc.free_pfn >> PAGEBLOCK_ORDER) - b  # blocks that fit below free_pfn
                if nb_max <= 0:
                    break
                window = min(nb_max, MIGRATE_SKIP_WINDOW_BLOCKS)
                j = self._next_source_block(cc, b, window)
                if j < 0:  # none in the window: move past it
                    b_next = b + window
                    cc.migrate_pfn = low_pfn = b_next * PAGEBLOCK_NR_PAGES
                    block_end = low_pfn + PAGEBLOCK_NR_PAGES
                    continue
                if j > b:
                    cc.migrate_pfn = low_pfn = j * PAGEBLOCK_NR_PAGES
                    block_end = low_pfn + PAGEBLOCK_NR_PAGES
                    continue
            elif not self._suitable_source_block(cc, b):
                self.update_cached_migrate(cc, block_end)
                cc.migrate_pfn = low_pfn = block_end
                block_end += PAGEBLOCK_NR_PAGES
                continue
            self.isolate_migratepages_block(cc, low_pfn, block_end)
            break
        return ISOLATE_SUCCESS if cc.nr_migratepages else ISOLATE_NONE

    def _source_ok(self, cc: CompactControl, b: int) -> bool:
        """Would the migration scanner scan pageblock b (skip bit, source suitability)?"""
        if not cc.ignore_skip_hint and self.zone.skip_b[b]:
            return False
        return self._suitable_source_block(cc, b)

    def _suitable_source_block(self, cc: CompactControl, b: int) -> bool:
        """suitable_migration_source() of one pageblock (plain integers)."""
        if cc.mode != MIGRATE_ASYNC or not cc.direct_compaction:
            return True
        return self.zone.migratetype_b[b] == cc.migratetype

    def _next_source_block(self, cc: CompactControl, b: int, window: int) -> int:
        """First pageblock >= b (within `window`) that the migration scanner would scan: not
        marked skip (unless ignored) and a suitable source. Unsuitable blocks passed on the
        way update the cached migrate pfn as the kernel does for each."""
        z = self.zone
        blocks = np.arange(b, b + window)
        ok_skip = np.ones(window, dtype=bool) if cc.ignore_skip_hint else ~z.skip[b : b + window]
        ok_src = self._suitable_source(cc, blocks)
        cand = np.flatnonzero(ok_skip & ok_src)
        last = int(cand[0]) if len(cand) else window
        unsuitable = np.flatnonzero(ok_skip[:last] & ~ok_src[:last])
        if len(unsuitable):
            self.update_cached_migrate(cc, (b + int(unsuitable[-1]) + 1) * PAGEBLOCK_NR_PAGES)
        return b + int(cand[0]) if len(cand) else -1

    def update_cached_migrate(self, cc: CompactControl, pfn: int) -> None:
        """Record where async and sync compaction should restart: pageblock_end_pfn(pfn)
        (for a pageblock-aligned pfn that is the end of the *next* block, as in the kernel)."""
        z = self.zone
        pfn = (pfn + PAGEBLOCK_NR_PAGES) & BLOCK_MASK  # pageblock_end_pfn()
        if pfn > z.compact_cached_migrate_pfn[0]:
            z.compact_cached_migrate_pfn[0] = pfn
        if cc.mode != MIGRATE_ASYNC and pfn > z.compact_cached_migrate_pfn[1]:
            z.compact_cached_migrate_pfn[1] = pfn

    def isolate_migratepages_block(self, cc: CompactControl, low_pfn: int, end_pfn: int) -> None:
        """Isolate movable LRU pages of [low_pfn, end_pfn) (one pageblock) onto
        cc->migratepages: COMPACT_CLUSTER_MAX of them, or all in a finish_pageblock pass.
        Free pages are stepped over; in async direct compaction a page that cannot be
        isolated aborts its cc->order aligned block (skip_on_failure).

        The scan of a pageblock is kept for the next batch from it (the finish_pageblock
        pass after a COMPACT_CLUSTER_MAX batch): when the batch stops inside the block and the
        rest of the block holds only free and LRU frames, the LRU pfns of the rest are
        cached (Zone.mscan_*) until a free count of the block changes (Zone._account_block);
        so the block's frames are compared once, not once per batch."""
        z = self.zone
        start_pfn = low_pfn
        b = low_pfn >> PAGEBLOCK_ORDER
        valid_page = not (low_pfn & (PAGEBLOCK_NR_PAGES - 1)) or low_pfn == z.zone_start_pfn
        if cc.finish_pageblock:
            need = end_pfn - low_pfn
        else:  # max(cluster_max - nr_migratepages, 1)
            need = self.cluster_max - cc.nr_migratepages
            if need < 1:
                need = 1
        skip_on_failure = cc.direct_compaction and cc.mode == MIGRATE_ASYNC
        if valid_page and not cc.ignore_skip_hint and z.skip_b[b]:
            low_pfn = end_pfn
            nr_isolated = 0
            isolated: list[np.ndarray] = []
        elif b == z.mscan_block and low_pfn == z.mscan_pfn:
            # the rest of the block as the previous batch left it: free and LRU frames only,
            # so nothing fails; take the LRU pages of the first cc->order block holding any
            # (skip_on_failure) or of the rest, up to `need`
            rest = z.mscan_lru
            if skip_on_failure and len(rest) and cc.order < PAGEBLOCK_ORDER:
                size = 1 << max(cc.order, 0)
                sub_end = min(end_pfn, (rest.item(0) // size + 1) * size)
                cand = rest[: int(np.searchsorted(rest, sub_end))]
            else:
                sub_end = end_pfn
                cand = rest
            if len(cand) >= need:
                isolated = [cand[:need]]
                nr_isolated = need
                low_pfn = cand.item(need - 1) + 1
            else:  # all of them (none: the rest is free), up to the order block's end
                isolated = [cand] if len(cand) else []
                nr_isolated = len(cand)
                low_pfn = sub_end
            if low_pfn < end_pfn:
                z.mscan_pfn, z.mscan_lru = low_pfn, rest[nr_isolated:]
            else:
                z.mscan_block = -1
            if nr_isolated and valid_page and not cc.ignore_skip_hint:
                z.skip_b[b] = 1
        else:
            seg = z.state[low_pfn:end_pfn]
            # does the rest of the block hold only free and LRU frames? (the common case; one
            # C pass over its bytes: translate() deletes those two states)
            clean_all = not seg.tobytes().translate(None, _FREE_OR_LRU)
            # the cc->order aligned blocks that skip_on_failure aborts: min(max(order, 0), 9)
            o = cc.order if cc.order > 0 else 0
            size = 1 << (o if o < PAGEBLOCK_ORDER else PAGEBLOCK_ORDER)
            if clean_all and (not skip_on_failure or (low_pfn // size + 1) * size >= end_pfn):
                # the common case: nothing can fail, and the scan runs to the block's end in
                # one cc->order block (the loop below would take one step): the LRU frames are
                # the non-zero ones, and FREE 0 / LRU 1 are the bytes of a bool array
                lidx = seg.view(np.bool_).nonzero()[0]
                if len(lidx) >= need:  # COMPACT_CLUSTER_MAX reached: migrate now
                    stop = lidx.item(need - 1) + 1 + low_pfn
                    pfns = lidx + low_pfn
                    isolated = [pfns[:need]]
                    nr_isolated = need
                    if stop < end_pfn:  # keep the rest of the block's scan for the next batch
                        z.mscan_block, z.mscan_pfn, z.mscan_lru = b, stop, pfns[need:]
                    low_pfn = stop
                else:  # all of them (none: the rest is free)
                    isolated = [lidx + low_pfn] if len(lidx) else []
                    nr_isolated = len(lidx)
                    low_pfn = end_pfn
            else:
                lru = None if clean_all else seg == LRU
                isolated = []
                nr_isolated = 0
                pos, n = 0, len(seg)
                while pos < n:
                    if skip_on_failure:
                        sub_end = ((low_pfn + pos) // size + 1) * size - low_pfn
                        if sub_end > n:
                            sub_end = n
                    else:
                        sub_end = n
                    whole = pos == 0 and sub_end == n
                    # clean: no frame is neither free nor LRU (a state above LRU) in the order block
                    if clean_all:  # FREE is 0: the non-zero frames are the LRU frames
                        lidx = (seg if whole else seg[pos:sub_end]).nonzero()[0]
                        clean = True
                    else:
                        lidx = (lru if whole else lru[pos:sub_end]).nonzero()[0]
                        clean = None
                        if skip_on_failure:  # (the ufunc's reduce: no Python wrapper per call)
                            clean = (
                                int(np.maximum.reduce(seg if whole else seg[pos:sub_end])) <= LRU
                            )
                    if clean is False:
                        bad = (seg[pos:sub_end] > LRU).nonzero()[0]
                        first_bad = int(bad[0])
                        lidx = lidx[lidx < first_bad]
                    else:
                        first_bad = sub_end - pos
                    want = need - nr_isolated
                    if len(lidx) >= want:  # COMPACT_CLUSTER_MAX reached: migrate now
                        stop = int(lidx[want - 1]) + 1 + start_pfn + pos
                        if sub_end == n and stop < end_pfn:
                            # keep the rest of the block's scan for the next batch from it
                            if clean is None:
                                clean = int(np.maximum.reduce(seg[pos:])) <= LRU
                        else:
                            clean = False
                        if clean:
                            pfns = lidx + (start_pfn + pos)
                            take = pfns[:want]
                            z.mscan_block, z.mscan_pfn, z.mscan_lru = b, stop, pfns[want:]
                        else:
                            take = lidx[:want] + (start_pfn + pos)
                        isolated.append(take)
                        nr_isolated += want
                        pos = stop - start_pfn
                        break
                    if first_bad < sub_end - pos:  # isolation failed in this order block
                        isolated, nr_isolated = [], 0  # putback_movable_pages
                        pos = sub_end
                        continue
                    if len(lidx):
                        isolated.append(lidx + (start_pfn + pos))
                        nr_isolated += len(lidx)
                    pos = sub_end
                    if skip_on_failure and nr_isolated:
                        break  # isolated a whole order block: migrate it now
                low_pfn = low_pfn + pos
            if nr_isolated and valid_page and not cc.ignore_skip_hint:
                z.skip_b[b] = 1  # test_and_set_skip() under the LRU lock
        if low_pfn == end_pfn and (not nr_isolated or cc.finish_pageblock):
            if valid_page and not cc.ignore_skip_hint and not nr_isolated:
                z.skip_b[b] = 1
            self.update_cached_migrate(cc, low_pfn)
        scanned = low_pfn - start_pfn
        cc.total_migrate_scanned += scanned
        self._acc[W_MIGRATE_SCANNED] += scanned
        if nr_isolated:
            pfns = np.concatenate(isolated) if len(isolated) > 1 else isolated[0]
            z.state[pfns] = STATE_U8[ISOLATED_LRU]
            cc.migratepages.append(pfns)
            cc.nr_migratepages += nr_isolated
            self.vmstat["compact_isolated"] += nr_isolated
            self._acc[W_ISOLATED] += nr_isolated
        cc.migrate_pfn = low_pfn
        if self.trace:
            self._mark(M_ISO_MIGRATE, start_pfn, low_pfn, scanned, nr_isolated)

    # -- the free scanner -------------------------------------------------------------------
    def isolate_freepages(self, cc: CompactControl) -> None:
        """isolate_freepages(): isolate free pages from pageblocks below cc->free_pfn, down to
        the migration scanner's block, until there are as many as pages to migrate. Which
        pageblocks are targets is ``_target_ok`` / ``_next_target_block``
        (suitable_migration_target, isolation_suitable), what a block gives is
        ``isolate_freepages_block``; the stride starts at COMPACT_CLUSTER_MAX for
        MIGRATE_ASYNC and at 1 otherwise, is 1 again after a block that gave pages and doubles
        (up to COMPACT_CLUSTER_MAX) after one that gave none."""
        z = self.zone
        self._acc[W_ISOLATE_FREE] += 1
        isolate_start_pfn = cc.free_pfn
        block_start = isolate_start_pfn & BLOCK_MASK  # pageblock_start_pfn()
        block_end = block_start + PAGEBLOCK_NR_PAGES
        if block_end > z.nr_pages:  # min(..., zone_end_pfn)
            block_end = z.nr_pages
        low_pfn = (cc.migrate_pfn + PAGEBLOCK_NR_PAGES) & BLOCK_MASK  # pageblock_end_pfn()
        stride = COMPACT_CLUSTER_MAX if cc.mode == MIGRATE_ASYNC else 1
        while block_start >= low_pfn:
            b = block_start >> PAGEBLOCK_ORDER
            j = b if self._target_ok(cc, b) else self._next_target_block(cc, b, low_pfn >> 9)
            if j < 0:
                block_start = (low_pfn >> PAGEBLOCK_ORDER) * PAGEBLOCK_NR_PAGES - PAGEBLOCK_NR_PAGES
                isolate_start_pfn = block_start
                break
            if j < b:
                block_start = j * PAGEBLOCK_NR_PAGES
                block_end = block_start + PAGEBLOCK_NR_PAGES
                isolate_start_pfn = block_start
            before = cc.nr_freepages
            isolate_start_pfn = self.isolate_freepages_block(
                cc, isolate_start_pfn, block_end, stride
            )
            if isolate_start_pfn == block_end:  # update_pageblock_skip()
                if not cc.ignore_skip_hint:
                    z.skip_b[block_start >> PAGEBLOCK_ORDER] = 1
                if block_start - PAGEBLOCK_NR_PAGES < z.compact_cached_free_pfn:
                    z.compact_cached_free_pfn = block_start - PAGEBLOCK_NR_PAGES
            if cc.nr_freepages >= cc.nr_migratepages:
                if isolate_start_pfn >= block_end:
                    isolate_start_pfn = block_start - PAGEBLOCK_NR_PAGES
                break
            if isolate_start_pfn < block_end:
                break
            stride = 1 if cc.nr_freepages > before else min(COMPACT_CLUSTER_MAX, stride << 1)
            block_end = block_start
            block_start -= PAGEBLOCK_NR_PAGES
            isolate_start_pfn = block_start
        cc.free_pfn = isolate_start_pfn

    def _target_ok(self, cc: CompactControl, b: int) -> bool:
        z = self.zone
        if z.nr_free_pb_a[b] == PAGEBLOCK_NR_PAGES:
            return False
        if not cc.ignore_block_suitable and z.migratetype_b[b] != MIGRATE_MOVABLE:
            return False
        return cc.ignore_skip_hint or not z.skip_b[b]

    def _target_mask(self, cc: CompactControl, lo: int, hi: int) -> np.ndarray:
        """Per pageblock of [lo, hi]: does it suit the free scanner? Movable (unless
        ignored), not marked skip (unless ignored), not itself a free block of pageblock order
        (suitable_migration_target, isolation_suitable)."""
        z = self.zone
        ok = z.nr_free_pb[lo : hi + 1] < PAGEBLOCK_NR_PAGES
        if not cc.ignore_block_suitable:
            ok &= z.migratetype[lo : hi + 1] == MIGRATE_MOVABLE
        if not cc.ignore_skip_hint:
            ok &= ~z.skip[lo : hi + 1]
        return ok

    def _next_target_block(self, cc: CompactControl, b: int, b_low: int) -> int:
        """Highest pageblock in [b_low, b] that suits the free scanner (``_target_mask``), or
        -1; looked at FREE_SKIP_WINDOW_BLOCKS at a time."""
        hi = b
        while hi >= b_low:
            lo = max(b_low, hi - FREE_SKIP_WINDOW_BLOCKS + 1)
            idx = np.flatnonzero(self._target_mask(cc, lo, hi))
            if len(idx):
                return lo + int(idx[-1])
            hi = lo - 1
        return -1

    def isolate_freepages_block(
        self, cc: CompactControl, start_pfn: int, end_pfn: int, stride: int = 1
    ) -> int:
        """Isolate free pages of [start_pfn, end_pfn) in ascending order until enough; returns
        the pfn where the scan stopped. Simplified: every pfn is looked at (`stride` is not
        applied) and free pages are isolated one by one (the host twin's subclass follows
        the kernel's stride and whole-buddy isolation).

        The free pfns of the block that the scan did not take are cached (Zone.fscan_*) for
        the next scan of the same block (the next batch's targets, or a rescan from the
        block's start by the next compact_zone() run) until a free count of the block changes
        otherwise (Zone._account_block)."""
        z = self.zone
        b = start_pfn >> PAGEBLOCK_ORDER
        if b == z.fscan_block and z.fscan_from <= start_pfn <= z.fscan_pfn:
            free = z.fscan_free  # absolute pfns, none free in [fscan_from, fscan_pfn)
        else:
            seg = z.state[start_pfn:end_pfn]
            free = np.logical_not(seg).nonzero()[0] + start_pfn  # FREE is 0
            z.fscan_from = start_pfn
        need = cc.nr_migratepages - cc.nr_freepages
        if need <= 0:
            need = 1
        if len(free) >= need:
            take = free[:need]
            stop = take.item(-1) + 1
        else:
            take = free
            stop = end_pfn
        scanned = stop - start_pfn
        cc.total_free_scanned += scanned
        self._acc[W_FREE_SCANNED] += scanned
        if k := len(take):
            z.state[take] = STATE_U8[ISOLATED_FREE]
            z._account_block(b, -k)
            cc.freepages.append(take)
            cc.nr_freepages += k
            self.vmstat["compact_isolated"] += k
            self._acc[W_FREE_ISOLATED] += k
        # the cache is set after the accounting above (which drops the block's cache)
        z.fscan_block, z.fscan_pfn, z.fscan_free = b, stop, free[k:]
        if self.trace:
            self._mark(M_ISO_FREE, start_pfn, stop, scanned, k)
        return stop

    def compaction_alloc(self, cc: CompactControl, n: int) -> tuple[np.ndarray, int]:
        """Targets for `n` pages, in the order compaction_alloc() hands them out (the head of
        cc->freepages), and the lowest of them (-1: none); isolate_freepages() refills the
        list when it is empty. May return fewer than `n` when the free scanner meets the
        migration scanner. (Each chunk of cc->freepages is ascending: its first pfn is its
        lowest.)"""
        if cc.nr_freepages == 0 and n > 0:  # the common case: the last call used them all
            self.isolate_freepages(cc)
            got = cc.nr_freepages
            if got == 0:
                return np.zeros(0, dtype=np.int64), -1
            if got == n:  # one pass of the free scanner isolated the whole batch: hand it out
                chunks = cc.freepages
                cc.freepages, cc.nr_freepages = [], 0
                # one chunk per pageblock, the pageblocks in descending order: the last
                # chunk's first pfn is the lowest
                if len(chunks) == 1:
                    return chunks[0], chunks[0].item(0)
                return np.concatenate(chunks), chunks[-1].item(0)
            # fewer (the free scanner met the migration scanner): the general case below
        out: list[np.ndarray] = []
        got = 0
        lowest = -1
        while got < n:
            if cc.nr_freepages == 0:
                self.isolate_freepages(cc)
                if cc.nr_freepages == 0:
                    break
            head = cc.freepages[0]
            t = n - got if n - got < len(head) else len(head)
            if t == len(head):
                out.append(head)
                cc.freepages.pop(0)
            else:
                head, cc.freepages[0] = head[:t], head[t:]
                out.append(head)
            first = head.item(0)
            if lowest < 0 or first < lowest:
                lowest = first
            cc.nr_freepages -= t
            got += t
        if len(out) == 1:  # the common case: one chunk of the free list serves the call
            return out[0], lowest
        return (np.concatenate(out) if out else np.zeros(0, dtype=np.int64)), lowest

    # -- migrate_pages ----------------------------------------------------------------------
    def migrate_pages(self, cc: CompactControl) -> int:
        """migrate_pages(&cc->migratepages, compaction_alloc, ...): allocate a target for
        every folio (unmap phase), copy the contents, free the sources to the per-CPU list
        (move phase; free_pcppages_bulk may hand them on to the buddy allocator and a capture
        may happen there). The list is walked from its head: the last isolated page first.
        Returns the number of pages that could not be migrated (put back on the LRU)."""
        z = self.zone
        src = cc.migratepages[0] if len(cc.migratepages) == 1 else np.concatenate(cc.migratepages)
        src = src[::-1]
        cc.migratepages, n = [], cc.nr_migratepages
        dst, dst_lo = self.compaction_alloc(cc, n)
        m = len(dst)
        ok = src if m == n else src[:m]
        nr_failed = n - m
        if m:
            src_block = ok.item(0) >> PAGEBLOCK_ORDER  # the sources lie in one pageblock
            z.move_content(ok, dst, src_block, dst_lo >> PAGEBLOCK_ORDER)
            z.state[dst] = STATE_U8[LRU]
            # folio_put(src) -> free_unref_page_commit
            z.pcp_free(ok, src_block)
        if nr_failed:
            z.state[src[m:]] = LRU  # putback_movable_pages
            self._mark(M_MIGRATE_FAIL, nr_failed)
        cc.nr_migratepages = 0
        self.vmstat["pgmigrate_success"] += m
        self.vmstat["pgmigrate_fail"] += nr_failed
        self._log_call(m)
        return nr_failed


_check_compiled_constants()
