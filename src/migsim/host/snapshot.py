"""A snapshot of this machine's physical memory: what every page frame holds, per zone.

Read (root) from the kernel's own exports, numpy throughout (no Python per pfn):

- ``/proc/kpageflags``: one u64 of KPF_* bits per pfn (include/uapi/linux/kernel-page-flags.h;
  fs/proc/page.c ``stable_page_flags()``). Since v4.x ``stable_page_flags()`` sets KPF_BUDDY
  for *every* page of a free buddy block (``page_count(page) == 0 && is_free_buddy_page()``),
  so the free frames are known exactly and their orders follow from the canonical buddy
  decomposition (the allocator always merges free buddies: ``__free_one_page()``).
- ``/proc/kpagecount``: one u64 per pfn, the page's map count (``folio_precise_page_mapcount``);
  where absent the snapshot records none. The refcount is not exported, so pinned pages
  (``folio_maybe_dma_pinned``) cannot be told apart from mapped ones.
- ``/proc/zoneinfo``: zones, their ``start_pfn``, spanned/present/managed pages, NR_FREE_PAGES
  and the per-CPU list counts; ``/proc/pagetypeinfo``: pageblocks per migratetype and free
  blocks per (order, migratetype); ``/proc/buddyinfo``: free blocks per order.

Per pfn the snapshot keeps one *kind* (``KINDS``) and, for compound pages, the folio order at
its head (``TAIL`` at the tails); per pageblock whether the kernel's scanners can see it at all
(``block_valid``: ``pageblock_pfn_to_page()`` returns NULL for holes, offline or never
initialised memory -- a pageblock whose 512 frames show no flag and no map count is taken as
such, and the count is checked against pagetypeinfo's pageblock total) and a migratetype
*estimate* (``block_migratetype``): pagetypeinfo gives only the number of pageblocks of each
type, so the pageblocks holding the most unmovable content (slab and page tables, then other
kernel pages) are taken as the UNMOVABLE and RECLAIMABLE ones, the rest as MOVABLE; the
estimate and pagetypeinfo's counts are both in ``check()``.

A snapshot can be built from saved copies of those files (``from_dir``: ``kpageflags`` and
``kpagecount`` as the raw binary read from /proc, ``zoneinfo``, ``pagetypeinfo``,
``buddyinfo`` as text), so a developer can simulate a machine they do not have.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform as _pyplatform
import re
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from migsim.units import MAX_PAGE_ORDER, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER

# KPF_* bit numbers (include/uapi/linux/kernel-page-flags.h, include/linux/kernel-page-flags.h)
KPF_LOCKED, KPF_DIRTY, KPF_LRU, KPF_ACTIVE, KPF_SLAB, KPF_WRITEBACK = 0, 4, 5, 6, 7, 8
KPF_BUDDY, KPF_MMAP, KPF_ANON, KPF_SWAPBACKED = 10, 11, 12, 14
KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL, KPF_HUGE, KPF_UNEVICTABLE = 15, 16, 17, 18
KPF_HWPOISON, KPF_NOPAGE, KPF_KSM, KPF_THP, KPF_OFFLINE, KPF_ZERO_PAGE = 19, 20, 21, 22, 23, 24
KPF_PGTABLE, KPF_RESERVED, KPF_MLOCKED, KPF_PRIVATE = 26, 32, 33, 35
# bits of Snapshot.pflags (per pfn): what decides whether a large folio can be split
PF_DIRTY, PF_WRITEBACK, PF_PRIVATE, PF_ANON, PF_UPTODATE = 1, 2, 4, 8, 16
KPF_UPTODATE = 3

# Page kinds (uint8), one per pfn. The order matters only for display.
HOLE = 0  # no page here for the scanners (NOPAGE, offline, hole or never initialised)
FREE = 1  # in a buddy free list (KPF_BUDDY)
LRU_ANON = 2  # on an LRU list, anonymous (or shmem: swap-backed)
LRU_FILE = 3  # on an LRU list, page cache
UNEVICTABLE = 4  # on the unevictable LRU (mlocked, ramfs, ...)
SLAB = 5  # slab page
PGTABLE = 6  # page table
RESERVED = 7  # PG_reserved (memmap, kernel image, firmware, the zero page)
KERNEL = 8  # any other allocated page: vmalloc, kernel stacks, per-CPU lists, hugetlb, ...
KINDS = (
    "hole", "free", "lru_anon", "lru_file", "unevictable", "slab", "pgtable", "reserved",
    "kernel",
)  # fmt: skip
TAIL = 255  # ``order`` value of a compound tail page

# enum migratetype (include/linux/mmzone.h) in pagetypeinfo's column order
MIGRATETYPES = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate")
MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE = 0, 1, 2

FILES = ("kpageflags", "kpagecount", "zoneinfo", "pagetypeinfo", "buddyinfo")
SETTINGS = (
    "/proc/sys/vm/compaction_proactiveness",
    "/proc/sys/vm/compact_unevictable_allowed",
    "/proc/sys/vm/extfrag_threshold",
    "/sys/kernel/mm/transparent_hugepage/enabled",
    "/sys/kernel/mm/transparent_hugepage/defrag",
    # the smallest order free page reporting reports (mm/page_reporting.c; absent without
    # CONFIG_PAGE_REPORTING): virtio_balloon's free page reporting on a VM
    "/sys/module/page_reporting/parameters/page_reporting_order",
)
READ_CHUNK = 64 << 20  # bytes per read() of a kpage* file (a multiple of 8)


class SnapshotUnavailable(RuntimeError):
    """The snapshot cannot be taken here (not root, no /proc/kpageflags): says why."""


@dataclass
class ZoneInfo:
    """One populated zone of /proc/zoneinfo (pfns, page counts)."""

    node: int
    name: str
    start_pfn: int
    spanned: int
    present: int
    managed: int
    nr_free: int
    pcp_count: int  # pages on the per-CPU lists, all CPUs ("count:" of the pagesets)
    wmark_min: int = 0  # watermarks, pages ("min", "low", "high")
    wmark_low: int = 0
    wmark_high: int = 0
    pcp_high: int = 0  # largest pcp->high of the CPUs, pages (the twin models one list)
    pcp_batch: int = 0  # pcp->batch
    # per CPU of the pagesets: [cpu, count, high] (pages), in file order
    pcp_cpus: list[list[int]] = field(default_factory=list)
    # from pagetypeinfo: pageblocks per migratetype; from buddyinfo: free blocks per order
    block_counts: dict[str, int] = field(default_factory=dict)
    buddyinfo: list[int] = field(default_factory=list)

    @property
    def end_pfn(self) -> int:
        return self.start_pfn + self.spanned

    def cpu_pcp(self, cpu: int) -> tuple[int, int] | None:
        """(count, high) of `cpu`'s per-CPU list of this zone, pages; None if not recorded."""
        for c, count, high in self.pcp_cpus:
            if c == cpu:
                return count, high
        return None


