"""Units and kernel constants (x86_64, 4 KiB base pages)."""

from __future__ import annotations

import re

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT  # bytes
PAGEBLOCK_ORDER = 9  # pageblock_order on x86_64 with THP
PAGEBLOCK_NR_PAGES = 1 << PAGEBLOCK_ORDER  # 512 base pages, 2 MiB
MAX_PAGE_ORDER = 10  # free lists for orders 0..MAX_PAGE_ORDER
HPAGE_PMD_ORDER = 9  # a 2 MiB folio is mapped by one PMD
HPAGE_PMD_NR = 1 << HPAGE_PMD_ORDER
HPAGE_PUD_NR = 1 << 18  # 262144 base pages, 1 GiB
NR_MAX_BATCHED_MIGRATION = HPAGE_PMD_NR  # 512 base pages in mainline
COMPACT_CLUSTER_MAX = 32  # = SWAP_CLUSTER_MAX

_SUFFIX = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(value: str | int, *, name: str = "size") -> int:
    """Parse `4K`, `2M`, `1G`, `1.5G`, `4096` (bytes) into a byte count.

    Raises ValueError naming `name` when the value is not a size.
    """
    if isinstance(value, bool):
        raise ValueError(
            f"{name}: expected a size such as 4K, 2M, 1G or a byte count, got {value!r}"
        )
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"{name}: must be a positive size, got {value}")
        return value
    m = _SIZE_RE.match(str(value))
    if not m:
        raise ValueError(
            f"{name}: expected a size such as 4K, 2M, 1G or a byte count, got {value!r}"
        )
    number, suffix = m.groups()
    nbytes = float(number) * _SUFFIX[suffix.upper()]
    if nbytes <= 0 or nbytes != int(nbytes):
        raise ValueError(f"{name}: must be a positive whole number of bytes, got {value!r}")
    return int(nbytes)


def format_size(nbytes: int) -> str:
    """Format a byte count the way the published tables label folio sizes: 4K, 2M, 1G."""
    for suffix, unit in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if nbytes >= unit and nbytes % unit == 0:
            return f"{nbytes // unit}{suffix}"
    return str(nbytes)


def folio_order(folio_bytes: int, *, name: str = "folio_size") -> int:
    """Order of a folio of `folio_bytes` (a power-of-two multiple of PAGE_SIZE, at most 1 GiB)."""
    pages, rem = divmod(folio_bytes, PAGE_SIZE)
    if rem or pages <= 0 or pages & (pages - 1):
        raise ValueError(
            f"{name}: must be a power-of-two multiple of 4K (4K, 8K, ..., 2M), got {folio_bytes} bytes"
        )
    order = pages.bit_length() - 1
    if order > 18:
        raise ValueError(f"{name}: at most 1G (order 18), got {format_size(folio_bytes)}")
    return order


def ptes_per_folio(folio_bytes: int) -> int:
    """Page-table entries that map one folio: 1 for a PMD-mapped 2 MiB THP, one PTE per base
    page for smaller (mTHP) folios. Larger folios are modelled as PMD-mapped 2 MiB pieces."""
    pages = folio_bytes // PAGE_SIZE
    if pages >= HPAGE_PMD_NR:
        return pages // HPAGE_PMD_NR
    return pages
