"""The host twin: this machine's zones built from a snapshot, compacted as ``compact_memory``.

``zones_from_snapshot`` turns each populated zone of a :class:`migsim.host.snapshot.Snapshot` into a
:class:`migsim.kernel.zone.Zone` (pfns relative to the zone's MAX_PAGE_ORDER-aligned base, so buddy
alignment is kept): free frames are FREE, the pages the migration scanner isolates are LRU,
every other page is KERNEL (unmovable). ``compact_node`` then runs what
``echo 1 > /proc/sys/vm/compact_memory`` runs (mm/compaction.c: ``sysctl_compaction_handler``
-> ``compact_nodes`` -> ``compact_node``: for each populated zone ``compact_zone`` with
order -1, MIGRATE_SYNC, ``whole_zone``, ``ignore_skip_hint``, no capture control, the scanners
from the zone's two ends until they meet) and returns the /proc/vmstat deltas it predicts.

What the kernel does with each page kind (mm/compaction.c, v6.18), and how the twin follows:

- ``isolate_migratepages``: ``pageblock_pfn_to_page()`` returns NULL for a pageblock with no
  initialised pages (holes, offline or not yet initialised memory): skipped, not counted.
  ``suitable_migration_source()`` -> ``pageblock_skip_persistent()``: a pageblock whose first
  page belongs to a compound page of order >= pageblock_order (a THP, a hugetlb page) is
  skipped, not counted.
- ``isolate_migratepages_block``: a PageBuddy page is stepped over by its order
  (``nr_scanned += (1 << order) - 1``; an order-10 buddy overshoots its pageblock, so the
  count includes the next 512 pfns, which the scanner then scans again); an LRU folio is
  isolated (unevictable ones only with ``compact_unevictable_allowed``: ISOLATE_UNEVICTABLE);
  compound pages of order >= pageblock_order are skipped whole (``skip_isolation_on_order``),
  smaller large folios are isolated whole (the twin isolates their pages as order-0 pages: the
  counters are the same, the COMPACT_CLUSTER_MAX batch boundary can differ by a folio);
  slab, page tables, reserved and other kernel pages fail isolation (``!PageLRU`` and not
  movable_ops) and are only counted as scanned.
- ``isolate_freepages``: ``suitable_migration_target()`` refuses a pageblock whose first page
  is a free buddy of order >= pageblock_order (the lower half of an order-10 block is refused,
  the upper half, whose first page is no buddy head, is scanned and yields nothing) and, as
  ``compact_node`` does not set ``ignore_block_suitable``, every pageblock that is not
  MIGRATE_MOVABLE (the snapshot's estimate); the scan stride starts at 1 (MIGRATE_SYNC),
  doubles after each pageblock that gave no page, up to COMPACT_CLUSTER_MAX, and is 1 again
  after one that did.
- ``isolate_freepages_block``: visits every stride-th pfn; a compound head is stepped over by
  its order, a buddy head is isolated whole (``__isolate_free_page``, ``nr_scanned +=
  isolated - 1``) and the scan stops right after the buddy that makes ``nr_freepages >=
  nr_migratepages``.

Simplifications: migration fails only for lack of a target and for the busy buffer pages of
``zone_from_snapshot`` (a superset of the pages the kernel fails: ``pgmigrate_fail`` is
over-predicted); the order of targets inside cc->freepages (per
order lists since v6.10) is FIFO; of the per-CPU lists the model keeps the one the
compaction frees to, the writer CPU's (``writer_pcp``: twin_run pins itself to one CPU, so
the pages it freed before the snapshot are on that list), and the other tasks' pages on the
lists stay allocated memory to it. Other tasks run between the snapshot and the real
compaction: what they change is not in the snapshot.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from migsim.host import snapshot as S
from migsim.kernel.compaction import (
    M_MIGRATE_FAIL,
    RESULT_NAMES,
    VMSTAT_KEYS,
    W_FREE_ISOLATED,
    W_FREE_SCANNED,
    W_ISOLATED,
    W_MIGRATE_SCANNED,
    CompactControl,
    CompactionLog,
    Compactor,
)
from migsim.kernel.zone import FREE, ISOLATED_FREE, ISOLATED_LRU, KERNEL, LRU, Zone
from migsim.units import MAX_PAGE_ORDER, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER

PB = PAGEBLOCK_NR_PAGES
ALIGN = 1 << MAX_PAGE_ORDER  # zone base alignment: keeps order-10 buddy pairs aligned


@dataclass
class TwinZone:
    """A snapshot zone as a simulator zone: ``pfn = base + zone pfn``; per pageblock whether
    the scanners see it (``valid``) and whether the migration scanner skips it
    (``persistent``: a compound page of at least pageblock order at its first page); per pfn
    the size of the compound folio at its head (``compound``, 0 elsewhere)."""

    name: str
    base: int
    zone: Zone
    valid: np.ndarray
    persistent: np.ndarray
    compound: np.ndarray
    folio_order: np.ndarray  # uint8 per pfn: order of the folio the page belongs to (< 9)
    unsplittable: np.ndarray  # bool per pfn: its large folio cannot be split for a retry
    busy: np.ndarray  # bool per pfn: isolated, but migration fails (see zone_from_snapshot)
    # where the migration targets lie (counted by TwinCompactor.targets, not costed): per
    # pageblock reported by free page reporting at the snapshot and at the twin's early read,
    # per pfn freed by the twin itself (its fill wrote them: memory the host holds)
    reported: np.ndarray | None = None
    reported_before: np.ndarray | None = None
    own: np.ndarray | None = None


def zone_from_snapshot(
    snap: S.Snapshot, zi: S.ZoneInfo, *, unevictable_allowed: bool = True, node_cpus: int = 2
) -> TwinZone:
    """One zone of `snap` as a TwinZone (see the module docstring for the page kinds)."""
    base = zi.start_pfn & ~(ALIGN - 1)
    end = effective_end_pfn(snap, zi)
    n = end - base
    kind = snap.kind[base:end]
    order = snap.order[base:end]
    movable = np.isin(
        kind, (S.LRU_ANON, S.LRU_FILE) + ((S.UNEVICTABLE,) if unevictable_allowed else ())
    )
    # compound pages of pageblock order or more are skipped whole, never isolated
    huge_head = (order >= PAGEBLOCK_ORDER) & (order != S.TAIL)
    in_huge = _spread_heads(huge_head, order, n)
    state = np.full(n, KERNEL, dtype=np.uint8)
    state[movable & ~in_huge] = LRU
    state[kind == S.FREE] = FREE
    # pfns of the base range below the zone start belong to no zone: never free
    state[: zi.start_pfn - base][state[: zi.start_pfn - base] == FREE] = KERNEL
    high, known_on_list = writer_pcp(snap, zi)
    pcp = {"pcp_high": high, "pcp_batch": zi.pcp_batch} if zi.pcp_batch else {}
    zone = Zone(n, node_cpus=node_cpus, state=state, **pcp)
    zone.zone_start_pfn = zi.start_pfn - base
    if zi.wmark_min:  # the machine's watermarks (min_free_kbytes, watermark_scale_factor)
        zone.wmark_min, zone.wmark_low, zone.wmark_high = zi.wmark_min, zi.wmark_low, zi.wmark_high
    b0 = base // PB
    zone.migratetype[:] = snap.block_migratetype[b0 : b0 + n // PB]
    zone.recount()
    if known_on_list and snap.pcp_pfns is not None and len(snap.pcp_pfns):
        # free pages on the writer's per-CPU list: in the zone, blank in kpageflags (KERNEL
        # here); on another CPU's list they stay there (blank, KERNEL) for the whole run
        p = snap.pcp_pfns - base
        p = p[(p >= 0) & (p < n)]
        p = p[zone.state[p] == KERNEL]
        zone.pcp_free(p)
    valid = snap.block_valid[b0 : b0 + n // PB].copy()
    first = order[::PB]
    persistent = (first >= PAGEBLOCK_ORDER) & valid  # a compound head or tail of >= order 9
    compound = np.where(
        (order > 0) & (order != S.TAIL), 1 << np.minimum(order, 20).astype(np.int64), 0
    )
    small = (order > 0) & (order < PAGEBLOCK_ORDER)
    folio_order = _spread_value(small, order, n).astype(np.uint8)
    # split_folio() of a page-cache folio with private data (buffer heads) must release it
    # first (filemap_release_folio), which fails while it is dirty or under writeback
    pf = snap.pflags[base:end] if snap.pflags is not None else np.zeros(n, dtype=np.uint8)
    unsplittable = _unsplittable(order, pf)
    # a page-cache page with buffers whose folio is not uptodate is block-device metadata
    # (buffers read one by one); the journal holds its buffers, so the block device's
    # buffer_migrate_folio_norefs() finds them busy and migration fails after its retries
    # (pgmigrate_fail), the compaction going on. This over-predicts pgmigrate_fail: the
    # kernel fails only the folios whose buffers hold a reference (b_count, checked by
    # __buffer_migrate_folio(check_refs): ext4 keeps its superblock and group-descriptor
    # buffers referenced while mounted, jbd2 the buffers of its transactions), which no /proc
    # file exports; on the 6.18 test VM (ext4) 27,450 pages matched this rule, while real
    # runs failed 33-35 pages (13 of 15 runs; 72 and 97 in the other two). No kpageflags bit
    # separates them: KPF_OWNER_2 (bit 34, KPF_MAPPEDTODISK before PG_mappedtodisk became
    # PG_owner_2) was set on 2 of the machine's 96,589 file LRU pages with PG_private and on
    # none of the 27,450; those are LRU, PG_private, mostly active (27,331), referenced
    # (26,364) and idle (23,964), mapcount 0, like the uptodate ones with buffers
    busy = (
        np.isin(kind, (S.LRU_FILE, S.UNEVICTABLE))
        & ((pf & S.PF_ANON) == 0)
        & ((pf & S.PF_PRIVATE) != 0)
        & ((pf & S.PF_UPTODATE) == 0)
    )
    nb = n // PB
    before = snap.reported_before
    own = np.zeros(n, dtype=bool)
    if snap.freed_pfns is not None:
        f = snap.freed_pfns - base
        own[f[(f >= 0) & (f < n)]] = True
    return TwinZone(
        f"{zi.node}:{zi.name}",
        base,
        zone,
        valid,
        persistent,
        compound,
        folio_order,
        unsplittable,
        busy,
        reported=snap.reported_blocks()[b0 : b0 + nb],
        reported_before=None if before is None else _padded(before[b0 : b0 + nb], nb),
        own=own,
    )


def _padded(a: np.ndarray, n: int) -> np.ndarray:
    """`a` cut or padded with False to length `n`."""
    out = np.zeros(n, dtype=bool)
    out[: min(n, len(a))] = a[:n]
    return out


def writer_pcp(snap: S.Snapshot, zi: S.ZoneInfo) -> tuple[int, bool]:
    """The per-CPU list the compaction frees its sources to: (its high, pages; whether the pages
    the twin freed before the snapshot, ``snap.pcp_pfns``, are on it).

    A page is freed to the list of the CPU the freeing task runs on (mm/page_alloc.c
    ``__free_frozen_pages()`` takes ``zone->per_cpu_pageset`` of this CPU), and only that
    list's oldest pages go to the buddy lists when its count reaches high
    (``free_frozen_page_commit()`` -> ``free_pcppages_bulk()``); ``compact_memory`` drains no
    list (mm/compaction.c ``compact_zone()``: ``lru_add_drain_cpu_zone()`` only for
    ``cc->order > 0``; ``compact_nodes()``: ``lru_add_drain_all()``, the LRU batches only).
    So where the snapshot records the CPU the twin freed on (``meta["free_cpu"]``) and the
    CPU that wrote compact_memory (``meta["writer_cpu"]``; twin_run pins both to one), the
    list is the writer's: zoneinfo's high for that CPU, and the freed pages on it only if they
    were freed there. Pages of other tasks on the writer's list are older than the twin's and
    mostly leave first (the twin's own frees, a region's worth, pushed the older ones out);
    their pfns are unknown (blank in kpageflags), so the twin leaves them out, which hands the
    known pages to the buddy lists when the kernel does (a FIFO list: after f frees the pages
    drained are count + f - high, the older ones first), up to the few other tasks free on
    that CPU after the twin's frees. Without
    those keys (saved raw files, older snapshots): the largest high of the CPUs, and the freed
    pages on the list."""
    writer = snap.meta.get("writer_cpu")
    per = zi.cpu_pcp(int(writer)) if writer is not None else None
    if per is None:
        return zi.pcp_high, True
    return per[1], snap.meta.get("free_cpu") == writer


def _unsplittable(order: np.ndarray, pf: np.ndarray) -> np.ndarray:
    """Per pfn: does it belong to a large folio (order 1..8) that split_folio() cannot split,
    a page-cache folio with private data that is dirty or under writeback (its head's flags)."""
    small = (order > 0) & (order < PAGEBLOCK_ORDER)
    bad = (
        small
        & ((pf & S.PF_ANON) == 0)
        & ((pf & S.PF_PRIVATE) != 0)
        & ((pf & (S.PF_DIRTY | S.PF_WRITEBACK)) != 0)
    )
    return _spread_value(bad, order, len(order)) > 0


def _spread_value(head: np.ndarray, order: np.ndarray, n: int) -> np.ndarray:
    """Per pfn: the order at the head of the folio it belongs to, for the folios whose heads
    are set in `head` (0 elsewhere)."""
    idx = np.flatnonzero(head)
    out = np.zeros(n, dtype=np.int64)
    if len(idx) == 0:
        return out
    size = 1 << order[idx].astype(np.int64)
    pos = np.repeat(idx, size) + _ramp(size)
    ok = pos < n
    out[pos[ok]] = np.repeat(order[idx].astype(np.int64), size)[ok]
    return out


def effective_end_pfn(snap: S.Snapshot, zi: S.ZoneInfo) -> int:
    """The zone end the scanners start from, pageblock aligned: the end of the zone's last
    pageblock with initialised pages. On most machines that is start_pfn + spanned; where memory
    is initialised lazily (deferred struct page init) the kernel's zone ends at the memory
    initialised so far -- mm_compaction_begin shows zone_end there, while /proc/zoneinfo
    reports the final span."""
    b0, b1 = zi.start_pfn // PB, -(-zi.end_pfn // PB)
    valid = np.flatnonzero(snap.block_valid[b0:b1])
    if len(valid) == 0:
        return b1 * PB
    return (b0 + int(valid[-1]) + 1) * PB


def _spread_heads(head: np.ndarray, order: np.ndarray, n: int) -> np.ndarray:
    """Mask of the pfns covered by the compound folios whose heads are set in `head`."""
    idx = np.flatnonzero(head)
    diff = np.zeros(n + 1, dtype=np.int64)
    diff[idx] += 1
    diff[np.minimum(idx + (1 << order[idx].astype(np.int64)), n)] -= 1
    return np.cumsum(diff[:n]) > 0


class TwinCompactor(Compactor):
    """Compactor of a TwinZone for ``compact_memory`` (order -1, MIGRATE_SYNC): the base
    Compactor's control flow with the kernel's treatment of holes, persistent skips, buddy
    overshoot, the free scanner's stride and whole-buddy isolation (module docstring)."""

    def __init__(self, tz: TwinZone, **kw):
        super().__init__(tz.zone, **kw)
        self.tz = tz
        self._src_ok = tz.valid & ~tz.persistent
        self._movable = tz.zone.migratetype == 1
        self.lists = FreeLists()  # cc->freepages[order] (v6.10+)
        self.split_folios = 0  # large folios split to be retried as base pages
        self.enomem = 0  # migrate_pages() calls that ended with -ENOMEM
        self.enomem_pfn = -1  # zone pfn of the (last) folio whose -ENOMEM ended a call
        self.targets = dict.fromkeys(TARGET_KEYS, 0)  # where the targets lie (count_targets)
        self._first_touched: dict[str, set[int]] = {"reported": set(), "once_reported": set()}

    def compact_zone(self, cc: CompactControl, capc) -> int:
        """The base compact_zone(), keeping `cc` (the scanners where it ended) and the
        result (``self.cc``, ``self.result``) for the comparison with mm_compaction_end."""
        self.cc = cc
        self.result = super().compact_zone(cc, capc)
        return self.result

    # -- migration scanner ---------------------------------------------------------------
    def _source_ok(self, cc: CompactControl, b: int) -> bool:
        return bool(self._src_ok[b]) and super()._source_ok(cc, b)

    def _suitable_source(self, cc: CompactControl, blocks: np.ndarray) -> np.ndarray:
        return self._src_ok[blocks] & super()._suitable_source(cc, blocks)

    def isolate_migratepages_block(self, cc: CompactControl, low_pfn: int, end_pfn: int) -> None:
        """The base scan, plus two things the kernel does: an order-10 buddy at the pageblock
        start counts ``nr_scanned += (1 << 10) - 1``, 512 pfns past the pageblock end; a large
        folio is isolated whole (``nr_isolated += folio_nr_pages()``), so a batch that stops
        inside one takes the rest of it."""
        z = self.zone
        b = low_pfn >> PAGEBLOCK_ORDER
        over = not (low_pfn & (PB - 1)) and self._order10_head(b)
        n0 = len(cc.migratepages)
        super().isolate_migratepages_block(cc, low_pfn, end_pfn)
        if over:
            cc.total_migrate_scanned += PB
            self._acc[W_MIGRATE_SCANNED] += PB
        if len(cc.migratepages) > n0:
            last = int(cc.migratepages[-1][-1])
            k = int(self.tz.folio_order[last])
            tail_end = (last & ~((1 << k) - 1)) + (1 << k)
            if k and tail_end > last + 1:
                rest = np.arange(last + 1, min(tail_end, end_pfn), dtype=np.int64)
                rest = rest[z.state[rest] == LRU]
                z.state[rest] = ISOLATED_LRU
                cc.migratepages.append(rest)
                cc.nr_migratepages += len(rest)
                self.vmstat["compact_isolated"] += len(rest)
                self._acc[W_ISOLATED] += len(rest)
                extra = min(tail_end, end_pfn) - cc.migrate_pfn
                if extra > 0:
                    cc.total_migrate_scanned += extra
                    self._acc[W_MIGRATE_SCANNED] += extra
                    cc.migrate_pfn = min(tail_end, end_pfn)

    def _order10_head(self, b: int) -> bool:
        z = self.zone
        return (
            b % 2 == 0
            and b + 1 < z.nr_blocks
            and int(z.nr_free_pb[b]) == PB
            and int(z.nr_free_pb[b + 1]) == PB
        )

    # -- free scanner ----------------------------------------------------------------------
    def _target_mask(self, cc: CompactControl, lo: int, hi: int) -> np.ndarray:
        """suitable_migration_target() and pageblock_pfn_to_page() for pageblocks [lo, hi]:
        a valid MOVABLE pageblock whose first page is no free buddy of order >= 9 (the upper
        half of a free order-10 block is scanned, its first page being no buddy head)."""
        z = self.zone
        full = z.nr_free_pb == PB
        idx = np.arange(lo, hi + 1)
        buddy = np.where(idx % 2 == 0, idx + 1, idx - 1)
        pair = full[np.minimum(buddy, z.nr_blocks - 1)] & (buddy < z.nr_blocks)
        head9 = full[idx] & ((idx % 2 == 0) | ~pair)  # first page: a buddy of order >= 9
        return self.tz.valid[idx] & self._movable[idx] & ~head9

    def _target_ok(self, cc: CompactControl, b: int) -> bool:
        return bool(self._target_mask(cc, b, b)[0])

    def isolate_freepages_block(
        self, cc: CompactControl, start: int, end: int, stride: int = 1
    ) -> int:
        """isolate_freepages_block(strict=false) of [start, end) with `stride` (the base
        Compactor's isolate_freepages() loop calls it); returns the pfn where the scan
        stopped."""
        z = self.zone
        bstart = start & ~(PB - 1)
        size = _buddy_head_sizes(z.state[bstart : bstart + PB] == FREE)[
            start - bstart : end - bstart
        ]
        comp = self.tz.compound[start:end]
        jump = np.maximum(np.maximum(size, comp), 1)
        n = end - start
        if stride == 1:
            diff = np.zeros(n + 1, dtype=np.int64)
            heads = np.flatnonzero(jump > 1)
            diff[heads + 1] += 1
            diff[np.minimum(heads + jump[heads], n)] -= 1
            visited = np.flatnonzero(np.cumsum(diff[:n]) == 0)
        else:
            vis = []
            p = 0
            while p < n:
                vis.append(p)
                p += int(jump[p]) - 1 + stride
            visited = np.array(vis, dtype=np.int64)
        bh = visited[size[visited] > 0]
        need = cc.nr_migratepages - cc.nr_freepages
        cum = np.cumsum(size[bh])
        k = int(np.searchsorted(cum, need)) if need > 0 else 0
        # __isolate_free_page(): zone_watermark_ok(zone, 0, min + (1 << order)) as if the
        # page were allocated; the first buddy that would take NR_FREE_PAGES to the min
        # watermark fails, and the scan stops at it
        low = np.flatnonzero(z.nr_free - cum <= z.wmark_min)
        f = int(low[0]) if len(low) else len(bh)
        if k < len(bh) and k < f:  # enough after buddy k: stop right after it
            bh = bh[: k + 1]
            stop = int(bh[-1] + size[bh[-1]])
            scanned = int(jump[visited[visited <= bh[-1]]].sum())
        elif f < len(bh):  # the watermark check failed at buddy f
            stop = int(bh[f])
            scanned = int(jump[visited[visited < stop]].sum()) + 1
            bh = bh[:f]
        else:
            stop = n
            scanned = int(jump[visited].sum())
        cc.total_free_scanned += scanned
        self._acc[W_FREE_SCANNED] += scanned
        nr = int(size[bh].sum())
        if nr:
            pfns = (np.repeat(bh, size[bh]) + _ramp(size[bh])) + start
            z.state[pfns] = ISOLATED_FREE
            z._account(pfns, -1, bstart >> PAGEBLOCK_ORDER)
            self.lists.add(bh + start, size[bh])  # list_add_tail(&page->lru, &freelist[order])
            cc.nr_freepages += nr
            self.vmstat["compact_isolated"] += nr
            self._acc[W_FREE_ISOLATED] += nr
        return start + min(stop, n)

    # -- migrate_pages with compaction_alloc ---------------------------------------------------
    def _alloc(self, cc: CompactControl, order: int, count: int) -> np.ndarray:
        """compaction_alloc() for `count` folios of `order` (stops at the first NULL): the
        first pfn of each target handed out; isolate_freepages() once more when the lists
        cannot serve."""
        out = self.lists.take(order, count)
        if len(out) < count:
            self.isolate_freepages(cc)
            out = np.concatenate([out, self.lists.take(order, count - len(out))])
        got = len(out) << order
        cc.nr_freepages -= got
        cc.nr_migratepages -= got
        return out

    def migrate_pages(self, cc: CompactControl) -> int:
        """migrate_pages(&cc->migratepages, compaction_alloc, ..., MIGRATE_SYNC) by folio, the
        list walked from its head (the last isolated folio first). A folio of order k takes a
        target of order k from cc->freepages[k..] (split if larger). Without one, a large
        folio is split and its pages retried after the list (try_split_folio); one that cannot
        be split (a dirty page-cache folio with private data), or a base page without a
        target, ends the call with -ENOMEM: the folios that got targets still move, the rest
        go back to the LRU (and compact_zone() gives up on the zone: COMPACT_CONTENDED)."""
        z = self.zone
        src = cc.migratepages[0] if len(cc.migratepages) == 1 else np.concatenate(cc.migratepages)
        src = src[::-1]
        cc.migratepages = []
        busy = self.tz.busy[src]
        busy_pages = src[busy]
        src = src[~busy]
        fo = self.tz.folio_order[src].astype(np.int64)
        head = src & ~((1 << fo) - 1)
        first = np.concatenate(([True], head[1:] != head[:-1]))[: len(src)]
        heads, orders = head[first], fo[first]
        ok: list[tuple[np.ndarray, np.ndarray, int]] = []  # (source heads, targets, pages)
        retry: list[int] = []
        failed_pages = 0
        spans = _runs(orders)
        pos = 0
        enomem = False
        while pos < len(spans) and not enomem:
            a, b, k = spans[pos]
            pos += 1
            starts = self._alloc(cc, k, b - a)
            served = len(starts)
            if served:
                ok.append((heads[a : a + served], starts, 1 << k))
            if served < b - a:  # compaction_alloc() returned NULL for folio a + served
                h = int(heads[a + served])
                if k > 0 and not self.tz.unsplittable[h]:
                    self.split_folios += 1
                    retry.extend(range(h, h + (1 << k)))
                    rest = [(a + served + 1, b, k)] if a + served + 1 < b else []
                    spans[pos:pos] = rest
                else:
                    failed_pages += 1 << k
                    enomem = True
                    self.enomem_pfn = h
            if pos == len(spans) and retry and not enomem:
                r = np.array(retry, dtype=np.int64)
                retry = []
                heads = np.concatenate([heads, r])
                spans.append((len(heads) - len(r), len(heads), 0))
        if ok:
            moved = np.concatenate([(h[:, None] + np.arange(u)).ravel() for h, _, u in ok])
            dst = np.concatenate([(d[:, None] + np.arange(u)).ravel() for _, d, u in ok])
        else:
            moved = dst = np.zeros(0, dtype=np.int64)
        back = np.setdiff1d(src, moved, assume_unique=True)
        if len(busy_pages):
            back = np.concatenate([back, busy_pages])
            failed_pages += len(busy_pages)
        m = len(moved)
        if m:
            self.count_targets(dst)
            z.move_content(moved, dst)
            z.state[dst] = LRU
            z.pcp_free(moved, int(moved[0]) >> PAGEBLOCK_ORDER)
        if len(back):
            z.state[back] = LRU  # putback_movable_pages
            self._mark(M_MIGRATE_FAIL, len(back))
        cc.nr_migratepages = 0
        cc.freepages = [self.lists.pfns()] if self.lists.nr else []
        self.vmstat["pgmigrate_success"] += m
        self.vmstat["pgmigrate_fail"] += failed_pages
        self._log_call(m)
        if enomem:
            self.enomem += 1
        return len(back) if enomem else 0

    def count_targets(self, dst: np.ndarray) -> None:
        """Count where the targets `dst` (zone pfns) of one migrate_pages() call lie: in a
        pageblock free page reporting had reported at the snapshot (``reported``; 0 in a
        compact_memory: suitable_migration_target() refuses a pageblock whose first page is a
        free buddy of order >= pageblock_order, which every reported block of order >= 9 is),
        and, of the targets the twin did not free itself (``foreign``), those in a pageblock
        reported at the early read (``once_reported``: the block was split since, by other
        tasks' allocations, so the host may still hold none of its memory); with the distinct
        pageblocks first written, the 2 MiB host pages a first write faults in."""
        tz, t = self.tz, self.targets
        pb = dst >> PAGEBLOCK_ORDER
        t["targets"] += len(dst)
        foreign = ~tz.own[dst] if tz.own is not None else np.ones(len(dst), dtype=bool)
        t["foreign"] += int(foreign.sum())
        for key, mask in (
            ("reported", tz.reported),
            ("once_reported", tz.reported_before),
        ):
            if mask is None:
                continue
            hit = mask[pb] & foreign if key == "once_reported" else mask[pb]
            t[key] += int(hit.sum())
            self._first_touched[key].update(np.unique(pb[hit]).tolist())
            t[f"{key}_blocks"] = len(self._first_touched[key])


# TwinCompactor.targets: migration targets in all, not freed by the twin, in a reported
# pageblock at the snapshot, in one reported at the early read (and not the twin's); the
# distinct pageblocks of the last two
TARGET_KEYS = (
    "targets",
    "foreign",
    "reported",
    "reported_blocks",
    "once_reported",
    "once_reported_blocks",
)


def _runs(orders: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, end, order) of the runs of equal folio order in list order."""
    if len(orders) == 0:
        return []
    cut = np.flatnonzero(orders[1:] != orders[:-1]) + 1
    starts = np.concatenate(([0], cut))
    ends = np.concatenate((cut, [len(orders)]))
    return [(int(a), int(b), int(orders[a])) for a, b in zip(starts, ends, strict=True)]


class FreeLists:
    """cc->freepages[order]: the isolated free blocks by order, FIFO (list_add_tail when
    isolated); a larger block taken for a smaller request is split as compaction_alloc()
    does, the rest going to the head of the lower lists (list_add). Each list is a Python list
    read from a moving index (the tail part) and a stack of blocks put at its head."""

    def __init__(self) -> None:
        n = MAX_PAGE_ORDER + 1
        self.main: list[list[int]] = [[] for _ in range(n)]
        self.pos = [0] * n
        self.front: list[list[int]] = [[] for _ in range(n)]  # last element = list head
        self.nr = 0

    def _len(self, o: int) -> int:
        return len(self.front[o]) + len(self.main[o]) - self.pos[o]

    def _pop(self, o: int, t: int) -> list[int]:
        """The first `t` blocks of list `o`, head first."""
        out = []
        f = self.front[o]
        while f and len(out) < t:
            out.append(f.pop())
        k = t - len(out)
        if k:
            p = self.pos[o]
            out += self.main[o][p : p + k]
            self.pos[o] = p + k
            if self.pos[o] > 4096 and self.pos[o] * 2 > len(self.main[o]):
                del self.main[o][: self.pos[o]]
                self.pos[o] = 0
        return out

    def add(self, pfns: np.ndarray, sizes: np.ndarray) -> None:
        """Blocks at `pfns` of `sizes` pages (powers of two), appended at the list tails."""
        orders = np.log2(sizes).astype(np.int64)
        if len(set(orders.tolist())) == 1:
            self.main[int(orders[0])].extend(pfns.tolist())
        else:
            for p, o in zip(pfns.tolist(), orders.tolist(), strict=True):
                self.main[o].append(p)
        self.nr += int(sizes.sum())

    def take(self, order: int, count: int) -> np.ndarray:
        """Up to `count` targets of `order` (their first pfns), smallest order first; a
        block of a larger order is split and used from its start."""
        out: list[np.ndarray] = []
        need = count
        unit = 1 << order
        while need > 0:
            j = next((o for o in range(order, MAX_PAGE_ORDER + 1) if self._len(o)), -1)
            if j < 0:
                break
            if j == order:
                t = min(need, self._len(j))
                out.append(np.array(self._pop(j, t), dtype=np.int64))
                self.nr -= t * unit
                need -= t
                continue
            pfn = self._pop(j, 1)[0]
            size = 1 << j
            t = min(need, size // unit)
            out.append(pfn + np.arange(t, dtype=np.int64) * unit)
            self.nr -= size
            # the rest of the block, [pfn + t*unit, pfn + size), back as aligned blocks
            lo, hi = pfn + t * unit, pfn + size
            while lo < hi:
                o = min((lo & -lo).bit_length() - 1, (hi - lo).bit_length() - 1)
                self.front[o].append(lo)
                self.nr += 1 << o
                lo += 1 << o
            need -= t
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def pfns(self) -> np.ndarray:
        """Every free page still on the lists."""
        parts = [
            np.arange(p, p + (1 << o))
            for o in range(MAX_PAGE_ORDER + 1)
            for p in self.front[o] + self.main[o][self.pos[o] :]
        ]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _ramp(sizes: np.ndarray) -> np.ndarray:
    """0..s-1 for each s of `sizes`, concatenated."""
    total = int(sizes.sum())
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.arange(total, dtype=np.int64) - starts


def _buddy_head_sizes(free: np.ndarray) -> np.ndarray:
    """Per pfn of one pageblock's free mask: the size of the maximal aligned free buddy block
    that starts there (0 elsewhere); a wholly free pageblock has no head below order 9."""
    n = len(free)
    out = np.zeros(n, dtype=np.int64)
    if free.all():
        return out
    taken = np.zeros(n, dtype=bool)
    for order in range(PAGEBLOCK_ORDER - 1, -1, -1):
        s = 1 << order
        grp = free.reshape(-1, s).all(1) & ~taken.reshape(-1, s).any(1)
        idx = np.flatnonzero(grp) * s
        out[idx] = s
        taken.reshape(-1, s)[grp] = True
    return out


@dataclass
class NodeCompaction:
    """What compact_node() did: /proc/vmstat deltas summed over the zones, and per zone the
    work log of its migrate_pages() calls (for costing) and its counters."""

    vmstat: dict[str, int]
    zones: dict[str, dict[str, int]] = field(default_factory=dict)
    logs: dict[str, CompactionLog] = field(default_factory=dict)
    # per zone how compact_zone() ended, as mm_compaction_end reports it (machine pfns)
    ends: dict[str, dict] = field(default_factory=dict)
    # where the targets lay, summed over the zones (TwinCompactor.targets, TARGET_KEYS)
    targets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TARGET_KEYS, 0))

    @property
    def call_pages(self) -> np.ndarray:
        """Pages migrated by each migrate_pages() call, in call order over the zones."""
        parts = [lg.pages for lg in self.logs.values()]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def compact_node(snap: S.Snapshot, *, unevictable_allowed: bool | None = None) -> NodeCompaction:
    """compact_node() for every node of `snap`: compact_zone() of each populated zone with
    order -1, MIGRATE_SYNC, whole zone, skip hints ignored, no capture; returns the counters.
    `unevictable_allowed` defaults to the snapshot's compact_unevictable_allowed (1 if not
    recorded, the kernel default)."""
    if unevictable_allowed is None:
        unevictable_allowed = (
            snap.meta.get("settings", {}).get("compact_unevictable_allowed", "1") != "0"
        )
    total = dict.fromkeys(VMSTAT_KEYS, 0)
    out = NodeCompaction(total)
    for zi in snap.zones:
        tz = zone_from_snapshot(snap, zi, unevictable_allowed=unevictable_allowed)
        comp = TwinCompactor(tz)
        comp.compact_memory()
        tz.zone.drain_pages()
        out.zones[tz.name] = dict(comp.vmstat)
        # where the zone ended with -ENOMEM (COMPACT_CONTENDED), machine pfn; -1: it did not
        out.zones[tz.name]["enomem_pfn"] = comp.enomem_pfn + tz.base if comp.enomem else -1
        out.logs[tz.name] = comp.log()
        out.ends[tz.name] = {
            "zone_start": zi.start_pfn,
            "migrate_pfn": comp.cc.migrate_pfn + tz.base,
            "free_pfn": comp.cc.free_pfn + tz.base,
            "status": RESULT_NAMES[comp.result],
        }
        for k, v in comp.vmstat.items():
            total[k] += v
        for k, v in comp.targets.items():
            out.targets[k] += v
    return out


def predict_cost(nc: NodeCompaction, platform) -> dict[str, float]:
    """Seconds the compacting task spends, costing every zone's log on `platform`
    (``studies.compaction.cost_log``, CPU copy, idle machine): ``seconds`` in all, of which
    ``scan_seconds`` the two scanners' per-pfn costs and ``other_seconds`` the rest (isolation,
    buddy frees, migrate_pages: unmap, flush, copy, move)."""
    from migsim.studies.compaction import cost_log

    c = platform.compaction
    total = scan = 0.0
    for lg in nc.logs.values():
        total += cost_log(lg, platform, dma=False, busy=False).timeline.wall_s
        counts = lg.work.sum(0) + lg.tail
        scan += 1e-6 * (
            counts[W_MIGRATE_SCANNED] * c.migrate_scan_pfn_us
            + counts[W_FREE_SCANNED] * c.free_scan_pfn_us
        )
    return {"seconds": total, "scan_seconds": float(scan), "other_seconds": float(total - scan)}


def predict_seconds(nc: NodeCompaction, platform) -> float:
    """predict_cost()'s total, seconds."""
    return predict_cost(nc, platform)["seconds"]


