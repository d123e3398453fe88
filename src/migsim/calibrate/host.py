"""Host calibration: fit a platform profile for *this* machine from the host probes.

``fit_host_platform(copy_df, compaction_df, base_platform)`` starts from a published platform
and replaces what the probes measure here:

- ``copy.cpu_copy_gbps`` and ``copy.cpu_copy_fixed_us`` from the copy probe: least squares on
  the log of the median time per folio, t(b) = fixed + b / bandwidth, over the folio sizes
  (random-order rows: migration copies between unrelated page frames);
- the CPU costs of migration and compaction (``COMPACTION_FREE``: per folio, per PTE, per TLB
  flush, per pfn scanned, per page isolated, per target isolated, per page freed to the buddy
  lists) from the compaction probe's rows at *one* fragmentation ratio (``calibration_ratio``,
  0.5 by default): the engine's own whole-zone compaction (``Compactor.compact_memory`` on a
  node holding the probe's region, costed by ``studies.compaction.cost_log``) is fitted
  to the measured median rate, pages per second of the compacting task's CPU time. One
  observable, one degree of freedom: the costs are scaled by a common factor, their relative
  sizes stay the published machine's; the run-to-run spread at that ratio gives
  ``noise.trial_sd_frac``; ``compaction.node_cpus_count`` is this machine's CPU count. The
  other ratios are then predictions.

Everything the probes cannot see -- the DMA engine, the copy threads -- keeps the published
engine's values, and the platform's ``meta`` says so (``meta["host"]["from_base"]``). The
measured data are read here, by the fit; the simulator never reads them.
"""

from __future__ import annotations

import functools
import os
import platform as _pyplatform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from migsim.cost.platform import SPEC, Platform

US = 1e-6

# Sections whose values stay at the base (published) platform's: the probes cannot see them.
FROM_BASE_SECTIONS = ("dma", "mt")


@dataclass
class CopyFit:
    """Fitted CPU copy parameters and the fit's per-size residuals."""

    cpu_copy_gbps: float
    cpu_copy_fixed_us: float
    access: str
    residuals: pl.DataFrame  # folio_size, folio_bytes, measured_us, fitted_us, rel_error


@dataclass
class CompactionFit:
    """Fitted compaction cost parameters and the measured/simulated rates they give."""

    params: dict[str, float]  # "section.key" -> value
    ratio: float
    measured_pages_per_s: float
    simulated_pages_per_s: float
    notes: list[str] = field(default_factory=list)


def copy_medians(copy_df: pl.DataFrame, access: str | None = None) -> pl.DataFrame:
    """Median seconds per folio per (folio_bytes, access) of measured copy rows."""
    df = copy_df.filter(pl.col("source") == "measured")
    if access is not None:
        df = df.filter(pl.col("access") == access)
    return (
        df.with_columns(s_per_folio=pl.col("wall_s") / pl.col("nr_folios"))
        .group_by("folio_size", "folio_bytes", "access")
        .agg(pl.col("s_per_folio").median())
        .sort("folio_bytes", "access")
    )


def fit_copy(copy_df: pl.DataFrame, access: str = "random") -> CopyFit:
    """Fit t(bytes) = cpu_copy_fixed_us + bytes / cpu_copy_gbps to the median time per folio of
    the `access` rows (all rows if there are none of that order); least squares on log time,
    so that 4K and 2M folios weigh alike. Bounds are the platform SPEC's ranges."""
    med = copy_medians(copy_df, access)
    if med.height == 0:
        med = copy_medians(copy_df)
        access = "all"
    if med["folio_bytes"].n_unique() < 2:
        raise ValueError("copy_df: the copy fit needs measured rows of at least two folio sizes")
    b = med["folio_bytes"].to_numpy().astype(float)
    t = med["s_per_folio"].to_numpy()

    def model(x):
        gbps, fixed_us = x
        return fixed_us * US + b / (gbps * 1e9)

    spec = SPEC["copy"]
    lo = [spec["cpu_copy_gbps"].lo, spec["cpu_copy_fixed_us"].lo]
    hi = [spec["cpu_copy_gbps"].hi, spec["cpu_copy_fixed_us"].hi]
    big = b == b.max()
    x0 = [float(np.clip(b[big][0] / t[big][0] / 1e9, lo[0], hi[0])), 0.1]
    from scipy.optimize import least_squares  # scipy only inside a fit

    res = least_squares(lambda x: np.log(model(x)) - np.log(t), x0, bounds=(lo, hi))
    gbps, fixed_us = (float(v) for v in res.x)
    fitted = model(res.x)
    resid = med.select("folio_size", "folio_bytes").with_columns(
        measured_us=pl.Series(t / US),
        fitted_us=pl.Series(fitted / US),
        rel_error=pl.Series(fitted / t - 1.0),
    )
    return CopyFit(gbps, fixed_us, access, resid)


