"""The series study: every published throughput number of the batch-copy series (all
reference tables, every version; ``migsim.calibrate.series``) beside its simulation with the
90% interval, fitted or predicted, the error and whether the published value lies inside
(results/series/published.*, ``migsim reproduce all``)."""

from __future__ import annotations

from pathlib import Path

from migsim.calibrate.series import REFERENCE_DIR, read_series, simulate_cell
from migsim.cost.platform import Platform
from migsim.units import format_size


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
