"""Prediction intervals: what a measured mean of N trials of a throughput cell would be.

The uncertainty of a simulated mean has four parts, combined on the log scale (delta method);
``python -m migsim.calibrate.interval_parts [--table all] [--holdout]`` prints each published
cell's parts as shares of its variance:

- the fitted parameters: their covariance from the stage-1 fit and the mt fit (the mt
  estimates carry stage 1's through their dependence on it), stored in the platform file
  (``stage1.covariance``), through the gradient of the cell's log throughput;
- each prior's stated range (``calibrate.uncertainty.PRIOR_RANGES``, taken as uniform:
  variance range^2/12) through the total derivative: the cell's partial derivative plus the
  fitted parameters' response to the prior, d(theta_hat)/d(prior) = -(J'J)^+ J' d(r)/d(prior)
  of the unweighted least-squares fits (``stage1.refit_sensitivity``, written by
  ``migsim calibrate``): a prior the fitted tables observe is partly compensated by the refit,
  as it is when the prior is changed and ``migsim calibrate`` re-run;
- the trial-to-trial noise of a mean of N trials: noise.trial_sd_frac^2 / N;
- what the mechanisms do not explain (model discrepancy): ``stage1.discrepancy_sd_log``, one
  per copier class declared before the fit (``calibrate.uncertainty.DISCREPANCY_CLASSES``:
  baseline, dma, mt), the REML estimate from the fit residuals of that class with each
  published mean's own noise (its sd over its trials) taken out
  (``calibrate.throughput.discrepancy_sd_log``). It belongs to the configuration (a second
  published run of one configuration, the v2 mt 2M cells, differs from the first by about
  its trials' noise, far less than the discrepancy), so the fitted values of a configuration
  the fit used have taken up part of it: f_hat - f = H (delta + eps) with the fit's hat matrix
  H, cov(f_hat, delta) = h tau^2 with h the configuration's leverage (``stage1.leverage``),
  and a new measured mean's error delta + eps_new - (f_hat - f) has the variance
  (g'Cov g - h^2 tau^2) + tau^2 (1 - h)^2 + noise: the "fit" and "discrepancy" parts. Any
  other configuration (a prediction) has h = 0. Simplification: baseline and dma are
  estimated on the v4 table and mt on the v2 tables the mt bandwidths are fitted on, and
  each applies to that copier in every version; the priors' share of the fit residuals is
  inside the REML estimate too (small: at most 4.3% of a v4 cell's variance).

The gradient is taken by central differences of the quiet engine (noise off) with every
perturbed parameter set costed in one vectorised call: the platform's sampled parameters
become arrays beside the batches (``cost_batches`` and the copiers broadcast).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from migsim.cost.copiers import US, make_copier
from migsim.cost.platform import Platform
from migsim.kernel.migrate import cost_batches, move_pages_call_us, uniform_batch_totals
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
    platform,
    *,
    mode,
    folio_size,
    total_bytes,
    batch_limit,
    channels,
    threads,
    rfc,
    placement,
    min_batch_bytes=0,
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
    copier = make_copier(
        mode,
        channels=channels,
        threads=threads,
        rfc=rfc,
        placement=placement,
        min_batch_bytes=min_batch_bytes,
    )
    rng = np.random.default_rng(0)
    bc = cost_batches(
        np.tile(nf, samples), np.tile(npg, samples), np.tile(nptes, samples), copier, rep, rng
    )
    wall = bc.wall_s.reshape(samples, nb).sum(axis=1)
    return wall + move_pages_call_us(platform, nr) * US


@dataclass(frozen=True)
class Interval:
    """A 90% prediction interval of a measured mean (GB/s) and its log-scale sd parts."""

    lo: float
    hi: float
    sd_log: float
    parts: dict
    # each prior's sd (log units) through the total derivative: parts["priors"] is their norm
    prior_sd: dict = field(default_factory=dict)


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
    from migsim.calibrate.uncertainty import discrepancy_class

    disc = stage1.get("discrepancy_sd_log", {})
    if not isinstance(disc, dict):  # a platform file written before the classes
        return float(disc)
    return float(disc.get(discrepancy_class(mode), 0.0))


def cell_key(cell: dict) -> str:
    """The configuration of a cell as one string (``stage1.leverage`` names the fitted
    configurations by it): a run of the same configuration is the same cell, whoever asks."""
    k = cell["channels"] if cell["mode"] == "dma" else cell["threads"]
    # min_batch_bytes only where set: every fitted configuration has none (stage1.leverage's
    # keys, written by migsim calibrate, stay as they are)
    mb = cell.get("min_batch_bytes", 0)
    return (
        f"{cell['mode']} {cell['rfc']} k={k} folio={cell['folio_size']} "
        f"total={cell['total_bytes']} batch={cell['batch_limit']} {cell['placement']}"
        + (f" min_batch={mb}" if mb else "")
    )


def result_cell(result) -> dict:
    """The cell of a ThroughputResult (its configuration) as `interval` takes it."""
    return {
        "mode": result.mode,
        "folio_size": result.folio_bytes,
        "total_bytes": result.total_bytes,
        "batch_limit": result.batch_limit,
        "channels": result.channels,
        "threads": result.threads,
        "rfc": result.rfc,
        "placement": result.placement,
        "min_batch_bytes": result.min_batch_bytes,
    }


def total_prior_gradient(stage1: dict, g_fit: np.ndarray, fitted: list[str], g_prior, priors):
    """d log(throughput) / d prior with the fitted parameters refitted: the partial gradient
    plus g_fit . d(theta_hat)/d(prior), the fit's linearised response to the prior
    (``stage1.refit_sensitivity``, written by the fit); the partial gradient alone for a
    platform file without it."""
    if not stage1.get("refit_sensitivity") or not fitted:
        return g_prior
    return g_prior + g_fit @ sensitivity_rows(stage1, fitted, priors)


def sensitivity_rows(stage1: dict, params: list[str], priors: list[str]) -> np.ndarray:
    """d(theta_hat)/d(prior) of `params` (rows) by `priors` (columns) as the fit stored it
    (``stage1.refit_sensitivity``); 0 where it stored none."""
    out = np.zeros((len(params), len(priors)))
    sens = stage1.get("refit_sensitivity")
    if not sens:
        return out
    rows = {n: i for i, n in enumerate(sens["params"])}
    cols = {n: j for j, n in enumerate(sens["priors"])}
    mat = np.asarray(sens["matrix"], dtype=np.float64)
    for i, n in enumerate(params):
        for j, m in enumerate(priors):
            if n in rows and m in cols:
                out[i, j] = mat[rows[n], cols[m]]
    return out


def interval(
    platform: Platform, mean_gbps: float, trials: int, cell: dict, fail_rate: float = 0.0
) -> Interval:
    """The 90% interval of a measured mean of `trials` trials of `cell` around `mean_gbps`
    (`fail_rate`: injected offload failures, a configuration no fit used)."""
    from migsim.calibrate.uncertainty import PRIOR_RANGES

    st = platform.meta.get("stage1", {})
    cov = st.get("covariance", {})
    fitted = list(cov.get("params", []))
    prior_names = list(PRIOR_RANGES)
    grad = log_gradient(platform, fitted + prior_names, cell)
    g_fit, g_prior = grad[: len(fitted)], grad[len(fitted) :]
    g_prior = total_prior_gradient(st, g_fit, fitted, g_prior, prior_names)
    var_theta = float(g_fit @ np.asarray(cov["matrix"]) @ g_fit) if fitted else 0.0
    ranges = np.array([hi - lo for lo, hi in PRIOR_RANGES.values()])
    var_prior = float(np.sum(g_prior**2 * ranges**2 / 12.0))
    prior_sd = {
        n: float(abs(v) * r / np.sqrt(12.0))
        for n, v, r in zip(prior_names, g_prior, ranges, strict=True)
    }
    var_noise = platform.noise.trial_sd_frac**2 / max(trials, 1)
    tau = discrepancy_of(st, cell["mode"])
    # a configuration the fit used: its own discrepancy is in the fitted parameters by its
    # leverage h (f_hat - f = H (delta + eps), so cov(f_hat, delta) = h tau^2), and the error
    # of a new measured mean, delta + eps_new - (f_hat - f), has the variance
    # (g cov g - h^2 tau^2) + tau^2 (1 - h)^2 + noise; h = 0 for any other configuration
    h = float(st.get("leverage", {}).get(cell_key(cell), 0.0)) if fail_rate == 0 else 0.0
    var_fit = max(var_theta - (h * tau) ** 2, 0.0)
    var_disc = (tau * (1.0 - h)) ** 2
    sd = float(np.sqrt(var_fit + var_prior + var_noise + var_disc))
    parts = {
        "fit": float(np.sqrt(var_fit)),
        "priors": float(np.sqrt(var_prior)),
        "noise": float(np.sqrt(var_noise)),
        "discrepancy": float(np.sqrt(var_disc)),
    }
    return Interval(
        mean_gbps * np.exp(-Z90 * sd), mean_gbps * np.exp(Z90 * sd), sd, parts, prior_sd
    )


def result_interval(platform: Platform, result) -> Interval:
    """The interval of a ThroughputResult's mean (its cell, trials and version)."""
    cell = result_cell(result)
    return interval(platform, result.mean_gbps, len(result.trials), cell, result.fail_rate)
