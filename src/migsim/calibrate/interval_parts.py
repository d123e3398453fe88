"""What makes an interval wide: each published cell's interval split into the variance shares
of its parts (fit, priors, trial noise, model discrepancy; migsim.calibrate.intervals), with
the coverage and median width per table.

    python -m migsim.calibrate.interval_parts [--table all] [--holdout]

Apart from migsim.calibrate.intervals because --holdout refits (calibrate.throughput), which
itself uses the intervals' gradients."""

from __future__ import annotations

import numpy as np

from migsim.calibrate.intervals import cell_key, result_cell, result_interval
from migsim.cost.platform import Platform


def parts_rows(platform: Platform, cells, trials: int = 5) -> list[dict]:
    """One row per published cell (SeriesCell): the interval, its four parts and the largest
    prior, as shares of the variance, and whether the published value is inside."""
    from migsim.calibrate.series import simulate_cell

    st = platform.meta.get("stage1", {})
    rows = []
    for c in cells:
        r = simulate_cell(platform, c, trials=trials)
        cell = result_cell(r)
        iv = result_interval(platform, r)
        pp = iv.prior_sd
        top = max(pp, key=pp.get)
        var = iv.sd_log**2
        rows.append(
            {
                "table": c.table,
                "mode": c.mode,
                "k": c.channels_or_threads,
                "folio_bytes": c.folio_bytes,
                "folios": c.folios,
                "placement": c.placement,
                "leverage": float(st.get("leverage", {}).get(cell_key(cell), 0.0)),
                "width_frac": (iv.hi - iv.lo) / r.mean_gbps,
                "inside": bool(iv.lo <= c.gbps <= iv.hi),
                "error_pct": 100.0 * (r.mean_gbps / c.gbps - 1.0),
                **{f"{k}_share": v**2 / var for k, v in iv.parts.items()},
                "sd_log": iv.sd_log,
                "top_prior": top,
                "top_prior_share": pp[top] ** 2 / var,
            }
        )
    return rows


def summary(rows: list[dict]) -> str:
    """Coverage and median width of `rows` (parts_rows) as one line."""
    n = len(rows)
    inside = sum(r["inside"] for r in rows)
    width = float(np.median([r["width_frac"] for r in rows])) if rows else float("nan")
    return f"{n} cells, {inside} inside ({100 * inside / n:.1f}%), median width {100 * width:.1f}%"


def format_rows(rows: list[dict]) -> str:
    """parts_rows as a fixed-width table (shares of the interval's variance, in %)."""
    from migsim.units import format_size

    head = (
        f"{'table':22} {'mode':8} {'k':>3} {'folio':>5} {'folios':>6} {'lev':>5} {'width':>6} "
        f"{'in':>3} {'err':>7} {'fit':>5} {'prior':>5} {'noise':>5} {'disc':>5}  largest prior"
    )
    lines = [head]
    for r in rows:
        k = "" if r["k"] is None else r["k"]
        mode = r["mode"] if r["placement"] == "spread" else f"{r['mode']}/f"
        lines.append(
            f"{r['table']:22} {mode:8} {k:>3} {format_size(r['folio_bytes']):>5} "
            f"{r['folios']:>6} {r['leverage']:5.3f} {100 * r['width_frac']:5.1f}% "
            f"{'yes' if r['inside'] else 'no':>3} {r['error_pct']:+6.1f}% "
            f"{100 * r['fit_share']:5.1f} {100 * r['priors_share']:5.1f} "
            f"{100 * r['noise_share']:5.1f} {100 * r['discrepancy_share']:5.1f}  "
            f"{r['top_prior']} {100 * r['top_prior_share']:.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print what makes each published cell's interval wide (the variance shares of its
    parts), per table, with the coverage and the median width; --holdout also refits on
    baseline + DMA {1, 4, 16} and shows the held-out rows {2, 8, 12}."""
    import argparse

    from migsim.calibrate.series import TABLES, read_table
    from migsim.cost.platform import load_platform
    from migsim.paths import DEFAULT_PLATFORM_FILE

    ap = argparse.ArgumentParser(prog="python -m migsim.calibrate.interval_parts")
    ap.add_argument("--platform", default=DEFAULT_PLATFORM_FILE)
    ap.add_argument("--table", default="move_pages_throughput", choices=[*TABLES, "all"])
    ap.add_argument("--holdout", action="store_true")
    args = ap.parse_args(argv)
    platform = load_platform(args.platform)
    for t in TABLES if args.table == "all" else [args.table]:
        rows = parts_rows(platform, read_table(t))
        print(format_rows(rows))
        print(f"{t}: {summary(rows)}\n")
    if args.holdout:
        from migsim.calibrate.throughput import fit_throughput, read_reference
        from migsim.paths import REFERENCE_DIR

        v4 = read_reference(f"{REFERENCE_DIR}/move_pages_throughput.csv")
        train = [c for c in v4 if c.mode == "baseline" or c.channels in (1, 4, 16)]
        held = fit_throughput(v4, "holdout", fit_cells=train).platform
        rows = parts_rows(held, read_table("move_pages_throughput"))
        for label, sel in (
            ("fitted", [r for r in rows if r["mode"] == "baseline" or r["k"] in (1, 4, 16)]),
            ("held out", [r for r in rows if r["mode"] == "dma" and r["k"] in (2, 8, 12)]),
        ):
            print(format_rows(sel))
            print(f"channel hold-out, {label}: {summary(sel)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