# ----------------------------------------------------------------------------------------------
# The twin run on this machine (root): fragment, snapshot, compact for real, predict.
# ----------------------------------------------------------------------------------------------

TRACEFS = Path("/sys/kernel/tracing")
MIGRATE_EVENT = TRACEFS / "events" / "migrate" / "mm_migrate_pages"
ALLOC_KEYS = ("pgalloc_dma", "pgalloc_dma32", "pgalloc_normal", "pgalloc_movable")
TWIN_OVERHEAD = 512 << 20  # bytes the twin holds besides the region (buffers, snapshot, zones)
# the tracepoints a twin run records (include/trace/events/{migrate,compaction}.h): per call
# of migrate_pages, per zone the scanners at compact_zone()'s start and end with its status,
# and whatever other compaction ran meanwhile (kcompactd, direct compaction, deferrals); not
# the per-pageblock isolate_* events (thousands per zone)
TWIN_EVENTS = (
    "migrate/mm_migrate_pages",
    "compaction/mm_compaction_begin",
    "compaction/mm_compaction_end",
    "compaction/mm_compaction_migratepages",
    "compaction/mm_compaction_try_to_compact_pages",
    "compaction/mm_compaction_deferred",
    "compaction/mm_compaction_defer_compaction",
    "compaction/mm_compaction_defer_reset",
    "compaction/mm_compaction_wakeup_kcompactd",
    "compaction/mm_compaction_kcompactd_wake",
)


