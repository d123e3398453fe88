"""Calibration, stage 2: the compaction-specific costs, fitted on the published *baseline*
compaction row only.

Everything from stage 1 (the throughput fit: CPU per-folio and per-PTE costs, copy and DMA
figures) stays fixed. The page-level simulation of a run does not depend on any cost, so the
full-scale run is simulated once and only re-costed while ``scipy.optimize.least_squares``
moves the free parameter. One published row gives one usable number (its wall time: its sys%
is ~100% for any cost), so one parameter is free: ``compaction.isolate_page_us``, the
per-migrated-page work of compaction that no other measurement constrains. The other
compaction costs and all scheduler constants are documented physical priors (``STAGE2_PRIORS``
below), chosen before looking at the dma / busy rows, which are then *predictions*. The
reference table is read here, by the fit, and never by the simulator.

The DMA channel count of the published compaction runs is not stated; dcbm's default
nr_dma_chan is 1 and the reply gives no other value, so the predictions use 1
(``experiments.compaction.DEFAULT_CHANNELS``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from .atomic import atomic_write_text
from .experiments.compaction import DEFAULT_CHANNELS, MODES, CompactionResult, simulate
from .platform import Platform, save_platform

# Priors: values the baseline row cannot determine, with the reason for each value.
STAGE2_PRIORS: dict[str, dict[str, float]] = {
    "compaction": {
        # one struct page per pfn, read sequentially (the memmap streams through the
        # prefetchers): flag tests and the loop, ~30 cycles
        "migrate_scan_pfn_us": 0.01,
        "free_scan_pfn_us": 0.01,
        # fitted (start value): LRU isolation and the struct-page cache misses around a page
        "isolate_page_us": 1.0,
        # __isolate_free_page: list_del from the order-0 free list touches two neighbouring
        # struct pages at random addresses (~2 DRAM misses), watermark check, post_alloc_hook
        "free_isolate_page_us": 0.2,
        # __free_one_page: buddy lookup and list insertion, one or two cache misses
        "buddy_free_page_us": 0.15,
        # per direct-compaction attempt: two get_page_from_freelist() walks, watermark and
        # compaction_suitable()/fragmentation_index() checks, compact_zone() set-up
        "slowpath_us": 5.0,
        # published machine: 32-core EPYC per socket with SMT, one node per socket
        "node_cpus_count": 64,
    },
    "sched": {
        # schedule() + switch_to + return to the other task with Zen 3 mitigations
        "ctx_switch_us": 2.0,
        # PTDMA completion: hard irq entry/exit, status MMIO reads, the dmaengine callback,
        # complete() and try_to_wake_up() of the sleeping task
        "completion_irq_us": 5.0,
        # EEVDF base slice 0.75 ms x (1 + ilog2(min(nr_cpus, 8))) = 3 ms
        "slice_us": 3000.0,
        # EPYC 7543 (Zen 3, 32 cores) max boost clock, performance governor
        "hog_clock_ghz": 3.7,
        # counter++ with an empty asm barrier: one loop-carried add per cycle
        "hog_iters_per_cycle": 1.0,
    },
}

# (section, key, lower bound, upper bound)
FREE: list[tuple[str, str, float, float]] = [("compaction", "isolate_page_us", 0.0, 50.0)]


def with_stage2_priors(values: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """A copy of a platform's parameter dict with the compaction and sched sections filled
    from STAGE2_PRIORS where missing (for a stage-1 fit that builds its Platform first)."""
    out = {sec: dict(v) for sec, v in values.items()}
    for sec, params in STAGE2_PRIORS.items():
        out.setdefault(sec, {})
        for key, v in params.items():
            out[sec].setdefault(key, v)
    return out


def read_compaction_reference(path: str | Path) -> pl.DataFrame:
    """The published compaction table (one row per mode)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"reference: no such file {path}")
    df = pl.read_csv(path, comment_prefix="#")
    need = {"mode", "wall_ms", "pages_migrated", "user_pct", "sys_pct", "idle_pct"}
    if not need <= set(df.columns) or set(df["mode"].to_list()) != set(MODES):
        raise ValueError(f"reference: {path} is not the compaction table (modes {MODES})")
    return df


def _with(platform: Platform, x: np.ndarray) -> Platform:
    return platform.replace(
        **{f"{s}__{k}": float(v) for (s, k, _, _), v in zip(FREE, x, strict=True)}
    )


