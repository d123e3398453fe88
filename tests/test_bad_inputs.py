"""Every bad input stops before any work with one line naming it (issue 16).

About 185 cases: command-line arguments of every sub-command and keys of the workflow
configuration. Each must exit non-zero, print no traceback, print exactly one line on stderr
that names the argument or key, and leave every file under results/ as it was.

The command-line cases run ``migsim.cli.main`` in-process (an exception that escapes main is
a traceback and fails the case); a few also run as a real process. The configuration cases
run ``migsim.pipeline.validate_config`` in-process, the check the workflow runs before any
job; a few as Snakemake parses ``--config`` values, and tests/test_config_schema.py runs two
through the real ``snakemake``.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import numpy as np
import pytest
import yaml
from pipeline_util import ROOT, config_error, copy_workflow, edit, snapshot

from migsim import pipeline
from migsim.cli import main
from migsim.cost.platform import DEFAULT_PLATFORM

# Memory the cases see as available (bytes): the runs that need more are refused by their
# estimate on any machine (on a large machine they would otherwise start).
AVAILABLE = 8 << 30

# --- files the cases point at ---------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Bad files of every kind: platform files, reference tables, states."""
    from migsim.kernel.fragment import FragmentConfig, fragment, save_state

    d = tmp_path_factory.mktemp("bad_files")
    good = yaml.safe_load(DEFAULT_PLATFORM.read_text())
    out: dict[str, Path] = {}

    def platform_with(name: str, sec: str, key: str, value) -> None:
        doc = copy.deepcopy(good)
        doc["parameters"][sec][key]["value"] = value
        out[name] = d / f"{name}.yaml"
        out[name].write_text(yaml.safe_dump(doc))

    platform_with("plat_inf_int", "dma", "max_channels_count", float("inf"))
    platform_with("plat_nan_int", "mt", "max_threads_count", float("nan"))
    platform_with("plat_nan", "copy", "cpu_copy_gbps", float("nan"))
    platform_with("plat_neg_inf", "cpu", "pte_us", float("-inf"))
    platform_with("plat_range", "dma", "max_channels_count", 300)
    platform_with("plat_frac", "dma", "max_channels_count", 2.5)
    platform_with("plat_text", "copy", "cpu_copy_gbps", "fast")
    doc = copy.deepcopy(good)
    del doc["parameters"]["dma"]["prep_us"]
    out["plat_missing"] = d / "plat_missing.yaml"
    out["plat_missing"].write_text(yaml.safe_dump(doc))
    out["plat_yaml"] = d / "plat_yaml.yaml"
    out["plat_yaml"].write_text("parameters: [unclosed\n")
    out["plat_binary"] = d / "plat_binary.yaml"
    out["plat_binary"].write_bytes(b"\xff\xfe\x00\x81garbage")
    out["empty"] = d / "empty"
    out["empty"].write_bytes(b"")
    out["csv_ragged"] = d / "ragged.csv"
    out["csv_ragged"].write_text("a,b\n1,2,3\n4\n")
    out["csv_columns"] = d / "columns.csv"
    out["csv_columns"].write_text("mode,channels\nbaseline,1\n")
    out["csv_cells"] = d / "cells.csv"
    out["csv_cells"].write_text(
        "mode,channels,folio_size,throughput_gbps,stddev_gbps\nbaseline,,huge,fast,0\n"
    )
    out["dir"] = d / "a_directory"
    out["dir"].mkdir()
    state = d / "state.npz"
    save_state(fragment(FragmentConfig(node_bytes=16 << 20)), state)
    out["state"] = state
    out["state_truncated"] = d / "truncated.npz"
    out["state_truncated"].write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    out["state_yaml"] = d / "state.yaml"
    out["state_yaml"].write_text("node: 1\n")
    out["state_other_npz"] = d / "other.npz"
    np.savez(out["state_other_npz"], something=np.arange(3))
    out["state_pickle"] = d / "pickle.npy"
    np.save(out["state_pickle"], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return out


# --- command-line cases: (arguments, the name the line must contain) -------------------------

T = ["throughput"]
TD = ["throughput", "--mode", "dma"]
TM = ["throughput", "--mode", "mt"]
C = ["compaction"]
CD = ["compaction", "--mode", "dma"]
RT = ["reproduce", "throughput"]
RC = ["reproduce", "compaction"]

CLI_CASES: list[tuple[list[str], str]] = [
    # folio sizes
    *[(T + ["--folio-size", v], "--folio-size")
      for v in ("3K", "0", "-4K", "4M", "512M", "2G", "abc", "1.5K", "6K", "", "1T")],
    (T + ["--folio-size"], "--folio-size"),
    # channels and threads
    *[(TD + ["--channels", v], "--channels") for v in ("0", "-1", "17", "32", "257", "abc", "1.5")],
    (T + ["--channels", "4"], "--channels"),
    (TM + ["--channels", "4"], "--channels"),
    *[(TM + ["--threads", v], "--threads") for v in ("0", "-2", "33", "2000", "x")],
    (T + ["--threads", "4"], "--threads"),
    (TD + ["--threads", "4"], "--threads"),
    # modes
    *[(T + ["--mode", v], "--mode") for v in ("warp", "DMA", "", "gpu")],
    # trials and seeds
    *[(T + ["--trials", v], "--trials") for v in ("0", "-1", "1001", "x", "nan", "2.5")],
    *[(T + ["--seed", v], "--seed") for v in ("-1", str(2**63), "x", "1.5")],
    # totals
    *[(T + ["--total-bytes", v], "--total-bytes")
      for v in ("0", "6000", "2T", "-1G", "x", "1.5K", "1P")],
    (T + ["--folio-size", "16K", "--total-bytes", "1000K"], "--total-bytes"),
    (T + ["--folio-size", "2M", "--total-bytes", "1M"], "--total-bytes"),
    (T + ["--folio-size", "1G", "--total-bytes", "1536M"], "--total-bytes"),
    (T + ["--total-bytes", "1T", "--batch-limit", "1"], "--total-bytes"),  # memory estimate
    (T + ["--total-bytes", "1T", "--batch-limit", "2"], "--total-bytes"),  # memory estimate
    # batch limits
    *[(T + ["--batch-limit", v], "--batch-limit")
      for v in ("0", "-1", "x", "3K", "2T", "1.5", "268435457", "6000B")],
    # fail rates
    *[(TD + ["--fail-rate", v], "--fail-rate") for v in ("nan", "inf", "-inf", "-0.1", "1.5", "x")],
    (T + ["--fail-rate", "0.1"], "--fail-rate"),
    (TM + ["--fail-rate", "0.1"], "--fail-rate"),
    # platform files
    *[(T + ["--platform", f"@{k}"], "platform")
      for k in ("plat_inf_int", "plat_nan_int", "plat_nan", "plat_neg_inf", "plat_range",
                "plat_frac", "plat_text", "plat_missing", "plat_yaml", "plat_binary", "empty")],
    (T + ["--platform", "/nonexistent/p.yaml"], "--platform"),
    (T + ["--platform", "@dir"], "--platform"),
    (T + ["--bogus"], "--bogus"),
    # reproduce throughput
    (RT + ["--reference", "/nonexistent.csv"], "--reference"),
    *[(RT + ["--reference", f"@{k}"], "--reference")
      for k in ("csv_ragged", "csv_columns", "csv_cells", "empty", "dir")],
    (RT + ["--trials", "0"], "--trials"),
    (RT + ["--seed", "-1"], "--seed"),
    (RT + ["--platform", "@plat_inf_int"], "platform"),
    # compaction
    *[(C + ["--mode", v], "--mode") for v in ("idle-dma", "x", "")],
    *[(CD + ["--channels", v], "--channels") for v in ("0", "17", "abc", "-3")],
    (C + ["--channels", "2"], "--channels"),
    (C + ["--mode", "busy-baseline", "--channels", "2"], "--channels"),
    *[(C + ["--cluster-max", v], "--cluster-max") for v in ("0", "513", "x", "-1", "nan")],
    *[(C + ["--node-size", v], "--node-size")
      for v in ("3M", "2M", "1", "x", "100T", "0", "-2G", "1.5M")],
    (C + ["--node-size", "10T"], "--node-size"),  # memory estimate
    *[(C + ["--allocations", v], "--allocations") for v in ("0", "-5", "x", "200000", "1.5")],
    (C + ["--node-size", "64M", "--allocations", "33"], "--allocations"),
    (C + ["--node-size", "64M", "--order", "10", "--allocations", "17"], "--allocations"),
    (C + ["--state", "@state", "--allocations", "5000"], "--allocations"),
    *[(C + ["--order", v], "--order") for v in ("-1", "11", "x", "9.5")],
    *[(C + ["--free-ratio", v], "--free-ratio") for v in ("1.0", "-0.1", "nan", "inf", "x")],
    *[(C + ["--pattern", v], "--pattern") for v in ("zigzag", "EVEN")],
    (C + ["--fail-rate", "0.5"], "--fail-rate"),
    (C + ["--mode", "busy-baseline", "--fail-rate", "0.5"], "--fail-rate"),
    *[(CD + ["--fail-rate", v], "--fail-rate") for v in ("nan", "2", "-0.5")],
    (C + ["--seed", "-1"], "--seed"),
    (C + ["--state", "/nonexistent.npz"], "--state"),
    *[(C + ["--state", f"@{k}"], "--state")
      for k in ("empty", "state_truncated", "state_yaml", "state_other_npz", "state_pickle",
                "dir")],
    (C + ["--state", "@state", "--node-size", "2G"], "--node-size"),
    (C + ["--state", "@state", "--free-ratio", "0.25"], "--free-ratio"),
    (C + ["--state", "@state", "--pattern", "random"], "--pattern"),
    (C + ["--platform", "@plat_nan_int"], "platform"),
    (C + ["--platform", "@plat_missing"], "platform"),
    # reproduce compaction
    (RC + ["--reference", "/nonexistent.csv"], "--reference"),
    *[(RC + ["--reference", f"@{k}"], "--reference") for k in ("csv_ragged", "csv_columns", "empty")],
    *[(RC + ["--channels", v], "--channels") for v in ("0", "17", "x")],
    # calibrate (the checks run before anything is written)
    (["calibrate", "--reference", "/nonexistent.csv"], "--reference"),
    (["calibrate", "--reference", "@csv_ragged", "--out", "@out"], "--reference"),
    (["calibrate", "--reference", "@csv_columns", "--out", "@out"], "--reference"),
    (["calibrate", "--compaction-reference", "/nonexistent.csv"], "--compaction-reference"),
    (["calibrate", "--compaction-reference", "@csv_ragged", "--out", "@out"],
     "--compaction-reference"),
    (["calibrate", "--host", "--repeats", "0"], "--repeats"),
    (["calibrate", "--host", "--size", "x"], "--size"),
    (["calibrate", "--host", "--base", "/nonexistent.yaml"], "--base"),
    # probes (checked before anything is measured)
    (["probe", "copy", "--sizes", "3K"], "--sizes"),
    (["probe", "copy", "--repeats", "0"], "--repeats"),
    (["probe", "copy", "--working-set", "x"], "--working-set"),
    (["probe", "compaction", "--ratios", "0"], "--ratios"),
    (["probe", "compaction", "--ratios", "1.5"], "--ratios"),
    (["probe", "compaction", "--size", "x"], "--size"),
    (["probe", "compaction", "--node", "-1"], "--node"),
    (["probe", "move-pages-call", "--calls", "0"], "--calls"),
    (["probe", "move-pages-call", "--repeats", "0"], "--repeats"),
    # the host twin and trace import (checked before anything is read or probed)
    (["host", "twin", "--runs", "0"], "--runs"),
    (["host", "twin", "--free-ratio", "1"], "--free-ratio"),
    (["host", "twin", "--platform", "/nonexistent.yaml"], "--platform"),
    (["host", "predict", "--from", "/nonexistent"], "--from"),
    (["host", "predict", "--snapshot", "/nonexistent.npz"], "--snapshot"),
    (["trace", "import", "/nonexistent.txt"], "/nonexistent.txt"),
    # an empty, a binary and a text file that is not a trace: refused, not "0 events"
    *[(["trace", "import", f"@{k}"], "FILE: ") for k in ("empty", "plat_binary", "state")],
    *[(["trace", "import", f"@{k}"], "FILE: ") for k in ("csv_columns", "plat_missing")],
    (["trace", "import", "@dir"], "FILE: "),
    # sub-commands
    (["warp"], "warp"),
]  # fmt: skip


def _resolve(args: list[str], files: dict[str, Path], tmp: Path) -> list[str]:
    out = []
    for a in args:
        if a == "@out":
            out.append(str(tmp / "out.yaml"))
        elif a.startswith("@"):
            out.append(str(files[a[1:]]))
        else:
            out.append(a)
    return out


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A working directory with results of an earlier run, which no bad input may touch."""
    for rel in ("runs/throughput/baseline.parquet", "summary/throughput.parquet", "index.html"):
        p = tmp_path / "results" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"earlier result " + rel.encode())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MIGSIM_MEMORY_AVAILABLE", str(AVAILABLE))
    return tmp_path


def one_line_naming(stderr: str, name: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    assert name in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(("args", "name"), CLI_CASES, ids=[" ".join(a) for a, _ in CLI_CASES])
def test_bad_argument(args, name, files, workdir, capsys):
    before = snapshot(workdir / "results")
    argv = _resolve(args, files, workdir)
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse
        rc = exc.code
    err = capsys.readouterr().err
    assert rc not in (0, None), f"{argv} was accepted"
    print(one_line_naming(err, name))  # shown with pytest -s
    assert snapshot(workdir / "results") == before
    assert not (workdir / "out.yaml").exists()


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (TD + ["--channels", "32"], "--channels"),
        (T + ["--folio-size", "-4K"], "--folio-size"),
        (C + ["--state", "@state_truncated"], "--state"),
        (T + ["--platform", "@plat_inf_int"], "platform"),
    ],
)
def test_bad_argument_in_a_real_process(args, name, files, workdir):
    import subprocess
    import sys

    before = snapshot(workdir / "results")
    proc = subprocess.run(
        [sys.executable, "-m", "migsim.cli", *_resolve(args, files, workdir)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    one_line_naming(proc.stderr, name)
    assert proc.stdout == ""
    assert snapshot(workdir / "results") == before


def test_messages_name_the_flag_not_the_python_argument(files, workdir, capsys):
    """A check past parsing names the flag as typed (--fail-rate), never the Python name."""
    for argv in (TD + ["--fail-rate", "nan"], C + ["--state", str(files["state_yaml"])]):
        with contextlib.suppress(SystemExit):
            main(argv)
        err = capsys.readouterr().err
        assert "fail_rate" not in err and "error: state:" not in err, err
        assert "--fail-rate" in err or "--state" in err, err


def test_the_platform_range_is_stated_first(capsys):
    """`--channels 0` and `--channels 32` state the same range: the platform's."""
    msgs = []
    for v in ("0", "32"):
        assert main([*TD, "--channels", v]) == 2
        msgs.append(capsys.readouterr().err.split("got")[0])
    assert msgs[0] == msgs[1] and "1..16" in msgs[0] and "epyc-zen3-ptdma" in msgs[0]


def test_order_zero_says_why_nothing_was_done(capsys):
    assert main([*C, "--node-size", "64M", "--allocations", "4", "--order", "0"]) == 0
    out = capsys.readouterr().out
    assert "never enter direct compaction" in out


# --- configuration cases: (key, value or DELETE, text the line must contain) ----------------

SCHEMA = pipeline.load_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")
NAN, INF = float("nan"), float("inf")

CONFIG_CASES: list[tuple[str, object, str]] = [
    # the cases that passed validation and failed in a job
    ("throughput.fail_rate", NAN, "throughput.fail_rate"),
    ("compaction.fail_rate", NAN, "compaction.fail_rate"),
    ("throughput.total_bytes", "2T", "throughput.total_bytes"),
    ("whatif.latency.total_bytes", "2T", "whatif.latency.total_bytes"),
    ("whatif.cluster_max.channels", [17], "whatif.cluster_max.channels[0]"),
    ("whatif.engine_class.channels", [1, 32], "whatif.engine_class.channels[1]"),
    # the README's example with 32 channels on a 16-channel platform
    ("throughput.channels", [1, 2, 4, 8, 12, 16, 32], "throughput.channels[6]"),
    # NaN and infinities everywhere
    ("throughput.fail_rate", INF, "throughput.fail_rate"),
    ("fragmentation.free_ratio", NAN, "fragmentation.free_ratio"),
    ("fragmentation.free_ratio", -INF, "fragmentation.free_ratio"),
    ("throughput.batch_limit", INF, "throughput.batch_limit"),
    ("whatif.latency.knee_pct", NAN, "whatif.latency.knee_pct"),
    ("whatif.engine_class.latency_scales", [1.0, NAN], "whatif.engine_class.latency_scales[1]"),
    ("whatif.fragmentation.free_ratios", [INF], "whatif.fragmentation.free_ratios[0]"),
    ("throughput.fail_rate", ".nan", "throughput.fail_rate"),  # as --config gives it
    # channels and threads against the platform and the absolute range
    ("throughput.channels", [0, 2], "throughput.channels[0]"),
    ("throughput.channels", [1, 64], "throughput.channels[1]"),
    ("throughput.channels", [1, 300], "throughput.channels[1]"),
    ("throughput.channels", [], "throughput.channels"),
    ("throughput.channels", [2, 2], "throughput.channels"),
    ("throughput.threads", [0], "throughput.threads[0]"),
    ("throughput.threads", [33], "throughput.threads[0]"),
    ("throughput.threads", [2000], "throughput.threads[0]"),
    ("compaction.channels", 17, "compaction.channels"),
    ("compaction.channels", 0, "compaction.channels"),
    (
        "whatif.engine_class.compaction_channels",
        [1, 20],
        "whatif.engine_class.compaction_channels[1]",
    ),
    ("whatif.hybrid.channels", [20], "whatif.hybrid.channels[0]"),
    ("whatif.fragmentation.channels", 17, "whatif.fragmentation.channels"),
    ("whatif.latency.channels", [1, 17], "whatif.latency.channels[1]"),
    # modes, sizes, patterns
    ("throughput.modes", ["baseline", "dma", "turbo"], "throughput.modes[2]"),
    ("throughput.modes", [], "throughput.modes"),
    ("compaction.modes", ["baseline", "idle-dma"], "compaction.modes[1]"),
    ("throughput.folio_sizes", ["4K", "24K"], "throughput.folio_sizes[1]"),
    ("throughput.folio_sizes", ["4M"], "throughput.folio_sizes[0]"),
    ("whatif.latency.folio_sizes", ["3K"], "whatif.latency.folio_sizes[0]"),
    ("whatif.engine_class.folio_sizes", ["8M"], "whatif.engine_class.folio_sizes[0]"),
    ("fragmentation.pattern", "zigzag", "fragmentation.pattern"),
    ("whatif.fragmentation.patterns", ["even", "zigzag"], "whatif.fragmentation.patterns[1]"),
    ("whatif.cluster_max.loads", ["idle", "heavy"], "whatif.cluster_max.loads[1]"),
    # totals and node sizes
    ("throughput.total_bytes", "1000K", "throughput.total_bytes"),
    ("throughput.total_bytes", "6000", "throughput.total_bytes"),
    ("throughput.total_bytes", 0, "throughput.total_bytes"),
    ("throughput.total_bytes", "lots", "throughput.total_bytes"),
    ("whatif.engine_class.total_bytes", "2T", "whatif.engine_class.total_bytes"),
    ("whatif.latency.total_bytes", "1000K", "whatif.latency.total_bytes"),
    ("fragmentation.node_bytes", "big", "fragmentation.node_bytes"),
    ("fragmentation.node_bytes", "3M", "fragmentation.node_bytes"),
    ("fragmentation.node_bytes", "2M", "fragmentation.node_bytes"),
    ("fragmentation.node_bytes", "100T", "fragmentation.node_bytes"),
    ("whatif.node_bytes", "3M", "whatif.node_bytes"),
    ("compaction.allocations", 200000, "compaction.allocations"),  # 400 GB > the node
    ("compaction.allocations", 0, "compaction.allocations"),
    ("whatif.allocations", 100000, "whatif.allocations"),
    # counts, ratios, rates
    ("throughput.trials", 0, "throughput.trials"),
    ("throughput.trials", 1001, "throughput.trials"),
    ("throughput.trials", 2.5, "throughput.trials"),
    ("throughput.batch_limit", 0, "throughput.batch_limit"),
    ("throughput.min_batch_bytes", -1, "throughput.min_batch_bytes"),
    ("throughput.fail_rate", 1.5, "throughput.fail_rate"),
    ("throughput.fail_rate", -0.1, "throughput.fail_rate"),
    ("compaction.fail_rate", 2, "compaction.fail_rate"),
    ("fragmentation.free_ratio", 1.0, "fragmentation.free_ratio"),
    ("fragmentation.free_ratio", -0.1, "fragmentation.free_ratio"),
    ("compaction.cluster_max", 0, "compaction.cluster_max"),
    ("compaction.cluster_max", 513, "compaction.cluster_max"),
    ("compaction.runs", 0, "compaction.runs"),
    ("compaction.runs", 101, "compaction.runs"),
    ("compaction.noise", "yes", "compaction.noise"),
    ("compaction.min_batch_bytes", -4096, "compaction.min_batch_bytes"),
    ("whatif.latency.knee_pct", 0, "whatif.latency.knee_pct"),
    ("whatif.latency.knee_pct", 101, "whatif.latency.knee_pct"),
    ("whatif.latency.batch_limits", [0, 512], "whatif.latency.batch_limits[0]"),
    ("whatif.latency.trials", 0, "whatif.latency.trials"),
    ("whatif.engine_class.latency_scales", [0], "whatif.engine_class.latency_scales[0]"),
    ("whatif.engine_class.latency_scales", [1.5], "whatif.engine_class.latency_scales[0]"),
    ("whatif.engine_class.latency_params", ["warp_us"], "whatif.engine_class.latency_params[0]"),
    ("whatif.cluster_max.cluster_max", [32, 513], "whatif.cluster_max.cluster_max[1]"),
    ("whatif.fragmentation.free_ratios", [0.0], "whatif.fragmentation.free_ratios[0]"),
    ("whatif.hybrid.thresholds", ["lots"], "whatif.hybrid.thresholds[0]"),
    ("whatif.cluster_max.enabled", "maybe", "whatif.cluster_max.enabled"),
    # seeds
    ("seed", -3, "seed"),
    ("seed", 2**63, "seed"),
    ("seed", "seven", "seed"),
    ("seed", 1.5, "seed"),
    # keys
    ("throughput.trials", "DELETE", "throughput.trials: missing required key"),
    ("seed", "DELETE", "seed: missing required key"),
    ("throughput.chanels", [1, 2], "throughput.chanels: unknown key"),
    ("compaction.mode", ["dma"], "compaction.mode: unknown key"),
    ("whatif.latency.knee", 95, "whatif.latency.knee: unknown key"),
    ("extra", 1, "extra: unknown key"),
    # files
    ("platform", "config/platforms/nowhere.yaml", "platform"),
    ("platform", "", "platform"),
    ("platform", "@plat_inf_int", "max_channels_count"),
    ("platform", "@plat_nan_int", "max_threads_count"),
    ("platform", "@plat_nan", "cpu_copy_gbps"),
    ("platform", "@plat_missing", "prep_us"),
    ("platform", "@plat_yaml", "platform"),
    ("platform", "@dir", "platform"),
    ("reference.throughput", "config/reference/nowhere.csv", "reference.throughput"),
    ("reference.compaction", "@dir", "reference.compaction"),
]


@pytest.fixture(scope="module")
def default_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_the_default_configuration_passes(default_config):
    pipeline.validate_config(default_config, SCHEMA, ROOT)


@pytest.mark.parametrize(
    ("key", "value", "message"), CONFIG_CASES, ids=[f"{k}={v}" for k, v, _ in CONFIG_CASES]
)
def test_bad_config_value(key, value, message, default_config, files):
    if isinstance(value, str) and value.startswith("@"):
        value = str(files[value[1:]])
    bad = (
        edit(default_config, key, delete=True)
        if value == "DELETE"
        else edit(default_config, key, value)
    )
    with pytest.raises(pipeline.ConfigError) as info:
        pipeline.validate_config(pipeline.coerce_config(bad, SCHEMA), SCHEMA, ROOT)
    line = str(info.value)
    print(line)  # shown with pytest -s
    assert "\n" not in line and line.startswith("config: "), line
    assert message in line, line


def test_cases_count():
    """The issue asks for about 185 cases."""
    assert len(CLI_CASES) + len(CONFIG_CASES) >= 185


# --- --config values as snakemake parses them ------------------------------------------------
# In-process (pipeline_util.config_error: Snakemake's own --config parser and merge, then the
# workflow's coerce_config and validate_config); tests/test_config_schema.py runs a bad config
# file and a bad --config value through the real snakemake, which stops before any job.


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("bad_config"), with_src=False)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("throughput={fail_rate: .nan}", "config: throughput.fail_rate"),
        ("whatif={cluster_max: {channels: [17]}}", "config: whatif.cluster_max.channels[0]"),
        ("throughput={channels: [1, 2, 4, 8, 12, 16, 32]}", "config: throughput.channels[6]"),
        ("@plat_inf_int", "max_channels_count"),
    ],
)
def test_bad_config_on_the_snakemake_command_line(work, files, config, message):
    if config.startswith("@"):
        config = f"platform={files[config[1:]]}"
    err = config_error(work, config=(config,))
    assert err is not None and "\n" not in err and err.startswith("config: "), err
    assert message in err, err
