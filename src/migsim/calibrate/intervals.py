"""Prediction intervals: what a measured mean of N trials of a throughput cell would be.

The uncertainty of a simulated mean has four parts, combined on the log scale (delta method):

- the fitted parameters: their covariance from the stage-1 fit (and the mt fit), stored in the
  platform file (``stage1.covariance``), through the gradient of the cell's log throughput;
- each prior's stated range (``calibrate.PRIOR_RANGES``, taken as uniform: variance
  range^2/12), through the same gradient. Simplification: the gradient is the partial one,
  without the refit that would partly compensate a prior the table observes; priors whose
  only observable effect the fit absorbs (``copy.cpu_copy_fixed_us``, ``dma.desc_restart_us``)
  therefore have no range;
- the trial-to-trial noise of a mean of N trials: noise.trial_sd_frac^2 / N;
- what the mechanisms do not explain (model discrepancy): ``stage1.discrepancy_sd_log``, one
  per copier class declared before the fit (``calibrate.throughput.DISCREPANCY_CLASSES``:
  baseline, dma, mt), the REML estimate from the fit residuals of that class with each
  published mean's own noise (its sd over its trials) taken out
  (``calibrate.throughput.discrepancy_sd_log``). It is a property of the fitted model, so a
  measured mean can differ from the simulated one by it; the fits' covariances are the
  sandwich form under the same error model (so they do not count the discrepancy twice).
  Simplification: baseline and dma are estimated on the v4 table and mt on the v2 tables
  the mt bandwidths are fitted on, and each applies to that copier in every version.

The gradient is taken by central differences of the quiet engine (noise off) with every
perturbed parameter set costed in one vectorised call: the platform's sampled parameters
become arrays beside the batches (``cost_batches`` and the copiers broadcast).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from migsim.cost.copiers import US, make_copier
from migsim.cost.platform import Platform
from migsim.kernel.migrate import cost_batches, uniform_batch_totals
from migsim.units import PAGE_SIZE

SECTIONS = ("cpu", "copy", "dma", "mt", "sched", "noise", "compaction")
Z90 = 1.6448536269514722  # two-sided 90%: the 95th percentile of the standard normal


class _Section:
    """Attribute access to one section, some parameters replaced by arrays."""

    def __init__(self, values: dict):
        self.__dict__.update(values)


class SampledPlatform:
    """A platform whose parameters `arrays` ({"sec.key": array}) take one value per sample;
    the others keep the platform's scalar. Only for costing, never validated or saved."""

    def __init__(self, platform: Platform, arrays: dict[str, np.ndarray]):
        values = platform.as_dict()
        for name, arr in arrays.items():
            sec, key = name.split(".")
            values[sec][key] = arr
        self.name = platform.name
        for sec, params in values.items():
            setattr(self, sec, _Section(params))