# A simulator of the measured compaction: (platform, ratio, pattern, seed) -> (pages, seconds).
SimulateFn = Callable[[Platform, float, str, int], tuple[int, float]]


def _measured_at(compaction_df: pl.DataFrame, ratio: float, pattern: str | None) -> pl.DataFrame:
    from migsim.host.probe import with_rates

    df = compaction_df.filter(
        (pl.col("source") == "measured") & ((pl.col("free_ratio") - ratio).abs() < 1e-9)
    )
    if pattern is not None:
        df = df.filter(pl.col("pattern") == pattern)
    if df.height == 0:
        raise ValueError(f"compaction_df: no measured rows at free_ratio {ratio}")
    return with_rates(df)


def measured_rate(compaction_df: pl.DataFrame, ratio: float, pattern: str | None = None) -> float:
    """Measured migration rate at one ratio, pooled over its runs: all pages migrated
    (pgmigrate_success) over all seconds of the compacting task's CPU time. CPU time, because
    the simulation models compaction alone on its CPU and other tasks on a shared machine
    stretch the wall time, not the work; pooled, because a run in which other tasks' memory
    left the probe's region little to migrate is dominated by the fixed whole-machine scan
    and should weigh little."""
    df = _measured_at(compaction_df, ratio, pattern)
    return float(df["pages_migrated"].sum() / df["cpu_s"].sum())


def measured_spread(compaction_df: pl.DataFrame, ratio: float, pattern: str | None = None) -> float:
    """Run-to-run spread of the measured rate at one ratio: the standard deviation of its log
    (the lognormal noise.trial_sd_frac of the platform); 0 with fewer than two runs."""
    rate = _measured_at(compaction_df, ratio, pattern)["pages_per_cpu_s"].to_numpy()
    rate = rate[rate > 0]  # a run that migrated nothing has no rate
    return float(np.std(np.log(rate), ddof=1)) if len(rate) > 1 else 0.0


def fit_compaction(
    compaction_df: pl.DataFrame,
    platform: Platform,
    simulate: SimulateFn,
    free: Sequence[tuple[str, float, float]],
    ratio: float = 0.5,
    pattern: str = "even",
    seed: int = 1,
) -> CompactionFit:
    """Scale the `free` cost parameters ("section.key", lo, hi) by one common factor so that
    the simulated migration rate at `ratio` equals the measured median rate (one observable,
    one degree of freedom: the relative sizes of the costs stay the published ones)."""
    target = measured_rate(compaction_df, ratio, pattern)
    base = {k: getattr(getattr(platform, k.split(".")[0]), k.split(".")[1]) for k, _, _ in free}

    def with_scale(s: float) -> Platform:
        changes = {}
        for key, lo, hi in free:
            sec, name = key.split(".")
            changes[f"{sec}__{name}"] = float(np.clip(base[key] * s, lo, hi))
        return platform.replace(**changes)

    def resid(x):
        pages, secs = simulate(with_scale(float(x[0])), ratio, pattern, seed)
        return [np.log(pages / secs) - np.log(target)]

    from scipy.optimize import least_squares  # scipy only inside a fit

    res = least_squares(resid, [1.0], bounds=([1e-3], [1e3]), diff_step=1e-3)
    fitted = with_scale(float(res.x[0]))
    pages, secs = simulate(fitted, ratio, pattern, seed)
    params = {k: getattr(getattr(fitted, k.split(".")[0]), k.split(".")[1]) for k, _, _ in free}
    notes = [f"common scale {res.x[0]:.4g} on {', '.join(base)} (base values x scale)"]
    return CompactionFit(params, ratio, target, pages / secs, notes)


# ------------------------------------------------------------------------------------------
# The measured setup, simulated: a node holding exactly the probe's region, fragmented with the
# same pattern, ratio and seed, compacted as by compact_memory.
# ------------------------------------------------------------------------------------------

