"""Full scale (250 GB node, 16384 order-9 allocations), all four published modes, against the
published compaction table; and the stage-2 fit recovering a known cost."""

from __future__ import annotations

import polars as pl
import pytest
from compaction_tolerance import check, check_names

from migsim.calibrate.compaction import FREE, fit_compaction
from migsim.cli.compaction import REFERENCE_COMPACTION
from migsim.studies.compaction import MODES, mode_rows, simulate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def published():
    df = pl.read_csv(REFERENCE_COMPACTION, comment_prefix="#")
    return {r["mode"]: r for r in df.iter_rows(named=True)}


@pytest.fixture(scope="module")
def simulated(platform, full_scale):
    """The rows reproduce_compaction() returns, costed from the session's full-scale run."""
    return {r["mode"]: r for r in mode_rows(full_scale.sim, platform)}


@pytest.mark.parametrize("name", check_names())
def test_published_row_within_tolerance(name, published, simulated):
    check(name, simulated, published)


def test_excess_pages_are_the_batch_after_a_drain_capture(simulated):
    row = simulated["baseline"]
    excess = row["pages_migrated"] - 16384 * 256
    # the block is captured in the drain at its end, after the capture check: one more
    # COMPACT_CLUSTER_MAX batch from the next pageblock per allocation
    assert row["capture_in_drain"] >= 0.99 * row["alloc_success"]
    assert row["pages_after_capture"] == pytest.approx(excess, rel=0.01)
    assert row["pages_after_capture"] == pytest.approx(32 * row["capture_in_drain"], rel=0.01)


def test_fit_recovers_known_isolation_and_tick_costs(platform, tmp_path):
    truth = platform.replace(compaction__unnamed_page_us=1.7, sched__tick_irq_us=2.5)
    kw = {"node_bytes": 1 << 30, "allocations": 200}
    rows = [simulate(truth, **kw).result(truth, mode=m).row() for m in MODES]
    ref = pl.DataFrame(
        {k: [r[k] for r in rows] for k in ("mode", "wall_ms", "pages_migrated", "dma_copies",
                                             "hog_iterations", "user_pct", "sys_pct", "idle_pct")}
    )  # fmt: skip
    path = tmp_path / "ref.csv"
    ref.write_csv(path)
    start = platform.replace(compaction__unnamed_page_us=0.5, sched__tick_irq_us=1.0)
    fitted, resid = fit_compaction(start, path, **kw)
    assert fitted.compaction.unnamed_page_us == pytest.approx(1.7, rel=1e-3)
    assert fitted.sched.tick_irq_us == pytest.approx(2.5, rel=1e-3)
    base = resid.filter((pl.col("mode") == "baseline") & (pl.col("metric") == "wall_ms"))
    assert base["fitted"][0] and abs(base["error"][0]) < 0.01


@pytest.mark.change_detector
def test_committed_compaction_cost_is_the_output_of_the_fit(platform):
    """Change detector, not a model test: re-running stage 2 on the published baseline row
    reproduces the committed value (test_fit_recovers_a_known_isolation_cost tests the fit)."""
    from migsim.cost.platform import WRITTEN_DIGITS

    fitted, _ = fit_compaction(platform, REFERENCE_COMPACTION)
    for sec, key, _, _ in FREE:
        got, committed = fitted.as_dict()[sec][key], platform.as_dict()[sec][key]
        # the file holds WRITTEN_DIGITS significant digits: one unit of the last one
        assert got == pytest.approx(committed, rel=10.0 ** (1 - WRITTEN_DIGITS)), f"{sec}.{key}"


# -- issue 12: "isolate_page_us-like lumped costs are gone" -----------------------------------
# folio_isolate_lru as isolate_migratepages_block does it: an atomic folio_try_get, the LRU
# flag, the lruvec lock and the list_del of a cache-missing neighbour, ~100-400 ns per folio
# (the prior's comment in STAGE2_PRIORS); the fitted value also absorbs whatever per-page work
# no named part pays
FOLIO_ISOLATE_LRU_US = (0.1, 0.4)


