"""The host probes at small sizes: their rows, their Parquet files and the fragmentation they
build in real memory. The tests that run the compaction probe (it changes THP and
compaction_proactiveness for its run and triggers real compaction) are marked ``host``: they
run where CI=true as root or when asked (tests/host_gate.py); the rest touch only this
process's own memory and always run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from migsim.host import probe
from migsim.output.tables import write_parquet
from migsim.pipeline import config_hash
from migsim.units import PAGE_SIZE, PAGEBLOCK_NR_PAGES


def require_compaction_probe() -> None:
    """Skip (outside CI) where the compaction probe cannot run; in CI it must run."""
    try:
        probe.check_compaction_available()
    except probe.ProbeUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"compaction probe unavailable in CI: {exc}")
        pytest.skip(f"compaction probe unavailable here: {exc}")


# ------------------------------------------------------------------ fragmentation patterns


@pytest.mark.parametrize("pattern", probe.PATTERNS)
@pytest.mark.parametrize("ratio", [0.1, 0.25, 0.5, 0.75, 0.9])
def test_free_mask_frees_the_ratio_of_every_block(pattern, ratio):
    mask = probe.free_mask(pattern, ratio, 7, seed=3)
    assert mask.shape == (7, PAGEBLOCK_NR_PAGES)
    assert (mask.sum(axis=1) == round(ratio * PAGEBLOCK_NR_PAGES)).all()


def test_free_mask_even_is_evenly_spaced():
    mask = probe.free_mask("even", 0.25, 2, seed=0)
    offs = np.flatnonzero(mask[0])
    assert offs[0] == 0 and set(np.diff(offs)) == {4}
    assert (mask[0] == mask[1]).all()


def test_free_mask_clustered_is_runs_of_16():
    mask = probe.free_mask("clustered", 0.25, 3, seed=1)
    edges = np.diff(mask[0].astype(np.int8), prepend=0, append=0)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    assert set(ends - starts) == {16} and len(starts) == 8
    assert (mask[0] == mask[2]).all()


def test_free_mask_random_is_seeded_and_differs_per_block():
    a = probe.free_mask("random", 0.5, 20, seed=5)
    b = probe.free_mask("random", 0.5, 20, seed=5)
    c = probe.free_mask("random", 0.5, 20, seed=6)
    assert (a == b).all() and not (a == c).all()
    assert not (a[0] == a[1]).all()


@pytest.mark.parametrize("pattern", probe.PATTERNS)
def test_free_mask_is_the_simulators_fragmentation(pattern):
    """The probe frees exactly the pages the simulator's fragment() frees, for the same seed."""
    from migsim.kernel.fragment import FragmentConfig, fragment
    from migsim.kernel.zone import FREE

    size = 8 << 20
    cfg = FragmentConfig(
        node_bytes=size + (2 << 20), alloc_bytes=size, reserved_bytes=2 << 20,
        free_ratio=0.3, pattern=pattern, seed=11,
    )  # fmt: skip
    zone = fragment(cfg)
    sim_free = (zone.state[: size // PAGE_SIZE] == FREE).reshape(-1, PAGEBLOCK_NR_PAGES)
    assert (probe.free_mask(pattern, 0.3, size // (2 << 20), seed=11) == sim_free).all()


def test_free_mask_rejects_bad_input():
    with pytest.raises(ValueError, match="pattern"):
        probe.free_mask("stripes", 0.5, 1, seed=0)
    with pytest.raises(ValueError, match="ratio"):
        probe.free_mask("even", 1.0, 1, seed=0)


# ------------------------------------------------------------------ anonymous memory


def test_region_is_aligned_and_madvise_pages_frees_exactly_the_mask():
    with probe.AnonRegion(4 << 20) as region:
        assert region.addr % (2 << 20) == 0
        region.madvise(probe.MADV_NOHUGEPAGE)
        region.touch()
        assert region.present().all()
        mask = np.zeros(region.nr_pages, dtype=bool)
        mask[[0, 1, 2, 5, 511, 512, 1000]] = True
        mask[700:760] = True
        calls = region.madvise_pages(mask, probe.MADV_DONTNEED)
        assert 1 <= calls <= 6  # five runs, batched or not
        assert (region.present() == ~mask).all()
        addr = region.addr
    assert region.addr is None
    with open("/proc/self/maps") as fh:
        spans = [[int(x, 16) for x in line.split()[0].split("-")] for line in fh]
    assert not any(lo <= addr < hi for lo, hi in spans)


# ------------------------------------------------------------------ copy probe


def test_probe_copy_rows_and_parquet(tmp_path):
    df = probe.probe_copy(sizes=("4K", "64K", "2M"), working_set="32M", repeats=2, seed=4)
    assert df.height == 3 * 2 * 2
    assert set(df["source"]) == {"measured"} and set(df["experiment"]) == {"copy"}
    # half the 32M working set is copied (from one half to the other): 16 MiB in 4096 4K,
    # 256 64K or 8 2M folios, 4096 base pages (the rows' rate, bytes over wall time, and
    # copy_s = wall_s are how the probe defines them, so they are not asserted)
    assert (df["total_bytes"] == 16 << 20).all() and (df["nr_pages"] == 4096).all()
    folios = dict(zip(df["folio_bytes"], df["nr_folios"], strict=True))
    assert folios == {4096: 4096, 65536: 256, 2 << 20: 8}
    # the rate itself depends on the machine and its load: not asserted (the copies ran:
    # every row took time)
    assert (df["wall_s"] > 0).all()
    out = tmp_path / "copy.parquet"
    write_parquet(df, out, probe.COPY_RUNS, config_hash=config_hash({"t": 1}), seed=4)
    probe.COPY_RUNS.check_file(out)
    back = pl.read_parquet(out)
    assert back.height == df.height
    summary = probe.copy_summary(back)
    assert summary.height == 6 and (summary["repeats"] == 2).all()


def test_probe_copy_rejects_bad_arguments():
    with pytest.raises(ValueError, match="sizes"):
        probe.probe_copy(sizes=("3K",), working_set="8M", repeats=1)
    with pytest.raises(ValueError, match="order"):
        probe.probe_copy(sizes=("4K",), orders=("backwards",), working_set="8M", repeats=1)
    with pytest.raises(ValueError, match="working_set"):
        probe.probe_copy(sizes=("2M",), working_set="2M", repeats=1)
    with pytest.raises(ValueError, match="repeats"):
        probe.probe_copy(sizes=("4K",), working_set="8M", repeats=0)


def test_cli_probe_copy_writes_parquet_and_json(tmp_path):
    out = tmp_path / "c.parquet"
    cmd = [sys.executable, "-m", "migsim.cli", "probe", "copy", "--sizes", "4K,2M"]
    cmd += ["--working-set", "16M", "--repeats", "2", "--out", str(out), "--json"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    doc = json.loads(res.stdout)
    assert {r["folio_size"] for r in doc["summary"]} == {"4K", "2M"}
    probe.COPY_RUNS.check_file(out)
    assert pl.read_parquet(out).height == 2 * 2 * 2


def test_cli_probe_bad_argument_is_one_line():
    cmd = [sys.executable, "-m", "migsim.cli", "probe", "compaction", "--ratios", "0.5,1.2"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 2
    assert "--ratios" in res.stderr and "(0, 1)" in res.stderr


# ------------------------------------------------------------------ compaction probe


@pytest.mark.host
def test_probe_compaction_rows_and_parquet(tmp_path):
    require_compaction_probe()
    size = 128 << 20
    df = probe.probe_compaction(size, ratios=(0.5,), patterns=("even",), repeats=2, seed=9)
    assert df.height == 2
    assert set(df["source"]) == {"measured"} and set(df["mode"]) == {"baseline"}
    assert (df["node_bytes"] == size).all() and df["trial"].to_list() == [0, 1]
    # the pattern freed exactly half of every 2 MiB region, the rest stayed mapped
    assert (df["probe_pages_live"] == size // PAGE_SIZE // 2).all()
    # compaction ran and migrated pages; our own moved pages are part of pgmigrate_success
    assert (df["wall_ms"] > 0).all()
    assert (df["pgmigrate_success"] >= df["probe_pages_migrated"]).all()
    # the kernel places the region: a repetition can migrate nothing (seen once while other
    # jobs ran: its blocks lay where the scanners never got, e.g. above their meeting point),
    # a real outcome the rows record; across repetitions compaction must move pages
    assert df["pgmigrate_success"].sum() > 0
    assert (df["compact_migrate_scanned"] > 0).all()
    assert (df["probe_block_frac"] > 0).all()
    out = tmp_path / "k.parquet"
    write_parquet(df, out, probe.HOST_COMPACTION_RUNS, config_hash="x", seed=9)
    probe.HOST_COMPACTION_RUNS.check_file(out)
    s = probe.compaction_summary(pl.read_parquet(out))
    assert s.height == 1 and s["runs"][0] == 2 and s["pages_per_s"][0] > 0


def test_cli_probe_compaction_not_root_exits_3(monkeypatch, capsys):
    """Without root the compaction probe refuses before any work, says why, exits 3."""
    from migsim.cli import main

    monkeypatch.setattr(probe.os, "geteuid", lambda: 1000)
    before = probe.snapshot_settings()
    assert main(["probe", "compaction", "--size", "64M", "--repeats", "1"]) == 3
    err = capsys.readouterr().err
    assert "needs root" in err and "uid 1000" in err
    assert probe.snapshot_settings() == before


@pytest.mark.host
def test_cli_probe_compaction_unwritable_trigger_exits_3(monkeypatch, capsys, tmp_path):
    """Where the trigger cannot be written (here: a directory) the probe exits 3 with the
    reason, and the settings it changed on the way are restored."""
    require_compaction_probe()
    from migsim.cli import main

    monkeypatch.setattr(probe, "compact_trigger_path", lambda node=None: tmp_path)
    before = probe.snapshot_settings()
    assert main(["probe", "compaction", "--size", "64M", "--repeats", "1"]) == 3
    err = capsys.readouterr().err
    assert f"cannot write {tmp_path}" in err
    assert probe.snapshot_settings() == before


# ------------------------------------------------------------------ move_pages() per call


def _move_pages_call(calls: int, repeats: int) -> dict:
    try:
        return probe.probe_move_pages_call(calls, repeats)
    except probe.ProbeUnavailable as exc:  # a kernel without CONFIG_NUMA: move_pages is ENOSYS
        if os.environ.get("CI") == "true":
            pytest.fail(f"move_pages() unavailable in CI: {exc}")
        pytest.skip(f"move_pages() unavailable here: {exc}")


def test_probe_move_pages_call_migrates_nothing_and_reports_both_paths():
    """The probe's page stays where it is (status = its node every call, checked inside) and
    both loops are timed; no timing is asserted beyond what any machine gives."""
    r = _move_pages_call(200, 2)
    assert r["node"] >= 0 and r["calls"] == 200 and r["repeats"] == 2
    assert r["stat_us"] > 0 and r["move_us"] > 0
    assert r["lru_cache_disable_us_min"] <= r["lru_cache_disable_us"]
    assert r["lru_cache_disable_us"] <= r["lru_cache_disable_us_max"]


def test_cli_probe_move_pages_call_json(capsys):
    from migsim.cli import main

    _move_pages_call(1, 1)  # skips where the syscall is missing
    assert main(["probe", "move-pages-call", "--calls", "50", "--repeats", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"stat_us", "move_us", "lru_cache_disable_us", "node", "online_cpus"}


def test_cli_probe_move_pages_call_unknown_architecture_exits_3(monkeypatch, capsys):
    from migsim.cli import main

    monkeypatch.setattr(probe._pyplatform, "machine", lambda: "pdp11")
    assert main(["probe", "move-pages-call", "--calls", "1"]) == 3
    assert "no syscall number known for pdp11" in capsys.readouterr().err


# ------------------------------------------------------------------ host calibration


def _copy_rows(gbps: float, fixed_us: float, sizes=("4K", "16K", "64K", "256K", "2M")):
    """Synthetic measured copy rows that follow t = fixed + bytes / bandwidth exactly."""
    from migsim.units import parse_size

    rows = []
    for label in sizes:
        fb = parse_size(label)
        n = (64 << 20) // fb
        wall = n * (fixed_us * 1e-6 + fb / (gbps * 1e9))
        for access in probe.ACCESS_ORDERS:
            for trial in range(3):
                rows.append(probe._copy_row(fb, n, access, trial, 1, wall, "synthetic"))
    return probe.COPY_RUNS.frame(rows)


def test_fit_copy_recovers_known_parameters():
    from migsim.calibrate.host import fit_copy

    fit = fit_copy(_copy_rows(9.5, 0.3))
    assert fit.cpu_copy_gbps == pytest.approx(9.5, rel=1e-4)
    assert fit.cpu_copy_fixed_us == pytest.approx(0.3, rel=1e-3)
    assert fit.residuals["rel_error"].abs().max() < 1e-4


def test_fit_host_platform_without_compaction_keeps_base_and_says_so(platform):
    from migsim.calibrate.host import fit_host_platform

    host = fit_host_platform(_copy_rows(7.0, 0.2), None, platform)
    assert host.copy.cpu_copy_gbps == pytest.approx(7.0, rel=1e-3)
    for sec in ("dma", "mt", "cpu"):
        assert host.as_dict()[sec] == platform.as_dict()[sec]
    meta = host.meta["host"]
    assert meta["compaction_fit"].startswith("skipped")
    assert "dma.*" in meta["from_base"] and "mt.*" in meta["from_base"]
    assert host.compaction.node_cpus_count == min(os.cpu_count(), 4096)


def _measured_compaction(size: int, runs: list[tuple[int, float]]):
    """Measured compaction rows at ratio 0.5 (even), sys 50% of each run's wall time."""
    rows = []
    for trial, (pages, wall_ms) in enumerate(runs):
        rows.append(
            probe.host_compaction_row(
                experiment="compaction",
                mode="baseline",
                cluster_max=32,
                node_bytes=size,
                free_ratio=0.5,
                pattern="even",
                seed=1 + trial,
                wall_ms=wall_ms,
                pages_migrated=pages,
                user_pct=0.0,
                sys_pct=50.0,
                idle_pct=50.0,
                compact_migrate_scanned=0,
                compact_free_scanned=0,
                compact_isolated=0,
                pgmigrate_success=pages,
                pgmigrate_fail=0,
                platform="synthetic",
                source="measured",
                trial=trial,
            )  # fmt: skip
        )
    return probe.HOST_COMPACTION_RUNS.frame(rows)


def test_fit_compaction_matches_the_measured_rate_at_the_calibration_ratio(platform):
    """The compaction fit scales the CPU costs until the simulated rate at the calibration
    ratio equals the measured median per CPU second; other ratios are not looked at."""
    from migsim.calibrate import host as ch

    size = 64 << 20
    meas = _measured_compaction(size, [(8000, 20.0), (8200, 20.0), (7800, 20.0)])
    host = ch.fit_host_platform(_copy_rows(10.0, 0.2), meas, platform)
    target = 8000 / (20.0e-3 * 0.5)  # median pages per CPU second (sys 50% of 20 ms)
    got = ch.simulate_compact_memory(host, size, 0.5, "even", 1)
    assert got["pages_migrated"] / (got["wall_ms"] / 1e3) == pytest.approx(target, rel=1e-3)
    assert host.meta["host"]["compaction_fit"]["measured_pages_per_s"] == pytest.approx(target)
    assert host.noise.trial_sd_frac > 0


def test_fit_host_platform_when_nothing_migrated_keeps_base_and_says_why(platform):
    """A probe whose region had nothing to migrate gives no rate: the compaction costs stay
    at the base values and the meta names the reason (no fit on log(0))."""
    from migsim.calibrate import host as ch

    meas = _measured_compaction(64 << 20, [(0, 2.5), (0, 2.4)])
    host = ch.fit_host_platform(_copy_rows(10.0, 0.2), meas, platform)
    assert host.as_dict()["compaction"] == {
        **platform.as_dict()["compaction"],
        "node_cpus_count": host.compaction.node_cpus_count,
    }
    assert "migrated no pages at ratio 0.5" in host.meta["host"]["compaction_fit"]


# ------------------------------------------------------------------ the `host` target


def test_host_jobs_without_compaction_probe(tmp_path, monkeypatch, platform):
    """Where the compaction probe cannot run, its file is empty with the reason, and the fit,
    the simulation and the comparison still run on the copy probe alone."""
    from migsim.cost.platform import DEFAULT_PLATFORM, load_platform
    from migsim.host import pipeline as host

    monkeypatch.setattr(probe.os, "geteuid", lambda: 1000)
    cp = host.probe_params({"copy_working_set": "16M", "repeats": 2}, "copy")
    kp = host.probe_params({"size": "64M", "repeats": 2}, "compaction")
    host.run_copy_probe(cp, tmp_path / "copy.parquet")
    reason = host.run_compaction_probe(kp, tmp_path / "probe.parquet")
    assert "needs root" in reason
    assert host.skipped_reason(tmp_path / "probe.parquet") == reason
    probe.HOST_COMPACTION_RUNS.check_file(tmp_path / "probe.parquet")
    assert pl.read_parquet(tmp_path / "probe.parquet").height == 0
    host.fit_platform(
        tmp_path / "copy.parquet", tmp_path / "probe.parquet", DEFAULT_PLATFORM,
        tmp_path / "host.yaml",
    )  # fmt: skip
    fitted = load_platform(tmp_path / "host.yaml")
    assert fitted.meta["host"]["compaction_fit"].startswith("skipped")
    assert (
        fitted.as_dict()["compaction"]["isolate_lru_folio_us"]
        == (platform.as_dict()["compaction"]["isolate_lru_folio_us"])
    )
    host.simulate_compaction(
        tmp_path / "host.yaml", tmp_path / "probe.parquet", kp, tmp_path / "c.parquet"
    )
    both = pl.read_parquet(tmp_path / "c.parquet")
    assert set(both["source"]) == {"simulated"} and both.height == 3 * 2
    host.compare(
        tmp_path / "c.parquet", tmp_path / "probe.parquet", tmp_path / "p.md",
        tmp_path / "p.json", str(tmp_path / "fig"),
    )  # fmt: skip
    assert "skipped on this machine" in (tmp_path / "p.md").read_text()
    for ext in ("html", "svg", "png"):
        assert (tmp_path / f"fig.{ext}").stat().st_size > 1000


@pytest.mark.slow
@pytest.mark.host
def test_snakemake_host_target(tmp_path):
    """`snakemake --cores 2 host` in a copy of the workflow: probes, fit, simulation, figure;
    and the default target does not include it."""
    from pipeline_util import copy_workflow, planned_jobs, snakemake
    from test_figures import check_figure_files

    work = copy_workflow(tmp_path / "wf")
    dry = snakemake(work, "-n", "--cores", "2")
    assert not [r for r, _ in planned_jobs(dry.stdout + dry.stderr) if r.startswith("host")]
    # one ratio (the calibration ratio) and one repetition: the test is about the target's
    # chain of jobs and files; the model's accuracy on this machine is test_host_prediction's
    ratios, repeats = [0.5], 1
    snakemake(work, "--cores", "2", "host", "--config",
              f"host={{ratios: {ratios}, calibration_ratio: 0.5, repeats: {repeats}}}")  # fmt: skip
    out = work / "results" / "host"
    probe.COPY_RUNS.check_file(out / "probe_copy.parquet")
    probe.COPY_RUNS.check_file(out / "copy.parquet")
    probe.HOST_COMPACTION_RUNS.check_file(out / "probe_compaction.parquet")
    probe.HOST_COMPACTION_RUNS.check_file(out / "compaction.parquet")
    comp = pl.read_parquet(out / "compaction.parquet")
    assert set(comp["source"]) <= {"measured", "simulated"} and "simulated" in comp["source"]
    if os.geteuid() == 0:
        assert comp.filter(pl.col("source") == "measured").height == len(ratios) * repeats
    doc = json.loads((out / "prediction.json").read_text())
    assert len(doc["cells"]) == len(ratios)
    check_figure_files(out / "figures" / "host_compaction")
    assert (out / "platform.yaml").is_file()


@pytest.mark.parametrize(
    "as_root", [pytest.param(True, marks=pytest.mark.host, id="compaction"), False]
)
def test_calibrate_host_cli_writes_a_loadable_platform(tmp_path, monkeypatch, as_root):
    """`migsim calibrate --host` end to end at a small size: with the compaction probe (root,
    a host test) and without it (uid 1000: the probe is skipped, the copy fit always runs)."""
    from migsim.cli import main
    from migsim.cost.platform import load_platform

    if not as_root:
        monkeypatch.setattr(probe.os, "geteuid", lambda: 1000)

    out = tmp_path / "host.yaml"
    assert main(["calibrate", "--host", "--size", "64M", "--repeats", "1", "--out", str(out)]) == 0
    p = load_platform(out)
    assert p.name.startswith("host-")
    assert p.copy.cpu_copy_gbps > 0
