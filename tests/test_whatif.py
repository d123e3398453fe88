"""What-if studies: each study's mechanism on a small scale, and every number of each findings
paragraph checked against the study's summary Parquet (computed here from the file's columns,
independently of the templates that wrote the paragraph)."""

from __future__ import annotations

import re

import polars as pl
import pytest
from whatif_expect import EXPECTED, check, tokens

from migsim.cost.platform import DEFAULT_PLATFORM
from migsim.output.tables import read_metadata
from migsim.studies import (
    check_config,
    cluster_max,
    common,
    enabled,
    engine_class,
    fragmentation,
    hybrid,
    latency,
    registry,
    run_study,
    study_params,
)

# A small node that keeps the published layout (50% freed evenly in every 2 MB region, the
# same share of the node allocated: 16384 allocations of 2 MB on a 250 GB node is 12.8%).
SMALL = dict(node_bytes=2 * 2**30, allocations=128)


def small_setup(**kw) -> common.CompactionSetup:
    return common.CompactionSetup(**{**SMALL, "seed": 3, **kw})


# ---------------------------------------------------------------------------------------------
# Engine class
# ---------------------------------------------------------------------------------------------


def test_low_latency_engine_scales_only_the_named_parameters(platform):
    fast = engine_class.low_latency_engine(platform, 0.25)
    for sec, params in platform.as_dict().items():
        for key, value in params.items():
            got = fast.as_dict()[sec][key]
            if sec == "dma" and key in engine_class.LATENCY_PARAMS:
                # times are multiplied by the scale, rates (GB/s) divided by it
                want = value / 0.25 if key.endswith("_gbps") else value * 0.25
                assert got == pytest.approx(want, rel=1e-12), key
            else:
                assert got == value, f"{sec}.{key}"
    rate = engine_class.low_latency_engine(platform, 0.5, ["ramp_gbps"])
    assert rate.dma.ramp_gbps == pytest.approx(platform.dma.ramp_gbps * 2, rel=1e-12)
    with pytest.raises(ValueError, match="latency_scale"):
        engine_class.low_latency_engine(platform, 0.0)
    with pytest.raises(ValueError, match="latency_params"):
        engine_class.low_latency_engine(platform, 0.5, ["engine_gbps"])


@pytest.mark.parametrize(
    "params", [engine_class.LATENCY_PARAMS, ("ramp_kb", "ramp_gbps", "irq_wakeup_us")]
)
def test_low_latency_engine_is_never_slower_in_throughput(platform, params):
    df = engine_class.study_engine_class(
        platform,
        latency_scales=[1.0, 0.5, 0.25, 0.1],
        latency_params=params,
        channels=[1, 2, 4, 16],
        folio_sizes=["4K", "16K", "64K", "2M"],
        trials=2,
        total_bytes=64 << 20,
        compaction=False,
    )
    # smaller scale -> never longer wall time, cell by cell (same trial noise in every class)
    for _, cell in df.group_by(["folio_bytes", "channels"]):
        walls = cell.sort("latency_scale", descending=True)["wall_ms"].to_list()
        assert all(b <= a * (1 + 1e-12) for a, b in zip(walls, walls[1:], strict=False)), walls
    # and it helps somewhere: a 64K descriptor on one channel waits for the ramp
    one = df.filter(
        (pl.col("folio_bytes") == 65536)
        & (pl.col("channels") == 1)
        & (pl.col("latency_scale") == 0.1)
    )
    assert one["gain"][0] > 1.2
    assert (df.filter(pl.col("latency_scale") == 1.0)["gain"] == 1.0).all()


def test_latency_params_choice_matters_for_small_descriptors(quiet_platform):
    """v4 copies 4K folios in 64 KiB mapped segments (16 folios each, one channel: the
    segments run one after the other), each inside the calibrated ramp head, so all of it
    moves at the head rate: scaling the ramp rate by 10 saves 16384 x 64 KiB x (1/r -
    1/10r); scaling the head to a tenth leaves that much at the head rate and moves the rest
    at the engine's rate."""
    kw = dict(
        latency_scales=[1.0, 0.1], channels=[1], folio_sizes=["4K"], trials=1, compaction=False
    )
    # the interconnect as a hard cap, which one channel does not reach: the arithmetic below
    # is the engine's alone (with fabric_load_switch 1 its load stretches the streaming)
    quiet_platform = quiet_platform.replace(dma__fabric_load_switch=0)
    d = quiet_platform.dma
    seg, segments = 65536.0, (1 << 30) // 65536  # the study's 1 GiB, one batch
    assert d.max_seg_kb == 64 and d.ramp_kb * 1024 >= seg
    r, eng = min(d.ramp_gbps, d.engine_gbps) * 1e9, d.engine_gbps * 1e9

    def saved_ms(params: list[str], per_seg_after: float) -> float:
        out = engine_class.study_engine_class(quiet_platform, latency_params=params, **kw)
        before, after = out.sort("latency_scale", descending=True)["wall_ms"].to_list()
        assert before - after == pytest.approx(segments * (seg / r - per_seg_after) * 1e3, rel=1e-9)
        return before - after

    rate = saved_ms(["ramp_gbps"], seg / (min(10 * d.ramp_gbps, d.engine_gbps) * 1e9))
    h = 0.1 * d.ramp_kb * 1024
    head = saved_ms(["ramp_kb"], h / r + (seg - h) / eng)
    assert rate > 0 and head > 0


