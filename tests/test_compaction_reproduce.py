"""Full scale (250 GB node, 16384 order-9 allocations), all four published modes, against the
published compaction table; and the stage-2 fit recovering a known cost."""

from __future__ import annotations

import polars as pl
import pytest

from migsim.calibrate_compaction import fit_compaction
from migsim.cli_compaction import REFERENCE_COMPACTION
from migsim.experiments.compaction import MODES, reproduce_compaction, simulate

pytestmark = pytest.mark.slow

# Known misfits of the predicted DMA rows with one DMA channel (dcbm's default), inherited from
# the stage-1 (throughput) fit: its one-channel 4K DMA cell is 17% too slow, so every offloaded
# 4K page waits ~0.3 us too long, and its CPU costs make the DMA path save 0.27 us of CPU per
# page where the published compaction rows imply ~0.5. Strict: they fail loudly once fixed.
ENGINE_I_4K_DMA = pytest.mark.xfail(
    strict=True, reason="stage-1 4K DMA costs too high for the compaction rows (see module)"
)


@pytest.fixture(scope="module")
def published():
    df = pl.read_csv(REFERENCE_COMPACTION, comment_prefix="#")
    return {r["mode"]: r for r in df.iter_rows(named=True)}


@pytest.fixture(scope="module")
def simulated(platform):
    return {r["mode"]: r for r in reproduce_compaction(platform, seed=1)}


@pytest.mark.parametrize("mode", MODES)
def test_pages_migrated_within_5pct(mode, published, simulated):
    sim, pub = simulated[mode]["pages_migrated"], published[mode]["pages_migrated"]
    assert abs(sim / pub - 1) <= 0.05, f"{mode}: {sim} vs {pub}"


@pytest.mark.parametrize(
    "mode",
    [
        "baseline",
        pytest.param("dma", marks=ENGINE_I_4K_DMA),
        "busy-baseline",
        pytest.param("busy-dma", marks=ENGINE_I_4K_DMA),
    ],
)
def test_wall_time_within_10pct(mode, published, simulated):
    sim, pub = simulated[mode]["wall_ms"], published[mode]["wall_ms"]
    assert abs(sim / pub - 1) <= 0.10, f"{mode}: {sim:.0f} ms vs {pub} ms"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("metric", ["sys_pct", "idle_pct"])
def test_cpu_split_within_5_points(mode, metric, published, simulated):
    sim, pub = simulated[mode][metric], published[mode][metric]
    assert abs(sim - pub) <= 5.0, f"{mode} {metric}: {sim:.2f} vs {pub:.2f}"


@ENGINE_I_4K_DMA
def test_hog_gain_within_3_points(published, simulated):
    def gain(rows):
        return 100 * (
            rows["busy-dma"]["hog_iterations"] / rows["busy-baseline"]["hog_iterations"] - 1
        )

    assert abs(gain(simulated) - gain(published)) <= 3.0, (
        f"hog gain {gain(simulated):+.1f}% vs {gain(published):+.1f}%"
    )


def test_excess_pages_are_the_batch_after_a_drain_capture(simulated):
    row = simulated["baseline"]
    excess = row["pages_migrated"] - 16384 * 256
    # the block is captured in the drain at its end, after the capture check: one more
    # COMPACT_CLUSTER_MAX batch from the next pageblock per allocation
    assert row["capture_in_drain"] >= 0.99 * row["alloc_success"]
    assert row["pages_after_capture"] == pytest.approx(excess, rel=0.01)
    assert row["pages_after_capture"] == pytest.approx(32 * row["capture_in_drain"], rel=0.01)


def test_fit_recovers_a_known_isolation_cost(platform, tmp_path):
    truth = platform.replace(compaction__isolate_page_us=1.7)
    kw = {"node_bytes": 1 << 30, "allocations": 200}
    rows = [simulate(truth, **kw).result(truth, mode=m).row() for m in MODES]
    ref = pl.DataFrame(
        {k: [r[k] for r in rows] for k in ("mode", "wall_ms", "pages_migrated", "dma_copies",
                                             "hog_iterations", "user_pct", "sys_pct", "idle_pct")}
    )  # fmt: skip
    path = tmp_path / "ref.csv"
    ref.write_csv(path)
    start = platform.replace(compaction__isolate_page_us=0.5)
    fitted, resid = fit_compaction(start, path, **kw)
    assert fitted.compaction.isolate_page_us == pytest.approx(1.7, rel=1e-3)
    base = resid.filter((pl.col("mode") == "baseline") & (pl.col("metric") == "wall_ms"))
    assert base["fitted"][0] and abs(base["error"][0]) < 0.01