def memory_limit(size: int) -> int:
    """Bytes a twin run of a `size` region may hold at most: the region plus TWIN_OVERHEAD."""
    return size + TWIN_OVERHEAD


class TraceGuard:
    """Record TWIN_EVENTS around the real compaction: mount tracefs if it is not mounted (and
    unmount it after), set the ring buffer to 16 MiB per CPU, enable the events, and restore
    each event's enable flag, the buffer size and tracing_on as found, also on error or signal
    (restore() runs in __exit__). Unavailable (not root, no tracefs in this kernel, the
    mount fails): ``available`` is False and nothing is touched."""

    def __init__(self, root: Path = TRACEFS) -> None:
        from migsim.host import tracefs

        self.root = root
        self._mounted_here = False
        self._saved: list[tuple[Path, str]] = []
        try:
            tracefs.check_available(root)
            self.available = True
        except tracefs.TraceUnavailable:
            self.available = False
        import threading

        self.pid = threading.get_native_id()  # the writer's tid in the trace lines

    def _set(self, path: Path, value: str) -> None:
        from migsim.host import tracefs

        text = path.read_text()
        # buffer_size_kb reads "7 (expanded: N)" before first use; an enable "0*" when
        # soft-disabled (written back as "0")
        old = tracefs._buffer_kb(text) if path.name == "buffer_size_kb" else text.strip()[:1]
        self._saved.append((path, old))
        path.write_text(value)

    def __enter__(self) -> TraceGuard:
        from migsim.host import tracefs

        if not self.available:
            return self
        try:
            if not tracefs.is_mounted(self.root):
                tracefs.mount(self.root)
                self._mounted_here = True
            self._set(self.root / "tracing_on", "0")
            self._set(self.root / "buffer_size_kb", "16384")
            (self.root / "trace").write_text("")
            for ev in TWIN_EVENTS:
                p = self.root / "events" / ev / "enable"
                if p.exists():
                    self._set(p, "1")
            self._set(self.root / "tracing_on", "1")
        except tracefs.TraceUnavailable:
            self.restore()
            self.available = False
        except BaseException:
            self.restore()
            raise
        return self

    def restore(self) -> None:
        """Put back what __enter__ changed (in reverse order); unmount what it mounted."""
        from migsim.host import tracefs

        try:
            for path, value in reversed(self._saved):
                path.write_text(value)
        finally:
            self._saved.clear()
            if self._mounted_here:
                self._mounted_here = False
                if msg := tracefs.unmount(self.root):
                    raise RuntimeError(f"could not unmount tracefs at {self.root}: {msg}")

    def __exit__(self, *exc) -> None:
        self.restore()

    def read(self) -> dict:
        """What the ring buffer holds, parsed (and the buffer cleared): ``calls``, nr_succeeded
        of every mm_migrate_pages event with reason=compaction of this task, in order;
        ``zones``, per compact_zone() of this task its mm_compaction_begin and _end (machine
        pfns, status); ``other``, the events of other tasks, counted by "task: event";
        ``lost``, events the buffer dropped. Empty where tracing is unavailable."""
        if not self.available:
            return {"calls": [], "failed": [], "call_s": [], "zones": [], "other": {}, "lost": 0,
                    "cpus": [], "traced": False}  # fmt: skip
        from migsim.host import tracefs

        text = (self.root / "trace").read_text(errors="replace")
        lost = tracefs._lost_events(self.root)
        (self.root / "trace").write_text("")
        return {**parse_twin_trace(text, self.pid), "lost": lost, "traced": True}

    def pages_per_call(self) -> list[int]:
        """read()'s ``calls``."""
        return self.read()["calls"]


