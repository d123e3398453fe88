"""`migsim calibrate --check`: fit and compare with the files in place, without writing.
(That the committed platform file is reproduced byte for byte is checked by running the
README's `migsim calibrate` as `--check`, tests/test_readme_commands.py.)"""

from __future__ import annotations

import pytest

from migsim.cli import main
from migsim.cost.platform import WRITTEN_DIGITS, written_value


@pytest.mark.slow
def test_check_reports_what_would_change_and_writes_nothing(tmp_path, capsys, reference_fit):
    out = tmp_path / "fit.yaml"
    # the committed platform's name: the fit the README's `migsim calibrate` runs (reference_fit)
    assert main(["calibrate", "--check", "--out", str(out), "--name", "epyc-zen3-ptdma"]) == 1
    text = capsys.readouterr().out
    assert text.count("would change (new file)") == 3  # the platform and its two tables
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary left


def test_written_values_are_rounded():
    assert written_value(0.3197594019781594) == 0.319759
    assert written_value(96.82988671313394) == 96.8299
    assert written_value(16) == 16
    assert len(repr(written_value(1 / 3)).rstrip("0").split(".")[1]) == WRITTEN_DIGITS


def test_check_tolerates_only_a_refit_on_another_cpu():
    """--check's numeric comparison (cli/calibrate.py FLOAT_REL_TOL): the cross-CPU digits seen
    between two VMs pass, a real change of a fitted value or any text does not."""
    from migsim.cli.calibrate import _numbers_agree

    assert _numbers_agree("    dma.ramp_kb: 22.963444", "    dma.ramp_kb: 22.963445")
    assert _numbers_agree("    mt.ccd_gbps: 0.391701", "    mt.ccd_gbps: 0.3917")
    assert _numbers_agree("      - 0.00165963541", "      - 0.00165962915")
    assert _numbers_agree("      - -8.61917198e-05", "      - -8.61917105e-05")
    assert not _numbers_agree("    dma.ramp_kb: 22.963444", "    dma.ramp_kb: 22.9637")
    assert not _numbers_agree("      - 0.00165963541", "      - 0.00166")
    assert not _numbers_agree("    dma.ramp_kb: 1.0", "    dma.ramp_gbps: 1.0")
    assert not _numbers_agree("    x: 1.0", "    x: 1.0 2.0")


def test_the_rounding_of_a_zero_response_is_written_as_zero():
    """calibrate/throughput._clean_sensitivity: in a column where one parameter moves by -1 per
    unit of the prior (cpu.folio_fixed_us and cpu.addr_lookup_us add), the pseudo-inverse's
    rounding leaves the others at 1e-10..1e-8 of that, with a sign that differs from one CPU to
    another (seen: -1.3e-10 here, +7.3e-10 on another VM, which failed --check); they are
    written as 0. A real response 1e-4 of the column's largest, and every entry of a column
    without a dominant one, is kept."""
    import numpy as np

    from migsim.calibrate.throughput import PRIOR_RANGES, _clean_sensitivity

    k = len(PRIOR_RANGES)
    sd = np.array([0.05, 0.01, 0.2])
    sens = np.full((3, k), 1e-3)
    sens[:, 0] = [-1.0, -1.3e-10 * 0.2, 7.3e-10]  # a degenerate column: noise beside -1
    sens[:, 1] = [1.0, 1e-4 * 0.2, -3e-5]  # real, if small, responses
    out = _clean_sensitivity(sens, sd)
    assert out[0, 0] == -1.0 and out[1, 0] == 0.0 and out[2, 0] == 0.0
    assert np.array_equal(out[:, 1:], sens[:, 1:])