def isolation_per_folio_us(platform) -> float:
    """What isolate_migratepages_block charges per isolated folio: its named parts, the lock
    round trip spread over the 16 LRU folios of 32 pfns of a half-free block, and the fitted
    remainder (also charged per isolated page)."""
    c = platform.compaction
    named = c.folio_try_get_us + c.isolate_lru_folio_us + c.lru_stat_us + c.lru_lock_us / 16
    return named + c.unnamed_page_us


@pytest.mark.xfail(
    strict=True,
    reason="the per-folio isolation is 2.17 us (61% of the baseline's 3.53 us of kernel CPU per "
    "page) against 0.1-0.4 us for folio_isolate_lru: its named parts (folio_try_get 0.01, "
    "folio_test_clear_lru + lruvec_del_folio 0.15, LRU counters 0.03, lru_lock 0.02 per 32 "
    "pfns) are 0.19 us, the fitted remainder compaction.unnamed_page_us 1.97 us is paid by no "
    "named mechanism (init_on_alloc off since 29288b6; __free_one_page 0.15 -> 0.02 us from "
    "the host's direct-compaction profile)",
)
def test_the_fitted_isolation_cost_is_a_real_isolations(platform):
    lo, hi = FOLIO_ISOLATE_LRU_US
    assert lo <= isolation_per_folio_us(platform) <= hi


@pytest.mark.xfail(
    strict=True,
    reason="issue 12 not met: lumped costs are not gone: compaction.unnamed_page_us, fitted on "
    "the baseline row, is 1.97 us per page, 56% of the baseline's 3.53 us of kernel CPU per "
    "page; the host's direct-compaction profile (config/host_compaction_profile_direct_run*."
    "csv) puts 63-71% of non-copy kernel CPU in migrate_pages()'s own functions and names no "
    "compaction-only function that could pay it; nor does a metadata working set larger than "
    "the caches: the host's kernel CPU per migrated page does not grow from 0.5 to 16 GiB regions "
    "(config/host_compaction_scale.csv: -1.4 +- 2.5% of its 2.36 us per doubling unsampled, "
    "12 runs; non-copy -6.1 +- 2.1%, 18 sampled runs) where the remainder would need +9% of "
    "the published 3.05 us non-copy per doubling of the metadata (0.28 us x 7 doublings from "
    "the 1 GiB throughput run's 34 MiB to the 248 GB region's 4.4 GB)",
)
def test_no_lumped_cost_is_left(platform):
    """The unnamed remainder is at most a tenth of the baseline's kernel CPU per page (3.53
    us: the published 16.708 s over the model's 4.72 M pages)."""
    assert platform.compaction.unnamed_page_us <= 0.1 * 3.53


# -- issue 12: 90% intervals of a single run -----------------------------------------------


@pytest.fixture(scope="module")
def spread(platform, full_scale):
    from migsim.calibrate.compaction import prediction_spread

    return prediction_spread(platform, full_scale.sim, REFERENCE_COMPACTION)


def test_published_walls_lie_in_the_simulated_intervals(spread, published):
    """The published value lies inside the 90% interval for at least 3 of the 4 walls."""
    inside = [
        m
        for m in MODES
        if spread["interval"][m]["wall_ms"][0]
        <= published[m]["wall_ms"]
        <= spread["interval"][m]["wall_ms"][1]
    ]
    assert len(inside) >= 3, f"published wall inside the interval only for {inside}"


# busy-dma passes since the L2 refill between migrate_pages() calls (a prior-sized term):
# 72.6e9 simulated, interval [65.74e9, 78.99e9], published 66.02e9, inside by 0.4% of the value
@pytest.mark.parametrize("mode", ["busy-baseline", "busy-dma"])
def test_published_hog_counts_lie_in_the_simulated_intervals(spread, published, mode):
    lo, hi = spread["interval"][mode]["hog_iterations"]
    assert lo <= published[mode]["hog_iterations"] <= hi, (lo, hi)