def parse_twin_trace(text: str, pid: int) -> dict:
    """The twin's view of a tracefs ``trace`` text (TraceGuard.read): the compaction calls and
    zones of task `pid` (the writer of compact_memory), and the other tasks' events."""
    from migsim.formats.trace import _MIGRATE, _SCANNERS, _TRACEFS

    calls: list[int] = []
    failed: list[int] = []
    call_s: list[float] = []  # the trace clock at each call's end (mm_migrate_pages), seconds
    zones: list[dict] = []
    other: dict[str, int] = {}
    cpus: set[int] = set()  # the CPUs the writer's events ran on
    for line in text.splitlines():
        m = _TRACEFS.match(line)
        if m is None:
            continue
        event, fields = m.group("event"), m.group("fields")
        if int(m.group("pid")) != pid:
            key = f"{m.group('task').strip()}: {event}"
            other[key] = other.get(key, 0) + 1
            continue
        cpus.add(int(m.group("cpu")))
        if event == "mm_migrate_pages" and (mm := _MIGRATE.match(fields)):
            if mm.group(8) == "compaction":
                calls.append(int(mm.group(1)))
                failed.append(int(mm.group(2)))
                call_s.append(float(m.group("ts")))
        elif event in ("mm_compaction_begin", "mm_compaction_end") and (
            mm := _SCANNERS.match(fields)
        ):
            zs, mig, free, ze = (int(mm.group(i), 16) for i in range(1, 5))
            if event.endswith("begin"):
                zones.append({"zone_start": zs, "zone_end": ze, "begin_migrate_pfn": mig,
                              "begin_free_pfn": free, "begin_s": float(m.group("ts")),
                              "first_call": len(calls)})  # fmt: skip
            elif zones and zones[-1]["zone_start"] == zs and "status" not in zones[-1]:
                zones[-1].update(
                    migrate_pfn=mig, free_pfn=free, status=mm.group(6),
                    end_s=float(m.group("ts")), calls=len(calls) - zones[-1]["first_call"],
                    last_call_failed=failed[-1] if len(calls) > zones[-1]["first_call"] else 0,
                )  # fmt: skip
    return {"calls": calls, "failed": failed, "call_s": call_s, "zones": zones, "other": other,
            "cpus": sorted(cpus)}  # fmt: skip