def fit_compaction(
    platform: Platform,
    reference_csv_path: str | Path,
    *,
    seed: int = 1,
    channels: int = DEFAULT_CHANNELS,
    **sim_kwargs,
) -> tuple[Platform, pl.DataFrame]:
    """Fit FREE on the published baseline row's wall time (log residual); return the fitted
    platform and a residual table of all four rows (the other three are predictions).
    `sim_kwargs` (node_bytes, allocations, ...) change the simulated run from the published
    full-scale one (for tests)."""
    from scipy.optimize import least_squares  # scipy only inside a fit (~0.5 s import)

    ref = read_compaction_reference(reference_csv_path)
    base = ref.filter(pl.col("mode") == "baseline").row(0, named=True)
    if "compaction" not in platform.as_dict():
        raise ValueError("platform: has no compaction section; build it with with_stage2_priors")
    sim = simulate(platform, seed=seed, **sim_kwargs)  # the page-level run: no cost in it
    x0 = np.array([platform.as_dict()[s][k] for s, k, _, _ in FREE])
    lo = np.array([b for _, _, b, _ in FREE])
    hi = np.array([b for _, _, _, b in FREE])

    def residual(x: np.ndarray) -> np.ndarray:
        r = sim.result(_with(platform, x), mode="baseline")
        return np.array([np.log(r.wall_ms / base["wall_ms"])])

    sol = least_squares(residual, np.clip(x0, lo, hi), bounds=(lo, hi), x_scale=x0.clip(0.1))
    fitted = _with(platform, sol.x)
    rows = [sim.result(fitted, mode=m, channels=channels) for m in MODES]
    return fitted, residual_table(ref, rows)


def residual_table(ref: pl.DataFrame, results: list[CompactionResult]) -> pl.DataFrame:
    """Published against simulated, per mode and metric; `fitted` marks the fitted cell."""
    pub = {r["mode"]: r for r in ref.iter_rows(named=True)}
    sim = {r.mode: r.row() for r in results}
    out = []
    for mode in MODES:
        p, s = pub[mode], sim[mode]
        for metric in ("wall_ms", "pages_migrated", "dma_copies", "hog_iterations"):
            if p.get(metric) is None or s.get(metric) is None:
                continue
            out.append(
                {
                    "mode": mode,
                    "metric": metric,
                    "published": float(p[metric]),
                    "model": float(s[metric]),
                    "error": 100.0 * (s[metric] / p[metric] - 1.0),
                    "unit": "pct",
                    "fitted": mode == "baseline" and metric == "wall_ms",
                }
            )
        for metric in ("user_pct", "sys_pct", "idle_pct"):
            out.append(
                {
                    "mode": mode,
                    "metric": metric,
                    "published": float(p[metric]),
                    "model": float(s[metric]),
                    "error": float(s[metric] - p[metric]),
                    "unit": "points",
                    "fitted": False,
                }
            )
    if pub["busy-baseline"].get("hog_iterations") and sim["busy-baseline"]["hog_iterations"]:
        gp = pub["busy-dma"]["hog_iterations"] / pub["busy-baseline"]["hog_iterations"] - 1
        gs = sim["busy-dma"]["hog_iterations"] / sim["busy-baseline"]["hog_iterations"] - 1
        out.append(
            {
                "mode": "busy-dma",
                "metric": "hog_gain_pct",
                "published": 100 * gp,
                "model": 100 * gs,
                "error": 100 * (gs - gp),
                "unit": "points",
                "fitted": False,
            }
        )
    return pl.DataFrame(out).sort(["mode", "metric"])


def calibrate_stage2(
    platform: Platform,
    reference_csv_path: str | Path,
    platform_path: str | Path,
    residuals_path: str | Path,
    *,
    header: str = "",
) -> Platform:
    """Stage 2 of ``migsim calibrate``: fit, then write the platform (all sections) and the
    compaction residuals (CSV), each atomically. Returns the fitted platform."""
    fitted, resid = fit_compaction(platform, reference_csv_path)
    ((s, k, _, _),) = FREE
    note = (
        f"# Stage 2 (migsim.calibrate_compaction): {s}.{k} fitted on the published baseline "
        f"compaction row\n# (wall {resid.filter((pl.col('mode') == 'baseline') & (pl.col('metric') == 'wall_ms'))['error'][0]:+.2f}%); "
        "the dma and busy rows are predictions, see the residuals file."
    )
    save_platform(fitted, platform_path, header=(header + "\n" if header else "") + note)
    atomic_write_text(residuals_path, resid.write_csv(float_precision=4))
    return fitted
