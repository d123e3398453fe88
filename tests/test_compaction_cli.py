"""`migsim compaction` and `migsim reproduce compaction`: output, JSON, bad input."""

from __future__ import annotations

import json

import pytest

# every test on both engines of the allocation loop (tests/engines.py)
from engines import loop_engine, pytest_generate_tests  # noqa: F401

from migsim.cli import main


def test_compaction_text_output(capsys):
    assert main(["compaction", "--node-size", "64M", "--allocations", "4"]) == 0
    out = capsys.readouterr().out
    assert "pages migrated" in out and "compact_stall" in out


def test_compaction_json_row(capsys):
    args = ["compaction", "--node-size", "64M", "--allocations", "4", "--mode", "busy-dma",
            "--channels", "2", "--json"]  # fmt: skip
    assert main(args) == 0
    row = json.loads(capsys.readouterr().out)
    contract = {
        "experiment", "mode", "channels", "cluster_max", "node_bytes", "allocations",
        "free_ratio", "pattern", "seed", "min_batch_bytes", "wall_ms", "pages_migrated",
        "dma_copies", "hog_iterations", "user_pct", "sys_pct", "idle_pct", "alloc_success",
        "alloc_fail", "migrate_calls", "compact_stall", "compact_success", "compact_fail",
        "compact_migrate_scanned", "compact_free_scanned", "compact_isolated",
        "pgmigrate_success", "pgmigrate_fail", "platform",
    }  # fmt: skip
    assert contract <= set(row)
    assert row["experiment"] == "compaction"
    assert row["mode"] == "busy-dma" and row["channels"] == 2 and row["alloc_success"] == 4
    assert row["hog_iterations"] > 0 and row["dma_copies"] == row["pages_migrated"]


def test_state_file_is_used(tmp_path, capsys):
    from migsim.kernel.fragment import FragmentConfig, fragment, save_state

    cfg = FragmentConfig(node_bytes=32 << 20, pattern="clustered")
    path = tmp_path / "z.npz"
    save_state(fragment(cfg), path, cfg)
    assert main(["compaction", "--state", str(path), "--allocations", "2", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["node_bytes"] == 32 << 20 and row["pattern"] == "clustered"


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--node-size", "1G", "--allocations", "600"], ["--allocations", "more memory"]),
        (["--free-ratio", "1.0"], ["--free-ratio", "[0, 1)"]),
        (["--free-ratio", "-0.5"], ["--free-ratio", "[0, 1)"]),
        (["--order", "11"], ["--order", "0..10"]),
        (["--allocations", "0"], ["--allocations", ">= 1"]),
        (["--pattern", "zigzag"], ["--pattern", "even, random, clustered"]),
        (["--mode", "fast"], ["--mode", "busy-dma"]),
        (["--node-size", "3M"], ["--node-size", "2M"]),
        (["--channels", "2"], ["--channels", "dma"]),
        (["--mode", "dma", "--channels", "99"], ["--channels", "1..16"]),
    ],
)
def test_bad_input_is_one_line_naming_the_argument(args, names, capsys):
    with pytest.raises(SystemExit) as exc:
        rc = main(["compaction", *args])
        raise SystemExit(rc)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    for n in names:
        assert n in err


def test_per_page_us_by_hand():
    from migsim.studies.compaction import offload_saving_per_page_us, per_page_us

    row = {"wall_ms": 2000.0, "pages_migrated": 1_000_000, "sys_pct": 75.0, "idle_pct": 25.0,
           "user_pct": 0.0}  # fmt: skip
    assert per_page_us(row) == pytest.approx(
        {"wall_us": 2.0, "sys_us": 1.5, "idle_us": 0.5, "user_us": 0.0}
    )
    base = {"wall_ms": 1000.0, "pages_migrated": 500_000, "sys_pct": 100.0, "idle_pct": 0.0,
            "user_pct": 0.0}  # fmt: skip
    busy = {**base, "wall_ms": 2000.0, "sys_pct": 50.0, "user_pct": 50.0}
    busy_dma = {**base, "wall_ms": 2000.0, "sys_pct": 40.0, "user_pct": 60.0}
    rows = {"baseline": base, "dma": row, "busy-baseline": busy, "busy-dma": busy_dma}
    # idle: 2.0 us of sys per page against 1.5; busy: 2.0 against 1.6
    assert offload_saving_per_page_us(rows) == pytest.approx({"idle": 0.5, "busy": 0.4})


@pytest.fixture
def one_reproduction(monkeypatch):
    """The two computations of `migsim reproduce compaction`, reproduce_results (the
    full-scale page-level run and its four costings) and prediction_spread (the intervals'
    refits), each done once for the test and handed to a later call with equal arguments (a
    platform by its name, values and meta; the page-level run by identity: the kept one): the
    test's --json and text calls are two renderings of one deterministic reproduction (~1 CPU s
    each computation, patched where cmd_reproduce imports them at its call)."""
    from conftest import _platform_key

    import migsim.calibrate.compaction as calibrate
    import migsim.studies.compaction as study

    kept: dict = {}

    def key_of(value):
        if isinstance(value, study.Platform):
            return _platform_key(value)
        if isinstance(value, study.Simulation):
            return id(value)
        return value

    def keep(module, name):
        real = getattr(module, name)

        def call(*args, **kwargs):
            key = (name, tuple(map(key_of, args)), tuple(sorted(kwargs.items())))
            if key not in kept:
                kept[key] = real(*args, **kwargs)
            return kept[key]

        monkeypatch.setattr(module, name, call)

    keep(study, "reproduce_results")
    keep(calibrate, "prediction_spread")