# What a twin run is held to (the tolerances): per counter, the relative error allowed
# and the absolute one that applies when it is larger (small counts)
TOLERANCE = {
    "pgmigrate_success": (0.15, 1000),
    "compact_migrate_scanned": (0.15, 1000),
    "compact_free_scanned": (0.15, 1000),
    "compact_isolated": (0.20, 0),
}
# The drift rule (fixed before any run was judged by it): a run is discarded when the
# predictions from two snapshots read back to back just before the trigger differ, in any
# counter of TOLERANCE, by more than DRIFT_REL of the later one's value (and by more than
# DRIFT_ABS pages): memory then moves, within one read time, by amounts that change what the
# compaction does, so the snapshot cannot stand for the state the scanners will find.
# DRIFT_REL is a third of the smallest tolerance.
DRIFT_REL = 0.05
DRIFT_ABS = 300
MAX_ATTEMPTS_PER_RUN = 3  # host_twin() gives up after runs * this many attempts


def misses(measured: dict, predicted: dict) -> list[str]:
    """The counters of TOLERANCE for which `predicted` is off `measured` by more than allowed
    (empty: the run is predicted)."""
    out = []
    for key, (rel, absolute) in TOLERANCE.items():
        m, p = measured[key], predicted[key]
        if abs(p - m) > max(rel * m, absolute):
            out.append(
                f"{key} measured {m:,} predicted {p:,} ({(p / m - 1) * 100 if m else 0:+.1f}%)"
            )
    return out