# CPU costs of compaction that the compaction probe's rate observes (scaled together by the
# fit); copy costs come from the copy probe, slow-path costs do not occur in compact_memory.
_COMPACTION_KEYS = (
    ("cpu", "folio_fixed_us"),
    ("cpu", "pte_us"),
    ("cpu", "tlb_flush_us"),
    ("compaction", "migrate_scan_pfn_us"),
    ("compaction", "free_scan_pfn_us"),
    ("compaction", "folio_try_get_us"),
    ("compaction", "isolate_lru_folio_us"),
    ("compaction", "lru_stat_us"),
    ("compaction", "lru_lock_us"),
    ("compaction", "unnamed_page_us"),
    ("compaction", "free_isolate_page_us"),
    ("compaction", "buddy_free_page_us"),
)
COMPACTION_FREE: list[tuple[str, float, float]] = [
    (f"{sec}.{key}", SPEC[sec][key].lo, SPEC[sec][key].hi) for sec, key in _COMPACTION_KEYS
]


def simulator_available() -> bool:
    """True when the engine's compaction simulator (migsim.studies.compaction) exists."""
    try:
        from migsim.studies.compaction import cost_log  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=64)
def _compact_memory_log(size: int, ratio: float, pattern: str, seed: int, node_cpus: int):
    """Run compact_memory on a node holding exactly a fragmented region of `size` bytes (plus
    the simulator's default kernel reservation at the zone's end); the page-level run does
    not depend on costs, so it is cached and costed once per platform."""
    from migsim.kernel.compaction import Compactor
    from migsim.kernel.fragment import FragmentConfig, default_reserved_bytes, fragment

    reserved = default_reserved_bytes(size)
    cfg = FragmentConfig(
        node_bytes=size + reserved,
        alloc_bytes=size,
        reserved_bytes=reserved,
        free_ratio=ratio,
        pattern=pattern,
        seed=seed,
    )
    zone = fragment(cfg, node_cpus=node_cpus)
    comp = Compactor(zone)
    comp.compact_memory()
    zone.drain_pages()  # vmstat_update drains the pcp lists soon after
    return comp.log(), dict(comp.vmstat), comp.migrate_calls, zone.nr_pages * 4096


def simulate_compact_memory(
    platform: Platform, size: int, ratio: float, pattern: str, seed: int, *, noise: bool = False
) -> dict:
    """One simulated run of the measured setup, as a HOST_COMPACTION_RUNS row
    (source=simulated); with `noise`, every cost is scaled by the run's lognormal factor
    (platform noise.trial_sd_frac, drawn from `seed`)."""
    from migsim.host.probe import COMPACTION_VMSTAT, host_compaction_row
    from migsim.studies.compaction import cost_log

    log, vm, calls, node_bytes = _compact_memory_log(
        int(size), float(ratio), pattern, int(seed), int(platform.compaction.node_cpus_count)
    )
    rng = np.random.default_rng(seed)
    scale = platform.trial_scale(rng) if noise else 1.0
    cost = cost_log(log, platform, dma=False, busy=False, scale=scale, rng=rng)
    t = cost.timeline
    return host_compaction_row(
        experiment="compaction",
        mode="baseline",
        cluster_max=32,
        node_bytes=int(size),
        free_ratio=float(ratio),
        pattern=pattern,
        seed=int(seed),
        wall_ms=t.wall_s * 1e3,
        pages_migrated=vm["pgmigrate_success"],
        dma_copies=0,
        user_pct=t.user_pct,
        sys_pct=t.sys_pct,
        idle_pct=t.idle_pct,
        migrate_calls=calls,
        **{k: vm[k] for k in COMPACTION_VMSTAT},
        order=-1,
        fail_rate=0.0,
        wall_s=t.wall_s,
        sys_s=t.sys_s,
        user_s=t.user_s,
        idle_s=t.idle_s,
        migrate_cpu_s=cost.migrate_s,
        compaction_cpu_s=cost.compaction_s,
        platform=platform.name,
        source="simulated",
        trial=0,
    )