# ---------------------------------------------------------------------------------------------
# Latency against throughput
# ---------------------------------------------------------------------------------------------


def test_first_folio_grows_with_the_batch_limit_and_total_does_not(platform):
    df = latency.study_latency(
        platform,
        batch_limits=latency.power_of_two_limits(512, 16384),
        folio_sizes=["4K", "64K", "2M"],
        channels=[1, 16],
        total_bytes=64 << 20,
        trials=3,
    )
    for key, cell in df.group_by(["folio_bytes", "mode", "channels"]):
        cell = cell.sort("batch_limit_pages")
        ff, total = cell["first_folio_us"].to_list(), cell["total_ms"].to_list()
        assert all(b >= a for a, b in zip(ff, ff[1:], strict=False)), (key, ff)
        assert all(b <= a * (1 + 1e-12) for a, b in zip(total, total[1:], strict=False)), key
        assert cell["knee"].sum() == 1
        assert cell["nr_batches"].to_list() == sorted(cell["nr_batches"].to_list(), reverse=True)
    # batching a 4K copy really costs latency: 32 times the batch, about 32 times the wait
    dma4k = df.filter((pl.col("folio_bytes") == 4096) & (pl.col("channels") == 1))
    assert dma4k["first_folio_x"].max() > 16


def test_latency_rejects_bad_arguments(platform):
    with pytest.raises(ValueError, match="batch_limits"):
        latency.study_latency(platform, batch_limits=[0, 512])
    with pytest.raises(ValueError, match="knee_pct"):
        latency.study_latency(platform, knee_pct=0)
    with pytest.raises(ValueError, match="channels"):
        latency.study_latency(platform, channels=[17])


# ---------------------------------------------------------------------------------------------
# Compaction studies (small node)
# ---------------------------------------------------------------------------------------------

_SAME = ("wall_ms", "user_pct", "sys_pct", "idle_pct", "pages_migrated", "migrate_calls")
_SAME += ("alloc_success", "alloc_fail", "hog_iterations", "pgmigrate_success")


@pytest.mark.parametrize("load", common.LOADS)
def test_hybrid_with_t_above_every_batch_equals_baseline(platform, load):
    setup = small_setup()
    base = setup.run(platform, copy="baseline", load=load)
    never = setup.run(platform, copy="dma", load=load, min_batch_bytes=1 << 40)
    for k in _SAME:
        assert never[k] == base[k], k
    assert not never["dma_copies"]


@pytest.mark.parametrize("load", common.LOADS)
def test_hybrid_with_t_zero_offloads_every_page(platform, load):
    """T = 0: every batch is offloaded, so every migrated (order-0) page is a DMA copy, and
    the run migrates the same pages as the CPU baseline (the copier does not change what
    compaction does)."""
    setup = small_setup()
    t0 = setup.run(platform, copy="dma", load=load, channels=2, min_batch_bytes=0)
    base = setup.run(platform, copy="baseline", load=load)
    assert t0["dma_copies"] == t0["pages_migrated"] > 0
    for k in ("pages_migrated", "migrate_calls", "alloc_success", "pgmigrate_success"):
        assert t0[k] == base[k], k


def test_hybrid_study_brackets(platform):
    df = hybrid.study_hybrid(
        platform, thresholds=[0, 64 << 10, 256 << 10, 1 << 40], setup=small_setup()
    )
    for load in common.LOADS:
        cells = df.filter(pl.col("load") == load).sort("min_batch_bytes")
        assert cells["min_batch_bytes"][0] == 0
        # T = 0 offloads every (order-0) page; T above every batch runs as the CPU baseline
        assert cells["dma_copies"][0] == cells["pages_migrated"][0] > 0
        assert cells["wall_ms"][-1] == cells["baseline_wall_ms"][-1]
        assert cells["dma_copies"][-1] == 0
        # offloaded folios never grow with T
        copies = cells["dma_copies"].to_list()
        assert all(b <= a for a, b in zip(copies, copies[1:], strict=False))
        assert cells["best"].sum() == 1
        assert cells.filter(pl.col("best") == 1)["wall_ms"][0] == cells["wall_ms"].min()