def drift_reasons(first: dict, last: dict) -> list[str]:
    """Why two predictions of back-to-back snapshots (`first` read before `last`) show drift
    (empty: none over the DRIFT_REL / DRIFT_ABS threshold)."""
    out = []
    for key in TOLERANCE:
        a, b = first[key], last[key]
        if abs(a - b) > max(DRIFT_REL * b, DRIFT_ABS):
            out.append(
                f"{key} {a:,} from the first snapshot, {b:,} from the second "
                f"({(a / b - 1) * 100 if b else 0:+.1f}%)"
            )
    return out


# The trace rule (fixed, like the drift rule, before any run was judged by it, and before any
# early-stopped run had been traced): a run is discarded, with its reason, when the trace of
# the real compaction shows something the snapshot cannot hold:
# - a zone the real compact_zone() ended with status=contended (compact_zone(): migrate_pages()
#   returned -ENOMEM before the scanners met: a folio without a target that could not be
#   split; or isolate_migratepages() aborted, too_many_isolated() with pages on the list --
#   MIGRATE_SYNC sets cc->contended only on a fatal signal, and there is none) while the
#   twin, from the snapshot, ran the same zone until its scanners met (status=complete), and
#   the snapshot holds no folio the twin cannot split in the pageblock where the real zone
#   stopped (stop_context): what stopped it is not in the snapshot -- another task took a
#   reference to the folio, dirtied it or allocated it after the read, or its buffers were
#   held (split_folio() must release a page-cache folio's buffer heads first,
#   filemap_release_folio(), which fails while one is busy: b_count, which no /proc file
#   exports; the same blind spot as the "busy" rule of zone_from_snapshot). Where the snapshot
#   does hold one there, the twin could have stopped too (it did not because its free lists
#   had a target of that order at that moment): the run is kept and judged. (This last clause
#   was added after the first traced stop, seed 121, before any run was judged by the rule:
#   it makes the rule discard fewer runs.)
# - another task's compact_zone() (mm_compaction_begin of kcompactd or of a direct compaction)
#   while the snapshots were read or the real compaction ran: the model runs one compaction.
# It reads the trace's statuses and tasks and the twin's status, never the measured or
# predicted counters. Where the trace is unavailable or lost events it is not applied.


def trace_reasons(run: dict) -> list[str]:
    """Why the trace of `run` (twin_run()'s ``zones`` and ``trace``) says the real compaction
    did what no snapshot can predict (the trace rule above; empty: nothing)."""
    tr = run.get("trace") or {}
    if not tr.get("traced") or tr.get("lost"):
        return []
    out = []
    predicted = {z["zone_start"]: (name, z) for name, z in run["zones"]["predicted"].items()}
    for m in run["zones"]["measured"]:
        name, p = predicted.get(m["zone_start"], (hex(m["zone_start"]), None))
        held = run.get("stop_context", {}).get(f"{m['zone_start']:#x}", {})
        if held.get("unsplittable_pages"):
            continue  # the snapshot holds a folio there that can end the twin's zone: judged
        if m.get("status") == "contended" and p is not None and p["status"] == "complete":
            out.append(
                f"zone {name} ended contended at migrate_pfn {m['migrate_pfn']:#x} after "
                f"{m['calls']} calls (the last failed {m['last_call_failed']} pages); the twin's "
                f"ran until its scanners met at {p['migrate_pfn']:#x}"
            )
    others = {k: v for k, v in tr.get("other", {}).items() if k.endswith(": mm_compaction_begin")}
    if others:
        out.append(
            "other tasks compacted meanwhile: " + ", ".join(f"{k} x{v}" for k, v in others.items())
        )
    return out


def stop_note(run: dict) -> str:
    """Where each zone of `run` that the real compaction ended contended stopped, and what the
    snapshot held there (stop_context), as text for the progress line ('' if none)."""
    tr = run.get("trace") or {}
    out = "" if tr.get("traced") else "; not traced (the trace rule not applied)"
    if tr.get("lost"):
        out += f"; the trace lost {tr['lost']} events (the trace rule not applied)"
    for z in run["zones"]["measured"]:
        if z.get("status") == "contended":
            held = run["stop_context"].get(f"{z['zone_start']:#x}")
            out += (
                f"; real zone {z['zone_start']:#x} ended contended at migrate_pfn "
                f"{z['migrate_pfn']:#x} after {z['calls']} calls (the last failed "
                f"{z['last_call_failed']} pages), the snapshot there: {held}"
            )
    return out