def simulate_rows(
    platform: Platform,
    size: int,
    ratios: Sequence[float],
    patterns: Sequence[str],
    repeats: int,
    seed: int = 1,
) -> pl.DataFrame:
    """The probe's matrix simulated: `repeats` runs per (pattern, ratio) with the probe's
    seeds (seed + trial), each with its noise factor; HOST_COMPACTION_RUNS rows."""
    from migsim.host.probe import HOST_COMPACTION_RUNS

    rows = []
    for pattern in patterns:
        for ratio in ratios:
            for trial in range(repeats):
                row = simulate_compact_memory(
                    platform, size, ratio, pattern, seed + trial, noise=True
                )
                row["trial"] = trial
                rows.append(row)
    return HOST_COMPACTION_RUNS.conform(HOST_COMPACTION_RUNS.frame(rows))


def simulate_measured_setup(compaction_df: pl.DataFrame) -> SimulateFn:
    """A SimulateFn for fit_compaction: the measured region's size, noise off."""
    sizes = compaction_df.filter(pl.col("source") == "measured")["node_bytes"].unique()
    if len(sizes) != 1:
        raise ValueError(f"compaction_df: expected one region size, got {sizes.to_list()}")
    size = int(sizes[0])

    def sim(platform: Platform, ratio: float, pattern: str, seed: int) -> tuple[int, float]:
        row = simulate_compact_memory(platform, size, ratio, pattern, seed)
        return row["pages_migrated"], row["wall_ms"] / 1e3

    return sim


def calibration_pattern(compaction_df: pl.DataFrame) -> str:
    """The pattern to calibrate on: 'even' (the published setup) when measured, else the
    first measured one."""
    pats = compaction_df.filter(pl.col("source") == "measured")["pattern"].unique().sort()
    if "even" in pats.to_list():
        return "even"
    return str(pats[0])


def fit_host_platform(
    copy_probe_df: pl.DataFrame,
    compaction_probe_df: pl.DataFrame | None,
    base_platform: Platform,
    *,
    name: str | None = None,
    calibration_ratio: float = 0.5,
    simulate: SimulateFn | None = None,
) -> Platform:
    """A platform for this machine: copy parameters fitted to the copy probe, compaction costs
    fitted to the compaction probe at `calibration_ratio` (skipped when `compaction_probe_df`
    is None or has no measured rows: those costs then stay at the base values, and the meta
    says so), every other parameter from `base_platform` (flagged in the meta)."""
    cf = fit_copy(copy_probe_df)
    cpus = os.cpu_count() or 1
    plat = base_platform.replace(
        copy__cpu_copy_gbps=cf.cpu_copy_gbps,
        copy__cpu_copy_fixed_us=cf.cpu_copy_fixed_us,
        compaction__node_cpus_count=min(cpus, SPEC["compaction"]["node_cpus_count"].hi),
    )
    meta_host: dict = {
        "machine": f"{_pyplatform.node()} {_pyplatform.release()}",
        "base_platform": base_platform.name,
        "from_base": [f"{s}.*" for s in FROM_BASE_SECTIONS],
        "fitted": {
            "copy.cpu_copy_gbps": cf.cpu_copy_gbps,
            "copy.cpu_copy_fixed_us": cf.cpu_copy_fixed_us,
        },
        "measured": {"compaction.node_cpus_count": cpus},
        "copy_fit": {
            "access": cf.access,
            "max_abs_rel_error": float(cf.residuals["rel_error"].abs().max()),
        },
    }
    skipped = ""
    if (
        compaction_probe_df is None
        or compaction_probe_df.filter(pl.col("source") == "measured").is_empty()
    ):
        skipped = "no measured compaction rows (probe unavailable)"
    elif not measured_rate(compaction_probe_df, calibration_ratio) > 0:
        # nothing of the probe's region moved (too small a region, or the kernel had nothing
        # to do there): there is no rate to fit, so the costs stay at the base values
        skipped = f"the compaction probe migrated no pages at ratio {calibration_ratio}"
    if not skipped:
        pattern = calibration_pattern(compaction_probe_df)
        sim = simulate or simulate_measured_setup(compaction_probe_df)
        kf = fit_compaction(
            compaction_probe_df,
            plat,
            sim,
            COMPACTION_FREE,
            ratio=calibration_ratio,
            pattern=pattern,
        )
        sd = measured_spread(compaction_probe_df, calibration_ratio, pattern)
        sd = float(
            np.clip(sd, SPEC["noise"]["trial_sd_frac"].lo, SPEC["noise"]["trial_sd_frac"].hi)
        )
        changes = {f"{k.split('.')[0]}__{k.split('.')[1]}": v for k, v in kf.params.items()}
        plat = plat.replace(**changes, noise__trial_sd_frac=sd)
        meta_host["fitted"].update(kf.params)
        meta_host["fitted"]["noise.trial_sd_frac"] = sd
        meta_host["compaction_fit"] = {
            "ratio": kf.ratio,
            "measured_pages_per_s": kf.measured_pages_per_s,
            "simulated_pages_per_s": kf.simulated_pages_per_s,
            "notes": kf.notes,
        }
    else:
        meta_host["compaction_fit"] = f"skipped: {skipped}"
        meta_host["from_base"] += [f"{k} ({skipped})" for k, _, _ in COMPACTION_FREE] + [
            "noise.trial_sd_frac"
        ]
    # the base fit's stage-1 statistics describe the base machine, not this host
    base_meta = {k: v for k, v in base_platform.meta.items() if k != "stage1"}
    meta = {**base_meta, "host": meta_host}
    return Platform(name or f"host-{_pyplatform.node()}", plat.as_dict(), meta)