@dataclass
class Snapshot:
    """The physical memory of one machine at one moment (see the module docstring).

    ``kind``/``order`` cover pfns [0, nr_pfns); ``block_valid``/``block_migratetype`` one entry
    per pageblock of that range. ``mapcount`` is None where kpagecount was not read.
    """

    kind: np.ndarray  # uint8 per pfn, KINDS
    order: np.ndarray  # uint8 per pfn: folio order at a compound head, TAIL at tails, else 0
    mapcount: np.ndarray | None  # uint8 per pfn, clipped at 255
    block_valid: np.ndarray  # bool per pageblock
    block_migratetype: np.ndarray  # uint8 per pageblock, estimated
    zones: list[ZoneInfo]
    meta: dict = field(default_factory=dict)
    pflags: np.ndarray | None = None  # uint8 per pfn: PF_DIRTY | PF_WRITEBACK | ...
    # pfns known to be free on a per-CPU list (freed just before by the twin's own region and
    # not yet in the buddy lists; kpageflags shows such a page as a blank allocated one), in
    # the order they were freed
    pcp_pfns: np.ndarray | None = None
    # every pfn the twin freed before the read (RawReader.build's `freed`, on a per-CPU list
    # or not): pages its own fill wrote, so memory the hypervisor holds (reported_pageblocks)
    freed_pfns: np.ndarray | None = None
    # per pageblock: reported by free page reporting at an earlier read (the twin's, before
    # its region's faults; reported_pageblocks_from_flags), None where there was none
    reported_before: np.ndarray | None = None
    # reported_blocks()'s result, computed once (the per-pfn arrays are never written after
    # the snapshot is built)
    _reported: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def nr_pfns(self) -> int:
        return len(self.kind)

    # -- summaries ----------------------------------------------------------------------------
    def kind_counts(self, zone: ZoneInfo | None = None) -> dict[str, int]:
        """Pages of each kind (in `zone`, or the whole range)."""
        k = self.kind if zone is None else self.kind[zone.start_pfn : zone.end_pfn]
        c = np.bincount(k, minlength=len(KINDS))
        return {name: int(c[i]) for i, name in enumerate(KINDS)}

    def buddy_counts(self, zone: ZoneInfo) -> np.ndarray:
        """Free blocks per order 0..MAX_PAGE_ORDER in `zone`, from the free frames (canonical
        buddy decomposition: what /proc/buddyinfo shows when every buddy has merged)."""
        return buddy_decomposition(self.kind[zone.start_pfn : zone.end_pfn] == FREE, zone.start_pfn)

    def estimated_block_counts(self, zone: ZoneInfo) -> dict[str, int]:
        """Valid pageblocks of `zone` per estimated migratetype."""
        b0, b1 = _zone_blocks(zone)
        mt = self.block_migratetype[b0:b1][self.block_valid[b0:b1]]
        c = np.bincount(mt, minlength=len(MIGRATETYPES))
        return {name: int(c[i]) for i, name in enumerate(MIGRATETYPES) if c[i]}

    def check(self) -> list[dict]:
        """Per zone, what the snapshot derived beside what the kernel reports: free pages
        (frames with KPF_BUDDY against NR_FREE_PAGES), free blocks per order (against
        buddyinfo), valid pageblocks (against pagetypeinfo's total) and the migratetype
        estimate (against pagetypeinfo's counts)."""
        out = []
        for z in self.zones:
            b0, b1 = _zone_blocks(z)
            free = int((self.kind[z.start_pfn : z.end_pfn] == FREE).sum())
            out.append(
                {
                    "zone": f"{z.node}:{z.name}",
                    "free_pages": free,
                    "nr_free_pages": z.nr_free,
                    "buddy_orders": self.buddy_counts(z).tolist(),
                    "buddyinfo": list(z.buddyinfo),
                    "valid_blocks": int(self.block_valid[b0:b1].sum()),
                    "pagetypeinfo_blocks": int(sum(z.block_counts.values())),
                    "estimated_block_counts": self.estimated_block_counts(z),
                    "pagetypeinfo_block_counts": {k: v for k, v in z.block_counts.items() if v},
                }
            )
        return out

    def reported_blocks(self) -> np.ndarray:
        """Per pageblock: inside a free buddy block that free page reporting has reported to
        the hypervisor (``reported_pageblocks``; the head's PG_reported is the pfn's
        PF_UPTODATE here). Computed on the first call (whole machine, 8.8 ms on this VM's
        6.55 M pfns) and kept; a read-only array."""
        if self._reported is None:
            free = self.kind == FREE
            flag = self.pflags if self.pflags is not None else np.zeros(self.nr_pfns, np.uint8)
            out = reported_pageblocks(free, free & ((flag & PF_UPTODATE) != 0))
            out.flags.writeable = False
            self._reported = out
        return self._reported

    # -- files --------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the snapshot as one compressed .npz (arrays plus a JSON header)."""
        from migsim.atomic import atomic_write_bytes

        header = {
            "format": "migsim-snapshot-1",
            "zones": [z.__dict__ for z in self.zones],
            "meta": self.meta,
        }
        arrays = {
            "kind": self.kind,
            "order": self.order,
            "block_valid": self.block_valid,
            "block_migratetype": self.block_migratetype,
            "header": np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8),
        }
        if self.mapcount is not None:
            arrays["mapcount"] = self.mapcount
        if self.pflags is not None:
            arrays["pflags"] = self.pflags
        for name in ("pcp_pfns", "freed_pfns", "reported_before"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        import io
        import zipfile

        # what np.savez_compressed writes (np.load reads it), at the fastest deflate level:
        # the per-pfn arrays are long runs and compress well at level 1 too
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for name, arr in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Snapshot:
        """Read a snapshot written by ``save``."""
        try:
            with np.load(path) as f:
                header = json.loads(f["header"].tobytes().decode())
                if header.get("format") != "migsim-snapshot-1":
                    raise ValueError(f"snapshot: {path} is not a migsim snapshot")
                arrays = {k: f[k] for k in f.files if k != "header"}
        except (OSError, KeyError, EOFError, ValueError) as exc:
            raise ValueError(
                f"--snapshot: cannot read {path} as a migsim snapshot: {exc}"
            ) from None
        return cls(
            kind=arrays["kind"],
            order=arrays["order"],
            mapcount=arrays.get("mapcount"),
            block_valid=arrays["block_valid"],
            block_migratetype=arrays["block_migratetype"],
            zones=[ZoneInfo(**z) for z in header["zones"]],
            meta=header["meta"],
            pflags=arrays.get("pflags"),
            pcp_pfns=arrays.get("pcp_pfns"),
            freed_pfns=arrays.get("freed_pfns"),
            reported_before=arrays.get("reported_before"),
        )


def _zone_blocks(z: ZoneInfo) -> tuple[int, int]:
    """First and one-past-last pageblock index touched by the zone."""
    return z.start_pfn >> PAGEBLOCK_ORDER, (z.end_pfn + PAGEBLOCK_NR_PAGES - 1) >> PAGEBLOCK_ORDER


# ----------------------------------------------------------------------------------------------
# Parsing the text files.
# ----------------------------------------------------------------------------------------------

_ZONE_RE = re.compile(r"^Node\s+(\d+),\s*zone\s+(\S+)")


def parse_zoneinfo(text: str) -> list[ZoneInfo]:
    """The populated zones of /proc/zoneinfo (spanned > 0), in file order."""
    zones: list[ZoneInfo] = []
    cur: dict | None = None
    highs: list[int] = []

    def flush():
        if cur is not None and cur.get("spanned", 0) > 0:
            if "start_pfn" not in cur:
                raise ValueError(f"zoneinfo: zone {cur['name']} has no start_pfn line")
            zones.append(ZoneInfo(**cur))

    for line in text.splitlines():
        m = _ZONE_RE.match(line)
        if m:
            flush()
            cur = {"node": int(m.group(1)), "name": m.group(2), "start_pfn": 0, "spanned": 0}
            cur |= {"present": 0, "managed": 0, "nr_free": 0, "pcp_count": 0, "pcp_cpus": []}
            del cur["start_pfn"]
            highs = []
            continue
        if cur is None:
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        key, val = parts[0], parts[-1]
        if key in ("spanned", "present", "managed"):
            cur[key] = int(val)
        elif key == "nr_free_pages":
            cur["nr_free"] = int(val)
        elif key == "cpu:":
            cur["pcp_cpus"].append([int(val), 0, 0])
        elif key == "count:":
            cur["pcp_count"] += int(val)
            if cur["pcp_cpus"]:
                cur["pcp_cpus"][-1][1] = int(val)
        elif key in ("min", "low", "high") and len(parts) == 2:
            cur[f"wmark_{key}"] = int(val)
        elif key == "high:":
            highs.append(int(val))
            cur["pcp_high"] = max(highs)
            if cur["pcp_cpus"]:
                cur["pcp_cpus"][-1][2] = int(val)
        elif key == "batch:":
            cur["pcp_batch"] = int(val)
        elif key == "start_pfn:":
            cur["start_pfn"] = int(val)
    flush()
    if not zones:
        raise ValueError("zoneinfo: no populated zone found")
    return zones


def parse_pagetypeinfo(text: str) -> dict[tuple[int, str], dict[str, int]]:
    """Pageblocks per migratetype of each (node, zone) ("Number of blocks type" table)."""
    lines = text.splitlines()
    out: dict[tuple[int, str], dict[str, int]] = {}
    for i, line in enumerate(lines):
        if line.startswith("Number of blocks type"):
            names = line.split()[4:]
            for row in lines[i + 1 :]:
                m = _ZONE_RE.match(row)
                if not m:
                    break
                counts = [int(x) for x in row[m.end() :].split()]
                out[(int(m.group(1)), m.group(2))] = dict(zip(names, counts, strict=False))
            break
    return out


def parse_buddyinfo(text: str) -> dict[tuple[int, str], list[int]]:
    """Free blocks per order of each (node, zone)."""
    out = {}
    for line in text.splitlines():
        m = _ZONE_RE.match(line)
        if m:
            out[(int(m.group(1)), m.group(2))] = [int(x) for x in line[m.end() :].split()]
    return out


# ----------------------------------------------------------------------------------------------
# From the raw flags to kinds.
# ----------------------------------------------------------------------------------------------


class _Bits:
    """The KPF bits of a kpageflags array, split once into one contiguous uint8 array per
    byte of bits 0..39 (a bit test on a byte array reads an eighth of the memory a test on
    the u64 does)."""

    def __init__(self, flags: np.ndarray):
        v = np.ascontiguousarray(flags, dtype="<u8").view(np.uint8).reshape(-1, 8)
        self.bytes = [np.ascontiguousarray(v[:, j]) for j in range(5)]

    def __len__(self) -> int:
        return len(self.bytes[0])

    def __call__(self, b: int) -> np.ndarray:
        return (self.bytes[b >> 3] & np.uint8(1 << (b & 7))) != 0


def _bit(flags, b: int) -> np.ndarray:
    """Bit `b` of every entry of a kpageflags array (or of a _Bits split of one)."""
    if isinstance(flags, _Bits):
        return flags(b)
    return (flags & np.uint64(1 << b)) != 0


def classify(flags: np.ndarray, count: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Kind and folio order per pfn from kpageflags (and kpagecount). Vectorised; the order
    of a compound folio is the length of its head-plus-tails run (log2)."""
    n = len(flags)
    flags = flags if isinstance(flags, _Bits) else _Bits(flags)
    kind = np.full(n, KERNEL, dtype=np.uint8)
    lru = _bit(flags, KPF_LRU)
    unevictable = _bit(flags, KPF_UNEVICTABLE) | _bit(flags, KPF_MLOCKED)
    anon = _bit(flags, KPF_ANON) | _bit(flags, KPF_SWAPBACKED)
    kind[_bit(flags, KPF_RESERVED) | _bit(flags, KPF_ZERO_PAGE)] = RESERVED
    kind[_bit(flags, KPF_PGTABLE)] = PGTABLE
    kind[_bit(flags, KPF_SLAB)] = SLAB
    kind[lru & ~unevictable & ~anon] = LRU_FILE
    kind[lru & ~unevictable & anon] = LRU_ANON
    kind[lru & unevictable] = UNEVICTABLE
    kind[_bit(flags, KPF_BUDDY)] = FREE
    kind[_bit(flags, KPF_NOPAGE) | _bit(flags, KPF_OFFLINE) | _bit(flags, KPF_HWPOISON)] = HOLE
    # compound folios: the tail pages carry the head's LRU state in kpageflags (folio flags);
    # keep the kind and record the order at the head, TAIL at the tails
    order = np.zeros(n, dtype=np.uint8)
    tail = _bit(flags, KPF_COMPOUND_TAIL)
    heads = np.flatnonzero(_bit(flags, KPF_COMPOUND_HEAD))
    if len(heads):
        nontail = np.flatnonzero(~tail)
        nxt = np.searchsorted(nontail, heads, side="right")
        end = np.where(nxt < len(nontail), nontail[np.minimum(nxt, len(nontail) - 1)], n)
        length = end - heads
        order[heads] = np.clip(np.round(np.log2(np.maximum(length, 1))), 0, 254).astype(np.uint8)
    order[tail] = TAIL
    return kind, order


SECTION_BLOCKS = (1 << 15) // PAGEBLOCK_NR_PAGES  # pageblocks per sparsemem section (128 MiB)


def block_validity(flags: np.ndarray, count: np.ndarray | None) -> np.ndarray:
    """Per pageblock: does it hold initialised pages? A run of pageblocks whose frames all
    show no KPF flag (and no map count) is a hole, offline or not yet initialised memory (the
    kernel's pageblock_pfn_to_page() gives the scanners no page there) when it spans at least
    a sparsemem section or reaches the end; a shorter blank run between initialised
    pageblocks is kernel memory (vmalloc, per-CPU lists, ...) that the scanners do visit."""
    nb = len(flags) // PAGEBLOCK_NR_PAGES
    f = flags[: nb * PAGEBLOCK_NR_PAGES].reshape(nb, PAGEBLOCK_NR_PAGES)
    blank = (f == 0) | ((f & np.uint64(1 << KPF_NOPAGE)) != 0)
    if count is not None:
        blank &= count[: nb * PAGEBLOCK_NR_PAGES].reshape(nb, PAGEBLOCK_NR_PAGES) == 0
    blank = blank.all(1)
    m = np.concatenate(([False], blank, [False]))
    edges = np.flatnonzero(m[1:] != m[:-1])
    starts, ends = edges[0::2], edges[1::2]
    short = (ends - starts < SECTION_BLOCKS) & (starts > 0) & (ends < nb)
    for a, b in zip(starts[short].tolist(), ends[short].tolist(), strict=True):
        blank[a:b] = False
    return ~blank


# content that makes a pageblock unmovable or reclaimable: pages the buddy allocator handed out
# for an unmovable or reclaimable allocation whose kpageflags say what they are (blank pages,
# KERNEL, are kept apart: see below). Not PG_reserved pages: memmap_init_range() (mm/mm_init.c)
# sets every pageblock MIGRATE_MOVABLE when the memory map is initialised, reserved pages
# included (__init_page_from_nid(): MIGRATE_MOVABLE too), and a reserved page never passes
# through the allocator, so it never claims its block for another type
_UNMOVABLE_KINDS = (SLAB, PGTABLE)
_MOVABLE_KINDS = (LRU_ANON, LRU_FILE, UNEVICTABLE)


def reported_pageblocks(free: np.ndarray, head: np.ndarray) -> np.ndarray:
    """Per pageblock of the pfn range (a multiple of PAGEBLOCK_NR_PAGES): whether it lies in a
    free buddy block that free page reporting has reported, from `free` (per pfn: in a buddy
    free list) and `head` (per pfn: a free page with PG_reported).

    mm/page_reporting.c ``page_reporting_cycle()`` takes unreported free blocks of order >=
    page_reporting_order (pageblock_order by default, 9 here) off the free lists, hands them
    to the device (virtio_balloon ``virtballoon_free_page_report()``: the host then discards
    their memory) and ``page_reporting_drain()`` puts each back with ``__SetPageReported()``
    on its head while it is still a buddy of that order; ``__del_page_from_free_list()``
    (mm/page_alloc.c) clears it when the block is allocated, split or merged. PG_reported
    aliases PG_uptodate (include/linux/page-flags.h), which ``stable_page_flags()``
    (fs/proc/page.c) exports as KPF_UPTODATE. A reported block is a whole pageblock (order 9:
    its first pfn flagged) or a pair (order 10: the even one's first pfn flagged, both wholly
    free; free buddies always merge). Simplification: a block reported at a lower
    page_reporting_order (smaller than a pageblock) is not marked."""
    n = len(free) // PAGEBLOCK_NR_PAGES
    whole = free[: n * PAGEBLOCK_NR_PAGES].reshape(n, PAGEBLOCK_NR_PAGES).all(1)
    first = head[: n * PAGEBLOCK_NR_PAGES : PAGEBLOCK_NR_PAGES] & whole
    out = first.copy()
    pair = np.flatnonzero(first[:-1] & (np.arange(n - 1) % 2 == 0) & whole[1:])
    out[pair + 1] = True  # the upper half of a reported order-10 block
    return out


def reported_pageblocks_from_flags(flags: np.ndarray) -> np.ndarray:
    """``reported_pageblocks`` of raw kpageflags (a pageblock-aligned length): free = KPF_BUDDY,
    a reported head = KPF_BUDDY and KPF_UPTODATE."""
    buddy = _bit(flags, KPF_BUDDY)
    return reported_pageblocks(buddy, buddy & _bit(flags, KPF_UPTODATE))


def estimate_migratetypes(kind: np.ndarray, valid: np.ndarray, zones: list[ZoneInfo]) -> np.ndarray:
    """Estimated migratetype per pageblock: in each zone, the ``Unmovable + Reclaimable`` (and
    HighAtomic) pageblocks of pagetypeinfo are taken to be the valid pageblocks ranked first by
    their unmovable pages (slab, page tables; not PG_reserved ones, see _UNMOVABLE_KINDS) less
    their LRU pages, then by their
    blank pages (kernel memory kpageflags shows no flag for), ties broken by the lower pfn; a
    pageblock with more LRU than unmovable pages, or with neither unmovable nor blank pages, is
    never taken; every other pageblock is MOVABLE. Without pagetypeinfo counts every pageblock
    that could be taken (more unmovable than LRU pages, or as many and a blank page) is
    UNMOVABLE.

    Why (mm/page_alloc.c, v6.18): a fallback allocation claims a whole pageblock for its
    migratetype only when the block's free and compatible pages make at least half of it
    (``try_to_claim_block``); otherwise it takes its page out of a block of another type and
    leaves the type alone. So a MOVABLE pageblock can hold a few slab pages among its LRU ones
    (stolen pages), while an UNMOVABLE or RECLAIMABLE one holds mostly kernel pages. Blank pages
    are the weaker sign: kernel allocations without a page type (vmalloc, page_ext, ...) but
    also movable pages in transit (free pages on the per-CPU lists, pages isolated or not yet on
    an LRU list). Ranked with slab and page tables (sessions 1-5), blank MOVABLE pageblocks took
    the places of slab pageblocks, which the twin's free scanner then took targets from: on the
    6.18 VM, the kernel's free scanner (mm_compaction_isolate_freepages per pageblock, 11 runs)
    skipped 133 pageblocks the estimate called MOVABLE (9 with this ranking) and scanned 98 it
    called otherwise (11). Ranked with them, wholly PG_reserved pageblocks (the memory map of
    memory initialised late, deferred_init=lazy) took 117-120 of the 143 non-movable places of
    a grown Normal zone, all of them pageblocks the kernel's free scanner visited (8 runs of
    session 10, 955 of 19,789 pageblocks above the meeting point misjudged; 7 without them)."""
    nb = len(valid)
    mt = np.full(nb, MIGRATE_MOVABLE, dtype=np.uint8)
    k = kind[: nb * PAGEBLOCK_NR_PAGES].reshape(nb, -1)
    net = np.isin(k, _UNMOVABLE_KINDS).sum(1) - np.isin(k, _MOVABLE_KINDS).sum(1)
    blank = (k == KERNEL).sum(1)
    for z in zones:
        b0, b1 = _zone_blocks(z)
        blocks = np.arange(b0, min(b1, nb))
        blocks = blocks[
            valid[blocks] & ((net[blocks] > 0) | ((net[blocks] == 0) & (blank[blocks] > 0)))
        ]
        if not z.block_counts:
            mt[blocks] = MIGRATE_UNMOVABLE
            continue
        n_unmov = z.block_counts.get("Unmovable", 0) + z.block_counts.get("HighAtomic", 0)
        n_recl = z.block_counts.get("Reclaimable", 0)
        ranked = blocks[np.lexsort((blocks, -blank[blocks], -net[blocks]))]
        mt[ranked[:n_unmov]] = MIGRATE_UNMOVABLE
        mt[ranked[n_unmov : n_unmov + n_recl]] = MIGRATE_RECLAIMABLE
    return mt


def buddy_decomposition(free: np.ndarray, start_pfn: int = 0) -> np.ndarray:
    """Free blocks per order 0..MAX_PAGE_ORDER of the boolean free mask of the pfns
    [start_pfn, start_pfn + len(free)): maximal aligned power-of-two runs (vectorised, one
    pass per order)."""
    lo = start_pfn & ~((1 << MAX_PAGE_ORDER) - 1)
    hi = -(-(start_pfn + len(free)) // (1 << MAX_PAGE_ORDER)) << MAX_PAGE_ORDER
    m = np.zeros(hi - lo, dtype=bool)
    m[start_pfn - lo : start_pfn - lo + len(free)] = free
    counts = np.zeros(MAX_PAGE_ORDER + 1, dtype=np.int64)
    level = m
    for order in range(MAX_PAGE_ORDER + 1):
        if order < MAX_PAGE_ORDER:
            parent = level[0::2] & level[1::2]
            counts[order] = int(level.sum()) - 2 * int(parent.sum())
            level = parent
        else:
            counts[order] = int(level.sum())
    return counts


# ----------------------------------------------------------------------------------------------
# Reading.
# ----------------------------------------------------------------------------------------------


def read_kpage(path: str | os.PathLike, nr_pfns: int | None = None) -> np.ndarray:
    """A kpageflags/kpagecount file as u64 per pfn (at most `nr_pfns`). /proc files report
    size 0 and take reads in multiples of 8 bytes only: read in fixed chunks into one
    preallocated array."""
    p = Path(path)
    size = p.stat().st_size
    if nr_pfns is None:
        if size == 0:
            raise ValueError(f"{path}: size unknown; give the number of pfns")
        nr_pfns = size // 8
    elif size:
        nr_pfns = min(nr_pfns, size // 8)
    out = np.empty(nr_pfns, dtype="<u8")
    return out[: _read_chunks(p, out)]


def _read_chunks(path: Path, out: np.ndarray) -> int:
    """Read a kpage* file into `out` in READ_CHUNK pieces; returns the pfns read."""
    mv = memoryview(out).cast("B")
    pos = 0
    with open(path, "rb", buffering=0) as fh:
        while pos < len(mv):
            k = fh.readinto(mv[pos : pos + READ_CHUNK])
            if not k:
                break
            pos += k
    return pos // 8


def _read_settings() -> dict[str, str]:
    out = {}
    for s in SETTINGS:
        with contextlib.suppress(OSError):
            out[Path(s).name if "transparent" not in s else "thp_" + Path(s).name] = (
                Path(s).read_text().strip()
            )
    return out


def scan_end_pfn(zones: list[ZoneInfo]) -> int:
    """The highest pfn the compaction scanners can reach: per zone, the end of the pageblocks
    pagetypeinfo counts (it walks the zone's current span; where memory is initialised
    lazily that ends below start_pfn + spanned), else the zone end."""
    ends = []
    for z in zones:
        n = sum(z.block_counts.values())
        if n:
            ends.append(
                min(z.end_pfn, (z.start_pfn & ~(PAGEBLOCK_NR_PAGES - 1)) + n * PAGEBLOCK_NR_PAGES)
            )
        else:
            ends.append(z.end_pfn)
    return max(ends)


def build(
    flags: np.ndarray,
    count: np.ndarray | None,
    zoneinfo: str,
    pagetypeinfo: str = "",
    buddyinfo: str = "",
    meta: dict | None = None,
) -> Snapshot:
    """A Snapshot from the raw kpageflags (and kpagecount) arrays and the three text files."""
    zones = parse_zoneinfo(zoneinfo)
    types = parse_pagetypeinfo(pagetypeinfo) if pagetypeinfo else {}
    buddy = parse_buddyinfo(buddyinfo) if buddyinfo else {}
    for z in zones:
        z.block_counts = types.get((z.node, z.name), {})
        z.buddyinfo = buddy.get((z.node, z.name), [])
    end = max(z.end_pfn for z in zones)
    nr = -(-end // PAGEBLOCK_NR_PAGES) * PAGEBLOCK_NR_PAGES
    need = scan_end_pfn(zones)
    if len(flags) < need:
        raise ValueError(f"kpageflags: {len(flags)} pfns, but the zones' pageblocks end at {need}")
    have = min(len(flags), end)
    flags = np.concatenate([flags[:have], np.full(nr - have, 1 << KPF_NOPAGE, dtype="<u8")])
    if count is not None:
        if len(count) < have:
            raise ValueError(f"kpagecount: {len(count)} pfns, kpageflags {have}")
        count = np.concatenate([count[:have], np.zeros(nr - have, dtype="<u8")])
    bits = _Bits(flags)
    kind, order = classify(bits, count)
    valid = block_validity(flags, count)
    # pfns outside every zone, and pageblocks without initialised pages, are holes
    inside = np.zeros(nr, dtype=bool)
    for z in zones:
        inside[z.start_pfn : z.end_pfn] = True
    kind[~inside] = HOLE
    kind[np.repeat(~valid, PAGEBLOCK_NR_PAGES)] = HOLE
    mt = estimate_migratetypes(kind, valid, zones)
    mapcount = None if count is None else np.minimum(count, 255).astype(np.uint8)
    pflags = (
        bits(KPF_DIRTY) * np.uint8(PF_DIRTY)
        | bits(KPF_WRITEBACK) * np.uint8(PF_WRITEBACK)
        | bits(KPF_PRIVATE) * np.uint8(PF_PRIVATE)
        | (bits(KPF_ANON) | bits(KPF_SWAPBACKED)) * np.uint8(PF_ANON)
        | bits(KPF_UPTODATE) * np.uint8(PF_UPTODATE)
    ).astype(np.uint8)
    return Snapshot(kind, order, mapcount, valid, mt, zones, dict(meta or {}), pflags)


def check_available() -> None:
    """Raise SnapshotUnavailable with the precise reason where /proc/kpageflags cannot be read."""
    kpf = Path("/proc/kpageflags")
    if not kpf.exists():
        raise SnapshotUnavailable(
            "/proc/kpageflags does not exist (kernel without CONFIG_PROC_PAGE_MONITOR?)"
        )
    if os.geteuid() != 0:
        raise SnapshotUnavailable(
            f"reading /proc/kpageflags needs root (CAP_SYS_ADMIN); running as uid {os.geteuid()}"
        )


class RawReader:
    """Reads the raw snapshot files into buffers allocated (and faulted in) up front, so that a
    read just before a real compaction neither allocates nor frees memory in between: pages
    freed after the read would be free pages the snapshot does not show. ``read()`` then
    ``build()``; ``with_count`` also reads /proc/kpagecount where pages are mapped
    (``read_mapped_counts``)."""

    def __init__(self, *, with_count: bool = False, proc: str = "/proc"):
        check_available()
        self.proc = Path(proc)
        self.zoneinfo = (self.proc / "zoneinfo").read_text()
        zones = parse_zoneinfo(self.zoneinfo)
        self.nr_pfns = max(z.end_pfn for z in zones)
        self.flags = np.ones(self.nr_pfns, dtype="<u8")  # ones: the pages are faulted in
        self.count = np.ones(self.nr_pfns, dtype="<u8") if with_count else None
        self.texts: dict[str, str] = {}
        self.read_s = 0.0
        self.read_pfns = self.nr_pfns
        self.count_pfns = 0  # pfns of kpagecount read (read_mapped_counts)

    def read(self) -> None:
        """Read zoneinfo, pagetypeinfo, buddyinfo and kpageflags (kpagecount) now."""
        t0 = time.perf_counter()
        for n in ("zoneinfo", "pagetypeinfo", "buddyinfo"):
            self.texts[n] = (self.proc / n).read_text()
        zones = parse_zoneinfo(self.texts["zoneinfo"])
        types = parse_pagetypeinfo(self.texts["pagetypeinfo"])
        for z in zones:
            z.block_counts = types.get((z.node, z.name), {})
        # only what the scanners can reach: never initialised memory above is left out
        self.read_pfns = min(scan_end_pfn(zones), len(self.flags))
        _read_into(self.proc / "kpageflags", self.flags[: self.read_pfns])
        if self.count is not None:
            self.count_pfns = read_mapped_counts(
                self.proc / "kpagecount", self.flags[: self.read_pfns], self.count
            )
        self.read_s = time.perf_counter() - t0

    def build(
        self,
        raw_dir: str | os.PathLike | None = None,
        freed: np.ndarray | None = None,
        meta: dict | None = None,
    ) -> Snapshot:
        """The Snapshot of the last read (with `raw_dir`: also save the raw files there).
        `freed`: pfns this process freed just before the read, in order; those that are not in
        the buddy lists and show no flag are on a per-CPU list (``Snapshot.pcp_pfns``).
        `meta`: more keys for ``Snapshot.meta`` (the twin's ``free_cpu``/``writer_cpu``; also
        saved with the raw files, which ``from_dir`` reads back)."""
        t0 = time.perf_counter()
        meta = {
            "kernel": _pyplatform.release(),
            "machine": _pyplatform.node(),
            "settings": _read_settings(),
            "source": str(self.proc),
            **(meta or {}),
        }
        t = self.texts
        k = self.read_pfns
        count = None if self.count is None else self.count[:k]
        snap = build(self.flags[:k], count, t["zoneinfo"], t["pagetypeinfo"], t["buddyinfo"], meta)
        if freed is not None and len(freed):
            freed = np.asarray(freed, dtype=np.int64)
            freed = freed[(freed >= 0) & (freed < k)]
            snap.freed_pfns = freed
            blank = self.flags[freed] == 0
            if self.count is not None:
                blank &= self.count[freed] == 0
            snap.pcp_pfns = freed[blank]
            snap.meta["pcp_pfns"] = len(snap.pcp_pfns)
        snap.meta["read_s"] = self.read_s
        if self.count is not None:
            snap.meta["count_pfns"] = self.count_pfns
        snap.meta["build_s"] = time.perf_counter() - t0
        snap.meta["snapshot_s"] = self.read_s + snap.meta["build_s"]
        snap.meta["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if raw_dir is not None:
            save_raw(raw_dir, self.flags[:k], count, t, snap.meta["settings"])
        return snap


COUNT_UNIT = 256  # pfns per kpagecount range looked at (2 KiB of the file)


def read_mapped_counts(path: Path, flags: np.ndarray, out: np.ndarray) -> int:
    """Fill ``out[:len(flags)]`` from a kpagecount file, reading only the COUNT_UNIT ranges of
    pfns that hold a mapped page (KPF_MMAP) and setting the rest to 0: kpagecount_read()
    (fs/proc/page.c) reports a page's map count, and a page with a map count is mapped
    (stable_page_flags() sets KPF_MMAP from folio_mapped()), so the ranges left out read as
    0 (buddy, slab, page tables, unmapped page cache -- most of a machine). One pread() per
    run of such ranges; returns the pfns read."""
    n = len(flags)
    out[:n] = 0
    nu = -(-n // COUNT_UNIT)
    mapped = np.zeros(nu * COUNT_UNIT, dtype=bool)
    mapped[:n] = (flags & np.uint64(1 << KPF_MMAP)) != 0
    need = mapped.reshape(nu, COUNT_UNIT).any(1)
    m = np.concatenate(([False], need, [False]))
    edges = np.flatnonzero(m[1:] != m[:-1])
    mv = memoryview(out[:n]).cast("B")
    done = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        for a, b in zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True):
            lo, hi = a * COUNT_UNIT * 8, min(b * COUNT_UNIT, n) * 8
            while lo < hi:
                k = os.preadv(fd, [mv[lo : min(hi, lo + READ_CHUNK)]], lo)
                if not k:
                    raise ValueError(f"{path}: short read at pfn {lo // 8}")
                lo += k
                done += k // 8
    finally:
        os.close(fd)
    return done


def _read_into(path: Path, out: np.ndarray) -> int:
    """Fill `out` from a kpage* file (all of it, or ValueError); returns the pfns read."""
    n = _read_chunks(path, out)
    if n < len(out):
        raise ValueError(f"{path}: {n} pfns read, the zones need {len(out)}")
    return n


READ_NICE = -20  # the nice value a snapshot is read at (high_priority)


AUTOGROUP = Path("/proc/self/autogroup")


@contextlib.contextmanager
def high_priority(nice: int = READ_NICE):
    """Run the block at `nice` (root: CAP_SYS_NICE) and restore the task's nice value after,
    also on error; yields the nice value in force. With sched_autogroup_enabled a task's nice
    value weighs only inside its session's autogroup, so the autogroup's nice value
    (/proc/self/autogroup, sched_autogroup_set_nice() in kernel/sched/autogroup.c) is set
    too, and restored. On a loaded machine a snapshot read (and, in the host twin, the
    compaction, which runs in the writing task: compact_nodes()) then gets most of a CPU, so
    less of the other tasks' memory churn falls inside the read and between the read and the
    scanners' passage, and the wall time is mostly CPU time. Where a nice value cannot be
    lowered (EPERM) the block runs at the task's own."""
    old = os.getpriority(os.PRIO_PROCESS, 0)
    group_old = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        group_old = int(AUTOGROUP.read_text().split("nice")[1])
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError:
        yield old
        return
    try:
        if group_old is not None:
            try:
                AUTOGROUP.write_text(str(nice))
            except OSError:
                group_old = None
        yield nice
    finally:
        if group_old is not None:
            AUTOGROUP.write_text(str(group_old))
        os.setpriority(os.PRIO_PROCESS, 0, old)


def take(raw_dir: str | os.PathLike | None = None, *, with_count: bool = True) -> Snapshot:
    """Snapshot this machine now (root). With `raw_dir`, also save the raw files there (what
    ``from_dir`` reads). ``meta`` records the kernel, the settings, the seconds the reading
    and the classification took and the peak resident memory."""
    reader = RawReader(with_count=with_count)
    with high_priority() as nice:
        reader.read()
        snap = reader.build(raw_dir)
    snap.meta["nice"] = nice
    return snap


def save_raw(
    raw_dir, flags: np.ndarray, count: np.ndarray | None, texts: dict[str, str], settings=None
) -> None:
    """Save the raw files of a snapshot in `raw_dir` (the layout ``from_dir`` reads)."""
    d = Path(raw_dir)
    d.mkdir(parents=True, exist_ok=True)
    if settings:
        (d / "settings.json").write_text(json.dumps(settings, sort_keys=True) + "\n")
    flags.astype("<u8").tofile(d / "kpageflags")
    if count is not None:
        count.astype("<u8").tofile(d / "kpagecount")
    for name, text in texts.items():
        (d / name).write_text(text)


def from_dir(raw_dir: str | os.PathLike) -> Snapshot:
    """A Snapshot from saved copies: `raw_dir`/kpageflags (raw binary), kpagecount (raw,
    optional), zoneinfo (text, required), pagetypeinfo and buddyinfo (text, optional)."""
    d = Path(raw_dir)
    if not d.is_dir():
        raise ValueError(f"--from: {d} is not a directory")
    for need in ("kpageflags", "zoneinfo"):
        if not (d / need).is_file():
            raise ValueError(f"--from: {d} has no {need} file (needs kpageflags and zoneinfo)")
    t0 = time.perf_counter()
    text = {
        n: (d / n).read_text() if (d / n).is_file() else ""
        for n in ("zoneinfo", "pagetypeinfo", "buddyinfo")
    }
    flags = read_kpage(d / "kpageflags")
    count = read_kpage(d / "kpagecount") if (d / "kpagecount").is_file() else None
    meta = {"source": str(d)}
    settings = d / "settings.json"
    if settings.is_file():
        meta["settings"] = json.loads(settings.read_text())
    snap = build(flags, count, text["zoneinfo"], text["pagetypeinfo"], text["buddyinfo"], meta)
    snap.meta["snapshot_s"] = time.perf_counter() - t0
    return snap