@pytest.mark.slow
def test_reproduce_compaction_json_and_text(capsys, one_reproduction):
    """The full-scale reproduction: one JSON object with the simulated modes, the published
    rows and the per-page decomposition of both (a published cell checked by hand)."""
    assert main(["reproduce", "compaction", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [m["mode"] for m in d["modes"]] == ["baseline", "dma", "busy-baseline", "busy-dma"]
    pub = {r["mode"]: r for r in d["per_page_us"]["published"]}
    # baseline: 16708 ms at 99.40% sys over 4563506 pages
    assert pub["baseline"]["sys_us"] == pytest.approx(16708e3 * 0.994 / 4563506, rel=1e-9)
    # the published saving by hand: baseline 16708 ms x 99.40% / 4563506 pages = 3.6393 us
    # of sys per page, dma 18887 ms x 76.65% / 4622952 = 3.1315 us: 0.5078 us per page
    assert d["offload_saving_us"]["published"]["idle"] == pytest.approx(
        16708e3 * 0.994 / 4563506 - 18887e3 * 0.7665 / 4622952, rel=1e-9
    )
    # (per_page_us itself is checked by hand in test_per_page_us_by_hand)
    sim = {r["mode"]: r for r in d["per_page_us"]["simulated"]}
    assert [r["mode"] for r in d["per_page_us"]["simulated"]] == [m["mode"] for m in d["modes"]]
    for r in d["modes"]:
        assert {"irq_pct", "softirq_pct", "unaccounted_pct"} <= set(r)
        # the simulated per-page share outside user, sys and idle is the one the published
        # rows have: irq + softirq and the idle task's time in no /proc/stat column
        rest = 100 - r["user_pct"] - r["sys_pct"] - r["idle_pct"]
        assert rest == pytest.approx(r["irq_pct"] + r["softirq_pct"] + r["unaccounted_pct"])
        us = r["wall_ms"] * 1e3 / r["pages_migrated"]
        assert sim[r["mode"]]["irq_softirq_us"] == pytest.approx(us * rest / 100, rel=1e-9)
    # alone on its CPU in C1 the wake-up and the switch from idle are in no column; the busy
    # CPU has no idle task
    unaccounted = {r["mode"]: r["unaccounted_pct"] for r in d["modes"]}
    assert unaccounted["dma"] > 0
    assert unaccounted["baseline"] == unaccounted["busy-dma"] == 0.0
    # the missing share of a published row is its irq + softirq: baseline 100 - 99.40 - 0.29
    assert pub["baseline"]["irq_softirq_us"] == pytest.approx(16708e3 * 0.0031 / 4563506)
    # alone on its CPU the compacting task's kernel time (the timeline's sys share) is exactly
    # the sum of the named parts (the costing's per-function work): two accountings agree
    parts = d["parts_per_page_us"]
    for mode in ("baseline", "dma"):
        named = {k: v for k, v in parts[mode].items() if k != "total kernel CPU of compaction"}
        assert sum(named.values()) == pytest.approx(sim[mode]["sys_us"], rel=1e-9)
        assert not any("isolate_page" in k for k in named)  # no lumped per-page cost left
    # hog iterations per second of user time, by hand: busy-baseline 62300165085 / (49.90% x
    # 33.256 s) = 3.754e9, busy-dma 66022189744 / (56.32% x 32.475 s) = 3.610e9 (-3.9%)
    rate = d["hog_iterations_per_user_s"]
    assert rate["published"]["busy-baseline"] == pytest.approx(62300165085 / (0.4990 * 33.256))
    assert rate["published"]["busy-dma"] == pytest.approx(66022189744 / (0.5632 * 32.475))
    # in the model the hog's loop runs at its clock whenever it has the CPU, and user time is
    # the hog's alone (irq time accounted apart), so the rate is the same in both busy modes
    from migsim.cost.platform import DEFAULT_PLATFORM, load_platform

    sched = load_platform(DEFAULT_PLATFORM).sched
    hog_hz = sched.hog_clock_ghz * 1e9 * sched.hog_iters_per_cycle
    assert rate["simulated"]["busy-baseline"] == pytest.approx(hog_hz, rel=1e-6)
    assert rate["simulated"]["busy-dma"] == pytest.approx(hog_hz, rel=1e-6)
    assert main(["reproduce", "compaction"]) == 0
    out = capsys.readouterr().out
    assert "per migrated page" in out and "kernel CPU saved by offload" in out
    assert "hog iterations per second of user time" in out