def calibrate_from_probes(
    base_platform: Platform,
    out_path: str | os.PathLike | None = None,
    *,
    size: int | str = "1G",
    ratios: Sequence[float] = (0.25, 0.5, 0.75),
    patterns: Sequence[str] = ("even",),
    repeats: int = 5,
    copy_working_set: int | str = "1G",
    seed: int = 1,
    calibration_ratio: float = 0.5,
    name: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[Platform, str]:
    """`migsim calibrate --host`: run the copy probe and (where possible) the compaction probe
    on this machine, fit the host platform and write it to `out_path` (if given). Returns the
    platform and the reason the compaction probe was skipped ('' if it ran)."""
    from migsim.cost.platform import save_platform
    from migsim.host import probe

    if not any(abs(r - calibration_ratio) < 1e-9 for r in ratios):
        raise ValueError(f"ratios: must include the calibration ratio {calibration_ratio}")
    say = progress or (lambda msg: None)
    say("copy probe ...")
    copy_df = probe.probe_copy(working_set=copy_working_set, repeats=repeats, seed=seed)
    skipped = ""
    comp_df = None
    try:
        say("compaction probe ...")
        comp_df = probe.probe_compaction(size, ratios, patterns, repeats, seed, progress=progress)
    except probe.ProbeUnavailable as exc:
        skipped = str(exc)
        say(f"compaction probe skipped: {skipped}")
    plat = fit_host_platform(
        copy_df, comp_df, base_platform, name=name, calibration_ratio=calibration_ratio
    )
    if out_path is not None:
        header = (
            "# Generated by `migsim calibrate --host` from this machine's probes: do not edit by\n"
            "# hand. Meta 'host' says what was fitted and what comes from the base platform."
        )
        save_platform(plat, out_path, header=header)
    return plat, skipped


# ------------------------------------------------------------------------------------------
# The host twin's cost fit: two scale factors on the platform's compaction costs.
# ------------------------------------------------------------------------------------------


def fit_twin_costs(
    train: Sequence[tuple[float, float, float]], *, split: bool = False
) -> tuple[float, float]:
    """Fit the platform's compaction costs to measured seconds of twin runs (rows of (scan_s,
    other_s, t): the twin's predicted scanner costs and other costs of a run, and its measured
    time). By default one common scale k (a = b = k: the geometric mean of t / (scan_s +
    other_s), the relative sizes of the costs stay the platform's); with `split`, two scales
    a, b >= 0 of t = a * scan_s + b * other_s by least squares on the relative error (how much
    slower this machine scans a pfn, and does the rest of a migration, than the platform says)
    -- ill-determined unless the training runs differ in their mix of scanning and migrating,
    so it falls back to the common scale when their scan share varies by less than 2x."""
    from scipy.optimize import nnls

    x = np.array([[s, o] for s, o, _ in train], dtype=float).reshape(-1, 2)
    t = np.array([m for _, _, m in train], dtype=float)
    keep = (t > 0) & (x.sum(1) > 0)
    x, t = x[keep], t[keep]
    if len(t) == 0:
        return 1.0, 1.0
    k = float(np.exp(np.mean(np.log(t / x.sum(1)))))
    share = x[:, 0] / x.sum(1)
    if not split or len(t) < 2 or share.max() < 2 * share.min():
        return k, k
    coef, _ = nnls(x / t[:, None], np.ones(len(t)))
    return float(coef[0]), float(coef[1])
