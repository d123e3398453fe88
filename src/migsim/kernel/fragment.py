"""Fragmentation setups and metrics: the pipeline's first stage.

The published setup: a process allocates X bytes of anonymous memory on the node and touches
every page, then in every 2 MB region frees ``free_ratio`` of the 512 pages at evenly spaced
offsets (MADV_DONTNEED). The freed pages return to the buddy allocator, but the pages left in
each region keep them from merging into order-9 blocks. Variants: random offsets per region,
and clustered runs of ``run_pages`` consecutive pages (which leave higher-order free blocks).

Physical placement: on a freshly booted node the buddy allocator hands out frames in
ascending pfn order, so the process's pages fill the zone from its start, and each 2 MB
virtual region is one pageblock. The part of the node the process cannot get (memmap, page
tables, slab: ``reserved_bytes``) is unmovable kernel memory at the end of the zone (memblock
allocates top-down). Freed pages reach the buddy lists through the freeing CPU's pcp lists,
which are drained by the time the experiment starts.

The fragmented state is saved as an uncompressed ``.npz`` (written to a temporary name, then
renamed) and loaded back into a :class:`~migsim.kernel.zone.Zone`.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from migsim.atomic import atomic_open
from migsim.kernel.zone import (
    FREE,
    KERNEL,
    LRU,
    MIGRATE_MOVABLE,
    MIGRATE_UNMOVABLE,
    NR_ORDERS,
    Zone,
)
from migsim.units import MAX_PAGE_ORDER, PAGE_SIZE, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER, format_size

PATTERNS = ("even", "random", "clustered")
STATE_FORMAT = 1
REGION_PAGES = PAGEBLOCK_NR_PAGES  # a 2 MB region of the fragmenter's mapping
RANDOM_CHUNK_REGIONS = 4096  # regions drawn per step by the random pattern (8 MB of keys)


def default_reserved_bytes(node_bytes: int) -> int:
    """Kernel memory on the node that the fragmenter cannot allocate: 0.8% of the node
    (2 GiB of a 250 GiB node: the published run allocated ~248 of ~250 GB), rounded up to a
    whole pageblock."""
    pb = PAGEBLOCK_NR_PAGES * PAGE_SIZE
    return max(pb, -(-int(node_bytes * 0.008) // pb) * pb)


@dataclass(frozen=True)
class FragmentConfig:
    """How to fragment a node (sizes in bytes)."""

    node_bytes: int = 250 << 30
    alloc_bytes: int | None = None  # anonymous memory allocated; None: all but reserved_bytes
    free_ratio: float = 0.5  # fraction of each 2 MB region freed again
    pattern: str = "even"
    seed: int = 1
    reserved_bytes: int | None = None  # None: default_reserved_bytes(node_bytes)
    run_pages: int = 16  # length of a freed run for the clustered pattern

    def resolved(self) -> FragmentConfig:
        """Validate every field and fill the defaults; raises ValueError naming the field."""
        pb = PAGEBLOCK_NR_PAGES * PAGE_SIZE
        node = self.node_bytes
        if isinstance(node, bool) or not isinstance(node, int | np.integer) or node < 2 * pb:
            raise ValueError(f"node_bytes: must be at least 4M (two pageblocks), got {node!r}")
        if node % pb:
            raise ValueError(
                f"node_bytes: must be a whole number of 2M pageblocks, got {format_size(node)}"
            )
        reserved = (
            default_reserved_bytes(node) if self.reserved_bytes is None else self.reserved_bytes
        )
        if reserved < 0 or reserved % pb or reserved >= node:
            raise ValueError(
                f"reserved_bytes: must be a whole number of 2M pageblocks in [0, node size), "
                f"got {reserved!r}"
            )
        limit = node - reserved
        alloc = limit if self.alloc_bytes is None else self.alloc_bytes
        if alloc < 0 or alloc % PAGE_SIZE:
            raise ValueError(f"alloc_bytes: must be a whole number of 4K pages >= 0, got {alloc!r}")
        if alloc > limit:
            raise ValueError(
                f"alloc_bytes: {format_size(alloc) if alloc % pb == 0 else alloc} is more memory "
                f"than the node can give (at most {format_size(limit)} of the "
                f"{format_size(node)} node; the rest is kernel memory)"
            )
        r = self.free_ratio
        if isinstance(r, bool) or not isinstance(r, int | float) or not 0.0 <= r < 1.0:
            raise ValueError(f"free_ratio: must be in [0, 1), got {r!r}")
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern: must be one of {', '.join(PATTERNS)}; got {self.pattern!r}")
        if not 1 <= self.run_pages <= REGION_PAGES:
            raise ValueError(f"run_pages: must be in 1..{REGION_PAGES}, got {self.run_pages!r}")
        return FragmentConfig(
            node_bytes=int(node),
            alloc_bytes=int(alloc),
            free_ratio=float(r),
            pattern=self.pattern,
            seed=int(self.seed),
            reserved_bytes=int(reserved),
            run_pages=int(self.run_pages),
        )


def free_offsets(config: FragmentConfig, rng: np.random.Generator, nregions: int) -> np.ndarray:
    """(nregions, k) offsets (0..511) freed in each 2 MB region; k = round(free_ratio x 512).

    even: k offsets evenly spaced from offset 0 (for 50%: 0, 2, 4, ...); random: k distinct
    offsets drawn per region; clustered: runs of run_pages consecutive pages, the runs evenly
    spaced from offset 0.
    """
    k = int(round(config.free_ratio * REGION_PAGES))
    if k == 0 or nregions == 0:
        return np.zeros((nregions, 0), dtype=np.int16)
    if config.pattern == "even":
        one = (np.arange(k) * REGION_PAGES // k).astype(np.int16)
        return np.broadcast_to(one, (nregions, k))
    if config.pattern == "clustered":
        run = config.run_pages
        nruns = -(-k // run)
        slots = REGION_PAGES // run
        starts = np.arange(nruns) * slots // nruns * run
        one = (starts[:, None] + np.arange(run)).ravel()[:k].astype(np.int16)
        return np.broadcast_to(np.sort(one), (nregions, k))
    out = np.empty((nregions, k), dtype=np.int16)
    for lo in range(0, nregions, RANDOM_CHUNK_REGIONS):  # per chunk of regions, not per page
        hi = min(nregions, lo + RANDOM_CHUNK_REGIONS)
        keys = rng.random((hi - lo, REGION_PAGES), dtype=np.float32)
        part = np.argpartition(keys, k - 1, axis=1)[:, :k] if k < REGION_PAGES else None
        out[lo:hi] = np.sort(part, axis=1) if part is not None else np.arange(REGION_PAGES)
    return out


def fragment(config: FragmentConfig, *, node_cpus: int = 64, pcp_high=None, pcp_batch=None) -> Zone:
    """Build the zone of a node fragmented as `config` says (the fragmenter stays alive: its
    pages stay mapped). Content tags are 1 + the page's index in the fragmenter's mapping."""
    cfg = config.resolved()
    nr_pages = cfg.node_bytes // PAGE_SIZE
    zone = Zone(nr_pages, node_cpus=node_cpus, pcp_high=pcp_high, pcp_batch=pcp_batch)
    alloc_pages = cfg.alloc_bytes // PAGE_SIZE
    reserved_pages = cfg.reserved_bytes // PAGE_SIZE
    rng = np.random.default_rng(cfg.seed)
    st = zone.state
    # kernel memory at the end of the zone, in unmovable pageblocks
    if reserved_pages:
        st[nr_pages - reserved_pages :] = KERNEL
        zone.migratetype[(nr_pages - reserved_pages) // PAGEBLOCK_NR_PAGES :] = MIGRATE_UNMOVABLE
    # the fragmenter's anonymous pages, touched: ascending frames from the zone start; the
    # content tag of a page is 1 + its index in the mapping = pfn + 1 (tag_delta stays 0)
    # MADV_DONTNEED of free_ratio of every 2 MB region
    nregions = -(-alloc_pages // REGION_PAGES)
    offs = free_offsets(cfg, rng, nregions)
    full = alloc_pages // REGION_PAGES
    if offs.shape[1] and cfg.pattern in ("even", "clustered"):
        # every whole region written once, mapped and freed pages together
        st[full * REGION_PAGES : alloc_pages] = LRU
    else:
        st[:alloc_pages] = LRU
    if offs.shape[1]:
        view_st = st[: full * REGION_PAGES].reshape(full, REGION_PAGES)
        if cfg.pattern in ("even", "clustered"):
            one = np.full(REGION_PAGES, LRU, dtype=np.uint8)
            one[offs[0].astype(np.intp)] = FREE
            view_st[:] = one
        else:
            rows = np.arange(full)[:, None]
            view_st[rows, offs[:full]] = FREE
        if full < nregions:  # a partial last region
            base = full * REGION_PAGES
            o = offs[full].astype(np.int64)
            o = o[base + o < alloc_pages] + base
            st[o] = FREE
    zone.recount()
    return zone


def metrics(zone: Zone) -> dict:
    """Fragmentation metrics of a zone: free pages, free blocks per order (the
    /proc/buddyinfo line), the unusable free space index and the fragmentation index for
    order 9 (mm/vmstat.c: unusable_free_index, __fragmentation_index)."""
    counts = zone.free_area_counts()
    free_pages = int(zone.nr_free)
    return {
        "free_pages": free_pages,
        "free_bytes": free_pages * PAGE_SIZE,
        "buddyinfo": [int(c) for c in counts],
        "unusable_index_9": unusable_free_index(counts, PAGEBLOCK_ORDER),
        "fragmentation_index_9": fragmentation_index(counts, PAGEBLOCK_ORDER) / 1000.0,
        "lru_pages": zone.count_state(LRU),
        "movable_blocks": int(np.count_nonzero(zone.migratetype == MIGRATE_MOVABLE)),
    }


def unusable_free_index(counts: np.ndarray, order: int) -> float:
    """Fraction of free memory that cannot be used for an allocation of `order` (0..1)."""
    sizes = 1 << np.arange(NR_ORDERS)
    total = int((counts * sizes).sum())
    if total == 0:
        return 0.0
    usable = int((counts[order:] * sizes[order:]).sum())
    return (total - usable) / total


def fragmentation_index(counts: np.ndarray, order: int) -> int:
    """__fragmentation_index() x 1000: -1000 if a block of `order` is free, near 0 when an
    allocation would fail for lack of memory, near 1000 when it fails for fragmentation."""
    if not 0 <= order <= MAX_PAGE_ORDER:
        raise ValueError(f"order: must be in 0..{MAX_PAGE_ORDER}, got {order}")
    sizes = 1 << np.arange(NR_ORDERS)
    blocks_total = int(counts.sum())
    if blocks_total == 0:
        return 0
    if counts[order:].sum() > 0:
        return -1000
    free_pages = int((counts * sizes).sum())
    return 1000 - (1000 + free_pages * 1000 // (1 << order)) // blocks_total


# -- save / load ----------------------------------------------------------------------------
def save_state(zone: Zone, path: str | os.PathLike, config: FragmentConfig | None = None) -> None:
    """Write the zone's frames and pageblocks to an .npz file (temporary name, then rename).
    The per-CPU lists must be empty (drained), as after the fragmenter has run."""
    if zone.pcp.count:
        raise ValueError("zone: drain the per-CPU lists before saving the state")
    path = Path(path)
    meta = {
        "format": STATE_FORMAT,
        "nr_pages": zone.nr_pages,
        "pcp_high": zone.pcp.high,
        "pcp_batch": zone.pcp.batch,
        "config": asdict(config.resolved()) if config is not None else None,
    }
    with atomic_open(path, "wb") as fh:
        moved, delta = zone.moved_tags()  # sparse: most pages never moved
        np.savez(
            fh,
            state=zone.state,
            tag_idx=moved,
            tag_val=delta,
            migratetype=zone.migratetype,
            skip=zone.skip,
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        )


def _not_a_state(path: Path, why: str) -> ValueError:
    return ValueError(
        f"state: {path} is not a migsim zone state ({why}); make one with the "
        "pipeline's fragment stage (results/state/) or migsim.kernel.fragment.save_state"
    )


def read_state_meta(path: str | os.PathLike) -> dict:
    """The metadata of a saved state (format, nr_pages, pcp sizes, the config that made it),
    without loading its arrays; ValueError naming the file for anything that is not one (an
    empty or truncated file, another format). Never unpickles: arrays load with
    allow_pickle=False."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"state: no such file {path}")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"PK\x03\x04":
        raise _not_a_state(path, "empty file" if not magic else "not an .npz archive")
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(npz["meta"].tobytes().decode())
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise _not_a_state(path, f"{type(exc).__name__}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(f"state: {path} has format {fmt}, expected {STATE_FORMAT}")
    if not isinstance(meta.get("nr_pages"), int) or meta["nr_pages"] < 1:
        raise _not_a_state(path, "no page count")
    return meta


def load_state(path: str | os.PathLike) -> tuple[Zone, FragmentConfig | None]:
    """Load a zone saved by :func:`save_state`; returns it with the config that made it."""
    path = Path(path)
    meta = read_state_meta(path)
    with np.load(path, allow_pickle=False) as npz:
        try:
            n = int(meta["nr_pages"])
            zone = Zone(
                n,
                pcp_high=meta["pcp_high"],
                pcp_batch=meta["pcp_batch"],
                state=npz["state"],
            )
            idx, val = npz["tag_idx"], npz["tag_val"]
            if idx.shape != val.shape or (len(idx) and (idx.min() < 0 or idx.max() >= n)):
                raise ValueError(f"state: {path}: content tags do not fit the zone")
            zone.set_tag_offsets(idx, val)
            for name in ("migratetype", "skip"):
                arr = npz[name]
                dst = getattr(zone, name)
                if arr.shape != dst.shape or arr.dtype != dst.dtype:
                    raise ValueError(f"state: {path}: array {name} has the wrong shape or type")
                dst[...] = arr
        except KeyError as exc:
            raise ValueError(f"state: {path} is not a migsim zone state ({exc})") from None
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise _not_a_state(path, f"{type(exc).__name__}: {exc}") from None
    zone.recount()
    cfg = meta.get("config")
    return zone, (FragmentConfig(**cfg) if cfg else None)
