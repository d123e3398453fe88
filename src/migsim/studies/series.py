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

from migsim.cost.platform import DEFAULT_PLATFORM, Platform
from migsim.units import format_size, parse_size

REFERENCE_DIR = Path(DEFAULT_PLATFORM).parents[1] / "reference"
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


def series_rows(
    platform: Platform, reference_dir: Path = REFERENCE_DIR, trials: int = 5, seed: int = 1
) -> list[dict]:
    """Every published throughput cell of every version's table, simulated with that
    version's code: one dict per cell with the 90% interval, the published value, whether
    the cell was fitted (calibrate FREE on the v4 table, MT_FREE on the v2 mt tables) or is
    a prediction, the error and whether the published value lies inside the interval."""
    from migsim.calibrate.intervals import result_interval
    from migsim.calibrate.throughput import mt_fit_cells

    cells = read_series(reference_dir)
    fitted = set(mt_fit_cells(cells)) | {c for c in cells if c.table == "move_pages_throughput"}
    rows = []
    for c in cells:
        r = simulate_cell(platform, c, trials=trials, seed=seed)
        iv = result_interval(platform, r)
        rows.append(
            {
                "rfc": c.rfc,
                "table": c.table,
                "mode": c.mode,
                "channels_or_threads": c.channels_or_threads,
                "folio_size": format_size(c.folio_bytes),
                "folios": c.folios,
                "placement": c.placement if c.mode == "mt" else None,
                "simulated_gbps": r.mean_gbps,
                "lo": iv.lo,
                "hi": iv.hi,
                "published_gbps": c.gbps,
                "published_sd_gbps": c.sd_gbps,
                "fitted": c in fitted,
                "error_pct": 100.0 * (r.mean_gbps / c.gbps - 1.0),
                "inside": bool(iv.lo <= c.gbps <= iv.hi),
            }
        )
    return rows


SERIES_COLUMNS = (
    "rfc", "table", "mode", "channels_or_threads", "folio_size", "folios", "placement",
    "simulated_gbps", "lo", "hi", "published_gbps", "published_sd_gbps", "fitted",
    "error_pct", "inside",
)  # fmt: skip


def series_markdown(rows: list[dict]) -> str:
    """The page of every published number as a Markdown table, with the summary per class."""
    head = "| version | table | mode | ch/thr | folio | folios | simulated | 90% interval | "
    head += "published | error | fitted | inside |\n|" + "---|" * 12 + "\n"
    lines = []
    for r in rows:
        k = "" if r["channels_or_threads"] is None else r["channels_or_threads"]
        mode = r["mode"] + (f" ({r['placement']})" if r["placement"] else "")
        lines.append(
            f"| {r['rfc']} | {r['table']} | {mode} | {k} | {r['folio_size']} | {r['folios']} | "
            f"{r['simulated_gbps']:.2f} | {r['lo']:.2f} .. {r['hi']:.2f} | "
            f"{r['published_gbps']:.2f} ± {r['published_sd_gbps']:.2f} | {r['error_pct']:+.1f}% | "
            f"{'fitted' if r['fitted'] else 'predicted'} | {'yes' if r['inside'] else 'no'} |"
        )
    tail = []
    for fitted in (True, False):
        sel = [r for r in rows if r["fitted"] is fitted]
        if sel:
            mape = sum(abs(r["error_pct"]) for r in sel) / len(sel)
            inside = 100.0 * sum(r["inside"] for r in sel) / len(sel)
            what = "fitted" if fitted else "predicted"
            tail.append(f"- {what}: {len(sel)} cells, MAPE {mape:.2f}%, {inside:.0f}% inside")
    return head + "\n".join(lines) + "\n\n" + "\n".join(tail) + "\n"