@pytest.mark.parametrize("pattern", ["even", "random", "clustered"])
def test_isolating_a_whole_pageblock_takes_the_fewest_migrate_pages_calls(platform, pattern):
    """With COMPACT_CLUSTER_MAX at least the used pages of a pageblock (256 at 50% freed), a
    block is isolated in one pass, so no smaller cluster size needs fewer migrate_pages()
    calls, and every larger one does exactly the same run.

    (Calls are *not* monotone in between: a larger batch leaves more freed pages on the
    per-CPU lists, so the capture moves from migrate_pages() to the drain and one more batch
    is taken from the next pageblock; see the what-if findings.)"""
    df = cluster_max.study_cluster_max(
        platform,
        cluster_max=[8, 32, 64, 128, 192, 256, 512],
        loads=["idle"],
        setup=small_setup(pattern=pattern),
    )
    base = df.filter(pl.col("copy") == "baseline").sort("cluster_max")
    calls = dict(zip(base["cluster_max"], base["migrate_calls"], strict=True))
    pages = dict(zip(base["cluster_max"], base["pages_migrated"], strict=True))
    assert calls[256] == calls[512] and pages[256] == pages[512]
    for cm in (8, 32, 64, 128, 192):
        assert calls[cm] > calls[256], (cm, calls)
    # the copy back-end never changes what compaction does, only what it costs
    for _, cell in df.group_by("cluster_max"):
        assert cell["migrate_calls"].n_unique() == 1 and cell["pages_migrated"].n_unique() == 1


def test_even_layout_needs_two_calls_per_block_below_256(platform):
    """Even pattern at 50%: 256 used pages per pageblock, so COMPACT_CLUSTER_MAX = 32 costs two
    migrate_pages() calls per block (32, then the remaining 224) and 256 or more costs one."""
    df = cluster_max.study_cluster_max(
        platform, cluster_max=[32, 256, 512], loads=["idle"], setup=small_setup()
    )
    base = df.filter(pl.col("copy") == "baseline").sort("cluster_max")
    c32, c256, c512 = base["migrate_calls"].to_list()
    assert c256 == c512
    assert c32 > 1.8 * c256


def test_low_latency_engine_is_never_slower_in_compaction(platform):
    df = engine_class.study_engine_class(
        platform,
        latency_scales=[1.0, 0.25, 0.1],
        channels=[1],
        folio_sizes=["2M"],
        trials=1,
        compaction_channels=[1, 4],
        setup=small_setup(),
    )
    cp = df.filter(pl.col("part") == "compaction")
    for _, cell in cp.group_by(["load", "channels"]):
        walls = cell.sort("latency_scale", descending=True)["wall_ms"].to_list()
        assert all(b <= a for a, b in zip(walls, walls[1:], strict=False)), walls
    idle = cp.filter((pl.col("load") == "idle") & (pl.col("latency_scale") == 0.1))
    assert (idle["gain"] > 1.0).all()


def test_fragmentation_study_counts(platform):
    df = fragmentation.study_fragmentation(
        platform, free_ratios=[0.25, 0.5], patterns=["even", "random"], setup=small_setup()
    )
    assert df.height == 4
    assert (df["alloc_success"] + df["alloc_fail"] == df["allocations"]).all()
    # no pageblock starts free (every 2 MB region keeps 512 x (1 - ratio) used pages, evenly
    # or at random), so each order-9 block handed out was emptied by migrating all of them
    ok = df.filter(pl.col("alloc_success") > 0)
    assert ok.height == 4
    assert (ok["pages_per_alloc"] >= 512 * (1 - ok["free_ratio"])).all()
    even = df.filter(pl.col("pattern") == "even").sort("free_ratio")
    # fewer used pages per block to move out when more of it is free
    assert even["pages_per_alloc"][0] > even["pages_per_alloc"][1]


def test_compaction_setup_rejects_bad_scale():
    with pytest.raises(ValueError, match="allocations"):
        common.CompactionSetup(node_bytes=2**30, allocations=512)
    with pytest.raises(ValueError, match="node_bytes"):
        common.CompactionSetup(node_bytes=3 * 2**20, allocations=1)


# ---------------------------------------------------------------------------------------------
# Findings paragraphs against the summary Parquet
# ---------------------------------------------------------------------------------------------