def cell_wall_seconds(
    platform, *, mode, folio_size, total_bytes, batch_limit, channels, threads, rfc, placement
) -> np.ndarray:
    """Quiet wall time (s) of one move_pages() call of the cell, one value per sample of
    `platform` (a SampledPlatform whose arrays have S entries; S = 1 for a Platform)."""
    nr = total_bytes // folio_size
    nf, npg, nptes = uniform_batch_totals(nr, folio_size // PAGE_SIZE, batch_limit)
    samples = max(np.size(v) for sec in SECTIONS for v in vars(getattr(platform, sec)).values())
    nb = len(nf)
    # every sample costs every batch: parameters repeated per batch, batches tiled per sample
    rep = SampledPlatform.__new__(SampledPlatform)
    rep.name = platform.name
    for sec in SECTIONS:
        vals = vars(getattr(platform, sec)).items()
        setattr(rep, sec, _Section({k: np.repeat(v, nb) if np.size(v) > 1 else v for k, v in vals}))
    copier = make_copier(mode, channels=channels, threads=threads, rfc=rfc, placement=placement)
    rng = np.random.default_rng(0)
    bc = cost_batches(
        np.tile(nf, samples), np.tile(npg, samples), np.tile(nptes, samples), copier, rep, rng
    )
    wall = bc.wall_s.reshape(samples, nb).sum(axis=1)
    c = platform.cpu
    call = (c.syscall_us + c.lru_drain_us + nr * c.addr_lookup_us) * US
    return wall + call


@dataclass(frozen=True)
class Interval:
    """A 90% prediction interval of a measured mean (GB/s) and its log-scale sd parts."""

    lo: float
    hi: float
    sd_log: float
    parts: dict


def log_gradient(platform: Platform, names: list[str], cell: dict, rel: float = 1e-4) -> np.ndarray:
    """d log(throughput) / d parameter for each of `names`, by central differences."""
    if not names:
        return np.zeros(0)
    base = platform.as_dict()
    x0 = np.array([base[n.split(".")[0]][n.split(".")[1]] for n in names], dtype=np.float64)
    h = rel * np.maximum(np.abs(x0), 1e-3)
    k = len(names)
    arrays = {}
    for i, n in enumerate(names):
        col = np.full(2 * k, x0[i])
        col[2 * i] += h[i]
        col[2 * i + 1] -= h[i]
        arrays[n] = col
    wall = cell_wall_seconds(SampledPlatform(platform, arrays), **cell)
    up, down = wall[0::2], wall[1::2]
    # log throughput = log bytes - log wall
    return -(np.log(up) - np.log(down)) / (2 * h)


def discrepancy_of(stage1: dict, mode: str) -> float:
    """The model discrepancy (sd, log units) of a cell of `mode` stored by the fit
    (``stage1.discrepancy_sd_log``: one per copier class); 0 for a class the fit has none of."""
    from migsim.calibrate.throughput import discrepancy_class

    disc = stage1.get("discrepancy_sd_log", {})
    if not isinstance(disc, dict):  # a platform file written before the classes
        return float(disc)
    return float(disc.get(discrepancy_class(mode), 0.0))


def interval(platform: Platform, mean_gbps: float, trials: int, cell: dict) -> Interval:
    """The 90% interval of a measured mean of `trials` trials of `cell` around `mean_gbps`."""
    from migsim.calibrate.throughput import PRIOR_RANGES

    st = platform.meta.get("stage1", {})
    cov = st.get("covariance", {})
    fitted = list(cov.get("params", []))
    prior_names = list(PRIOR_RANGES)
    grad = log_gradient(platform, fitted + prior_names, cell)
    g_fit, g_prior = grad[: len(fitted)], grad[len(fitted) :]
    var_fit = float(g_fit @ np.asarray(cov["matrix"]) @ g_fit) if fitted else 0.0
    ranges = np.array([hi - lo for lo, hi in PRIOR_RANGES.values()])
    var_prior = float(np.sum(g_prior**2 * ranges**2 / 12.0))
    var_noise = platform.noise.trial_sd_frac**2 / max(trials, 1)
    var_disc = discrepancy_of(st, cell["mode"]) ** 2
    sd = float(np.sqrt(var_fit + var_prior + var_noise + var_disc))
    parts = {
        "fit": float(np.sqrt(var_fit)),
        "priors": float(np.sqrt(var_prior)),
        "noise": float(np.sqrt(var_noise)),
        "discrepancy": float(np.sqrt(var_disc)),
    }
    return Interval(mean_gbps * np.exp(-Z90 * sd), mean_gbps * np.exp(Z90 * sd), sd, parts)


def result_interval(platform: Platform, result) -> Interval:
    """The interval of a ThroughputResult's mean (its cell, trials and version)."""
    cell = {
        "mode": result.mode,
        "folio_size": result.folio_bytes,
        "total_bytes": result.total_bytes,
        "batch_limit": result.batch_limit,
        "channels": result.channels,
        "threads": result.threads,
        "rfc": result.rfc,
        "placement": result.placement,
    }
    return interval(platform, result.mean_gbps, len(result.trials), cell)
