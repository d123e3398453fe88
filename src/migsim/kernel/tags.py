"""The content tags of a zone's frames, stored in about one byte per frame.

A page's content tag is fixed when the fragmenter maps it (1 + its index in the mapping, so
pfn + 1) and travels with its content: folio_copy() of the page at pfn `src` to the frame `dst`
gives `dst` the tag `src` had. The zone keeps, per frame, the offset ``delta = tag - pfn - 1``
(0 for a page that never moved). A dense int32 per frame costs 4 bytes for every frame the
free scanner ever filled (36 MiB after the full-scale run: the 4.7 M moved pages are spread
over 9.4 M frames of the top of the zone), so the offsets are kept narrower here, with the
same values:

- ``code``: a uint8 per frame, 0 for ``delta == 0`` and ``delta - base[group] + 1``
  otherwise (1..255), a group being 64 aligned frames;
- ``base``: an int64 per group, set at the first nonzero offset written to it (centred on that
  value); the pages that land in 64 neighbouring frames are consecutive pages of the migration
  scanner's batches, so their offsets lie close together (the full-scale run: every group
  within 253);
- a group whose offsets do not fit is "wide": its 64 offsets move to an int32 row (``wide``),
  which then holds them exactly, whatever they are.

After the full-scale run that is 9 MiB of codes and 1.2 MiB of bases, no wide group. Like the
int32 array it replaces, ``code`` and ``base`` are allocated zeroed (np.zeros): frames that
never held a moved page are never written and cost no memory. An offset is stored as the int32
the dense array held (the value mod 2^32: nodes above 8 TiB wrap as they did).
"""

from __future__ import annotations

import numpy as np

GROUP_ORDER = 6  # 64 frames share one base
GROUP_FRAMES = 1 << GROUP_ORDER

_SPAN = int(np.iinfo(np.uint8).max)  # codes 1.._SPAN: base + 0 .. base + _SPAN - 1
_CENTRE = _SPAN // 2  # a new base: the first offset written sits in the middle of the span


class ContentTags:
    """Content-tag offsets (``tag - pfn - 1``) of `nr_pages` frames; `delta`: an initial
    dense int32 array of them (None: all 0)."""

    def __init__(self, nr_pages: int, delta: np.ndarray | None = None):
        self.nr_pages = int(nr_pages)
        nr_groups = -(-self.nr_pages // GROUP_FRAMES)
        self.code = np.zeros(self.nr_pages, dtype=np.uint8)
        # zeroed, as `code` is (untouched pages cost nothing): base 0 means "no base yet" (a
        # base is never 0, see put), wide_row 0 "not wide" (else 1 + the row of `wide`)
        self.base = np.zeros(nr_groups, dtype=np.int64)
        self.wide_row = np.zeros(nr_groups, dtype=np.int32)
        self.wide = np.zeros((0, GROUP_FRAMES), dtype=np.int32)
        self._wraps = self.nr_pages > 1 << 31  # deltas may exceed int32 (stored mod 2^32)
        if delta is not None:
            pfns = np.flatnonzero(delta)
            self.put(pfns, delta[pfns].astype(np.int64))

    def get(self, pfns: np.ndarray) -> np.ndarray:
        """The offsets of the frames `pfns` (int64 array of pfns), int64."""
        groups = pfns >> GROUP_ORDER
        code = self.code[pfns]
        out = self.base[groups]
        out += code
        out -= 1
        out[code == 0] = 0
        if len(self.wide):
            row = self.wide_row[groups]
            wide = row > 0
            if wide.any():
                out[wide] = self.wide[row[wide] - 1, pfns[wide] & (GROUP_FRAMES - 1)]
        return out

    def put(self, pfns: np.ndarray, delta: np.ndarray) -> None:
        """Set the offsets of the frames `pfns` (int64, each frame once) to `delta` (int64;
        the caller's array may be changed)."""
        if self._wraps:
            delta = delta.astype(np.int32).astype(np.int64)
        groups = pfns >> GROUP_ORDER
        if len(self.wide):
            row = self.wide_row[groups]
            wide = row > 0
            if wide.any():
                self.wide[row[wide] - 1, pfns[wide] & (GROUP_FRAMES - 1)] = delta[wide]
                keep = ~wide
                pfns, groups, delta = pfns[keep], groups[keep], delta[keep]
        zero = delta == 0
        base = self.base[groups]
        new = (base == 0) & ~zero
        if new.any():  # one of the group's values becomes its centre (any one: checked below)
            centre = delta[new] - _CENTRE
            centre[centre == 0] = 1  # never 0 ("no base"): that value then sits at code _CENTRE
            self.base[groups[new]] = centre
            base = self.base[groups]
        delta -= base
        delta += 1
        delta[zero] = 0
        bad = ((delta < 1) | (delta > _SPAN)) & ~zero
        if bad.any():  # rare: a group whose offsets do not fit around its base
            delta += base - 1  # back to the offsets, for the wide rows
            delta[zero] = 0
            self._widen(np.unique(groups[bad]))
            self.put(pfns, delta)
            return
        self.code[pfns] = delta

    def _widen(self, groups: np.ndarray) -> None:
        """Move the offsets of `groups` (distinct, none wide yet) to int32 rows of their own."""
        pfns = (groups[:, None] * GROUP_FRAMES + np.arange(GROUP_FRAMES)).ravel()
        inside = pfns < self.nr_pages
        rows = np.zeros(len(pfns), dtype=np.int32)
        rows[inside] = self.get(pfns[inside])
        self.wide_row[groups] = len(self.wide) + 1 + np.arange(len(groups), dtype=np.int32)
        self.wide = np.concatenate([self.wide, rows.reshape(len(groups), GROUP_FRAMES)])
        self.code[pfns[inside]] = 0

    def nonzero(self) -> tuple[np.ndarray, np.ndarray]:
        """The frames whose offset is not 0 (ascending int64) and their offsets (int32)."""
        pfns = np.flatnonzero(self.code)
        for row_group in np.flatnonzero(self.wide_row).tolist():
            lo = row_group * GROUP_FRAMES
            row = self.wide[self.wide_row[row_group] - 1]
            pfns = np.concatenate([pfns, lo + np.flatnonzero(row[: self.nr_pages - lo])])
        pfns = np.sort(pfns)
        return pfns, self.get(pfns).astype(np.int32)

    def dense(self) -> np.ndarray:
        """Every frame's offset as one int32 array (read-only: write with put)."""
        out = np.zeros(self.nr_pages, dtype=np.int32)
        pfns, delta = self.nonzero()
        out[pfns] = delta
        out.flags.writeable = False
        return out
