"""The v2 tables of the series from the one calibrated platform, and the --rfc switch."""

import json

import numpy as np
import pytest

from migsim.calibrate.series import read_series, read_table, simulate_cell
from migsim.calibrate.throughput import mt_fit_cells
from migsim.calibrate.uncertainty import PRIOR_RANGES
from migsim.cli import main
from migsim.cost.copiers import MtCopier, thread_ccds


def _mape(platform, cells):
    return float(np.mean([abs(simulate_cell(platform, c).mean_gbps / c.gbps - 1) for c in cells]))


def test_every_reference_table_is_read_with_its_version():
    cells = read_series()
    assert len(cells) == 42 + 45 + 10 + 16
    assert {c.rfc for c in cells} == {"v2", "v4"}
    assert {c.placement for c in read_table("v2_mt_placement_2M")} == {"spread", "fill-ccd"}
    # the folio-count table moves 1..8192 2M folios in one call
    assert sorted({c.folios for c in read_table("v2_folio_count_2M")}) == [
        1, 8, 64, 256, 512, 1024, 2048, 8192,
    ]  # fmt: skip


def test_v2_mt_2m_row_and_placement_table_within_10_percent(platform):
    two_m = [c for c in read_table("v2_mt_throughput") if c.folio_bytes == 2 << 20]
    assert _mape(platform, two_m) <= 0.10
    assert _mape(platform, read_table("v2_mt_placement_2M")) <= 0.10


def test_v2_folio_count_sweep_within_12_percent_and_not_fitted(platform):
    """Predicted, not fitted: 10.4% MAPE with cpu.lru_cache_disable_us at its prior (25 us per
    move_pages() call: do_pages_move's synchronize_rcu_expedited), and within 12% across the
    prior's range (10-60 us: 11.6-8.8%); 12.4% with the 1 us local lru_add_drain() the model
    charged before. What the per-call cost cannot explain stays: the excess per folio at 8 and
    64 folios (dma +27/+31%, mt +7/+10%)."""
    cells = read_table("v2_folio_count_2M")
    assert not set(cells) & set(mt_fit_cells(read_series()))
    assert _mape(platform, cells) <= 0.12
    lo, hi = PRIOR_RANGES["cpu.lru_cache_disable_us"]
    for v in (lo, hi):
        assert _mape(platform.replace(cpu__lru_cache_disable_us=v), cells) <= 0.12


def test_placement_follows_the_ccd_lists(platform):
    # spread: one CPU per CCD in turn; fill-ccd: 8 cores of a CCD before the next
    assert thread_ccds(8, "spread", platform).tolist() == [1.0] * 8
    assert thread_ccds(16, "fill-ccd", platform).tolist()[:3] == [8.0, 8.0, 0.0]
    n, b = np.array([512]), np.array([512 * 2.0**21])
    rng = np.random.default_rng(0)
    fill = MtCopier(threads=8, placement="fill-ccd").copy_batches(n, b, platform, rng)
    spread = MtCopier(threads=8, placement="spread").copy_batches(n, b, platform, rng)
    # one CCD's link bounds the filled placement
    assert fill.wait_s[0] / spread.wait_s[0] > 2.5
    with pytest.raises(ValueError, match="placement: must be one of spread, fill-ccd"):
        MtCopier(placement="pack")


def test_rfc_switch_on_throughput(capsys):
    out = {}
    for rfc in ("v4", "v6"):
        assert main(["throughput", "--mode", "dma", "--folio-size", "2M", "--channels", "8",
                     "--rfc", rfc, "--trials", "2", "--json"]) == 0  # fmt: skip
        out[rfc] = json.loads(capsys.readouterr().out)
        assert out[rfc]["rfc"] == rfc
    # v6 claims the channels of one device group: one PTDMA channel per device
    assert out["v6"]["mean_gbps"] < 0.5 * out["v4"]["mean_gbps"]


def test_rfc_switch_rejects_unknown_versions(capsys):
    with pytest.raises(SystemExit):
        main(["throughput", "--mode", "dma", "--rfc", "v5"])
    assert "--rfc" in capsys.readouterr().err


def test_series_page_lists_every_published_number(tmp_path, platform):
    import polars as pl

    from migsim.calibrate.series import REFERENCE_DIR
    from migsim.cost.platform import DEFAULT_PLATFORM
    from migsim.studies.series import series_page

    out = tmp_path / "published"
    series_page(
        str(DEFAULT_PLATFORM), str(REFERENCE_DIR), f"{out}.csv", f"{out}.md", str(tmp_path / "fig")
    )
    df = pl.read_csv(f"{out}.csv")
    assert df.height == 113
    assert df["table"].unique().sort().to_list() == sorted(
        ["move_pages_throughput", "v2_folio_count_2M", "v2_mt_placement_2M", "v2_mt_throughput"]
    )
    assert (df["lo"] <= df["simulated_gbps"]).all() and (df["simulated_gbps"] <= df["hi"]).all()
    md = (tmp_path / "published.md").read_text()
    assert md.count("\n| v2 |") + md.count("\n| v4 |") == 113 and "predicted: 56 cells" in md
    for ext in ("html", "svg", "png"):
        assert (tmp_path / f"fig.{ext}").stat().st_size > 1000
