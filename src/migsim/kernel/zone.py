"""A memory zone: page frames, the buddy allocator, pageblocks and the per-CPU page lists.

State is kept per page frame in numpy arrays (``state``: who holds the frame; the content tag
it carries, stored as an offset from ``pfn + 1`` so that a page that never moved costs no
memory) and per pageblock (migratetype, PB_migrate_skip bit, buddy-free page
count). The buddy free lists are *derived* from the frame state: the kernel merges a freed page
with its buddy as long as the buddy is free, so the free lists always hold the canonical
decomposition of the free frames into maximal aligned power-of-two blocks (orders
0..MAX_PAGE_ORDER). Deriving them from a per-pageblock bitmap with lookup tables keeps a 250 GB
zone (65.5 million frames) in a few hundred MB and makes merging on free and splitting on
allocation exact by construction.

Simplifications (said where they matter): the order of entries inside a free list is not
modelled (allocation takes the lowest pfn of the smallest order that fits); one per-CPU page
list (order 0, MOVABLE) for the one CPU that runs the experiment; no CMA, no memory isolation,
no lowmem reserves.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import dataclass

import numpy as np

from migsim.kernel.tags import ContentTags
from migsim.limits import ZONE_PAGES, LimitError
from migsim.units import MAX_PAGE_ORDER, PAGE_SIZE, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER

# Frame states (uint8). A frame is in exactly one of them.
FREE = 0  # in the buddy free lists (PageBuddy)
LRU = 1  # movable anonymous page on the LRU, mapped by a process
PCP = 2  # freed to the per-CPU page lists, not yet in the buddy lists
ISOLATED_FREE = 3  # taken from the buddy lists by compaction's free scanner (cc->freepages)
ISOLATED_LRU = 4  # isolated from the LRU for migration (cc->migratepages)
KERNEL = 5  # unmovable kernel memory (memmap, page tables, slab)
ALLOCATED = 6  # handed out by the page allocator (e.g. the order-9 pages of the test module)
NR_STATES = 7
STATE_NAMES = ("free", "lru", "pcp", "isolated_free", "isolated_lru", "kernel", "allocated")
# states above LRU are neither free nor isolatable: the migration scanner fails on them
CONTENT_STATES = (LRU, ISOLATED_LRU)  # frames whose content tag is meaningful


def _state_value(state: int) -> np.ndarray:
    value = np.array(state, dtype=np.uint8)
    value.flags.writeable = False
    return value


# each frame state as a read-only 0-d uint8 array, the value of the hot paths' scatters
# (``state[pfns] = STATE_U8[LRU]``): numpy converts a Python int anew at every write, about
# 1.5 k instructions of a 32-page scatter's 3.5 k (model speed only, the same bytes)
STATE_U8 = tuple(_state_value(s) for s in range(NR_STATES))

# Pageblock migratetypes (enum migratetype order of the kernel)
MIGRATE_UNMOVABLE = 0
MIGRATE_MOVABLE = 1
MIGRATE_RECLAIMABLE = 2

NR_ORDERS = MAX_PAGE_ORDER + 1
PCP_BATCH_SCALE_MAX = 5  # CONFIG_PCP_BATCH_SCALE_MAX
# pageblocks recounted per step (a (k, 512) mask and its tables stay a few MB); the one step
# size of every chunked recount, so that a loop cannot stride by one size and slice another
RECOUNT_CHUNK_BLOCKS = 8192
# queued folio_copy() pages applied at once (Zone.flush_moves; model batching only, the
# content tags do not depend on it)
MOVE_FLUSH_PAGES = 1 << 16


def _build_tables() -> tuple[np.ndarray, np.ndarray]:
    """For every 16-bit free mask: number of maximal free buddy blocks of order 0..3 that lie
    inside the 16 pages (a completely free chunk counts 0 here: it may merge further).

    Level j has one bit per aligned group of 2^j frames that is entirely free (the AND of
    the two halves, kept at the group's first bit); a free group of order j is maximal when
    its buddy pair is not free, so the order-j count is popcount(level j) - 2 popcount(level
    j + 1). Integer bit operations on 65536 values: 2 ms at every import of the zone, against
    128 ms for the (65536, 16) bool table built before (both at load 17 on 2 CPUs)."""
    x = np.arange(1 << 16, dtype=np.uint32)
    levels = [x]
    for j, mask in enumerate((0x5555, 0x1111, 0x0101, 0x0001)):
        a = levels[-1]
        levels.append(a & (a >> (1 << j)) & mask)
    counts = np.zeros((4, 1 << 16), dtype=np.uint8)
    for j in range(4):
        pairs = np.bitwise_count(levels[j + 1]).astype(np.int64)
        counts[j] = np.bitwise_count(levels[j]).astype(np.int64) - 2 * pairs
    return counts, levels[4] != 0


_COUNT16, _FULL16 = _build_tables()
# the four counts of a mask in one uint64, 16 bits each (order j at bit 16 j): one gather and
# one sum per chunk of masks instead of four; a pageblock's sums stay below 2^16 (<= 256)
_COUNT16_PACKED = sum(_COUNT16[j].astype(np.uint64) << np.uint64(16 * j) for j in range(4))


def buddy_block_counts(free: np.ndarray) -> np.ndarray:
    """Free buddy blocks per order inside each pageblock.

    `free` is a (k, 512) boolean array (True = frame in the buddy free lists). Returns a
    (k, 10) int64 array: counts of maximal free blocks of order 0..8 inside the pageblock, and
    in column 9 whether the whole pageblock is free (it is an order-9 block, or half of an
    order-10 block; the caller pairs pageblocks).
    """
    k = free.shape[0]
    packed = np.packbits(free, axis=1, bitorder="little")  # (k, 64) bytes, bit i = frame i
    chunks = packed.view("<u2")  # (k, 32) chunks of 16 frames
    out = np.zeros((k, 10), dtype=np.int64)
    low = _COUNT16_PACKED[chunks].sum(1)  # orders 0..3, 16 bits each
    full = _FULL16[chunks]  # (k, 32): chunk of 16 free frames (an order-4 candidate)
    level2 = np.packbits(full, axis=1, bitorder="little").view("<u2")  # (k, 2)
    high = _COUNT16_PACKED[level2].sum(1)  # orders 4..7
    for j in range(4):
        shift = np.uint64(16 * j)
        out[:, j] = (low >> shift) & np.uint64(0xFFFF)
        out[:, 4 + j] = (high >> shift) & np.uint64(0xFFFF)
    halves = _FULL16[level2]  # (k, 2): 256 free frames
    whole = halves.all(1)
    out[:, 8] = halves.sum(1) - 2 * whole
    out[:, 9] = whole
    return out


def _holds_content(states: np.ndarray) -> np.ndarray:
    """Frames in one of CONTENT_STATES (two compares: np.isin sorts)."""
    return (states == CONTENT_STATES[0]) | (states == CONTENT_STATES[1])


def _all_distinct(values: np.ndarray) -> bool:
    """Are the non-negative integers `values` pairwise distinct? (a bitmap when they are
    dense, as pfns and content tags are: np.unique of 32 M values takes tens of seconds)"""
    if len(values) < 2:
        return True
    top = int(values.max())
    if top <= 8 * len(values) + (1 << 16):
        seen = np.zeros(top + 1, dtype=bool)
        seen[values] = True
        return int(np.count_nonzero(seen)) == len(values)
    s = np.sort(values)
    return bool(np.all(s[1:] != s[:-1]))


Part = tuple[np.ndarray, int]  # pfns and the pageblock they all lie in (-1: several)


def _block_of(pfns: np.ndarray) -> int:
    """The pageblock all of `pfns` lie in, or -1."""
    if len(pfns) == 0:
        return -1
    b = int(pfns[0]) >> PAGEBLOCK_ORDER
    if int(pfns.min()) >> PAGEBLOCK_ORDER == b and int(pfns.max()) >> PAGEBLOCK_ORDER == b:
        return b
    return -1


class PerCpuPages:
    """struct per_cpu_pages of the running CPU for this zone (the order-0 MOVABLE list).

    Freed order-0 pages are added at the head; when ``count`` reaches ``high``,
    free_pcppages_bulk() returns the *oldest* pages (list tail) to the buddy allocator, as many
    as nr_pcp_free() says (v6.7+: the run of consecutive frees, clamped to [batch, high -
    batch], so at least ``batch`` pages stay). drain_local_pages() returns all of them.
    Simplification: pcp->high is fixed (no auto-tuning between high_min and high_max).
    Pages are kept as chunks (one per free call) that remember their pageblock.
    """

    def __init__(self, high: int, batch: int):
        if high < 0 or batch < 1:
            raise ValueError(f"pcp: need high >= 0 and batch >= 1, got high={high} batch={batch}")
        self.high = int(high)
        self.batch = int(batch)
        self.count = 0
        self.free_count = 0  # consecutive frees without allocation (pcp->free_count)
        self._chunks: deque[Part] = deque()  # oldest first
        self._head = 0  # pages already taken from the oldest chunk

    def nr_pcp_free(self) -> int:
        """Pages free_pcppages_bulk() frees when the list is over ``high`` (nr_pcp_free)."""
        if self.high < self.batch:
            return 1
        lo, hi = self.batch, self.high - self.batch
        return int(min(max(self.free_count, lo), max(hi, lo)))

    def add(self, pfns: np.ndarray, block: int = -2) -> list[list[Part]]:
        """free_unref_page_commit() of `pfns` in order (`block`: their common pageblock if
        known). Returns the bulk frees it triggers, each a list of parts (oldest first) to
        hand to the buddy allocator, in order."""
        if block == -2:
            block = _block_of(pfns)
        cap = self.batch << PCP_BATCH_SCALE_MAX
        pos, n = 0, len(pfns)
        if 0 < n < self.high - self.count:  # the common case: the list stays below high
            self._chunks.append((pfns, block))
            self.count += n
            fc = self.free_count + n  # min(free_count + n, cap), without the builtin's call
            self.free_count = fc if fc < cap else cap
            return []
        out: list[list[Part]] = []
        while pos < n:
            room = max(self.high - self.count, 1)  # frees until count >= high
            take = min(room, n - pos)
            self._chunks.append((pfns[pos : pos + take] if take < n else pfns, block))
            self.count += take
            self.free_count = min(self.free_count + take, cap)
            pos += take
            if self.count >= self.high:
                out.append(self.take_oldest(min(self.nr_pcp_free(), self.count)))
        return out

    def take_oldest(self, k: int) -> list[Part]:
        """Remove and return the `k` oldest pages (free_pcppages_bulk takes the list tail)."""
        parts: list[Part] = []
        need = k
        while need > 0 and self._chunks:
            c, blk = self._chunks[0]
            avail = len(c) - self._head
            t = avail if avail < need else need
            parts.append((c[self._head : self._head + t] if (self._head or t < len(c)) else c, blk))
            need -= t
            if t == avail:
                self._chunks.popleft()
                self._head = 0
            else:
                self._head += t
        self.count -= k - need
        return parts

    def drain(self) -> list[Part]:
        """drain_local_pages(): every page, oldest first (take_oldest(count), whole chunks)."""
        out = list(self._chunks)
        if out and self._head:
            c, blk = out[0]
            out[0] = (c[self._head :], blk)
        self._chunks.clear()
        self._head = 0
        self.count = 0
        self.free_count = 0
        return out

    def pfns(self) -> np.ndarray:
        """All pages on the list, oldest first (for checks)."""
        if not self._chunks:
            return np.zeros(0, dtype=np.int64)
        parts = [c for c, _ in self._chunks]
        parts[0] = parts[0][self._head :]
        return np.concatenate(parts)


@dataclass(slots=True)
class CaptureControl:
    """struct capture_control: a compacting task's claim on the next free page of ``order``
    that forms by merging in the buddy allocator (compaction_capture)."""

    order: int
    migratetype: int = MIGRATE_MOVABLE
    page: int | None = None  # pfn of the captured block


def kernel_batchsize(nr_pages: int) -> int:
    """zone_batchsize(): pcp->batch for a zone of `nr_pages` managed pages."""
    batch = min(nr_pages >> 10, (1 << 20) // PAGE_SIZE)
    batch //= 4
    batch = max(batch, 1)
    return (1 << int(math.floor(math.log2(batch + batch // 2)))) - 1 if batch > 1 else 1


def kernel_watermarks(nr_pages: int) -> tuple[int, int, int]:
    """(min, low, high) watermarks in pages as __setup_per_zone_wmarks() sets them for a zone
    that is all of the machine's memory (min_free_kbytes = sqrt(16 x lowmem KB), clamped to
    [128 KB, 256 MB]; watermark_scale_factor 10)."""
    kbytes = nr_pages * (PAGE_SIZE // 1024)
    min_free_kbytes = min(max(math.isqrt(kbytes * 16), 128), 262144)
    wmin = min_free_kbytes // (PAGE_SIZE // 1024)
    gap = max(wmin // 4, nr_pages * 10 // 10000)
    return wmin, wmin + gap, wmin + 2 * gap


def kernel_pcp_high(nr_pages: int, node_cpus: int) -> int:
    """zone_highsize() with the default percpu_pagelist_high_fraction: the low watermark split
    among the node's CPUs, at least four batches."""
    batch = kernel_batchsize(nr_pages)
    return max(kernel_watermarks(nr_pages)[1] // max(node_cpus, 1), batch << 2)


class Zone:
    """One zone of `nr_pages` page frames (a multiple of a pageblock), all free at first.

    `pcp_high`/`pcp_batch` default to the kernel's formulas for a zone of this size on a node
    with `node_cpus` CPUs.
    """

    def __init__(
        self,
        nr_pages: int,
        *,
        pcp_high: int | None = None,
        pcp_batch: int | None = None,
        node_cpus: int = 64,
        state: np.ndarray | None = None,
        tag_delta: np.ndarray | None = None,
    ):
        # one message for every bad size, the range from migsim.limits (Zone(0) is no zone)
        try:
            whole = ZONE_PAGES.check(nr_pages, "nr_pages") % PAGEBLOCK_NR_PAGES == 0
        except LimitError:
            whole = False
        if not whole:
            raise LimitError(
                f"nr_pages: must be {ZONE_PAGES.text()}, a multiple of {PAGEBLOCK_NR_PAGES} "
                f"(a pageblock), got {nr_pages!r}"
            )
        self.nr_pages = int(nr_pages)
        self.nr_blocks = self.nr_pages // PAGEBLOCK_NR_PAGES
        self.zone_start_pfn = 0
        for name, arr, dt in (("state", state, np.uint8), ("tag_delta", tag_delta, np.int32)):
            if arr is not None and (arr.shape != (self.nr_pages,) or arr.dtype != dt):
                raise ValueError(f"{name}: expected {self.nr_pages} frames of {np.dtype(dt)}")
        # all FREE (state 0): np.zeros maps zeroed pages lazily, np.full(FREE) would write them
        self.state = np.zeros(self.nr_pages, dtype=np.uint8) if state is None else state
        # content tag of a frame = pfn + 1 + its offset where the frame holds a page (a page
        # that never moved from where it was first written keeps offset 0 and costs nothing:
        # migsim.kernel.tags: about one byte per frame, allocated zeroed and so paid only where
        # a moved page landed)
        self._tags = ContentTags(self.nr_pages, tag_delta)
        # folio_copy()s not yet applied to _tags: (src, dst) pairs in call order, applied
        # in bulk (one gather/scatter per MOVE_FLUSH_PAGES pages instead of four numpy calls
        # per migrate_pages() call); _moves_lo is the lowest pageblock holding a queued target
        self._moves: list[tuple[np.ndarray, np.ndarray]] = []
        self._moves_pages = 0
        self._moves_lo = self.nr_blocks
        # the scanners' caches (migsim.kernel.compaction): the pageblock each one keeps the
        # LRU / free frames of; any change of a pageblock's free count drops the cache of that
        # block (see _account_block), so a cache only lives while nothing but its scanner
        # touched the block
        self.mscan_block = -1
        self.mscan_pfn = 0  # the migration scanner's cache: LRU pfns of [mscan_pfn, block end)
        self.mscan_lru = np.zeros(0, dtype=np.int64)
        self.fscan_block = -1
        self.fscan_from = 0  # the free scanner's cache: free pfns of [fscan_pfn, block end),
        self.fscan_pfn = 0  # and none in [fscan_from, fscan_pfn)
        self.fscan_free = np.zeros(0, dtype=np.int64)
        # per pageblock: numpy arrays for the vectorised code, each a view of a Python buffer
        # (bytearray / array) that the scanners read and write one block at a time in plain
        # integers (a numpy scalar access costs ~10x more); both name the same memory, so
        # write them in place only, never rebind them
        self.migratetype_b = bytearray([MIGRATE_MOVABLE]) * self.nr_blocks
        self.migratetype = np.frombuffer(self.migratetype_b, dtype=np.uint8)
        self.skip_b = bytearray(self.nr_blocks)
        self.skip = np.frombuffer(self.skip_b, dtype=bool)  # PB_migrate_skip
        self.nr_free_pb_a = array("h", [PAGEBLOCK_NR_PAGES]) * self.nr_blocks
        self.nr_free_pb = np.frombuffer(self.nr_free_pb_a, dtype=np.int16)
        self.nr_free = self.nr_pages  # NR_FREE_PAGES (buddy only)
        self._nr_full = self.nr_blocks  # pageblocks entirely free
        self._nr_pairs = self.nr_blocks // 2  # aligned pageblock pairs entirely free (order 10)
        # free blocks of order 0..8 per pageblock (at most 256 each: int16)
        self._lo_counts = np.zeros((self.nr_blocks, 9), dtype=np.int16)
        self._lo_total = np.zeros(9, dtype=np.int64)
        self._lo_sum = 0  # int(self._lo_total.sum()), kept as a plain integer
        # pageblocks changed since the last exact recount of their order-0..8 counts: one flag
        # byte per pageblock and their number (a list of every change grew by ~10 entries per
        # allocation, 5 MB at full scale)
        self._dirty = bytearray(self.nr_blocks)
        self._nr_dirty = 0
        self.wmark_min, self.wmark_low, self.wmark_high = kernel_watermarks(self.nr_pages)
        batch = kernel_batchsize(self.nr_pages) if pcp_batch is None else int(pcp_batch)
        high = kernel_pcp_high(self.nr_pages, node_cpus) if pcp_high is None else int(pcp_high)
        self.pcp = PerCpuPages(high, batch)
        self.capture_control: CaptureControl | None = None
        self.buddy_frees = 0  # pages that went from the pcp lists (or directly) into the buddy
        # compaction state that persists between calls (struct zone)
        self.compact_cached_migrate_pfn = [0, 0]  # [async, sync]
        self.compact_cached_free_pfn = self.pageblock_start(self.nr_pages - 1)
        self.compact_init_migrate_pfn = 0
        self.compact_init_free_pfn = 0
        self.compact_considered = 0
        self.compact_defer_shift = 0
        self.compact_order_failed = 0
        self.compact_blockskip_flush = False

    # -- geometry ---------------------------------------------------------------------------
    @staticmethod
    def pageblock_start(pfn: int) -> int:
        return pfn & ~(PAGEBLOCK_NR_PAGES - 1)

    @staticmethod
    def pageblock_end_pfn(pfn: int) -> int:
        """ALIGN(pfn + 1, pageblock_nr_pages), as the kernel's pageblock_end_pfn()."""
        return (pfn + PAGEBLOCK_NR_PAGES) & ~(PAGEBLOCK_NR_PAGES - 1)

    @property
    def zone_end_pfn(self) -> int:
        return self.nr_pages

    # -- free page accounting ---------------------------------------------------------------
    def _account(self, pfns: np.ndarray, delta: int, block: int = -2) -> None:
        """Add `delta` (+1 freed into / -1 taken from the buddy lists) for each of `pfns`
        (`block`: the pageblock they all lie in, if the caller knows it)."""
        n = len(pfns)
        if n == 0:
            return
        if block == -2:
            block = _block_of(pfns)
        if block >= 0:  # the common case: one pageblock, plain integers
            self._account_block(block, delta * n)
            return
        self.nr_free += delta * n
        self.drop_scan_caches()  # several pageblocks: the rare path
        ub, cnt = np.unique(pfns >> PAGEBLOCK_ORDER, return_counts=True)
        before = self.nr_free_pb[ub]
        after = before + delta * cnt
        was, now = before == PAGEBLOCK_NR_PAGES, after == PAGEBLOCK_NR_PAGES
        changed = was != now
        if changed.any():
            pids = np.unique(ub[changed] >> 1)
            pairs_before = int(self._pair_full(pids).sum())
            self.nr_free_pb[ub] = after
            self._nr_pairs += int(self._pair_full(pids).sum()) - pairs_before
            self._nr_full += int(now.sum()) - int(was.sum())
        else:
            self.nr_free_pb[ub] = after
        for b in ub.tolist():
            self._mark_dirty(b)

    def _account_block(self, block: int, change: int) -> None:
        """Add `change` free pages (negative: taken) to pageblock `block`, in plain integers."""
        self.nr_free += change
        if block == self.mscan_block:  # drop_scan_caches(block), inline
            self.mscan_block = -1
        if block == self.fscan_block:
            self.fscan_block = -1
        nfp = self.nr_free_pb_a
        before = nfp[block]
        after = before + change
        nfp[block] = after
        if not self._dirty[block]:  # _mark_dirty(), inline
            self._dirty[block] = 1
            self._nr_dirty += 1
        if (before == PAGEBLOCK_NR_PAGES) != (after == PAGEBLOCK_NR_PAGES):
            self._nr_full += 1 if after == PAGEBLOCK_NR_PAGES else -1
            buddy = block ^ 1  # the other pageblock of the aligned pair (an order-10 block)
            if buddy < self.nr_blocks and nfp[buddy] == PAGEBLOCK_NR_PAGES:
                self._nr_pairs += 1 if after == PAGEBLOCK_NR_PAGES else -1

    def drop_scan_caches(self, block: int = -1) -> None:
        """Forget the scanners' cached frames of `block` (-1: of every block)."""
        if block < 0 or block == self.mscan_block:
            self.mscan_block = -1
        if block < 0 or block == self.fscan_block:
            self.fscan_block = -1

    def _mark_dirty(self, block: int) -> None:
        if not self._dirty[block]:
            self._dirty[block] = 1
            self._nr_dirty += 1

    def _pair_full(self, pids: np.ndarray) -> np.ndarray:
        """Are both pageblocks of each aligned pair `pids` entirely free (an order-10 block)?"""
        b0, b1 = pids * 2, pids * 2 + 1
        ok = b1 < self.nr_blocks
        b1 = np.minimum(b1, self.nr_blocks - 1)
        full = PAGEBLOCK_NR_PAGES
        return ok & (self.nr_free_pb[b0] == full) & (self.nr_free_pb[b1] == full)

    @property
    def nr_full_blocks(self) -> int:
        """Pageblocks whose 512 frames are all in the buddy lists (order-9 or order-10 free)."""
        return self._nr_full

    def _refresh_lo(self) -> None:
        """Recount the free blocks of order 0..8 of the pageblocks changed since last time."""
        if not self._nr_dirty:
            return
        if self._nr_dirty > self.nr_blocks // 8:
            blocks = np.arange(self.nr_blocks, dtype=np.int64)
        else:
            blocks = np.frombuffer(self._dirty, dtype=np.uint8).nonzero()[0].astype(np.int64)
        self._dirty = bytearray(self.nr_blocks)
        self._nr_dirty = 0
        for lo in range(0, len(blocks), RECOUNT_CHUNK_BLOCKS):
            part = blocks[lo : lo + RECOUNT_CHUNK_BLOCKS]
            new = buddy_block_counts(self.block_free_mask(part))[:, :9].astype(np.int16)
            self._lo_total += (new - self._lo_counts[part]).sum(0, dtype=np.int64)
            self._lo_sum = int(self._lo_total.sum())
            self._lo_counts[part] = new

    def free_blocks_total_range(self) -> tuple[int, int]:
        """Bounds on the number of free buddy blocks of all orders, without recounting the
        pageblocks changed since the last exact count (each can differ by at most 256)."""
        high = self._nr_full - self._nr_pairs  # order-9 blocks plus order-10 blocks
        base = self._lo_sum + high
        slack = 256 * self._nr_dirty
        return (base - slack if base - slack > high else high), base + slack

    def block_free_mask(self, blocks: np.ndarray) -> np.ndarray:
        """(k, 512) bool: frames of `blocks` that are in the buddy free lists."""
        blocks = np.asarray(blocks, dtype=np.int64)
        view = self.state.reshape(self.nr_blocks, PAGEBLOCK_NR_PAGES)
        if len(blocks) and blocks[-1] - blocks[0] + 1 == len(blocks):  # a contiguous run
            return view[blocks[0] : blocks[-1] + 1] == FREE
        return view[blocks] == FREE

    def free_area_counts(self) -> np.ndarray:
        """nr_free of free_area[order] for order 0..10: the /proc/buddyinfo line of the zone."""
        self._refresh_lo()
        out = np.zeros(NR_ORDERS, dtype=np.int64)
        out[:9] = self._lo_total
        out[10] = self._nr_pairs
        out[9] = self._nr_full - 2 * self._nr_pairs
        return out

    def free_list(self, order: int) -> np.ndarray:
        """pfns of the free blocks of `order` (the content of free_area[order], lowest first)."""
        if not 0 <= order <= MAX_PAGE_ORDER:
            raise ValueError(f"order: must be in 0..{MAX_PAGE_ORDER}, got {order}")
        full = self.nr_free_pb == PAGEBLOCK_NR_PAGES
        if order >= PAGEBLOCK_ORDER:
            idx = np.arange(self.nr_blocks)
            even = self.nr_blocks // 2 * 2
            pair = np.zeros_like(full)
            both = full[0:even:2] & full[1:even:2]
            pair[0:even:2] = both
            pair[1:even:2] = both
            if order == MAX_PAGE_ORDER:
                return idx[pair & (idx % 2 == 0)] * PAGEBLOCK_NR_PAGES
            return idx[full & ~pair] * PAGEBLOCK_NR_PAGES
        blocks = np.flatnonzero((self.nr_free_pb > 0) & ~full)
        if len(blocks) == 0:
            return np.zeros(0, dtype=np.int64)
        free = self.block_free_mask(blocks)
        size = 1 << order
        groups = free.reshape(len(blocks), -1, size).all(2)
        parents = free.reshape(len(blocks), -1, 2 * size).all(2)
        maximal = groups & ~np.repeat(parents, 2, axis=1)
        b, g = np.nonzero(maximal)
        return blocks[b] * PAGEBLOCK_NR_PAGES + g * size

    def free_blocks_total(self) -> int:
        """Number of free buddy blocks of any order (fragmentation_index's free_blocks_total)."""
        return int(self.free_area_counts().sum())

    def has_free_order(self, order: int) -> bool:
        """Is there a free block of at least `order` (any migratetype: movable allocations may
        fall back and steal a whole free pageblock)? Above pageblock_order (order 10) only two
        whole free buddy pageblocks make one (__zone_watermark_ok walks free_area[order..])."""
        if order > PAGEBLOCK_ORDER:
            return self._nr_pairs > 0
        if self._nr_full > 0:
            return True
        if order == PAGEBLOCK_ORDER:
            return False
        self._refresh_lo()
        return bool(self._lo_total[order:].sum() > 0)

    # -- the buddy allocator ----------------------------------------------------------------
    def free_to_buddy(self, parts: list[Part] | np.ndarray) -> int | None:
        """__free_one_page() of order-0 pages, in order (`parts`: a pfn array, or a list of
        (pfns, pageblock) parts). Merging is implicit in the derived free lists. If a
        compacting task's capture_control is set and one of these frees completes a free block
        of its order, compaction_capture() takes that block (the first one to complete): it
        leaves the buddy lists and its pfn is returned."""
        if isinstance(parts, np.ndarray):
            parts = [(parts.astype(np.int64, copy=False), -2)]
        kept, n = [], 0
        for part in parts:
            if k := len(part[0]):
                kept.append(part)
                n += k
        if not n:
            return None
        parts = kept
        self.buddy_frees += n
        capc = self.capture_control
        captured = None
        if capc is not None and capc.page is None:
            captured = self._find_capture(parts, capc.order)
        if captured is not None:
            start, size = captured
            if order_is_block := size == PAGEBLOCK_NR_PAGES:
                cb = start >> PAGEBLOCK_ORDER
            parts = [
                (p, b)
                if order_is_block and b >= 0 and b != cb
                else (p[(p < start) | (p >= start + size)], b)
                for p, b in parts
                if not (order_is_block and b == cb)
            ]
            seg = self.state[start : start + size]
            if order_is_block:  # its free frames are the pageblock's free count
                self._account_block(cb, -self.nr_free_pb_a[cb])
            elif size < PAGEBLOCK_NR_PAGES:  # the block lies in one pageblock
                self._account_block(start >> PAGEBLOCK_ORDER, -int(np.count_nonzero(seg == FREE)))
            else:
                self._account(np.flatnonzero(seg == FREE) + start, -1)
            seg[:] = STATE_U8[ALLOCATED]
            capc.page = start
        state = self.state
        for p, b in parts:
            if k := len(p):
                state[p] = STATE_U8[FREE]
                if b >= 0:
                    self._account_block(b, k)
                else:
                    self._account(p, +1, b)
        return None if captured is None else captured[0]

    def _find_capture(self, parts: list[Part], order: int) -> tuple[int, int] | None:
        """Earliest aligned 2^order group that these frees complete, or None."""
        size = 1 << order
        if order == PAGEBLOCK_ORDER:
            freed: dict[int, int] = {}
            nfp = self.nr_free_pb_a
            for p, b in parts:  # each part lies in one pageblock: plain integers
                if b < 0:
                    break  # a part over several pageblocks: the general count below
                k = freed.get(b, 0) + len(p)
                freed[b] = k
                if nfp[b] + k == size:
                    return b * size, size
            else:
                return None
        pfns = np.concatenate([p for p, _ in parts])
        groups = pfns >> order
        ug, cnt = np.unique(groups, return_counts=True)
        if order == PAGEBLOCK_ORDER:
            free_before = self.nr_free_pb[ug].astype(np.int64)
        elif order > PAGEBLOCK_ORDER:
            blocks = (ug[:, None] * 2 + np.arange(2)).ravel()
            blocks = np.minimum(blocks, self.nr_blocks - 1)
            free_before = self.nr_free_pb[blocks].reshape(-1, 2).sum(1).astype(np.int64)
            free_before[(ug * 2 + 1) >= self.nr_blocks] = -size  # no buddy block
        else:
            idx = ug[:, None] * size + np.arange(size)
            free_before = (self.state[idx] == FREE).sum(1)
        complete = free_before + cnt == size
        if not complete.any():
            return None
        # index in the sequence of the last free of each group
        last_idx = len(pfns) - 1 - np.unique(groups[::-1], return_index=True)[1]
        when = np.where(complete, last_idx, np.iinfo(np.int64).max)
        g = int(ug[int(np.argmin(when))])
        return g * size, size

    def alloc_block(self, order: int, new_state: int = ALLOCATED) -> int | None:
        """__rmqueue_smallest(): take a free block of `order` from the smallest order that has
        one (splitting a larger block; expand() returns the rest to the lists, implicit here),
        lowest pfn first. Returns the pfn or None."""
        if not 0 <= order <= MAX_PAGE_ORDER:
            raise ValueError(f"order: must be in 0..{MAX_PAGE_ORDER}, got {order}")
        if not self.has_free_order(order):
            return None
        pfn = None
        for o in range(order, NR_ORDERS):
            if o < PAGEBLOCK_ORDER:
                self._refresh_lo()
                if self._lo_total[o] == 0:
                    continue
            lst = self.free_list(o)
            if len(lst):
                pfn = int(lst[0])
                break
        if pfn is None:
            return None
        size = 1 << order
        pages = np.arange(pfn, pfn + size, dtype=np.int64)
        self._account(pages, -1)
        self.state[pfn : pfn + size] = new_state
        return pfn

    def free_block(self, pfn: int, order: int) -> None:
        """__free_pages(): an order-0 page goes to the per-CPU list (free_unref_page); a
        higher-order block goes straight to the buddy allocator (simplification: no
        high-order pcp lists)."""
        size = 1 << order
        if pfn % size or not 0 <= pfn < self.nr_pages:
            raise ValueError(f"pfn: {pfn} is not an order-{order} aligned frame of the zone")
        seg = self.state[pfn : pfn + size]
        if np.any((seg == FREE) | (seg == PCP) | (seg == ISOLATED_FREE)):
            raise ValueError(f"pfn: double free of a frame in [{pfn}, {pfn + size})")
        if self._moves:
            # a queued target freed here could be a target again before the queue is applied:
            # one scatter with a repeated index has no defined order (flush_moves)
            self.flush_moves()
        if order == 0:
            self.pcp_free(np.array([pfn], dtype=np.int64))
        else:
            self.state[pfn : pfn + size] = PCP  # transient, freed at once below
            self.free_to_buddy(np.arange(pfn, pfn + size, dtype=np.int64))

    def pcp_free(self, pfns: np.ndarray, block: int = -2) -> int:
        """free_unref_page() of order-0 `pfns` in order (`block`: their common pageblock if
        known); returns pages that free_pcppages_bulk() moved into the buddy lists meanwhile
        (a capture may happen there)."""
        if block < 0 and (not isinstance(pfns, np.ndarray) or pfns.dtype != np.int64):
            pfns = np.asarray(pfns, dtype=np.int64)  # (callers that know the block pass int64)
        self.state[pfns] = STATE_U8[PCP]
        moved = 0
        for bulk in self.pcp.add(pfns, block):
            self.free_to_buddy(bulk)
            for p, _ in bulk:
                moved += len(p)
        return moved

    def drain_pages(self) -> int:
        """drain_local_pages(zone): every per-CPU page into the buddy lists; returns pages."""
        n = self.pcp.count  # drain() takes every page on the list
        self.free_to_buddy(self.pcp.drain())
        return n

    def zone_watermark_ok(self, order: int, mark: int) -> bool:
        """__zone_watermark_ok(): enough free pages above `mark` and a free block of `order`."""
        free_pages = self.nr_free - ((1 << order) - 1)
        if free_pages <= mark:
            return False
        return order == 0 or self.has_free_order(order)

    # -- page contents ----------------------------------------------------------------------
    def count_state(self, state: int) -> int:
        """Frames in `state`, counted per chunk of pageblocks (no zone-sized temporary)."""
        step = RECOUNT_CHUNK_BLOCKS * PAGEBLOCK_NR_PAGES
        return sum(
            int(np.count_nonzero(self.state[lo : lo + step] == state))
            for lo in range(0, self.nr_pages, step)
        )

    @property
    def tag_delta(self) -> np.ndarray:
        """Content tag offset of every frame (tag = pfn + 1 + delta), moves applied: a dense
        read-only int32 copy, for small zones and tests (change tags with set_content)."""
        return self._tag_offsets().dense()

    @tag_delta.setter
    def tag_delta(self, value: np.ndarray) -> None:
        self._moves, self._moves_pages, self._moves_lo = [], 0, self.nr_blocks
        self._tags = ContentTags(self.nr_pages, value)

    def _tag_offsets(self) -> ContentTags:
        if self._moves:
            self.flush_moves()
        return self._tags

    def moved_tags(self) -> tuple[np.ndarray, np.ndarray]:
        """The frames whose content tag offset is not 0 (ascending pfns) and their offsets
        (int32): the content tags' state, sparse (most pages never move)."""
        return self._tag_offsets().nonzero()

    def set_tag_offsets(self, pfns: np.ndarray, delta: np.ndarray) -> None:
        """Set the content tag offsets of the frames `pfns` (each once), as moved_tags()
        gives them."""
        pfns = np.asarray(pfns, dtype=np.int64)
        # stored as the int32 the offsets are (the value mod 2^32)
        self._tag_offsets().put(pfns, np.asarray(delta).astype(np.int32).astype(np.int64))

    def flush_moves(self) -> None:
        """Apply the queued folio_copy()s to the content tags, in call order."""
        moves = self._moves
        self._moves, self._moves_pages, self._moves_lo = [], 0, self.nr_blocks
        if len(moves) == 1:
            src, dst = moves[0]
        elif moves:
            # one gather/scatter for all: no queued source is a queued target (move_content
            # flushes before a move from a pageblock at or above _moves_lo), and no frame is
            # a target twice (a target stays mapped until the queue is applied)
            src = np.concatenate([m[0] for m in moves])
            dst = np.concatenate([m[1] for m in moves])
        else:
            return
        delta = self._tags.get(src)  # a new array: src's offsets
        delta += src
        delta -= dst
        self._tags.put(dst, delta)

    def content_tag(self, pfns: np.ndarray) -> np.ndarray:
        """Content tag of the pages at `pfns` (0 where the frame holds no page)."""
        pfns = np.asarray(pfns, dtype=np.int64)
        tags = pfns + 1 + self._tag_offsets().get(pfns)
        holds = _holds_content(self.state[pfns])
        return np.where(holds, tags, 0)

    @property
    def tag(self) -> np.ndarray:
        """Dense content tag of every frame (0 = no page); for small zones and checks."""
        return self.content_tag(np.arange(self.nr_pages, dtype=np.int64))

    def set_content(self, pfns: np.ndarray, tags: np.ndarray) -> None:
        """Record that the pages at `pfns` now carry content `tags` (positive)."""
        pfns = np.asarray(pfns, dtype=np.int64)
        self.set_tag_offsets(pfns, np.asarray(tags, dtype=np.int64) - pfns - 1)

    def move_content(
        self, src: np.ndarray, dst: np.ndarray, src_block: int = -1, dst_lo: int = -1
    ) -> None:
        """Copy the content of the pages at `src` to the frames `dst` (folio_copy); queued
        and applied in bulk (flush_moves) before the tags are read or a queued target could
        be a source. `src_block`: the pageblock all of `src` lie in, `dst_lo`: the lowest
        pageblock of `dst`, if the caller knows them."""
        if not len(src):
            return
        top = src_block if src_block >= 0 else int(np.maximum.reduce(src)) >> PAGEBLOCK_ORDER
        if top >= self._moves_lo:
            self.flush_moves()  # a source may be a queued target: apply the queue first
        self._moves.append((src, dst))
        if dst_lo < 0:
            dst_lo = int(np.minimum.reduce(dst)) >> PAGEBLOCK_ORDER
        if dst_lo < self._moves_lo:
            self._moves_lo = dst_lo
        self._moves_pages += len(src)
        if self._moves_pages >= MOVE_FLUSH_PAGES:
            self.flush_moves()

    def recount(self) -> None:
        """Rebuild the free-page accounting from the frame states (after bulk changes of
        ``state``, such as fragmenting or loading a saved zone); empties the pcp list."""
        view = self.state.reshape(self.nr_blocks, PAGEBLOCK_NR_PAGES)
        on_pcp = False
        self._lo_total[:] = 0
        # per chunk of pageblocks: a whole-zone comparison would hold a second copy of the
        # frame states (65 MB at 250 GB) in a temporary; the free mask of a chunk gives its
        # free counts and its order-0..8 counts (_refresh_lo's, without a second pass)
        for lo in range(0, self.nr_blocks, RECOUNT_CHUNK_BLOCKS):
            part = view[lo : lo + RECOUNT_CHUNK_BLOCKS]
            free = part == FREE
            self.nr_free_pb[lo : lo + RECOUNT_CHUNK_BLOCKS] = free.sum(1, dtype=np.int16)
            new = buddy_block_counts(free)[:, :9].astype(np.int16)
            self._lo_counts[lo : lo + RECOUNT_CHUNK_BLOCKS] = new
            self._lo_total += new.sum(0, dtype=np.int64)
            on_pcp = on_pcp or bool((part == PCP).any())
        self._lo_sum = int(self._lo_total.sum())
        self.nr_free = int(self.nr_free_pb.sum(dtype=np.int64))
        full = self.nr_free_pb == PAGEBLOCK_NR_PAGES
        self._nr_full = int(full.sum())
        even = self.nr_blocks // 2 * 2
        self._nr_pairs = int((full[0:even:2] & full[1:even:2]).sum())
        self.drop_scan_caches()
        self._dirty = bytearray(self.nr_blocks)  # every pageblock's counts are exact now
        self._nr_dirty = 0
        if on_pcp:
            raise ValueError("state: frames on a per-CPU list cannot be recounted")
        self.pcp = PerCpuPages(self.pcp.high, self.pcp.batch)

    # -- invariants -------------------------------------------------------------------------
    def check(self) -> None:
        """Verify the zone's invariants; raise AssertionError naming the first one broken."""
        st = self.state
        assert st.shape == (self.nr_pages,) and self._tags.nr_pages == self.nr_pages
        assert int(st.max(initial=0)) < NR_STATES, "unknown frame state"
        free = (st == FREE).reshape(self.nr_blocks, PAGEBLOCK_NR_PAGES).sum(1)
        assert np.array_equal(free, self.nr_free_pb), "per-pageblock free counts out of sync"
        assert int(free.sum()) == self.nr_free, "NR_FREE_PAGES out of sync with the frames"
        full = free == PAGEBLOCK_NR_PAGES
        assert int(full.sum()) == self._nr_full, "count of free pageblocks out of sync"
        pairs = full[0 : self.nr_blocks // 2 * 2 : 2] & full[1 : self.nr_blocks // 2 * 2 : 2]
        assert int(pairs.sum()) == self._nr_pairs, "count of free order-10 blocks out of sync"
        # the free lists (derived) hold exactly the free frames, each once
        counts = self.free_area_counts()
        assert int((counts * (1 << np.arange(NR_ORDERS))).sum()) == self.nr_free, (
            "free lists do not add up to NR_FREE_PAGES"
        )
        blocks = np.arange(self.nr_blocks)
        exact = buddy_block_counts(self.block_free_mask(blocks))[:, :9].sum(0)
        assert np.array_equal(exact, counts[:9]), "cached free-list counts are stale"
        # per-CPU list: exactly the PCP frames, none twice
        pcp = self.pcp.pfns()
        assert len(pcp) == self.pcp.count, "pcp->count out of sync"
        assert _all_distinct(pcp), "a frame is twice on the pcp list"
        assert np.array_equal(np.sort(pcp), np.flatnonzero(st == PCP)), (
            "pcp list does not match the frames in the PCP state"
        )
        # content: only frames that hold a page have a tag, and no tag is held twice
        holds = np.flatnonzero(_holds_content(st))
        tags = holds + 1 + self._tag_offsets().get(holds)
        assert np.all(tags > 0), "a mapped page lost its content tag"
        assert _all_distinct(tags), "a content tag is held by two frames"