FINDINGS_CASES = {
    "latency": {
        "kwargs": {
            "batch_limits": [512, 2048, 8192, 65536],
            "folio_sizes": ["4K", "2M"],
            "channels": [1, 8],
            "total_bytes": 256 << 20,
            "trials": 2,
            "knee_pct": 90.0,
        }
    },
    "engine_class": {
        "kwargs": {
            "latency_scales": [1.0, 0.25],
            "latency_params": ["ramp_gbps", "call_setup_us", "irq_wakeup_us"],
            "channels": [1, 4],
            "folio_sizes": ["4K", "64K", "2M"],
            "trials": 2,
            "total_bytes": 64 << 20,
            "compaction_channels": [1, 2],
            "loads": ["idle", "busy"],
        },
    },
    "hybrid": {
        "kwargs": {
            "thresholds": [0, 64 << 10, 256 << 10, 1 << 20],
            "channels": [1, 4],
            "loads": ["idle", "busy"],
        },
    },
    "cluster_max": {
        "kwargs": {"cluster_max": [32, 128, 512], "channels": [1, 8], "loads": ["idle", "busy"]},
    },
    "fragmentation": {
        "kwargs": {
            "free_ratios": [0.25, 0.5, 0.75],
            "patterns": ["even", "clustered"],
            "copies": ["baseline"],
            "channels": 1,
        },
    },
}


@pytest.mark.parametrize("study", sorted(FINDINGS_CASES))
def test_findings_numbers_match_the_summary_parquet(tmp_path, study):
    """Run the study as the workflow does, read its Parquet back, and check every number of
    the findings paragraph against values computed here from the file's columns."""
    params = {"study": study, "module": f"migsim.studies.{study}", "seed": 5}
    params |= FINDINGS_CASES[study]
    if study != "latency":
        params["setup"] = SMALL | {"free_ratio": 0.5, "pattern": "even"}
    out = tmp_path / f"{study}.parquet"
    run_study(str(DEFAULT_PLATFORM), params, str(out))
    registry()[study].schema.check_file(out)
    assert read_metadata(out)["study"] == study
    df = pl.read_parquet(out)
    text = registry()[study].findings(df)
    assert len(tokens(text)) >= 8, text
    # sentences a person writes: no "channel(s)", no difference stated as "at most 0.0"
    assert "(s)" not in text and not re.search(r"at most 0(\.0+)?\b", text), text
    check(text, EXPECTED[study](df))


def test_findings_check_catches_a_wrong_number(tmp_path):
    """The check is not vacuous: one altered value in the frame changes the expected list."""
    params = {"study": "latency", "module": "migsim.studies.latency", "seed": 5}
    params |= FINDINGS_CASES["latency"]
    run_study(str(DEFAULT_PLATFORM), params, str(tmp_path / "l.parquet"))
    df = pl.read_parquet(tmp_path / "l.parquet")
    text = latency.findings_latency(df)
    bad = df.with_columns(pl.col("total_ms") * 1.01)
    with pytest.raises(AssertionError):
        check(text, EXPECTED["latency"](bad))


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


def _config():
    import yaml

    from migsim.cost.platform import DEFAULT_PLATFORM as P

    return yaml.safe_load((P.parents[1] / "config.yaml").read_text())


def test_default_config_gives_every_study_its_parameters():
    config = _config()
    check_config(config)
    assert enabled(config) == list(registry())
    hybrid = study_params(config, "hybrid")
    assert 0 in hybrid["kwargs"]["thresholds"] and 2 << 20 in hybrid["kwargs"]["thresholds"]
    assert hybrid["setup"]["node_bytes"] * 4 == 250 * 2**30  # a quarter of the published node
    assert "setup" not in study_params(config, "latency")


@pytest.mark.parametrize(
    "change, key",
    [
        ({"allocations": 1 << 20}, "whatif.allocations"),
        ({"latency": {"total_bytes": "3M"}}, "whatif.latency.total_bytes"),
        ({"engine_class": {"total_bytes": "3M"}}, "whatif.engine_class.total_bytes"),
        ({"hybrid": {"thresholds": [0, "lots"]}}, "whatif.hybrid.thresholds[1]"),
    ],
)
def test_bad_whatif_config_names_the_key(change, key):
    config = _config()
    for k, v in change.items():
        if isinstance(v, dict):
            config["whatif"][k].update(v)
        else:
            config["whatif"][k] = v
    with pytest.raises(ValueError, match=re.escape(key)):
        check_config(config)
    with pytest.raises(ValueError, match="study"):
        study_params(config, "nonsense")


@pytest.mark.parametrize("study", ["latency", "hybrid"])
def test_same_parameters_and_seed_give_identical_parquet(tmp_path, study):
    params = {"study": study, "module": f"migsim.studies.{study}", "seed": 9}
    params |= FINDINGS_CASES[study]
    if study != "latency":
        params["setup"] = SMALL | {"free_ratio": 0.5, "pattern": "random"}
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    run_study(str(DEFAULT_PLATFORM), params, str(a))
    run_study(str(DEFAULT_PLATFORM), params, str(b))
    assert a.read_bytes() == b.read_bytes()
    other = tmp_path / "c.parquet"
    run_study(str(DEFAULT_PLATFORM), {**params, "seed": 10}, str(other))
    assert not pl.read_parquet(other).equals(pl.read_parquet(a))
