"""Synthetic snapshot files for the snapshot and twin tests: kpageflags as u64 per pfn, and
/proc text files in the kernel's layout (one node, one zone)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from migsim.host import snapshot as S

LRU_ANON = (1 << S.KPF_LRU) | (1 << S.KPF_ANON) | (1 << S.KPF_MMAP)
LRU_FILE = (1 << S.KPF_LRU) | (1 << 3)  # LRU, UPTODATE
FREE = 1 << S.KPF_BUDDY
SLAB = 1 << S.KPF_SLAB
HEAD, TAIL = 1 << S.KPF_COMPOUND_HEAD, 1 << S.KPF_COMPOUND_TAIL
DIRTY_PRIVATE = (1 << S.KPF_DIRTY) | (1 << S.KPF_PRIVATE)


def zoneinfo(
    nr_pages: int,
    nr_free: int,
    *,
    start: int = 0,
    wmark_min: int = 8,
    cpus: tuple[tuple[int, int], ...] = ((0, 1000),),
) -> str:
    """A /proc/zoneinfo with one Normal zone (and an empty Movable zone after it); `cpus`: the
    (count, high) of each CPU's pageset, CPU 0 first."""
    sets = "".join(
        f"    cpu: {c}\n              count:    {count}\n              high:     {high}\n"
        f"              batch:    63\n  vm stats threshold: 24\n"
        for c, (count, high) in enumerate(cpus)
    )
    return (
        f"Node 0, zone   Normal\n  pages free     {nr_free}\n"
        f"        boost    0\n        min      {wmark_min}\n        low      {wmark_min + 2}\n"
        f"        high     {wmark_min + 4}\n        spanned  {nr_pages}\n"
        f"        present  {nr_pages}\n        managed  {nr_pages}\n"
        f"      nr_free_pages {nr_free}\n  pagesets\n{sets}"
        f"  node_unreclaimable:  0\n  start_pfn:           {start}\n"
        "Node 0, zone  Movable\n  pages free     0\n        spanned  0\n        present  0\n"
    )


def pagetypeinfo(counts: dict[str, int]) -> str:
    names = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "Isolate")
    head = "Number of blocks type     " + " ".join(f"{n:>12}" for n in names)
    row = "Node 0, zone   Normal " + " ".join(f"{counts.get(n, 0):>12}" for n in names)
    return f"Page block order: 9\nPages per block:  512\n\n{head}\n{row}\n"


def buddyinfo(orders: list[int]) -> str:
    return "Node 0, zone   Normal " + " ".join(f"{c:>6}" for c in orders) + "\n"


def snapshot(
    flags: np.ndarray,
    *,
    wmark_min: int = 8,
    types: dict | None = None,
    cpus: tuple[tuple[int, int], ...] = ((0, 1000),),
) -> S.Snapshot:
    """A Snapshot of one zone holding `flags` (pfns 0..len-1); `cpus` as for zoneinfo()."""
    nr_free = int(((flags & FREE) != 0).sum())
    nb = len(flags) // 512
    return S.build(
        flags.astype("<u8"),
        None,
        zoneinfo(len(flags), nr_free, wmark_min=wmark_min, cpus=cpus),
        pagetypeinfo(types or {"Movable": nb}),
        "",
    )


def write_dir(d: Path, flags: np.ndarray, count: np.ndarray | None, texts: dict[str, str]) -> Path:
    """Saved copies in the layout `migsim host snapshot --from DIR` reads."""
    d.mkdir(parents=True, exist_ok=True)
    flags.astype("<u8").tofile(d / "kpageflags")
    if count is not None:
        count.astype("<u8").tofile(d / "kpagecount")
    for name, text in texts.items():
        (d / name).write_text(text)
    return d
