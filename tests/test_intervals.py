"""Prediction intervals of simulated means and the page of every published number."""

import json

import numpy as np
import pytest

from migsim.calibrate.intervals import (
    SampledPlatform,
    cell_wall_seconds,
    log_gradient,
    result_interval,
)
from migsim.calibrate.series import read_table, simulate_cell
from migsim.cli import main
from migsim.studies.throughput import run_throughput

KEYS = {"rfc", "table", "mode", "channels_or_threads", "folio_size", "folios", "simulated_gbps"}
KEYS |= {"lo", "hi", "published_gbps", "fitted"}


def test_throughput_json_has_lo_and_hi_around_the_mean(capsys):
    main(["throughput", "--mode", "dma", "--folio-size", "64K", "--channels", "4", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["lo"] < out["mean_gbps"] < out["hi"]
    assert set(out["interval_sd_log"]) == {"fit", "priors", "noise", "discrepancy"}


def test_sampled_platform_costs_each_sample_as_its_own_platform(platform):
    # the vectorised gradient path: a two-sample platform gives the two platforms' walls
    cell = dict(mode="dma", folio_size=16384, total_bytes=1 << 30, batch_limit=262144,
                channels=4, threads=None, rfc="v4", placement="spread")  # fmt: skip
    other = platform.replace(dma__prep_us=platform.dma.prep_us * 2, cpu__pte_us=0.3)
    both = SampledPlatform(
        platform,
        {"dma.prep_us": np.array([platform.dma.prep_us, other.dma.prep_us]),
         "cpu.pte_us": np.array([platform.cpu.pte_us, 0.3])},
    )  # fmt: skip
    quiet = platform.replace(noise__trial_sd_frac=0.0)
    walls = cell_wall_seconds(both, **cell)
    for p, w in zip((quiet, other.replace(noise__trial_sd_frac=0.0)), walls, strict=True):
        r = run_throughput(p, mode="dma", folio_size=16384, channels=4, trials=1)
        assert w == pytest.approx(r.trials[0].wall_s, rel=1e-12)


def test_gradient_of_a_parameter_the_cell_does_not_use_is_zero(platform):
    cell = dict(mode="baseline", folio_size=4096, total_bytes=1 << 30, batch_limit=262144,
                channels=None, threads=None, rfc="v4", placement="spread")  # fmt: skip
    g = log_gradient(platform, ["dma.prep_us", "copy.cpu_copy_gbps"], cell)
    assert g[0] == 0.0 and g[1] > 0  # faster copies, more GB/s


def test_interval_narrows_with_more_trials_but_not_below_the_parameters(platform):
    r5 = run_throughput(platform, mode="dma", folio_size=2 << 20, channels=8, trials=5)
    r50 = run_throughput(platform, mode="dma", folio_size=2 << 20, channels=8, trials=50)
    i5, i50 = result_interval(platform, r5), result_interval(platform, r50)
    assert i50.parts["noise"] == pytest.approx(i5.parts["noise"] / np.sqrt(10))
    assert i50.parts["fit"] == pytest.approx(i5.parts["fit"], rel=1e-6)
    assert i50.sd_log < i5.sd_log


def test_reml_discrepancy_recovers_known_per_class_values():
    """Residuals of a linear least-squares fit whose errors have a known discrepancy per class
    beside each point's own noise: the REML estimate finds both classes' values, and a class
    without discrepancy gets none (hand-made truth, not the code's output)."""
    from migsim.calibrate.throughput import discrepancy_sd_log

    rng = np.random.default_rng(7)
    n, p = 300, 6
    jac = rng.normal(size=(n, p))
    classes = np.arange(n) % 3
    tau = np.array([0.02, 0.08, 0.0])
    noise_var = rng.uniform(0.01, 0.04, n) ** 2
    err = rng.normal(size=n) * np.sqrt(tau[classes] ** 2 + noise_var)
    resid = err - jac @ np.linalg.lstsq(jac, err, rcond=None)[0]  # the fit's residuals
    got = discrepancy_sd_log(resid, noise_var, jac, classes)
    # tolerances: 3.5 sd of the estimate over 20 seeds of this design (sd 0.0026, 0.0052;
    # the zero class <= 0.008); an estimate that kept the noise in (sqrt(tau^2 + noise))
    # would give 0.033, 0.084 and 0.026
    assert got[0] == pytest.approx(0.02, abs=0.009)
    assert got[1] == pytest.approx(0.08, abs=0.018)
    assert got[2] < 0.012


def test_each_copier_class_has_its_own_discrepancy(platform):
    from migsim.calibrate.intervals import discrepancy_of

    st = platform.meta["stage1"]
    assert set(st["discrepancy_sd_log"]) == {"baseline", "dma", "mt"}
    assert discrepancy_of(st, "cpu") == discrepancy_of(st, "baseline")
    assert discrepancy_of(st, "dma") == st["discrepancy_sd_log"]["dma"]
    assert discrepancy_of({}, "dma") == 0.0


def _v4_intervals(platform):
    out = []
    for c in read_table("move_pages_throughput"):
        r = simulate_cell(platform, c)
        iv = result_interval(platform, r)
        out.append((iv.lo <= c.gbps <= iv.hi, (iv.hi - iv.lo) / r.mean_gbps))
    return np.array(out)


@pytest.mark.xfail(
    strict=True,
    reason="issue 11 not met: with the model discrepancy of each copier class (REML from the "
    "fit residuals, the published means' own noise taken out: baseline 3.1%, dma 5.4%) 90% of "
    "the v4 cells lie inside the 90% interval but the median width is 20.5%; without it 69% "
    "lie inside at a median width of 10%. The dma discrepancy is not the 4K column's: REML "
    "without the six 4K dma cells gives 5.4% again (5.0% without the 1-channel 4K cell); its "
    "largest residuals are 64K at 4..16 channels (+7..+13%) and 2M at 8 channels (+14%)",
)
def test_published_v4_cells_inside_intervals_that_say_something(platform):
    res = _v4_intervals(platform)
    assert res[:, 0].mean() >= 0.8 and np.median(res[:, 1]) <= 0.15


def test_v4_intervals_hold_at_least_80_percent_of_the_cells(platform):
    # the half of the criterion that holds: at least 80% of the published cells inside
    assert _v4_intervals(platform)[:, 0].mean() >= 0.8


def test_reproduce_all_lists_every_published_number(capsys):
    assert main(["reproduce", "all", "--trials", "2", "--json"]) == 0
    cells = json.loads(capsys.readouterr().out)["cells"]
    assert len(cells) == 113
    for c in cells:
        assert set(c) >= KEYS
        assert c["lo"] <= c["simulated_gbps"] <= c["hi"]
    tables = {c["table"] for c in cells}
    assert tables == {"move_pages_throughput", "v2_mt_throughput", "v2_mt_placement_2M",
                      "v2_folio_count_2M"}  # fmt: skip
    fitted = {(c["table"], c["fitted"]) for c in cells}
    assert ("v2_folio_count_2M", True) not in fitted and ("move_pages_throughput", True) in fitted
    # mt small-folio v2 rows are predictions, the 2M row is fitted
    mt = [c for c in cells if c["table"] == "v2_mt_throughput"]
    assert all(c["fitted"] == (c["folio_size"] == "2M") for c in mt)