@pytest.mark.parametrize(
    "mode,metric",
    [(m, k) for m in MODES for k in ("wall_ms", "hog_iterations") if k == "wall_ms" or "busy" in m],
)
def test_intervals_are_no_wider_than_20_percent(spread, simulated, mode, metric):
    lo, hi = spread["interval"][mode][metric]
    value = simulated[mode][metric]
    assert lo <= value <= hi
    assert (hi - lo) / value <= 0.20, f"{mode} {metric}: {(hi - lo) / value:.1%} wide"


def test_sensitivity_table_names_every_prior_and_its_effect(spread):
    from migsim.calibrate.compaction import PRIOR_RANGES

    sources = {e["source"] for e in spread["sensitivity"]}
    assert {f"{s}.{k}" for s, k in PRIOR_RANGES} <= sources
    # a prior only an idle CPU pays moves no busy row: the C1 exit lengthens the dma wall,
    # never the busy ones (a CPU that runs the hog is not in an idle state)
    c1 = next(e for e in spread["sensitivity"] if e["source"] == "sched.c1_exit_us")
    assert c1["dma wall %"][1] > 0 > c1["dma wall %"][0]
    assert c1["busy-dma wall %"] == [0.0, 0.0] and c1["busy-baseline wall %"] == [0.0, 0.0]
    largest = [e["largest"] for e in spread["sensitivity"]]
    assert largest == sorted(largest, reverse=True)


# -- issue 11: "compaction predictions not made worse" ---------------------------------------
# The errors against the published rows on main before ed09b22 (v3/v4 descriptors are the
# IOMMU-merged 64 KiB segments of the sg table, page_stall_us removed; measured on 7a5ae1d):
# dma wall +2.2%, busy-dma wall +6.6%, busy-dma hog gain +13.1% (published +6.0%).
ERRORS_BEFORE_SEGMENT_MERGE = {"dma": 2.2, "busy-dma": 6.6, "hog_gain_points": 13.1 - 6.0}


@pytest.mark.xfail(
    strict=True,
    reason="issue 11 not met: the 64 KiB segments of 4K folios keep dcbm asleep 1.03 us per "
    "page (published dma row: 0.92), so dma wall +5.6%, busy-dma wall +6.9%, hog gain +17.0% "
    "(+6.0% published; with the interconnect's M/M/1 load since 2d65b10, init_on_alloc off "
    "and the L2 refill between calls); no mechanism in the dcbm, PTDMA or IOMMU code makes a "
    "segment of 4K folios faster than one of 16K folios. Under the hard cap before 2d65b10, "
    "an engine at the rate the 4K column implies (dma.ramp_gbps 6.3, a diagnostic) gave walls "
    "-1.9% / +3.3% and hog gain +8.5% but dma sys 81.5% (76.65% published), and it cannot "
    "move the CPU saved by offload (now 0.38 / 0.35 against 0.51 / 0.57 us per page): the "
    "engine's time is dcbm's sleep",
)
def test_compaction_dma_predictions_no_worse_than_before_the_segment_merge(simulated, published):
    def wall_err(mode: str) -> float:
        return 100 * (simulated[mode]["wall_ms"] / published[mode]["wall_ms"] - 1)

    def gain(rows) -> float:
        return 100 * (
            rows["busy-dma"]["hog_iterations"] / rows["busy-baseline"]["hog_iterations"] - 1
        )

    now = {m: abs(wall_err(m)) for m in ("dma", "busy-dma")}
    now["hog_gain_points"] = abs(gain(simulated) - gain(published))
    worse = {k: round(v, 2) for k, v in now.items() if v > ERRORS_BEFORE_SEGMENT_MERGE[k]}
    assert not worse, f"worse than before the segment merge: {worse}"