def stop_context(snap: S.Snapshot, pfn: int) -> dict:
    """What the snapshot held in the pageblock where a real zone stopped (the one holding
    `pfn` - 1, the migration scanner's end): pages by kind, pages of large folios, and the
    page-cache pages dirty, under writeback or with private data."""
    lo = ((pfn - 1) // PB) * PB
    kind, order = snap.kind[lo : lo + PB], snap.order[lo : lo + PB]
    pf = snap.pflags[lo : lo + PB] if snap.pflags is not None else np.zeros(PB, dtype=np.uint8)
    file = kind == S.LRU_FILE
    return {
        "pageblock_pfn": lo,
        **{S.KINDS[k]: int((kind == k).sum()) for k in np.unique(kind).tolist()},
        "large_folio_pages": int(((order > 0) & (kind != S.FREE)).sum()),
        "file_dirty": int((file & ((pf & S.PF_DIRTY) != 0)).sum()),
        "file_writeback": int((file & ((pf & S.PF_WRITEBACK) != 0)).sum()),
        "file_private": int((file & ((pf & S.PF_PRIVATE) != 0)).sum()),
        # pages of folios the twin cannot split there (zone_from_snapshot's `unsplittable`):
        # a folio of these that gets no target ends the twin's zone too
        "unsplittable_pages": int(_unsplittable(order, pf).sum()),
    }


def twin_run(
    size: int,
    ratio: float,
    seed: int,
    platform,
    *,
    pattern: str = "even",
    raw_dir: str | None = None,
) -> dict:
    """One twin run (root; call inside the probe's settings and interrupt guards): settle,
    fragment a `size` region as the compaction probe does, write back dirty page cache
    (``sync``), read the snapshot files twice back to back, run the real compact_memory right
    after the second read (the write under SCHED_FIFO, ``probe.realtime``, timed in wall and
    in the writing thread's CPU seconds; TWIN_EVENTS traced where tracefs can be mounted,
    TraceGuard), then predict the same compaction from both snapshots. The prediction is the second's; ``drift`` lists
    where the two differ by more than the drift rule allows (DRIFT_REL): such a run is to be
    discarded, not judged. Returns {"measured", "predicted", "predicted_first", "drift",
    "calls", "snapshot", ...}."""
    from migsim.host import probe

    probe.trigger_compaction()  # settle what other tasks left
    # buffers allocated and faulted in before the region: the reads allocate nothing
    early, first, reader = S.RawReader(), S.RawReader(), S.RawReader()
    # which free blocks free page reporting has reported before the region's faults: the
    # pageblocks other tasks split after this read hold memory the host may have discarded
    # (counted, not costed: TwinCompactor.count_targets)
    early.read()
    # one CPU from the region's faults to the write: the freed pages and the compaction's
    # frees on one per-CPU list, the one the snapshot's zoneinfo names (writer_pcp)
    with probe.pinned() as cpu, probe.AnonRegion(size) as region:
        region.fill_order0()
        mask = probe.free_mask(pattern, ratio, region.nr_pages // PB, seed)
        freed = region.pfns()[mask.ravel()]  # in the order MADV_DONTNEED frees them
        region.madvise_pages(mask, probe.MADV_DONTNEED)
        # dirty page-cache folios with buffers cannot be split (twin: `unsplittable`): write
        # them back now, so that fewer of the folios around the region stop a zone
        os.sync()
        times: dict = {}
        with TraceGuard() as trace, S.high_priority() as nice:
            a0 = probe.read_vmstat(ALLOC_KEYS)
            first.read()
            reader.read()  # the snapshot: the last thing before the trigger
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            v0 = probe.read_vmstat(VMSTAT_KEYS + ALLOC_KEYS)
            load = os.getloadavg()
            # the write alone under SCHED_FIFO: the reads too would pass sched_rt_runtime_us
            # (950 ms a second) and throttle the write (seen as run delay)
            with probe.realtime() as policy:
                wall = probe.trigger_compaction(times=times)
            v1 = probe.read_vmstat(VMSTAT_KEYS + ALLOC_KEYS)
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            traced = trace.read()
    pinned = {"free_cpu": cpu, "writer_cpu": cpu}
    snap = reader.build(raw_dir, freed=freed, meta=pinned)
    snap.reported_before = S.reported_pageblocks_from_flags(early.flags[: early.read_pfns])
    del early
    t0 = time.perf_counter()
    nc = compact_node(snap)
    predict_s = time.perf_counter() - t0
    first_pred = dict(compact_node(first.build(freed=freed, meta=pinned)).vmstat)
    measured = {k: v1[k] - v0[k] for k in VMSTAT_KEYS}
    drift = sum(v0[k] - a0[k] for k in ALLOC_KEYS)
    measured["seconds"] = wall
    predicted = dict(nc.vmstat)
    predicted.update(predict_cost(nc, platform))
    stops = {
        f"{z['zone_start']:#x}": stop_context(snap, z["migrate_pfn"])
        for z in traced["zones"]
        if z.get("status") == "contended"
    }
    return {
        "measured": measured,
        "predicted": predicted,
        "predicted_first": first_pred,
        "drift": drift_reasons(first_pred, predicted),
        "calls": {
            "measured": traced["calls"],
            "predicted": nc.call_pages.tolist(),
            # per measured call: pages that failed, and the trace clock at its end (seconds)
            "measured_failed": traced["failed"],
            "measured_s": traced["call_s"],
        },
        # per zone, how compact_zone() ended: measured (mm_compaction_end of the writer) and
        # predicted (the twin's status and scanner positions, machine pfns); the other tasks'
        # compaction events during the write
        "zones": {"measured": traced["zones"], "predicted": nc.ends},
        "trace": {k: traced[k] for k in ("traced", "other", "lost")},
        "stop_context": stops,  # per contended zone: the snapshot's pageblock where it stopped
        # where the twin's targets lay (TARGET_KEYS), and the snapshot's reported pageblocks
        "targets": dict(nc.targets),
        "reported_pageblocks": int(snap.reported_blocks().sum()),
        "snapshot": {
            "read_s": snap.meta["read_s"],
            "first_read_s": first.read_s,
            "build_s": snap.meta["build_s"],
            "predict_s": predict_s,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "pcp_pfns": int(snap.meta.get("pcp_pfns", 0)),
        },
        "seed": seed,
        "cpu": cpu,  # the CPU the run was pinned to (probe.pinned)
        # the CPUs the writer's compaction events were traced on (the pinned one alone)
        "trace_cpus": traced.get("cpus", []),
        "nice": nice,  # of the reading and compacting task (snapshot.high_priority)
        "policy": policy,  # its scheduling policy for the write (probe.realtime)
        "loadavg": list(load),  # 1, 5, 15 minutes, just before the reads
        # the writing thread's CPU seconds during the write (CLOCK_THREAD_CPUTIME_ID): the
        # compaction's own work, what the model charges; sys/user: getrusage's split of the
        # process's CPU seconds from the end of the reads to the end of the write
        "cpu_seconds": times["cpu_s"],
        "sys_seconds": r1.ru_stime - r0.ru_stime,
        "user_seconds": r1.ru_utime - r0.ru_utime,
        "run_delay_seconds": times["run_delay_s"],  # waiting runnable for a CPU
        "wait_seconds": times["wait_s"],  # asleep (wall - cpu - run delay)
        # the machine meanwhile (/proc/stat, 10 ms ticks): CPU seconds busy on all CPUs (the
        # writer's included) and stolen by the hypervisor
        "machine_busy_seconds": times["busy_s"],
        "steal_seconds": times["steal_s"],
        # of which on the writer's CPU (it was pinned there): time the hypervisor ran other
        # work on that virtual CPU, which the writer's CPU seconds leave out (paravirt steal
        # time: kernel/sched/core.c update_rq_clock_task() takes steal_clock out of
        # rq->clock_task) and its wall includes
        "writer_steal_seconds": _on_cpu(times.get("steal_cpus_s", []), cpu),
        # the other threads during the write (probe.task_times, ns): their CPU seconds and
        # run-queue wait over others_window_s, runnable tasks before/after, the CPUs
        "others_cpu_seconds": times["others_cpu_s"],
        "others_run_delay_seconds": times["others_run_delay_s"],
        "others_window_seconds": times["others_window_s"],
        "procs_running": list(times["procs_running"]),
        "nr_cpus": times["nr_cpus"],
        # pages other tasks allocated during the real compaction (compaction_alloc takes its
        # targets from isolated free pages, not through the pgalloc-counting allocator)
        "alloc_during_pages": sum(v1[k] - v0[k] for k in ALLOC_KEYS),
        # pages allocated on the machine while the snapshots were read (by other tasks: the
        # twin allocates nothing then)
        "drift_pages": drift,
    }


def host_twin(
    size: int | str = "2G",
    ratio: float = 0.5,
    runs: int = 5,
    seed: int = 1,
    platform=None,
    pattern: str = "even",
    progress=None,
) -> dict:
    """`migsim host twin`: `runs` accepted twin runs (seeds seed, seed+1, ... one per attempt)
    under the probe's settings guard (THP madvise, compaction_proactiveness 0, restored also
    on error or signal). A run whose two snapshots show drift (``drift_reasons``) is
    discarded, and so is a run whose trace shows what no snapshot can predict
    (``trace_reasons``: a zone stopped by a folio the snapshot did not show as such, another
    task's compaction): it goes to ``discarded`` with its reason (``discarded_by`` counts
    both rules), and another attempt is made, at most runs * MAX_ATTEMPTS_PER_RUN in all. Adds the leave-one-out host fit of the cost
    parameters to each accepted run's prediction, and the wall at the writer's measured CPU
    share (``add_fitted_seconds``)."""
    from migsim.cost.platform import DEFAULT_PLATFORM, load_platform
    from migsim.host import probe
    from migsim.limits import OPEN_FRACTION, TWIN_RUNS, TWIN_SIZE

    nbytes = TWIN_SIZE.parse(size, "--size")
    OPEN_FRACTION.check(ratio, "--free-ratio")
    TWIN_RUNS.check(runs, "--runs")
    nbytes = probe.check_size_cap(nbytes, name="--size")
    probe.check_compaction_available()
    S.check_available()
    plat = platform or load_platform(DEFAULT_PLATFORM)
    out = {
        "size": nbytes,
        "free_ratio": ratio,
        "pattern": pattern,
        "memory_limit_bytes": memory_limit(nbytes),
        "platform": plat.name,
        "kernel": probe.host_platform_name(),
        "drift_rule": {"rel": DRIFT_REL, "abs": DRIFT_ABS},
        "trace_rule": "contended zone the twin completes; another task's compact_zone",
        "runs": [],
        "discarded": [],
    }
    guard = probe.SettingsGuard()
    with probe.interrupt_guard(), probe.probe_settings(guard):
        attempt = 0
        while len(out["runs"]) < runs and attempt < runs * MAX_ATTEMPTS_PER_RUN:
            r = twin_run(nbytes, ratio, seed + attempt, plat, pattern=pattern)
            attempt += 1
            m, p = r["measured"], r["predicted"]
            r["trace_reasons"] = trace_reasons(r)
            if r["drift"]:
                out["discarded"].append(r)
                msg = f"DISCARDED (drift: {'; '.join(r['drift'])})"
            elif r["trace_reasons"]:
                out["discarded"].append(r)
                msg = f"DISCARDED (trace: {'; '.join(r['trace_reasons'])}; {r['stop_context']})"
            else:
                out["runs"].append(r)
                bad = misses(m, p)
                msg = "ok" if not bad else f"MISS {'; '.join(bad)}"
                msg += stop_note(r)  # a kept run whose real zone stopped early
            if progress:
                progress(
                    f"seed {r['seed']}: pgmigrate_success {m['pgmigrate_success']} (predicted "
                    f"{p['pgmigrate_success']}), {m['seconds'] * 1e3:.1f} ms wall, "
                    f"{r['cpu_seconds'] * 1e3:.1f} ms CPU ({r['policy']}, share "
                    f"{writer_share(r['cpu_seconds'], r['run_delay_seconds']):.3f}; others "
                    f"{r['others_cpu_seconds'] * 1e3:.0f} ms CPU), load "
                    f"{r['loadavg'][0]:.1f}: {msg}"
                )
    out["attempts"] = attempt
    out["discarded_by"] = {
        "drift": sum(1 for r in out["discarded"] if r["drift"]),
        "trace": sum(1 for r in out["discarded"] if not r["drift"]),
    }
    add_fitted_seconds(out["runs"])
    return out


def _on_cpu(per_cpu: list[float], cpu: int) -> float:
    """The entry of `per_cpu` for `cpu` (0.0 where there is none)."""
    return float(per_cpu[cpu]) if 0 <= cpu < len(per_cpu) else 0.0


def writer_share(cpu_s: float, run_delay_s: float) -> float:
    """The CPU share the compacting task got while runnable (0..1]: its CPU seconds over CPU
    plus run-queue wait (/proc/thread-self/schedstat: sum_exec_runtime, run_delay;
    kernel/sched/stats.h sched_info_enqueue/sched_info_arrive). Under CFS/EEVDF with n other
    runnable tasks of equal weight on its CPU it is 1 / (n + 1) (kernel/sched/fair.c, the
    timeline's busy mode is n = 1); under SCHED_FIFO, as the twin writes compact_memory, CFS
    tasks never preempt it and it is 1 but for RT throttling (sched_rt_runtime_us per
    sched_rt_period_us) and higher-priority RT tasks. 1.0 where nothing was measured."""
    if cpu_s <= 0:
        return 1.0
    return cpu_s / (cpu_s + max(run_delay_s, 0.0))


def wall_from_share(cpu_s: float, share: float, sleep_s: float = 0.0) -> float:
    """Wall seconds of a task that needs `cpu_s` CPU seconds, gets `share` of a CPU while
    runnable and sleeps `sleep_s` seconds (locks, per-CPU work it waits for): cpu_s / share +
    sleep_s. Simplification: the share is the run's mean, not a timeline of the others' load."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share: must be in (0, 1], got {share}")
    return cpu_s / share + sleep_s


def add_fitted_seconds(runs: list[dict]) -> None:
    """Leave-one-out host fit of the cost parameters (calibrate_host.fit_twin_costs) on the
    *other* runs, to the measured wall time (``seconds_fitted``: one common scale;
    ``seconds_fitted_split``: the scanners' and the other costs scaled apart) and to the
    compacting task's CPU time (``cpu_seconds_fitted``, ``cpu_seconds_fitted_split``); and per
    run the writer's measured CPU share (``cpu_share``, writer_share) with the wall it gives
    for the fitted CPU seconds (``seconds_fitted_share``, wall_from_share).

    The fit trains only on runs whose counters the twin predicted (``misses`` empty: the
    issue's tolerances): a cost scale is seconds per unit of predicted work, which a run whose
    work was mispredicted (a real zone that stopped where the twin's went on) does not
    measure -- one such run (seed 802: pgmigrate_success 7,244 measured, 61,222 predicted)
    had pulled the common scale of the other four down by 38%. Each run's ``fit_seeds``
    lists the runs its fit used. The wall it trains on is the measured wall less the time the
    hypervisor took the writer's virtual CPU (``writer_steal_seconds``: not the compaction's
    work; one run of seed 1201 with 0.18 s of it in a 0.48 s write had pulled the wall scale
    of the other four up by 7-17%), so ``seconds_fitted`` is the wall on an uncontended host;
    ``seconds_fitted_share`` adds the run's measured load, the guest's (the share) and the
    host's (its steal)."""
    from migsim.calibrate.host import fit_twin_costs

    usable = [not misses(r["measured"], r["predicted"]) for r in runs]
    for i, r in enumerate(runs):
        r["fit_seeds"] = [o.get("seed", j) for j, o in enumerate(runs) if j != i and usable[j]]
    for target in ("seconds", "cpu_seconds"):
        rows = [
            (
                r["predicted"]["scan_seconds"],
                r["predicted"]["other_seconds"],
                # /proc/stat's steal comes in ticks (10 ms at HZ=100 of USER_HZ): never below
                # the CPU seconds the writer did run
                max(r["measured"]["seconds"] - r.get("writer_steal_seconds", 0.0), r["cpu_seconds"])
                if target == "seconds"
                else r["cpu_seconds"],
            )
            for r in runs
        ]
        for i, r in enumerate(runs):
            train = [row for j, row in enumerate(rows) if j != i and usable[j]]
            if not train:
                continue
            for split, key in ((False, f"{target}_fitted"), (True, f"{target}_fitted_split")):
                a, b = fit_twin_costs(train, split=split)
                r["predicted"][key] = a * rows[i][0] + b * rows[i][1]
    for r in runs:
        # the load: the CPU seconds predicted (fitted on the other runs' CPU seconds) at the
        # share this run's writer measured (writer_share), plus the time the hypervisor took
        # its CPU (measured); its sleeps not predicted (0)
        r["cpu_share"] = writer_share(r.get("cpu_seconds", 0.0), r.get("run_delay_seconds", 0.0))
        if "cpu_seconds_fitted" in r["predicted"]:
            r["predicted"]["seconds_fitted_share"] = wall_from_share(
                r["predicted"]["cpu_seconds_fitted"], r["cpu_share"]
            ) + r.get("writer_steal_seconds", 0.0)


def predict_from(snap: S.Snapshot, platform=None) -> dict:
    """`migsim host predict`: the compaction of a snapshot, predicted (no root needed)."""
    from migsim.cost.platform import DEFAULT_PLATFORM, load_platform

    plat = platform or load_platform(DEFAULT_PLATFORM)
    nc = compact_node(snap)
    return {
        "predicted": dict(nc.vmstat),
        **predict_cost(nc, plat),
        "zones": nc.zones,
        "migrate_calls": len(nc.call_pages),
        "platform": plat.name,
    }
