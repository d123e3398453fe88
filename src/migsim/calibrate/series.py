"""Every published throughput run of the batch-copy series as one list of cells.

The reference CSVs (``config/reference/``) come from different versions of the series on the
same machine: the v4 table (``move_pages_throughput.csv``) and the v2 cover letter's tables
(multi-threaded copy per folio size, thread placement, one call of 1..8192 2M folios). Each
cell records which version ran, what was moved and what was published; ``simulate_cell``
runs the engine for it with that version's driver code (``--rfc``). The fit reads these
tables; the simulator never does.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from migsim.cost.platform import Platform
from migsim.paths import REFERENCE_DIR as _REFERENCE_DIR
from migsim.units import parse_size

REFERENCE_DIR = Path(_REFERENCE_DIR)
GiB = 1 << 30

# table name -> (file, series version)
TABLES = {
    "move_pages_throughput": ("move_pages_throughput.csv", "v4"),
    "v2_mt_throughput": ("v2_mt_throughput.csv", "v2"),
    "v2_mt_placement_2M": ("v2_mt_placement_2M.csv", "v2"),
    "v2_folio_count_2M": ("v2_folio_count_2M.csv", "v2"),
}
PLACEMENT_NAMES = {"spread_across_ccds": "spread", "fill_one_ccd_first": "fill-ccd"}


@dataclass(frozen=True)
class SeriesCell:
    """One published number: a move_pages() run of `folios` folios of `folio_bytes`."""

    rfc: str
    table: str
    mode: str  # baseline, dma, mt
    channels_or_threads: int | None
    folio_bytes: int
    folios: int
    placement: str  # spread or fill-ccd (mt); spread otherwise
    gbps: float
    sd_gbps: float

    @property
    def total_bytes(self) -> int:
        return self.folios * self.folio_bytes


def _read(path: Path) -> list[dict]:
    """Rows of a reference CSV (comment lines start with #); empty fields as None."""
    with open(path, newline="") as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return [{k: (v if v != "" else None) for k, v in r.items()} for r in rows]


def read_table(table: str, ref_dir: Path = REFERENCE_DIR) -> list[SeriesCell]:
    """The cells of one reference table."""
    if table not in TABLES:
        raise ValueError(f"table: must be one of {', '.join(TABLES)}; got {table!r}")
    name, rfc = TABLES[table]
    cells = []
    for r in _read(Path(ref_dir) / name):
        if table == "v2_folio_count_2M":
            n, mode, size, k, place = int(r["folios"]), r["mode"], 2 << 20, 1, "spread"
        else:
            size = parse_size(r.get("folio_size") or "2M")
            mode = r.get("mode") or "mt"
            k = r.get("channels", r.get("threads"))
            place = PLACEMENT_NAMES.get(r.get("placement") or "", "spread")
            n = GiB // size
        cells.append(
            SeriesCell(
                rfc=rfc,
                table=table,
                mode=mode,
                channels_or_threads=None if k is None else int(k),
                folio_bytes=size,
                folios=n,
                placement=place,
                gbps=float(r["throughput_gbps"]),
                sd_gbps=float(r["stddev_gbps"]),
            )
        )
    return cells


def read_series(ref_dir: Path = REFERENCE_DIR) -> list[SeriesCell]:
    """Every cell of every reference throughput table, in table order."""
    return [c for t in TABLES for c in read_table(t, ref_dir)]


def simulate_cell(platform: Platform, cell: SeriesCell, *, trials: int = 5, seed: int = 1):
    """run_throughput for the published run `cell`, with its version's driver code."""
    from migsim.studies.throughput import run_throughput

    k = cell.channels_or_threads
    return run_throughput(
        platform,
        mode=cell.mode,
        folio_size=cell.folio_bytes,
        channels=k if cell.mode == "dma" else None,
        threads=k if cell.mode == "mt" else None,
        total_bytes=cell.total_bytes,
        trials=trials,
        seed=seed,
        rfc=cell.rfc,
        placement=cell.placement,
    )
